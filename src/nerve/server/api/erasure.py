"""Forgetting a user and enforcing retention over HTTP (docs/privacy.md).

- ``POST /v1/admin/forget`` ``{"user_ids": [...], "anonymous_ids": [...], "dry_run":
  false}``: drain the log
  into the warehouse, then delete those users' rows from ``events`` and ``quarantine``;
  answers what was deleted (counts). ``nerve forget`` goes through here while the server
  runs.
- ``POST /v1/admin/expire`` ``{"dry_run": false}``: delete the rows past their event's
  retention now (``nerve serve`` also does it daily); ``dry_run`` only counts them.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from nerve.erasure import expire_rows, forget_users
from nerve.errors import PayloadError
from nerve.server.api._common import (
    in_thread,
    json_response,
    known_fields,
    read_json,
    require_admin,
)

__all__ = ["routes"]


def _known(body: dict[str, Any], *fields: str) -> dict[str, Any]:
    """``body``, refused when it has a field the endpoint does not know: a misspelt
    ``dry_run`` (``dryRun``) used to be ignored, and the rows were deleted for real."""
    return known_fields(body, fields, note=": nothing was deleted")


def _list(body: dict[str, Any], key: str) -> list[Any]:
    value = body.get(key, [])
    if not isinstance(value, list):
        raise PayloadError(f"{key}: expected a list of ids", code="invalid_field")
    return value


def _dry_run(body: dict[str, Any]) -> bool:
    value = body.get("dry_run", False)
    if not isinstance(value, bool):
        raise PayloadError("dry_run: expected true or false", code="invalid_field")
    return value


async def forget(request: Request) -> Response:
    state = require_admin(request)
    # the record keeps how many ids a forget names, never the ids: any length will do
    body = _known(await read_json(request, limit=None), "user_ids", "anonymous_ids",
                  "dry_run")
    users, anonymous = _list(body, "user_ids"), _list(body, "anonymous_ids")
    dry_run = _dry_run(body)
    erasure = await in_thread(lambda: forget_users(state.workspace, state.loader,
                                                   user_ids=users, anonymous_ids=anonymous,
                                                   dry_run=dry_run))
    return json_response(erasure.as_dict())


async def expire(request: Request) -> Response:
    state = require_admin(request)
    body = _known(await read_json(request, empty={}), "dry_run")
    dry_run = _dry_run(body)
    erasure = await in_thread(lambda: expire_rows(state.workspace, state.catalog, state.loader,
                                                  dry_run=dry_run))
    return json_response(erasure.as_dict())


def routes() -> list[BaseRoute]:
    return [Route("/v1/admin/forget", forget, methods=["POST"]),
            Route("/v1/admin/expire", expire, methods=["POST"])]
