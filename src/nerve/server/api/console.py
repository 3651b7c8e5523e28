"""The web console and the status it shows.

- ``GET /ui``: one static page (``nerve/server/ui/index.html``) that asks for a token and
  then reads the APIs below in the browser: the pipeline's status, the latest data
  checks, the metrics, the busiest events and the quarantine. The page holds no data;
  every figure comes through the read APIs, with the caller's token, so a reader sees
  what a reader may (personal values masked) and every read is audited.
- ``GET /v1/status``: the pipeline at a glance: the collector's counters since the
  server started, the log's backlog, the loader's totals and health, and the warehouse's
  row counts and newest event.
"""

from __future__ import annotations

import time
from functools import cache
from importlib import resources
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from nerve import __version__
from nerve.log import StreamWriter
from nerve.server._metrics import pipeline_health
from nerve.server.api._common import in_thread, json_response, readable

__all__ = ["routes"]

_WAREHOUSE_SQL = """
SELECT (SELECT count(*) FROM events) AS events,
       (SELECT count(*) FROM quarantine) AS quarantine,
       (SELECT max(received_at) FROM events) AS last_received_at,
       (SELECT count(*) FROM events WHERE received_at >= now() - INTERVAL 1 DAY) AS events_24h
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


async def status(request: Request) -> Response:
    state, warehouse = readable(request)

    def work() -> dict[str, Any]:
        loader = state.loader
        totals = getattr(loader, "totals", None)
        error = getattr(loader, "last_error", None)
        behind = state.behind_since
        counts = warehouse.query(_WAREHOUSE_SQL).to_pylist()[0]
        last = counts["last_received_at"]
        return {
            "project": state.workspace.config.name,
            "version": __version__,
            "collector": pipeline_health(state.workspace),
            "log": {"kind": "jetstream" if isinstance(state.log, StreamWriter) else "local",
                    "backlog_bytes": state.backlog_bytes, "overloaded": state.overloaded,
                    "behind_seconds": None if behind is None else time.monotonic() - behind},
            "loader": {"loaded": totals.loaded if totals else 0,
                       "duplicates": totals.duplicates if totals else 0,
                       "quarantined": totals.quarantined if totals else 0,
                       "rejected": totals.rejected if totals else 0,
                       "failing": error is not None,
                       "last_error": None if error is None else str(error).splitlines()[0],
                       "last_load_seconds": getattr(loader, "last_load_seconds", None)},
            "warehouse": {"events": counts["events"], "quarantine": counts["quarantine"],
                          "events_24h": counts["events_24h"],
                          "last_received_at": None if last is None else last.isoformat()},
        }

    return json_response(await in_thread(work))


def routes() -> list[BaseRoute]:
    return [Route("/ui", console, methods=["GET"]),
            Route("/v1/status", status, methods=["GET"])]
