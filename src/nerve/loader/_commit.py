"""One load: deduplicated rows, quarantine, ledger and log offset in one transaction."""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from nerve.envelope import ENVELOPE_SCHEMA
from nerve.loader._recent import RecentIds, Scope, as_datetime, as_micros, merge_scopes
from nerve.log import split_tallies
from nerve.warehouse import EVENT_COLUMNS, JSON_COLUMNS, QUARANTINE_COLUMNS

__all__ = ["LoadStats", "LogRange", "as_json", "commit_load", "commit_ranges", "conform",
           "dedup_within", "read_offsets"]

_JSON = pa.json_(pa.string())
#: chunks with fewer rows than this on average are combined before DuckDB scans them
_MIN_CHUNK_ROWS = 1024


@dataclass(slots=True)
class LoadStats:
    """What one or more loads did.

    ``rows_in = loaded + duplicates + quarantined + rejected``.
    """

    batches: int = 0
    rows_in: int = 0
    loaded: int = 0
    duplicates: int = 0
    quarantined: int = 0
    #: rows the warehouse refused, set aside next to the log (see Loader)
    rejected: int = 0
    #: log segments fully loaded and deleted
    segments_done: int = 0
    #: seconds spent looking for the rows' message_ids among those already loaded within
    #: the dedup window (it reads every row in the window); not compared: a timing
    probe_seconds: float = field(default=0.0, compare=False)

    def add(self, other: LoadStats) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


def conform(table: pa.Table) -> pa.Table:
    """The envelope columns in order; columns an older log lacks are null."""
    arrays = []
    for wanted in ENVELOPE_SCHEMA:
        if wanted.name in table.column_names:
            column = table.column(wanted.name)
            arrays.append(column if column.type == wanted.type else column.cast(wanted.type))
        else:
            arrays.append(pa.nulls(table.num_rows, wanted.type))
    return pa.Table.from_arrays(arrays, names=ENVELOPE_SCHEMA.names)


def dedup_within(table: pa.Table) -> pa.Table:
    """Keep the first row of each ``message_id`` (log order), drop later copies."""
    ids = table.column("message_id")
    if pc.count_distinct(ids).as_py() == table.num_rows:
        return table
    positions = pa.table({"id": ids, "i": pa.array(range(table.num_rows), pa.int64())})
    first = positions.group_by("id", use_threads=False).aggregate([("i", "min")])
    keep = first.column("i_min")
    return table.take(pc.take(keep, pc.sort_indices(keep)))


def read_offsets(cursor: Any) -> dict[tuple[str, str], int]:
    """Committed log offsets: (writer, segment) -> offset just past the last loaded frame."""
    rows = cursor.execute('SELECT writer, segment, "offset" FROM log_offsets').fetchall()
    return {(w, s): int(o) for w, s, o in rows}


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def as_json(table: pa.Table) -> pa.Table:
    """Tag the JSON text columns with Arrow's JSON type, so DuckDB takes them as JSON as
    they are. The collector wrote them with a JSON serializer and the log's checksums
    guard them since, so the loader does not parse them again. Chunk by chunk: no copy."""
    for name in JSON_COLUMNS & set(table.column_names):
        index = table.column_names.index(name)
        chunks = [pa.ExtensionArray.from_storage(_JSON, chunk)
                  for chunk in table.column(index).chunks]
        table = table.set_column(index, pa.field(name, _JSON, nullable=True),
                                 pa.chunked_array(chunks, type=_JSON))
    return table


def scannable(table: pa.Table) -> pa.Table:
    """``table`` as DuckDB scans it best: one chunk when its chunks are small.

    DuckDB scans a table of 1,000 small batches (a quiet server's frames hold a few rows
    each) ~3x slower than one chunk; chunks of a busy server's frames (thousands of
    rows) scan as fast as one, and combining them would only copy every column (~9% of
    the loader's CPU, measured).
    """
    chunks = table.column(0).num_chunks if table.num_columns else 0
    if chunks > 1 and table.num_rows < _MIN_CHUNK_ROWS * chunks:
        return table.combine_chunks()
    return table


