"""Anomalies, explanations and forecasts over HTTP (docs/anomalies.md).

- ``POST /v1/anomalies``            ``Request`` fields (+ ``now``) -> ``{"about", "anomalies",
  "series_judged", "series_skipped", "points"?}``; ``nerve anomalies`` goes through here;
- ``POST /v1/anomalies/explain``    ``{"target", "period", "vs", "by", "funnel", "where",
  "now"}``;
- ``POST /v1/anomalies/forecast``   ``{"metric", "horizon", "history", "level", "now"}``;
- ``GET  /v1/anomalies/live``       the live monitor: open and recent alerts;
- ``GET  /v1/anomalies/metrics``    Prometheus text (``nerve_anomaly_alerts_total``...).

Every route needs the admin token. The live monitor starts with the first of these
requests if the server did not start it (``nerve.anomaly.start_live``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from nerve.anomaly import prometheus_text, start_live
from nerve.anomaly._service import explain_local, forecast_local, run_local
from nerve.errors import PayloadError
from nerve.server.api._common import (
    in_thread,
    json_response,
    read_json,
    readable,
    require_reader,
)

__all__ = ["routes"]


def _now(body: dict[str, Any]) -> datetime | None:
    value = body.pop("now", None)
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise PayloadError(f"now: expected an ISO 8601 time, got {value!r}",
                           code="invalid_field") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def _answer(request: Request, local: Callable[..., Any]) -> Response:
    """Run one of the ``*_local`` services on the posted body, off the event loop."""
    state, warehouse = readable(request)
    body = await read_json(request)
    now = _now(body)
    return json_response(await in_thread(
        lambda: local(warehouse, state.workspace, body, now, state.catalog)))


async def anomalies(request: Request) -> Response:
    start_live(require_reader(request))
    return await _answer(request, run_local)


async def explain(request: Request) -> Response:
    return await _answer(request, explain_local)


async def forecast(request: Request) -> Response:
    return await _answer(request, forecast_local)


async def live(request: Request) -> Response:
    state = require_reader(request)
    return json_response(start_live(state).snapshot())


async def metrics(request: Request) -> Response:
    state = require_reader(request)
    return Response(prometheus_text(start_live(state)), media_type="text/plain; version=0.0.4")


def routes() -> list[BaseRoute]:
    return [Route("/v1/anomalies", anomalies, methods=["POST"]),
            Route("/v1/anomalies/explain", explain, methods=["POST"]),
            Route("/v1/anomalies/forecast", forecast, methods=["POST"]),
            Route("/v1/anomalies/live", live, methods=["GET"]),
            Route("/v1/anomalies/metrics", metrics, methods=["GET"])]
