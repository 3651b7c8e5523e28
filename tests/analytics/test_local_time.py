"""Funnels, retention and trends in a workspace that is not on UTC (America/Los_Angeles,
over the US DST switch of 2026-03-08), against answers worked out here with zoneinfo, on
DuckDB, PostgreSQL and Spark (the ``engine`` fixture).

The events sit around local midnight, where a UTC day and a Los Angeles day disagree
(LA midnight is 08:00 UTC before the switch and 07:00 UTC after it).
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from tests.conftest import events_arrow

from nerve.analytics import (
    FunnelSpec,
    RetentionSpec,
    Step,
    TrendSpec,
    funnel_request,
    parse_time,
    retention,
    retention_request,
    trend,
    trend_request,
)

LA = "America/Los_Angeles"
ZONE = ZoneInfo(LA)
USERS = [f"u{i:02d}" for i in range(40)]


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=ZONE)


def _rows() -> list[dict[str, Any]]:
    """Per user, a few events on 2026-03-05..12 at LA times from 22:00 to 02:00, so that
    every day's edge (and the missing 02:00-03:00 of 03-08) has events near it."""
    rng = random.Random(20260308)
    rows = []
    for user in USERS:
        for _ in range(rng.randint(3, 9)):
            day = date(2026, 3, rng.randint(5, 12))
            minutes = rng.randint(-120, 150)  # from local midnight
            # wall-clock arithmetic, as Python does it on an aware datetime
            when = (_midnight(day) + timedelta(minutes=minutes)).astimezone(UTC)
            event = rng.choice(["view", "view", "cart", "signup", "open", "open"])
            rows.append({"user_id": user, "event": event, "timestamp": when})
    return rows


ROWS = _rows()


def _local_day(when: datetime) -> date:
    return when.astimezone(ZONE).date()


def _arrow() -> Any:
    """ROWS as the warehouse's events table (``events_table`` is function-scoped)."""
    return events_arrow([{"message_id": f"m{i}", **r} for i, r in enumerate(ROWS)])


@pytest.fixture(scope="module")
def table(engine: Any) -> Any:
    return engine.load("events_la", _arrow())


def test_dates_are_read_in_the_workspace_zone() -> None:
    assert parse_time("2026-03-10", what="since", timezone=LA) == \
        datetime(2026, 3, 10, 7, tzinfo=UTC)  # PDT
    assert parse_time("2026-03-01T23:30", what="until", timezone=LA) == \
        datetime(2026, 3, 2, 7, 30, tzinfo=UTC)  # PST
    assert parse_time("2026-03-10T00:00+00:00", what="since", timezone=LA) == \
        datetime(2026, 3, 10, tzinfo=UTC)  # an explicit offset wins
    spec = FunnelSpec((Step("view"), Step("cart")), since=datetime(2026, 3, 10),  # noqa: DTZ001
                      timezone=LA).validate()
    assert spec.since == datetime(2026, 3, 10, 7, tzinfo=UTC)


def test_funnel_bounds_are_local_days(table: Any) -> None:
    """One local day each (an until date is included, as in metrics)."""
    for since, until in [("2026-03-08", "2026-03-08"), ("2026-03-10", "2026-03-10")]:
        lo = _midnight(date.fromisoformat(since))
        hi = _midnight(date.fromisoformat(until) + timedelta(days=1))
        views = [r for r in ROWS if r["event"] == "view" and lo <= r["timestamp"] < hi]
        carts = defaultdict(list)
        for r in ROWS:
            if r["event"] == "cart":
                carts[r["user_id"]].append(r["timestamp"])
        converted = {v["user_id"] for v in views
                     if any(v["timestamp"] <= c <= v["timestamp"] + timedelta(days=1)
                            for c in carts[v["user_id"]])}
        body = {"steps": ["view", "cart"], "since": since, "until": until}
        rows = funnel_request(table, body, timezone=LA)["rows"]
        assert [r["users"] for r in rows] == [len({v["user_id"] for v in views}),
                                              len(converted)], since
        utc = funnel_request(table, body)["rows"]  # the same body read as UTC days
        assert utc[0]["users"] != rows[0]["users"], "the data should tell UTC from LA"


