"""The warehouse's own tables, derived from the envelope schema.

- ``events``: envelope columns except ``violations``; properties/traits/context as JSON;
  plus ``loaded_at``. Only valid events.
- ``quarantine``: every envelope column (``violations`` as JSON) plus ``quarantined_at``.
- ``loads``: one ledger row per committed load.
- ``log_offsets``: how far each log segment is loaded, committed with the rows.
- ``erasures``: one row per ``nerve forget`` or ``nerve expire`` (nerve.erasure), counts
  only; made with the others, so that it reads as empty, not as missing, before the first.

New envelope columns are added to existing tables on open (``ALTER TABLE ADD COLUMN``),
so a workspace created by an older nerve keeps working.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from nerve.envelope import ENVELOPE_SCHEMA

__all__ = [
    "EVENT_COLUMNS",
    "JSON_COLUMNS",
    "QUARANTINE_COLUMNS",
    "TABLES",
    "ensure_schema",
    "quote",
]

JSON_COLUMNS = frozenset({"properties", "traits", "context", "violations"})

_ARROW_TO_SQL = {
    pa.string(): "VARCHAR",
    pa.large_string(): "VARCHAR",
    pa.bool_(): "BOOLEAN",
    pa.int32(): "INTEGER",
    pa.int64(): "BIGINT",
    pa.float64(): "DOUBLE",
    pa.timestamp("us", tz="UTC"): "TIMESTAMPTZ",
}


def quote(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def _column_type(field: pa.Field) -> str:
    if field.name in JSON_COLUMNS:
        return "JSON"
    try:
        return _ARROW_TO_SQL[field.type]
    except KeyError:  # pragma: no cover - a new envelope type needs a mapping here
        raise TypeError(f"envelope field {field.name}: no SQL type for {field.type}") from None


def _columns(fields: list[pa.Field]) -> list[tuple[str, str]]:
    return [
        (f.name, _column_type(f) + ("" if f.nullable else " NOT NULL")) for f in fields
    ]


EVENT_COLUMNS: tuple[str, ...] = tuple(n for n in ENVELOPE_SCHEMA.names if n != "violations")
QUARANTINE_COLUMNS: tuple[str, ...] = tuple(ENVELOPE_SCHEMA.names)

TABLES: dict[str, list[tuple[str, str]]] = {
    "events": [
        *_columns([f for f in ENVELOPE_SCHEMA if f.name != "violations"]),
        ("loaded_at", "TIMESTAMPTZ NOT NULL"),
    ],
    "quarantine": [*_columns(list(ENVELOPE_SCHEMA)), ("quarantined_at", "TIMESTAMPTZ NOT NULL")],
    "loads": [
        ("at", "TIMESTAMPTZ NOT NULL"),
        ("writer", "VARCHAR NOT NULL"),
        ("segment", "VARCHAR NOT NULL"),
        ("start_offset", "BIGINT NOT NULL"),
        ("offset", "BIGINT NOT NULL"),
        ("rows_in", "BIGINT NOT NULL"),
        ("loaded", "BIGINT NOT NULL"),
        ("duplicates", "BIGINT NOT NULL"),
        ("quarantined", "BIGINT NOT NULL"),
        # rows the warehouse refused (a bug upstream); kept in <segment>.rejected-*.arrow
        ("rejected", "BIGINT NOT NULL DEFAULT 0"),
        ("min_received_at", "TIMESTAMPTZ"),
        ("max_received_at", "TIMESTAMPTZ"),
        # the duplicates per source, as JSON text ({"web": 12}); null when none
        ("duplicate_sources", "VARCHAR"),
        # what the collector did not store, from its tally rows (nerve.log._tally), as
        # JSON text: {"consent": {source: {event: n}}, "refused": {status: {code: n}}}
        ("withheld", "VARCHAR"),
    ],
    "log_offsets": [
        ("writer", "VARCHAR NOT NULL"),
        ("segment", "VARCHAR NOT NULL"),
        ("offset", "BIGINT NOT NULL"),
        ("updated_at", "TIMESTAMPTZ NOT NULL"),
    ],
    "erasures": [
        ("erased_at", "TIMESTAMPTZ NOT NULL"),
        ("kind", "VARCHAR NOT NULL"),
        ("events", "BIGINT NOT NULL"),
        ("quarantine", "BIGINT NOT NULL"),
        ("detail", "JSON"),
    ],
}

_CONSTRAINTS = {"log_offsets": ", PRIMARY KEY (writer, segment)"}


def ensure_schema(con: Any) -> None:
    """Create nerve's tables if missing, and add any envelope columns they lack."""
    for table, columns in TABLES.items():
        body = ", ".join(f"{quote(n)} {t}" for n, t in columns)
        con.execute(f"CREATE TABLE IF NOT EXISTS {table} ({body}{_CONSTRAINTS.get(table, '')})")
        existing = {
            row[0]
            for row in con.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name = ?",
                [table],
            ).fetchall()
        }
        for name, sql_type in columns:
            if name not in existing:
                # added columns are nullable: old rows have no value for them
                con.execute(
                    f"ALTER TABLE {table} ADD COLUMN {quote(name)} "
                    f"{sql_type.replace(' NOT NULL', '')}"
                )
