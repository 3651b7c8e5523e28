"""The web console and the status it shows.

- ``GET /ui``: one static page (``nerve/server/ui/index.html``) that asks for a token and
  then reads the APIs below in the browser: the pipeline's status, the latest data
  checks, the metrics, the busiest events and the quarantine. The page holds no data;
  every figure comes through the read APIs, with the caller's token, so a reader sees
  what a reader may (personal values masked) and every read is audited.
- ``GET /v1/status``: the pipeline at a glance: the collector's counters since the
  server started, the log's backlog, the loader's totals and health, the warehouse's
  row counts and newest event, what the ``loads`` ledger says was not stored in the last
  24 h (``withheld``: consent drops by event, refused requests by status and code), the
  workspace's time zone (the days the console's date range counts), the catalog in use
  (and why an edit of events/ did not replace it: ``catalog.problems``), and the
  retention job (its last run, and why its latest scheduled run failed:
  ``retention.last_error``). A reader sees the files
  named there relative to the workspace (``events/signup.yaml:9: ...``): where the
  server keeps it is none of their business.
- ``GET /v1/quarantine``: the console's quarantine panel: the 15 events with the most
  quarantined rows, each with the first violation of its newest row (an unknown event's
  with the catalog name it most likely misspells, as ``nerve quarantine list`` has it),
  and how many events it leaves out.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from nerve import __version__
from nerve.erasure import ERASURES_TABLE, retention_enforced
from nerve.errors import QueryError, TransientError, did_you_mean
from nerve.log import StreamWriter, set_aside_files, write_problem
from nerve.server._backpressure import room_problem, warehouse_room
from nerve.server._metrics import live_collectors, pipeline_health
from nerve.server._state import NerveState
from nerve.server.api._common import for_caller, in_thread, json_response, readable
from nerve.workspace import Workspace

__all__ = ["catalog_figures", "offline_status", "quarantine_summary", "retention_figures",
           "routes", "warehouse_figures"]

_WAREHOUSE_SQL = """
SELECT (SELECT count(*) FROM events) AS events,
       (SELECT count(*) FROM quarantine) AS quarantine,
       (SELECT max(received_at) FROM events) AS last_received_at,
       (SELECT count(*) FROM events WHERE received_at >= now() - INTERVAL 1 DAY) AS events_24h
"""

_LAST_EXPIRE_SQL = f"""
SELECT erased_at, events, quarantine FROM {ERASURES_TABLE}
WHERE kind = 'expire' ORDER BY erased_at DESC LIMIT 1
"""


#: the events with the most quarantined rows; the first violation of each one's newest row
#: (rule and message from the same row), and how many events there are in all
_QUARANTINE_SQL = """
SELECT coalesce(event, type) AS event, count(*) AS n, max(quarantined_at) AS last,
       arg_max({'rule': violations->>'$[0].rule', 'message': violations->>'$[0].message'},
               quarantined_at) AS first,
       count(*) OVER () AS names
