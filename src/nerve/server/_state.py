"""What every request handler shares, reached as ``request.app.state.nerve``."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import uvicorn

from nerve._proxies import Networks, proxy_networks, within
from nerve.catalog import Catalog
from nerve.collector import Collector
from nerve.errors import InternalError, WorkspaceError
from nerve.server._commit import DEFAULT_MIN_INTERVAL, GroupCommit
from nerve.server._metrics import Metrics
from nerve.server._protocol import DEFAULT_HEADER_TIMEOUT, with_header_limits
from nerve.server._ratelimit import RateLimiter, rate_limiter_for
from nerve.server._readers import ADMIN, Reader
from nerve.workspace import Workspace

__all__ = [
    "BEHIND",
    "CLIENT_REFUSAL_LOG_SECONDS",
    "DEFAULT_BODY_TIMEOUT",
    "DEFAULT_MAX_CONNECTIONS",
    "LOG_FAILURE_LOG_SECONDS",
    "SHORT_OF_ROOM",
    "ClientRefusals",
    "EventLog",
    "Loader",
    "NerveState",
    "NoWarehouse",
    "Warehouse",
    "max_connections",
]

#: why ingest answers 503 while ``NerveState.overloaded``: true of a collect-only server
#: too, whose log no loading server may be reading at all
BEHIND = ("the warehouse is behind the event log: more of it than [collector] "
          "max_backlog_bytes is not loaded yet")
#: why ingest answers 503 while ``NerveState.short_of_room``
SHORT_OF_ROOM = ("the warehouse's disk has too little room left to load what the event "
                 "log holds")
#: seconds a client may take to send its request body (slow-body attacks hold memory)
DEFAULT_BODY_TIMEOUT = 30.0
#: open connections per process; uvicorn answers 503 beyond (``[collector] max_connections``)
DEFAULT_MAX_CONNECTIONS = 1000
#: while the event log cannot be written (a full disk), its error is logged at most this
#: often per process: every refused request used to write a line, to a disk often as full
LOG_FAILURE_LOG_SECONDS = 60.0
#: a request refused for its client to fix is logged at most this often per answer code
#: and process (a misconfigured client sends them all day)
CLIENT_REFUSAL_LOG_SECONDS = 60.0

logger = logging.getLogger("nerve.server")


@dataclass
class ClientRefusals:
    """Requests refused for their client to fix, said on the log: ingest's 4xx other than
    408 and 429 (a wrong write key, a message breaking the spec, a body too large), and
    analytics.js's settings fetch with an unknown write key.

    SDKs drop the batch on such an answer, and analytics-node and analytics.js report
    only `[400] Bad Request` or `[401] Unauthorized`: the answer's message, which names the
    message and the field, used to be nowhere but in the answer (and a counter). The first
    of each code is logged at once, then at most every ``CLIENT_REFUSAL_LOG_SECONDS`` with
    ``refused``, how many of that code since the last line (codes are a fixed set).
    """

    unlogged: dict[str, int] = field(default_factory=dict)
    logged_at: dict[str, float] = field(default_factory=dict)

    def refused(self, status: int, code: str, message: str, user_agent: str | None) -> None:
        refused = self.unlogged.get(code, 0) + 1
        now = time.monotonic()
        if now - self.logged_at.get(code, float("-inf")) < CLIENT_REFUSAL_LOG_SECONDS:
            self.unlogged[code] = refused
            return
        logger.warning(f"refused a request for its client to fix ({status} {code}): "
                       f"{message}", extra={
                           "status": status, "code": code, "refused": refused,
                           "user_agent": user_agent[:200] if user_agent else None})
        self.logged_at[code], self.unlogged[code] = now, 0


def max_connections(workspace: Workspace) -> int:
    """``[collector] max_connections``: concurrent connections each process serves."""
    return int(_number(workspace, workspace.config.raw.get("collector", {}), "max_connections",
                       DEFAULT_MAX_CONNECTIONS))


def uvicorn_config(app: Any, workspace: Workspace) -> uvicorn.Config:
    """How every nerve process serves HTTP (the main one and ``--workers``).

    ``proxy_headers=False``: uvicorn would otherwise take ``X-Forwarded-For`` as the
    client address for loopback peers, behind the back of ``[collector]
    trusted_proxy_header``, which alone says whose header to believe (docs/privacy.md).
    ``limit_concurrency``: past it uvicorn answers 503 at once instead of queueing memory.
    ``http``: uvicorn's httptools protocol, closing connections whose request headers
    take longer than ``[collector] header_timeout_seconds`` or grow past 64 KiB
    (``_protocol``).
    """
    section = workspace.config.raw.get("collector", {})
    header_timeout = _number(workspace, section, "header_timeout_seconds",
                            DEFAULT_HEADER_TIMEOUT)
    return uvicorn.Config(app, lifespan="on", access_log=False, log_config=None,
                          timeout_graceful_shutdown=30, server_header=False,
                          proxy_headers=False, limit_concurrency=max_connections(workspace),
                          http=with_header_limits(
                              header_timeout, workspace.config.collector.max_request_bytes))


def _number(workspace: Workspace, section: dict[str, Any], key: str, default: float) -> float:
    """A non-negative number of ``[collector]``, or WorkspaceError naming it."""
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise WorkspaceError(f"{workspace.root / 'nerve.toml'}: [collector] {key}: "
                             f"expected a number >= 0, got {value!r}")
    return float(value)


class EventLog(Protocol):
    """The durable event log, as the server uses it (``nerve.log.LogWriter``)."""

    def append(self, batch: pa.RecordBatch) -> Any:
        """Buffer a batch; it is durable only after the next ``sync()`` returns."""

    def sync(self) -> Any:
        """Group commit: when this returns, every batch appended before it is durable."""

    def close(self) -> Any: ...


class Warehouse(Protocol):
    """The read side of the warehouse (``nerve.warehouse.Warehouse``)."""

    def query(self, sql: str) -> pa.Table: ...


@dataclass(frozen=True)
class NoWarehouse:
    """The warehouse of a process that has none (a worker, a collect-only server): its
    read APIs are answered elsewhere, so a query here is a bug."""

    why: str

    def query(self, sql: str) -> pa.Table:
        raise InternalError(self.why)


class Loader(Protocol):
    """Drains the log into the warehouse on a thread (``nerve.loader.Loader``)."""

    def start(self, interval: float = ..., *, idle: bool = ...) -> Any:
        """Load in a background thread every ``interval`` seconds (``idle``: only on
        CPU time that ingest leaves)."""

    def stop(self) -> Any: ...

    def load_once(self) -> Any: ...


@dataclass
class NerveState:
    """The server's shared state: the workspace and the stages it serves.

    Read APIs (``nerve.server.api``) use ``workspace``, ``catalog``, ``warehouse`` and
    ``admin_token``; ``collector`` and ``log`` are the ingest path's.
    """

    workspace: Workspace
    catalog: Catalog
    warehouse: Warehouse
    log: EventLog
    admin_token: str
    collector: Collector = field(init=False)
    #: coalesces the ingest requests' fsyncs (group commit)
    commit: GroupCommit = field(init=False)
    loader: Loader | None = None
    #: the URL the server answers on, once bound
    url: str = ""
    #: set while the log's unloaded backlog is over its bound: ingest answers 503
    overloaded: bool = False
    #: ``[collector] trusted_proxy_header``: where a fronting proxy puts the client's IP
    proxy_header: str | None = None
    #: ``[collector] trusted_proxies``: the only peers whose header is believed (None: any)
    trusted_proxies: Networks | None = None
    #: this process's Prometheus counters (``_metrics.py``)
    metrics: Metrics | None = None
    #: unloaded log bytes at the last check, and since when (monotonic) it has been > 0
    backlog_bytes: int = 0
    #: the bound on ``backlog_bytes`` (``[collector] max_backlog_bytes``) once it is watched
    max_backlog_bytes: int | None = None
    behind_since: float | None = None
    #: the free bytes of the local warehouse's disk at the last check and what loading
    #: the log needs there (None: no local DuckDB file to look at); ingest answers 503
    #: while ``short_of_room``, as for a backlog over its bound (``overloaded`` is set too)
    warehouse_free_bytes: int | None = None
    warehouse_needs_bytes: int | None = None
    short_of_room: bool = False
    short_since: float = 0.0
    #: how many processes accept events (``--workers``): each takes 1/N of a rate limit
    processes: int = 1
    #: ``[collector] rate_limit_per_second`` per source (None: no limit)
    limiter: RateLimiter | None = field(init=False, default=None)
    #: opens a fresh writer on the same log folder, to recover from a failed write
    log_factory: Callable[[], EventLog] | None = None
    #: set when the writer was closed after a failed write (a full disk): the next
    #: request reopens it, which cuts any torn frame from the segment's tail first
    log_failed: bool = False
    #: requests refused for a failed log write since its error was last logged, when
    #: that was (monotonic), and when the failures began (None: the log is writable)
    log_refused: int = 0
    log_error_logged_at: float = float("-inf")
    log_failing_since: float | None = None
    #: ingest requests refused for their client to fix, logged once a minute per code
    client_refusals: ClientRefusals = field(default_factory=ClientRefusals)
    #: ``[collector] body_timeout_seconds``: a request body slower than this gets 408
    body_timeout: float = field(init=False, default=DEFAULT_BODY_TIMEOUT)
    #: token -> who may call the read APIs (``_readers.load_readers``); empty: only the
    #: admin token
    readers: dict[str, Reader] = field(default_factory=dict)
    #: the warehouse as readers see it, personal values masked
    #: (``nerve.warehouse.MaskedWarehouse``); None: readers are refused
    reader_warehouse: Warehouse | None = None
    #: when the catalog in use was loaded (Unix seconds); ``_reload`` swaps in new ones
    catalog_loaded_at: float = field(default_factory=time.time)
    #: why the files in events/ did not load at the last change ("file:line: what"):
    #: the catalog in use is then the previous one; empty when the files are in use
    catalog_problems: list[str] = field(default_factory=list)
    #: the daily retention job (``nerve.erasure.RetentionJob``) once serving; None when
    #: ``[privacy] enforce_retention = false`` or in a process that does not load
    retention_job: Any = None

    def tokens(self) -> dict[str, Reader]:
        """Who holds which token: the readers, or at least the admin token."""
        return self.readers or {self.admin_token: ADMIN}

    def reopen_log(self) -> None:
        """A fresh writer after a failed one; raises OSError while the disk still fails."""
        assert self.log_factory is not None
        self.log = self.commit.log = self.log_factory()
        self.log_failed = False

    def log_write_failed(self, exc: OSError) -> None:
        """Note a request refused because the log could not be written: logged when the
        failures begin, then at most every ``LOG_FAILURE_LOG_SECONDS`` with how many
        requests were refused meanwhile; ``log_writable`` says when they end."""
        now = time.monotonic()
        if self.log_failing_since is None:
            self.log_failing_since = now
        self.log_refused += 1
        if now - self.log_error_logged_at >= LOG_FAILURE_LOG_SECONDS:
            logger.error("event log write failed; answering 503", extra={
                "error": str(exc), "errno": exc.errno, "refused": self.log_refused})
            self.log_error_logged_at, self.log_refused = now, 0
        if not self.log_failed:
            self.after_write_failure()

    def log_writable(self) -> None:
        """The log took a write again after ``log_write_failed``: say so, once."""
        if self.log_failing_since is not None:
            logger.info("the event log is writable again: taking events", extra={
                "refused_seconds": round(time.monotonic() - self.log_failing_since, 1)})
        self.log_failing_since, self.log_refused = None, 0
        self.log_error_logged_at = float("-inf")

    def probe_log(self) -> None:
        """Raise OSError unless the log's folder takes a request's worth of bytes, synced
        (a fresh writer writes nothing until its first append, so opening one proves
        nothing about the room left). Only a local log has a folder to probe."""
        folder = getattr(self.log, "folder", None)
        if folder is None:
            return
        path = Path(folder) / f".ready-probe-{os.getpid()}"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                left = self.collector.limits.max_request_bytes
                while left > 0:
                    left -= os.write(fd, bytes(min(left, 65536)))
                os.fsync(fd)
            finally:
                os.close(fd)
        finally:
            path.unlink(missing_ok=True)

    def after_write_failure(self) -> None:
        """Close the writer after an append or sync failed, so nothing more is appended
        after a possibly torn frame; ``reopen_log`` starts a clean segment."""
        if self.log_factory is None:
            return
        try:
            self.log.close()  # syncs what was appended whole before the failure
        except (OSError, ValueError):
            return  # still failing: keep this writer, the next failure tries again
        self.log_failed = True

    def trusts_proxy(self, peer: str | None) -> bool:
        """Whether a forwarding header from this peer is believed: only with
        ``trusted_proxy_header``, and then from ``trusted_proxies`` (any peer without it)."""
        if self.proxy_header is None:
            return False
        return self.trusted_proxies is None or within(peer, self.trusted_proxies)

    def __post_init__(self) -> None:
        self.collector = Collector(self.workspace, self.catalog)
        section = self.workspace.config.raw.get("collector", {})
        header = section.get("trusted_proxy_header")
        self.proxy_header = str(header) if header else None
        proxies = section.get("trusted_proxies")
        self.trusted_proxies = proxy_networks(proxies) if proxies is not None else None
        self.body_timeout = _number(self.workspace, section, "body_timeout_seconds",
                                   DEFAULT_BODY_TIMEOUT)
        self.limiter = rate_limiter_for(section, self.processes)
        if self.metrics is None:
            self.metrics = Metrics(set(self.catalog.names()))
        interval = _number(self.workspace, section, "commit_interval_ms",
                          DEFAULT_MIN_INTERVAL * 1000)
        self.commit = GroupCommit(self.log, min_interval=interval / 1000)

