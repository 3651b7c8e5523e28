"""The event log on NATS JetStream: stateless collectors publish, one loader consumes.

With ``[log] url = "nats://..."`` in nerve.toml (docs/storage.md, "The log on NATS
JetStream") every collector process publishes each group-commit round to one JetStream
stream and answers 200 only once the stream has acknowledged it; the loader reads the
stream by sequence number and commits the next sequence with the rows (``log_offsets``),
then purges what it loaded. So any number of ``nerve serve --collect-only`` replicas on
other machines feed one warehouse, and a crash of any of them, of the loader or of the
NATS server loses nothing that was acknowledged.

A message is one Arrow IPC stream (schema, then batches, LZ4-compressed buffers): it
decodes on its own, whoever wrote it. NATS carries it with its own checksums, so it
needs no frame of nerve's.

The NATS client is asyncio; the log's callers are threads (the group commit's worker
thread, the loader's thread). Each ``StreamLink`` therefore runs its connection on a
loop of its own, in a daemon thread, and its methods block the calling thread only.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import re
import ssl
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
import pyarrow as pa

from nerve.errors import (
    BackpressureError,
    NerveError,
    TransientError,
    UserError,
    WorkspaceError,
)

if TYPE_CHECKING:
    from nerve.workspace import Workspace

__all__ = ["DEFAULT_MAX_BACKLOG", "DEFAULT_STREAM", "DEFAULT_SUBJECT", "KEY_BUCKET", "URL_ENV",
           "StreamLink",
           "StreamMessage", "StreamReader", "StreamSettings", "StreamWriter", "decode_message",
           "encode_message", "max_backlog"]

log = logging.getLogger("nerve.log")

DEFAULT_STREAM = "NERVE_EVENTS"
DEFAULT_SUBJECT = "nerve.events"
#: overrides ``[log] url``, so that a URL with credentials stays out of nerve.toml
URL_ENV = "NERVE_LOG_URL"
#: unloaded log bytes above which ingest answers 503 (``[collector] max_backlog_bytes``)
DEFAULT_MAX_BACKLOG = 1 << 30
#: the stream's hard cap is the backlog bound plus this: past the bound ingest already
#: answers 503 (``server/_backpressure.py``), so the cap only stops a flood in the gap
_HEADROOM = 64 << 20
#: how long a collector waits for the stream's acknowledgement of a round (seconds)
DEFAULT_ACK_TIMEOUT = 5.0
#: what a message header says its body is
FORMAT = "arrow-ipc-lz4"
#: the key-value bucket where each stream records which key its events are hashed with
KEY_BUCKET = "nerve_keys"
_IPC = pa.ipc.IpcWriteOptions(compression="lz4")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class StreamSettings:
    """``[log]`` in nerve.toml when the log is a JetStream stream."""

    url: str
    stream: str = DEFAULT_STREAM
    subject: str = DEFAULT_SUBJECT
    #: JetStream replicas of the stream (3 on a cluster: survives the loss of a node)
    replicas: int = 1
    #: the stream's byte limit; JetStream refuses publishes past it (``discard: new``)
    max_bytes: int = 1 << 30
    ack_timeout: float = DEFAULT_ACK_TIMEOUT
    #: PEM files: the CA that signed the servers' certificates (None: the system's CAs),
    #: and this client's certificate and key for servers that verify clients
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    #: where ``url`` was set, for messages: nerve.toml's line, or NERVE_LOG_URL
    url_where: str = "[log] url"

    @property
    def servers(self) -> list[str]:
        return [part.strip() for part in self.url.split(",") if part.strip()]

    @property
    def offset_key(self) -> tuple[str, str]:
        """The (writer, segment) under which the loader keeps its place in ``log_offsets``."""
        return "jetstream", self.stream

    @classmethod
    def from_workspace(cls, ws: Workspace) -> StreamSettings | None:
        """The workspace's stream settings; None when the log is the local one."""
        where = f"{ws.root / 'nerve.toml'}: [log]"
        section = ws.config.raw.get("log", {})
        if not isinstance(section, dict):
            raise WorkspaceError(f"{where}: expected a table")
        from_env = os.environ.get(URL_ENV)
        url = from_env or section.get("url", "local")
        # where the URL was set, for every message about it: the variable that overrides
        # nerve.toml, or nerve.toml's line
        if from_env:
            url_where = f"{URL_ENV} (it overrides [log] url)"
        else:
            line = ws.line_of("log", "url")
            url_where = f"{ws.root / 'nerve.toml'}{f':{line}' if line else ''}: [log] url"
        if not isinstance(url, str) or not url.strip():
            raise WorkspaceError(f"{url_where}: expected \"local\" or nats://host:port, "
                                 f"got {url!r}")
        if url.strip() == "local":
            return None
        servers = [part.strip() for part in url.split(",")]
        bad = [s for s in servers if not s.startswith(("nats://", "tls://"))]
        if bad:
            raise WorkspaceError(f"{url_where}: {_safe(bad[0])!r} is not a NATS address "
                                 "(nats://host:4222, or several separated by commas); "
                                 "\"local\" is the workspace's own log")
        stream = section.get("stream", DEFAULT_STREAM)
        if not isinstance(stream, str) or not stream or any(c in stream for c in " .*>"):
            raise WorkspaceError(f"{where} stream: a JetStream stream name without spaces, "
                                 f"dots, * or > is required, got {stream!r}")
        subject = section.get("subject", DEFAULT_SUBJECT)
        if not isinstance(subject, str) or not subject or any(c in subject for c in " *>"):
            raise WorkspaceError(f"{where} subject: a plain NATS subject (no wildcards) is "
                                 f"required, got {subject!r}")
        replicas = section.get("replicas", 1)
        if not isinstance(replicas, int) or isinstance(replicas, bool) or not 1 <= replicas <= 5:
            raise WorkspaceError(f"{where} replicas: 1 to 5, got {replicas!r}")
        timeout = section.get("ack_timeout_seconds", DEFAULT_ACK_TIMEOUT)
        if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0:
            raise WorkspaceError(f"{where} ack_timeout_seconds: a positive number, "
                                 f"got {timeout!r}")
        files = {key: _tls_file(ws, where, key, section.get(key)) for key in _TLS_FILES}
        if (files["tls_cert"] is None) != (files["tls_key"] is None):
            raise WorkspaceError(f"{where}: tls_cert and tls_key go together (the client's "
                                 "certificate and its private key)")
        return cls(url=url.strip(), stream=stream, subject=subject, replicas=replicas,
                   max_bytes=max_backlog(ws) + _HEADROOM, ack_timeout=float(timeout),
                   url_where=url_where, **files)

    def tls_context(self) -> ssl.SSLContext | None:
        """The TLS context for the connection; None without TLS settings (the client then
        uses TLS with the system's CAs when the server requires it, or a ``tls://`` URL).

        Raises UserError naming the setting whose file is not what it should be.
        """
        if self.tls_ca is None and self.tls_cert is None:
            return None
        try:
            context = ssl.create_default_context(
                cafile=str(self.tls_ca) if self.tls_ca is not None else None)
        except ssl.SSLError as exc:
            raise UserError(f"[log] tls_ca: {self.tls_ca} is not a PEM certificate: "
                            f"{exc}") from exc
        if self.tls_cert is not None and self.tls_key is not None:
            try:
                context.load_cert_chain(str(self.tls_cert), str(self.tls_key))
            except ssl.SSLError as exc:
                raise UserError(f"[log] tls_cert, tls_key: {self.tls_cert} and "
                                f"{self.tls_key} are not a PEM certificate and its private "
                                f"key: {exc}") from exc
        return context


