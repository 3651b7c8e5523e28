"""The hour each loaded message_id was received in, so that a dedup probe reads an hour.

Without it, looking for earlier copies of a load's message_ids reads every row received
within the dedup window: random ids leave DuckDB's zone maps nothing to skip, so a load
of 100 rows against a week at 100 events/s (60M rows) took ~2 s. ``RecentIds`` keeps
the 64-bit DuckDB ``hash()`` of each loaded id with the hour its row was received in
(12 bytes per row). A load then probes the warehouse only in the hours where one of its
hashes is found (a true copy, or a hash collision): usually none, and the probe is
skipped; at worst a few hours of rows, which zone maps on ``received_at`` narrow to.

The hashes are kept sorted in two arrays, as a log-structured merge does: a large one,
and a small one that new ids go into and that is merged into the large one when it
reaches an eighth of it. A lookup is a binary search in each, for all of a load's ids
at once; an insert copies only the small array, and the large one now and then.

It is exact as long as the loader that keeps it is the warehouse's only writer of new
rows (``nerve quarantine replay`` needs the server stopped; forgetting and retention only
delete, which at worst leaves a hash that costs one needless probe). It is built from
the warehouse before the loader's first load, and takes a commit's ids once it has
committed.

When the window holds more rows than ``capacity``, the oldest hours are not indexed:
probes read them in full (before ``covered_from``), as every probe did before.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

__all__ = ["DEFAULT_CAPACITY", "HOUR_US", "RecentIds", "Scope", "as_datetime", "as_micros",
           "merge_scopes"]

HOUR_US = 3_600_000_000
#: ids kept at most per table (12 bytes each: 768 MiB), a week at 100 events/s
DEFAULT_CAPACITY = 64 << 20
#: a range of ``received_at`` in microseconds, ``[start, end)``; None: unbounded
Scope = tuple[int | None, int | None]

#: the small run is merged into the large one past an eighth of it, or this many ids
_SMALL_RUN = 1 << 16
_EMPTY = (np.empty(0, np.uint64), np.empty(0, np.int32))
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def as_datetime(us: int) -> datetime:
    """Microseconds since the epoch as an aware datetime (UTC)."""
    return _EPOCH + timedelta(microseconds=us)


def as_micros(at: datetime) -> int:
    """An aware datetime as microseconds since the epoch."""
    return (at - _EPOCH) // timedelta(microseconds=1)


class RecentIds:
    """Hashes of the message_ids loaded into one table, with the hour each was received."""

    def __init__(self, covered_from: int | None, capacity: int = DEFAULT_CAPACITY) -> None:
        #: rows received from this time on (microseconds) are all indexed; None: every row
        self.covered_from = covered_from
        self.capacity = capacity
        #: the large and the small runs: (hashes, sorted; the hour of each, aligned)
        self._runs = [_EMPTY, _EMPTY]
        self._per_hour: dict[int, int] = {}  # hour -> hashes indexed in it
        self.size = 0

    @classmethod
    def build(cls, cursor: Any, table: str, since: int | None,
              capacity: int = DEFAULT_CAPACITY) -> RecentIds:
        """Index the rows of ``table`` received from ``since`` on (None: all of them),
        the newest hours first, as many as ``capacity`` holds."""
        where = "" if since is None else "WHERE received_at >= $since"
        params = {} if since is None else {"since": as_datetime(since)}
        counts = cursor.execute(
            f"SELECT epoch_us(received_at) // {HOUR_US} AS hour, count(*) AS n FROM {table} "
            f"{where} GROUP BY hour ORDER BY hour DESC", params).fetchall()
        hours: list[int] = []
        total = 0
        for hour, n in counts:
            if total + n > capacity:
                break
            hours.append(int(hour))
            total += n
        if len(hours) == len(counts):
            recent = cls(since, capacity)
        else:  # the oldest hours do not fit: probes read them in full
            recent = cls((hours[-1] if hours else int(counts[0][0]) + 1) * HOUR_US, capacity)
        if hours:
            rows = cursor.execute(  # DuckDB sorts them faster than numpy's argsort
                f"SELECT hash(message_id) AS h, (epoch_us(received_at) // {HOUR_US})::INTEGER "
                f"AS hour FROM {table} WHERE received_at >= $start ORDER BY h",
                {"start": as_datetime(hours[-1] * HOUR_US)}).fetchnumpy()
            recent._add_sorted(np.asarray(rows["h"], np.uint64),
                               np.asarray(rows["hour"], np.int32))
        return recent

    def add(self, hashes: np.ndarray, received_us: np.ndarray) -> None:
        """Index loaded rows: their hashes and ``received_at`` (microseconds)."""
        if not len(hashes):
            return
        order = np.argsort(hashes)
        self._add_sorted(hashes[order], (received_us[order] // HOUR_US).astype(np.int32))

    def merge(self, other: RecentIds) -> None:
        """Index every id ``other`` holds (a commit's, once it is done), each (hash, hour)
        once: a load with copies probes its ids twice, and ``other`` holds them twice."""
        hashes, hours = _merge(*other._runs)
        if len(hashes) > 1:
            first = np.concatenate(([True], (hashes[1:] != hashes[:-1])
                                    | (hours[1:] != hours[:-1])))
            hashes, hours = hashes[first], hours[first]
        self._add_sorted(hashes, hours)

    def _add_sorted(self, hashes: np.ndarray, hours: np.ndarray) -> None:
        """``add`` for hashes in order, with the hour of each."""
        if not len(hashes):
            return
        large, small = self._runs
        small = _merge(small, (hashes, hours))
        if len(small[0]) >= max(_SMALL_RUN, len(large[0]) // 8):
            large, small = _merge(large, small), _EMPTY
        self._runs = [large, small]
        first = int(hours.min())
        counts = np.bincount(hours - first)  # the rows span a few hours: no sort
        for offset in np.flatnonzero(counts).tolist():
            hour = first + offset
            self._per_hour[hour] = self._per_hour.get(hour, 0) + int(counts[offset])
        self.size += len(hashes)
        if self.size > self.capacity:
            self._forget_before(self._hour_to_keep())

    def scopes(self, hashes: np.ndarray, since: int | None) -> list[Scope]:
        """The ranges of ``received_at`` (from ``since`` on) that may hold a row with one
        of ``hashes``: the hours where one is found, and whatever is not indexed. Hours
        wholly before ``since`` are forgotten (out of every later window)."""
        if since is not None:
            self._forget_before(since // HOUR_US)
        scopes = self.holding(hashes, since)
        if self.covered_from is not None and (since is None or since < self.covered_from):
            scopes.append((since, self.covered_from))
        return merge_scopes(scopes)

    def holding(self, hashes: np.ndarray, since: int | None) -> list[Scope]:
        """The hours (from ``since`` on) where one of ``hashes`` is indexed; nothing is
        forgotten, and what is not indexed is not included."""
        scopes: list[Scope] = []
        for hour in self._hours_of(np.sort(hashes)):
            start, end = hour * HOUR_US, (hour + 1) * HOUR_US
            if since is None or end > since:
                scopes.append((start if since is None else max(start, since), end))
        return scopes

    def _hours_of(self, hashes: np.ndarray) -> list[int]:
        """The hours of the indexed rows whose hash is one of ``hashes`` (sorted)."""
        found: set[int] = set()
        for indexed, hours in self._runs:
            first = np.searchsorted(indexed, hashes, "left")
            last = np.searchsorted(indexed, hashes, "right")
            hit = last > first  # usually none
            for a, b in zip(first[hit].tolist(), last[hit].tolist(), strict=True):
                found.update(hours[a:b].tolist())
        return sorted(found)

    def _hour_to_keep(self) -> int:
        """The oldest hour that keeps the index within its capacity (newest hours kept)."""
        kept = 0
        for hour in sorted(self._per_hour, reverse=True):
            kept += self._per_hour[hour]
            if kept > self.capacity:
                return hour + 1
        return min(self._per_hour)

    def _forget_before(self, hour: int) -> None:
        """Drop the hours before ``hour``: rows received before it are no longer indexed."""
        if not self._per_hour or min(self._per_hour) >= hour:
            return
        self._runs = [(h[t >= hour], t[t >= hour]) for h, t in self._runs]
        for old in [o for o in self._per_hour if o < hour]:
            self.size -= self._per_hour.pop(old)
        if self.covered_from is None or self.covered_from < hour * HOUR_US:
            self.covered_from = hour * HOUR_US


def _merge(run: tuple[np.ndarray, np.ndarray], new: tuple[np.ndarray, np.ndarray],
           ) -> tuple[np.ndarray, np.ndarray]:
    """Two sorted runs as one (one copy of each)."""
    if not len(run[0]):
        return new
    at = np.searchsorted(run[0], new[0])
    return np.insert(run[0], at, new[0]), np.insert(run[1], at, new[1])


def merge_scopes(scopes: list[Scope]) -> list[Scope]:
    """Adjacent or overlapping ranges as one (fewer probe queries)."""
    out: list[Scope] = []
    for start, end in sorted(scopes, key=lambda s: -1 << 62 if s[0] is None else s[0]):
        if out and (out[-1][1] is None or (start is not None and start <= out[-1][1])):
            last_end = out[-1][1]
            out[-1] = (out[-1][0], None if end is None or last_end is None
                       else max(last_end, end))
        else:
            out.append((start, end))
    return out
