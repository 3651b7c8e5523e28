"""From the warehouse's events to the matcher's sorted rows: one Ibis query per funnel.

The engine (DuckDB, PostgreSQL, Spark) does the heavy part: it filters the period and the
steps' events, computes each row's step bitmask, held values and breakdown value, and
sorts by entity. The matcher then walks the sorted columns in numpy.

Tie-breaking is fixed here: rows are ordered by entity, held values, timestamp, then the
lowest step the row matches (rows matching no step last), then the step and exclusion
bitmasks, held values (strict order) and breakdown value. So events that share a
timestamp count in funnel order, and rows still tied are interchangeable for every
number and list a funnel reports: the result is the same on every engine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import reduce
from typing import Any

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from nerve.analytics._fields import dialect_of, entity, field_text, filters_expr
from nerve.analytics._match import Rows
from nerve.analytics._spec import FunnelSpec
from nerve.warehouse import one_of

__all__ = ["FetchedRows", "fetch_rows", "funnel_query", "funnel_rows", "shape_rows",
           "sort_keys", "step_lut", "to_micros"]

#: strict order: the events that count as "another event in between"
STREAM_TYPES = ("track", "page", "screen")


def to_micros(value: date) -> int:
    """Microseconds since the epoch (naive datetimes are UTC)."""
    return (_utc(value) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def _utc(value: date) -> datetime:
    # a validated FunnelSpec's since/until: its dates are instants by then
    assert isinstance(value, datetime), "FunnelSpec.validate() makes dates instants"
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def funnel_query(events: ir.Table, spec: FunnelSpec, layer: Any = None) -> ir.Table:
    """The Ibis query whose rows the matcher walks: ``funnel_rows`` sorted by entity,
    held values, timestamp and the tie rule (see the module docstring)."""
    rows = funnel_rows(events, spec, layer)
    return rows.order_by([ibis.asc(k, nulls_first=False) if how == "ascending"
                          else ibis.desc(k) for k, how in sort_keys(spec)])


def sort_keys(spec: FunnelSpec) -> list[tuple[str, str]]:
    """The rows' order as (column, "ascending" | "descending"), nulls last."""
    strict = spec.order == "strict"
    holds = [f"h{i}" for i in range(len(spec.hold))]
    keys = [(k, "ascending") for k in ["entity", *([] if strict else holds), "ts"]]
    keys.append(("rmask", "descending"))  # never null
    rest = [*(["excl"] if spec.exclusions else []), *(holds if strict else []),
            *(["by"] if spec.by else [])]
    # rows still tied after these keys are interchangeable for every output
    return [*keys, *((k, "ascending") for k in rest)]


