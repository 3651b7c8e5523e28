"""Tracking gaps: a drop that is events not sent, not people doing less.

When an app release stops sending ``add_to_cart`` on iOS, the explanation of add to carts
finds ``platform = ios`` as its driver, a rate effect, as it would for shoppers who stopped
buying. What tells the two apart is in the data: whole days with no event of the target
from that value, where the baseline had many a day, while the same value's users stay as
active as usual (they open the app, view hotels, check out). That is reported as a caveat
of the explanation (check ``tracking_gap``), so that a data-quality cause is not read as a
business one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import ibis.expr.types as ir
import pandas as pd

from nerve.semantic import MetricQuery, SemanticLayer

__all__ = ["GAP_MIN_ACTIVE", "GAP_MIN_DAILY", "tracking_gaps"]

#: events of the target a baseline day must average for a day without any to be no chance
#: (a Poisson count of 10 is zero once in 22,000 days)
GAP_MIN_DAILY = 10.0
#: the share of its usual active users a value must keep on its days without the target:
#: a value whose users left (an app version replaced) has no events because no one is there
GAP_MIN_ACTIVE = 0.5


class _Span(Protocol):
    @property
    def start(self) -> datetime: ...

    @property
    def end(self) -> datetime: ...


def _days(span: _Span, tz: ZoneInfo) -> list[date]:
    """The complete local days of ``span``."""
    start, end = span.start.astimezone(tz), span.end.astimezone(tz)
    first = start.date() if start.time() == datetime.min.time() else \
        start.date() + timedelta(days=1)
    days = []
    day = first
    while datetime.combine(day + timedelta(days=1), datetime.min.time(), tz) <= end:
        days.append(day)
        day += timedelta(days=1)
    return days


def tracking_gaps(table: ir.Table, layer: SemanticLayer, *, counter: str, active: str,
                  events: Sequence[str], span: _Span, bases: Sequence[_Span],
                  candidates: Sequence[tuple[str, str]], where: str | None, now: datetime
                  ) -> list[dict[str, Any]]:
    """Caveats for the ``candidates`` (``(dimension, value)``; ``("", "")`` for the target
    overall) whose target events (``counter``, a count metric of ``events``) are absent on
    whole days of ``span`` although the baseline periods had at least
    :data:`GAP_MIN_DAILY` a day, while the value's active users (``active``, distinct users
    of any event) stayed at :data:`GAP_MIN_ACTIVE` of their usual number or more. When the
    target overall (inside ``where``) has such days, only that caveat is returned."""
    tz = ZoneInfo(layer.timezone)
    days = _days(span, tz)
    base_days = [d for b in bases for d in _days(b, tz)]
    if not days or not base_days:
        return []
    earliest = min(b.start for b in bases)
    out: list[dict[str, Any]] = []
    for dim in dict.fromkeys(d for d, _ in candidates):
        query = MetricQuery((counter, active), by=(dim,) if dim else (), grain="day",
                            since=earliest, until=span.end, where=where)
        result = layer.query(query, table, now=now)
        frame = result.table.to_pandas()
        if frame.empty:
            continue
        frame["day"] = pd.to_datetime(frame[result.time_column or "day"]).dt.date
        for value in [v for d, v in candidates if d == dim]:
            rows = frame[frame[dim].astype("string") == value] if dim else frame
            counts = rows.groupby("day")[[counter, active]].sum()
            gap = _gap(counts, counter, active, days, base_days)
            if gap is not None:
                out.append(_caveat(gap, dim, value, events, where))
        if out and not dim:
            return out  # the whole target stopped: its values' gaps say nothing more
    return out


def _gap(counts: pd.DataFrame, counter: str, active: str, days: list[date],
         base_days: list[date]) -> dict[str, Any] | None:
    full = counts.reindex(sorted({*days, *base_days})).fillna(0.0)
    usual = float(full.loc[base_days, counter].mean())
    usual_active = float(full.loc[base_days, active].mean())
    if usual < GAP_MIN_DAILY or usual_active <= 0:
        return None
    empty = [d for d in days if full.at[d, counter] == 0]
    if not empty:
        return None
    kept = float(full.loc[empty, active].mean()) / usual_active
    if kept < GAP_MIN_ACTIVE:
        return None  # its users are gone too: fewer people, not events unsent
    return {"first": empty[0], "last": empty[-1], "days": len(empty), "usual": usual,
            "kept": kept}


def _caveat(gap: dict[str, Any], dim: str, value: str, events: Sequence[str],
            within: str | None) -> dict[str, Any]:
    names = ", ".join(events)
    where = f" with {dim} = {value}" if dim else f" matching {within}" if within else ""
    first, last = gap["first"].isoformat(), gap["last"].isoformat()
    when = f"on {first}" if gap["days"] == 1 else \
        f"on {gap['days']} days from {first} to {last}"
    return {
        "check": "tracking_gap", "status": "warn", "event": names,
        "dimensions": {dim: value} if dim else {}, "since": first,
        "days": gap["days"], "usual_per_day": round(gap["usual"], 2),
        "active_share": round(gap["kept"], 4),
        "message": f"No {names} event{where} arrived {when} (local days), where the "
                   f"baseline had {gap['usual']:,.1f} a day, while the users{where} stayed "
                   f"active ({gap['kept']:.0%} of their usual number a day): the events "
                   f"were likely not sent (a tracking or release bug), so this part of the "
                   f"change may be missing data, not a change in behaviour.",
        "impact": "the drop may be instrumentation (events not sent), not behaviour",
        "source": "the events table",
    }
