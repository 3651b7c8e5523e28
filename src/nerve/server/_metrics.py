"""Prometheus metrics: what the collector accepted, quarantined and dropped, and how fast.

Several ingest processes (``--workers N``) share one port, so the counters use
prometheus-client's **multiprocess mode**: each process writes its values to small
memory-mapped files in ``.nerve/prometheus/`` and ``GET /metrics`` (always answered by the
main process; workers forward it) adds them up. The directory is emptied when the server
starts, so counters restart at zero like any process's. Gauges that describe the
workspace rather than a process (log backlog, loader lag and totals) are computed by the
main process at scrape time.

The same counters are readable without HTTP, by ``nerve status`` or a script, with
``pipeline_health(workspace)`` (they survive the server's stop until its next start).
"""

from __future__ import annotations

import logging
import operator
import os
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from itertools import compress, filterfalse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

if TYPE_CHECKING:
    from nerve.server._state import NerveState
    from nerve.workspace import Workspace

__all__ = ["MULTIPROC_ENV", "Metrics", "metrics_dir", "metrics_endpoint",
           "pipeline_health", "prepare_metrics_dir"]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

logger = logging.getLogger("nerve.server")
#: label for events the catalog does not know: their names are client-controlled, and a
#: label per name would let any client grow the metrics without bound
UNCATALOGED = "(uncataloged)"
_CALL_TYPES = frozenset({"identify", "page", "screen", "group", "alias"})
#: envelope row fields (``nerve.envelope.ENVELOPE_FIELDS`` order) the counters read
_TYPE, _EVENT = operator.itemgetter(1), operator.itemgetter(2)
_VIOLATIONS = operator.itemgetter(-1)
_MAX_CHILDREN = 10_000
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def metrics_dir(workspace: Workspace, name: str = "prometheus") -> Path:
    """Where the server's processes keep their metric values (``.nerve/prometheus``)."""
    return workspace.data_dir / name


#: ``nerve serve --collect-only`` keeps its metrics in ``prometheus-collect-<pid>``
_COLLECT_PREFIX = "prometheus-collect-"


def _remove_dead_collectors_dirs(workspace: Workspace) -> None:
    """Remove the metrics folders of collect-only servers that are gone: one killed (or
    whose start failed) left its folder, ~2 MB, and each restart added another."""
    for folder in workspace.data_dir.glob(f"{_COLLECT_PREFIX}*"):
        pid = folder.name.removeprefix(_COLLECT_PREFIX)
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except OSError:  # alive, another user's: not ours to judge
            continue


def prepare_metrics_dir(workspace: Workspace, name: str = "prometheus") -> Path:
    """Empty the metrics folder and point prometheus-client at it (before importing it).

    Child processes inherit the environment variable, so every worker joins in.
    ``name``: a folder of its own for a server that shares the workspace folder with
    another (``nerve serve --collect-only``).
    """
    folder = metrics_dir(workspace, name)
    shutil.rmtree(folder, ignore_errors=True)
    if name.startswith(_COLLECT_PREFIX):
        _remove_dead_collectors_dirs(workspace)
    folder.mkdir(parents=True, exist_ok=True)
    os.environ[MULTIPROC_ENV] = str(folder)
    return folder


#: what prometheus-client makes a values file at first (``mmap_dict._INITIAL_MMAP_SIZE``)
_VALUES_FILE_BYTES = 1 << 20