def funnel_rows(events: ir.Table, spec: FunnelSpec, layer: Any = None) -> ir.Table:
    """The funnel's rows, unsorted (columns: entity, h0.., ts, rmask, excl, by).

    With a semantic ``layer`` (``nerve.semantic.SemanticLayer``) the breakdown is the
    layer's dimension (``user.age_group`` as of each event, named dimensions), joined on
    ``message_id``; without one it is a field path read from the event itself.
    """
    t = events
    strict = spec.order == "strict"
    types = STREAM_TYPES if strict else ("track",)
    # (an event without a timestamp cannot be placed in a funnel: it is left out)
    cond = t.type.isin(types) & entity(t).notnull() & t.timestamp.notnull()
    if spec.since is not None:
        cond &= t.timestamp >= _utc(spec.since)
    if spec.until is not None:
        cond &= t.timestamp < _utc(spec.until) + spec.window
    t = t.filter(cond)
    step_hits = [filters_expr(t, s.event, s.where) for s in spec.steps]
    excl_hits = [filters_expr(t, x.event, x.where) for x in spec.exclusions]
    zero = ibis.literal(0, type="int64")

    def bits(hits: list[ir.BooleanValue], bit: Callable[[int], int]) -> ir.IntegerValue:
        terms = [h.ifelse(ibis.literal(bit(i), type="int64"), zero) for i, h in enumerate(hits)]
        return reduce(lambda a, b: a + b, terms, zero)

    n = len(spec.steps)
    columns: dict[str, ir.Value] = {"entity": entity(t)}
    for i, name in enumerate(spec.hold):
        columns[f"h{i}"] = field_text(t, name)
    # step k is bit n-1-k, so that sorting rmask descending puts the row matching the
    # lowest step first (one key for the tie rule), and rows matching no step last
    columns |= {"ts": t.timestamp, "rmask": _step_mask(t, spec) if not any(
        s.where for s in spec.steps) else bits(step_hits, lambda i: 1 << (n - 1 - i))}
    if spec.exclusions:
        columns["excl"] = bits(excl_hits, lambda i: 1 << i)
    dimension = _layer_dimension(events, spec, layer) if spec.by and layer else None
    if dimension is not None:
        columns["message_id"] = t.message_id
    elif spec.by:
        columns["by"] = field_text(t, spec.by)
    rows = t.select(**columns)
    if not strict:
        # the steps' events only: lets the engine skip the rest at the scan
        names = sorted({s.event for s in spec.steps} | {x.event for x in spec.exclusions})
        rows = t.filter(one_of(t.event, names)).select(**columns)
        if not spec.exclusions and any(s.where for s in spec.steps):
            # (without filters, every row left matches a step; the check would cost
            # DuckDB ~15% of the query on the benchmark)
            rows = rows.filter(rows.rmask != 0)
        for i in range(len(spec.hold)):
            rows = rows.filter(rows[f"h{i}"].notnull())
    if dimension is not None:
        joined = rows.left_join(dimension, rows.message_id == dimension.dim_message_id)
        rows = joined.select(*[c for c in columns if c != "message_id"], by=joined.dim_value)
    return rows


@ibis.udf.scalar.builtin(name="list_position")  # type: ignore[untyped-decorator]
def _list_position(values: dt.Array[dt.String], value: str) -> int:  # type: ignore[empty-body]
    """DuckDB: the 1-based position of ``value`` in ``values`` (NULL when absent)."""


@ibis.udf.scalar.builtin(name="list_extract")  # type: ignore[untyped-decorator]
def _list_extract(values: dt.Array[dt.Int64], index: int) -> int:  # type: ignore[empty-body]
    """DuckDB: the element at a 1-based ``index`` (NULL when out of range or NULL)."""


def _step_mask(t: ir.Table, spec: FunnelSpec) -> ir.IntegerValue:
    """Steps without filters: the row's bitmask depends on its event name only, so one
    ``CASE event WHEN ...`` gives it (cheaper for the engine than a sum of one CASE per
    step: ~0.1 s of DuckDB CPU on the benchmark). Bit n-1-k for step k, as ``bits``.
    On DuckDB, a lookup of the name's position in a list of the names does the same
    for ~0.05-0.1 s less CPU than the CASE (which compares every row with each name)."""
    n = len(spec.steps)
    by_event: dict[str, int] = {}
    for k, step in enumerate(spec.steps):
        by_event[step.event] = by_event.get(step.event, 0) | 1 << (n - 1 - k)
    if dialect_of(t) == "duckdb":
        names = ibis.literal(list(by_event), type="array<string>")
        masks = ibis.literal(list(by_event.values()), type="array<int64>")
        return _list_extract(masks, _list_position(names, t.event)).fill_null(0)
    return t.event.cases(*by_event.items(), else_=0).cast("int64")


def _layer_dimension(events: ir.Table, spec: FunnelSpec, layer: Any) -> ir.Table:
    """(message_id, value) of the breakdown dimension for the steps' events."""
    names = sorted({s.event for s in spec.steps})
    dims = layer.event_rows(events, names, dimensions=(spec.by,))
    column = str(spec.by).replace(".", "_")
    return dims.select(dim_message_id=dims.message_id,
                       dim_value=dims[column].cast("string"))