_TLS_FILES = ("tls_ca", "tls_cert", "tls_key")


def _tls_file(ws: Workspace, where: str, key: str, value: Any) -> Path | None:
    """A TLS setting's file, relative to the workspace; WorkspaceError when it is missing."""
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise WorkspaceError(f"{where} {key}: expected the path of a PEM file, got {value!r}")
    path = ws.root / Path(value).expanduser()
    if not path.is_file():
        raise WorkspaceError(f"{where} {key}: {path} does not exist")
    return path


def max_backlog(workspace: Workspace) -> int:
    """The bound on unloaded log bytes: ``[collector] max_backlog_bytes`` (default 1 GiB)."""
    value = workspace.config.raw.get("collector", {}).get("max_backlog_bytes",
                                                           DEFAULT_MAX_BACKLOG)
    return int(value)


def _nats() -> Any:
    try:
        import nats  # noqa: PLC0415 - only workspaces whose log is on NATS need it
    except ImportError:
        raise UserError("[log] url names a NATS server, but the NATS client is not "
                        "installed: pip install 'nerve-telemetry[nats]'") from None
    return nats


class StreamLink:
    """One NATS connection on its own event loop thread, and the workspace's stream.

    Connecting checks the stream, creating it when it does not exist. An existing stream
    must keep what nerve has not loaded: limits retention without an age limit, and
    ``discard: new`` (a full stream refuses new messages instead of deleting old ones).
    Raises ``UserError`` naming the setting when it does not, or when no server answers.
    """

    def __init__(self, settings: StreamSettings, *, name: str = "nerve") -> None:
        self.settings = settings
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"{name}-nats",
                                        daemon=True)
        self._thread.start()
        self._nc: Any = None
        self._closing = False
        try:
            self._nc = self.run(self._connect(name), timeout=15)
            self.js: Any = self._nc.jetstream()
            self.run(self._ensure_stream(), timeout=15)
        except BaseException:
            self.close()
            raise
        #: the largest message the server takes (its ``max_payload``)
        self.max_payload: int = int(self._nc.max_payload)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run ``coro`` on the link's loop; its result, waiting at most ``timeout`` s."""
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    async def _connect(self, name: str) -> Any:
        nats = _nats()
        url = _safe(self.settings.url)
        tls = self.settings.tls_context()
        options: dict[str, Any] = {} if tls is None else {"tls": tls}
        try:
            # once connected, the client reconnects for ever; its first connect would too,
            # so a probe without reconnects says at once when no server answers
            probe = await nats.connect(self.settings.servers, allow_reconnect=False,
                                       connect_timeout=3, max_reconnect_attempts=1,
                                       reconnect_time_wait=0.2, error_cb=_quiet, **options)
            await probe.close()
            return await asyncio.wait_for(nats.connect(
                self.settings.servers, name=name, connect_timeout=3, allow_reconnect=True,
                max_reconnect_attempts=-1, reconnect_time_wait=0.5,
                error_cb=_quiet, disconnected_cb=self._disconnected,
                reconnected_cb=_reconnected, **options), timeout=10)
        except Exception as exc:
            raise self._connect_error(exc, url) from exc

    def _connect_error(self, exc: Exception, url: str) -> NerveError:
        """What a failed connect means: wrong credentials or TLS files are the user's to
        fix (``UserError``); a server that does not answer is an outage, worth trying
        again later (``TransientError``: the CLI exits 5, the loader retries)."""
        from nats.errors import (  # noqa: PLC0415
            AuthorizationError,
            InvalidUserCredentialsError,
            SecureConnFailedError,
            SecureConnRequiredError,
            SecureConnWantedError,
        )

        where = self.settings.url_where
        reason = str(exc) or type(exc).__name__
        if (isinstance(exc, AuthorizationError | InvalidUserCredentialsError)
                or "authorization violation" in reason.lower()):
            given = any("@" in server for server in self.settings.servers)
            what = ("the user and password, or the token, in the URL are wrong" if given
                    else "it asks for credentials and the URL has none")
            return UserError(
                f"{where}: the NATS server at {url} refused the credentials (authorization "
                f"violation): {what}. Put them in the URL as nats://user:password@host:4222 "
                f"or nats://token@host:4222, in {URL_ENV} to keep them out of nerve.toml")
        if isinstance(exc, ssl.SSLError | SecureConnFailedError | SecureConnRequiredError
                      | SecureConnWantedError):
            if isinstance(exc, ssl.SSLCertVerificationError) and self.settings.tls_ca is None:
                reason += (" (a server certificate signed by your own CA: name its PEM file "
                           "in [log] tls_ca)")
            return UserError(f"{where}: cannot reach NATS at {url}: {reason}")
        if (isinstance(exc, ConnectionResetError) and self.settings.tls_cert is None
                and self.settings.tls_ca is not None):
            # the server took the connection, then dropped it in the TLS handshake: one
            # that verifies clients does so to a client without a certificate
            return UserError(f"{where}: cannot reach NATS at {url}: {reason} (the server "
                             "closed the connection in the TLS handshake: if it verifies "
                             "clients, name this client's certificate and key in [log] "
                             "tls_cert and tls_key)")
        return TransientError(f"{where}: cannot reach NATS at {url}: {reason}; is "
                              "nats-server running there? Try again once it answers",
                              retry_after=5)

    async def _ensure_stream(self) -> None:
        from nats.errors import NoRespondersError  # noqa: PLC0415
        from nats.js.api import (  # noqa: PLC0415
            DiscardPolicy,
            RetentionPolicy,
            StorageType,
            StreamConfig,
        )
        from nats.js.errors import NotFoundError, ServiceUnavailableError  # noqa: PLC0415

        s = self.settings
        try:
            info = await self.js.stream_info(s.stream)
        except (ServiceUnavailableError, NoRespondersError) as exc:
            # nobody answers JetStream's API: a nats-server started without -js
            raise UserError(f"{s.url_where}: the NATS server at {_safe(s.url)} does not run "
                            "JetStream, which nerve's log needs: start nats-server with -js "
                            "(or a jetstream block in its configuration)") from exc
        except NotFoundError:
            await self.js.add_stream(StreamConfig(
                name=s.stream, subjects=[s.subject], storage=StorageType.FILE,
                retention=RetentionPolicy.LIMITS, discard=DiscardPolicy.NEW,
                max_bytes=s.max_bytes, num_replicas=s.replicas,
                description="nerve's event log: collectors publish, the loader purges what "
                            "it has loaded"))
            log.info("created the JetStream stream %s (subject %s)", s.stream, s.subject)
            return
        config = info.config
        problems = []
        if s.subject not in (config.subjects or []):
            problems.append(f"it does not take the subject {s.subject!r} "
                            f"(its subjects: {config.subjects})")
        if config.retention not in (None, RetentionPolicy.LIMITS):
            problems.append(f"its retention is {config.retention.value}: nerve needs limits")
        if config.discard not in (None, DiscardPolicy.NEW):
            problems.append("it discards old messages when full: unloaded events would be "
                            "lost; set discard to new")
        if config.max_age:
            problems.append(f"it deletes messages after {config.max_age:g} s, loaded or not; "
                            "remove max_age")
        if problems:
            raise UserError(f"[log] stream {s.stream!r} on {_safe(s.url)}: "
                            + "; ".join(problems))

    def agree_on_key(self, secret: bytes, who: str) -> None:
        """Check that this process pseudonymises with the key the stream's events are
        hashed with: the first process to ask records it, every later one must match.

        Every collector (and the loading server, whose ``nerve forget`` looks ids up by
        their hash) must share one key, or a user's id gets a second hash in the
        warehouse, silently. The stream keeps a fingerprint (an HMAC of a constant under
        the key: it tells keys apart and says nothing of them) under its name in the
        ``nerve_keys`` bucket. ``UserError`` when this key is another one.
        """
        fingerprint = hmac.new(secret, b"nerve: stream key", hashlib.sha256).hexdigest()[:16]
        self.run(self._agree_on_key(fingerprint, who), timeout=15)

    async def _agree_on_key(self, fingerprint: str, who: str) -> None:
        from nats.js.api import KeyValueConfig  # noqa: PLC0415
        from nats.js.errors import (  # noqa: PLC0415
            BucketNotFoundError,
            KeyDeletedError,
            KeyNotFoundError,
            KeyWrongLastSequenceError,
        )

        try:
            keys = await self.js.key_value(KEY_BUCKET)
        except BucketNotFoundError:
            keys = await self.js.create_key_value(KeyValueConfig(
                bucket=KEY_BUCKET, history=1, replicas=self.settings.replicas,
                description="which key each nerve stream's events are pseudonymised with"))
        name = self.settings.stream
        mine = orjson.dumps({"fingerprint": fingerprint, "by": who,
                             "since": datetime.now(UTC).isoformat(timespec="seconds")})
        for _ in range(3):  # recorded between our look and our write: look again
            try:
                entry = await keys.get(name)
            except (KeyNotFoundError, KeyDeletedError):
                entry = None
            if entry is None or not entry.value:
                try:
                    await keys.create(name, mine)
                except KeyWrongLastSequenceError:
                    continue
                return
            held = orjson.loads(entry.value)
            if held.get("fingerprint") == fingerprint:
                return
            raise UserError(
                f"[log] this server's key (NERVE_SECRET, else .nerve/secret.key) is not "
                f"the key the stream {name!r} is pseudonymised with (recorded by "
                f"{held.get('by')} at {held.get('since')}): the same user id or email "
                "would get another hash. Start every nerve serve of the stream with the "
                "same NERVE_SECRET (docs/storage.md). To change the key on purpose, stop "
                f"them all and delete the record first: nats kv del {KEY_BUCKET} {name}")
        raise TransientError(f"[log] stream {name!r}: could not record its key; another "
                             "server keeps recording one", retry_after=5)

    async def _disconnected(self) -> None:
        if not self._closing:
            log.warning("NATS: disconnected from %s; reconnecting (ingest answers 503 "
                        "meanwhile)", _safe(self.settings.url))

    @property
    def connected(self) -> bool:
        return bool(self._nc is not None and self._nc.is_connected)

    def stream_state(self) -> Any:
        """The stream's ``StreamState``: messages, bytes, first and last sequence."""
        return self.stream_info().state

    def stream_info(self) -> Any:
        """The stream's ``StreamInfo``: its ``state`` and when it was ``created``.

        A stream deleted while nerve runs is made again (collectors could publish nothing,
        and the loader would fail every load, until a restart): every process looks
        several times a second, so the first to look makes it."""
        from nats.js.errors import NotFoundError  # noqa: PLC0415

        try:
            return self.run(self.js.stream_info(self.settings.stream), timeout=10)
        except NotFoundError:
            log.warning("the JetStream stream %s no longer exists (deleted?): creating it "
                        "again", self.settings.stream)
            self.run(self._ensure_stream(), timeout=15)
            return self.run(self.js.stream_info(self.settings.stream), timeout=10)

    def backlog_bytes(self) -> int:
        """Bytes in the stream: what the loader has not loaded (it purges what it has)."""
        return int(self.stream_state().bytes or 0)

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        if self._nc is not None and not self._nc.is_closed:
            try:
                self.run(self._nc.drain(), timeout=10)
            except Exception:
                log.debug("closing the NATS connection failed", exc_info=True)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self._loop.close()


