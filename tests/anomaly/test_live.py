"""The live monitor: per-minute counters fed the way the loader feeds them, judged as the
minutes complete. Count-based: alerts are asserted by minutes of data, not wall time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from nerve.anomaly import LiveMonitor, prometheus_text
from nerve.envelope import ENVELOPE_SCHEMA
from nerve.loader._commit import commit_load
from nerve.warehouse import Warehouse

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
M0 = int(T0.timestamp() // 60)


def minute_cells(minute: int, rng: np.random.Generator, android_rate: float) -> pd.DataFrame:
    """One minute of add_to_cart and page counts by platform (what one poll returns)."""
    rows = []
    for platform, rate in (("ios", 25.0), ("android", android_rate)):
        rows.append({"event": "add_to_cart", "minute": minute, "platform": platform,
                     "n": rng.poisson(rate)})
    rows.append({"event": "page", "minute": minute, "platform": "web", "n": rng.poisson(40)})
    return pd.DataFrame(rows)


def stream(drop_at: int | None, minutes: int = 120, seed: int = 0) -> tuple[LiveMonitor, dict[
        int, list[str]]]:
    """Feed ``minutes`` minutes; android add_to_cart falls 60% from minute ``drop_at``.

    Returns the monitor and, per fed minute, the alerts raised after it completed.
    """
    monitor = LiveMonitor(settle=0)
    rng = np.random.default_rng(seed)
    raised: dict[int, list[str]] = {}
    for k in range(minutes):
        rate = 25.0 * (0.4 if drop_at is not None and k >= drop_at else 1.0)
        monitor.observe(minute_cells(M0 + k, rng, rate))
        # "now" is the start of the next minute: minute k is complete
        fresh = monitor.check(T0 + timedelta(minutes=k + 1))
        raised[k] = [f"{a.event}/{a.dimension}={a.value}/{a.direction}" for a in fresh]
    return monitor, raised


def test_a_drop_alerts_within_five_minutes_of_data() -> None:
    monitor, raised = stream(drop_at=90)
    first = min(k for k, alerts in raised.items() if alerts)
    assert 90 <= first <= 94  # within 5 complete minutes of the drop
    assert "add_to_cart/platform=android/down" in raised[first]
    everything = [a for alerts in raised.values() for a in alerts]
    # the overall add_to_cart count falls too (android is half of it); nothing else moves
    assert set(everything) <= {"add_to_cart/platform=android/down", "add_to_cart/=/down"}
    alert = next(a for a in monitor.history if a.value == "android")
    assert alert.start >= T0 + timedelta(minutes=86)
    assert alert.delay_minutes <= 5
    # it stays open (one alert, not one per minute) while the drop lasts
    assert sum(a == "add_to_cart/platform=android/down" for a in everything) == 1


def test_a_steady_stream_alerts_on_nothing() -> None:
    for seed in (1, 2, 3):
        monitor, raised = stream(drop_at=None, seed=seed)
        assert not any(raised.values())
        assert monitor.snapshot()["alerts_total"] == 0


def test_prometheus_text_counts_alerts() -> None:
    monitor, _ = stream(drop_at=90)
    text = prometheus_text(monitor)
    assert "# TYPE nerve_anomaly_alerts_total counter" in text
    assert ('nerve_anomaly_alerts_total{event="add_to_cart",dimension="platform",'
            'value="android"} 1') in text
    assert "nerve_anomaly_open_alerts " in text
    assert "nerve_anomaly_alerts_total{" not in prometheus_text(LiveMonitor())


def _batch(rows: list[dict[str, object]]) -> pa.RecordBatch:
    full = []
    for i, row in enumerate(rows):
        at = row["at"]
        full.append({"message_id": f"m{row['tag']}-{i}", "type": "track",
                     "event": row["event"], "name": None, "user_id": "u1",
                     "anonymous_id": None, "group_id": None, "previous_id": None,
                     "timestamp": at, "original_timestamp": at, "sent_at": at,
                     "received_at": at, "properties": "{}", "traits": None,
                     "context": '{{"device": {{"type": "{}"}}}}'.format(row["platform"]),
                     "source": "ios", "historical": False, "schema_version": "1",
                     "violations": None})
    return pa.RecordBatch.from_pylist(full, schema=ENVELOPE_SCHEMA)


def test_poll_counts_only_rows_loaded_since_the_last_pass(tmp_path: Path) -> None:
    """The loader side: each poll reads the rows committed since its watermark."""
    warehouse = Warehouse.open(f"duckdb:///{tmp_path / 'w.duckdb'}")
    monitor = LiveMonitor()
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    first = [{"tag": "a", "event": "add_to_cart", "platform": "ios",
              "at": now - timedelta(minutes=3)} for _ in range(7)]
    commit_load(warehouse.cursor(), [_batch(first)], writer="w", segment="s", start_offset=0,
                end_offset=1, dedup_window=None)
    events = warehouse.ibis().table("events")
    assert monitor.poll(events, datetime.now(UTC) + timedelta(seconds=1)) == 7
    assert monitor.poll(events, datetime.now(UTC) + timedelta(seconds=1)) == 0  # nothing new
    second = [{"tag": "b", "event": "add_to_cart", "platform": "android",
               "at": now - timedelta(minutes=2)} for _ in range(4)]
    commit_load(warehouse.cursor(), [_batch(second)], writer="w", segment="s",
                start_offset=1, end_offset=2, dedup_window=None)
    assert monitor.poll(events, datetime.now(UTC) + timedelta(seconds=1)) == 4
    minute = int((now - timedelta(minutes=3)).timestamp() // 60)
    assert monitor.counts[("add_to_cart", "", "")][minute] == 7
    assert monitor.counts[("add_to_cart", "platform", "android")][minute + 1] == 4
    assert monitor.snapshot()["series"] == 3
    warehouse.close()


def test_prometheus_client_collector_reads_the_monitor() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from nerve.anomaly import prometheus_collector

    class State:
        live_monitor: LiveMonitor | None = None

    state = State()
    registry = CollectorRegistry()
    registry.register(prometheus_collector(state))
    assert b"nerve_anomaly_open_alerts 0.0" in generate_latest(registry)
    state.live_monitor, _ = stream(drop_at=90)
    text = generate_latest(registry).decode()
    assert ('nerve_anomaly_alerts_total{dimension="platform",event="add_to_cart",'
            'value="android"} 1.0') in text


def test_a_release_replacing_an_app_version_is_not_a_live_drop() -> None:
    # a forced update: every event moves from 4.1.1 to 4.2.0 at minute 90, totals unchanged
    monitor = LiveMonitor(settle=0)
    rng = np.random.default_rng(4)
    raised = []
    for k in range(120):
        version = "4.2.0" if k >= 90 else "4.1.1"
        cells = pd.DataFrame([{"event": "add_to_cart", "minute": M0 + k, "app_version": version,
                               "n": rng.poisson(30)}])
        monitor.observe(cells)
        raised += monitor.check(T0 + timedelta(minutes=k + 1))
    assert not [a for a in raised if a.direction == "down"]


def test_a_pass_amid_a_load_that_sees_part_of_the_last_minutes_opens_no_alert() -> None:
    """A burst of late events, loaded over two polls: the first poll saw a third of the
    last five minutes and every series alerted, then closed at the next poll."""
    monitor = LiveMonitor(settle=0)
    rng = np.random.default_rng(5)
    for k in range(90):
        monitor.observe(minute_cells(M0 + k, rng, 25.0))
        assert monitor.check(T0 + timedelta(minutes=k + 1)) == []
    late = [minute_cells(M0 + k, rng, 25.0) for k in range(90, 95)]
    part = [cells.assign(n=cells["n"] // 3) for cells in late]
    for cells in part:
        monitor.observe(cells)
    now = T0 + timedelta(minutes=95)
    assert monitor.check(now) == []  # the loader is half-way through the burst
    for cells, seen in zip(late, part, strict=True):
        monitor.observe(cells.assign(n=cells["n"] - seen["n"]))
    assert monitor.check(now + timedelta(seconds=15)) == []
    assert monitor.open == {}
    # a drop that the next pass confirms opens, once
    for k in range(95, 100):
        monitor.observe(minute_cells(M0 + k, rng, 25.0).assign(n=0))
    assert monitor.check(T0 + timedelta(minutes=100)) == []
    opened = monitor.check(T0 + timedelta(minutes=100, seconds=15))
    assert {(a.event, a.direction) for a in opened} == {("add_to_cart", "down"), ("page", "down")}
    assert monitor.check(T0 + timedelta(minutes=100, seconds=30)) == []