def _allocate_value_files() -> None:
    """Give this process's counter and histogram files their disk blocks now.

    prometheus-client makes each file sparse and writes it through ``mmap``: on a full
    disk, the first write to a page with no block behind it is SIGBUS, which killed the
    process (a worker's first 503 for the full disk created its counter file). A file
    made here, zeros whose blocks are allocated, is what prometheus-client takes for a
    new one. Start-up only; the files grow (sparse again) past ~10,000 label sets.
    """
    folder = Path(os.environ[MULTIPROC_ENV])
    for kind in ("counter", "histogram"):
        try:
            fd = os.open(folder / f"{kind}_{os.getpid()}.db", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                os.posix_fallocate(fd, 0, max(os.fstat(fd).st_size, _VALUES_FILE_BYTES))
            finally:
                os.close(fd)
        except OSError as exc:  # already full: serve anyway, as before
            logger.warning("could not allocate the metrics' file on disk", extra={
                "kind": kind, "error": str(exc)})


class Metrics:
    """The collector's counters and latency histogram for one process."""

    def __init__(self, cataloged: set[str]) -> None:
        import prometheus_client as prom  # noqa: PLC0415 - after prepare_metrics_dir
        from prometheus_client import values  # noqa: PLC0415

        # call types label the events that have no name (identify, page, alias...)
        self.cataloged = frozenset(cataloged) | _CALL_TYPES
        #: multiprocess mode is chosen when prometheus-client is first imported
        self.multiprocess = values.ValueClass is not values.MutexValue
        if self.multiprocess:
            _allocate_value_files()
        # in multiprocess mode values live in files; otherwise in this private registry
        self.registry = None if self.multiprocess else prom.CollectorRegistry()
        reg: Any = self.registry
        self.accepted = prom.Counter(
            "nerve_events_accepted", "Events durably accepted, valid, by source and event",
            ["source", "event"], registry=reg)
        self.quarantined = prom.Counter(
            "nerve_events_quarantined", "Events accepted with violations (bound for the "
            "quarantine), by source and event", ["source", "event"], registry=reg)
        self.dropped = prom.Counter(
            "nerve_events_dropped", "Events not stored, by reason (consent) and event",
            ["source", "event", "reason"], registry=reg)
        self.requests = prom.Counter(
            "nerve_http_requests", "Ingest requests answered, by HTTP status",
            ["status"], registry=reg)
        self.refusals = prom.Counter(
            "nerve_http_refusals", "Requests refused, by HTTP status and error code (the "
            "answer's `code`)", ["status", "code"], registry=reg)
        self.latency = prom.Histogram(
            "nerve_ingest_request_seconds", "Time to answer an ingest request (parse, "
            "validate, protect, append, fsync)", buckets=_BUCKETS, registry=reg)
        self._children: dict[tuple[Any, str, str], Any] = {}
        self._statuses: dict[int, Any] = {}
        self._codes: dict[tuple[int, str], Any] = {}

    def recatalog(self, cataloged: list[str]) -> None:
        """Label the events of a reloaded catalog by name (``_reload``)."""
        self.cataloged = frozenset(cataloged) | _CALL_TYPES
        self._children = {}  # they hold each name's label under the old catalog

    def label(self, event: str | None) -> str:
        return event if event in self.cataloged else UNCATALOGED

    def observe(self, source: str, rows: list[tuple[Any, ...]],
                dropped: dict[tuple[str, str], int]) -> None:
        """Count one acknowledged request's envelopes (call once they are durable)."""
        # counted in C (map, filterfalse, compress, Counter): a Python loop over the rows
        # cost more than the rest of this method; calls without an event name are
        # labelled by their type
        names = Counter(map(_EVENT, rows))
        if names.pop(None, 0):
            names.update(map(_TYPE, filterfalse(_EVENT, rows)))
        invalid = Counter(row[2] or row[1] for row in compress(rows, map(_VIOLATIONS, rows)))
        for name, n in names.items():
            bad = invalid.get(name, 0)
            if n > bad:
                self._child(self.accepted, source, name).inc(n - bad)
            if bad:
                self._child(self.quarantined, source, name).inc(bad)
        for (reason, event), n in dropped.items():
            self.dropped.labels(source, self.label(event), reason).inc(n)

    def _child(self, counter: Any, source: str, event: str) -> Any:
        """``counter.labels(source, label(event))``, cached (labels() is slow)."""
        key = (counter, source, event)
        child = self._children.get(key)
        if child is None:
            child = counter.labels(source, self.label(event))
            if len(self._children) < _MAX_CHILDREN:  # event names are client-controlled
                self._children[key] = child
        return child

    def refused(self, status: int, code: str) -> None:
        """Count a request refused before it reached the ingest path (past
        ``max_connections``, or HTTP nerve could not read): its answer, not its time."""
        child = self._statuses.get(status)
        if child is None:
            child = self._statuses[status] = self.requests.labels(str(status))
        child.inc()
        self.refusal(status, code)

    def refusal(self, status: int, code: str) -> None:
        """Count a refusal by its code (``answered`` or ``refused`` counts its status)."""
        child = self._codes.get((status, code))
        if child is None:  # codes are nerve's own, a few dozen at most
            child = self._codes[status, code] = self.refusals.labels(str(status), code)
        child.inc()

    def answered(self, status: int, seconds: float) -> None:
        child = self._statuses.get(status)
        if child is None:  # a handful of statuses: labels() is slow, cache them all
            child = self._statuses[status] = self.requests.labels(str(status))
        child.inc()
        self.latency.observe(seconds)


def _registry(metrics: Metrics | None, folder: Path | None) -> Any:
    from prometheus_client import CollectorRegistry  # noqa: PLC0415
    from prometheus_client.multiprocess import MultiProcessCollector  # noqa: PLC0415

    if metrics is not None and metrics.registry is not None:
        return metrics.registry
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(folder))  # type: ignore[no-untyped-call]
    return registry