def _safe(url: str) -> str:
    """A URL without its credentials, for messages (its scheme kept).

    >>> _safe("nats://bob:hunter2@db:4222, tls://tok@db2:4222")
    'nats://db:4222,tls://db2:4222'
    """
    parts = (_CREDENTIALS.sub(r"\1", part.strip()) for part in url.split(","))
    return ",".join(part.split("@")[-1] if "@" in part else part for part in parts)


_CREDENTIALS = re.compile(r"^([a-z]+://)[^/]*@")


async def _quiet(exc: Exception) -> None:
    log.debug("NATS: %s", exc)


async def _reconnected() -> None:
    log.warning("NATS: reconnected")


def encode_message(batch: pa.RecordBatch) -> bytes:
    """A batch as one self-contained message: an Arrow IPC stream, LZ4 buffers."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema, options=_IPC) as writer:
        writer.write_batch(batch)
    data: bytes = sink.getvalue().to_pybytes()
    return data


def decode_message(data: bytes) -> pa.Table:
    """The batches of a message; ValueError when it is not nerve's format."""
    try:
        return pa.ipc.open_stream(pa.py_buffer(data)).read_all()
    except pa.ArrowMemoryError:
        raise
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"not an Arrow IPC stream: {exc}") from exc


@dataclass(frozen=True, slots=True)
class StreamMessage:
    """One message read from the stream: its sequence number and rows (None: it did not
    decode, ``data`` holds it)."""

    seq: int
    table: pa.Table | None
    data: bytes


