"""On demo data (the simulator's ground truth): incidents found, attributed and explained;
a clean simulation raises nothing. Two weeks of 3000 shoppers keep the suite fast."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from tests.anomaly.conftest import Demo

from nerve.anomaly import Request, explain, find_anomalies


def incident(demo: Demo, key: str) -> dict[str, Any]:
    return next(i for i in demo.truth["incidents"] if i["key"] == key)


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def detect_all(demo: Demo, **options: Any) -> list[Any]:
    request = Request(evaluate="2d", min_history="5d", **options)
    detection, _ = find_anomalies(demo.events, request, layer=demo.layer,
                                  catalog_events=demo.catalog.names(), now=demo.end)
    return detection.anomalies


def test_the_android_add_to_cart_drop_is_found_on_android(demo: Demo) -> None:
    truth = incident(demo, "android_add_to_cart_drop")
    start, end = moment(truth["start"]), moment(truth["end"])
    request = Request("add_to_cart", by=("platform",), backtest="6d", min_history="5d")
    detection, about = find_anomalies(demo.events, request, layer=demo.layer,
                                      catalog_events=demo.catalog.names(), now=demo.end)
    assert about["kind"] == "event"
    found = [a for a in detection.anomalies if a.start < end and a.end > start]
    assert [(a.dimension, a.value, a.direction) for a in found] == [
        ("platform", "android", "down")]
    assert found[0].periods >= 12


def test_the_android_drop_is_explained_by_android(demo: Demo) -> None:
    truth = incident(demo, "android_add_to_cart_drop")
    result = explain(demo.events, "add_to_cart", layer=demo.layer, period="24h",
                     vs="previous", catalog_events=demo.catalog.names(),
                     now=moment(truth["end"]))
    assert result["change"] < 0
    top = result["drivers"][0]
    assert (top["dimension"], top["value"]) == (truth["dimension"], truth["value"])
    assert "platform = android" in result["summary"]
    # downstream of the broken button, the checkout steps fall too
    downstream = {r["event"] for r in result["related"] if r["direction"] == "down"}
    assert "checkout_start" in downstream


@pytest.mark.xfail(strict=True, reason="at demo scale the adyen outage is 2-5 failed "
                   "payments in 4 hours: below what a count can prove (docs/anomalies.md)")
def test_the_adyen_outage_is_found_and_explained(demo: Demo) -> None:
    truth = incident(demo, "adyen_payment_outage")
    result = explain(demo.events, "payment_failed", layer=demo.layer, period="4h",
                     catalog_events=demo.catalog.names(), now=moment(truth["end"]))
    assert (result["drivers"][0]["dimension"], result["drivers"][0]["value"]) == (
        "payment_provider", "adyen")


def test_a_clean_simulation_alerts_on_nothing(clean_demo: Demo) -> None:
    assert detect_all(clean_demo) == []


def test_explain_on_a_clean_day_finds_no_big_related_moves(clean_demo: Demo) -> None:
    result = explain(clean_demo.events, "revenue", layer=clean_demo.layer, period="24h",
                     vs="previous", now=clean_demo.end - timedelta(hours=1))
    assert result["related"] == []
    assert result["summary"]
