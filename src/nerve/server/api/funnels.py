"""Funnels, retention and trends over HTTP (a reader's or the admin's token).

- ``POST /v1/funnels``    a funnel body (docs/analytics.md) -> ``{"rows": [...]}``, with
  ``"users"`` too when the body asks for the list at a step
- ``POST /v1/retention``  ``{"start_event", "return_event", "grain", "periods", "mode"...}``
- ``POST /v1/trends``     ``{"event" | "metric", "measure", "grain", "since", "until"...}``

The CLI's ``nerve funnel``, ``nerve retention`` and ``nerve trend`` post the same bodies
here while ``nerve serve`` holds the warehouse. A filter on a field the catalog does not
declare is refused (400), on every view; on the masked view a filter, breakdown or held
value that reads a masked personal value is refused too (nerve.governance).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from nerve.analytics import funnel_request, retention_request, trend_request
from nerve.governance import check_masked_analysis, masked_fields_of
from nerve.server.api._common import (
    in_thread,
    json_response,
    known_fields,
    read_json,
    readable,
)
from nerve.warehouse import analysis_events

__all__ = ["FIELDS", "routes"]

#: every field each body may have (docs/analytics.md); any other is refused, naming it,
#: since a misspelt one (`windw`) was ignored and the default answered in its place
FIELDS = {
    "funnels": ("steps", "window", "order", "by", "attribution", "attribution_step", "hold",
                "exclusions", "optional", "step_windows", "since", "until", "users"),
    "retention": ("start_event", "return_event", "start_where", "return_where", "grain",
                  "periods", "mode", "since", "until"),
    "trends": ("event", "metric", "measure", "filters", "where", "grain", "since", "until",
               "compare"),
}


def _handler(kind: str, run: Callable[[Any, dict[str, Any], Any], dict[str, Any]]) -> Any:
    async def handle(request: Request) -> Response:
        state, warehouse = readable(request)
        body = known_fields(await read_json(request), FIELDS[kind])

        def work() -> dict[str, Any]:
            # a reader's filter or breakdown on a masked value would count zero or one
            # empty group: refused, naming the field (docs/privacy.md)
            check_masked_analysis(kind, body, masked_fields_of(warehouse), _layer(state),
                                  timezone=_timezone(state))
            # the warehouse's Ibis backend is per thread: take the table on this one
            return run(analysis_events(warehouse), body, state)

        return json_response(await in_thread(work))

    return handle


def _layer(state: Any) -> Callable[[], Any]:
    def load() -> Any:
        from nerve.semantic import SemanticLayer  # noqa: PLC0415 - only when asked for

        return SemanticLayer.load(state.workspace, state.catalog)

    return load


def _timezone(state: Any) -> str:
    """The workspace's time zone: days and weeks as metrics count them."""
    return str(state.workspace.config.timezone)


def routes() -> list[BaseRoute]:
    return [
        Route("/v1/funnels",
              _handler("funnels", lambda ev, body, s: funnel_request(
                  ev, body, _layer(s), timezone=_timezone(s), catalog=s.catalog)),
              methods=["POST"]),
        Route("/v1/retention",
              _handler("retention", lambda ev, body, s: retention_request(
                  ev, body, timezone=_timezone(s), catalog=s.catalog)),
              methods=["POST"]),
        Route("/v1/trends",
              _handler("trends", lambda ev, body, s: trend_request(
                  ev, body, _layer(s), timezone=_timezone(s), catalog=s.catalog)),
              methods=["POST"]),
    ]
