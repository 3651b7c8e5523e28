"""A filter on a masked personal value is refused on the reader's view, never answered.

The demo keeps its shoppers' ages (``identify.age``, ``pii: personal``, ``handling:
keep``); a reader, ``nerve ask`` and ``nerve mcp`` see them removed, so ``age >= 65``
would match nothing and read as zero orders while the admin counts many. Every read door
(the agent's tools, ``nerve ask``, the HTTP metrics and explain APIs) refuses it with the
field named, and still answers filters the mask keeps right (a non-personal dimension, a
user id compared with its mask).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import Result
from tests.agent.conftest import demo_ctx, demo_root
from tests.conftest import Server, run_nerve

from nerve.catalog import Catalog
from nerve.errors import QueryError
from nerve.mcp import call
from nerve.warehouse._masking import MaskedFields
from nerve.workspace import Workspace

__all__ = ["demo_ctx", "demo_root"]

ORDERS_65 = {"metrics": ["orders"], "where": "age >= 65"}
REFUSED = "age (user.age) is personal data, masked in this view"


def _nerve(root: Path, *args: str) -> Result:
    return run_nerve(root, *args)


def test_what_the_readers_view_masks_by_where_the_value_lives(demo_root: Path) -> None:
    fields = MaskedFields(Catalog.load(demo_root / "events"))
    assert fields.how("trait", ("age",)) == MaskedFields.DROP       # a kept number
    assert fields.how("trait", ("email",)) == MaskedFields.HASH     # a text
    assert fields.how("trait", ("age_group",)) is None              # pii: none
    assert fields.how("context", ("ip",)) == MaskedFields.HASH
    assert fields.how("context", ("traits", "age")) == MaskedFields.DROP
    assert fields.how("context", ("device", "type")) is None
    assert fields.how("column", ("user_id",)) == MaskedFields.HASH
    assert fields.how("user", ()) == MaskedFields.HASH
    assert fields.how("property", ("price",), ["add_to_cart"]) is None


def test_the_agents_tools_refuse_a_filter_on_a_masked_value(demo_root: Path) -> None:
    ws = Workspace.load(demo_root)
    admin = call(ws, "query_metrics", ORDERS_65, masked=False)["rows"][0]["orders"]
    assert admin > 0  # the figure a masked filter would have turned into 0
    for query in (ORDERS_65, {"metrics": ["orders"], "where": "65 <= user.age"},
                  {"metrics": ["orders"], "segments": ["seniors"]},
                  {"metrics": ["orders"], "where": "platform = 'ios' and seniors"}):
        with pytest.raises(QueryError, match=r"user\.age\)? is personal data, masked"):
            call(ws, "query_metrics", query)
    with pytest.raises(QueryError, match=REFUSED.replace("(", r"\(").replace(")", r"\)")):
        call(ws, "explain_change", {"target": "orders", "period": "7d",
                                    "where": "age >= 65"})

    # a breakdown by a removed value: one empty group holding every order
    by_age = {"metrics": ["orders"], "by": ["age"]}
    assert len(call(ws, "query_metrics", by_age, masked=False)["rows"]) > 1
    with pytest.raises(QueryError, match=r"by 'age': age \(user\.age\) is personal data"):
        call(ws, "query_metrics", by_age)
    # explain's breakdown too: on the masked view it would split nothing, silently
    explain_by_age = {"target": "orders", "period": "7d", "by": "age"}
    assert call(ws, "explain_change", explain_by_age, masked=False)["target"] == "orders"
    with pytest.raises(QueryError, match=r"by 'age': age \(user\.age\) is personal data"):
        call(ws, "explain_change", explain_by_age)

    # what the mask keeps right is still answered, with the admin's figures
    ios = {"metrics": ["orders"], "where": "platform = 'ios' and age_group = '65+'"}
    assert call(ws, "query_metrics", ios)["rows"] == \
        call(ws, "query_metrics", ios, masked=False)["rows"]
    top = call(ws, "query_metrics", {"metrics": ["orders"], "by": ["user_id"],
                                     "order_by": ["-orders"], "limit": 1})["rows"][0]
    mine = call(ws, "query_metrics", {"metrics": ["orders"],
                                      "where": f"user_id = '{top['user_id']}'"})
    assert mine["rows"][0]["orders"] == top["orders"]


def test_nerve_ask_declines_instead_of_answering_zero(demo_root: Path) -> None:
    question = "orders for users over 65 last week"
    masked = _nerve(demo_root, "ask", question, "--format", "json")
    body = json.loads(masked.stdout)
    assert body["answered"] is False
    assert body["numbers"] == []
    assert REFUSED in body["answer"]
    assert "--unmasked" in body["answer"]

    plain = json.loads(_nerve(demo_root, "ask", question, "--unmasked", "--format",
                              "json").stdout)
    query = plain["queries"][0]["args"]
    truth = call(Workspace.load(demo_root), "query_metrics", query, masked=False)
    assert plain["numbers"][0]["value"] == truth["rows"][0]["orders"] > 0


def _post(server: Server, path: str, body: dict[str, Any], token: str, *,
          masked: bool) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"}
    if masked:
        headers["X-Nerve-View"] = "masked"
    return httpx.post(server.url + path, json=body, headers=headers, timeout=300)


def test_the_http_read_api_refuses_it_for_the_masked_view_only(
        demo_root: Path, tmp_path: Path, serve: Callable[..., Server]) -> None:
    root = tmp_path / "shop"
    shutil.copytree(demo_root, root)
    server = serve(Workspace.load(root))
    token = json.loads((root / ".nerve" / "server.json").read_text())["admin_token"]

    admin = _post(server, "/v1/metrics/query", ORDERS_65, token, masked=False)
    assert admin.status_code == 200, admin.text
    assert admin.json()["rows"][0]["orders"] > 0
    for path, body in (
            ("/v1/metrics/query", ORDERS_65),
            ("/v1/metrics/query", {"metrics": ["orders"], "segments": ["seniors"]}),
            ("/v1/metrics/query", {"metrics": ["orders"], "by": ["user.age"]}),
            ("/v1/ask/tool", {"tool": "query_metrics", "args": ORDERS_65}),
            ("/v1/anomalies/explain", {"target": "orders", "period": "7d",
                                       "where": "age >= 65"}),
            ("/v1/anomalies/explain", {"target": "orders", "period": "7d", "by": "age"}),
            ("/v1/anomalies/explain", {"target": "orders", "period": "7d",
                                       "by": ["platform", "user.age"]})):
        answer = _post(server, path, body, token, masked=True)
        assert answer.status_code == 400, (path, answer.text)
        assert answer.json()["code"] == "query"
        assert "user.age" in answer.json()["message"]
    # nerve ask goes to the running server, with the masked view by default
    asked = json.loads(_nerve(root, "ask", "orders for users over 65 last week",
                              "--format", "json").stdout)
    assert asked["answered"] is False
    assert REFUSED in asked["answer"]


def test_exported_names() -> None:
    import nerve.governance

    assert nerve.governance.__all__ == ["check_masked_analysis", "check_masked_filters",
                                        "masked_fields_of", "masked_text_of"]


WORKOUT = """\
name: workout_logged
description: A member logs a workout.
owner: fitness
purpose: analytics
version: 1
properties:
  workout_type: {type: string, pii: none}
  heart_rate_avg: {type: integer, pii: sensitive, handling: keep}
  buddy_email: {type: string, pii: personal, handling: keep}