class StreamWriter:
    """The log's write side (``EventLog``) on the stream: ``sync`` returns once JetStream
    has acknowledged every batch appended before it.

    A round's batch larger than the server's ``max_payload`` is split into messages that
    fit. What JetStream refuses (the stream is full, no server answers within
    ``ack_timeout``) raises ``TransientError``: ingest answers 503 with ``Retry-After``,
    and the SDKs send the batch again.
    """

    def __init__(self, settings: StreamSettings, writer_id: str,
                 link: StreamLink | None = None) -> None:
        self.settings = settings
        self.writer_id = writer_id
        self.link = link or StreamLink(settings, name=f"nerve-{writer_id}")
        self._pending: list[bytes] = []
        self._lock = threading.Lock()

    def append(self, batch: pa.RecordBatch) -> None:
        messages = self._encode(batch)
        with self._lock:
            self._pending.extend(messages)

    def _encode(self, batch: pa.RecordBatch) -> list[bytes]:
        data = encode_message(batch)
        # room for the protocol's headers: the limit is the whole message's
        if len(data) <= self.link.max_payload - 4096 or batch.num_rows <= 1:
            return [data]
        half = batch.num_rows // 2
        return self._encode(batch.slice(0, half)) + self._encode(batch.slice(half))

    def sync(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        if not pending:
            return
        if not self.link.connected:  # no server now: say so at once, not after the timeout
            raise TransientError(f"the NATS stream {self.settings.stream!r} is unreachable: "
                                 "the connection is down (reconnecting)", retry_after=2)
        timeout = self.settings.ack_timeout
        try:
            self.link.run(self._publish(pending), timeout=timeout + 1)
        except TimeoutError:
            raise TransientError(f"the NATS stream {self.settings.stream!r} did not "
                                 f"acknowledge within {timeout:g}s", retry_after=2) from None

    async def _publish(self, messages: list[bytes]) -> None:
        from nats.errors import Error as NatsError  # noqa: PLC0415
        from nats.js.errors import APIError, NoStreamResponseError  # noqa: PLC0415

        js = self.link.js
        subject, stream = self.settings.subject, self.settings.stream
        headers = {"Nerve-Format": FORMAT, "Nerve-Writer": self.writer_id}
        try:
            await asyncio.gather(*(js.publish(subject, m, timeout=self.settings.ack_timeout,
                                              stream=stream, headers=headers)
                                   for m in messages))
        except APIError as exc:
            if "maximum" in str(exc.description or ""):  # bytes or messages exceeded
                raise BackpressureError(f"the NATS stream {stream!r} is full: the loader is "
                                        "behind", retry_after=2) from exc
            raise TransientError(f"the NATS stream {stream!r} refused the events: "
                                 f"{exc.description or exc}", retry_after=2) from exc
        except NoStreamResponseError as exc:  # no stream takes the subject
            raise TransientError(f"the NATS stream {stream!r} does not exist (deleted?): "
                                 "nerve creates it again within seconds",
                                 retry_after=2) from exc
        except (NatsError, TimeoutError, OSError) as exc:
            raise TransientError(f"the NATS stream {stream!r} did not acknowledge: "
                                 f"{exc or type(exc).__name__}", retry_after=2) from exc

    def backlog_bytes(self) -> int:
        return self.link.backlog_bytes()

    def close(self) -> None:
        self.link.close()


class StreamReader:
    """The loader's side: the stream's messages in sequence order, from any sequence.

    Reads through an ephemeral pull consumer that starts at the asked sequence and acks
    nothing (the loader's place is the sequence it commits with the rows, not the
    consumer's); the consumer is made again whenever a read starts elsewhere than where
    the last one stopped, or after an error.

    The server deletes an ephemeral consumer left unused for ``INACTIVE_SECONDS`` (a
    quiet night: the loader reads nothing while the stream is empty), and an operator
    may delete it by hand. Fetching from a deleted consumer only times out, as if the
    stream had nothing more: a loader then loaded nothing again, ever. So a consumer
    unused for half that time is made again before a read, and a read that gets nothing
    although the stream holds the asked sequences makes it again once and fetches again.
    """

    #: messages asked for per fetch (a busy collector's round is ~1,000 events)
    FETCH = 64
    #: the consumer's ``inactive_threshold``: unused this long, the server deletes it
    INACTIVE_SECONDS = 300.0

    def __init__(self, link: StreamLink) -> None:
        self.link = link
        self._sub: Any = None
        self._next: int | None = None
        self._used_at = float("-inf")  # time.monotonic() of the consumer's last fetch

    def read(self, start: int, last: int, max_rows: int) -> list[StreamMessage]:
        """Messages from sequence ``start`` up to ``last`` (included), stopping once they
        hold ``max_rows`` rows; fewer when the stream has no more yet."""
        try:
            return self.link.run(self._read(start, last, max_rows), timeout=120)
        except BaseException:
            self._sub = self._next = None  # made again at the next read
            raise

    async def _read(self, start: int, last: int, max_rows: int) -> list[StreamMessage]:
        from nats.errors import TimeoutError as FetchTimeout  # noqa: PLC0415

        stale = time.monotonic() - self._used_at > self.INACTIVE_SECONDS / 2
        if self._sub is None or self._next != start or stale:
            await self._subscribe(start)
        out: list[StreamMessage] = []
        rows = 0
        remade = False
        while self._next is not None and self._next <= last and rows < max_rows:
            try:
                fetched = await self._sub.fetch(self.FETCH, timeout=2)
            except FetchTimeout:
                if out or remade:
                    break
                # nothing, though the stream holds sequences start..last: the consumer
                # is gone (deleted by the server or by hand); fetching from it again
                # would time out for ever
                log.warning("loader: the consumer on the stream %s gave nothing from "
                            "sequence %d (deleted?); making it again",
                            self.link.settings.stream, start)
                await self._subscribe(start)
                remade = True
                continue
            self._used_at = time.monotonic()
            for msg in fetched:
                seq = int(msg.metadata.sequence.stream)
                try:
                    table: pa.Table | None = decode_message(msg.data)
                except ValueError:
                    table = None
                out.append(StreamMessage(seq, table, msg.data))
                rows += 0 if table is None else table.num_rows
                self._next = seq + 1
        return out

    async def _subscribe(self, start: int) -> None:
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy  # noqa: PLC0415

        if self._sub is not None:
            try:
                await self._sub.unsubscribe()
            except Exception:
                log.debug("unsubscribing the stream reader failed", exc_info=True)
        settings = self.link.settings
        self._sub = await self.link.js.pull_subscribe(
            settings.subject, stream=settings.stream, config=ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=start,
                ack_policy=AckPolicy.NONE, inactive_threshold=self.INACTIVE_SECONDS,
                description="nerve loader (ephemeral)"))
        self._next = start
        self._used_at = time.monotonic()

    def purge_below(self, seq: int) -> None:
        """Delete the messages before ``seq`` (loaded ones) from the stream."""
        self.link.run(self.link.js.purge_stream(self.link.settings.stream, seq=seq),
                      timeout=30)
