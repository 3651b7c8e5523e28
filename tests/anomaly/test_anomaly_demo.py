"""On demo data (the simulator's ground truth): incidents found, attributed and explained;
a clean simulation raises nothing. Two weeks of 3000 shoppers keep the suite fast; the
adyen outage's detection needs 8000 (at 3000 it is 3 failed payments of 8)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

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


def test_the_adyen_outage_is_found_as_a_rate_on_adyen(big_demo: Demo) -> None:
    truth = incident(big_demo, "adyen_payment_outage")
    start, end = moment(truth["start"]), moment(truth["end"])
    detection, _ = find_anomalies(big_demo.events, Request(evaluate="24h", min_history="5d"),
                                  layer=big_demo.layer,
                                  catalog_events=big_demo.catalog.names(), now=end)
    rates = [a for a in detection.anomalies if a.target == "payment_failure_rate"]
    adyen = [a for a in rates if (a.dimension, a.value) == ("payment_provider", "adyen")]
    assert len(adyen) == 1, [a.message() for a in detection.anomalies]
    found = adyen[0]
    assert found.direction == "up"
    assert found.start == start
    assert found.observed > 0.2  # 45% of adyen payments failed, 3% before
    assert found.expected < 0.06
    # no other provider's failure rate moved
    assert not [a for a in rates if a.dimension == "payment_provider" and a.value != "adyen"]
    # the same from the metric itself, broken down by provider
    detection, about = find_anomalies(
        big_demo.events, Request("payment_failure_rate", by=("payment_provider",),
                                 evaluate="24h", min_history="5d"),
        layer=big_demo.layer, catalog_events=big_demo.catalog.names(), now=end)
    assert about["grain"] == "hour"
    by_provider = [(a.value, a.direction) for a in detection.anomalies if a.dimension]
    assert by_provider == [("adyen", "up")]


def test_the_adyen_outage_is_explained_by_adyen(big_demo: Demo) -> None:
    truth = incident(big_demo, "adyen_payment_outage")
    result = explain(big_demo.events, "payment_failure_rate", layer=big_demo.layer,
                     period="4h", vs="expected", catalog_events=big_demo.catalog.names(),
                     now=moment(truth["end"]))
    assert (result["drivers"][0]["dimension"], result["drivers"][0]["value"]) == (
        "payment_provider", "adyen")


def test_a_clean_simulation_alerts_on_nothing(clean_demo: Demo) -> None:
    assert detect_all(clean_demo) == []


def test_a_bigger_clean_simulation_alerts_on_nothing_either(big_clean_demo: Demo) -> None:
    # more traffic makes every test more powerful, and every model error more visible
    assert big_clean_demo.truth["incidents"] == []
    assert [a.message() for a in detect_all(big_clean_demo)] == []


def test_explain_on_a_clean_day_finds_no_big_related_moves(clean_demo: Demo) -> None:
    result = explain(clean_demo.events, "revenue", layer=clean_demo.layer, period="24h",
                     vs="previous", now=clean_demo.end - timedelta(hours=1))
    assert result["related"] == []
    assert result["summary"]


def test_a_release_retiring_an_app_version_is_no_drop_unless_asked_for(demo: Demo) -> None:
    # the Android release moves every device from 4.1.1 to 4.2.0 at once: the scan of
    # every event and key dimension must not call the old version's silence a drop...
    release = next(r for r in demo.truth["releases"] if r["platform"] == "android")
    now = moment(release["at"]) + timedelta(hours=12)
    scan = Request(evaluate="12h", min_history="5d")
    everything, _ = find_anomalies(demo.events, scan, layer=demo.layer,
                                   catalog_events=demo.catalog.names(), now=now)
    assert not [a for a in everything.anomalies
                if a.dimension == "app_version" and a.direction == "down"]
    # ...while asking for the breakdown by version shows it
    asked, _ = find_anomalies(demo.events, Request("product_view", by=("app_version",),
                                                   evaluate="12h", min_history="5d"),
                              layer=demo.layer, catalog_events=demo.catalog.names(), now=now)
    gone = {(a.value, a.direction) for a in asked.anomalies}
    assert ("4.1.1", "down") in gone
