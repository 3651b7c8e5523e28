"""Trends: an event's count or unique users (or a semantic-layer metric) over time,
next to the same span just before it.

The period ``[since, until)`` is cut into buckets of the grain; the previous period is
``[since - (until - since), since)``, cut the same way, and bucket i is compared with
bucket i. Empty buckets are zero, so both series always have the same length.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import ibis.expr.types as ir

from nerve.analytics._fields import entity, filter_expr, filters_expr
from nerve.analytics._spec import Filter
from nerve.errors import QueryError

__all__ = ["MEASURES", "TrendSpec", "buckets", "metric_trend", "trend"]

MEASURES = ("count", "users")
GRAINS = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(weeks=1)}
_UNITS = {"hour": "h", "day": "D", "week": "W"}


@dataclass(frozen=True, slots=True)
class TrendSpec:
    """``event=None`` counts every track event."""

    since: datetime
    until: datetime
    event: str | None = None
    where: tuple[Filter, ...] = ()
    measure: str = "count"
    grain: str = "day"
    compare: bool = True

    def validate(self) -> TrendSpec:
        if self.measure not in MEASURES:
            raise QueryError(f"measure: {self.measure!r} is not one of {', '.join(MEASURES)}")
        if self.grain not in GRAINS:
            raise QueryError(f"grain: {self.grain!r} is not one of {', '.join(GRAINS)}")
        if _utc(self.since) >= _utc(self.until):
            raise QueryError("since/until: since must be before until")
        if len(buckets(self.since, self.until, self.grain)) > 5000:
            raise QueryError("since/until: more than 5000 buckets; use a coarser grain")
        return self


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _floor(value: datetime, grain: str) -> datetime:
    value = _utc(value)
    if grain == "hour":
        return value.replace(minute=0, second=0, microsecond=0)
    day = value.replace(hour=0, minute=0, second=0, microsecond=0)
    if grain == "week":  # ISO weeks start on Monday, as date_trunc('week') does
        day -= timedelta(days=day.weekday())
    return day


def buckets(since: datetime, until: datetime, grain: str) -> list[datetime]:
    """Bucket starts covering ``[since, until)``."""
    out, cur = [], _floor(since, grain)
    end = _utc(until)
    while cur < end:
        out.append(cur)
        cur += GRAINS[grain]
    return out


def _series(events: ir.Table, spec: TrendSpec, since: datetime,
            until: datetime) -> dict[datetime, float]:
    t = events
    cond = (t.type == "track") & (t.timestamp >= since) & (t.timestamp < until)
    if spec.event is not None:
        cond &= filters_expr(t, spec.event, spec.where)
    else:
        for flt in spec.where:
            cond &= filter_expr(t, flt)
    t = t.filter(cond)
    t = t.mutate(bucket=t.timestamp.truncate(_UNITS[spec.grain]), who=entity(t))
    value = t.count() if spec.measure == "count" else t.who.nunique()
    rows = t.group_by("bucket").aggregate(value=value).to_pyarrow().to_pylist()
    return {_utc(r["bucket"]) if r["bucket"].tzinfo else r["bucket"].replace(tzinfo=UTC):
            float(r["value"]) for r in rows}


def trend(events: ir.Table, spec: TrendSpec) -> list[dict[str, Any]]:
    """Rows ``{period, value, previous_period, previous, change}`` per bucket; ``change``
    is relative (0.25 = +25 %), null when the previous value is 0."""
    spec = spec.validate()
    since, until = _utc(spec.since), _utc(spec.until)
    current = _series(events, spec, since, until)
    starts = buckets(since, until, spec.grain)
    span = until - since
    previous: dict[datetime, float] = {}
    prev_starts: list[datetime] = []
    if spec.compare:
        previous = _series(events, spec, since - span, since)
        prev_starts = buckets(since - span, since, spec.grain)
    return _rows(starts, current, prev_starts, previous, spec.compare)


def _rows(starts: list[datetime], current: dict[datetime, float],
          prev_starts: list[datetime], previous: dict[datetime, float],
          compare: bool) -> list[dict[str, Any]]:
    out = []
    for i, start in enumerate(starts):
        row: dict[str, Any] = {"period": start, "value": current.get(start, 0.0)}
        if compare:
            prev_start = prev_starts[i] if i < len(prev_starts) else None
            prev = previous.get(prev_start, 0.0) if prev_start else None
            row |= {"previous_period": prev_start, "previous": prev,
                    "change": (row["value"] - prev) / prev if prev else None}
        out.append(row)
    return out


def metric_trend(layer: Any, table: ir.Table, metric: str, *, since: datetime,
                 until: datetime, grain: str = "day", compare: bool = True,
                 where: str | None = None) -> list[dict[str, Any]]:
    """A semantic-layer metric (``nerve.semantic``) over time, with the previous period.

    ``layer`` is a ``nerve.semantic.SemanticLayer``; the metric is computed by the layer,
    once for each period, so the numbers are the ones ``nerve metrics query`` gives.
    """
    from nerve.semantic import MetricQuery  # noqa: PLC0415 - the semantic layer is optional here

    if grain not in GRAINS:
        raise QueryError(f"grain: {grain!r} is not one of {', '.join(GRAINS)}")
    since, until = _utc(since), _utc(until)
    span = until - since

    def series(lo: datetime, hi: datetime) -> dict[datetime, float]:
        result = layer.query(MetricQuery((metric,), grain=grain, since=lo, until=hi,
                                         where=where), table)
        time_col = result.time_column or grain
        out: dict[datetime, float] = {}
        for row in result.table.to_pylist():
            start = row[time_col]
            if not isinstance(start, datetime):
                start = datetime(start.year, start.month, start.day, tzinfo=UTC)
            value = row[metric]
            out[_utc(start)] = 0.0 if value is None else float(value)
        return out

    current = series(since, until)
    previous = series(since - span, since) if compare else {}
    return _rows(buckets(since, until, grain), current,
                 buckets(since - span, since, grain) if compare else [], previous, compare)
