"""Retention: first-event cohorts by day or week, and who came back in later periods.

An entity's cohort is the day (or ISO week, starting Monday) of its first ever
``start_event`` (any track event when unset), days and weeks being those of the
workspace's time zone, as in metrics (``_periods``). It returned in period p when it did
``return_event`` (any track event when unset) in the p-th day/week after its cohort's
start; "on_or_after" counts it in every period up to its last return (it came back in p
or later), the classic "unbounded" retention. Period 0 is the cohort's own period, so
with the same start and return event it holds the whole cohort.

``since`` and ``until`` are widened to whole cohorts (days or weeks), as a trend's range
is to whole buckets: a cohort labelled with a week holds everyone who started in that
week, never the part of it after a ``since`` at Wednesday noon.

A period is observed once it is over (by ``now``) and the data reaches into it (the
events table's last event is at or after its start). Until then its ``users`` and
``retention`` are None, not 0: a cohort that started three days ago has not had a week 1
yet, and a 0 there would read as churn. Trends show the current bucket's count so far;
a retention period has no such partial figure, as it is a share of a cohort.

The engine does the work with two aggregations and a join; only one row per cohort and
period comes back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import ibis
import ibis.expr.types as ir

from nerve.analytics._fields import dialect_of, entity, filter_expr, filters_expr
from nerve.analytics._periods import bound, instant, label, local_start, wall_clock, zone
from nerve.analytics._spec import Filter
from nerve.errors import QueryError, did_you_mean
from nerve.semantic._time import floor_to, next_period, to_local, to_utc
from nerve.warehouse import stitch_identities

__all__ = ["RETENTION_MODES", "RetentionSpec", "retention"]

RETENTION_MODES = ("on", "on_or_after")
_GRAIN_SECONDS = {"day": 86400, "week": 7 * 86400}


@dataclass(frozen=True, slots=True)
class RetentionSpec:
    """What to compute; ``since``/``until`` bound the entities' first start events.

    Days and weeks are those of ``timezone`` (the workspace's ``[project] timezone``),
    in which naive ``since``/``until`` are read too.
    """

    start_event: str | None = None
    return_event: str | None = None
    start_where: tuple[Filter, ...] = ()
    return_where: tuple[Filter, ...] = ()
    grain: str = "day"
    periods: int = 7
    mode: str = "on"
    #: the first start event's range ``[since, until)``; a date is a whole local day (an
    #: ``until`` date is included, as in metrics)
    since: datetime | date | None = None
    until: datetime | date | None = None
    timezone: str = "UTC"

    def validate(self) -> RetentionSpec:
        if self.grain not in _GRAIN_SECONDS:
            raise QueryError(f"grain: {self.grain!r} is not day or week"
                             f"{did_you_mean(self.grain, _GRAIN_SECONDS)}")
        if self.mode not in RETENTION_MODES:
            raise QueryError(f"mode: {self.mode!r} is not one of {', '.join(RETENTION_MODES)}")
        if not 1 <= self.periods <= 366:
            raise QueryError(f"periods: 1 to 366, got {self.periods}")
        tz = zone(self.timezone)
        if (self.since is not None and self.until is not None
                and bound(self.since, tz) >= bound(self.until, tz, end=True)):
            # no cohort could start in it: an empty table would read as nobody starting
            raise QueryError("since/until: since must be before until")
        return self


def _events(t: ir.Table, event: str | None, where: tuple[Filter, ...]) -> ir.Table:
    """Track events (``event``'s only, when named) that pass every filter of ``where``."""
    cond = (t.type == "track") & entity(t).notnull()
    if event is not None:
        cond &= filters_expr(t, event, where)
    else:
        for flt in where:
            cond &= filter_expr(t, flt)
    return t.filter(cond)


def retention(events: ir.Table, spec: RetentionSpec, *,
              now: datetime | None = None, stitch: bool = True) -> list[dict[str, Any]]:
    """Rows ``{cohort, cohort_size, period, users, retention}``, one per cohort and period
    0..periods, ordered by cohort and period; ``users`` and ``retention`` are None for a
    period not observed yet (not over by ``now``, default the clock's, naive meaning
    the spec's time zone; or after the last event). ``stitch``: as ``funnel``'s
    (identities stitched by default, as the CLI counts them)."""
    spec = spec.validate()
    if stitch:
        events = stitch_identities(events)
    tz, dialect = zone(spec.timezone), dialect_of(events)
    step = _GRAIN_SECONDS[spec.grain]
    starts = _events(events, spec.start_event, spec.start_where)
    first = starts.group_by(who=entity(starts)).aggregate(first_ts=starts.timestamp.min())
    first = first.mutate(cohort=local_start(first.first_ts, spec.grain,
                                            spec.timezone, dialect))
    # whole cohorts: a partial day or week would be labelled as the whole of it
    if spec.since is not None:
        since = floor_to(to_local(bound(spec.since, tz), tz), spec.grain)
        first = first.filter(first.first_ts >= to_utc(since, tz))
    if spec.until is not None:
        last = to_local(bound(spec.until, tz, end=True) - timedelta(microseconds=1), tz)
        until = next_period(floor_to(last, spec.grain), spec.grain)
        first = first.filter(first.first_ts < to_utc(until, tz))
    sizes = first.group_by("cohort").aggregate(cohort_size=first.who.count())
    back = _events(events, spec.return_event, spec.return_where)
    back = back.select(who=entity(back), ts=back.timestamp)
    joined = back.join(first, back.who == first.who)
    joined = joined.filter(joined.ts >= joined.first_ts)
    # both starts are naive local wall-clock times: their difference is whole days or
    # weeks, even across a DST switch
    returned = local_start(joined.ts, spec.grain, spec.timezone, dialect)
    joined = joined.mutate(period=((returned.epoch_seconds()
                                    - joined.cohort.epoch_seconds()) / step).floor())
    if spec.mode == "on":
        joined = joined.filter(joined.period <= spec.periods)
        counts = joined.group_by(["cohort", "period"]).aggregate(
            users=joined.who.nunique())
    else:
        last = joined.group_by(["cohort", joined.who]).aggregate(period=joined.period.max())
        # back after the last period shown is back "in p or later" for every p shown
        last = last.mutate(period=ibis.least(last.period, spec.periods))
        counts = last.group_by(["cohort", "period"]).aggregate(users=last.who.count())
    size_rows = sizes.to_pyarrow().to_pylist()
    count_rows = counts.to_pyarrow().to_pylist()
    now = instant(now, tz) if now else datetime.now(UTC)
    data_end = _last_event(events) if size_rows else None
    by_cohort: dict[Any, dict[int, int]] = {}
    for row in count_rows:
        by_cohort.setdefault(_key(row["cohort"], tz), {})[int(row["period"])] = int(row["users"])
    out: list[dict[str, Any]] = []
    for row in sorted(size_rows, key=lambda r: _key(r["cohort"], tz)):
        cohort, size = _key(row["cohort"], tz), int(row["cohort_size"])
        got = by_cohort.get(cohort, {})
        running = 0
        users_at = {}
        if spec.mode == "on_or_after":  # came back in p or later
            for p in range(spec.periods, -1, -1):
                running += got.get(p, 0)
                users_at[p] = running
        else:
            users_at = got
        for p in range(spec.periods + 1):
            start = period_start(cohort, spec.grain, p)
            observed = (period_start(cohort, spec.grain, p + 1) <= now
                        and data_end is not None and start <= data_end)
            users = users_at.get(p, 0) if observed else None
            out.append({"cohort": cohort, "cohort_size": size, "period": p, "users": users,
                        "retention": users / size if size and users is not None else None})
    return out


def _last_event(events: ir.Table) -> datetime | None:
    """The events table's latest timestamp, as an aware UTC instant: how far the data
    reaches (engines differ in time zone tagging)."""
    value = events.timestamp.max().to_pyarrow().as_py()
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _key(value: Any, tz: ZoneInfo) -> Any:
    """A cohort's local start as an aware datetime in ``tz`` (engines differ in time
    zone tagging)."""
    value = wall_clock(value)
    return label(value, tz) if isinstance(value, datetime) else value


def period_start(cohort: datetime, grain: str, period: int) -> datetime:
    """The start of the ``period``-th day or week after ``cohort`` (an aware local
    datetime: the arithmetic is on the wall clock, so a DST switch keeps midnight)."""
    return cohort + timedelta(seconds=_GRAIN_SECONDS[grain] * period)
