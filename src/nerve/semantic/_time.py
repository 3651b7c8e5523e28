"""Time for metrics: durations, grains, query bounds and the time spine, all in local time.

Every period is a span of wall-clock time in the workspace's time zone (``[project]
timezone``): a day in Europe/Berlin starts at local midnight, and the day of the spring
DST switch is 23 hours long. Periods are computed here in Python (they are few) and
handed to the engine as a small spine table, so no engine's calendar arithmetic matters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from nerve.errors import QueryError, did_you_mean

__all__ = [
    "Duration",
    "TimeRange",
    "add_months",
    "floor_to",
    "next_period",
    "parse_bound",
    "parse_duration",
    "periods",
    "resolve_range",
    "shift",
    "zone",
]

_DURATION = re.compile(r"^\s*(\d+)\s*(mo|[hdwmy]|min)\s*$", re.IGNORECASE)
_UNITS = {"h": "hour", "min": "minute", "d": "day", "w": "week", "m": "month", "mo": "month",
          "y": "year"}


@dataclass(frozen=True, slots=True)
class Duration:
    """A calendar duration: a count of minutes, hours, days, weeks, months or years."""

    count: int
    unit: str  # minute | hour | day | week | month | year

    def __str__(self) -> str:
        short = {"minute": "min", "hour": "h", "day": "d", "week": "w", "month": "m",
                 "year": "y"}[self.unit]
        return f"{self.count}{short}"

    def seconds(self) -> float:
        """Exact length in seconds, months taken as 30 days and years as 365."""
        per = {"minute": 60, "hour": 3600, "day": 86400, "week": 7 * 86400,
               "month": 30 * 86400, "year": 365 * 86400}[self.unit]
        return float(self.count * per)


def parse_duration(text: str) -> Duration:
    """``30d``, ``8w``, ``24h``, ``3m`` (months), ``1y``, ``15min``.

    >>> parse_duration("8w")
    Duration(count=8, unit='week')
    """
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(f"expected a duration like 24h, 30d, 8w, 3m or 1y, got {text!r}")
    return Duration(int(match.group(1)), _UNITS[match.group(2).lower()])


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise QueryError(f"unknown time zone {name!r} (nerve.toml [project] timezone)") from exc


def add_months(moment: datetime, months: int) -> datetime:
    """The same day ``months`` later (or earlier), clamped to the month's last day."""
    index = moment.year * 12 + moment.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    for day in (moment.day, 30, 29, 28):
        try:
            return moment.replace(year=year, month=month, day=day)
        except ValueError:
            continue
    raise AssertionError("unreachable: every month has 28 days")


def shift(moment: datetime, duration: Duration, sign: int = 1) -> datetime:
    """``moment`` moved by ``duration`` on the wall clock (naive local time)."""
    n = duration.count * sign
    if duration.unit == "month":
        return add_months(moment, n)
    if duration.unit == "year":
        return add_months(moment, 12 * n)
    unit = {"minute": "minutes", "hour": "hours", "day": "days", "week": "weeks"}[duration.unit]
    return moment + timedelta(**{unit: n})


def floor_to(moment: datetime, grain: str) -> datetime:
    """The start of the period holding ``moment`` (naive local time); weeks start Monday."""
    if grain == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if grain == "day":
        return day
    if grain == "week":
        return day - timedelta(days=day.weekday())
    if grain == "month":
        return day.replace(day=1)
    if grain == "year":
        return day.replace(month=1, day=1)
    raise QueryError(f"unknown grain {grain!r}; expected hour, day, week or month"
                     f"{did_you_mean(grain, ('hour', 'day', 'week', 'month'))}")


def next_period(start: datetime, grain: str) -> datetime:
    if grain == "hour":
        return start + timedelta(hours=1)
    if grain == "day":
        return start + timedelta(days=1)
    if grain == "week":
        return start + timedelta(weeks=1)
    if grain == "month":
        return add_months(start, 1)
    if grain == "year":
        return add_months(start, 12)
    raise QueryError(f"unknown grain {grain!r}; expected hour, day, week or month"
                     f"{did_you_mean(grain, ('hour', 'day', 'week', 'month'))}")