class _Probes:
    """The dedup probes of one commit (the queries that look for loaded copies of its
    message_ids), their time, and the index of loaded ids that narrows them, if any.

    The ids this commit brings are indexed once it has committed (``committed``); until
    then they are held apart, so that a later range of the same commit still finds them
    and a commit that fails leaves the index as it was.
    """

    def __init__(self, index: dict[str, RecentIds] | None = None) -> None:
        self.seconds = 0.0
        self.index = index or None  # emptied (see committed): none until rebuilt
        self._pending = {table: RecentIds(covered_from=None, capacity=1 << 62)
                         for table in index or ()}

    def copies(self, cursor: Any, table: str, rows: str, window_start: datetime | None,
               ) -> pa.Array:
        """The distinct message_ids of ``rows`` (a FROM clause over the load's rows)
        already in ``table`` (received since ``window_start``; None: ever)."""
        started = time.perf_counter()
        try:
            since = None if window_start is None else as_micros(window_start)
            scopes: list[Scope] = [(since, None)]
            if self.index is None:
                return self._probe_all(cursor, table, rows, scopes)
            query = f"SELECT hash(message_id) AS h, epoch_us(received_at) AS t {rows}"
            new = cursor.execute(query).fetchnumpy()
            hashes = np.asarray(new["h"], np.uint64)
            pending = self._pending[table]
            # in the pending ids, forget nothing: all of them are indexed at the end
            scopes = merge_scopes([*self.index[table].scopes(hashes, since),
                                   *pending.holding(hashes, since)])
            seen = self._probe_all(cursor, table, rows, scopes)
            if len(seen):  # rare: a resend of loaded rows, dropped, so not indexed again
                cursor.register("_nerve_seen", pa.table({"id": seen}))
                try:
                    new = cursor.execute(
                        f"SELECT hash(message_id) AS h, epoch_us(received_at) AS t FROM "
                        f"(SELECT message_id, received_at {rows}) WHERE message_id NOT IN "
                        "(SELECT id FROM _nerve_seen)").fetchnumpy()
                finally:
                    cursor.unregister("_nerve_seen")
            pending.add(np.asarray(new["h"], np.uint64), np.asarray(new["t"], np.int64))
            return seen
        finally:
            self.seconds += time.perf_counter() - started

    def committed(self) -> None:
        """Index the ids of the commit, now that it is done."""
        if self.index is None:
            return
        try:
            for table, pending in self._pending.items():
                self.index[table].merge(pending)
        except BaseException:
            self.index.clear()  # part of the commit is not indexed: the loader rebuilds it
            raise

    def _probe_all(self, cursor: Any, table: str, rows: str, scopes: list[Scope]
                   ) -> pa.Array:
        ids = f"SELECT message_id {rows}"
        found = [self._probe(cursor, table, ids, scope) for scope in scopes]
        return pa.concat_arrays(found) if found else pa.array([], pa.string())

    @staticmethod
    def _probe(cursor: Any, table: str, ids: str, scope: Scope) -> pa.Array:
        start, end = scope
        where = " AND ".join(
            [*([] if start is None else ["received_at >= $start"]),
             *([] if end is None else ["received_at < $end"]), f"message_id IN ({ids})"])
        params = {name: as_datetime(at) for name, at in (("start", start), ("end", end))
                  if at is not None}
        found = cursor.execute(f"SELECT DISTINCT message_id FROM {table} WHERE {where}",
                               params).to_arrow_table()
        return found.column(0).combine_chunks().cast(pa.string())


def _load_part(cursor: Any, part: pa.Table, table: str, columns: tuple[str, ...], stamp: str,
               window_start: datetime | None, probes: _Probes) -> pa.Table:
    """Insert the rows of ``part`` whose message_id is not in ``table`` yet; those rows.

    Two steps, measured faster than one ``INSERT ... WHERE NOT EXISTS`` (which cost ~30%
    more CPU): find the ids already loaded (a semi-join that reads only ``message_id``
    and ``received_at``; usually none), drop them in Arrow, then a plain insert.
    """
    if part.num_rows == 0:
        return part
    view = f"_nerve_load_{table}"
    data = as_json(scannable(part.select(list(columns))))
    cursor.register(view, data)
    try:
        seen = probes.copies(cursor, table, f"FROM {view}", window_start)
        if len(seen):
            data = data.filter(pc.invert(pc.is_in(data.column("message_id"), value_set=seen)))
            cursor.unregister(view)
            cursor.register(view, data)
        if data.num_rows == 0:
            return data
        names = ", ".join(quote(c) for c in columns)
        cursor.execute(f"INSERT INTO {table} ({names}, {stamp}) SELECT {names}, now() "
                       f"FROM {view}")
    finally:
        cursor.unregister(view)
    return data


#: what one range's load did: rows loaded, rows quarantined, copies dropped per source
Counts = tuple[int, int, Counter[str]]


def _sources(table: pa.Table) -> Counter[str]:
    """Rows per ``source``."""
    counts = pc.value_counts(table.column("source")) if table.num_rows else []
    return Counter({item["values"].as_py(): item["counts"].as_py() for item in counts})