FROM quarantine GROUP BY 1 ORDER BY n DESC, event LIMIT 15
"""


@cache
def _page() -> bytes:
    return resources.files("nerve.server").joinpath("ui", "index.html").read_bytes()


async def console(request: Request) -> Response:
    """The console page; it asks for a token before it reads anything."""
    return Response(_page(), media_type="text/html; charset=utf-8",
                    headers={"cache-control": "no-cache",
                             # the page is self-contained: nothing from elsewhere may load
                             "content-security-policy": "default-src 'self'; style-src "
                             "'unsafe-inline'; script-src 'unsafe-inline'; img-src 'self' data:",
                             "referrer-policy": "no-referrer", "x-frame-options": "DENY"})


async def no_icon(request: Request) -> Response:
    """``GET /favicon.ico``: none (browsers ask for it with every page; a 404 logs an error
    in the console's developer tools)."""
    return Response(status_code=204, headers={"cache-control": "max-age=86400"})


def warehouse_figures(warehouse: Any) -> dict[str, Any]:
    """Rows in ``events`` and ``quarantine``, those received in the last 24 h, the newest."""
    counts = warehouse.query(_WAREHOUSE_SQL).to_pylist()[0]
    last = counts["last_received_at"]
    return {"events": counts["events"], "quarantine": counts["quarantine"],
            "events_24h": counts["events_24h"],
            "last_received_at": None if last is None else last.isoformat()}


def _withheld_24h(warehouse: Any) -> dict[str, Any]:
    """What the ``loads`` ledger says was not stored in the last 24 h (consent drops by
    event, refused requests by status and code), durable and from every collector
    process, as the ``withheld`` and ``refusals`` checks read it."""
    from nerve.quality import withheld_figures  # noqa: PLC0415 - Ibis only when asked

    return withheld_figures(warehouse.ibis(), time.time())


async def status(request: Request) -> Response:
    state, warehouse = readable(request)

    def work() -> dict[str, Any]:
        loader = state.loader
        totals = getattr(loader, "totals", None)
        error = getattr(loader, "last_error", None)
        behind = state.behind_since
        stream = isinstance(state.log, StreamWriter)
        return {
            "project": state.workspace.config.name,
            "timezone": state.workspace.config.timezone,
            "version": __version__,
            "url": state.url,
            "collector": pipeline_health(state.workspace),
            "log": {"kind": "jetstream" if stream else "local",
                    "backlog_bytes": state.backlog_bytes, "overloaded": state.overloaded,
                    "behind_seconds": None if behind is None else time.monotonic() - behind,
                    "write_problem": None if stream else write_problem(state.workspace),
                    "set_aside": [] if stream else set_aside(state.workspace)},
            "loader": {"loaded": totals.loaded if totals else 0,
                       "duplicates": totals.duplicates if totals else 0,
                       "quarantined": totals.quarantined if totals else 0,
                       "rejected": totals.rejected if totals else 0,
                       "failing": error is not None,
                       "last_error": None if error is None else str(error).splitlines()[0],
                       "last_load_seconds": getattr(loader, "last_load_seconds", None)},
            "warehouse": warehouse_figures(warehouse),
            "withheld": _withheld_24h(warehouse),
            "warehouse_disk": _disk_figures(
                state.workspace, None if state.warehouse_free_bytes is None else
                (state.warehouse_free_bytes, state.warehouse_needs_bytes or 0),
                short=state.short_of_room),
            "catalog": catalog_figures(state),
            "retention": retention_figures(warehouse, state.workspace, state.retention_job),
        }

    return json_response(for_caller(request, await in_thread(work)))


def quarantine_summary(warehouse: Any, catalog: Any) -> dict[str, Any]:
    """The events with the most quarantined rows (``rows``, ``last``, the ``rule`` and
    ``message`` of one violation) and how many more there are (``more``). An unknown
    event's message names the catalog event it most likely misspells, worked out here
    when someone reads it, never at ingest (as ``nerve quarantine list`` does)."""
    found = warehouse.query(_QUARANTINE_SQL).to_pylist()
    names = catalog.names()
    events = []
    for row in found:
        first = row["first"] or {}
        message = first.get("message") or ""
        if first.get("rule") == "unknown_event" and row["event"] not in catalog:
            message += did_you_mean(str(row["event"]), names)
        last = row["last"]
        events.append({"event": row["event"], "rows": row["n"],
                       "last": None if last is None else last.isoformat(),
                       "rule": first.get("rule"), "message": message})
    return {"events": events, "more": found[0]["names"] - len(found) if found else 0}


async def quarantine(request: Request) -> Response:
    state, warehouse = readable(request)
    return json_response(await in_thread(quarantine_summary, warehouse, state.catalog))


def set_aside(workspace: Workspace) -> list[str]:
    """The log's damaged or refused data kept for inspection (``nerve.log.set_aside_files``),
    as paths relative to the workspace when they are inside it."""
    root = workspace.root.resolve()
    return [str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
            for path in (p.resolve() for p in set_aside_files(workspace.log_dir))]


def retention_figures(warehouse: Any, workspace: Workspace, job: Any = None
                      ) -> dict[str, Any]:
    """The retention job: whether ``nerve serve`` runs it (``enforced``), its last run as
    the ``erasures`` table records it (the server's or a `nerve expire`'s: ``last_run``,
    ``deleted``), and on a server whether its latest scheduled run failed (``failing``,
    ``last_error``, ``failed_at``; None without a job to ask)."""
    try:
        last = warehouse.query(_LAST_EXPIRE_SQL).to_pylist()
    except QueryError:  # a warehouse made before erasures was one of its tables, read-only
        last = []
    failed_at = getattr(job, "failed_at", None)
    return {"enforced": retention_enforced(workspace),
            "last_run": last[0]["erased_at"].isoformat() if last else None,
            "deleted": {"events": last[0]["events"], "quarantine": last[0]["quarantine"]}
            if last else None,
            "failing": None if job is None else job.last_error is not None,
            "last_error": getattr(job, "last_error", None),
            "failed_at": None if failed_at is None else failed_at.isoformat()}


def _disk_figures(workspace: Workspace, room: tuple[int, int] | None,
                  short: bool | None = None) -> dict[str, Any] | None:
    """The local warehouse's disk: its free bytes, what loading the log needs there, and
    while it is short (a server's own verdict, else the figures'), why and what to do."""
    if room is None:
        return None
    short = room[0] < room[1] if short is None else short
    return {"free_bytes": room[0], "needed_bytes": room[1],
            "problem": room_problem(workspace, *room) if short else None}


def catalog_figures(state: NerveState) -> dict[str, Any]:
    """The catalog in use: its events, when it was loaded, and why the files in events/
    did not replace it at their last change (``problems``; empty when they did)."""
    loaded = datetime.fromtimestamp(state.catalog_loaded_at, UTC)
    return {"events": len(state.catalog), "loaded_at": loaded.isoformat(),
            "problems": list(state.catalog_problems)}


def offline_status(workspace: Workspace) -> dict[str, Any]:
    """``GET /v1/status``'s shape when no server runs: the workspace's files and log
    (``url`` and ``loader`` are None; the collector's counters are its last run's).
    ``warehouse`` (and ``withheld``, read from its ledger) is None on a machine of NATS
    collectors without a warehouse file: the server that loads the stream has it (an
    empty one used to be made and shown).
    While NATS is out of reach, ``log.unreachable`` says so and ``log.backlog_bytes`` is
    None: the rest is still worth seeing (it was a bare error, or a traceback)."""
    from nerve.log import StreamSettings, backlog_bytes  # noqa: PLC0415
    from nerve.warehouse import Warehouse  # noqa: PLC0415

    settings = StreamSettings.from_workspace(workspace)
    unreachable: str | None = None
    unloaded: int | None
    if settings is None:
        kind = "local"
        unloaded = backlog_bytes(workspace.log_dir) if workspace.log_dir.is_dir() else 0
    else:
        kind = "jetstream"
        unloaded, unreachable = _stream_backlog(settings)
    path = Warehouse.file_of(workspace.warehouse_url)
    figures: dict[str, Any] | None = None
    withheld: dict[str, Any] | None = None
    retention: dict[str, Any] | None = None
    collectors = live_collectors(workspace) if kind == "jetstream" else {}
    collector = pipeline_health(workspace, list(collectors.values()) if collectors else None)
    if kind == "jetstream" and path is not None and not path.exists():
        pass  # a collectors' machine: the warehouse is the loading server's, not an empty one
    else:
        if (path is not None and not path.exists()
                and path.is_relative_to(workspace.data_dir)):
            Warehouse.for_workspace(workspace).close()  # a fresh workspace: the empty tables
        with Warehouse.for_workspace(workspace, read_only=True) as warehouse:
            figures = warehouse_figures(warehouse)
            withheld = _withheld_24h(warehouse)
            retention = retention_figures(warehouse, workspace)
    return {"project": workspace.config.name, "timezone": workspace.config.timezone,
            "version": __version__, "url": None,
            "collect_only_pids": list(collectors), "collector": collector,
            "log": {"kind": kind, "backlog_bytes": unloaded, "overloaded": None,
                    "behind_seconds": None,
                    "write_problem": write_problem(workspace) if kind == "local" else None,
                    "set_aside": set_aside(workspace) if kind == "local" else [],
                    **({"unreachable": unreachable} if kind == "jetstream" else {})},
            "loader": None, "warehouse": figures, "withheld": withheld,
            "warehouse_disk": _disk_figures(workspace,
                                            warehouse_room(workspace, unloaded or 0)),
            "catalog": None, "retention": retention}


def _stream_backlog(settings: Any) -> tuple[int | None, str | None]:
    """The stream's unloaded bytes, and None; or None and why NATS did not answer."""
    from nerve.log import StreamLink  # noqa: PLC0415

    try:
        link = StreamLink(settings, name="nerve-status")
    except TransientError as exc:
        return None, str(exc)
    try:
        return link.backlog_bytes(), None
    except TimeoutError:  # it went away after the connect
        return None, (f"the NATS stream {settings.stream!r} did not answer: the connection "
                      "dropped after it was made")
    finally:
        link.close()


def routes() -> list[BaseRoute]:
    return [Route("/ui", console, methods=["GET"]),
            Route("/favicon.ico", no_icon, methods=["GET"]),
            Route("/v1/status", status, methods=["GET"]),
            Route("/v1/quarantine", quarantine, methods=["GET"])]