class _WorkspaceGauges:
    """Scrape-time gauges: the log's unloaded bytes, the loader's lag and totals."""

    def __init__(self, state: NerveState) -> None:
        self.state = state

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (  # noqa: PLC0415
            CounterMetricFamily,
            GaugeMetricFamily,
        )

        state = self.state
        yield GaugeMetricFamily("nerve_log_backlog_bytes",
                                "Event log bytes not yet loaded into the warehouse",
                                value=state.backlog_bytes)
        behind = state.behind_since
        yield GaugeMetricFamily("nerve_loader_lag_seconds",
                                "How long the log has had unloaded data (0: caught up)",
                                value=0.0 if behind is None else time.monotonic() - behind)
        yield GaugeMetricFamily("nerve_overloaded", "1 while ingest answers 503 (backlog, "
                                "or the warehouse's disk short of room)",
                                value=float(state.overloaded))
        if state.warehouse_free_bytes is not None:
            yield GaugeMetricFamily("nerve_warehouse_free_bytes", "Free bytes on the "
                                    "warehouse's disk", value=state.warehouse_free_bytes)
            yield GaugeMetricFamily("nerve_warehouse_short_of_room", "1 while ingest "
                                    "answers 503 because the warehouse's disk has less room "
                                    "than loading the log needs",
                                    value=float(state.short_of_room))
        loader = state.loader
        totals = getattr(loader, "totals", None)
        if totals is not None:
            family = CounterMetricFamily("nerve_loader_rows", "Rows the loader moved from "
                                         "the log, by outcome", labels=["outcome"])
            for outcome in ("loaded", "duplicates", "quarantined", "rejected"):
                family.add_metric([outcome], float(getattr(totals, outcome)))
            yield family
        yield GaugeMetricFamily("nerve_loader_failing", "1 while the loader's last attempt "
                                "failed (it retries with backoff)",
                                value=float(getattr(loader, "last_error", None) is not None))
        retention = state.retention_job
        if retention is not None:
            yield GaugeMetricFamily("nerve_retention_failing", "1 while the daily retention "
                                    "job's last run failed (rows past their retention are "
                                    "kept until a run succeeds)",
                                    value=float(retention.last_error is not None))
        seconds = getattr(loader, "last_load_seconds", None)
        if seconds is not None:
            yield GaugeMetricFamily("nerve_loader_last_load_seconds", "How long the "
                                    "loader's last load took (it rests 3x as long after a "
                                    "slow one, unless a full batch waits)", value=seconds)
        share = getattr(loader, "last_probe_share", None)
        if share is not None:
            yield GaugeMetricFamily("nerve_loader_dedup_share", "Share of the loader's last "
                                    "load spent looking for copies among the rows received "
                                    "within the dedup window that its index does not hold "
                                    "(near 1: shorten the window or grow the index)",
                                    value=share)
        indexed = getattr(loader, "dedup_index_ids", None)
        if indexed is not None:
            yield GaugeMetricFamily("nerve_loader_dedup_index_ids", "message_ids of the dedup "
                                    "window held in the loader's memory (12 bytes each)",
                                    value=indexed)