def _load_dedup(cursor: Any, raw: pa.Table, window_start: datetime | None,
                probes: _Probes) -> Counts:
    """Load ``raw`` skipping every copy of a message_id: (loaded, quarantined, copies
    dropped per source)."""
    # each table holds a message_id once: copies collapse per destination, so a copy
    # that validates after the catalog changed still reaches events
    violations = raw.column("violations")
    if violations.null_count == raw.num_rows:  # the usual case: nothing to quarantine
        valid_rows, invalid_rows = dedup_within(raw), None
    else:
        invalid = pc.is_valid(violations)
        valid_rows = dedup_within(raw.filter(pc.invert(invalid)))
        invalid_rows = dedup_within(raw.filter(invalid))
    loaded = _load_part(cursor, valid_rows, "events", EVENT_COLUMNS, "loaded_at",
                        window_start, probes)
    quarantined = None if invalid_rows is None else _load_part(
        cursor, invalid_rows, "quarantine", QUARANTINE_COLUMNS, "quarantined_at",
        window_start, probes)
    dropped = _sources(raw) - _sources(loaded)
    if quarantined is not None:
        dropped -= _sources(quarantined)
    return loaded.num_rows, 0 if quarantined is None else quarantined.num_rows, dropped


def _load_fresh(cursor: Any, raw: pa.Table, window_start: datetime | None,
                probes: _Probes) -> Counts | None:
    """The usual case in one pass: no message_id repeats, within the rows or in the
    tables. Then both tables are filled straight from one registered Arrow table (DuckDB
    splits valid from invalid while it scans), without the Arrow filters and copies of
    ``_load_dedup``. Returns None, having written nothing, when any id repeats.
    """
    if raw.num_rows == 0:
        return 0, 0, Counter()
    ids = raw.column("message_id")
    if pc.count_distinct(ids).as_py() != raw.num_rows:
        return None
    view = "_nerve_load_all"
    invalid = raw.num_rows - raw.column("violations").null_count
    cursor.register(view, as_json(scannable(raw)))
    try:
        for table, has_rows, where in (("events", invalid < raw.num_rows, "IS NULL"),
                                       ("quarantine", invalid > 0, "IS NOT NULL")):
            if has_rows and len(probes.copies(
                    cursor, table, f"FROM {view} WHERE violations {where}", window_start)):
                return None
        for table, columns, stamp, has_rows, where in (
                ("events", EVENT_COLUMNS, "loaded_at", invalid < raw.num_rows, "IS NULL"),
                ("quarantine", QUARANTINE_COLUMNS, "quarantined_at", invalid > 0,
                 "IS NOT NULL")):
            if has_rows:
                names = ", ".join(quote(c) for c in columns)
                cursor.execute(f"INSERT INTO {table} ({names}, {stamp}) SELECT {names}, "
                               f"now() FROM {view} WHERE violations {where}")
    finally:
        cursor.unregister(view)
    return raw.num_rows - invalid, invalid, Counter()


@dataclass(frozen=True, slots=True)
class LogRange:
    """Batches read from one log segment, the bytes ``[start_offset, end_offset)``."""

    writer: str
    segment: str
    start_offset: int
    end_offset: int
    batches: list[pa.RecordBatch]
    #: rows of the range set aside instead of loaded (recorded in the ledger only)
    rejected: int = 0


def commit_load(cursor: Any, batches: list[pa.RecordBatch], *, writer: str, segment: str,
                start_offset: int, end_offset: int,
                dedup_window: timedelta | None, rejected: int = 0) -> LoadStats:
    """Load batches read from ``segment`` up to ``end_offset``, in one transaction.

    Valid rows go to ``events`` and invalid ones to ``quarantine``, each skipping a
    ``message_id`` already in that table or earlier in the batch (received within
    ``dedup_window`` before the batch's earliest event; ``None``: the whole table).
    The segment's offset and a ``loads`` ledger row commit with the rows, so a crash
    leaves either all of it or none. ``rejected`` counts rows of the range that were set
    aside instead (recorded in the ledger only).
    """
    return commit_ranges(cursor, [LogRange(writer, segment, start_offset, end_offset,
                                           batches, rejected)], dedup_window=dedup_window)


