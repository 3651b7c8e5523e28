"""The Client: queue calls, send them in batches from a background thread, never raise."""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

from nerve.errors import NerveError
from nerve.sdk._errors import (
    ClosedError,
    ConfigError,
    DeliveryError,
    InvalidMessageError,
    QueueFullError,
)
from nerve.sdk._experiments import EXPOSURE_EVENT, Experiments
from nerve.sdk._message import MAX_BATCH_BYTES, build_message, encode_message
from nerve.sdk._queue import EventQueue, MemoryQueue
from nerve.sdk._retry import RetryPolicy
from nerve.sdk._spool import SpoolQueue
from nerve.sdk._transport import Transport

__all__ = ["DEFAULT_HOST", "Client", "ClientStats", "ErrorCallback"]

log = logging.getLogger("nerve.sdk")

DEFAULT_HOST = "http://127.0.0.1:8700"
#: on_error(exc, batch): batch is the list of message dicts the error concerns
ErrorCallback = Callable[[Exception, list[dict[str, Any]]], object]
Timestamp = datetime | date | str | None
# what a batch's events may weigh, leaving room for the body's own keys
_MAX_PAYLOAD = MAX_BATCH_BYTES - 256


@dataclass(frozen=True, slots=True)
class ClientStats:
    """Counters since the client started (a snapshot)."""

    queued: int  # waiting now (in memory or in the spool)
    accepted: int  # calls queued
    delivered: int  # events the server acknowledged
    rejected: int  # events in batches the server refused for good (4xx, 501, 505)
    undelivered: int  # events in batches that ran out of retries
    dropped_queue_full: int
    dropped_invalid: int
    requests: int  # HTTP requests made (or being made), retries included, as they happen
    recovered: int  # events found in the spool from an earlier process


