"""``nerve mcp --transport http`` with ``[[readers]]``: every request carries a reader's
token, and each agent reads as that reader (masked as their entry says, audited under
their name), through ``nerve serve`` or the warehouse file. Before, the HTTP transport
had no authentication: whoever reached the port read as the MCP server's own user."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp.client.streamable_http import streamable_http_client
from tests.anomaly.conftest import load_rows
from tests.conftest import free_port
from tests.mcp.conftest import mcp_http

from mcp import ClientSession
from nerve.audit import read_records
from nerve.warehouse import Warehouse
from nerve.workspace import Workspace

READERS = """
[[readers]]
name = "ana"
token_env = "NERVE_TEST_MCP_ANA"

[[readers]]
name = "ops"
role = "admin"
token_env = "NERVE_TEST_MCP_OPS"
"""
ANA, OPS = "ana-" + "a" * 28, "ops-" + "o" * 28
CART = "name: add_to_cart\nproperties:\n  price: {type: number}\n"
METRICS = "metrics:\n  carts:\n    measure: {agg: count, event: add_to_cart}\n"
QUERY = {"metrics": ["carts"], "by": ["user_id"], "order_by": ["-carts"]}


@pytest.fixture
def shop(make_workspace: Callable[..., Workspace], monkeypatch: pytest.MonkeyPatch
         ) -> Workspace:
    monkeypatch.setenv("NERVE_TEST_MCP_ANA", ANA)
    monkeypatch.setenv("NERVE_TEST_MCP_OPS", OPS)
    ws = make_workspace({"add_to_cart.yaml": CART}, extra_toml=READERS)
    ws.metrics_dir.mkdir(exist_ok=True)
    (ws.metrics_dir / "shop.yaml").write_text(METRICS)
    at = datetime.now(UTC) - timedelta(hours=2)
    with Warehouse.for_workspace(ws) as warehouse:
        load_rows(warehouse, [{"event": "add_to_cart", "user": user, "at": at, "platform": "ios"}
                              for user in ("u_kim", "u_kim", "u_lee")])
    return ws


#: the agents' HTTP timeout: httpx's default (5 s) cut a tool call's answer on a loaded
#: machine (the MCP SDK's own client allows 30 s, and 300 s for a streamed answer)
_HTTP_TIMEOUT = httpx.Timeout(30, read=120)


def _rows(url: str, token: str) -> list[dict[str, Any]]:
    # a bounded wait: the SDK's client otherwise waits for ever on a reply that never
    # comes, and the test dies by pytest-timeout without a word of the server's
    async def main() -> list[dict[str, Any]]:
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"},
                                     timeout=_HTTP_TIMEOUT) as http, \
                streamable_http_client(url, http_client=http) as (read, write, _), \
                ClientSession(read, write, read_timeout_seconds=timedelta(seconds=90)
                              ) as session:
            await session.initialize()
            result = await session.call_tool("query_metrics", QUERY)
            assert not result.isError, result.content
            assert result.structuredContent is not None
            return list(result.structuredContent["rows"])

    return anyio.run(main)


def _refused(url: str, token: str | None) -> int:
    hello = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"}}}
    headers = {"Accept": "application/json, text/event-stream"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.post(url, json=hello, headers=headers, timeout=30).status_code


@pytest.mark.parametrize("through_server", [False, True], ids=["file", "server"])
def test_each_agent_reads_as_the_reader_its_token_names(
        shop: Workspace, serve: Callable[..., Any], through_server: bool,
        tmp_path: Path) -> None:
    if through_server:
        serve(shop)
    log = tmp_path / "mcp.log"
    with mcp_http(shop.root, stderr=log) as url:
        assert _refused(url, None) == 401
        assert _refused(url, "not-" + ANA) == 401
        try:
            masked, plain = _rows(url, ANA), _rows(url, OPS)
        except Exception as exc:  # what the MCP server said, to see why it did not answer
            raise AssertionError(f"nerve mcp's log:\n{log.read_text(errors='replace')}") \
                from exc
    # ana is a reader (masked by default); ops an admin, who sees values as stored
    assert [r["carts"] for r in masked] == [r["carts"] for r in plain] == [2, 1]
    assert all(str(r["user_id"]).startswith("m:") for r in masked)
    assert [r["user_id"] for r in plain] == ["u_kim", "u_lee"]
    reads = [(r["who"], r["masked"]) for r in read_records(shop)
             if "query_metrics" in str(r["request"]) or r["action"] == "/v1/ask/tool"]
    assert reads == [("ana", True), ("ops", False)]
    vias = {r["via"] for r in read_records(shop) if r["who"] in ("ana", "ops")}
    assert vias == ({"http"} if through_server else {"mcp"})


def test_unmasked_is_refused_when_readers_decide(shop: Workspace) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "nerve", "--workspace", str(shop.root), "mcp", "--transport",
         "http", "--port", str(free_port()), "--unmasked"],
        capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode != 0
    assert "--unmasked: nerve.toml has [[readers]]" in result.stderr


def test_a_token_the_running_server_does_not_hold_is_named_as_such(
        shop: Workspace, serve: Callable[..., Any]) -> None:
    """nerve mcp forwards the caller's token; a nerve serve started with other token
    variables refuses it, and the error says so instead of blaming server.json."""
    from nerve.errors import UserError
    from nerve.mcp import call

    serve(shop)
    with pytest.raises(UserError, match="nerve serve refused this reader's token"):
        call(shop, "list_events", {}, reader=("ana", "not-" + ANA))


def _session(url: str, token: str, calls: list[tuple[str, dict[str, Any]]]) -> list[bool]:
    """Each call's ``isError``, in one session of the SDK's client."""
    async def main() -> list[bool]:
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"},
                                     timeout=_HTTP_TIMEOUT) as http, \
                streamable_http_client(url, http_client=http) as (read, write, _), \
                ClientSession(read, write) as session:
            await session.initialize()
            return [(await session.call_tool(name, args)).isError for name, args in calls]

    return anyio.run(main)


def test_refused_requests_and_refused_tool_calls_are_audited(shop: Workspace) -> None:
    """A 401 (no token, a token nobody holds) and a tool call the SDK refuses before a
    tool runs (unknown tool, arguments that do not fit) read nothing, and are recorded
    all the same; a catalog-only tool is recorded as any other read. Before, neither
    kind of refusal left a record."""
    calls = [("list_events", {}), ("describe_metric", {"name": "carts"}),
             ("drop_everything", {}), ("describe_event", {"event": "add_to_cart"})]
    with mcp_http(shop.root) as url:
        assert _refused(url, None) == 401
        assert _refused(url, "not-" + ANA) == 401
        assert _session(url, ANA, calls) == [False, False, True, True]
    records = read_records(shop)
    # mcp_http's GETs while it waits for the server are refused too (no body to record)
    refused = [(r["via"], r["who"], r["action"], r["status"], r["request"]["method"])
               for r in records if r["status"] == 401 and r["request"] is not None]
    assert refused == [("mcp", "anonymous", "/mcp", 401, "initialize"),
                       ("mcp", "invalid token", "/mcp", 401, "initialize")]
    assert all(r["client"] == "127.0.0.1" for r in records if r["status"] == 401)
    calls_seen = [(r["who"], r["request"]["tool"], r["request"]["args"], r["status"],
                   r["masked"]) for r in records if r["action"] == "/v1/ask/tool"]
    assert calls_seen == [
        ("ana", "list_events", {}, "ok", True),
        ("ana", "describe_metric", {"name": "carts"}, "ok", True),
        ("ana", "drop_everything", {}, "unknown_tool", True),
        ("ana", "describe_event", {"event": "add_to_cart"}, "invalid_arguments", True)]
    # the agent's address, as for a refused request (tool calls recorded it as null)
    assert {r["client"] for r in records if r["action"] == "/v1/ask/tool"} == {"127.0.0.1"}


def test_a_client_that_disconnects_leaves_no_traceback_in_the_log(
        shop: Workspace, tmp_path: Path) -> None:
    """The SDK logged each session's end (its SSE stream closed under it) as an error
    with a ClosedResourceError traceback: noise in an operator's log."""
    log = tmp_path / "mcp.log"
    with mcp_http(shop.root, stderr=log) as url:
        for _ in range(2):
            assert _session(url, ANA, [("list_events", {})]) == [False]
        time.sleep(1)  # the server notices the closed streams after the client left
    text = log.read_text()
    assert "ClosedResourceError" not in text
    assert "Traceback" not in text
    assert "ERROR" not in text


def test_a_slow_tool_call_does_not_hold_up_another_agents(
        shop: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK runs a plain function on its event loop: one agent's long query held every
    other agent (and the SDK's pings) until it finished. Here the first call waits for
    the second to run; on the loop it would wait in vain."""
    import threading

    from mcp.shared.memory import create_connected_server_and_client_session

    from nerve.mcp import _server, build_server

    second_ran = threading.Event()

    def fake_call(ws: Workspace, tool: str, args: dict[str, Any], **_: Any) -> dict[str, Any]:
        if tool == "list_events":
            return {"second_ran_meanwhile": second_ran.wait(timeout=15)}
        second_ran.set()
        return {}

    monkeypatch.setattr(_server, "call", fake_call)
    seen: dict[str, Any] = {}

    async def main() -> None:
        async with create_connected_server_and_client_session(
                build_server(shop)) as session:
            async def first() -> None:
                seen.update((await session.call_tool("list_events", {})).structuredContent
                            or {})

            async with anyio.create_task_group() as group:
                group.start_soon(first)
                await anyio.sleep(0.5)  # the first call is waiting by then, or soon will be
                await session.call_tool("list_metrics", {})

    anyio.run(main)
    assert seen == {"second_ran_meanwhile": True}
