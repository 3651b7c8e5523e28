"""Days without events inside the history the checks learn from (missing_events)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from tests.quality.conftest import NOW, catalog, spec

from nerve.quality import ChecksConfig, Status, run_checks

NY = ZoneInfo("America/New_York")
CONFIG = dataclasses.replace(ChecksConfig(), timezone="America/New_York")


def hourly(event: str, per_hour: int, days: int, skip: Any) -> list[dict[str, Any]]:
    """``per_hour`` events an hour for ``days`` days before NOW, but on the local days
    ``skip(day)`` is true for."""
    rows = []
    for h in range(days * 24):
        at = NOW - timedelta(hours=h + 1)
        if not skip(at.astimezone(NY).date()):
            rows.extend({"event": event, "timestamp": at + timedelta(minutes=7 * i)}
                        for i in range(per_hour))
    return rows


def gaps(results: list[Any]) -> dict[tuple[str | None, str], Any]:
    return {(r.event, r.dimensions["day"]): r for r in results
            if r.check == "missing_events" and "day" in r.dimensions}


def test_a_day_without_any_event_inside_the_history_is_flagged(inputs: Any) -> None:
    """A backfill that left a local day out (the whole product), and one event missing on
    a day the others were there: each flagged with its date; the days around, the day not
    over yet and the first day of the window are not."""
    holiday = date(2026, 11, 12)
    lost = date(2026, 11, 4)
    events = hourly("search", 2, 21, lambda d: d == holiday)
    events += hourly("add_to_cart", 1, 21, lambda d: d in (holiday, lost))
    results = run_checks(inputs(events), catalog(spec("search"), spec("add_to_cart")),
                         CONFIG, now=NOW, select=["missing_events"])
    found = gaps(results)
    assert set(found) == {(None, "2026-11-12"), ("add_to_cart", "2026-11-04")}
    day = found[(None, "2026-11-12")]
    assert day.status is Status.warn
    # the local day (New York), not the UTC one
    assert day.since == datetime(2026, 11, 12, 5, tzinfo=UTC)
    assert day.details["end"] == "2026-11-13T05:00:00+00:00"
    assert day.message.startswith("2026-11-12 (Thursday, America/New_York) has no event at "
                                  "all, inside the history the checks learn from: other "
                                  "Thursdays hold 72 events (median).")
    assert "no add_to_cart event" in found[("add_to_cart", "2026-11-04")].message
    # selecting an event keeps the whole product's gap: it is that event's gap too
    picked = run_checks(inputs(events), catalog(spec("search"), spec("add_to_cart")),
                        CONFIG, now=NOW, select=["search", "missing_events"])
    assert set(gaps(picked)) == {(None, "2026-11-12")}


def test_a_product_closed_on_weekends_raises_nothing(inputs: Any) -> None:
    """A B2B tool: no event on any Saturday or Sunday is what its history says."""
    events = hourly("report_run", 3, 24, lambda d: d.weekday() >= 5)
    results = run_checks(inputs(events), catalog(spec("report_run")), CONFIG, now=NOW,
                         select=["missing_events"])
    assert gaps(results) == {}
    assert all(r.status is Status.passed for r in results)


def test_a_sparse_event_quiet_for_a_day_is_no_gap(inputs: Any) -> None:
    """An event that sees a few a day may see none: below min_day_events a day is not
    judged."""
    events = hourly("search", 2, 14, lambda d: False)
    events += [e for e in hourly("refund", 1, 14, lambda d: d.day % 3 == 0)
               if e["timestamp"].hour % 6 == 0]  # 4 a day, none every third day
    results = run_checks(inputs(events), catalog(spec("search"), spec("refund")), CONFIG,
                         now=NOW, select=["missing_events"])
    assert gaps(results) == {}
