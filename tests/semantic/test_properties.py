"""Property test: daily and hourly counts in any time zone match a plain-Python count.

Random purchases around the 2026 DST switches (Europe in late March, the US earlier in
March, Lord Howe Island's 30-minute shift in April) are counted by the semantic layer on
DuckDB and by ``zoneinfo`` in Python; every period, empty ones included, must agree.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import ibis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.semantic.conftest import track

from nerve.semantic import MetricQuery, SemanticLayer

START = datetime(2026, 3, 5, tzinfo=UTC)
ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    minutes=st.lists(st.integers(0, 40 * 24 * 60 - 1), min_size=0, max_size=30),
    zone=st.sampled_from(ZONES),
    grain=st.sampled_from(["day", "week", "hour"]),
)
def test_counts_per_local_period_match_python(
        make_layer: Callable[..., SemanticLayer],
        events_table: Callable[[list[dict[str, Any]]], Any],
        minutes: list[int], zone: str, grain: str) -> None:
    moments = [START + timedelta(minutes=m) for m in minutes]
    con = ibis.duckdb.connect()
    table = con.create_table("events", events_table(
        [track("purchase_complete", m, "u1", revenue=1.0) for m in moments]))
    tz = ZoneInfo(zone)
    first = START.astimezone(tz).replace(tzinfo=None) + timedelta(days=2)
    last = first + timedelta(days=30 if grain != "hour" else 3)
    until = last - timedelta(days=1) if grain != "hour" else last
    rows = make_layer(zone).query(
        MetricQuery(("orders",), grain=grain, since=first.date().isoformat(),
                    until=until.date().isoformat() if grain != "hour" else until.isoformat()),
        table).rows()

    def period(moment: datetime) -> datetime:
        local = moment.astimezone(tz).replace(tzinfo=None)
        if grain == "hour":
            return local.replace(minute=0, second=0, microsecond=0)
        day = local.replace(hour=0, minute=0, second=0, microsecond=0)
        return day - timedelta(days=day.weekday()) if grain == "week" else day

    def key(value: Any) -> datetime:
        return value if isinstance(value, datetime) else datetime(  # noqa: DTZ001 - local
            value.year, value.month, value.day)

    got = {key(r[grain]): r["orders"] for r in rows}
    lo, hi = min(got), max(got)
    expected = Counter(p for p in map(period, moments) if lo <= p <= hi)
    assert {p: n for p, n in got.items() if n} == dict(expected)
    assert len(set(got)) == len(rows)  # each period once
    if grain != "hour":  # and none missing, empty ones included
        assert len(rows) == (hi - lo).days // (7 if grain == "week" else 1) + 1
