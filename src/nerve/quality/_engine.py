"""Engine-specific spellings of the few expressions where Ibis' portable form is slow.

Everything else in the checks is plain Ibis. On DuckDB, Ibis' JSON access (a cast to JSON
plus a type test per path) and epoch extraction (through a cast to a naive timestamp)
cost several seconds on 10M rows; the builtins ``json_extract_string`` and ``epoch_us``
do the same work in a fraction of that. Other engines use the portable form.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import ibis
import ibis.expr.types as ir
from ibis.common.exceptions import IbisError, TableNotFound

__all__ = [
    "Inputs",
    "backend_name",
    "epoch_seconds",
    "event_key",
    "field_value",
    "has_table",
    "json_missing",
    "json_text",
    "json_texts",
    "user_key",
]


# Parameters without annotations accept any type (JSON or text; any timestamp).
@ibis.udf.scalar.builtin(name="json_extract_string")  # type: ignore[untyped-decorator]
def _duck_json_text(doc, path: str) -> str:  # type: ignore[no-untyped-def]
    """DuckDB builtin."""
    raise NotImplementedError


@ibis.udf.scalar.builtin(name="epoch_us")  # type: ignore[untyped-decorator]
def _duck_epoch_us(ts) -> int:  # type: ignore[no-untyped-def]
    """DuckDB builtin."""
    raise NotImplementedError


@ibis.udf.scalar.builtin(name="json_extract_string")  # type: ignore[untyped-decorator]
def _duck_json_texts(doc, paths: list[str]) -> list[str]:  # type: ignore[no-untyped-def]
    """DuckDB builtin, list form: parses each document once for many paths."""
    raise NotImplementedError


@dataclass(frozen=True, slots=True)
class Inputs:
    """The warehouse tables the checks read; ``loads`` and ``quarantine`` may be missing."""

    events: ir.Table
    quarantine: ir.Table | None = None
    loads: ir.Table | None = None

    @property
    def backend(self) -> str:
        return backend_name(self.events)


def has_table(con: Any, name: str) -> bool:
    """Whether the Ibis backend ``con`` has table ``name`` (without listing every table)."""
    try:
        con.table(name)
    except (TableNotFound, IbisError):
        return False
    return True


def backend_name(table: ir.Table) -> str:
    """``duckdb``, ``postgres``, ``pyspark``, ..."""
    return str(table._find_backend().name)


def epoch_seconds(column: Any, backend: str) -> ir.FloatingValue:
    """Seconds since the epoch of a timestamp column, as a float."""
    if backend == "duckdb":
        return _duck_epoch_us(column).cast("float64") / 1e6
    return column.epoch_seconds().cast("float64")


def json_text(column: Any, path: str, backend: str) -> ir.StringValue:
    """The text at ``path`` (``os.name``) inside a JSON text column; null when absent."""
    keys = [k for k in path.split(".") if k]
    if backend == "duckdb":
        return _duck_json_text(column, "$." + ".".join(keys))
    value = column.cast("json")
    for key in keys:
        value = value[key]
    return value.str


def json_texts(column: Any, paths: list[str], backend: str) -> ir.ArrayValue | None:
    """The texts at several paths as one array, parsing each row once (DuckDB), else None."""
    if backend != "duckdb":
        return None
    return _duck_json_texts(column, ibis.literal(["$." + p for p in paths],
                                                 type="array<string>"))


def json_missing(column: Any, path: str, backend: str) -> ir.BooleanValue:
    """True where ``path`` is absent from a JSON text column or holds JSON null."""
    if backend == "duckdb":
        return _duck_json_text(column, "$." + path).isnull()
    value = column.cast("json")
    for key in (k for k in path.split(".") if k):
        value = value[key]
    return value.isnull() | (value.cast("string") == "null")


def field_value(table: ir.Table, path: str, backend: str) -> ir.StringValue:
    """A top-level column (``user_id``) or a JSON path into properties/traits/context."""
    head, _, rest = path.partition(".")
    if not rest:
        return table[head].cast("string")
    return json_text(table[head], rest, backend)


def user_key(table: ir.Table) -> ir.StringValue:
    """Who did it: the user id, else the anonymous id."""
    return ibis.coalesce(table.user_id, table.anonymous_id)


def event_key(table: ir.Table) -> ir.StringValue:
    """The catalog name of a row: the track event's name, else the call type (page, ...)."""
    return ibis.coalesce(table.event, table.type)
