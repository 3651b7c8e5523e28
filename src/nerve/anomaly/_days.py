"""Day periods in the workspace's time zone, as the integers the anomaly model indexes.

A day period is a local calendar day numbered from 1970-01-01 (``period % 7`` is then
its weekday, as the model needs); it runs from local midnight to local midnight, so the
days of a DST switch are 23 or 25 hours long, as ``nerve metrics query --grain day``
counts them. Hour periods stay hours since the epoch (every hour is an hour).
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import ibis

__all__ = ["day_of", "day_start", "local_day_expr"]

_EPOCH = date(1970, 1, 1)


def day_of(moment: datetime, tz: ZoneInfo) -> int:
    """The local day holding the aware instant ``moment``."""
    return (moment.astimezone(tz).date() - _EPOCH).days


def day_start(day: int, tz: ZoneInfo) -> datetime:
    """Local midnight opening ``day``, an aware datetime in ``tz`` (a midnight the clock
    skips opens at the switch)."""
    local = datetime.combine(_EPOCH + timedelta(days=day), time())
    return local.replace(tzinfo=tz).astimezone(UTC).astimezone(tz)


def _offsets(start: datetime, end: datetime, tz: ZoneInfo) -> list[tuple[int, int]]:
    """The UTC offsets in force over ``[start, end)``: (from epoch second, offset in
    seconds), the first from ``start``."""

    def offset(second: int) -> int:
        delta = datetime.fromtimestamp(second, UTC).astimezone(tz).utcoffset()
        return int(delta.total_seconds()) if delta is not None else 0

    lo_s, hi_s = math.floor(start.timestamp()), math.ceil(end.timestamp())
    found = [(lo_s, offset(lo_s))]
    probe = lo_s
    while probe < hi_s:
        step = min(probe + 6 * 3600, hi_s)  # no zone switches twice within 6 hours
        if offset(step) != found[-1][1]:
            lo, hi = probe, step  # offset(lo) is the old one, offset(hi) the new
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (mid, hi) if offset(mid) == found[-1][1] else (lo, mid)
            found.append((hi, offset(hi)))
        probe = step
    return found


def local_day_expr(seconds: Any, start: datetime, end: datetime, tz: ZoneInfo) -> Any:
    """An engine expression: the local day of ``seconds`` (epoch seconds, a float column)
    for rows in ``[start, end)``: their UTC offset is a constant between DST switches."""
    found = _offsets(start, end, tz)
    if len(found) == 1:
        offset: Any = ibis.literal(found[0][1])
    else:
        offset = ibis.cases(*((seconds < at, before) for (at, _), (_, before)
                              in zip(found[1:], found, strict=False)), else_=found[-1][1])
    return ((seconds + offset) // 86400).cast("int64")
