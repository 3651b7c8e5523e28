"""Data-quality checks over HTTP (docs/quality.md).

- ``POST /v1/admin/checks/run`` ``{"select": [...], "now": "ISO time"}``: run the checks
  on the warehouse the server holds, record them in ``check_results`` (not when ``now``
  asks for another time: that run is no news about the data's health now), and answer
  ``{"results": [...], "status": "pass|warn|fail|error"}``. ``nerve check`` goes through
  here while the server runs.
- ``GET /v1/admin/checks/latest``: the latest recorded run, same shape, and ``at``: when
  the newest of its results was recorded (null when none was).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from nerve.errors import PayloadError
from nerve.quality import HISTORY_TABLE, latest_results, run_and_record, worst
from nerve.server.api._common import (
    in_thread,
    json_response,
    known_fields,
    read_json,
    readable,
    require_admin,
)

__all__ = ["routes"]


def _body(results: list[Any]) -> dict[str, Any]:
    return {"status": str(worst([r.status for r in results])),
            "results": [r.as_dict() for r in results]}


async def run(request: Request) -> Response:
    """Run the checks now (``select`` and ``now`` optional)."""
    state = require_admin(request)
    body = known_fields(await read_json(request, empty={}), ("select", "now"))
    select = body.get("select") or []
    if not isinstance(select, list) or not all(isinstance(s, str) for s in select):
        raise PayloadError('select: expected a list of check or event names, e.g. ["volume"]',
                           code="invalid_field")
    now = None
    if body.get("now") is not None:
        try:
            now = datetime.fromisoformat(str(body["now"]))
        except ValueError as exc:
            raise PayloadError(f"now: expected an ISO 8601 time, got {body['now']!r}",
                               code="invalid_field") from exc

    def work() -> list[Any]:
        results, _ = run_and_record(state.warehouse, state.workspace, state.catalog,
                                    select=select, now=now, refuse_idle=True)
        return results

    return json_response(_body(await in_thread(work)))


async def latest(request: Request) -> Response:
    """The results of the latest recorded run."""
    _, warehouse = readable(request)
    ibis_of = getattr(warehouse, "ibis", None)
    if not callable(ibis_of):
        return json_response(_body([]))

    def work() -> dict[str, Any]:
        con = ibis_of()
        results = latest_results(con)
        at = con.table(HISTORY_TABLE).at.max().to_pyarrow().as_py() if results else None
        return {**_body(results), "at": at}  # the console says how old the health is

    return json_response(await in_thread(work))


def routes() -> list[BaseRoute]:
    return [Route("/v1/admin/checks/run", run, methods=["POST"]),
            Route("/v1/admin/checks/latest", latest, methods=["GET"])]
