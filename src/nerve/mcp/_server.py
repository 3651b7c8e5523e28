"""The MCP server: nerve's read-only tools for any agent (Claude Desktop, IDEs...).

Built with the official MCP Python SDK (``mcp``, FastMCP); the only module that imports
it. Every tool goes through the same door as the CLI: to ``nerve serve``'s
``/v1/ask/tool`` while the server holds the warehouse, else to the warehouse file opened
read-only for that one call (so the MCP server never holds a lock between calls).

Over HTTP, with ``[[readers]]`` in nerve.toml, every request carries one of their bearer
tokens (the SDK's own bearer authentication, through ``ReaderTokens``), and each call
reads as that reader: masked as their entry says, audited under their name. A request or
a tool call refused before it reached nerve is audited too (``nerve.mcp._audit``).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

import anyio.to_thread
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.fastmcp import FastMCP
from mcp.server.fastmcp.exceptions import ToolError
from mcp.server.lowlevel.server import request_ctx
from mcp.types import ContentBlock, ToolAnnotations
from pydantic import AnyHttpUrl, ValidationError
from starlette.applications import Starlette

from nerve import __version__
from nerve._arguments import arguments_of, check_arguments
from nerve.audit import Audit, audit_dir, os_user
from nerve.errors import QueryError, did_you_mean
from nerve.mcp._audit import RecordRefusals, quiet_disconnects, reached, tool_call
from nerve.server._readers import INVALID, Reader, identify
from nerve.workspace import Workspace

__all__ = ["ReaderTokens", "build_server", "call"]

_READ_ONLY = ToolAnnotations(readOnlyHint=True, destructiveHint=False, idempotentHint=True,
                             openWorldHint=False)


class ReaderTokens:
    """The MCP SDK's ``TokenVerifier`` over nerve.toml's ``[[readers]]`` tokens (token ->
    reader, ``nerve.server._readers.load_readers``), compared in constant time."""

    def __init__(self, readers: Mapping[str, Reader]) -> None:
        self.readers = dict(readers)

    async def verify_token(self, token: str) -> AccessToken | None:
        reader = identify(self.readers, f"Bearer {token}")
        if reader is None or reader is INVALID:
            return None
        return AccessToken(token=token, client_id=reader.name, scopes=[reader.role])


def call(ws: Workspace, tool: str, args: dict[str, Any], *, masked: bool = True,
         reader: tuple[str, str] | None = None, client: str | None = None
         ) -> dict[str, Any]:
    """Run one read-only tool on ``ws``'s data (through the server when it runs), with
    personal values masked as a reader sees them unless ``masked`` is false; as
    ``reader`` (name, token) when one asked (``nerve.cli._remote.answer``), from the
    agent's address ``client`` (recorded when the read is on the file)."""
    from nerve.agent import tool_local  # noqa: PLC0415
    from nerve.cli._remote import answer  # noqa: PLC0415

    body = {"tool": tool, "args": {k: v for k, v in args.items() if v is not None}}
    reached()  # recorded by answer(), through the server or on the file
    result: dict[str, Any] = answer(ws, "/v1/ask/tool", body,
                                    lambda wh: tool_local(wh, ws, body),
                                    masked=masked, reader=reader, client=client)["result"]
    return result


