"""A tool call whose arguments do not fit: refused in words, naming the argument and what
the tool takes. Before, the SDK dropped an argument a tool does not take (``filter`` for
``where``: the count of everyone came back as if filtered), and answered a wrong type
with pydantic's own report (``1 validation error for describe_metricArguments ...
errors.pydantic.dev``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest
from mcp.shared.memory import create_connected_server_and_client_session
from tests.anomaly.conftest import load_rows

from nerve.agent import TOOLS  # the HTTP door's and the LLM's
from nerve.audit import read_records
from nerve.errors import QueryError
from nerve.mcp import build_server, call
from nerve.warehouse import Warehouse
from nerve.workspace import Workspace

CART = "name: add_to_cart\nproperties:\n  price: {type: number}\n"
METRICS = ("metrics:\n  carts:\n    measure: {agg: count, event: add_to_cart}\n"
           "dimensions:\n  platform:\n    expr: context.device.type\n")


@pytest.fixture
def shop(make_workspace: Callable[..., Workspace]) -> Workspace:
    ws = make_workspace({"add_to_cart.yaml": CART})
    ws.metrics_dir.mkdir(exist_ok=True)
    (ws.metrics_dir / "shop.yaml").write_text(METRICS)
    at = datetime.now(UTC) - timedelta(hours=2)
    with Warehouse.for_workspace(ws) as warehouse:
        load_rows(warehouse, [{"event": "add_to_cart", "user": user, "at": at,
                               "platform": platform}
                              for user, platform in (("u_kim", "ios"), ("u_lee", "web"))])
    return ws


def _calls(ws: Workspace, calls: list[tuple[str, dict[str, Any]]]
           ) -> list[tuple[bool, str]]:
    """Each call's (isError, text), through the SDK's client in one session."""
    async def main() -> list[tuple[bool, str]]:
        async with create_connected_server_and_client_session(build_server(ws)) as session:
            out = []
            for name, args in calls:
                result = await session.call_tool(name, args)
                out.append((bool(result.isError),
                            result.content[0].text))  # type: ignore[union-attr]
            return out

    return anyio.run(main)


def test_an_argument_a_tool_does_not_take_is_refused_not_dropped(shop: Workspace) -> None:
    filtered = call(shop, "query_metrics", {"metrics": ["carts"],
                                            "where": "platform = 'ios'"})
    assert filtered["rows"][0]["carts"] == 1
    (misspelt, ok_text), (window, window_text), (none, none_text) = _calls(shop, [
        ("query_metrics", {"metrics": ["carts"], "filter": "platform = 'ios'"}),
        ("run_funnel", {"steps": ["add_to_cart", "add_to_cart"], "windw": "1h"}),
        ("list_events", {"verbose": True})])
    assert (misspelt, window, none) == (True, True, True)
    assert ("unknown argument 'filter'; query_metrics takes metrics (required), by, "
            "grain, where") in ok_text
    assert "unknown argument 'windw' (did you mean window?)" in window_text
    assert "list_events takes no arguments" in none_text
    # each is recorded as refused before a tool ran
    statuses = [(r["request"]["tool"], r["status"]) for r in read_records(shop)
                if r["action"] == "/v1/ask/tool"]
    assert statuses == [("query_metrics", "ok"), ("query_metrics", "invalid_arguments"),
                        ("run_funnel", "invalid_arguments"),
                        ("list_events", "invalid_arguments")]


def test_the_tools_door_for_http_and_an_llm_refuses_it_too(shop: Workspace) -> None:
    """``POST /v1/ask/tool`` (and the LLM's tool calls) run ``run_tool``: the same
    refusal there, where the argument used to be ignored as well."""
    with pytest.raises(QueryError, match=r"unknown argument 'filter'; query_metrics takes"):
        call(shop, "query_metrics", {"metrics": ["carts"], "filter": "platform = 'ios'"})


def test_a_wrong_or_missing_argument_is_said_in_words(shop: Workspace) -> None:
    results = _calls(shop, [
        ("describe_metric", {}),
        ("query_metrics", {"metrics": "carts"}),
        ("query_metrics", {"metrics": ["carts", 3]}),
        ("list_event", {})])
    assert all(error for error, _ in results)
    texts = [text for _, text in results]
    assert "argument 'name' is required; describe_metric takes name (required)" in texts[0]
    assert "argument 'metrics' = 'carts': input should be a valid list" in texts[1]
    assert "argument 'metrics[1]' = 3: input should be a valid string" in texts[2]
    assert "unknown tool 'list_event' (did you mean list_events?); tools: " in texts[3]
    for text in texts:
        assert "pydantic" not in text
        assert "Arguments" not in text  # the SDK's model names, describe_metricArguments


def _tools(ws: Workspace) -> dict[str, dict[str, Any]]:
    async def main() -> dict[str, dict[str, Any]]:
        async with create_connected_server_and_client_session(build_server(ws)) as session:
            return {t.name: t.inputSchema for t in (await session.list_tools()).tools}

    return anyio.run(main)


def test_by_is_a_string_or_a_list_of_strings_in_every_tool(shop: Workspace) -> None:
    # was: explain_change and run_funnel took only a string, query_metrics only a list;
    # an agent sending the other shape was refused ("input should be a valid string")
    for name, schema in _tools(shop).items():
        by = schema["properties"].get("by")
        if by is not None:
            assert {"type": "string"} in by["anyOf"], (name, by)
            assert {"type": "array", "items": {"type": "string"}} in by["anyOf"], (name, by)
    for tool in TOOLS.values():
        by = tool.parameters["properties"].get("by")
        assert by is None or by == {"anyOf": [{"type": "array", "items": {"type": "string"}},
                                              {"type": "string"}]}, (tool.name, by)
    steps = ["add_to_cart", "add_to_cart"]
    results = _calls(shop, [
        ("query_metrics", {"metrics": ["carts"], "by": "platform"}),
        ("query_metrics", {"metrics": ["carts"], "by": ["platform"]}),
        ("explain_change", {"target": "carts", "by": "platform"}),
        ("explain_change", {"target": "carts", "by": ["platform"]}),
        ("run_funnel", {"steps": steps, "by": "platform"}),
        ("run_funnel", {"steps": steps, "by": ["platform"]})])
    assert [error for error, _ in results] == [False] * 6, results
    texts = [json.loads(text) for _, text in results]
    assert texts[0]["rows"] == texts[1]["rows"]
    assert sorted((r["platform"], r["carts"]) for r in texts[0]["rows"]) == [
        ("ios", 1), ("web", 1)]
    assert texts[2]["drivers"] == texts[3]["drivers"]
    assert texts[4]["body"]["by"] == texts[5]["body"]["by"] == "platform"
    assert {k: v for k, v in texts[4].items() if k != "sql"} == {
        k: v for k, v in texts[5].items() if k != "sql"}


def test_a_by_of_the_wrong_shape_is_refused_in_words(shop: Workspace) -> None:
    (number, number_text), (mixed, mixed_text), (two, two_text) = _calls(shop, [
        ("query_metrics", {"metrics": ["carts"], "by": 3}),
        ("explain_change", {"target": "carts", "by": ["platform", 3]}),
        ("run_funnel", {"steps": ["add_to_cart", "add_to_cart"],
                        "by": ["platform", "price"]})])
    assert (number, mixed, two) == (True, True, True)
    assert ("argument 'by' = 3: input should be a list of strings or a string; "
            "query_metrics takes") in number_text
    assert ("argument 'by' = ['platform', 3]: input should be a string or a list of "
            "strings; explain_change takes") in mixed_text
    assert "a funnel breaks down by one dimension or property, got 2 (platform, price)" \
        in two_text
    for text in (number_text, mixed_text):
        assert "[str]" not in text
        assert "pydantic" not in text
