"""Retention cohorts are whole days or weeks of the workspace's zone whatever ``since``
and ``until`` say: a cohort labelled with a week holds everyone whose first event is in
that week, never the part after a ``since`` at Wednesday noon (Asia/Kolkata, +05:30)."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from tests.conftest import events_arrow

from nerve.analytics import RetentionSpec, retention

KOLKATA = "Asia/Kolkata"
ZONE = ZoneInfo(KOLKATA)


def _rows() -> list[dict[str, Any]]:
    """40 users, each with a first event somewhere in 2026-11-02..15 (two weeks from
    Monday) and a few more after it."""
    rng = random.Random(1102)
    rows = []
    for u in range(40):
        minutes = rng.randint(0, 14 * 1440 - 1)
        first = datetime(2026, 11, 2, tzinfo=ZONE) + timedelta(minutes=minutes)
        for k in range(rng.randint(1, 4)):
            when = first + timedelta(days=k * rng.randint(1, 5))
            rows.append({"message_id": f"m{u}-{k}", "user_id": f"u{u}", "event": "order",
                         "timestamp": when.astimezone(UTC)})
    return rows


ROWS = _rows()


def _week(when: datetime) -> date:
    day = when.astimezone(ZONE).date()
    return day - timedelta(days=day.weekday())


def test_a_since_and_until_inside_weeks_keep_the_cohorts_whole() -> None:
    import ibis

    table = ibis.duckdb.connect().create_table("events", events_arrow(ROWS))
    firsts: dict[str, datetime] = {}
    for r in sorted(ROWS, key=lambda r: r["timestamp"]):
        firsts.setdefault(r["user_id"], r["timestamp"])
    sizes: dict[date, int] = defaultdict(int)
    for when in firsts.values():
        sizes[_week(when)] += 1
    # Wednesday noon of the first week to Wednesday of the second (an until date included)
    rows = retention(table, RetentionSpec("order", "order", grain="week", periods=1,
                                          since=datetime(2026, 11, 4, 12),  # noqa: DTZ001
                                          until=date(2026, 11, 11), timezone=KOLKATA),
                     now=datetime(2026, 12, 31, tzinfo=UTC))
    got = {r["cohort"].date(): r["cohort_size"] for r in rows}
    assert got == {date(2026, 11, 2): sizes[date(2026, 11, 2)],
                   date(2026, 11, 9): sizes[date(2026, 11, 9)]}
    assert sum(got.values()) == 40
