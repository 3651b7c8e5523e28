"""Day periods of ``nerve anomalies`` are the workspace's local days, as the semantic
layer's: in Los Angeles the day of the autumn switch (2026-11-01) is 25 hours long.

A tester's workspace counted UTC days (178/141/194... for 11-09 on, pandas' counts per
UTC day) where ``nerve metrics query --grain day`` counted 177/156/183... per local day.
The data here is fixed: a seeded Poisson stream with a daily and weekly pattern in local
time, counted independently with pandas."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from tests.anomaly.conftest import load_rows

from nerve.anomaly import Request, find_anomalies
from nerve.anomaly._service import forecast_local
from nerve.catalog import Catalog, EventSpec, Version
from nerve.semantic import SemanticLayer
from nerve.warehouse import Warehouse

LA = ZoneInfo("America/Los_Angeles")
NOW = datetime(2026, 11, 17, 12, 0, tzinfo=UTC)  # 04:00 on 2026-11-17 in Los Angeles
DROP = "2026-11-10"  # a local day whose carts fall by two thirds
METRICS = """
metrics:
  carts:
    measure: {agg: count, event: add_to_cart}
  cart_per_view:
    type: ratio
    numerator: {agg: count, event: add_to_cart}
    denominator: {agg: count, event: product_view}