class Client:
    """A Segment-spec client for nerve (or Segment, or RudderStack).

    >>> client = Client("WRITE_KEY", "http://127.0.0.1:8700")      # doctest: +SKIP
    >>> client.track("Order Completed", {"revenue": 9.99}, user_id="u1")  # doctest: +SKIP
    >>> client.shutdown()                                        # doctest: +SKIP

    Calls queue the event and return its message id at once (None when the call was
    refused); a background thread sends batches of ``max_batch_size`` events, or what is
    waiting every ``flush_interval`` seconds. Nothing raises into the caller: refused
    calls, full queues and failed batches go to ``on_error(exc, batch)`` (or the
    ``nerve.sdk`` logger when there is none). Every option is described in docs/sdk.md.
    """

    def __init__(
        self,
        write_key: str,
        host: str = DEFAULT_HOST,
        *,
        max_batch_size: int = 100,
        flush_interval: float = 0.5,
        max_queue_size: int = 10_000,
        block_when_full: float = 0.0,
        gzip: bool = True,
        timeout: float = 10.0,
        max_retries: int = 10,
        backoff_base: float = 0.5,
        backoff_max: float = 10.0,
        on_error: ErrorCallback | None = None,
        spool_dir: Path | str | None = None,
        historical: bool = False,
        sync_mode: bool = False,
        context: Mapping[str, Any] | None = None,
        exit_timeout: float | None = 30.0,
    ) -> None:
        _check_options(write_key, host, max_batch_size, flush_interval, max_queue_size,
                       timeout, max_retries, backoff_base, backoff_max, context)
        if not block_when_full >= 0:
            raise ConfigError(f"Client(...): block_when_full: seconds >= 0, got {block_when_full}")
        self.write_key = write_key
        self.host = host.rstrip("/")
        self.max_batch_size = max_batch_size
        self.flush_interval = flush_interval
        self.max_queue_size = max_queue_size
        #: seconds a call waits for room in a full queue before it drops its event
        self.block_when_full = block_when_full
        self.sync_mode = sync_mode
        self.on_error = on_error
        self.context = dict(context or {})
        self.policy = RetryPolicy(max_retries, backoff_base, backoff_max)
        self.exit_timeout = exit_timeout
        self._queue: EventQueue
        self._durable = spool_dir is not None
        if spool_dir is not None:
            identity = hashlib.sha256(f"{write_key}\n{historical}".encode()).hexdigest()[:16]
            try:
                spool = SpoolQueue(spool_dir, identity=identity)
            except OSError as exc:
                raise ConfigError(f"spool_dir {spool_dir}: {exc}") from exc
            self._queue, self._recovered = spool, spool.recovered
            if spool.torn:
                log.warning("nerve.sdk: spool %s: skipped %d torn line(s) left by a crash",
                            spool_dir, spool.torn)
        else:
            self._queue, self._recovered = MemoryQueue(), 0
        self._transport = Transport(write_key, self.host, timeout=timeout, gzip=gzip,
                                    historical=historical, policy=self.policy,
                                    on_attempt=self._count_request)
        self._experiments = Experiments(write_key, self.host, timeout=timeout)
        self._lock = threading.Condition()
        self._send_lock = threading.RLock()  # on_error may call shutdown() mid-send
        self._wake = threading.Event()  # set by shutdown(timeout) to cut retry waits short
        self._deadline: float | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._closed = False
        self._paused_until = 0.0  # after a batch ran out of retries, let the server breathe
        self._settled = 0  # events taken off the queue: delivered, refused, or given up
        self._full = False
        self._counts = dict.fromkeys(
            ("accepted", "delivered", "rejected", "undelivered", "dropped_queue_full",
             "dropped_invalid", "requests"), 0)
        atexit.register(self._at_exit)
        _LIVE.add(self)
        if len(self._queue) and not sync_mode:
            with self._lock:
                self._start_worker()

    # ------------------------------------------------------------------ the Segment calls

    def track(self, event: str, properties: Mapping[str, Any] | None = None, *,
              user_id: str | None = None, anonymous_id: str | None = None,
              context: Mapping[str, Any] | None = None, timestamp: Timestamp = None,
              message_id: str | None = None,
              integrations: Mapping[str, Any] | None = None) -> str | None:
        """Record that a user did something; returns the message id, None if refused."""
        return self._enqueue("track", {"event": event, "properties": properties},
                             ("event",), user_id, anonymous_id, context, timestamp,
                             message_id, integrations)

    def identify(self, user_id: str | None = None, traits: Mapping[str, Any] | None = None,
                 *, anonymous_id: str | None = None, context: Mapping[str, Any] | None = None,
                 timestamp: Timestamp = None, message_id: str | None = None,
                 integrations: Mapping[str, Any] | None = None) -> str | None:
        """Tie a user to their traits (age group, country, plan, ...)."""
        return self._enqueue("identify", {"traits": traits}, (), user_id, anonymous_id,
                             context, timestamp, message_id, integrations)

    def page(self, name: str | None = None, properties: Mapping[str, Any] | None = None, *,
             category: str | None = None, user_id: str | None = None,
             anonymous_id: str | None = None, context: Mapping[str, Any] | None = None,
             timestamp: Timestamp = None, message_id: str | None = None,
             integrations: Mapping[str, Any] | None = None) -> str | None:
        """Record a web page view."""
        return self._enqueue("page", {"name": name, "category": category, "properties": properties},
                             (), user_id, anonymous_id, context, timestamp, message_id,
                             integrations)

    def screen(self, name: str | None = None, properties: Mapping[str, Any] | None = None, *,
               category: str | None = None, user_id: str | None = None,
               anonymous_id: str | None = None, context: Mapping[str, Any] | None = None,
               timestamp: Timestamp = None, message_id: str | None = None,
               integrations: Mapping[str, Any] | None = None) -> str | None:
        """Record a mobile app screen view."""
        return self._enqueue("screen",
                             {"name": name, "category": category, "properties": properties},
                             (), user_id, anonymous_id, context, timestamp, message_id,
                             integrations)

    def group(self, group_id: str, traits: Mapping[str, Any] | None = None, *,
              user_id: str | None = None, anonymous_id: str | None = None,
              context: Mapping[str, Any] | None = None, timestamp: Timestamp = None,
              message_id: str | None = None,
              integrations: Mapping[str, Any] | None = None) -> str | None:
        """Tie a user to a group (a company, a team) and the group's traits."""
        return self._enqueue("group", {"groupId": group_id, "traits": traits}, ("groupId",),
                             user_id, anonymous_id, context, timestamp, message_id,
                             integrations)

    def alias(self, previous_id: str, user_id: str, *, context: Mapping[str, Any] | None = None,
              timestamp: Timestamp = None, message_id: str | None = None,
              integrations: Mapping[str, Any] | None = None) -> str | None:
        """Merge an earlier identity (``previous_id``) into ``user_id``."""
        if not user_id:
            self._refuse(InvalidMessageError("alias: user_id is required"),
                         {"type": "alias", "previousId": previous_id})
            return None
        return self._enqueue("alias", {"previousId": previous_id}, ("previousId",), user_id,
                             None, context, timestamp, message_id, integrations)

    # ------------------------------------------------------------------ experiments

    def get_variant(self, key: str, user_id: str | None = None, *,
                    anonymous_id: str | None = None,
                    attributes: Mapping[str, Any] | None = None) -> str | None:
        """The variant of experiment ``key`` for this user, or None when not in it.

        Definitions come from the server (``GET /v1/experiments``, cached a minute);
        assignment is a local hash, the same in every SDK and process (docs/experiments.md).
        The first call per experiment and user logs an ``experiment_viewed`` exposure.
        ``attributes`` (``{"age": 70}``) are checked against the experiment's targeting.
        Never raises; an unknown experiment or an unreachable server gives None.
        """
        unit = user_id or anonymous_id
        if not unit:
            self._refuse(InvalidMessageError("get_variant: user_id or anonymous_id is "
                                             "required"), {"experiment": key})
            return None

        def expose(experiment: str, variant: str) -> None:
            self.track(EXPOSURE_EVENT, {"experiment_id": experiment, "variant_id": variant},
                       user_id=user_id, anonymous_id=anonymous_id)

        try:
            return self._experiments.decide(key, unit, attributes, expose)
        except Exception as exc:  # noqa: BLE001 - never raise into the host application
            self._refuse(exc, {"experiment": key})
            return None

    # ------------------------------------------------------------------ flush and shutdown

    def flush(self) -> bool:
        """Send everything queued now; block until sent or a batch runs out of retries.

        Returns True when nothing of what was queued at the call is left waiting (events
        that other threads queue meanwhile may still wait). Never raises.
        """
        if threading.current_thread() is self._thread:
            return False  # called from on_error on the sending thread: would deadlock
        return self._drain(full_only=False, bounded=True)

    def shutdown(self, timeout: float | None = None) -> bool:
        """Flush, stop the background thread and release the spool.

        Also runs at interpreter exit, with ``timeout=exit_timeout``. With ``timeout``
        (seconds), retry waits that would end past it are skipped. Events
        still undelivered stay in the spool when there is one; without one they are
        reported through ``on_error`` and dropped. Returns True when nothing was left.
        Further calls on the client are refused.
        """
        with self._lock:
            if self._closed:
                return len(self._queue) == 0
            self._closed = True
            self._stopping = True
            self._lock.notify_all()
        atexit.unregister(self._at_exit)
        if timeout is not None:
            self._deadline = time.monotonic() + timeout
            self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        self._paused_until = 0.0
        emptied = self._drain(full_only=False)
        with self._lock:
            left = len(self._queue)
            if left and not self._durable:
                lines, token = self._queue.peek(left, 1 << 62)
                self._queue.commit(token)
                self._counts["undelivered"] += len(lines)
                self._report(DeliveryError(f"shutdown: {left} events undelivered, dropped",
                                           status=None, attempts=0), _decode(lines))
            self._queue.close()
        self._transport.close()
        return emptied

    def _after_fork_in_child(self) -> None:
        # A forked child (gunicorn/uwsgi workers, multiprocessing) gets fresh locks, no
        # sending thread, its own connections and an empty queue: what was queued before
        # the fork is the parent's to send, and the spool's files and locks stay the
        # parent's (the child keeps its events in memory).
        self._lock = threading.Condition()
        self._send_lock = threading.RLock()
        self._wake = threading.Event()
        self._thread = None
        if self._durable:
            log.warning("nerve.sdk: forked child: the spool stays with the parent process; "
                        "this process queues in memory (create a Client after fork for one)")
        self._queue, self._durable = MemoryQueue(), False
        self._transport.reconnect()

    def _at_exit(self) -> None:
        # bounded, so that a program ending while the server is down does not hang for
        # the whole retry budget; with a spool, what is left stays on disk
        self.shutdown(self.exit_timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()

    def stats(self) -> ClientStats:
        """A snapshot of the client's counters."""
        with self._lock:
            return ClientStats(queued=len(self._queue), recovered=self._recovered,
                               **self._counts)

    # ------------------------------------------------------------------ queueing

    def _enqueue(self, kind: str, fields: dict[str, Any], required: tuple[str, ...],
                 user_id: Any, anonymous_id: Any, context: Mapping[str, Any] | None,
                 timestamp: Timestamp, message_id: Any,
                 integrations: Mapping[str, Any] | None) -> str | None:
        try:
            message = build_message(
                kind, user_id=user_id, anonymous_id=anonymous_id, context=context,
                default_context=self.context, timestamp=timestamp, message_id=message_id,
                integrations=integrations, required=required, **fields)
            data = encode_message(message)
        except InvalidMessageError as exc:
            self._refuse(exc, {"type": kind, **fields, "userId": user_id,
                               "anonymousId": anonymous_id})
            return None
        except Exception as exc:  # a bug of ours must not reach the caller
            log.exception("nerve.sdk: could not build a %s message", kind)
            self._refuse(exc, {"type": kind})
            return None
        refusal: NerveError | OSError | None = None
        with self._lock:
            self._wait_for_room()
            if self._closed:
                self._counts["dropped_invalid"] += 1
                refusal = ClosedError(f"{kind}: the client is shut down; event dropped")
            elif len(self._queue) >= self.max_queue_size:
                self._counts["dropped_queue_full"] += 1
                refusal = QueueFullError(
                    f"{kind}: queue full ({self.max_queue_size} events waiting); "
                    "the newest event was dropped", retry_after=self.flush_interval)
                if not self._full:
                    self._full = True
                    log.warning("nerve.sdk: %s", refusal)
            else:
                try:
                    self._queue.put(data)
                except OSError as exc:  # the spool's disk is full or gone
                    self._counts["dropped_invalid"] += 1
                    refusal = exc
                else:
                    self._full = False
                    self._counts["accepted"] += 1
                    if len(self._queue) >= self.max_batch_size:
                        self._lock.notify_all()
                    if not self.sync_mode:
                        self._start_worker()
        if refusal is not None:
            self._report(refusal, [message], quiet=isinstance(refusal, QueueFullError))
            return None
        if self.sync_mode:
            self._drain(full_only=False)
        return str(message["messageId"])

    def _wait_for_room(self) -> None:
        """With ``block_when_full``, wait (holding ``_lock``, which the wait lets go) until
        the queue has room, the client closes, or the time is up. A backfill would rather
        slow down to the server's pace than drop events. The sending thread never waits:
        an ``on_error`` that tracks would wait for itself."""
        if (self.block_when_full <= 0 or len(self._queue) < self.max_queue_size
                or self.sync_mode or threading.current_thread() is self._thread):
            return
        end = time.monotonic() + self.block_when_full
        self._lock.notify_all()  # the sending thread sends a full queue without waiting
        while len(self._queue) >= self.max_queue_size and not self._closed:
            left = end - time.monotonic()
            if left <= 0:
                return
            self._lock.wait(left)

    def _refuse(self, exc: Exception, partial: dict[str, Any]) -> None:
        with self._lock:
            self._counts["dropped_invalid"] += 1
        self._report(exc, [{k: v for k, v in partial.items() if v is not None}])

    def _start_worker(self) -> None:
        # also restarts it in a child process after fork(), where threads do not survive
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="nerve-sdk", daemon=True)
            self._thread.start()

    # ------------------------------------------------------------------ sending

    def _run(self) -> None:
        while True:
            with self._lock:
                deadline = time.monotonic() + self.flush_interval
                while not self._stopping:
                    now = time.monotonic()
                    full = len(self._queue) >= self.max_queue_size  # calls may be waiting
                    if now < self._paused_until:  # a batch just ran out of retries
                        self._lock.wait(self._paused_until - now)
                    elif len(self._queue) >= self.max_batch_size or full or now >= deadline:
                        break
                    else:
                        self._lock.wait(deadline - now)
                if self._stopping:
                    return
                # full batches go as soon as they fill; a partial one when the interval
                # ends, or when the queue is full
                full_only = time.monotonic() < deadline and not full
            self._drain(full_only=full_only, worker=True)

    def _drain(self, *, full_only: bool, bounded: bool = False, worker: bool = False) -> bool:
        """Send batches until the queue is empty (or only a partial batch is left).

        ``bounded``: stop once the events waiting at the call are settled, so that
        flush() returns even while other threads keep tracking. ``worker``: the sending
        thread, which stops while a batch that ran out of retries pauses it (flush() may
        have run one out while the thread waited for the send lock). True when nothing
        of what was waiting is left.
        """
        try:
            with self._send_lock:
                with self._lock:
                    target = self._settled + len(self._queue) if bounded else None
                while True:
                    with self._lock:
                        waiting = len(self._queue)
                        if worker and time.monotonic() < self._paused_until:
                            return False  # _run waits out the pause, then comes back
                        if target is not None and self._settled >= target:
                            return True
                        if waiting == 0 or (full_only and waiting < self.max_batch_size):
                            return waiting == 0
                        make_durable = self._queue.durable_point()
                        lines, token = self._queue.peek(self.max_batch_size, _MAX_PAYLOAD)
                    make_durable()  # fsync outside the lock: track() never waits on a disk
                    outcome = self._transport.send(lines, sleep=self._sleep)
                    # a batch split after a 413 has parts, each delivered, refused or not
                    parts = outcome.parts or ((len(lines), outcome.error),)
                    failed: list[tuple[Exception, list[bytes]]] = []
                    with self._lock:
                        # the spool keeps a batch with an undelivered part whole: its other
                        # parts go again with it (same message ids) and are counted then
                        kept = not outcome.done and self._durable
                        if not kept:
                            self._queue.commit(token)
                            self._settled += len(lines)
                            self._lock.notify_all()  # room for calls waiting on a full queue
                        start = 0
                        for count, error in parts:
                            part, start = lines[start:start + count], start + count
                            if kept and not isinstance(error, DeliveryError):
                                continue
                            key = ("delivered" if error is None else
                                   "undelivered" if isinstance(error, DeliveryError) else
                                   "rejected")
                            self._counts[key] += count
                            if error is not None:
                                failed.append((error, part))
                    for refusal, events in failed:
                        self._report(refusal, _decode(events))
                    if not outcome.done:
                        self._paused_until = time.monotonic() + self.policy.backoff_max
                        return False
        except Exception:  # never let the sending thread die, nor flush() raise
            log.exception("nerve.sdk: unexpected error while sending")
            return False

    def _count_request(self) -> None:
        with self._lock:
            self._counts["requests"] += 1

    def _sleep(self, seconds: float) -> bool:
        """Wait between retries; False when shutdown's deadline would pass first."""
        end = time.monotonic() + seconds
        if not self._wake.wait(seconds):
            return True
        if self._deadline is not None and end > self._deadline:
            return False
        time.sleep(max(0.0, end - time.monotonic()))
        return True

    def _report(self, exc: Exception, batch: list[dict[str, Any]], *,
                quiet: bool = False) -> None:
        if self.on_error is None:
            if not quiet:
                log.error("nerve.sdk: %s", exc)
            return
        try:
            self.on_error(exc, batch)
        except Exception:  # the host's callback must not break the SDK
            log.exception("nerve.sdk: on_error callback raised")


