"""The semantic layer over HTTP (admin token required, like every read API).

- ``GET  /v1/metrics``                 every metric, described
- ``GET  /v1/metrics/readiness``       what each metric needs and whether it has it
- ``GET  /v1/metrics/{name}``          one metric (name or synonym)
- ``POST /v1/metrics/query``           ``MetricQuery`` fields as JSON -> ``MetricResult``:
  ``{"rows": [...], "sql": ..., "lineage": {...}, ...}``

The metrics are read from the workspace's ``metrics/`` on every request, so an edited
file is live without a restart.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from nerve.errors import PayloadError
from nerve.governance import check_masked_filters, masked_fields_of
from nerve.semantic import MetricQuery, SemanticLayer, health_from_checks
from nerve.server.api._common import (
    for_caller,
    in_thread,
    json_response,
    known_fields,
    read_json,
    readable,
    require_reader,
)
from nerve.warehouse import analysis_events

__all__ = ["routes"]

_LIST_FIELDS = ("metrics", "by", "segments", "order_by")
_TEXT_FIELDS = ("grain", "where", "since", "until")


def _layer(state: Any) -> SemanticLayer:
    return SemanticLayer.load(state.workspace, state.catalog)


def parse_query(body: dict[str, Any]) -> MetricQuery:
    """A MetricQuery from a JSON body; PayloadError (400) naming the bad field."""
    known_fields(body, (*_LIST_FIELDS, *_TEXT_FIELDS, "limit"))
    fields: dict[str, Any] = {}
    for name in _LIST_FIELDS:
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise PayloadError(f"{name}: expected a list of strings", code="invalid_field")
        fields[name] = tuple(value)
    for name in _TEXT_FIELDS:
        value = body.get(name)
        if value is not None and not isinstance(value, str):
            raise PayloadError(f"{name}: expected a string", code="invalid_field")
        fields[name] = value
    limit = body.get("limit")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)):
        raise PayloadError("limit: expected a whole number", code="invalid_field")
    if not fields.get("metrics"):
        raise PayloadError('metrics: required, e.g. {"metrics": ["revenue"], "grain": "week"}',
                           code="missing_field")
    return MetricQuery(limit=limit, **fields)


async def list_metrics(request: Request) -> Response:
    state = require_reader(request)
    layer = await in_thread(_layer, state)
    return json_response(for_caller(request, [layer.describe(name)
                                              for name in sorted(layer.metrics)]))


async def show_metric(request: Request) -> Response:
    state = require_reader(request)
    layer = await in_thread(_layer, state)
    return json_response(for_caller(request, layer.describe(request.path_params["name"])))


async def readiness(request: Request) -> Response:
    state, warehouse = readable(request)

    def run() -> list[dict[str, Any]]:
        layer = SemanticLayer.load(state.workspace, state.catalog, strict=False)
        health = health_from_checks(warehouse.ibis()) if hasattr(warehouse, "ibis") else None
        return [r.as_dict() for r in layer.readiness(health)]

    return json_response(for_caller(request, await in_thread(run)))


async def query(request: Request) -> Response:
    state, warehouse = readable(request)
    request_query = parse_query(await read_json(request))

    def run() -> dict[str, Any]:
        layer = _layer(state)
        check_masked_filters(layer, masked_fields_of(warehouse), request_query.metrics,
                             where=request_query.where, segments=request_query.segments,
                             by=request_query.by)
        return layer.query(request_query, analysis_events(warehouse)).as_dict()

    return json_response(for_caller(request, await in_thread(run)))


def routes() -> list[BaseRoute]:
    return [
        Route("/v1/metrics", list_metrics, methods=["GET"]),
        Route("/v1/metrics/readiness", readiness, methods=["GET"]),
        Route("/v1/metrics/query", query, methods=["POST"]),
        Route("/v1/metrics/{name}", show_metric, methods=["GET"]),
    ]