async def metrics_endpoint(request: Request) -> Response:
    """GET /metrics: Prometheus text format, every process's counters added up."""
    from prometheus_client import (  # noqa: PLC0415
        CONTENT_TYPE_LATEST,
        CollectorRegistry,
        generate_latest,
    )

    from nerve.anomaly import prometheus_collector  # noqa: PLC0415 - heavy, main process

    state: NerveState = request.app.state.nerve
    gauges = CollectorRegistry()
    gauges.register(_WorkspaceGauges(state))
    gauges.register(prometheus_collector(state))  # live anomaly alerts (nerve.anomaly)
    # this process's folder: prepare_metrics_dir named it (a collect-only server has its own)
    folder = Path(os.environ.get(MULTIPROC_ENV) or metrics_dir(state.workspace))
    counters = generate_latest(_registry(state.metrics, folder))
    return Response(counters + generate_latest(gauges), media_type=CONTENT_TYPE_LATEST)


def live_collectors(workspace: Workspace) -> dict[int, Path]:
    """The ``nerve serve --collect-only`` processes running on this workspace folder, by
    pid, with their metrics folders."""
    found = {}
    for folder in workspace.data_dir.glob(f"{_COLLECT_PREFIX}*"):
        pid = folder.name.removeprefix(_COLLECT_PREFIX)
        if pid.isdigit() and Path(f"/proc/{pid}").exists():
            found[int(pid)] = folder
    return dict(sorted(found.items()))


def pipeline_health(workspace: Workspace, folders: list[Path] | None = None
                    ) -> dict[str, Any]:
    """The collector's counters since the server last started, without HTTP.

    ``{"accepted": n, "quarantined": n, "dropped": {"consent": n}, "requests":
    {"200": n, "503": n, ...}, "refusals": {"401 unauthorized": n, ...}}`` (the refused
    requests by status and code: a wrong write key, a 400 that SDKs drop the batch on);
    all zero when no server has run. For ``nerve status``,
    the console and scripts (the quality checks judge the warehouse's rows instead).
    ``folders``: other metrics folders to add up (those of ``live_collectors``).
    """
    result: dict[str, Any] = {"accepted": 0, "quarantined": 0, "dropped": {}, "requests": {},
                              "refusals": {}}
    for folder in [metrics_dir(workspace)] if folders is None else folders:
        if folder.is_dir() and any(folder.glob("*.db")):
            _add_counters(result, folder)
    return result


def _add_counters(result: dict[str, Any], folder: Path) -> None:
    registry = _registry(None, folder)
    for family in registry.collect():
        for sample in family.samples:
            if not sample.name.endswith("_total"):
                continue
            value = int(sample.value)
            if family.name == "nerve_events_accepted":
                result["accepted"] += value
            elif family.name == "nerve_events_quarantined":
                result["quarantined"] += value
            elif family.name == "nerve_events_dropped":
                reason = sample.labels["reason"]
                result["dropped"][reason] = result["dropped"].get(reason, 0) + value
            elif family.name == "nerve_http_requests":
                status = sample.labels["status"]
                result["requests"][status] = result["requests"].get(status, 0) + value
            elif family.name == "nerve_http_refusals" and value:
                key = f"{sample.labels['status']} {sample.labels['code']}"
                result["refusals"][key] = result["refusals"].get(key, 0) + value
