"""Hourly anomalies and the volume check learn the hour of day on the workspace's clock.

Traffic follows local time: a New York shop wakes at 08:00 whether that is 12:00 UTC (in
summer time) or 13:00 UTC (after the switch of 2026-11-01). A model of hours of day in
UTC learnt a blend of both for the weeks after a switch, and flagged the morning and the
evening of every clean day. The data here is fixed: a seeded Poisson stream whose rate
steps up at 08:00 and down at 22:00 New York time, with nothing wrong in it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from tests.anomaly.conftest import load_rows

from nerve.anomaly import Request, find_anomalies
from nerve.catalog import Catalog, EventSpec, Version
from nerve.quality import Inputs, load_config, run_checks
from nerve.quality._seasonal import wall_hours
from nerve.semantic import SemanticLayer
from nerve.warehouse import Warehouse

NY = ZoneInfo("America/New_York")
NOW = datetime(2026, 11, 12, 12, 0, tzinfo=UTC)  # 07:00 in New York, a week after the switch


def _stream() -> list[dict[str, Any]]:
    rng = np.random.default_rng(5)
    out: list[dict[str, Any]] = []
    hour = datetime(2026, 10, 8, tzinfo=UTC)
    while hour < NOW:
        awake = 8 <= hour.astimezone(NY).hour < 22
        out.extend({"event": "add_to_cart", "platform": "ios", "user": f"u{i}",
                    "at": hour + timedelta(seconds=int(rng.integers(3600)))}
                   for i in range(int(rng.poisson(60 if awake else 4))))
        hour += timedelta(hours=1)
    return out


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, SemanticLayer, Path]:
    root: Path = tmp_path_factory.mktemp("ny")
    catalog = Catalog.from_specs([EventSpec(name="add_to_cart", version=Version(1))])
    (root / "metrics").mkdir()
    (root / "metrics" / "shop.yaml").write_text(
        "metrics:\n  carts:\n    measure: {agg: count, event: add_to_cart}\n")
    layer = SemanticLayer.from_folder(root / "metrics", catalog,
                                      timezone="America/New_York")
    warehouse = Warehouse.open(f"duckdb:///{root / 'w.duckdb'}")
    load_rows(warehouse, _stream())
    return warehouse.ibis().table("events"), layer, root


def test_wall_hours_follow_the_local_clock_across_the_switch() -> None:
    # 2026-11-01 05:00 UTC is 01:00 EDT, 06:00 UTC is 01:00 EST (the hour repeats)
    utc = np.array([datetime(2026, 11, 1, h, tzinfo=UTC).timestamp() // 3600
                    for h in (4, 5, 6, 7)], dtype=np.int64)
    local = wall_hours(utc, "America/New_York")
    assert list(local % 24) == [0, 1, 1, 2]
    assert list(wall_hours(utc, "UTC")) == list(utc)
    # a half-hour zone: 10:00 UTC is 15:30 in Kolkata, counted in its 15:00 hour
    assert wall_hours(utc[:1] + 6, "Asia/Kolkata")[0] % 24 == 15


def test_hourly_anomalies_find_nothing_in_a_clean_week_after_the_switch(shop: Any) -> None:
    events, layer, _ = shop
    detection, _ = find_anomalies(events, Request("add_to_cart", evaluate="7d"),
                                  layer=layer, catalog_events=["add_to_cart"], now=NOW)
    assert [(a.start.isoformat(), a.direction) for a in detection.anomalies] == []
    metric, _ = find_anomalies(events, Request("carts", evaluate="7d"), layer=layer,
                               catalog_events=["add_to_cart"], now=NOW)
    assert [(a.start.isoformat(), a.direction) for a in metric.anomalies] == []


def test_the_volume_check_finds_nothing_in_a_clean_day_after_the_switch(shop: Any) -> None:
    events, layer, root = shop
    config = load_config(root, {"project": {"timezone": "America/New_York"}})
    results = run_checks(Inputs(events=events), layer.catalog, config, now=NOW,
                         select=["volume"])
    assert results
    assert all(r.status.value == "pass" for r in results), [r.message for r in results]