class _NerveMCP(FastMCP):
    """FastMCP, with the calls it refuses audited: a tool call refused before a tool
    ran (an unknown tool, arguments that do not fit), and over HTTP a request refused
    by the bearer authentication (``RecordRefusals``)."""

    def __init__(self, ws: Workspace, readers: Mapping[str, Reader], masked: bool,
                 **settings: Any) -> None:
        super().__init__("nerve", **settings)
        self.nerve_audit = Audit(audit_dir(ws))
        self.nerve_readers = dict(readers)
        self.nerve_masked = masked

    def caller(self) -> tuple[bool, tuple[str, str] | None]:
        """(masked, (name, token)) of the reader this request authenticated as."""
        access = get_access_token()
        if not self.nerve_readers or access is None:
            return self.nerve_masked, None
        reader = self.nerve_readers[access.token]
        return reader.masked, (reader.name, access.token)

    @staticmethod
    def client() -> str | None:
        """The address of the agent whose HTTP request this tool call answers (None over
        stdio), for the audit log's ``client``."""
        try:
            request = request_ctx.get().request
        except LookupError:
            return None
        peer = getattr(request, "client", None)
        return str(peer.host) if peer is not None else None

    async def call_tool(self, name: str, arguments: dict[str, Any]
                        ) -> Sequence[ContentBlock] | dict[str, Any]:
        started = time.monotonic()
        flag = tool_call()
        tool = self._tool_manager.get_tool(name)
        try:
            if tool is not None:
                # the SDK drops an argument a tool does not take: a misspelt filter
                # would be answered for everyone
                check_arguments(name, tool.parameters, arguments)
            return await super().call_tool(name, arguments)
        except Exception as exc:
            if flag[0]:
                raise
            # refused before a tool ran: nothing else records it
            masked, reader = self.caller()
            status = "invalid_arguments" if tool else "unknown_tool"
            await anyio.to_thread.run_sync(partial(
                self.nerve_audit.record, via="mcp" if reader else "local",
                who=reader[0] if reader else os_user(), action="/v1/ask/tool",
                request={"tool": name, "args": arguments}, status=status,
                seconds=time.monotonic() - started, masked=masked, client=self.client()))
            raise ToolError(self._refusal(name, tool, exc, arguments)) from exc

    def _refusal(self, name: str, tool: Any, exc: Exception, arguments: dict[str, Any]
                 ) -> str:
        """Why a call was refused before its tool ran, in words: the argument that does
        not fit and what the tool takes, where the SDK gave pydantic's own report
        (``1 validation error for describe_metricArguments ... errors.pydantic.dev``)."""
        if tool is None:
            tools = [t.name for t in self._tool_manager.list_tools()]
            return (f"unknown tool {name!r}{did_you_mean(name, tools)}; tools: "
                    f"{', '.join(tools)}")
        cause = exc.__cause__ if isinstance(exc, ToolError) else exc
        if isinstance(cause, ValidationError):
            problems, said = [], set()
            properties = tool.parameters.get("properties", {})
            for error in cause.errors():
                where = str(error["loc"][0]) + "".join(f"[{p}]" for p in error["loc"][1:])
                kinds = _kinds(properties.get(error["loc"][0], {}))
                if len(kinds) > 1:  # one problem per argument, not one per type it may be
                    arg = str(error["loc"][0])
                    if arg not in said:
                        said.add(arg)
                        problems.append(f"argument {arg!r} = {arguments.get(arg)!r}: "
                                        f"input should be {' or '.join(kinds)}")
                elif error["type"] == "missing":
                    problems.append(f"argument {where!r} is required")
                else:
                    problems.append(f"argument {where!r} = {error['input']!r}: "
                                    f"{error['msg'][:1].lower()}{error['msg'][1:]}")
            return (f"Error executing tool {name}: {'; '.join(problems)}; {name} takes "
                    f"{arguments_of(tool.parameters)}")
        return f"Error executing tool {name}: {exc}" if isinstance(exc, QueryError) \
            else str(exc)

    def streamable_http_app(self) -> Starlette:
        quiet_disconnects()
        app = super().streamable_http_app()
        if self.nerve_readers:
            app.add_middleware(RecordRefusals, audit=self.nerve_audit,
                               readers=self.nerve_readers)
        return app


def _kinds(schema: dict[str, Any]) -> list[str]:
    """What an argument of a union type may be, in words (``a string``, ``a list of
    strings``), for a refusal; one or none for any other argument."""
    words = {"string": "a string", "integer": "an integer", "number": "a number",
             "boolean": "true or false", "object": "an object"}
    kinds = []
    for member in schema.get("anyOf", []):
        kind = member.get("type")
        if kind == "array":
            item = member.get("items", {}).get("type")
            kinds.append(f"a list of {item}s" if item else "a list")
        elif kind in words:
            kinds.append(words[kind])
    return kinds


