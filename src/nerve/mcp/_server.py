"""The MCP server: nerve's read-only tools for any agent (Claude Desktop, IDEs...).

Built with the official MCP Python SDK (``mcp``, FastMCP); the only module that imports
it. Every tool goes through the same door as the CLI: to ``nerve serve``'s
``/v1/ask/tool`` while the server holds the warehouse, else to the warehouse file opened
read-only for that one call (so the MCP server never holds a lock between calls).
"""

from __future__ import annotations

from typing import Any

from mcp.server.fastmcp import FastMCP
from mcp.types import ToolAnnotations

from nerve import __version__
from nerve.workspace import Workspace

__all__ = ["build_server", "call"]

_READ_ONLY = ToolAnnotations(readOnlyHint=True, destructiveHint=False, idempotentHint=True,
                             openWorldHint=False)


def call(ws: Workspace, tool: str, args: dict[str, Any], *, masked: bool = True
         ) -> dict[str, Any]:
    """Run one read-only tool on ``ws``'s data (through the server when it runs), with
    personal values masked as a reader sees them unless ``masked`` is false."""
    from nerve.agent import tool_local  # noqa: PLC0415
    from nerve.cli._remote import answer  # noqa: PLC0415

    body = {"tool": tool, "args": {k: v for k, v in args.items() if v is not None}}
    result: dict[str, Any] = answer(ws, "/v1/ask/tool", body,
                                    lambda wh: tool_local(wh, ws, body),
                                    masked=masked)["result"]
    return result


def build_server(ws: Workspace, *, host: str = "127.0.0.1", port: int = 8765,
                 masked: bool = True) -> FastMCP:
    """A FastMCP server over ``ws`` with nerve's tools (run with ``.run(transport)``); its
    agents see personal values masked unless ``masked`` is false."""
    server = FastMCP(
        "nerve", host=host, port=port, log_level="WARNING",
        instructions=(
            "Product telemetry from nerve: metrics of the semantic layer (list_metrics, "
            "query_metrics), cataloged events, funnels, explanations of changes, data "
            "health and experiment readouts. All tools are read-only. Quote numbers only "
            "from tool results; each query result carries the SQL that produced it."))
    # FastMCP takes no version and the low-level server then reports the SDK's own
    # (serverInfo.version '1.x'): a client should see which nerve answers it
    server._mcp_server.version = __version__

    def run(name: str, args: dict[str, Any]) -> dict[str, Any]:
        return call(ws, name, args, masked=masked)

    def tool(func: Any) -> Any:
        return server.tool(annotations=_READ_ONLY)(func)

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
    def query_metrics(metrics: list[str], by: list[str] | None = None,
                      grain: str | None = None, where: str | None = None,
                      segments: list[str] | None = None, since: str | None = None,
                      until: str | None = None, order_by: list[str] | None = None,
                      limit: int | None = None) -> dict[str, Any]:
        """Compute metrics: rows, the SQL that ran, lineage. grain: hour|day|week|month;
        since/until: YYYY-MM-DD (until included), 'yesterday' or '7d'; where: a filter
        such as "platform = 'ios' and age >= 65"."""
        return run("query_metrics", {
            "metrics": metrics, "by": by, "grain": grain, "where": where,
            "segments": segments, "since": since, "until": until, "order_by": order_by,
            "limit": limit})

    @tool
    def run_funnel(steps: list[str], by: str | None = None, since: str | None = None,
                   until: str | None = None, window: str = "1d") -> dict[str, Any]:
        """A funnel over cataloged events in order: entities reaching each step."""
        return run("run_funnel", {"steps": steps, "by": by, "since": since,
                                       "until": until, "window": window})

    @tool
    def explain_change(target: str, period: str = "7d", vs: str = "previous",
                       where: str | None = None, by: str | None = None) -> dict[str, Any]:
        """Why a metric or event count changed: drivers by dimension, related events and
        data-quality caveats. period: yesterday, last_week, 7d or YYYY-MM-DD..YYYY-MM-DD;
        where: only the events matching a filter such as "platform = 'android'"; by: the
        only breakdown to look at."""
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
        return answer(ws, "/v1/ask", body, lambda wh: ask_local(wh, ws, body),
                      masked=masked)

    return server
