"""Trends by calendar month, in a zone with a half-hour offset (Asia/Kolkata, +05:30), on
DuckDB, PostgreSQL and Spark (the ``engine`` fixture), against months worked out here
with zoneinfo.

The events sit within an hour of local midnight at the ends of months: 2026-02-28 23:40
in Kolkata is 18:10 UTC the same day, 00:20 on March 1st is 18:50 UTC on February 28th,
so a month cut in UTC would put both in February.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from tests.conftest import events_arrow

from nerve.analytics import TrendSpec, parse_time, trend, trend_request
from nerve.analytics._trends import recent
from nerve.errors import QueryError

KOLKATA = "Asia/Kolkata"
ZONE = ZoneInfo(KOLKATA)


def _rows() -> list[dict[str, Any]]:
    rng = random.Random(20260301)
    rows = []
    month_starts = [date(2025, 11, 1), date(2025, 12, 1), date(2026, 1, 1), date(2026, 2, 1),
                    date(2026, 3, 1), date(2026, 4, 1), date(2026, 5, 1)]
    for i in range(300):
        first = rng.choice(month_starts)
        midnight = datetime(first.year, first.month, first.day, tzinfo=ZONE)
        when = (midnight + timedelta(minutes=rng.randint(-60, 60))).astimezone(UTC)
        rows.append({"message_id": f"m{i}", "user_id": f"u{rng.randint(1, 30)}",
                     "event": "order", "timestamp": when})
    return rows


ROWS = _rows()


def _local_month(when: datetime) -> date:
    return when.astimezone(ZONE).date().replace(day=1)


@pytest.fixture(scope="module")
def table(engine: Any) -> Any:
    return engine.load("events_monthly", events_arrow(ROWS))


def test_monthly_trend_counts_local_months_against_as_many_months_before(table: Any) -> None:
    """February 2026 is 28 days long and March 31: the previous period of March-April
    is January-February, month for month, not the 61 days before March 1st."""
    rows = trend(table, TrendSpec(date(2026, 3, 1), date(2026, 4, 30), event="order",
                                  grain="month", timezone=KOLKATA))
    per_month = Counter(_local_month(r["timestamp"]) for r in ROWS)
    assert [r["period"].isoformat() for r in rows] == [
        "2026-03-01T00:00:00+05:30", "2026-04-01T00:00:00+05:30"]
    assert [r["previous_period"].isoformat() for r in rows] == [
        "2026-01-01T00:00:00+05:30", "2026-02-01T00:00:00+05:30"]
    assert [r["value"] for r in rows] == [per_month[date(2026, 3, 1)],
                                          per_month[date(2026, 4, 1)]]
    assert [r["previous"] for r in rows] == [per_month[date(2026, 1, 1)],
                                             per_month[date(2026, 2, 1)]]
    assert [r["partial"] for r in rows] == [False, False]


def test_monthly_trend_of_users(table: Any) -> None:
    rows = trend(table, TrendSpec(date(2025, 12, 1), date(2026, 2, 28), event="order",
                                  measure="users", grain="month", compare=False,
                                  timezone=KOLKATA))
    users: dict[date, set[str]] = {}
    for r in ROWS:
        users.setdefault(_local_month(r["timestamp"]), set()).add(r["user_id"])
    assert [(r["period"].date(), r["value"]) for r in rows] == [
        (m, len(users[m])) for m in (date(2025, 12, 1), date(2026, 1, 1), date(2026, 2, 1))]


METRICS = """
metrics:
  orders:
    measure: {agg: count, event: order}
"""


def test_metric_trend_by_month_is_the_layers_months(tmp_path: Any) -> None:
    import ibis

    from nerve.catalog import Catalog
    from nerve.semantic import MetricQuery, SemanticLayer

    (tmp_path / "events").mkdir()
    (tmp_path / "events" / "order.yaml").write_text("name: order\n")
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "orders.yaml").write_text(METRICS)
    layer = SemanticLayer.from_folder(tmp_path / "metrics",
                                      Catalog.load(tmp_path / "events"), timezone=KOLKATA)
    table = ibis.duckdb.connect().create_table("events", events_arrow(ROWS))
    body = {"grain": "month", "since": "2026-02-01", "until": "2026-04-30"}
    metric = trend_request(table, {**body, "metric": "orders"}, lambda: layer,
                           timezone=KOLKATA)["rows"]
    event = trend_request(table, {**body, "event": "order"}, timezone=KOLKATA)["rows"]
    assert metric == event
    direct = layer.query(MetricQuery(("orders",), grain="month", since=body["since"],
                                     until=body["until"]), table).table.to_pylist()
    assert [(r["month"], r["orders"]) for r in direct] == [
        (r["period"].date(), r["value"]) for r in metric]


def test_a_duration_by_month_is_that_many_calendar_months() -> None:
    now = datetime(2026, 11, 30, 7, tzinfo=UTC)
    assert recent(timedelta(days=90), "month", ZONE, now) == datetime(2026, 9, 1)  # noqa: DTZ001
    assert recent(timedelta(days=360), "month", ZONE, now) == datetime(2025, 12, 1)  # noqa: DTZ001
    # 18:40 UTC on the 31st is already the 1st in Kolkata: that month is the current one
    late = datetime(2026, 10, 31, 18, 40, tzinfo=UTC)
    assert recent(timedelta(days=30), "month", ZONE, late) == datetime(2026, 11, 1)  # noqa: DTZ001


def test_since_takes_the_durations_the_error_advises() -> None:
    """``3m`` is refused as ambiguous with the advice to write 3mo or 3min: those are
    read, not refused as 'not a date'."""
    now = datetime(2026, 11, 30, 7, tzinfo=UTC)
    assert parse_time("3mo", what="since", now=now) == now - timedelta(days=90)
    assert parse_time("90min", what="since", now=now) == now - timedelta(minutes=90)
    # a year, as `nerve metrics query --since 1y` takes it
    assert parse_time("1y", what="since", now=now) == now - timedelta(days=365)
    assert recent(timedelta(days=365), "month", ZONE, now) == datetime(2025, 12, 1)  # noqa: DTZ001
    with pytest.raises(QueryError, match="3min for minutes or 3mo for months"):
        parse_time("3m", what="since", now=now)