def periods(start: datetime, end: datetime, grain: str,
            tz: ZoneInfo | None = None) -> list[datetime]:
    """Start of every period that overlaps ``[start, end)``.

    With ``tz``, hours that do not exist on the local clock (the spring DST gap) are left
    out: no event can fall in them.
    """
    result = []
    current = floor_to(start, grain)
    while current < end:
        if tz is None or grain != "hour" or to_local(to_utc(current, tz), tz) == current:
            result.append(current)
        current = next_period(current, grain)
    return result


def to_local(moment: datetime, tz: ZoneInfo) -> datetime:
    """An aware instant as naive wall-clock time in ``tz``."""
    return moment.astimezone(tz).replace(tzinfo=None)


def to_utc(local: datetime, tz: ZoneInfo) -> datetime:
    """Naive wall-clock time in ``tz`` as an aware UTC instant (the earlier one on a fold)."""
    return local.replace(tzinfo=tz).astimezone(UTC)


@dataclass(frozen=True, slots=True)
class TimeRange:
    """A query's time range: naive local ``[start, end)`` plus the same instants in UTC."""

    start: datetime
    end: datetime
    tz: ZoneInfo

    @property
    def start_utc(self) -> datetime:
        return to_utc(self.start, self.tz)

    @property
    def end_utc(self) -> datetime:
        return to_utc(self.end, self.tz)


def parse_bound(value: str | date | datetime | None, tz: ZoneInfo, now: datetime, *,
                grain: str | None, is_end: bool) -> datetime | None:
    """One end of a range as naive local time.

    Accepts a date (whole day: an end date is included), a datetime (naive = local), an
    ISO string of either, ``now``, ``today``, ``yesterday``, or a duration back from now
    (``8w``): with a grain, the range then holds that many periods including the current
    one (``--since 8w --grain week`` is 8 weekly rows).
    """
    if value is None:
        return None
    local_now = to_local(now, tz)
    if isinstance(value, datetime):
        return to_local(value, tz) if value.tzinfo else value
    if isinstance(value, date):
        start = datetime(value.year, value.month, value.day)  # noqa: DTZ001 - local wall clock
        return start + timedelta(days=1) if is_end else start
    text = value.strip().lower()
    if text == "now":
        return local_now
    if text in ("today", "yesterday"):
        day = floor_to(local_now, "day") - timedelta(days=1 if text == "yesterday" else 0)
        return day + timedelta(days=1) if is_end else day
    if _DURATION.match(text):
        duration = parse_duration(text)
        if grain is None:
            return shift(local_now, duration, -1)
        # N periods including the current one
        back = shift(floor_to(local_now, grain), duration, -1)
        return floor_to(next_period(back, grain), grain)
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise QueryError(
            f"cannot read the time {value!r}: expected a date (2026-03-01), a datetime, "
            "today, yesterday, now, or a duration back from now (24h, 30d, 8w, 3m)"
        ) from None
    if parsed.tzinfo is not None:
        return to_local(parsed, tz)
    if len(value.strip()) == 10:  # a bare date
        return parsed + timedelta(days=1) if is_end else parsed
    return parsed


def resolve_range(since: str | date | datetime | None, until: str | date | datetime | None,
                  *, grain: str | None, tz: ZoneInfo, now: datetime,
                  data_bounds: tuple[datetime, datetime] | None) -> TimeRange:
    """The query's local ``[start, end)``, snapped outwards to whole periods of ``grain``.

    Missing ends come from ``data_bounds`` (the first and last event, UTC); without data
    either, the range is the current period.
    """
    start = parse_bound(since, tz, now, grain=grain, is_end=False)
    end = parse_bound(until, tz, now, grain=grain, is_end=True)
    if start is None and data_bounds is not None:
        start = to_local(data_bounds[0], tz)
    if end is None:
        if data_bounds is not None and until is None and since is None:
            end = to_local(data_bounds[1], tz) + timedelta(microseconds=1)
        else:
            end = to_local(now, tz) + timedelta(microseconds=1)
    if start is None:
        start = floor_to(end - timedelta(microseconds=1), grain or "day")
    if grain is not None:
        start = floor_to(start, grain)
        last = floor_to(end - timedelta(microseconds=1), grain)
        end = next_period(last, grain)
    if end <= start:
        # the values as given, then the range they make: its end alone (an until
        # date's next midnight) reads as if nerve had moved the date
        given = f"since {since} is not before until {until} (" if since and until else "("
        raise QueryError(f"empty time range: {given}from {start.isoformat()} to "
                         f"{end.isoformat()}; an until date is included)")
    return TimeRange(start, end, tz)