"""


def _stream() -> list[dict[str, Any]]:
    rng = np.random.default_rng(11)
    out: list[dict[str, Any]] = []
    hour = datetime(2026, 10, 1, tzinfo=UTC)
    while hour < NOW:
        local = hour.astimezone(LA)
        rate = 3 + 9 * np.exp(-((local.hour - 19) ** 2) / 10)
        rate *= 1.4 if local.weekday() >= 5 else 1.0
        for event, share in (("product_view", 1.0), ("add_to_cart", 0.3)):
            lam = rate * share * (0.33 if event == "add_to_cart"
                                  and local.date().isoformat() == DROP else 1.0)
            out.extend({"event": event, "platform": "ios" if i % 3 else "android",
                        "user": f"u{rng.integers(500)}",
                        "at": hour + timedelta(seconds=int(rng.integers(3600)))}
                       for i in range(int(rng.poisson(lam * 4))))
        hour += timedelta(hours=1)
    return out


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory
         ) -> tuple[Any, SemanticLayer, pd.DataFrame, Warehouse]:
    root: Path = tmp_path_factory.mktemp("la")
    catalog = Catalog.from_specs([EventSpec(name=n, version=Version(1))
                                  for n in ("add_to_cart", "product_view")])
    (root / "metrics").mkdir()
    (root / "metrics" / "shop.yaml").write_text(METRICS)
    layer = SemanticLayer.from_folder(root / "metrics", catalog,
                                      timezone="America/Los_Angeles")
    warehouse = Warehouse.open(f"duckdb:///{root / 'w.duckdb'}")
    rows = _stream()
    load_rows(warehouse, rows)
    raw = pd.DataFrame(rows)
    at = pd.to_datetime(raw["at"], utc=True)
    raw["local_day"] = at.dt.tz_convert(LA).dt.strftime("%Y-%m-%d")
    raw["utc_day"] = at.dt.strftime("%Y-%m-%d")
    raw["utc_hour"] = at.dt.floor("h")
    return warehouse.ibis().table("events"), layer, raw, warehouse


def _run(shop: tuple[Any, SemanticLayer, pd.DataFrame, Warehouse], target: str,
         **options: Any) -> tuple[Any, dict[str, Any]]:
    events, layer = shop[:2]
    return find_anomalies(events, Request(target, **options), layer=layer,
                          catalog_events=["add_to_cart", "product_view"], now=NOW)


def _per_day(raw: pd.DataFrame, event: str, column: str = "local_day") -> pd.Series:
    return raw[raw["event"] == event].groupby(column).size()


def _observed(points: list[dict[str, Any]], dimension: str | None = None,
              value: str | None = None) -> dict[str, float]:
    return {p["time"][:10]: p["observed"] for p in points
            if p["dimension"] == dimension and p["value"] == value}


def test_day_periods_are_local_days_across_the_dst_switch(shop: Any) -> None:
    raw = shop[2]
    detection, about = _run(shop, "add_to_cart", grain="day", backtest="21d", points=True,
                            by=("platform",))
    observed = _observed(detection.points)
    local = _per_day(raw, "add_to_cart")
    days = [d.isoformat() for d in pd.date_range("2026-10-27", "2026-11-16").date]
    assert sorted(observed) == days
    assert observed == {d: float(local[d]) for d in days}
    # the test means something: UTC days count differently on most of these days
    utc = _per_day(raw, "add_to_cart", "utc_day")
    assert sum(observed[d] != utc[d] for d in days) >= 15
    # each period opens at local midnight; the switch's day is 25 hours long
    times = {p["time"][:10]: p["time"] for p in detection.points if p["dimension"] is None}
    assert times["2026-11-01"] == "2026-11-01T00:00:00-07:00"
    assert times["2026-11-02"] == "2026-11-02T00:00:00-08:00"
    assert about["evaluated"] == {"start": "2026-10-27T00:00:00-07:00",
                                  "end": "2026-11-17T00:00:00-08:00"}
    android = raw[(raw["event"] == "add_to_cart") & (raw["platform"] == "android")]
    by_value = _observed(detection.points, "platform", "android")
    assert by_value == {d: float(n) for d, n in android.groupby("local_day").size().items()
                        if d in by_value}
    assert len(by_value) >= 14  # two weeks of training by dimension value (the default)


def test_a_local_days_drop_is_found_on_that_day_and_nothing_else(shop: Any) -> None:
    detection, _ = _run(shop, "add_to_cart", grain="day", backtest="21d")
    day = ("down", "2026-11-10T00:00:00-08:00", "2026-11-11T00:00:00-08:00", 1)
    assert sorted((a.dimension, a.value, a.direction, a.start.isoformat(),
                   a.end.isoformat(), a.periods) for a in detection.anomalies) == [
        ("", "", *day), ("platform", "android", *day), ("platform", "ios", *day)]
    assert "from 2026-11-10 00:00 PST to 2026-11-11 00:00 PST" in \
        detection.anomalies[0].message()
    views, _ = _run(shop, "product_view", grain="day", backtest="21d")
    assert views.anomalies == []  # the weekly pattern holds across the 25-hour day


def test_metrics_and_rates_by_day_count_local_days(shop: Any) -> None:
    raw = shop[2]
    local = _per_day(raw, "add_to_cart")
    carts, _ = _run(shop, "carts", grain="day", backtest="7d", points=True)
    observed = _observed(carts.points)
    assert len(observed) == 7
    assert observed == {d: float(local[d]) for d in observed}
    share, _ = _run(shop, "cart_per_view", grain="day", backtest="7d", points=True)
    views = _per_day(raw, "product_view")
    observed = _observed(share.points)
    assert len(observed) == 7
    assert observed == pytest.approx({d: local[d] / views[d] for d in observed})


def test_metric_hours_are_the_hours_they_hold(shop: Any) -> None:
    """A metric's hours were local hours numbered as UTC ones: in Los Angeles each
    judged hour held the events of 8 hours before, and the last 8 were empty."""
    raw = shop[2]
    hours = raw[raw["event"] == "add_to_cart"].groupby("utc_hour").size()
    detection, _ = _run(shop, "carts", evaluate="12h", points=True)
    observed = {p["time"]: p["observed"] for p in detection.points}
    assert len(observed) == 12
    assert observed == {h.isoformat(): float(hours.get(h, 0))
                        for h in pd.date_range(NOW - timedelta(hours=12), periods=12,
                                               freq="h")}


def test_forecast_history_is_whole_local_days(shop: Any) -> None:
    """At 22:00 in Los Angeles the UTC date is already tomorrow's: the forecast took
    the local day not yet over as a whole day of its history."""
    _, layer, raw, warehouse = shop
    workspace = SimpleNamespace(metrics_dir=Path(layer.files[0]).parent,
                                config=SimpleNamespace(timezone=layer.timezone))
    now = datetime(2026, 11, 17, 6, 0, tzinfo=UTC)  # 2026-11-16 22:00 in Los Angeles
    answer = forecast_local(warehouse, workspace, {"metric": "carts", "horizon": "7d",
                                                   "history": "28d"}, now,
                            catalog=layer.catalog)
    local = _per_day(raw, "add_to_cart")
    held = {row["date"]: row["actual"] for row in answer["backtest"]["points"]}
    assert max(held) == "2026-11-15"
    assert held == {d: float(local[d]) for d in held}
    assert answer["forecast"][0]["date"] == "2026-11-16"