"""

WORKOUT_METRICS = """\
metrics:
  workouts:
    description: Workouts members logged.
    measure: {agg: count, event: workout_logged}
  heart_rate:
    description: Average heart rate over logged workouts.
    measure: {agg: avg, event: workout_logged, of: heart_rate_avg}
  heart_rate_per_workout:
    type: derived
    description: Heart rate per workout, to check that references are followed.
    expr: heart_rate / workouts
  buddies:
    description: Distinct training buddies.
    measure: {agg: count_distinct, event: workout_logged, of: buddy_email}
  ana_workouts:
    description: Workouts with one buddy, to check a filter behind a derived metric.
    measure: {agg: count, event: workout_logged}
    filter: "buddy_email = 'ana@example.org'"
  ana_share:
    type: derived
    description: Share of workouts with that buddy.
    expr: ana_workouts / workouts
"""


def test_a_metric_aggregating_a_removed_value_is_refused_on_the_readers_view(
        make_workspace: Callable[..., Workspace]) -> None:
    """The reader's view removes a kept sensitive number: an average of it was answered
    as null (the admin's: 143) without a word. It is refused, naming the field; counts
    and distinct counts of hashed values (the admin's figures) are still answered."""
    from nerve.governance import check_masked_filters
    from nerve.semantic import SemanticLayer

    ws = make_workspace({"workout_logged.yaml": WORKOUT},
                        extra_toml='[privacy]\nallow_sensitive = ["workout_logged.heart_rate_avg"]')
    ws.metrics_dir.mkdir(exist_ok=True)
    (ws.metrics_dir / "workouts.yaml").write_text(WORKOUT_METRICS, encoding="utf-8")
    assert "heart_rate" in SemanticLayer.load(ws, Catalog.load(ws.events_dir))
    catalog = Catalog.load(ws.events_dir)
    layer, fields = SemanticLayer.load(ws, catalog), MaskedFields(catalog)
    for metric in ("heart_rate", "heart_rate_per_workout"):
        with pytest.raises(QueryError, match=r"heart_rate_avg .*removed, as it is not text"):
            check_masked_filters(layer, fields, [metric])
        check_masked_filters(layer, None, [metric])  # the admin's view: as stored
    check_masked_filters(layer, fields, ["workouts", "buddies"])
    # a derived metric's expression is followed for filters too
    with pytest.raises(QueryError, match=r"metric ana_workouts .*buddy_email"):
        check_masked_filters(layer, fields, ["ana_share"])
