"""The warehouse: a DuckDB file by default, read through Ibis.

Tables (docs/storage.md): ``events`` (valid events), ``quarantine`` (invalid or
unplanned events with their violations), ``loads`` (a ledger of loader commits),
``log_offsets`` (how far each log segment is loaded) and ``erasures`` (forgets, expiries).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nerve._lazy import names_from

if TYPE_CHECKING:
    from nerve.warehouse._exprs import analysis_events, one_of, stitch_identities
    from nerve.warehouse._masking import MaskedWarehouse
    from nerve.warehouse._readonly import check_read_only
    from nerve.warehouse._result import result_json
    from nerve.warehouse._schema import EVENT_COLUMNS, JSON_COLUMNS, QUARANTINE_COLUMNS, TABLES
    from nerve.warehouse._warehouse import DATA_ERRORS, Warehouse

__all__ = [
    "DATA_ERRORS",
    "EVENT_COLUMNS",
    "JSON_COLUMNS",
    "QUARANTINE_COLUMNS",
    "TABLES",
    "MaskedWarehouse",
    "Warehouse",
    "analysis_events",
    "check_read_only",
    "one_of",
    "result_json",
    "stitch_identities",
]

__getattr__ = names_from(__name__, {
    "_exprs": ("analysis_events", "one_of", "stitch_identities"),
    "_masking": ("MaskedWarehouse",),
    "_readonly": ("check_read_only",),
    "_result": ("result_json",),
    "_schema": ("EVENT_COLUMNS", "JSON_COLUMNS", "QUARANTINE_COLUMNS", "TABLES"),
    "_warehouse": ("DATA_ERRORS", "Warehouse"),
})
