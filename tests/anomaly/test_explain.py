"""explain on small hand-made tables with known answers: additive drivers, the mix and rate
split of a ratio, periods, related events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.anomaly.conftest import load_rows

from nerve.anomaly import explain, parse_period
from nerve.catalog import Catalog, EventSpec, PropertySpec, Version
from nerve.errors import QueryError
from nerve.semantic import SemanticLayer
from nerve.warehouse import Warehouse

NOW = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)
METRICS = """
dimensions:
  platform: {expr: context.device.type}
metrics:
  carts:
    measure: {agg: count, event: add_to_cart}
  cart_per_view:
    type: ratio
    numerator: {agg: count, event: add_to_cart}
    denominator: {agg: count, event: product_view}
"""


def rows(day: datetime, counts: dict[tuple[str, str], int]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for (event, platform), n in counts.items():
        out.extend({"event": event, "platform": platform, "user": f"{platform}{i}",
                    "at": day + timedelta(minutes=(i * 7) % 1440),
                    "props": {"method": "card" if i % 2 else "wallet"}} for i in range(n))
    return out


@pytest.fixture
def shop(tmp_path: Path) -> tuple[Any, SemanticLayer]:
    specs = [EventSpec(name=n, version=Version(1), properties=(
        PropertySpec(name="method", type="string", enum=("card", "wallet")),))
        for n in ("add_to_cart", "product_view", "payment_failed")]
    catalog = Catalog.from_specs(specs)
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "shop.yaml").write_text(METRICS)
    layer = SemanticLayer.from_folder(tmp_path / "metrics", catalog)
    warehouse = Warehouse.open(f"duckdb:///{tmp_path / 'w.duckdb'}")
    before, during = NOW - timedelta(days=2), NOW - timedelta(days=1)
    load_rows(warehouse, rows(before, {
        ("product_view", "ios"): 100, ("product_view", "android"): 100,
        ("add_to_cart", "ios"): 30, ("add_to_cart", "android"): 30,
        ("payment_failed", "ios"): 10}))
    load_rows(warehouse, rows(during, {
        ("product_view", "ios"): 150, ("product_view", "android"): 50,
        ("add_to_cart", "ios"): 45, ("add_to_cart", "android"): 5,
        ("payment_failed", "ios"): 40}), offset=1)
    return warehouse.ibis().table("events"), layer


def test_an_event_count_is_split_among_values(shop: tuple[Any, SemanticLayer]) -> None:
    events, layer = shop
    result = explain(events, "add_to_cart", layer=layer, period="yesterday", now=NOW,
                     dimensions=["platform"], catalog_events=["add_to_cart", "product_view",
                                                              "payment_failed"])
    assert (result["observed"], result["baseline"], result["change"]) == (50, 60, -10)
    top = result["drivers"][0]
    assert (top["dimension"], top["value"]) == ("platform", "android")
    assert (top["observed"], top["expected"], top["contribution"]) == (5, 30, -25)
    assert result["summary"].startswith("add_to_cart events fell to 50")
    # payment_failed quadrupled at the same time: a related anomaly
    assert [r["event"] for r in result["related"] if r["direction"] == "up"] == [
        "payment_failed"]


def test_a_ratio_splits_into_mix_and_rate(shop: tuple[Any, SemanticLayer]) -> None:
    events, layer = shop
    result = explain(events, "cart_per_view", layer=layer, period="yesterday", now=NOW,
                     dimensions=["platform"])
    assert result["observed"] == pytest.approx(0.25)
    assert result["baseline"] == pytest.approx(0.30)
    by_value = {d["value"]: d for d in result["drivers"]}
    android = by_value["android"]
    # android's rate fell from 0.3 to 0.1 on a quarter of the views: -0.05, all of it
    assert android["rate"] == pytest.approx(-0.05)
    assert android["mix"] == pytest.approx(0.0)
    assert android["share"] == pytest.approx(1.0)
    assert "ios" not in by_value  # ios moved views, not the rate: no contribution
    # the ratio's two events as a funnel (nerve.analytics): the add-to-cart step broke.
    # The day before, 60 viewers added that day and 15 more the next, within the 1-day
    # window (ios30..ios44 viewed on the 18th and added on the 19th)
    steps = result["funnel"]["steps"]
    assert [(s["event"], s["users"], s["expected_users"]) for s in steps] == [
        ("product_view", 200, 200), ("add_to_cart", 50, 75)]
    assert result["funnel"]["broken_step"]["event"] == "add_to_cart"
    assert "step 2 (add_to_cart) broke" in result["summary"]


def test_properties_with_few_values_are_breakdowns_by_default(
        shop: tuple[Any, SemanticLayer]) -> None:
    events, layer = shop
    result = explain(events, "carts", layer=layer, period="yesterday", now=NOW)
    assert {d["dimension"] for d in result["drivers"]} >= {"platform", "method"}
    assert result["drivers"][0]["value"] == "android"


def test_periods() -> None:
    now = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)  # a Friday
    assert parse_period("24h", now).start == datetime(2026, 11, 19, 9, tzinfo=UTC)
    week = parse_period("last_week", now)
    assert (week.start, week.end) == (datetime(2026, 11, 9, tzinfo=UTC),
                                      datetime(2026, 11, 16, tzinfo=UTC))
    span = parse_period("2026-11-01..2026-11-03", now)
    assert span.end - span.start == timedelta(days=3)
    berlin = parse_period("yesterday", now, "Europe/Berlin")
    assert berlin.start == datetime(2026, 11, 18, 23, tzinfo=UTC)
    with pytest.raises(QueryError, match="--period"):
        parse_period("fortnight", now)
