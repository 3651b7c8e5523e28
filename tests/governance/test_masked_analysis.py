"""Funnels, retention and trends refuse a filter, breakdown or held value on a masked
personal value on the reader's view, instead of counting zero or one empty group.

The demo's events carry the shopper's (truncated) IP in ``context.ip``, which a reader
sees as a keyed hash, and its shoppers' ages (``user.age``), which a reader's view
removes. Before the refusal, a reader's funnel filtered on an IP counted 0 users where the
admin counts dozens, and a funnel ``by age`` gave one empty group holding everyone.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.agent.conftest import demo_root
from tests.conftest import Server

from nerve.catalog import Catalog
from nerve.errors import QueryError
from nerve.governance import check_masked_analysis
from nerve.mcp import call
from nerve.warehouse._masking import MaskedFields
from nerve.workspace import Workspace

__all__ = ["demo_root"]

STEPS = ["product_view", "add_to_cart"]
READER = "ana-" + "r" * 28
READERS = '\n[[readers]]\nname = "ana"\ntoken_env = "NERVE_TEST_TOKEN_ANA"\n'
PERSONAL = "is personal data, masked in this view"


def _groups(rows: list[dict[str, Any]]) -> list[tuple[int, int, int]]:
    """A funnel's figures per step and group, whatever the groups are called."""
    return sorted((r["step"], r["users"], r["converted"]) for r in rows)


def _top_ip(ws: Workspace) -> tuple[str, int]:
    """The IP most shoppers viewed a product from, and how many, as the admin sees it."""
    rows = call(ws, "run_funnel", {"steps": STEPS, "by": "context.ip"}, masked=False)["rows"]
    first = max((r for r in rows if r["step"] == 1), key=lambda r: r["users"])
    return first["context.ip"], first["users"]


def test_the_agents_funnel_refuses_a_masked_filter_or_breakdown(demo_root: Path) -> None:
    ws = Workspace.load(demo_root)
    ip, viewers = _top_ip(ws)
    assert viewers > 0  # what the reader's view would have counted as 0
    with pytest.raises(QueryError, match=rf"step 1 \(product_view\) filter "
                                         rf"'context.ip={ip}': context.ip {PERSONAL}"):
        call(ws, "run_funnel", {"steps": [f"product_view:context.ip={ip}", "add_to_cart"]})

    by_age = call(ws, "run_funnel", {"steps": STEPS, "by": "age"}, masked=False)["rows"]
    assert len({r["age"] for r in by_age}) > 1  # the reader's view had one empty group
    for by in ("age", "user.age"):
        with pytest.raises(QueryError, match=rf"by '{by}': .*user.age\)? {PERSONAL} "
                                             r"\(removed, as it is not text\)"):
            call(ws, "run_funnel", {"steps": STEPS, "by": by})

    # what the mask keeps right is still answered, with the admin's figures
    masked = call(ws, "run_funnel", {"steps": STEPS, "by": "context.ip"})["rows"]
    assert _groups(masked) == _groups(call(ws, "run_funnel", {"steps": STEPS,
                                                              "by": "context.ip"},
                                           masked=False)["rows"])
    top = max((r for r in masked if r["step"] == 1), key=lambda r: r["users"])
    assert top["context.ip"].startswith("m:")
    mine = call(ws, "run_funnel", {"steps": [f"product_view:context.ip={top['context.ip']}",
                                             "add_to_cart"]})["rows"]
    assert mine[0]["users"] == viewers
    plain = {"steps": STEPS, "by": "platform"}
    assert call(ws, "run_funnel", plain)["rows"] == \
        call(ws, "run_funnel", plain, masked=False)["rows"]


