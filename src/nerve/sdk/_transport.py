"""Sending one batch over HTTP, with retries: the only module that talks to the network."""

from __future__ import annotations

import gzip as gzip_module
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from nerve import __version__
from nerve.sdk._errors import DeliveryError, RejectedError
from nerve.sdk._message import batch_body
from nerve.sdk._retry import RetryPolicy, is_retryable_status, parse_retry_after

__all__ = ["Outcome", "Transport"]

log = logging.getLogger("nerve.sdk")

# Errors that no retry can fix: a malformed URL, a scheme httpx cannot speak.
_TERMINAL_TRANSPORT = (httpx.UnsupportedProtocol, httpx.LocalProtocolError, httpx.InvalidURL)


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a batch ended: delivered (``error`` None), rejected (terminal) or undelivered."""

    error: RejectedError | DeliveryError | None = None
    attempts: int = 1
    #: after a 413 split the batch in parts: each part's event count and error (None:
    #: delivered), in batch order; empty when the batch went as one
    parts: tuple[tuple[int, RejectedError | DeliveryError | None], ...] = ()

    @property
    def done(self) -> bool:
        """True when resending cannot help: delivered, or refused for good."""
        return not isinstance(self.error, DeliveryError)


class Transport:
    """POSTs batches to ``{host}/v1/batch`` with Basic auth ``write_key:``."""

    def __init__(self, write_key: str, host: str, *, timeout: float, gzip: bool,
                 historical: bool, policy: RetryPolicy,
                 on_attempt: Callable[[], object] | None = None) -> None:
        self.url = host.rstrip("/") + "/v1/batch"
        #: called before each request, retries included (the client's stats count them
        #: as they happen, not once the batch has settled)
        self.on_attempt = on_attempt
        self.gzip = gzip
        self.historical = historical
        self.policy = policy
        self._rng = random.Random()
        self._auth = httpx.BasicAuth(write_key, "")
        self._timeout = timeout
        self._http = self._connect()

    def _connect(self) -> httpx.Client:
        return httpx.Client(auth=self._auth, timeout=self._timeout,
                            headers={"User-Agent": f"nerve-python/{__version__}",
                                     "Content-Type": "application/json"})

    def reconnect(self) -> None:
        """A new connection pool, for a child process after fork() (the parent's sockets
        are the parent's); the old pool is dropped, not closed."""
        self._http = self._connect()
        self._rng = random.Random()

    def close(self) -> None:
        self._http.close()

    def _post(self, messages: list[bytes], retry: int) -> httpx.Response:
        body = batch_body(messages, historical=self.historical)  # sentAt: now, per attempt
        headers = {}
        if self.gzip:
            body = gzip_module.compress(body, compresslevel=6, mtime=0)
            headers["Content-Encoding"] = "gzip"
        if retry:
            headers["X-Retry-Count"] = str(retry)
        return self._http.post(self.url, content=body, headers=headers)

    def send(self, messages: list[bytes], *,
             sleep: Callable[[float], bool]) -> Outcome:
        """Send one batch, retrying per the policy; never raises.

        ``sleep(seconds)`` waits between attempts and returns False to give up early
        (shutdown with a deadline). A 413 on a batch of several events splits it in
        halves, each sent on its own.
        """
        attempts = 0
        status: int | None = None
        reason = ""
        for retry in range(self.policy.max_retries + 1):
            attempts += 1
            if self.on_attempt is not None:
                self.on_attempt()
            retry_after: float | None = None
            try:
                response = self._post(messages, retry)
            except _TERMINAL_TRANSPORT as exc:
                return Outcome(RejectedError(f"POST {self.url}: {exc}", status=0), attempts)
            except httpx.HTTPError as exc:  # connect, read, timeout, protocol: all retried
                status, reason = None, f"{type(exc).__name__}: {exc}"
            else:
                status = response.status_code
                if 200 <= status < 300:
                    return Outcome(None, attempts)
                if status == 413 and len(messages) > 1:
                    return self._split(messages, sleep, attempts)
                reason = _describe(response)
                if not is_retryable_status(status):
                    return Outcome(RejectedError(f"POST {self.url}: {reason}", status=status,
                                                 body=response.text[:2000]), attempts)
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if retry == self.policy.max_retries:
                break
            delay = self.policy.delay(retry + 1, retry_after, self._rng)
            log.debug("nerve.sdk: %s; retry %d in %.2fs", reason, retry + 1, delay)
            if not sleep(delay):
                break
        return Outcome(DeliveryError(
            f"POST {self.url}: {len(messages)} events undelivered after {attempts} "
            f"attempt(s); last: {reason}", status=status, attempts=attempts), attempts)

    def _split(self, messages: list[bytes], sleep: Callable[[float], bool],
               attempts: int) -> Outcome:
        half = len(messages) // 2
        halves = (messages[:half], messages[half:])
        outcomes = [self.send(part, sleep=sleep) for part in halves]
        total = attempts + sum(o.attempts for o in outcomes)
        # each part keeps its own outcome, so that a delivered half is not reported lost
        parts = tuple(part for outcome, events in zip(outcomes, halves, strict=True)
                      for part in (outcome.parts or ((len(events), outcome.error),)))
        # the worse outcome speaks for the batch: undelivered > rejected > delivered
        for kind in (DeliveryError, RejectedError):
            for outcome in outcomes:
                if isinstance(outcome.error, kind):
                    return Outcome(outcome.error, total, parts)
        return Outcome(None, total, parts)


def _describe(response: httpx.Response) -> str:
    """``HTTP 400 bad_request: <message>`` from the server's JSON error, else the text."""
    text = response.text.strip()
    detail = text[:300]
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if isinstance(payload, dict) and "message" in payload:
        detail = f"{payload.get('code', '')}: {payload['message']}".strip(": ")
    return f"HTTP {response.status_code}" + (f" {detail}" if detail else "")
