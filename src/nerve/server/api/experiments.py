"""Experiments over HTTP.

- ``GET  /v1/experiments``          definitions for SDKs (write key or admin token)
- ``POST /v1/experiments/analyze``  ``{"key": ..., "by": null}`` -> the readout (admin token)
- ``POST /v1/experiments/plan``     ``{"key": ..., "baseline_days": 14}`` (admin token)

Definitions are read from ``experiments/`` on every request, so an edit is live.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from nerve.collector import write_key_from_header
from nerve.errors import PayloadError
from nerve.experiments import get_experiment, load_experiments
from nerve.governance import check_masked_filters, masked_fields_of, masked_text_of
from nerve.semantic import SemanticLayer
from nerve.server.api._common import (
    in_thread,
    json_response,
    nerve_state,
    read_json,
    readable,
    require_reader,
)
from nerve.warehouse import analysis_events

__all__ = ["routes"]


async def definitions(request: Request) -> Response:
    """A Basic header is read as ingest reads it (a write key, or ingest's 401 for a
    header not base64 of ``key:`` or an unknown key); any other needs a reader's token."""
    state = nerve_state(request)
    authorization = request.headers.get("authorization")
    scheme, _, _ = (authorization or "").strip().partition(" ")
    if scheme.lower() == "basic":
        key = write_key_from_header(authorization)
        if key is None:
            state.collector.authenticate_without_header(
                authorization, None, where="a reader's or the admin's token as "
                                           "`Authorization: Bearer <token>`")
        state.collector.authenticate(key)
    else:
        require_reader(request)
    found = await in_thread(load_experiments, state.workspace.root / "experiments",
                            state.workspace.config.timezone)
    return json_response([e.as_dict() for e in found.values()])


def _key(body: dict[str, Any]) -> str:
    key = body.get("key")
    if not isinstance(key, str):
        raise PayloadError('key: required, the experiment key ({"key": "..."})',
                           code="missing_field")
    return key


async def analyze(request: Request) -> Response:
    state, warehouse = readable(request)
    body = await read_json(request)
    key = _key(body)
    by = body.get("by")
    if by is not None and not isinstance(by, str):
        raise PayloadError("by: expected a dimension name", code="invalid_field")

    def run() -> dict[str, Any]:
        from nerve.experiments._run import analyze_experiment, readout_dict  # noqa: PLC0415

        exp = get_experiment(load_experiments(state.workspace.root / "experiments",
                                              state.workspace.config.timezone), key)
        layer = SemanticLayer.load(state.workspace, state.catalog)
        # on the reader's view a metric filter on a masked value would read 0 in every
        # variant, and a breakdown by a removed value one empty group: refused (400)
        check_masked_filters(layer, masked_fields_of(warehouse),
                             [metric for metric, _ in exp.metrics],
                             by=[by] if by is not None else ())
        readout = analyze_experiment(exp, layer, analysis_events(warehouse),
                                     now=datetime.now(UTC), by=by,
                                     masked_key=masked_text_of(warehouse, exp.key))
        return readout_dict(exp, readout)

    return json_response(await in_thread(run))


async def plan(request: Request) -> Response:
    state, warehouse = readable(request)
    body = await read_json(request)
    key = _key(body)
    days = body.get("baseline_days", 14)
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise PayloadError("baseline_days: expected a whole number of days", code="invalid_field")

    def run() -> dict[str, Any]:
        from nerve.experiments._plan import plan_experiment  # noqa: PLC0415

        exp = get_experiment(load_experiments(state.workspace.root / "experiments",
                                              state.workspace.config.timezone), key)
        layer = SemanticLayer.load(state.workspace, state.catalog)
        check_masked_filters(layer, masked_fields_of(warehouse), [exp.primary])
        return plan_experiment(exp, layer, analysis_events(warehouse), baseline_days=days,
                               now=datetime.now(UTC))

    return json_response(await in_thread(run))


def routes() -> list[BaseRoute]:
    return [
        Route("/v1/experiments", definitions, methods=["GET"]),
        Route("/v1/experiments/analyze", analyze, methods=["POST"]),
        Route("/v1/experiments/plan", plan, methods=["POST"]),
    ]

