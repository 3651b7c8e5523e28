"""``nerve mcp`` with the official MCP SDK's own client: stdio (a subprocess, as Claude
Desktop runs it) and streamable HTTP on a loopback port. Numbers are checked against
SQL on the warehouse file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

# anyio loads its subprocess module lazily, and pytest rewrites it (anyio is a pytest
# plugin) when stdio_client first opens a process, while other threads of the worker may
# parse too: CPython 3.11's parser failed on that once in CI ("AST constructor recursion
# depth mismatch"). Loaded here, at collection, it is parsed before any thread runs.
from anyio import open_process  # noqa: F401
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult
from tests.agent.conftest import orders_on
from tests.conftest import free_port
from tests.mcp.conftest import mcp_http

from mcp import ClientSession, StdioServerParameters
from nerve.agent import Context
from nerve.errors import QueryError

TOOLS = {"list_metrics", "describe_metric", "list_events", "describe_event",
         "query_metrics", "run_funnel", "explain_change", "data_health",
         "experiment_results", "ask"}


def _json(result: CallToolResult) -> dict[str, Any]:
    assert not result.isError, result.content
    if result.structuredContent is not None:
        return dict(result.structuredContent)
    text = result.content[0].text  # type: ignore[union-attr]
    return dict(json.loads(text))


async def _exercise(session: ClientSession, root: Path, day: str) -> None:
    await session.initialize()
    listed = await session.list_tools()
    assert {t.name for t in listed.tools} == TOOLS
    assert all(t.annotations and t.annotations.readOnlyHint for t in listed.tools)
    query = next(t for t in listed.tools if t.name == "query_metrics")
    assert "metrics" in query.inputSchema["properties"]

    result = _json(await session.call_tool(
        "query_metrics", {"metrics": ["orders"], "since": day, "until": day}))
    assert result["rows"][0]["orders"] == orders_on(root, day)
    assert "purchase_complete" in result["sql"]

    event = _json(await session.call_tool("describe_event", {"name": "add_to_cart"}))
    assert "add_to_cart_rate" in event["metrics"]

    bad = await session.call_tool("query_metrics", {"metrics": ["churn"]})
    assert bad.isError
    assert "unknown metric 'churn'" in bad.content[0].text  # type: ignore[union-attr]


def test_stdio_with_the_sdk_client(demo_root: Path, demo_ctx: Context) -> None:
    day = (demo_ctx.today() - timedelta(days=1)).isoformat()
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "nerve", "--workspace", str(demo_root), "mcp"])

    async def main() -> None:
        async with stdio_client(params) as (read, write), \
                ClientSession(read, write) as session:
            await _exercise(session, demo_root, day)
            health = _json(await session.call_tool("data_health", {}))
            assert health["status"] in ("pass", "warn", "fail", "error")
            answer = _json(await session.call_tool(
                "ask", {"question": f"How many orders on {day}?"}))
            assert answer["numbers"][0]["value"] == orders_on(demo_root, day)

    anyio.run(main)


def test_streamable_http_with_the_sdk_client(demo_root: Path, demo_ctx: Context) -> None:
    day = (demo_ctx.today() - timedelta(days=1)).isoformat()

    async def main(url: str) -> None:
        async with streamable_http_client(url) as (read, write, _), \
                ClientSession(read, write) as session:
            await _exercise(session, demo_root, day)
            funnel = _json(await session.call_tool(
                "run_funnel", {"steps": ["checkout_start", "purchase_complete"]}))
            assert [r["step"] for r in funnel["rows"]] == [1, 2]
            assert funnel["rows"][1]["users"] <= funnel["rows"][0]["users"]

    with mcp_http(demo_root) as url:
        anyio.run(main, url)


def test_exported_names_and_a_bad_transport(demo_root: Path) -> None:
    import nerve.mcp

    assert nerve.mcp.__all__ == ["build_server", "call"]
    result = subprocess.run(
        [sys.executable, "-m", "nerve", "--workspace", str(demo_root), "mcp", "--transport",
         "ftp"], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 4
    assert "--transport: expected stdio or http, got 'ftp'" in result.stderr


def test_agents_see_personal_values_masked_unless_told_otherwise(demo_root: Path) -> None:
    """The demo stores user ids and keeps its shoppers' ages (``handling: keep``): an
    agent breaking orders down by user gets keyed hashes, with the same counts."""
    from nerve.mcp import call
    from nerve.workspace import Workspace

    ws = Workspace.load(demo_root)
    query = {"metrics": ["orders"], "by": ["user_id"], "order_by": ["-orders"],
             "limit": 5}
    masked, raw = call(ws, "query_metrics", query), call(ws, "query_metrics", query,
                                                         masked=False)
    assert all(r["user_id"].startswith("m:") for r in masked["rows"])
    assert all(r["user_id"].startswith("u_") for r in raw["rows"])
    assert [r["orders"] for r in masked["rows"]] == [r["orders"] for r in raw["rows"]]
    # a personal number is removed: a breakdown by it would be one empty group, so it
    # is refused, naming the field
    by_age = {"metrics": ["orders"], "by": ["user.age"]}
    with pytest.raises(QueryError, match=r"by 'user.age': user.age is personal data"):
        call(ws, "query_metrics", by_age)
    assert len(call(ws, "query_metrics", by_age, masked=False)["rows"]) > 20


def _cli_json(root: Path, *args: str) -> Any:
    done = subprocess.run([sys.executable, "-m", "nerve", "--workspace", str(root), *args,
                           "--format", "json"], capture_output=True, text=True, timeout=300,
                          check=True)
    return json.loads(done.stdout)


def test_an_agent_over_stdio_gets_the_clis_figures_and_is_told_what_they_miss(
        demo_root: Path) -> None:
    """Through the SDK's client, as Claude Desktop runs it: the server names nerve's
    version; a funnel's breakdown is the semantic layer's dimension, as ``nerve funnel
    --by`` reads it; a step the catalog lacks comes with a caveat, not bare zeros; and a
    filter on a masked personal value (the demo keeps ages) is refused, not answered
    with the zero the masked view would give; and ``ask`` keeps the question's filter, or
    declines it."""
    import nerve

    steps = ["product_view", "add_to_cart", "purchase_complete"]
    cli = _cli_json(demo_root, "funnel", *steps, "--by", "platform")
    # the whole environment: the SDK passes only a few variables by default, and the
    # server must import this nerve (PYTHONPATH), not another install
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "nerve", "--workspace", str(demo_root), "mcp"],
        env=dict(os.environ))

    async def main() -> None:
        async with stdio_client(params) as (read, write), \
                ClientSession(read, write) as session:
            init = await session.initialize()
            assert init.serverInfo.name == "nerve"
            assert init.serverInfo.version == nerve.__version__

            funnel = _json(await session.call_tool("run_funnel",
                                                   {"steps": steps, "by": "platform"}))
            pick = ("step", "platform", "users", "converted")
            assert [{k: r[k] for k in pick} for r in funnel["rows"]] == \
                [{k: r[k] for k in pick} for r in cli]
            assert {r["platform"] for r in funnel["rows"]} >= {"ios", "android", "web"}
            assert funnel["caveats"] == []

            # a misspelt step is refused with the name meant, not answered with zeros
            typo = await session.call_tool(
                "run_funnel", {"steps": ["product_view", "add_to_crat"]})
            assert typo.isError
            assert ("step 2: no event 'add_to_crat' in the catalog or the warehouse; did "
                    "you mean add_to_cart?") in typo.content[0].text  # type: ignore[union-attr]

            refused = await session.call_tool("query_metrics", {
                "metrics": ["orders"], "where": "age >= 65"})
            assert refused.isError
            text = refused.content[0].text  # type: ignore[union-attr]
            assert "age (user.age) is personal data, masked in this view" in text

            # nerve's own answer reads a stated filter as query_metrics does, and
            # declines one it cannot read rather than answer for everyone
            answer = _json(await session.call_tool(
                "ask", {"question": "orders where country is DE"}))
            assert answer["plan"]["where"] == "country = 'DE'"
            truth = _json(await session.call_tool("query_metrics", {
                "metrics": ["orders"], "where": "country = 'DE'"}))
            assert answer["numbers"][0]["value"] == truth["rows"][0]["orders"]
            declined = _json(await session.call_tool(
                "ask", {"question": "orders where coupon is SAVE10"}))
            assert (declined["answered"], declined["numbers"]) == (False, [])
            assert "did not understand 'where coupon is save10' as a filter" in \
                declined["answer"]

    anyio.run(main)


def test_an_agents_ask_ranks_by_the_metric_and_declines_a_breakdown_by_user(
        demo_root: Path) -> None:
    """``ask`` over stdio: "top 3 countries by revenue" gives query_metrics' top three,
    and a breakdown by user is declined with its words, not answered with the total."""
    params = StdioServerParameters(  # the whole environment: this nerve (PYTHONPATH)
        command=sys.executable, args=["-m", "nerve", "--workspace", str(demo_root), "mcp"],
        env=dict(os.environ))

    async def main() -> None:
        async with stdio_client(params) as (read, write), \
                ClientSession(read, write) as session:
            await session.initialize()
            top = _json(await session.call_tool(
                "ask", {"question": "top 3 countries by revenue"}))
            assert (top["answered"], top["plan"]["by"]) == (True, "country")
            truth = _json(await session.call_tool("query_metrics", {
                "metrics": ["revenue"], "by": ["country"], "order_by": ["-revenue"],
                "limit": 3}))
            assert [n["value"] for n in top["numbers"]] == \
                [r["revenue"] for r in truth["rows"]]
            for question, words in (("how many orders by user?", "by user"),
                                    ("orders by user_id", "by user id")):
                declined = _json(await session.call_tool("ask", {"question": question}))
                assert (declined["answered"], declined["numbers"]) == (False, [])
                assert declined["plan"]["ignored"] == [words]
                assert f"did not understand {words!r} as a breakdown" in \
                    declined["answer"]
                assert "too many groups" in declined["answer"]

    anyio.run(main)


def test_http_beyond_loopback_without_readers_is_refused(make_workspace: Any) -> None:
    """`nerve mcp --transport http --host 0.0.0.0 --unmasked` served personal values as
    stored to whoever reached the port, with a warning only: the transport has no tokens
    without [[readers]]. It now refuses to start, saying how to add a reader."""
    from nerve.cli._ask import _loopback

    assert all(_loopback(h) for h in ("127.0.0.1", "::1", "localhost"))
    assert not any(_loopback(h) for h in ("0.0.0.0", "192.0.2.7", "mcp.example.com"))
    ws = make_workspace()
    port = free_port()
    done = subprocess.run(
        [sys.executable, "-m", "nerve", "--workspace", str(ws.root), "mcp", "--transport",
         "http", "--host", "0.0.0.0", "--port", str(port), "--unmasked"],
        capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 4, done.stderr  # ExitCode.INVALID: fix the input
    text = " ".join(done.stderr.split())
    assert text.startswith("error: nerve mcp --transport http --host 0.0.0.0: nerve.toml "
                           "has no [[readers]]"), text
    assert f"0.0.0.0:{port}" in text
    assert "see personal values as stored" in text
    assert '[[readers]] name = "agent" role = "reader" token_env = "NERVE_TOKEN_AGENT"' \
        in text


def test_http_on_loopback_without_readers_warns_that_it_has_no_authentication(
        make_workspace: Any) -> None:
    """Loopback stays open (an agent on the same machine), but says who can call it."""
    ws = make_workspace()
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "nerve", "--workspace", str(ws.root), "mcp", "--transport",
         "http", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    # a server that prints nothing would keep readline waiting: stop it after a while
    stop = threading.Timer(60, proc.terminate)
    stop.start()
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()  # printed before the server starts
    finally:
        stop.cancel()
        proc.terminate()
        proc.wait(timeout=20)
    assert first.startswith("warning: nerve mcp has no authentication: any user or "
                            "program on this machine"), first
    assert f"127.0.0.1:{port}" in first
    assert "[[readers]]" in first
