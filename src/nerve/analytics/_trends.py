"""Trends: an event's count or unique users (or a semantic-layer metric) over time,
next to the same span just before it.

The period ``[since, until)`` is widened to whole buckets of the grain (hours, days,
weeks from Monday or calendar months, in the workspace's time zone, as metrics cut them:
``_periods``); the previous period is the same number of buckets just before it, and
bucket i is compared with bucket i. Empty buckets are zero. Event and metric trends cut
time alike, so a metric's trend gives the numbers of ``nerve metrics query`` for the
same periods.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import ibis.expr.types as ir

from nerve.analytics._fields import dialect_of, entity, filter_expr, filters_expr
from nerve.analytics._periods import UNITS, bound, label, local_start, wall_clock, zone
from nerve.analytics._spec import Filter
from nerve.errors import QueryError, did_you_mean
from nerve.semantic._time import (
    TimeRange,
    add_months,
    floor_to,
    next_period,
    periods,
    resolve_range,
)
from nerve.warehouse import stitch_identities

__all__ = ["MEASURES", "TrendSpec", "buckets", "metric_trend", "recent", "trend"]

MEASURES = ("count", "users")
GRAINS = tuple(UNITS)
MAX_BUCKETS = 5000


@dataclass(frozen=True, slots=True)
class TrendSpec:
    """``event=None`` counts every track event. Buckets are those of ``timezone`` (the
    workspace's ``[project] timezone``), in which naive ``since``/``until`` are read; a
    date is a whole local day (an ``until`` date is included, as in metrics)."""

    since: datetime | date
    until: datetime | date
    event: str | None = None
    where: tuple[Filter, ...] = ()
    measure: str = "count"
    grain: str = "day"
    compare: bool = True
    timezone: str = "UTC"

    def validate(self) -> TrendSpec:
        if self.measure not in MEASURES:
            raise QueryError(f"measure: {self.measure!r} is not one of {', '.join(MEASURES)}")
        _ranges(self.since, self.until, self.grain, zone(self.timezone))
        return self


def _ranges(since: datetime | date, until: datetime | date, grain: str,
            tz: ZoneInfo) -> tuple[TimeRange, TimeRange]:
    """The current period, widened to whole buckets, and the one just before it (as
    many buckets of wall-clock time). An ``until`` date is included."""
    if grain not in GRAINS:
        raise QueryError(f"grain: {grain!r} is not one of {', '.join(GRAINS)}"
                         f"{did_you_mean(grain, GRAINS)}")
    since, until = bound(since, tz), bound(until, tz, end=True)
    if since >= until:
        raise QueryError("since/until: since must be before until")
    # ``now`` is not read: both bounds are datetimes
    current = resolve_range(since, until, grain=grain, tz=tz, now=datetime.now(UTC),
                            data_bounds=None)
    if len(periods(current.start, current.end, grain)) > MAX_BUCKETS:
        raise QueryError(f"since/until: more than {MAX_BUCKETS} buckets; use a coarser grain")
    if grain == "month":
        # months differ in length: the previous period is as many calendar months
        count = len(periods(current.start, current.end, grain))
        previous = TimeRange(add_months(current.start, -count), current.start, tz)
    else:
        previous = TimeRange(current.start - (current.end - current.start), current.start,
                             tz)
    return current, previous


def recent(duration: timedelta, grain: str, tz: ZoneInfo, now: datetime) -> datetime:
    """The local start (naive) of the last buckets that ``duration`` back from ``now``
    spans, the current one included, as a metric reads a duration with a grain
    (docs/metrics.md, "Time"): ``7d`` by day is today and the 6 days before, ``8w`` by
    week 8 weeks, not one bucket more for the part of a day that ``now`` is into.

    >>> recent(timedelta(days=7), "day", ZoneInfo("UTC"), datetime(2026, 11, 30, 15, tzinfo=UTC))
    datetime.datetime(2026, 11, 24, 0, 0)

    By month, a duration is counted in months of 30 days (``6mo``: 6 calendar months).
    """
    current = floor_to(now.astimezone(tz).replace(tzinfo=None), grain)
    if grain == "month":
        months = max(1, round(duration / timedelta(days=30)))
        return add_months(current, 1 - months)
    return floor_to(next_period(current - duration, grain), grain)


def buckets(trange: TimeRange, grain: str) -> list[datetime]:
    """Local starts (naive) of the buckets covering ``trange``; an hour that the spring
    DST switch skips is none."""
    return periods(trange.start, trange.end, grain, trange.tz)


def _series(events: ir.Table, spec: TrendSpec,
            trange: TimeRange) -> dict[datetime, float | None]:
    t = events
    cond = ((t.type == "track") & (t.timestamp >= trange.start_utc)
            & (t.timestamp < trange.end_utc))
    if spec.event is not None:
        cond &= filters_expr(t, spec.event, spec.where)
    else:
        for flt in spec.where:
            cond &= filter_expr(t, flt)
    t = t.filter(cond)
    t = t.mutate(bucket=local_start(t.timestamp, spec.grain, spec.timezone,
                                        dialect_of(events)),
                 who=entity(t))
    value = t.count() if spec.measure == "count" else t.who.nunique()
    rows = t.group_by("bucket").aggregate(value=value).to_pyarrow().to_pylist()
    # counts: 26, not 26.0 (a metric trend's values are the layer's, float or not)
    return {wall_clock(r["bucket"]): int(r["value"]) for r in rows}


def trend(events: ir.Table, spec: TrendSpec, *,
          now: datetime | None = None, stitch: bool = True) -> list[dict[str, Any]]:
    """Rows ``{period, value, previous_period, previous, change, partial}`` per bucket;
    ``change`` is relative (0.25 = +25 %), null when the previous value is 0. Periods are
    aware datetimes at the bucket's local start.

    The bucket that holds ``now`` (default: the clock's) is ``partial``: its value is the
    count so far and its ``change`` is null (set against a whole previous bucket it would
    read as a drop); a bucket that starts after ``now`` has a null value.
    ``stitch``: as ``funnel``'s (identities stitched by default, as the CLI counts them).
    """
    spec = spec.validate()
    if stitch:
        events = stitch_identities(events)
    current_range, previous_range = _ranges(spec.since, spec.until, spec.grain,
                                            zone(spec.timezone))
    current = _series(events, spec, current_range)
    previous = _series(events, spec, previous_range) if spec.compare else {}
    return _rows(buckets(current_range, spec.grain), current,
                 buckets(previous_range, spec.grain) if spec.compare else [], previous,
                 compare=spec.compare, trange=current_range, now=now)


def _rows(starts: list[datetime], current: dict[datetime, float | None],
          prev_starts: list[datetime], previous: dict[datetime, float | None], *,
          compare: bool, trange: TimeRange, now: datetime | None) -> list[dict[str, Any]]:
    tz = trange.tz
    now = now or datetime.now(UTC)  # naive: wall-clock time already, as the buckets' starts
    local_now = now.astimezone(tz).replace(tzinfo=None) if now.tzinfo else now
    out = []
    for i, start in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else trange.end
        future, partial = start > local_now, start <= local_now < end
        row: dict[str, Any] = {"period": label(start, tz),
                               "value": None if future else current.get(start, 0)}
        if compare:
            prev_start = prev_starts[i] if i < len(prev_starts) else None
            prev = previous.get(prev_start, 0) if prev_start else None
            row |= {"previous_period": label(prev_start, tz) if prev_start else None,
                    "previous": prev,
                    "change": (row["value"] - prev) / prev
                    if prev and row["value"] is not None and not (future or partial)
                    else None}
        row["partial"] = partial
        out.append(row)
    return out


def metric_trend(layer: Any, table: ir.Table, metric: str, *, since: datetime | date,
                 until: datetime | date, grain: str = "day", compare: bool = True,
                 where: str | None = None, stitch: bool = True) -> list[dict[str, Any]]:
    """A semantic-layer metric over time, with the previous period.

    ``layer`` is a ``nerve.semantic.SemanticLayer``; the metric is computed by the layer,
    once for each period, so the numbers are the ones ``nerve metrics query`` gives.
    Buckets are in the layer's time zone, where naive ``since``/``until`` are read (an
    ``until`` date is included). Values are the layer's: a count is an integer, and a
    period without a value (an average over no events) is None, as in metrics.
    ``stitch``: as ``funnel``'s (identities stitched by default, as the CLI counts them).
    """
    from nerve.semantic import MetricQuery  # noqa: PLC0415 - the semantic layer is optional here

    current_range, previous_range = _ranges(since, until, grain, zone(layer.timezone))
    if stitch:
        table = stitch_identities(table)

    def series(trange: TimeRange) -> dict[datetime, float | None]:
        # naive local bounds: the layer reads them as its own wall-clock time
        result = layer.query(MetricQuery((metric,), grain=grain, since=trange.start,
                                         until=trange.end, where=where), table)
        time_col = result.time_column or grain
        return {wall_clock(row[time_col]): row[metric] for row in result.table.to_pylist()}

    current = series(current_range)
    previous = series(previous_range) if compare else {}
    return _rows(buckets(current_range, grain), current,
                 buckets(previous_range, grain) if compare else [], previous,
                 compare=compare, trange=current_range, now=None)
