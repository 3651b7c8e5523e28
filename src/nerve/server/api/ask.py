"""Ask nerve over HTTP (admin token required, like every read API; docs/ask.md).

- ``POST /v1/ask``       ``{"question": ..., "llm": true}`` -> the answer (``answer``,
  ``plan``, ``numbers``, ``caveats``, ``queries``)
- ``POST /v1/ask/tool``  ``{"tool": "query_metrics", "args": {...}}`` -> ``{"result"}``:
  one read-only tool, as the MCP server and ``nerve ask`` call them while the server holds
  the warehouse
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from nerve.server.api._common import for_caller, in_thread, json_response, read_json, readable

__all__ = ["routes"]


async def _ask(request: Request) -> Response:
    state, warehouse = readable(request)
    body = await read_json(request)

    def work() -> dict[str, Any]:
        from nerve.agent import ask_local  # noqa: PLC0415

        return ask_local(warehouse, state.workspace, body, state.catalog)

    return json_response(for_caller(request, await in_thread(work)))


async def _tool(request: Request) -> Response:
    state, warehouse = readable(request)
    body = await read_json(request)

    def work() -> dict[str, Any]:
        from nerve.agent import tool_local  # noqa: PLC0415

        return tool_local(warehouse, state.workspace, body, state.catalog)

    return json_response(for_caller(request, await in_thread(work)))


def routes() -> list[BaseRoute]:
    return [Route("/v1/ask", _ask, methods=["POST"]),
            Route("/v1/ask/tool", _tool, methods=["POST"])]