def commit_ranges(cursor: Any, ranges: list[LogRange], *, dedup_window: timedelta | None,
                  index: dict[str, RecentIds] | None = None) -> LoadStats:
    """``commit_load`` for several ranges (any writers, any segments) in ONE transaction.

    The outcome is the one of committing the ranges one by one, in order: each range
    gets its own ledger row and offset, and a message_id loaded by an earlier range is a
    duplicate in a later one. It is only cheaper: DuckDB's cost per row falls as commits
    grow (measured ~4.3 us per row at 60k rows per commit, ~3.2 us at 250k), and a server
    with one log writer per worker process would otherwise commit each writer's rows
    apart. When no message_id repeats (the usual load), all ranges go in one pass.

    ``index`` (``RecentIds`` of ``events`` and ``quarantine``, kept by the caller across
    commits) narrows each probe for copies to the hours that may hold one; without it a
    probe reads every row received within the window.
    """
    # the collector's tally rows (what it did not store) go to the ledger, not to a table
    tables, tallies = [], []
    for r in ranges:
        table, tally = split_tallies(conform(pa.Table.from_batches(r.batches) if r.batches
                                             else ENVELOPE_SCHEMA.empty_table()))
        tables.append(table)
        tallies.append(tally)
    total = LoadStats()
    probes = _Probes(index)
    cursor.execute("BEGIN TRANSACTION")
    try:
        counts = (_load_together(cursor, tables, dedup_window, probes) if len(tables) > 1
                  else None)
        if counts is None:
            counts = [_load_one(cursor, table, dedup_window, probes) for table in tables]
        for part, table, tally, (loaded, quarantined, dropped) in zip(
                ranges, tables, tallies, counts, strict=True):
            stats = LoadStats(batches=len(part.batches), rows_in=table.num_rows + part.rejected,
                              loaded=loaded, quarantined=quarantined, rejected=part.rejected,
                              duplicates=table.num_rows - loaded - quarantined)
            _record(cursor, part, stats, table, dropped, tally)
            total.add(stats)
        cursor.execute("COMMIT")
        total.probe_seconds = probes.seconds
    except BaseException:
        with contextlib.suppress(Exception):  # a failed COMMIT has already rolled back
            cursor.execute("ROLLBACK")
        raise
    probes.committed()
    return total


def _window_start(table: pa.Table, dedup_window: timedelta | None) -> datetime | None:
    """How far back a copy of the table's message_ids is looked for (None: everywhere)."""
    if dedup_window is None or table.num_rows == 0:
        return None
    earliest: datetime = pc.min(table.column("received_at")).as_py()
    return earliest - dedup_window


def _load_one(cursor: Any, table: pa.Table, dedup_window: timedelta | None,
              probes: _Probes) -> Counts:
    """One range's rows (``Counts``), in one pass when no message_id repeats."""
    window_start = _window_start(table, dedup_window)
    fresh = _load_fresh(cursor, table, window_start, probes)
    return fresh if fresh is not None else _load_dedup(cursor, table, window_start, probes)


def _load_together(cursor: Any, tables: list[pa.Table], dedup_window: timedelta | None,
                   probes: _Probes) -> list[Counts] | None:
    """Every range in one pass when no message_id repeats within them or in the tables
    since the earliest range's window (a superset of each range's window, so the answer
    is the one-by-one answer); None, having written nothing, otherwise."""
    together = pa.concat_tables(tables)
    if _load_fresh(cursor, together, _window_start(together, dedup_window), probes) is None:
        return None
    counts: list[Counts] = []
    for table in tables:
        invalid = table.num_rows - table.column("violations").null_count
        counts.append((table.num_rows - invalid, invalid, Counter()))
    return counts


def _record(cursor: Any, part: LogRange, stats: LoadStats, table: pa.Table,
            dropped: Counter[str], tally: dict[str, Any] | None = None) -> None:
    """The range's new offset and its ledger row (inside the load's transaction);
    ``dropped``: the copies of loaded message_ids it dropped, per source; ``tally``: what
    the collector did not store (``nerve.log._tally``), for the ``withheld`` column."""
    received = pc.min_max(table.column("received_at")) if table.num_rows else None
    lo = received["min"].as_py() if received else None
    hi = received["max"].as_py() if received else None
    cursor.execute(
        'INSERT INTO log_offsets (writer, segment, "offset", updated_at) '
        "VALUES (?, ?, ?, now()) ON CONFLICT (writer, segment) "
        'DO UPDATE SET "offset" = excluded."offset", updated_at = excluded.updated_at',
        [part.writer, part.segment, part.end_offset],
    )
    cursor.execute(
        'INSERT INTO loads ("at", writer, segment, start_offset, "offset", rows_in, '
        "loaded, duplicates, quarantined, rejected, min_received_at, max_received_at, "
        "duplicate_sources, withheld) VALUES (now(), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [part.writer, part.segment, part.start_offset, part.end_offset, stats.rows_in,
         stats.loaded, stats.duplicates, stats.quarantined, stats.rejected, lo, hi,
         orjson.dumps(dict(sorted(dropped.items()))).decode() if dropped else None,
         orjson.dumps(tally, option=orjson.OPT_SORT_KEYS).decode() if tally else None],
    )
