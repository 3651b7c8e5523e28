"""explain on the demo shop (the session's simulated fortnight, tests/anomaly/conftest.py):
the right top driver for each injected incident, and nothing big on a clean run."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

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
    assert top["significant"]
    assert result["summary"].count("platform = android, a rate effect") == 1
    versions = [d for d in result["drivers"] if d["dimension"] == "app_version"]
    assert all(d["score"] < top["score"] / 2 for d in versions)
    assert all(d["effect"] == "mix" or d["value"] != "4.1.1" for d in versions)
    # downstream of the broken button, android's checkouts fall with it
    assert any(r["event"] == "checkout_start" and r["value"] == "android"
               and r["direction"] == "down" for r in result["related"])


def test_the_release_calendar_day_still_names_android(demo: Demo) -> None:
    truth = incident(demo, "android_add_to_cart_drop")
    day = moment(truth["start"]).date().isoformat()
    result = run(demo, "add_to_cart", period=f"{day}..{day}", now=demo.end)
    top = result["drivers"][0]
    assert (top["dimension"], top["value"], top["effect"]) == ("platform", "android", "rate")


def test_the_adyen_outage_is_named_on_failures_and_related_to_purchases(demo: Demo) -> None:
    truth = incident(demo, "adyen_payment_outage")
    end = moment(truth["end"])
    failed = run(demo, "payment_failed", period="4h", vs="expected", now=end)
    top = failed["drivers"][0]
    assert (top["dimension"], top["value"]) == (truth["dimension"], truth["value"])
    assert top["significant"]
    purchases = run(demo, "purchase_complete", period="4h", vs="expected", now=end)
    assert any(r["event"] == "payment_failed" and r["direction"] == "up"
               for r in purchases["related"])
    assert "payment_failed" in purchases["summary"]


def test_a_clean_day_has_no_big_driver(clean_demo: Demo) -> None:
    for target in ("add_to_cart", "revenue"):
        result = run(clean_demo, target, period="24h",
                     now=clean_demo.end - timedelta(hours=1))
        assert not [d for d in result["drivers"] if d["significant"]
                    and (d["score"] or 0) >= 0.2], target
        assert "beyond noise" in result["summary"] or "weak evidence" in result["summary"]
