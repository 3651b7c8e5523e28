"""Tracking gaps: a drop that is events not sent (a release stops sending add_to_cart on
one platform while its users go on using the app) is a caveat of the explanation, not
only a driver read as people doing less."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from tests.anomaly.test_explain import NOW, churn_shop

from nerve.agent._answer import Builder
from nerve.agent._ask import _explain_caveats
from nerve.anomaly import explain

EVENTS = ["add_to_cart", "product_view"]


def _gaps(result: dict) -> list[dict]:  # type: ignore[type-arg]
    return [c for c in result["caveats"] if c["check"] == "tracking_gap"]


def test_a_value_whose_event_stopped_while_its_users_stayed_is_a_tracking_gap(
        tmp_path: Path) -> None:
    # android's 200 shoppers view products as before, and no add_to_cart arrives from them
    events, layer = churn_shop(
        tmp_path, before=[("ios", "1", 200, 60), ("android", "1", 200, 60)],
        during=[("ios", "1", 200, 60), ("android", "1", 200, 0)])
    result = explain(events, "add_to_cart", layer=layer, period="yesterday", now=NOW,
                     dimensions=["platform"], catalog_events=EVENTS)
    assert (result["drivers"][0]["dimension"], result["drivers"][0]["value"]) == \
        ("platform", "android")
    (gap,) = _gaps(result)
    assert gap["dimensions"] == {"platform": "android"}
    assert gap["event"] == "add_to_cart"
    assert gap["since"] == (NOW - timedelta(days=1)).date().isoformat()
    assert gap["days"] == 1
    assert gap["usual_per_day"] == 60
    assert gap["active_share"] == 1
    assert "not sent" in gap["message"]
    assert "not sent" in result["summary"]


def test_a_drop_that_keeps_some_events_is_no_tracking_gap(tmp_path: Path) -> None:
    events, layer = churn_shop(
        tmp_path, before=[("ios", "1", 200, 60), ("android", "1", 200, 60)],
        during=[("ios", "1", 200, 60), ("android", "1", 200, 10)])
    result = explain(events, "add_to_cart", layer=layer, period="yesterday", now=NOW,
                     dimensions=["platform"], catalog_events=EVENTS)
    assert result["drivers"][0]["value"] == "android"
    assert _gaps(result) == []


def test_a_value_whose_users_left_is_no_tracking_gap(tmp_path: Path) -> None:
    # every android shopper moved to ios: android has no add_to_cart because it has no one
    events, layer = churn_shop(
        tmp_path, before=[("ios", "1", 200, 60), ("android", "1", 200, 60)],
        during=[("ios", "1", 400, 80), ("android", "1", 0, 0)])
    result = explain(events, "add_to_cart", layer=layer, period="yesterday", now=NOW,
                     dimensions=["platform"], catalog_events=EVENTS)
    assert _gaps(result) == []


def test_the_event_stopping_everywhere_is_one_gap_of_the_target(tmp_path: Path) -> None:
    events, layer = churn_shop(
        tmp_path, before=[("ios", "1", 200, 60), ("android", "1", 200, 60)],
        during=[("ios", "1", 200, 0), ("android", "1", 200, 0)])
    result = explain(events, "add_to_cart", layer=layer, period="yesterday", now=NOW,
                     dimensions=["platform"], catalog_events=EVENTS)
    (gap,) = _gaps(result)
    assert gap["dimensions"] == {}
    assert gap["usual_per_day"] == 120


def test_a_rare_event_s_empty_day_is_no_tracking_gap(tmp_path: Path) -> None:
    # 3 a day: a day without any is chance
    events, layer = churn_shop(
        tmp_path, before=[("ios", "1", 200, 3), ("android", "1", 200, 3)],
        during=[("ios", "1", 200, 3), ("android", "1", 200, 0)])
    result = explain(events, "add_to_cart", layer=layer, period="yesterday", now=NOW,
                     dimensions=["platform"], catalog_events=EVENTS)
    assert _gaps(result) == []


def test_the_answer_says_the_drop_may_be_events_not_sent() -> None:
    caveat = {"check": "tracking_gap", "status": "warn", "event": "add_to_cart",
              "dimensions": {"app_version": "7.1.0"}, "since": "2026-11-25",
              "message": "No add_to_cart event ...", "impact": "..."}
    b = Builder("why did add to cart drop last week?", {})
    _explain_caveats([caveat], b)
    answer = b.finish()
    assert ("Caveat: no add_to_cart event with app_version = 7.1.0 arrived on some days "
            "from 2026-11-25 while those users stayed active, so this drop may be events "
            "not sent") in answer.answer, answer.answer
    assert "data-quality checks flag" not in answer.answer
    assert any("tracking_gap" in c for c in answer.caveats)
