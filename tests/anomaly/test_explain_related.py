"""Related events: each says whether it moved with the target's change (its change sits in
the top driver's value too) or moved outside it as well, and the summary names only the
first as moving "at the same time"."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from tests.anomaly.conftest import load_rows
from tests.anomaly.test_explain import CHURN_METRICS, NOW

from nerve.anomaly import explain
from nerve.catalog import Catalog, EventSpec, PropertySpec, Version
from nerve.semantic import SemanticLayer
from nerve.warehouse import Warehouse

EVENTS = ["add_to_cart", "product_view", "checkout_start", "search"]


def shop(tmp_path: Path) -> tuple[Any, SemanticLayer]:
    """Android's carts fall from 100 to 20 and its checkouts with them (60 to 12), while
    searches double on every platform (100 to 200 each): another change, not this one."""
    specs = [EventSpec(name=n, version=Version(1), properties=(
        PropertySpec(name="app_version", type="string"),)) for n in EVENTS]
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "shop.yaml").write_text(CHURN_METRICS)
    layer = SemanticLayer.from_folder(tmp_path / "metrics", Catalog.from_specs(specs))
    warehouse = Warehouse.open(f"duckdb:///{tmp_path / 'w.duckdb'}")
    days = ((NOW - timedelta(days=2), (100, 60, 100)), (NOW - timedelta(days=1), (20, 12, 200)))
    for offset, (day, (carts, checkouts, searches)) in enumerate(days):
        rows = []
        for platform in ("android", "ios"):
            for i in range(300):
                one = {"platform": platform, "user": f"{platform}{i}",
                       "at": day + timedelta(minutes=(i * 7) % 1440),
                       "props": {"app_version": "1"}}
                rows.append({"event": "product_view", **one})
                if i < (carts if platform == "android" else 100):
                    rows.append({"event": "add_to_cart", **one})
                if i < (checkouts if platform == "android" else 60):
                    rows.append({"event": "checkout_start", **one})
                if i < searches:
                    rows.append({"event": "search", **one})
        load_rows(warehouse, rows, offset=offset)
    return warehouse.ibis().table("events"), layer


def test_a_related_event_that_moved_outside_the_driver_too_is_not_with_the_change(
        tmp_path: Path) -> None:
    events, layer = shop(tmp_path)
    result = explain(events, "add_to_cart", layer=layer, period="yesterday", now=NOW,
                     dimensions=["platform"], catalog_events=EVENTS)
    lead = result["drivers"][0]
    assert (lead["dimension"], lead["value"]) == ("platform", "android")
    related = {(r["event"], r["dimension"]): r for r in result["related"]}
    for dimension in (None, "platform"):
        assert related[("checkout_start", dimension)]["moved_with"] is True
        assert related[("search", dimension)]["moved_with"] is False
        assert related[("search", dimension)]["lead"] == "platform = android"
    text = result["summary"]
    assert "At the same time: checkout_start (platform = android) down 80%." in text
    assert ("Not with it (they moved outside platform = android as well): search "
            "(platform = android) up 100%.") in text