def build_server(ws: Workspace, *, host: str = "127.0.0.1", port: int = 8765,
                 masked: bool = True, readers: Mapping[str, Reader] | None = None
                 ) -> FastMCP:
    """A FastMCP server over ``ws`` with nerve's tools (run with ``.run(transport)``); its
    agents see personal values masked unless ``masked`` is false.

    With ``readers`` (token -> reader), HTTP requests need one of their bearer tokens,
    and each call reads as that reader (``masked`` then does not apply)."""
    verifier = ReaderTokens(readers) if readers else None
    server = _NerveMCP(
        ws, readers or {}, masked, host=host, port=port, log_level="WARNING",
        token_verifier=verifier,
        # the tokens are nerve.toml's, not an OAuth server's: no metadata to publish
        # (the SDK requires an issuer; without an OAuth server it is never shown)
        auth=AuthSettings(issuer_url=AnyHttpUrl("http://localhost"),
                          resource_server_url=None) if verifier else None,
        instructions=(
            "Product telemetry from nerve: metrics of the semantic layer (list_metrics, "
            "query_metrics), cataloged events, funnels, explanations of changes, data "
            "health and experiment readouts. All tools are read-only. Quote numbers only "
            "from tool results; each query result carries the SQL that produced it."))
    # FastMCP takes no version and the low-level server then reports the SDK's own
    # (serverInfo.version '1.x'): a client should see which nerve answers it
    server._mcp_server.version = __version__

    caller = server.caller

    def run(name: str, args: dict[str, Any]) -> dict[str, Any]:
        hidden, reader = caller()
        return call(ws, name, args, masked=hidden, reader=reader, client=server.client())

    def tool(func: Any) -> Any:
        @functools.wraps(func)
        async def threaded(*args: Any, **kwargs: Any) -> Any:
            # a query takes seconds: in a thread, so the server answers other agents (and
            # the SDK's own pings) meanwhile; the SDK runs a plain function in its loop
            return await anyio.to_thread.run_sync(partial(func, *args, **kwargs))

        return server.tool(annotations=_READ_ONLY)(threaded)

    @tool
    def list_metrics() -> dict[str, Any]:
        """Every metric (name, label, description, synonyms), dimensions and segments."""
        return run("list_metrics", {})

    @tool
    def describe_metric(name: str) -> dict[str, Any]:
        """One metric by name or synonym: formula, events read, owner, format."""
        return run("describe_metric", {"name": name})

    @tool
    def list_events() -> dict[str, Any]:
        """Every cataloged event with its description."""
        return run("list_events", {})

    @tool
    def describe_event(name: str) -> dict[str, Any]:
        """One cataloged event: what it tracks, its properties, the metrics that read it."""
        return run("describe_event", {"name": name})

    @tool
    def query_metrics(metrics: list[str], by: list[str] | str | None = None,
                      grain: str | None = None, where: str | None = None,
                      segments: list[str] | None = None, since: str | None = None,
                      until: str | None = None, order_by: list[str] | None = None,
                      limit: int | None = None) -> dict[str, Any]:
        """Compute metrics: rows, the SQL that ran, lineage. by: a dimension or a list of
        them; grain: hour|day|week|month; since/until: YYYY-MM-DD (until included),
        'yesterday' or '7d'; where: a filter such as "platform = 'ios' and age >= 65"."""
        return run("query_metrics", {
            "metrics": metrics, "by": by, "grain": grain, "where": where,
            "segments": segments, "since": since, "until": until, "order_by": order_by,
            "limit": limit})

    @tool
    def run_funnel(steps: list[str], by: str | list[str] | None = None,
                   since: str | None = None, until: str | None = None,
                   window: str = "1d") -> dict[str, Any]:
        """A funnel over cataloged events in order: entities reaching each step. by: one
        dimension or property (a string, or a list of one)."""
        return run("run_funnel", {"steps": steps, "by": by, "since": since,
                                       "until": until, "window": window})

    @tool
    def explain_change(target: str, period: str = "7d", vs: str = "previous",
                       where: str | None = None, by: str | list[str] | None = None
                       ) -> dict[str, Any]:
        """Why a metric or event count changed: drivers by dimension, related events and
        data-quality caveats. period: yesterday, last_week, 7d or YYYY-MM-DD..YYYY-MM-DD;
        where: only the events matching a filter such as "platform = 'android'"; by: the
        only breakdowns to look at (a dimension or a list of them)."""
        return run("explain_change", {"target": target, "period": period, "vs": vs,
                                      "where": where, "by": by})

    @tool
    def data_health(event: str | None = None) -> dict[str, Any]:
        """The latest data-quality checks: status and every problem (optionally one event)."""
        return run("data_health", {"event": event})

    @tool
    def experiment_results(key: str) -> dict[str, Any]:
        """An experiment's readout: decision; lift, interval and p-value per metric."""
        return run("experiment_results", {"key": key})

    @tool
    def ask(question: str) -> dict[str, Any]:
        """nerve's own answer to a plain-language question, with its numbers and queries."""
        from nerve.agent import ask_local  # noqa: PLC0415
        from nerve.cli._remote import answer  # noqa: PLC0415

        body = {"question": question, "llm": False}
        hidden, reader = caller()
        reached()
        return answer(ws, "/v1/ask", body, lambda wh: ask_local(wh, ws, body),
                      masked=hidden, reader=reader)

    return server
