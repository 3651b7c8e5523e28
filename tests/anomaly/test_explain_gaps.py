"""Tracking gaps: a drop that is events not sent (a release stops sending add_to_cart on
one platform while its users go on using the app) is a caveat of the explanation, not
only a driver read as people doing less."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from tests.anomaly.conftest import load_rows
from tests.anomaly.test_explain import CHURN_METRICS, NOW, churn_shop

from nerve.agent._answer import Builder
from nerve.agent._render_explain import _drivers, _explain_caveats
from nerve.anomaly import explain
from nerve.anomaly._explain_words import period_words
from nerve.catalog import Catalog, EventSpec, PropertySpec, Version
from nerve.semantic import SemanticLayer
from nerve.warehouse import Warehouse

EVENTS = ["add_to_cart", "product_view"]


def versions_shop(tmp_path: Path, before: list[tuple[str, str, int, int]],
                  during: list[tuple[str, str, int, int]]) -> tuple[Any, SemanticLayer]:
    """``churn_shop``, with a user of each (platform, version) of their own: a shopper
    on two versions at once would join the segments."""
    specs = [EventSpec(name=n, version=Version(1), properties=(
        PropertySpec(name="app_version", type="string"),)) for n in EVENTS]
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "shop.yaml").write_text(CHURN_METRICS)
    layer = SemanticLayer.from_folder(tmp_path / "metrics", Catalog.from_specs(specs))
    warehouse = Warehouse.open(f"duckdb:///{tmp_path / 'w.duckdb'}")
    for offset, (day, parts) in enumerate(((NOW - timedelta(days=2), before),
                                           (NOW - timedelta(days=1), during))):
        rows = []
        for platform, version, users, carts in parts:
            for i in range(users):
                at = day + timedelta(minutes=(i * 7) % 1440)
                one = {"platform": platform, "user": f"{platform}-{version}-{i}", "at": at,
                       "props": {"app_version": version}}
                rows.append({"event": "product_view", **one})
                if i < carts:
                    rows.append({"event": "add_to_cart", **one})
        load_rows(warehouse, rows, offset=offset)
    return warehouse.ibis().table("events"), layer


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


def test_the_summary_names_the_period_s_dates_and_time_zone(tmp_path: Path) -> None:
    # "fell to 50 over last_week": which week, and whose Monday, was for the reader to guess
    events, layer = churn_shop(
        tmp_path, before=[("ios", "1", 200, 60)], during=[("ios", "1", 200, 30)])
    result = explain(events, "add_to_cart", layer=layer, period="yesterday", now=NOW,
                     catalog_events=EVENTS)
    day = (NOW - timedelta(days=1)).date().isoformat()
    assert f"over yesterday, {day} ({layer.timezone}) against" in result["summary"]


def test_period_words_give_local_dates_or_times_and_the_zone() -> None:
    week = {"label": "last_week", "start": "2026-11-22T23:00:00+00:00",
            "end": "2026-11-29T23:00:00+00:00"}
    assert period_words(week, "Europe/Berlin") == \
        "last_week, 2026-11-23 to 2026-11-29 (Europe/Berlin)"
    dates = {**week, "label": "2026-11-23..2026-11-29"}
    assert period_words(dates, "Europe/Berlin") == "2026-11-23 to 2026-11-29 (Europe/Berlin)"
    rolling = {"label": "24h", "start": "2026-11-29T16:00:00+00:00",
               "end": "2026-11-30T16:00:00+00:00"}
    assert period_words(rolling, "Europe/Berlin") == \
        "24h, 2026-11-29 17:00 to 2026-11-30 17:00 (Europe/Berlin)"


def test_a_driver_inside_the_lead_s_value_is_part_of_the_same_change(
        tmp_path: Path) -> None:
    # android's 2.0 build stops add to cart: android and app_version 2 are one change,
    # and outside the lead the other did not move, so it is no driver of its own
    events, layer = versions_shop(
        tmp_path,
        before=[("ios", "1", 600, 180), ("android", "1", 300, 90), ("android", "2", 300, 90)],
        during=[("ios", "1", 600, 180), ("android", "1", 300, 90), ("android", "2", 300, 0)])
    result = explain(events, "add_to_cart", layer=layer, period="yesterday", now=NOW,
                     dimensions=["platform", "app_version"], catalog_events=EVENTS)
    lead, *rest = [d for d in result["drivers"] if d["significant"]]
    assert {(lead["dimension"], lead["value"]), *((d["dimension"], d["value"]) for d in rest)} \
        == {("platform", "android"), ("app_version", "2")}
    assert "overlaps" not in lead
    (other,) = rest
    assert other["overlaps"] == f"{lead['dimension']} = {lead['value']}"
    assert (f"Part of the same change (outside {lead['dimension']} = {lead['value']} they "
            f"did not move beyond noise): {other['dimension']} = {other['value']}."
            ) in result["summary"]
    assert "Next:" not in result["summary"]


def test_two_separate_causes_are_both_drivers(tmp_path: Path) -> None:
    # android's carts fall on every version, and ios's 2.0 build stops add to cart
    events, layer = versions_shop(
        tmp_path,
        before=[("ios", "1", 100, 30), ("ios", "2", 100, 30), ("android", "1", 200, 60)],
        during=[("ios", "1", 100, 30), ("ios", "2", 100, 0), ("android", "1", 200, 20)])
    result = explain(events, "add_to_cart", layer=layer, period="yesterday", now=NOW,
                     dimensions=["platform", "app_version"], catalog_events=EVENTS)
    named = {(d["dimension"], d["value"]): d for d in result["drivers"] if d["significant"]}
    assert {("platform", "android"), ("app_version", "2")} <= set(named)
    assert not any(d.get("overlaps") for d in named.values())


def test_the_answer_names_a_driver_inside_the_lead_as_part_of_its_change() -> None:
    lead = {"dimension": "payment_provider", "value": "adyen", "effect": "rate",
            "contribution": 43, "share": 1.089, "effect_change": 43, "effect_share": 1.089,
            "significant": True, "score": 0.52}
    web = {"dimension": "platform", "value": "web", "effect": "rate", "contribution": 18,
           "effect_change": 18, "effect_share": 0.456, "share": 0.456,
           "significant": True, "score": 0.13,
           "overlaps": "payment_provider = adyen", "outside_z": 0.0}
    explained = {"observed": 48, "baseline": 8.5, "change": 39.5, "drivers": [lead, web],
                 "change_z": 7.6, "change_significant": True}
    b = Builder("why did payment failures spike?", {})
    _drivers(explained, "nerve explain payment_failures", "number", None, 39.5, b)
    text = b.finish().answer
    # 43 of a change of 39.5: more than all of it, not "108.9% of the change"
    assert ("Main driver: payment_provider = adyen (43, more than the whole change of "
            "+39.50; the rest moved the other way by 3.50).") in text
    assert ("Part of the same change (outside payment_provider = adyen they did not move "
            "beyond noise): platform = web (18, 45.6% of the change).") in text


def test_the_summary_says_where_the_change_sits_only_when_the_overlap_holds_it(
        tmp_path: Path) -> None:
    # android's 2.0 build stops add to cart: outside app_version 2, android did not move,
    # so the drop sits where the two meet
    (tmp_path / "held").mkdir()
    events, layer = versions_shop(
        tmp_path / "held",
        before=[("ios", "1", 600, 180), ("android", "1", 300, 90), ("android", "2", 300, 90)],
        during=[("ios", "1", 600, 180), ("android", "1", 300, 90), ("android", "2", 300, 0)])
    result = explain(events, "add_to_cart", layer=layer, period="yesterday", now=NOW,
                     dimensions=["platform", "app_version"], catalog_events=EVENTS)
    lead, other = [d for d in result["drivers"] if d["significant"]]
    assert other["holds_change"] is True
    assert abs(other["lead_outside_z"]) < result["significant_z"]
    assert (f"The change sits where {lead['dimension']} = {lead['value']} and "
            f"{other['dimension']} = {other['value']} meet") in result["summary"]

    # android's carts fall on both builds: app_version 2 is still part of android's
    # change (outside android it has no events), but android fell outside it too
    (tmp_path / "spread").mkdir()
    events, layer = versions_shop(
        tmp_path / "spread",
        before=[("ios", "1", 600, 180), ("android", "1", 300, 90), ("android", "2", 300, 90)],
        during=[("ios", "1", 600, 180), ("android", "1", 300, 10), ("android", "2", 300, 10)])
    result = explain(events, "add_to_cart", layer=layer, period="yesterday", now=NOW,
                     dimensions=["platform", "app_version"], catalog_events=EVENTS)
    overlapping = [d for d in result["drivers"] if d.get("overlaps")]
    assert overlapping, result["drivers"]
    assert not any(d["holds_change"] for d in overlapping)
    assert "The change sits where" not in result["summary"]


def test_the_answer_says_where_the_change_sits_when_the_overlaps_hold_it() -> None:
    lead = {"dimension": "platform", "value": "android", "effect": "rate",
            "contribution": -90, "share": 1.0, "effect_change": -90, "effect_share": 1.0,
            "significant": True, "score": 0.5}
    version = {"dimension": "app_version", "value": "5.2.0", "effect": "rate",
               "contribution": -90, "effect_change": -90, "effect_share": 1.0, "share": 1.0,
               "significant": True, "score": 0.4, "overlaps": "platform = android",
               "outside_z": 0.0, "holds_change": True, "lead_outside_z": -0.4}
    country = {**version, "dimension": "country", "value": "DE", "contribution": -60,
               "effect_change": -60, "share": 0.667, "effect_share": 0.667, "score": 0.2,
               "holds_change": False, "lead_outside_z": -6.1}
    explained = {"observed": 90, "baseline": 180, "change": -90,
                 "drivers": [lead, version, country], "change_z": -7.6,
                 "change_significant": True}
    b = Builder("why did carts drop?", {})
    _drivers(explained, "nerve explain carts", "number", None, -90, b)
    text = b.finish().answer
    assert ("The change sits where platform = android and app_version = 5.2.0 meet: "
            "outside app_version = 5.2.0, platform = android did not move beyond noise."
            ) in text
    assert "country = DE meet" not in text
