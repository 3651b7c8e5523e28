"""The one place that knows how engines differ: JSON fields and local time.

Everything else in the semantic layer is plain Ibis. Ibis' own JSON unwrapping is not
portable (on Spark it runs Python UDFs that fail on strings), so JSON text is read with
each engine's builtin function, declared here as Ibis builtin UDFs:

=========  ===========================================  ================================
engine     a field of a JSON text column, as text       UTC instant -> local wall clock
=========  ===========================================  ================================
DuckDB     ``json_extract_string(doc, '$.a.b')``        ``timezone(zone, ts)``
Postgres   ``json_extract_path_text(doc::json, 'a', 'b')``  ``timezone(zone, ts)``
Spark      ``get_json_object(doc, '$.a.b')``            ``from_utc_timestamp(ts, zone)``
=========  ===========================================  ================================

The text is then cast to the catalog type. Spark's conversion assumes the session time
zone is UTC (``spark.sql.session.timeZone``), which nerve's Spark setup configures.
"""

from __future__ import annotations

import re
from typing import Any

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir

from nerve.errors import QueryError

__all__ = ["DIALECTS", "backend_dialect", "exact_sum", "json_field", "json_text", "local_time",
           "safe_divide"]

#: the Ibis/sqlglot dialect names nerve supports
DIALECTS = ("duckdb", "postgres", "pyspark")
_ALIASES = {"spark": "pyspark", "postgresql": "postgres", "databricks": "pyspark"}
_KEY = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$-]*$")

#: catalog property types -> the Ibis type a JSON value is cast to
IBIS_TYPES: dict[str, dt.DataType] = {
    "string": dt.string,
    "integer": dt.int64,
    "number": dt.float64,
    "boolean": dt.boolean,
    "timestamp": dt.Timestamp(timezone="UTC"),
}


@ibis.udf.scalar.builtin(name="json_extract_string")  # type: ignore[untyped-decorator]
def _duckdb_json(doc: str, path: str) -> str:  # type: ignore[empty-body]
    """DuckDB: a JSON field as text."""


@ibis.udf.scalar.builtin(name="json_extract_path")  # type: ignore[untyped-decorator]
def _pg_json_object(doc: dt.JSON, key: str) -> dt.JSON:
    """PostgreSQL: one level down a JSON document."""


@ibis.udf.scalar.builtin(name="json_extract_path_text")  # type: ignore[untyped-decorator]
def _pg_json_text(doc: dt.JSON, key: str) -> str:  # type: ignore[empty-body]
    """PostgreSQL: a JSON field as text."""


@ibis.udf.scalar.builtin(name="get_json_object")  # type: ignore[untyped-decorator]
def _spark_json(doc: str, path: str) -> str:  # type: ignore[empty-body]
    """Spark: a JSON field as text."""


@ibis.udf.scalar.builtin(name="timezone")  # type: ignore[untyped-decorator]
def _sql_timezone(zone: str, ts: dt.Timestamp(timezone="UTC")) -> dt.Timestamp():  # type: ignore[valid-type]
    """DuckDB and PostgreSQL: an instant as wall-clock time in a zone."""


@ibis.udf.scalar.builtin(name="timezone")  # type: ignore[untyped-decorator]
def _sql_as_utc(zone: str, ts: dt.Timestamp()) -> dt.Timestamp(timezone="UTC"):  # type: ignore[valid-type]
    """DuckDB and PostgreSQL: wall-clock time in a zone as an instant."""


@ibis.udf.scalar.builtin(name="from_utc_timestamp")  # type: ignore[untyped-decorator]
def _spark_local(ts: dt.Timestamp(timezone="UTC"), zone: str) -> dt.Timestamp():  # type: ignore[valid-type]
    """Spark: an instant as wall-clock time in a zone (session time zone UTC)."""


@ibis.udf.agg.builtin(name="fsum")  # type: ignore[untyped-decorator]
def _duckdb_fsum(value: float) -> float:  # type: ignore[empty-body]
    """DuckDB: a sum of floats with Kahan-Babuska compensation."""