@dataclass(frozen=True, slots=True)
class FetchedRows:
    """The matcher's rows plus what the report needs: entity of each segment, values."""

    rows: Rows
    entity_start: npt.NDArray[np.bool_]  # true on each entity's first row
    entities: pa.Array  # entity id per row
    by: pa.Array | None  # breakdown value per row (text)



def _changed(*columns: pa.ChunkedArray | pa.Array) -> npt.NDArray[np.bool_]:
    """True where a row differs from the previous one in any column (always at row 0)."""
    length = len(columns[0])
    out = np.zeros(length, dtype=bool)
    if length == 0:
        return out
    out[0] = True
    for column in columns:
        col = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        cur, prev = col.slice(1), col.slice(0, length - 1)
        diff = pc.not_equal(cur, prev)
        if col.null_count:
            # null next to a value differs; null next to null is the same value
            diff = pc.if_else(pc.is_null(diff), pc.xor(pc.is_null(cur), pc.is_null(prev)),
                              diff)
        out[1:] |= diff.to_numpy(zero_copy_only=False)
    return out


def step_lut(n: int) -> npt.NDArray[np.int64]:
    """``rmask`` (step k at bit n-1-k, for the sort) -> mask (step k at bit k): reverse
    the bits with a lookup table, one gather per row."""
    values = np.arange(1 << n, dtype=np.int64)
    lut = np.zeros(1 << n, dtype=np.int64)
    for k in range(n):
        lut |= ((values >> (n - 1 - k)) & 1) << k
    return lut


def fetch_rows(events: ir.Table, spec: FunnelSpec, layer: Any = None) -> FetchedRows:
    """Run the funnel's query and shape the result as numpy columns for the matcher."""
    table = funnel_query(events, spec, layer).to_pyarrow()
    return shape_rows(table, spec)


def shape_rows(table: pa.Table, spec: FunnelSpec) -> FetchedRows:
    """Arrow rows sorted by ``funnel_query`` as the matcher's ``Rows``."""
    ts_col = table.column("ts")
    ts = pc.cast(pc.cast(ts_col, pa.timestamp("us", tz="UTC")), pa.int64())
    ts_np = ts.to_numpy().astype(np.int64, copy=False)
    rmask = table.column("rmask").to_numpy()
    mask = step_lut(len(spec.steps))[rmask]
    excl = (table.column("excl").to_numpy().astype(np.int64, copy=False)
            if spec.exclusions else np.zeros(len(rmask), dtype=np.int64))
    entity_col = table.column("entity")
    entity_start = _changed(entity_col)
    holds = [table.column(f"h{i}") for i in range(len(spec.hold))]
    same_hold_prev = None
    if spec.order == "strict":
        seg_start = entity_start
        if holds:
            same_hold_prev = ~_changed(*holds)
            for h in holds:  # a missing held value never matches
                same_hold_prev &= ~pc.is_null(h).to_numpy(zero_copy_only=False)
            same_hold_prev[1:] &= ~pc.is_null(holds[0]).to_numpy(zero_copy_only=False)[:-1]
    else:
        seg_start = _changed(entity_col, *holds) if holds else entity_start
    if spec.order == "strict" and holds:
        # a step whose own held value is missing cannot be part of a held chain
        missing = np.zeros(len(mask), dtype=bool)
        for h in holds:
            missing |= pc.is_null(h).to_numpy(zero_copy_only=False)
        mask = np.where(missing, 0, mask)
    rows = Rows(seg_start=seg_start, ts=ts_np, mask=mask, excl=excl,
                same_hold_prev=same_hold_prev)
    entities = entity_col.combine_chunks()
    by = table.column("by").combine_chunks() if spec.by else None
    return FetchedRows(rows, entity_start, entities, by)