def test_what_each_request_reads_is_checked(demo_root: Path) -> None:
    """Held values, exclusions, retention's and trends' filters, by field syntax."""
    fields = MaskedFields(Catalog.load(demo_root / "events"))

    def refused(kind: str, body: dict[str, Any]) -> str:
        with pytest.raises(QueryError, match=PERSONAL) as info:
            check_masked_analysis(kind, body, fields)
        return str(info.value)

    assert "hold 'traits.age': traits.age (user.age)" in refused(
        "funnels", {"steps": STEPS, "hold": ["traits.age"]})
    assert "cut before its query string" in refused(
        "funnels", {"steps": STEPS, "by": "context.page.url"})
    assert "exclusion remove_from_cart filter 'user_id=u-1'" in refused(
        "funnels", {"steps": [*STEPS, "purchase_complete"],
                    "exclusions": [{"event": "remove_from_cart", "where": ["user_id=u-1"],
                                    "after": 1}]})
    assert "return_where filter 'context.device.id!=d-1'" in refused(
        "retention", {"start_event": "session_start", "return_where": ["context.device.id!=d-1"]})
    assert "filter 'context.traits.age>=65'" in refused(
        "trends", {"filters": ["context.traits.age>=65"]})
    # kept: a keyed hash held, grouped or compared with a mask; values not personal
    for kind, body in (
            ("funnels", {"steps": STEPS, "hold": ["context.device.id"], "by": "context.ip"}),
            ("funnels", {"steps": [{"event": "product_view", "where": ["user_id=m:0f"]},
                                   "add_to_cart"]}),
            ("retention", {"start_event": "session_start",
                           "start_where": ["context.device.type=ios", "price>=10"]}),
            ("trends", {"event": "product_view", "filters": ["context.ip!=m:0f"]})):
        check_masked_analysis(kind, body, fields)
    check_masked_analysis("trends", {"filters": ["context.ip=1.2.3.4"]}, None)  # admin


def _post(server: Server, path: str, body: dict[str, Any], token: str) -> httpx.Response:
    return httpx.post(server.url + path, json=body, timeout=300,
                      headers={"Authorization": f"Bearer {token}"})


def test_a_readers_funnels_retention_and_trends_refuse_masked_filters_over_http(
        demo_root: Path, tmp_path: Path, serve: Callable[..., Server],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NERVE_TEST_TOKEN_ANA", READER)
    root = tmp_path / "shop"
    shutil.copytree(demo_root, root)
    with (root / "nerve.toml").open("a") as toml:
        toml.write(READERS)
    ws = Workspace.load(root)
    ip, _ = _top_ip(ws)
    server = serve(ws)
    admin = json.loads((root / ".nerve" / "server.json").read_text())["admin_token"]

    def total(answer: httpx.Response, key: str) -> float:
        assert answer.status_code == 200, answer.text
        return sum(r[key] or 0 for r in answer.json()["rows"])

    refused = [
        ("/v1/funnels", {"steps": [f"product_view:context.ip={ip}", "add_to_cart"]},
         "users", "context.ip"),
        ("/v1/retention", {"start_event": "product_view", "start_where": [f"context.ip={ip}"],
                           "since": "30d"}, "cohort_size", "context.ip"),
        ("/v1/trends", {"event": "product_view", "filters": [f"context.ip={ip}"],
                        "since": "30d", "compare": False}, "value", "context.ip"),
        ("/v1/trends", {"metric": "orders", "where": "age >= 65", "since": "30d",
                        "compare": False}, "value", "user.age")]
    for path, body, key, field in refused:
        assert total(_post(server, path, body, admin), key) > 0, path  # the reader got 0
        answer = _post(server, path, body, READER)
        assert answer.status_code == 400, (path, answer.text)
        assert answer.json()["code"] == "query"
        assert field in answer.json()["message"]
        assert "admin token" in answer.json()["message"]

    by_age = {"steps": STEPS, "by": "age"}
    assert len({r["age"] for r in _post(server, "/v1/funnels", by_age, admin).json()["rows"]}) > 1
    for path, body in (("/v1/funnels", by_age),
                       ("/v1/ask/tool", {"tool": "run_funnel", "args": by_age})):
        answer = _post(server, path, body, READER)
        assert answer.status_code == 400, (path, answer.text)
        assert "by 'age': age (user.age)" in answer.json()["message"]

    # a breakdown by a hashed value and filters on values that are not personal: the
    # admin's figures
    by_ip = {"steps": STEPS, "by": "context.ip", "hold": ["context.device.id"]}
    assert _groups(_post(server, "/v1/funnels", by_ip, READER).json()["rows"]) == \
        _groups(_post(server, "/v1/funnels", by_ip, admin).json()["rows"])
    ios = {"event": "product_view", "filters": ["context.device.type=ios"], "since": "30d"}
    assert _post(server, "/v1/trends", ios, READER).json() == \
        _post(server, "/v1/trends", ios, admin).json()