def _expected_retention(since: date, until: date, periods: int) -> dict[tuple[date, int],
                                                                       tuple[int, int]]:
    first: dict[str, datetime] = {}
    for r in sorted(ROWS, key=lambda r: r["timestamp"]):
        if r["event"] == "signup":
            first.setdefault(r["user_id"], r["timestamp"])
    cohorts = {u: _local_day(t) for u, t in first.items()
               if since <= _local_day(t) <= until}  # an until date is included
    sizes: dict[date, int] = defaultdict(int)
    for day in cohorts.values():
        sizes[day] += 1
    back: dict[tuple[date, int], set[str]] = defaultdict(set)
    for r in ROWS:
        user = r["user_id"]
        if r["event"] == "open" and user in cohorts and r["timestamp"] >= first[user]:
            period = (_local_day(r["timestamp"]) - cohorts[user]).days
            if period <= periods:
                back[(cohorts[user], period)].add(user)
    return {(day, p): (size, len(back[(day, p)])) for day, size in sizes.items()
            for p in range(periods + 1)}


def test_retention_cohorts_and_periods_are_local_days(table: Any) -> None:
    body = {"start_event": "signup", "return_event": "open", "grain": "day", "periods": 3,
            "since": "2026-03-05", "until": "2026-03-09"}
    rows = retention_request(table, body, timezone=LA)["rows"]
    got = {(r["cohort"].date(), r["period"]): (r["cohort_size"], r["users"]) for r in rows}
    expected = _expected_retention(date(2026, 3, 5), date(2026, 3, 9), 3)
    assert got == expected
    assert len({d for d, _ in expected}) >= 3  # several cohorts, on both sides of 03-08
    labels = {r["cohort"].isoformat() for r in rows}
    assert labels <= {_midnight(d).isoformat() for d, _ in expected}
    assert "2026-03-07T00:00:00-08:00" in labels or "2026-03-09T00:00:00-07:00" in labels



def test_a_copy_without_a_time_zone_has_the_same_local_days(engine: Any) -> None:
    """A copy of ``events`` whose timestamps have no time zone (PostgreSQL's
    ``timestamp``, DuckDB's ``TIMESTAMP``) holds UTC: its retention is the same as the
    warehouse's. The engines' ``timezone()`` read it as Los Angeles wall-clock time and
    moved every event 14-16 hours from where it belongs."""
    if engine.name == "spark":
        pytest.skip("Spark's TIMESTAMP is an instant (session time zone UTC)")
    import pyarrow as pa

    data = _arrow()
    at = data.schema.get_field_index("timestamp")
    data = data.set_column(at, "timestamp", data.column(at).cast(pa.timestamp("us")))
    table = engine.load("events_la_naive", data)
    body = {"start_event": "signup", "return_event": "open", "grain": "day", "periods": 3,
            "since": "2026-03-05", "until": "2026-03-09"}
    rows = retention_request(table, body, timezone=LA)["rows"]
    got = {(r["cohort"].date(), r["period"]): (r["cohort_size"], r["users"]) for r in rows}
    assert got == _expected_retention(date(2026, 3, 5), date(2026, 3, 9), 3)

def test_weekly_retention_starts_on_local_mondays(table: Any) -> None:
    rows = retention(table, RetentionSpec("signup", "open", grain="week", periods=1,
                                          timezone=LA))
    # 2026-03-09 is a Monday; the events run from Wednesday 03-04 (22:00) to 03-13
    cohorts = {r["cohort"] for r in rows}
    assert cohorts == {_midnight(date(2026, 3, 2)), _midnight(date(2026, 3, 9))}
    assert all(c.astimezone(ZONE).hour == 0 and c.weekday() == 0 for c in cohorts)


def _users_per_day(event: str) -> dict[date, int]:
    seen: dict[date, set[str]] = defaultdict(set)
    for r in ROWS:
        if r["event"] == event:
            seen[_local_day(r["timestamp"])].add(r["user_id"])
    return {day: len(users) for day, users in seen.items()}


