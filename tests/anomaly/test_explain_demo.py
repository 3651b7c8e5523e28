"""explain on the demo shop (the session's simulated fortnights, tests/anomaly/conftest.py):
the right top driver for each injected incident, and nothing big on clean runs. The
android bug shows at 3000 shoppers; the adyen outage (about 23 adyen payments in its four
hours) needs the 8000-shopper run."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from tests.anomaly.conftest import Demo

from nerve.anomaly import explain


def incident(demo: Demo, key: str) -> dict[str, Any]:
    return next(i for i in demo.truth["incidents"] if i["key"] == key)


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def run(demo: Demo, target: str, **options: Any) -> dict[str, Any]:
    return explain(demo.events, target, layer=demo.layer,
                   catalog_events=demo.catalog.names(), **options)


def test_the_android_drop_is_a_rate_drop_on_android_not_version_churn(demo: Demo) -> None:
    truth = incident(demo, "android_add_to_cart_drop")
    # the day of the broken release: android users leave 4.1.1 for 4.2.0 at once
    result = run(demo, "add_to_cart", period="24h", now=moment(truth["end"]))
    top = result["drivers"][0]
    assert (top["dimension"], top["value"], top["effect"]) == (
        truth["dimension"], truth["value"], "rate")
    assert top["rate"] < 0.8 * top["contribution"] < 0  # most of android's fall is rate
    assert "platform = android" in result["summary"]
    # 4.1.1 lost its shoppers (mix), and no version outranks the platform
    versions = [d for d in result["drivers"] if d["dimension"] == "app_version"]
    assert all(d["score"] < top["score"] / 2 for d in versions)
    gone = [d for d in versions if d["value"] == "4.1.1"]
    assert all(d["rate"] == pytest.approx(0) for d in gone)
    # downstream of the broken button, android's checkouts fall with it
    assert any(r["event"] == "checkout_start" and r["value"] == "android"
               and r["direction"] == "down" for r in result["related"])


def test_the_release_calendar_day_names_android(big_demo: Demo) -> None:
    # the calendar day of the release: half of it on 4.1.1, half on the broken 4.2.0
    truth = incident(big_demo, "android_add_to_cart_drop")
    day = moment(truth["start"]).date().isoformat()
    result = run(big_demo, "add_to_cart", period=f"{day}..{day}", now=big_demo.end)
    top = result["drivers"][0]
    assert (top["dimension"], top["value"], top["effect"]) == ("platform", "android", "rate")


def test_the_adyen_outage_is_named_on_failures(big_demo: Demo) -> None:
    truth = incident(big_demo, "adyen_payment_outage")
    result = run(big_demo, "payment_failed", period="4h", vs="expected",
                 now=moment(truth["end"]))
    top = result["drivers"][0]
    assert (top["dimension"], top["value"], top["effect"]) == (
        truth["dimension"], truth["value"], "rate")
    assert top["significant"]
    assert "payment_provider = adyen" in result["summary"]


def test_purchases_in_the_adyen_outage_relate_to_adyen_failures(big_demo: Demo) -> None:
    truth = incident(big_demo, "adyen_payment_outage")
    result = run(big_demo, "purchase_complete", period="4h", vs="expected",
                 now=moment(truth["end"]))
    # at this scale purchases over the four hours rose (shoppers retried with wallets);
    # adyen's buyers fell against the total: an offset, its rate on adyen's payers
    adyen = [d for d in result["drivers"] + result["offsets"]
             if (d["dimension"], d["value"]) == ("payment_provider", "adyen")]
    assert adyen, result["summary"]
    assert adyen[0]["effect"] == "rate"
    assert adyen[0]["rate"] < 0
    assert adyen[0]["rate_observed"] < 0.7 * adyen[0]["rate_expected"]
    assert "payment_provider = adyen (rate effect" in result["summary"]
    failed = [r for r in result["related"] if r["event"] == "payment_failed"
              and r["value"] == "adyen"]
    assert failed
    assert failed[0]["direction"] == "up"
    assert "payment_failed (payment_provider = adyen) up" in result["summary"]


@pytest.mark.parametrize("target", ["add_to_cart", "revenue", "payment_failed"])
def test_clean_days_have_no_big_driver(clean_demo: Demo, big_clean_demo: Demo,
                                       target: str) -> None:
    for demo in (clean_demo, big_clean_demo):
        result = run(demo, target, period="24h", now=demo.end - timedelta(hours=1))
        big = [d for d in result["drivers"] if d["significant"] and d["score"] >= 0.2]
        assert big == [], (target, result["summary"])
