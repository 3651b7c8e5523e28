"""One load: deduplicated rows, quarantine, ledger and log offset in one transaction."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from nerve.envelope import ENVELOPE_SCHEMA
from nerve.warehouse import EVENT_COLUMNS, QUARANTINE_COLUMNS

__all__ = ["LoadStats", "commit_load", "dedup_within", "read_offsets"]

_BATCH_VIEW = "_nerve_load_batch"


@dataclass(slots=True)
class LoadStats:
    """What one or more loads did. ``rows_in = loaded + duplicates + quarantined``."""

    batches: int = 0
    rows_in: int = 0
    loaded: int = 0
    duplicates: int = 0
    quarantined: int = 0
    #: log segments fully loaded and deleted
    segments_done: int = 0

    def add(self, other: LoadStats) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


def conform(table: pa.Table) -> pa.Table:
    """The envelope columns in order; columns an older log lacks are null."""
    arrays = []
    for field in ENVELOPE_SCHEMA:
        if field.name in table.column_names:
            column = table.column(field.name)
            arrays.append(column if column.type == field.type else column.cast(field.type))
        else:
            arrays.append(pa.nulls(table.num_rows, field.type))
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


def _insert(table: str, columns: tuple[str, ...], stamp: str, valid: bool,
            window_start: datetime | None) -> str:
    names = ", ".join(quote(c) for c in columns)
    values = ", ".join("b." + quote(c) for c in columns)
    window = "" if window_start is None else "AND t.received_at >= $window_start"
    return (
        f"INSERT INTO {table} ({names}, {stamp}) "
        f"SELECT {values}, now() "
        f"FROM {_BATCH_VIEW} AS b "
        f"WHERE b.violations IS {'NULL' if valid else 'NOT NULL'} "
        f"AND NOT EXISTS (SELECT 1 FROM {table} AS t "
        f"WHERE t.message_id = b.message_id {window})"
    )


def commit_load(cursor: Any, batches: list[pa.RecordBatch], *, writer: str, segment: str,
                start_offset: int, end_offset: int,
                dedup_window: timedelta | None) -> LoadStats:
    """Load batches read from ``segment`` up to ``end_offset``, in one transaction.

    Valid rows go to ``events`` and invalid ones to ``quarantine``, each skipping a
    ``message_id`` already in the batch or in the table (received within
    ``dedup_window`` before the batch's earliest event; ``None``: the whole table).
    The segment's offset and a ``loads`` ledger row commit with the rows, so a crash
    leaves either all of it or none.
    """
    raw = conform(pa.Table.from_batches(batches, schema=batches[0].schema)
                  if batches else ENVELOPE_SCHEMA.empty_table())
    table = dedup_within(raw)
    received = pc.min_max(raw.column("received_at")) if raw.num_rows else None
    lo = received["min"].as_py() if received else None
    hi = received["max"].as_py() if received else None
    window_start = None if dedup_window is None or lo is None else lo - dedup_window
    params = {} if window_start is None else {"window_start": window_start}
    cursor.execute("BEGIN TRANSACTION")
    try:
        cursor.register(_BATCH_VIEW, table)
        try:
            loaded = cursor.execute(
                _insert("events", EVENT_COLUMNS, "loaded_at", True, window_start), params
            ).fetchone()[0]
            quarantined = cursor.execute(
                _insert("quarantine", QUARANTINE_COLUMNS, "quarantined_at", False,
                        window_start), params
            ).fetchone()[0]
        finally:
            cursor.unregister(_BATCH_VIEW)
        stats = LoadStats(batches=len(batches), rows_in=raw.num_rows, loaded=int(loaded),
                          quarantined=int(quarantined),
                          duplicates=raw.num_rows - int(loaded) - int(quarantined))
        cursor.execute(
            'INSERT INTO log_offsets (writer, segment, "offset", updated_at) '
            "VALUES (?, ?, ?, now()) ON CONFLICT (writer, segment) "
            'DO UPDATE SET "offset" = excluded."offset", updated_at = excluded.updated_at',
            [writer, segment, end_offset],
        )
        cursor.execute(
            'INSERT INTO loads ("at", writer, segment, start_offset, "offset", rows_in, loaded, '
            "duplicates, quarantined, min_received_at, max_received_at) "
            "VALUES (now(), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [writer, segment, start_offset, end_offset, stats.rows_in, stats.loaded,
             stats.duplicates, stats.quarantined, lo, hi],
        )
        cursor.execute("COMMIT")
    except BaseException:
        cursor.execute("ROLLBACK")
        raise
    return stats