def exact_sum(value: ir.NumericColumn, where: ir.BooleanValue | None,
              dialect: str) -> ir.NumericScalar:
    """``sum(value)`` where a float sum drifts: revenue with cents must add up to its cents.

    A plain sum of doubles gathers rounding errors row after row, in the order the
    engine's threads meet the rows: 20,000 payments of 23,878,673.87 EUR summed to
    23878673.869998433 (and each day's revenue ended in ...99999996). PostgreSQL adds
    the values as ``numeric`` (a double turns into its 15 significant digits, 9.99 into
    9.99 exactly), so its result is the double nearest the exact sum of what was sent,
    which prints as that sum. DuckDB's ``fsum`` compensates the rounding errors of the
    addition, but its result is the exact sum of the doubles, and the double of 79.99
    is a little below 79.99: 79.99 + 9.99 gave 89.97999999999999, where PostgreSQL gave
    89.98. So on DuckDB the compensated sum is rounded to 15 significant digits of the
    sum of the absolute values (what each value is worth to PostgreSQL, and a bound on
    the error of the doubles, so that refunds cancelling payments round as well: 0.1 +
    0.1 + 0.1 - 0.3 is 0, not 2.8e-17); below 1e-8 or beyond 1e300 it is left as it is.
    Spark adds them plainly. Integers add exactly on every engine.
    """
    if not value.type().is_floating():
        return value.sum(where=where)
    if dialect == "duckdb":
        total = _duckdb_fsum(value, where=where)
        scale = _duckdb_fsum(value.abs(), where=where)
        digits = (14 - scale.log10().floor()).cast(dt.int32)
        return ibis.ifelse(scale.between(1e-8, 1e300), total.round(digits), total)
    if dialect == "postgres":
        return value.cast(dt.Decimal(None, None)).sum(where=where).cast(dt.float64)
    return value.sum(where=where)


def backend_dialect(table: ir.Table) -> str:
    """The dialect of the engine a table lives on (``duckdb``, ``postgres``, ``pyspark``)."""
    try:
        backend = table._find_backend()
    except Exception:  # noqa: BLE001 - an unbound table has no backend: compile as DuckDB
        return "duckdb"
    return normalize_dialect(str(backend.name))


def normalize_dialect(name: str) -> str:
    """``duckdb``, ``postgres`` or ``pyspark`` (``spark`` and ``postgresql`` accepted)."""
    dialect = _ALIASES.get(name.lower(), name.lower())
    if dialect not in DIALECTS:
        raise QueryError(f"the semantic layer does not support the {name!r} engine yet "
                         f"(supported: duckdb, postgres, spark)")
    if dialect == "pyspark":
        # the Spark compiler reads options that exist once its backend is imported
        try:
            ibis.pyspark  # noqa: B018 - loading the backend registers its options
        except ImportError as exc:
            raise QueryError("Spark SQL needs pyspark: pip install 'nerve-telemetry[spark]'") \
                from exc
    return dialect


def json_text(column: ir.Value, path: tuple[str, ...], dialect: str) -> ir.StringValue:
    """The text at ``path`` inside a JSON column (text or JSON); null where absent."""
    for key in path:
        if not _KEY.match(key):
            raise QueryError(f"unsupported JSON key {key!r} in {'.'.join(path)}")
    if dialect == "postgres":
        doc: Any = column.cast(dt.JSON)
        for key in path[:-1]:
            doc = _pg_json_object(doc, key)
        return _pg_json_text(doc, path[-1])
    if column.type().is_json():
        column = column.cast(dt.string)
    if dialect == "pyspark":
        return _spark_json(column, "$." + ".".join(path))
    return _duckdb_json(column, "$." + ".".join(path))


def json_field(column: ir.StringValue, path: tuple[str, ...], type_: str,
               dialect: str) -> ir.Value:
    """The value at ``path`` inside a JSON text column, cast to a catalog type."""
    text = json_text(column, path, dialect)
    target = IBIS_TYPES.get(type_)
    if target is None:
        raise QueryError(f"{'.'.join(path)} is {type_}; only string, integer, number, boolean "
                         "and timestamp values can be used in metrics")
    if target.is_string():
        return text
    if target.is_timestamp():
        return text.cast(dt.Timestamp(timezone="UTC"))
    return text.cast(target)


def local_time(ts: ir.TimestampValue, tz: str, dialect: str) -> ir.TimestampValue:
    """A UTC instant as naive wall-clock time in ``tz``.

    A column without a time zone (PostgreSQL's ``timestamp``, DuckDB's ``TIMESTAMP``: a
    copy of ``events`` made by hand) holds UTC, as the collector reads times without an
    offset: the engines' ``timezone(zone, ts)`` would read it as wall-clock time in
    ``tz`` instead, turning it the other way (every Berlin day began two hours early).
    Spark's timestamps are instants whatever Ibis calls them."""
    # always through the engine's zone function: a plain cast would use the session zone
    if dialect == "pyspark":
        return _spark_local(ts, tz)
    if ts.type().timezone is None:
        ts = _sql_as_utc("UTC", ts)
    return _sql_timezone(tz, ts)


def safe_divide(numerator: ir.NumericValue, denominator: ir.NumericValue) -> ir.FloatingValue:
    """``numerator / denominator``, null (not an error, not infinity) when dividing by zero."""
    return numerator.cast(dt.float64) / denominator.cast(dt.float64).nullif(0)