def test_daily_trend_is_local_days_with_their_offsets(table: Any) -> None:
    body = {"event": "open", "measure": "users", "grain": "day",
            "since": "2026-03-08", "until": "2026-03-11"}
    rows = trend_request(table, body, timezone=LA)["rows"]
    per_day = _users_per_day("open")
    days = [date(2026, 3, d) for d in range(8, 12)]
    before = [date(2026, 3, d) for d in range(4, 8)]
    assert [r["period"].isoformat() for r in rows] == [
        "2026-03-08T00:00:00-08:00", "2026-03-09T00:00:00-07:00",
        "2026-03-10T00:00:00-07:00", "2026-03-11T00:00:00-07:00"]
    assert [r["value"] for r in rows] == [float(per_day.get(d, 0)) for d in days]
    assert [r["previous_period"] for r in rows] == [_midnight(d) for d in before]
    assert [r["previous"] for r in rows] == [float(per_day.get(d, 0)) for d in before]


def test_hourly_trend_over_the_dst_switch(table: Any) -> None:
    """The local day of 2026-03-08 has 23 hours: no bucket for 02:00, which never was."""
    rows = trend(table, TrendSpec(datetime(2026, 3, 8), datetime(2026, 3, 9),  # noqa: DTZ001
                                  event="view", grain="hour", compare=False, timezone=LA))
    assert len(rows) == 23
    assert [r["period"].hour for r in rows][:4] == [0, 1, 3, 4]
    assert rows[1]["period"].isoformat() == "2026-03-08T01:00:00-08:00"
    assert rows[2]["period"].isoformat() == "2026-03-08T03:00:00-07:00"
    counts: dict[int, int] = defaultdict(int)
    for r in ROWS:
        local = r["timestamp"].astimezone(ZONE)
        if r["event"] == "view" and local.date() == date(2026, 3, 8):
            counts[local.hour] += 1
    assert {r["period"].hour: r["value"] for r in rows} == {
        h: float(counts.get(h, 0)) for h in range(24) if h != 2}


def test_a_partial_day_counts_whole(table: Any) -> None:
    """``since`` inside a day widens to the day's start, as a metric's range does: the
    row is labelled with the whole day, so it counts the whole day."""
    rows = trend(table, TrendSpec(datetime(2026, 3, 10, 12, tzinfo=UTC),
                                  datetime(2026, 3, 11, 7, tzinfo=UTC),
                                  event="open", measure="users", compare=False,
                                  timezone=LA))
    assert [r["period"] for r in rows] == [_midnight(date(2026, 3, 10))]
    assert rows[0]["value"] == _users_per_day("open").get(date(2026, 3, 10), 0)


ACTIVE = """
metrics:
  active_users:
    measure: {agg: count_distinct, event: open}
"""


def test_metric_trend_matches_the_event_trend_and_metrics(tmp_path: Any) -> None:
    """The same periods and numbers from ``--metric`` and from the event, as from
    ``nerve metrics query`` (DuckDB only: the layer has its own engine suite)."""
    import ibis

    from nerve.catalog import Catalog
    from nerve.semantic import MetricQuery, SemanticLayer

    (tmp_path / "events").mkdir()
    (tmp_path / "events" / "open.yaml").write_text("name: open\n")
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "active.yaml").write_text(ACTIVE)
    layer = SemanticLayer.from_folder(tmp_path / "metrics", Catalog.load(tmp_path / "events"),
                                      timezone=LA)
    table = ibis.duckdb.connect().create_table("events", _arrow())
    body = {"measure": "users", "grain": "day", "since": "2026-03-07", "until": "2026-03-10"}
    metric = trend_request(table, {**body, "metric": "active_users"}, lambda: layer,
                           timezone=LA)["rows"]
    event = trend_request(table, {**body, "event": "open"}, timezone=LA)["rows"]
    assert metric == event
    assert all(type(r["value"]) is int for r in metric + event)  # 3, not 3.0
    # the same since and until as the trend's: the same days
    direct = layer.query(MetricQuery(("active_users",), grain="day", since=body["since"],
                                     until=body["until"]), table).table.to_pylist()
    assert [(_midnight(r["day"]), r["active_users"]) for r in direct] == [
        (r["period"], r["value"]) for r in metric]
