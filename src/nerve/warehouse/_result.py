"""Query results as JSON: the body of the server's admin SQL route and `nerve sql` output."""

from __future__ import annotations

import base64
import math
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson
import pyarrow as pa

__all__ = ["JSON_TYPE_KEY", "iso_duration", "mark_json_columns", "result_json"]

#: field metadata key marking a column that holds JSON text (DuckDB's JSON type)
JSON_TYPE_KEY = b"nerve.type"


def mark_json_columns(table: pa.Table, json_columns: set[int]) -> pa.Table:
    """Tag the columns at these positions as JSON text, so ``result_json`` returns them
    as objects."""
    if not json_columns:
        return table
    fields = [
        f.with_metadata({**(f.metadata or {}), JSON_TYPE_KEY: b"JSON"})
        if i in json_columns else f
        for i, f in enumerate(table.schema)
    ]
    return table.cast(pa.schema(fields, metadata=table.schema.metadata))


def _value(value: Any) -> Any:
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None  # JSON has no NaN or Infinity
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, pa.MonthDayNano):  # before tuple: it is one
        return iso_duration(value.months, value.days, value.nanoseconds)
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {str(k): _value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_value(v) for v in value]
    return str(value)


def iso_duration(months: int, days: int, nanoseconds: int) -> str:
    """An INTERVAL as an ISO 8601 duration, each part with its own sign as PostgreSQL's
    ``intervalstyle = iso_8601`` writes it (an interval's months, days and time are kept
    apart: a month is not a number of days, nor a day always 24 hours).

    >>> iso_duration(14, 3, 5_400_500_000_000)
    'P1Y2M3DT1H30M0.5S'
    >>> iso_duration(0, 0, -90 * 60 * 10**9)
    'PT-1H-30M'
    """
    years, months = _split(months, 12)
    sign = -1 if nanoseconds < 0 else 1
    hours, rest = divmod(abs(nanoseconds), 3_600 * 10**9)
    minutes, rest = divmod(rest, 60 * 10**9)
    seconds = f"{rest // 10**9}.{rest % 10**9:09d}".rstrip("0").rstrip(".")
    date = "".join(f"{n}{unit}" for n, unit in ((years, "Y"), (months, "M"), (days, "D"))
                   if n)
    time = "".join(f"{'-' if sign < 0 else ''}{n}{unit}"
                   for n, unit in ((hours, "H"), (minutes, "M"), (seconds, "S"))
                   if n not in (0, "0"))
    if not date and not time:
        return "PT0S"
    return f"P{date}{'T' + time if time else ''}"


def _split(months: int, per_year: int) -> tuple[int, int]:
    """Whole years and the months left, both with the sign of ``months``."""
    years, rest = divmod(abs(months), per_year)
    return (-years, -rest) if months < 0 else (years, rest)


def _unique(names: list[str]) -> list[str]:
    """Row objects need distinct keys: a repeated column name gets ``_2``, ``_3``..."""
    seen: set[str] = set()
    out = []
    for name in names:
        candidate, n = name, 1
        while candidate in seen:
            n += 1
            candidate = f"{name}_{n}"
        seen.add(candidate)
        out.append(candidate)
    return out


def result_json(table: pa.Table) -> dict[str, Any]:
    """``{"columns": [...], "rows": [{column: value}, ...]}`` with JSON-safe values, and
    ``"intervals": [...]`` naming the INTERVAL columns when there are some.

    Timestamps become ISO 8601 text, intervals ISO 8601 durations (``P3DT1H``),
    decimals floats, NaN null; columns tagged as JSON
    (``mark_json_columns``, done by ``Warehouse.query``) are parsed into objects.

    >>> result_json(pa.table({"n": [1, 2]}))
    {'columns': ['n'], 'rows': [{'n': 1}, {'n': 2}]}
    """
    columns = _unique(list(table.column_names))
    json_columns = {
        name for name, f in zip(columns, table.schema, strict=True)
        if (f.metadata or {}).get(JSON_TYPE_KEY) == b"JSON"
    }
    table = table.rename_columns(columns)
    try:
        pylist = table.to_pylist()
    except (OverflowError, ValueError):
        # a time Python cannot hold (before year 1 or after 9999): such columns as text
        table = _times_as_text(table)
        pylist = table.to_pylist()
    rows = []
    for row in pylist:
        out = {}
        for name in columns:
            value = row[name]
            if name in json_columns and isinstance(value, str):
                try:
                    out[name] = orjson.loads(value)
                    continue
                except orjson.JSONDecodeError:
                    pass
            out[name] = _value(value)
        rows.append(out)
    intervals = [name for name, f in zip(columns, table.schema, strict=True)
                 if pa.types.is_interval(f.type)]
    if intervals:  # the ISO 8601 text alone would not tell them from a string column
        return {"columns": columns, "rows": rows, "intervals": intervals}
    return {"columns": columns, "rows": rows}


def _times_as_text(table: pa.Table) -> pa.Table:
    """Every date and timestamp column as Arrow's text (``-7974-01-01 00:00:00...``)."""
    for i, f in enumerate(table.schema):
        if pa.types.is_timestamp(f.type) or pa.types.is_date(f.type):
            table = table.set_column(i, pa.field(f.name, pa.string(), metadata=f.metadata),
                                     table.column(i).cast(pa.string()))
    return table