#: every client not yet garbage-collected, for the one fork hook below
_LIVE: weakref.WeakSet[Client] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for client in list(_LIVE):
        client._after_fork_in_child()
    # A multiprocessing child ends with os._exit(), which skips atexit: what it queued
    # would be lost. Its own exit hook runs finalizers, registered after its start-up
    # clears them (register_after_fork runs in the child's _bootstrap, after this hook),
    # for the clients alive when it ends (also those it creates itself).
    util = sys.modules.get("multiprocessing.util")
    if util is not None:
        util.register_after_fork(_exit_all, _finalize_at_child_exit)


def _finalize_at_child_exit(hook: Callable[[], None]) -> None:
    sys.modules["multiprocessing.util"].Finalize(None, hook, exitpriority=0)


def _exit_all() -> None:
    """What atexit would do for every live client: shutdown(exit_timeout)."""
    for client in list(_LIVE):
        client._at_exit()


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _decode(lines: list[bytes]) -> list[dict[str, Any]]:
    out = []
    for line in lines:
        try:
            out.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            out.append({"raw": line.decode("utf-8", "replace")})
    return out


def _check_options(write_key: object, host: object, max_batch_size: int,
                   flush_interval: float, max_queue_size: int, timeout: float,
                   max_retries: int, backoff_base: float, backoff_max: float,
                   context: object) -> None:
    problems = []
    if not isinstance(write_key, str) or not write_key:
        problems.append("write_key: required, a non-empty string")
    if not isinstance(host, str) or not host.startswith(("http://", "https://")):
        problems.append(f"host: expected an http:// or https:// URL, got {host!r}")
    else:
        problems.extend(_host_problems(host))
    numbers = {"max_batch_size": max_batch_size, "flush_interval": flush_interval,
               "max_queue_size": max_queue_size, "timeout": timeout,
               "max_retries": max_retries, "backoff_base": backoff_base,
               "backoff_max": backoff_max}
    wrong = [f"{name}: expected a number, got {type(value).__name__} {value!r}"
             for name, value in numbers.items()
             if not isinstance(value, int | float) or isinstance(value, bool)]
    if wrong:  # the ranges below cannot be judged (a "0.5" would raise TypeError)
        raise ConfigError("Client(...): " + "; ".join(problems + wrong))
    if not 1 <= max_batch_size <= 2500:
        problems.append(f"max_batch_size: between 1 and 2500, got {max_batch_size}")
    if not flush_interval > 0:
        problems.append(f"flush_interval: seconds > 0, got {flush_interval}")
    if max_queue_size < 1:
        problems.append(f"max_queue_size: at least 1, got {max_queue_size}")
    if not timeout > 0:
        problems.append(f"timeout: seconds > 0, got {timeout}")
    if max_retries < 0:
        problems.append(f"max_retries: 0 or more, got {max_retries}")
    if backoff_base < 0 or backoff_max < 0:
        problems.append(f"backoff_base, backoff_max: seconds >= 0, got "
                        f"{backoff_base}, {backoff_max}")
    if context is not None and not isinstance(context, Mapping):
        problems.append(f"context: expected a dict, got {type(context).__name__}")
    if problems:
        raise ConfigError("Client(...): " + "; ".join(problems))


#: the paths a Segment endpoint URL ends with: a host given with one would be sent to
#: ``.../v1/batch/v1/batch``, and every batch refused with a 404
_ENDPOINT_PATHS = ("/v1", "/v1/batch", "/v1/b", "/v1/import", "/v1/track", "/v1/t")


def _host_problems(host: str) -> list[str]:
    """What is wrong with an http(s) ``host``: a malformed URL, or an endpoint's URL."""
    try:
        parts = urlsplit(host)
        parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
    except ValueError as exc:
        return [f"host: not a URL ({exc}): {host!r}"]
    if not parts.hostname:
        return [f"host: no host name in {host!r}"]
    path = parts.path.rstrip("/")
    if path.endswith(_ENDPOINT_PATHS):
        base = host[: host.rindex(path)]
        return [f"host: the collector's base URL, without {path} (the client appends "
                f"/v1/batch): {base!r}, got {host!r}"]
    return []
