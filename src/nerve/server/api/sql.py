"""POST /v1/admin/sql: a read-only SQL query on the warehouse the server holds.

The CLI's ``nerve sql`` goes through here while ``nerve serve`` holds the DuckDB file.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from nerve.errors import PayloadError
from nerve.server.api._common import (
    in_thread,
    json_response,
    known_fields,
    read_json,
    readable,
)
from nerve.warehouse import result_json

__all__ = ["routes"]


async def sql(request: Request) -> Response:
    """``{"query": "SELECT ..."}`` (or ``"sql"``, not both) -> ``{"columns": [...],
    "rows": [{...}]}``."""
    _, warehouse = readable(request)
    body = known_fields(await read_json(request), ("query", "sql"))
    if "query" in body and "sql" in body:  # which one was meant? running either may mislead
        raise PayloadError("query and sql: send the SQL in one of them, not both (they are "
                           "two names of one field)", code="invalid_field")
    query = body.get("query", body.get("sql"))
    if query is not None and not isinstance(query, str):  # was "required": it is there
        field = "query" if "query" in body else "sql"
        raise PayloadError(f"{field}: expected the SQL as a string, got {query!r}",
                           code="invalid_field")
    if query is None or not query.strip():
        raise PayloadError('query: required, e.g. {"query": "SELECT count(*) FROM events"}',
                           code="missing_field")
    table = await in_thread(warehouse.query, query)
    return json_response(result_json(table))


def routes() -> list[BaseRoute]:
    return [Route("/v1/admin/sql", sql, methods=["POST"])]
