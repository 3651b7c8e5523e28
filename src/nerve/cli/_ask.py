"""``nerve ask`` and ``nerve mcp``: thin shells over ``nerve.agent`` and ``nerve.mcp``."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any

import typer

from nerve.cli._common import (
    Format,
    FormatOption,
    emit,
    emit_json,
    err_console,
    handle_errors,
    load_workspace,
    working,
)
from nerve.errors import UserError

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    app.command("ask")(ask)
    app.command("mcp")(mcp)


@handle_errors
def ask(
    ctx: typer.Context,
    question: Annotated[str, typer.Argument(help="A question in plain English, quoted.",
                                            show_default=False)],
    llm: Annotated[bool, typer.Option(
        "--llm/--no-llm", help="Let the configured LLM (\\[agent] llm_url) plan and phrase; "
                               "--no-llm forces the offline planner.")] = True,
    unmasked: Annotated[bool, typer.Option(
        "--unmasked", help="Show personal values as stored. By default the agent (and the "
        "LLM it may call) sees them masked, as a reader's token does (docs/privacy.md).")
    ] = False,
    fmt: FormatOption = Format.table,
) -> None:
    """Answer a question from the metrics, funnels, checks and experiments, offline.

    The answer gives the numbers with their period and filters, the drivers of a change
    for why-questions, data-quality caveats, and the exact queries it ran. Every number
    comes from a query; when nerve lacks the data it says so and names the closest
    metrics. --format json: answer, plan, numbers (value and query), caveats, queries;
    --format csv: the numbers, one row each (label, value, text, query, tool).

    Example: nerve ask "why did sales drop last week?"
    """
    from nerve.agent import ask_local  # noqa: PLC0415
    from nerve.cli._remote import answer, running_server  # noqa: PLC0415

    ws = load_workspace(ctx)
    body = {"question": question, "llm": llm}
    served = running_server(ws) is not None
    with working("answering: querying the warehouse"):
        result = answer(ws, "/v1/ask", body, lambda wh: ask_local(wh, ws, body),
                        masked=not unmasked)
    if served and llm:
        _unused_llm(result)
    if fmt is Format.json:
        emit_json(result)
    elif fmt is Format.csv:
        emit(result["numbers"], fmt)
    else:
        _print(result)
    if not result.get("answered", True):  # declined: FAILED in every format, for scripts
        raise typer.Exit(1)


def _unused_llm(result: dict[str, Any]) -> None:
    """A running ``nerve serve`` answers with the LLM of its own environment: say so when
    this shell names one (``NERVE_LLM_URL``) that did not answer, rather than let an
    offline answer pass for the LLM's."""
    import os  # noqa: PLC0415

    url = os.environ.get("NERVE_LLM_URL")
    model = os.environ.get("NERVE_LLM_MODEL")
    source = str(result.get("source") or "offline")
    if not url or (source.startswith("llm:") and (not model or source == f"llm:{model}")):
        return
    result.setdefault("caveats", []).append(
        f"the running nerve serve answered (source: {source}): it uses the LLM set in its "
        f"own environment and nerve.toml, not NERVE_LLM_URL={url} from this shell; set it "
        "where nerve serve runs, or ask while no server runs")


def _print(result: dict[str, Any]) -> None:
    from rich.console import Console  # noqa: PLC0415

    out = Console(soft_wrap=True, highlight=False)  # queries stay on one line
    out.print(result["answer"], markup=False)
    if result.get("caveats"):
        out.print("\n[bold]Caveats[/bold]")
        for caveat in result["caveats"]:
            out.print(f"  - {caveat}", markup=False)
    if result.get("queries"):
        out.print("\n[bold]Queries[/bold] (nerve ask --format json for the SQL)")
        for q in result["queries"]:
            out.print(f"  $ {q.get('command') or q['tool']}", markup=False)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _no_readers(host: str, port: int, unmasked: bool) -> None:
    """HTTP without ``[[readers]]`` has no authentication: refused beyond loopback (any
    host that reaches the port would call the tools), a warning on loopback (any local
    user or program can)."""
    if not _loopback(host):
        raise UserError(
            f"nerve mcp --transport http --host {host}: nerve.toml has no [[readers]], so "
            f"anyone who reaches {host}:{port} would call its tools"
            + (" and see personal values as stored" if unmasked else "")
            + ", and the audit log could not say who. Add a reader to nerve.toml:\n\n"
            "  [[readers]]\n  name = \"agent\"\n  role = \"reader\"\n"
            "  token_env = \"NERVE_TOKEN_AGENT\"\n\n"
            "then `export NERVE_TOKEN_AGENT=$(openssl rand -hex 24)` before nerve mcp, and "
            "give the agent that token (Authorization: Bearer ...); or serve on 127.0.0.1 "
            "(docs/ask.md#mcp-server)")
    err_console.print(
        f"warning: nerve mcp has no authentication: any user or program on this machine "
        f"that reaches {host}:{port} calls its tools"
        + (", and sees personal values as stored (--unmasked)" if unmasked else "")
        + "; the audit log records their reads as this server's. Add [[readers]] with "
        "tokens to nerve.toml to require one (docs/ask.md#mcp-server)",
        highlight=False, markup=False, soft_wrap=True)


@handle_errors
def mcp(
    ctx: typer.Context,
    transport: Annotated[str, typer.Option(
        help="stdio (an MCP client starts nerve) or http (streamable HTTP on "
             "127.0.0.1:PORT/mcp).")] = "stdio",
    port: Annotated[int, typer.Option(help="Port for --transport http.")] = 8765,
    host: Annotated[str, typer.Option(
        help="Address for --transport http (beyond loopback it needs [[readers]]).")
    ] = "127.0.0.1",
    unmasked: Annotated[bool, typer.Option(
        "--unmasked", help="Let agents see personal values as stored. By default they see "
        "them masked, as a reader's token does (docs/privacy.md).")] = False,
) -> None:
    """Serve nerve's read-only tools over the Model Context Protocol.

    Tools: list_metrics, describe_metric, list_events, describe_event, query_metrics,
    run_funnel, explain_change, data_health, experiment_results, ask. Register it in an
    MCP client with the command `nerve --workspace DIR mcp` (docs/ask.md). Agents see
    personal values (user ids, personal traits and properties) masked by keyed hashes,
    with every figure unchanged.

    Over HTTP, when nerve.toml has [[readers]], every request must carry one of their
    tokens (Authorization: Bearer ...): each agent then reads as that reader, masked as
    their entry says, and the audit log names them. Without [[readers]] it serves on
    loopback only (--host elsewhere is refused): there is no authentication.

    Example: nerve mcp --transport http --port 8765
    """
    from nerve.mcp import build_server  # noqa: PLC0415
    from nerve.server._readers import load_readers  # noqa: PLC0415

    ws = load_workspace(ctx)
    if transport not in ("stdio", "http"):
        raise UserError(f"--transport: expected stdio or http, got {transport!r}")
    # stdio: the client starts nerve as its own user, who may read the file anyway
    readers = load_readers(ws, None) if transport == "http" else {}
    if readers and unmasked:
        raise UserError("--unmasked: nerve.toml has [[readers]], so each agent sees what its "
                        "reader's entry allows (personal = \"visible\" shows values as "
                        "stored); leave --unmasked out")
    if transport == "http" and not readers:
        _no_readers(host, port, unmasked)
    server = build_server(ws, host=host, port=port, masked=not unmasked, readers=readers)
    server.run("stdio" if transport == "stdio" else "streamable-http")
