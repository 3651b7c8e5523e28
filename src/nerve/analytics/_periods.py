"""Days, weeks and months in the workspace's time zone, for retention, trends and funnel
bounds.

The same rules as metrics (``nerve.semantic._time``, docs/metrics.md "Time"), so that a
trend, a retention table and ``nerve metrics query`` cut time alike: a day runs from one
local midnight to the next (23 or 25 hours across a DST switch), weeks start on Monday,
and a naive datetime is wall-clock time in the zone. The engine turns each event's UTC
instant into local wall-clock time with the semantic layer's ``local_time`` (one function
per engine) and truncates that; the list of periods is made in Python.

A period is labelled by its local start as an aware datetime
(``2026-03-09T00:00:00-07:00``), which says both the local day and the instant.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import ibis.expr.types as ir

from nerve.semantic._engines import local_time
from nerve.semantic._time import to_utc, zone

__all__ = ["UNITS", "bound", "instant", "label", "local_start", "wall_clock", "zone"]

#: grain -> Ibis truncation unit (retention takes day and week only)
UNITS = {"hour": "h", "day": "D", "week": "W", "month": "M"}


def instant(value: datetime, tz: ZoneInfo) -> datetime:
    """``value`` as an aware UTC instant; a naive value is wall-clock time in ``tz``."""
    return value.astimezone(UTC) if value.tzinfo else to_utc(value, tz)


def bound(value: date, tz: ZoneInfo, *, end: bool = False) -> datetime:
    """A ``since`` or ``until`` as an aware UTC instant, read as metrics read it
    (docs/metrics.md, "Time"): a datetime is that instant (naive: wall-clock time in
    ``tz``); a date is its local midnight or, as an ``end`` (``until``), the next one,
    so that the day is included.

    >>> bound(date(2026, 3, 8), ZoneInfo("America/Los_Angeles"), end=True)
    datetime.datetime(2026, 3, 9, 7, 0, tzinfo=datetime.timezone.utc)
    """
    if isinstance(value, datetime):
        return instant(value, tz)
    day = datetime(value.year, value.month, value.day)  # noqa: DTZ001 - wall clock
    return to_utc(day + timedelta(days=1) if end else day, tz)


def local_start(ts: ir.TimestampValue, grain: str, timezone: str,
                dialect: str) -> ir.TimestampValue:
    """The local start of the period holding each instant, as naive wall-clock time
    (``dialect``: ``_fields.dialect_of`` the table)."""
    return local_time(ts, timezone, dialect).truncate(UNITS[grain])


def wall_clock(value: Any) -> Any:
    """A period start as an engine or the semantic layer hands it back, as naive
    wall-clock time: Spark tags it with its session zone (UTC), metrics give days and
    weeks as dates."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)  # noqa: DTZ001 - wall clock
    return value


def label(local: datetime, tz: ZoneInfo) -> datetime:
    """A naive local period start as an aware datetime in ``tz`` (the offset of that
    moment: -08:00 before the US spring switch, -07:00 after)."""
    return local.replace(tzinfo=tz)
