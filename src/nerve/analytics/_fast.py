"""The funnel fast path on an embedded DuckDB: no ORDER BY; nerve groups and matches.

The SQL path has the engine sort every step event by entity and time; on 10M events that
sort alone costs DuckDB more than ClickHouse's whole ``windowFunnel``. Here DuckDB only
scans and filters (``funnel_rows``, the same query without its ORDER BY, with
``preserve_insertion_order`` off so that both cores hand rows back in any order), and the
compiled kernels (``_kernels``, ``_kmatch``) group the rows per entity in O(rows) and
match each entity's few rows. Every mode and option is covered; the results are those
of the SQL path, row for row (the same tie rule, the same greedy, the same
representative chain).

A 64-bit hash of the id groups the rows; 32 bits of a second, independent hash travel
with each row, so two ids sharing the first hash (~1e-8 for a million ids) are seen and
the funnel is then matched by the SQL path's code over the same rows, sorted by Arrow
(``sort_table``); two ids would be merged only if they shared all 96 bits (~1e-17).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import ibis.expr.types as ir
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from nerve.analytics._fields import dialect_of
from nerve.analytics._match import Plan
from nerve.analytics._rows import funnel_rows, sort_keys, step_lut
from nerve.analytics._scratch import Scratch
from nerve.analytics._spec import FunnelSpec

__all__ = ["Matched", "fast_engine", "fetch_table", "match_table", "sort_table"]

I64 = npt.NDArray[np.int64]
_MODES = {"sequential": 0, "strict": 1, "any": 2}
_LATEST = int(np.iinfo(np.int64).max)


@dataclass(frozen=True, slots=True)
class Matched:
    """Per entity that did the first step: one of its rows, the steps reached, and the
    representative chain (rows, -1 where no step); plus the row columns the report
    reads."""

    first_row: I64
    reached: I64
    chain: I64  # (entities, steps); (entities, 0) when no breakdown reads it
    delta: I64  # (entities, steps): microseconds from the previous step done, -1: none
    entities: pa.Array | pa.ChunkedArray  # entity id per row
    by: pa.Array | None  # breakdown value per row


def _threads(rows: int) -> int:
    """Threads for the kernels: the cores this process may use, one below 50k rows."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 8)) if rows >= 50_000 else 1


def _split(total: int, parts: int) -> tuple[list[int], list[int]]:
    """(starts, ends) of ``parts`` even ranges of range(total)."""
    bounds = [total * i // parts for i in range(parts + 1)]
    return bounds[:-1], bounds[1:]


def fast_engine(events: ir.Table) -> bool:
    """True when ``events`` lives on an embedded DuckDB (the fast path applies)."""
    if dialect_of(events) != "duckdb":
        return False
    try:
        backend = events._find_backend()
    except Exception:  # noqa: BLE001 - an unbound table: no connection to run on
        return False
    return hasattr(backend, "con") and hasattr(backend.con, "execute")


_unordered_lock = threading.Lock()
_unordered_users: dict[int, tuple[int, str]] = {}  # connection -> (funnels, setting before)


@contextmanager
def _unordered(con: Any) -> Iterator[None]:
    """``preserve_insertion_order`` off while funnels run on ``con`` (DuckDB then gathers
    results on every thread), restored when the last of them ends. The setting is global
    to the database, so funnels on several threads share one switch instead of each
    restoring what another had set."""
    key = id(con)
    with _unordered_lock:
        count, before = _unordered_users.get(key, (0, ""))
        if not count:
            value = con.execute("SELECT current_setting('preserve_insertion_order')").fetchone()
            before = "false" if value is not None and value[0] in (False, "false") else "true"
            con.execute("SET preserve_insertion_order = false")
        _unordered_users[key] = (count + 1, before)
    try:
        yield
    finally:
        with _unordered_lock:
            count, before = _unordered_users.pop(key)
            if count > 1:
                _unordered_users[key] = (count - 1, before)
            else:
                con.execute(f"SET preserve_insertion_order = {before}")


def fetch_table(events: ir.Table, spec: FunnelSpec, layer: Any = None) -> pa.Table:
    """The funnel's rows from DuckDB, unsorted (see ``_unordered``)."""
    rows = funnel_rows(events, spec, layer)
    # a narrower step bitmask: less for DuckDB to hand over
    rows = rows.mutate(rmask=rows.rmask.cast("int32"))
    with _unordered(events._find_backend().con):
        table: pa.Table = rows.to_pyarrow()
    return table


def _codes(column: pa.ChunkedArray) -> tuple[I64, int]:
    """Integer codes in the values' text order (nulls last), and their count."""
    encoded = column.combine_chunks().dictionary_encode()
    dictionary = encoded.dictionary
    rank = np.empty(len(dictionary) + 1, dtype=np.int64)
    order = pc.sort_indices(dictionary).to_numpy()
    rank[order] = np.arange(len(dictionary), dtype=np.int64)
    rank[len(dictionary)] = len(dictionary)  # null
    indices = encoded.indices.fill_null(len(dictionary)).to_numpy(zero_copy_only=False)
    return rank[indices.astype(np.int64, copy=False)], len(dictionary) + 1


def _combine(parts: list[tuple[I64, int]], length: int) -> I64:
    """One int64 key ordered as the tuple of ``parts`` (code arrays and their radix)."""
    if not parts:
        return np.zeros(length, dtype=np.int64)
    total = 1
    for _, radix in parts:
        total *= radix
    if total < 1 << 62:  # mixed radix
        key = parts[0][0].copy()
        for codes, radix in parts[1:]:
            key *= radix
            key += codes
        return key
    # too many combinations for one integer: rank the distinct tuples
    _, inverse = np.unique(np.stack([c for c, _ in parts], axis=1), axis=0,
                           return_inverse=True)
    return inverse.reshape(-1).astype(np.int64)


def _text_buffers(array: pa.Array) -> tuple[npt.NDArray[Any], npt.NDArray[np.uint8]]:
    """(offsets, bytes) of a string array, as numpy views where Arrow allows."""
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        array = array.cast(pa.large_string())
    _, offsets_buf, data_buf = array.buffers()
    width = np.int32 if pa.types.is_string(array.type) else np.int64
    offsets = np.frombuffer(offsets_buf, dtype=width)[array.offset:array.offset + len(array) + 1]
    data = (np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None
            else np.zeros(0, dtype=np.uint8))
    return offsets, data


def _plan_arrays(plan: Plan) -> tuple[I64, I64, I64]:
    """The optional-step variants as (kept steps, -1 padded; exclusion bits per
    position), and the per-step windows (-1: none)."""
    n = plan.n
    optional = [k for k in range(n) if plan.optional and plan.optional[k]]
    variants = [[k for k in range(n) if k not in skipped]
                for r in range(len(optional) + 1) for skipped in combinations(optional, r)]
    kept = np.full((len(variants), n), -1, dtype=np.int64)
    exbits = np.zeros((len(variants), n), dtype=np.int64)
    for s, steps in enumerate(variants):
        kept[s, :len(steps)] = steps
        for pos in range(1, len(steps)):
            j = steps[pos - 1]
            for e, (after, before) in enumerate(plan.exclusions):
                if after <= j < before:
                    exbits[s, pos] |= 1 << e
    within = np.array([-1 if not plan.within or plan.within[k] is None else plan.within[k]
                       for k in range(n)], dtype=np.int64)
    return kept, exbits, within


def _compressed(values: npt.NDArray[Any], size: int) -> tuple[I64, I64]:
    """Small non-negative ints (< ``size``) as dense ranks: (rank per value, the values
    present in rank order). Arrow's hash-based unique: a pass over the rows without
    the conversion to 64 bits of ``np.bincount``."""
    present = np.sort(pc.unique(pa.array(values)).to_numpy().astype(np.int64))
    rank = np.zeros(size, dtype=np.int64)
    rank[present] = np.arange(len(present), dtype=np.int64)
    return rank, present


def _pack(parts: list[tuple[I64, int]], length: int) -> tuple[I64, int]:
    """Code arrays (and their counts) packed in bit fields, first part highest: one
    int64 ordered as the tuple, and its width in bits."""
    key = np.zeros(length if parts else 0, dtype=np.int64)
    width = 0
    for codes, count in parts:
        bits = max(1, (count - 1).bit_length())
        key <<= bits
        key |= codes
        width += bits
    return key, width


def _positions(kept: I64, mask_of_rank: I64) -> tuple[I64, I64]:
    """Per variant and step-bitmask rank: the positions (in the variant's kept steps)
    of the steps the mask matches, highest first, and their count; so the matcher only
    visits a row's own steps."""
    variants, n = kept.shape
    plist = np.zeros((variants, len(mask_of_rank), n), dtype=np.int64)
    pcount = np.zeros((variants, len(mask_of_rank)), dtype=np.int64)
    for s in range(variants):
        for r, mask in enumerate(mask_of_rank.tolist()):
            found = [pos for pos in range(n - 1, -1, -1)
                     if kept[s, pos] >= 0 and (mask >> int(kept[s, pos])) & 1]
            plist[s, r, :len(found)] = found
            pcount[s, r] = len(found)
    return plist, pcount


@dataclass(frozen=True, slots=True)
class _Extras:
    """Per row of the fetched table, what a funnel's options add (empty arrays: none)."""

    rest: I64  # the tie rule after the step, packed (exclusions, held values, breakdown)
    rest_bits: int
    excl: I64  # exclusion bitmask
    lead: I64  # sequential and any order: held values
    hold: I64  # strict order: held values
    missing: npt.NDArray[np.bool_] | None  # strict order: a held value is missing


def _extras(table: pa.Table, spec: FunnelSpec) -> _Extras:
    """The option columns of ``table`` as the kernels read them."""
    length = table.num_rows
    strict = spec.order == "strict"
    holds = [_codes(table.column(f"h{i}")) for i in range(len(spec.hold))]
    hold_key = _combine(holds, length)
    missing = None
    if strict and holds:  # a step whose own held value is missing is no step
        missing = np.zeros(length, dtype=bool)
        for codes, radix in holds:
            missing |= codes == radix - 1
    excl = (table.column("excl").to_numpy().astype(np.int64)
            if spec.exclusions else np.zeros(0, dtype=np.int64))
    # the tie rule after the time and the step, as the SQL path's ORDER BY: exclusions,
    # held values (strict order), breakdown value
    rest_parts: list[tuple[I64, int]] = []
    if spec.exclusions:
        excl_rank, excl_present = _compressed(excl, 1 << len(spec.exclusions))
        rest_parts.append((excl_rank[excl], len(excl_present)))
    if strict:
        rest_parts += holds
    if spec.by:
        rest_parts.append(_codes(table.column("by")))
    rest, rest_bits = _pack(rest_parts, length)
    empty = np.zeros(0, dtype=np.int64)
    return _Extras(rest, rest_bits, excl, hold_key if holds and not strict else empty,
                   hold_key if holds and strict else empty, missing)


@dataclass(frozen=True, slots=True)
class _Batch:
    """One record batch of the fetched rows, as numpy views the kernels read."""

    offsets: npt.NDArray[Any]  # entity ids: Arrow offsets ...
    data: npt.NDArray[np.uint8]  # ... and bytes
    ts: I64  # microseconds
    rmask: npt.NDArray[Any]  # step k at bit n-1-k
    base: int  # the batch's first row in the table


def _batches(table: pa.Table, missing: npt.NDArray[np.bool_] | None) -> list[_Batch]:
    """The table's record batches (their columns line up) without copying them."""
    out: list[_Batch] = []
    base = 0
    for batch in table.to_batches():
        rows = batch.num_rows
        if not rows:
            continue
        offsets, data = _text_buffers(batch.column("entity"))
        ts = pc.cast(pc.cast(batch.column("ts"), pa.timestamp("us", tz="UTC")), pa.int64())
        rmask = batch.column("rmask").to_numpy()
        if missing is not None:
            rmask = np.where(missing[base:base + rows], 0, rmask)
        out.append(_Batch(offsets, data, np.ascontiguousarray(ts.to_numpy(), dtype=np.int64),
                          np.ascontiguousarray(rmask), base))
        base += rows
    return out


@dataclass(frozen=True, slots=True)
class _Partitioned:
    """The rows after the counting sort's first pass (see ``_partition``)."""

    starts: I64  # partition starts
    keys: I64
    vals: I64
    half: int  # bits of the first pass
    bits: int  # bits in all
    mask_of_rank: I64  # rank of a row's step bitmask -> the bitmask (step k at bit k)
    tie_bits: int
    t0: int  # the earliest time: packed times are relative to it
    time_bits: int  # the width of the packed times and ties


def _partition(run: Callable[..., Any], batches: list[_Batch], length: int, n: int,
               extras: _Extras, threads: int, hash_mask: int | None,
               mem: Scratch) -> _Partitioned | None:
    """The first pass of the counting sort. Rows land in 2**half partitions by the top
    bits of their entity's hash, packed as ``_kernels.scatter_rows`` says. None when the
    times and the tie rule do not fit one int64."""
    from nerve.analytics import _kernels  # noqa: PLC0415 - numba loads on first use

    # buckets of ~2 rows in all, in two passes: cache-sized partitions of ~8k rows here,
    # then buckets in ``match_partitions``
    half = max(1, (length // 8).bit_length() // 2)
    bits = max(half + 1, (length // 2).bit_length())
    h1 = mem.take("h1", length, np.uint64)
    h2 = mem.take("h2", length, np.uint64)
    cursor = np.zeros((threads, 1 << half), dtype=np.int64)
    seen = np.zeros((threads, 1 << n), dtype=np.bool_)  # step bitmasks present
    bounds = np.empty((threads, 2), dtype=np.int64)  # earliest and latest time
    bounds[:, 0], bounds[:, 1] = _LATEST, -_LATEST
    narrow = np.uint64((1 << 64) - 1 if hash_mask is None else hash_mask)

    def first(i: int, b0: int, b1: int) -> None:  # each thread takes whole batches
        for b in batches[b0:b1]:
            _kernels.hash_strings(b.offsets, b.data, _kernels.words_of(b.data), len(b.ts),
                                  h1[b.base:], h2[b.base:], narrow, half, cursor[i])
            _kernels.batch_stats(b.ts, b.rmask, seen[i], bounds[i])

    run(first, len(batches))
    # the tie rule after the time: lowest step first (the highest rmask), then the rest
    present = np.flatnonzero(seen.any(axis=0))[::-1].astype(np.int64)
    rank = np.zeros(1 << n, dtype=np.int64)
    rank[present] = np.arange(len(present), dtype=np.int64)
    tie_bits = max(1, (len(present) - 1).bit_length()) + extras.rest_bits
    t0 = int(bounds[:, 0].min()) if length else 0
    span = int(bounds[:, 1].max()) - t0 if length else 0
    if span.bit_length() + tie_bits > 62:
        return None
    starts = _kernels.bucket_offsets(cursor)
    keys = mem.take("keys", (length, 2 + (len(extras.lead) > 0)), np.int64)
    vals = mem.take("vals", (length, 1 + (len(extras.excl) > 0) + (len(extras.hold) > 0)),
                    np.int64)

    def scatter(i: int, b0: int, b1: int) -> None:
        for b in batches[b0:b1]:
            _kernels.scatter_rows(h1, h2, extras.lead, b.ts, t0, b.rmask, rank, extras.rest,
                                  extras.rest_bits, tie_bits, extras.excl, extras.hold,
                                  half, b.base, b.base + len(b.ts), cursor[i], keys, vals)

    run(scatter, len(batches))
    return _Partitioned(starts, keys, vals, half, bits, step_lut(n)[present], tie_bits, t0,
                        span.bit_length() + tie_bits)


def match_table(table: pa.Table, spec: FunnelSpec, plan: Plan, *, mem: Scratch | None = None,
                hash_mask: int | None = None) -> Matched | None:
    """Group and match the fetched rows (in any order) with the compiled kernels.

    None when the kernels cannot take these rows exactly: two ids share a 64-bit hash
    (never seen in practice), the times and the tie rule do not fit one int64 (a span
    of centuries) or there are 2**31 rows or more. Then match ``sort_table(table)``
    with the SQL path's matcher. ``hash_mask`` narrows the first hash, to test the
    collision check.

    ``mem``: work memory (``_scratch.scratch()``) to use, fresh memory if None. The
    result's ``delta`` and ``chain`` live in it: read them before it is given back.
    """
    from nerve.analytics import _kmatch  # noqa: PLC0415 - numba loads on first use

    length, n = table.num_rows, plan.n
    if length >= 1 << 31:  # rows are packed in 32 bits
        return None
    extras = _extras(table, spec)
    batches = _batches(table, extras.missing)
    kept, exbits, within = _plan_arrays(plan)
    threads = _threads(length)
    mem = Scratch(keep=False) if mem is None else mem
    with ThreadPoolExecutor(threads) as pool:
        def run(fn: Callable[[int, int, int], Any], total: int) -> list[Any]:
            """fn(part, lo, hi) over ``threads`` even parts of range(total)."""
            return list(pool.map(fn, range(threads), *_split(total, threads)))

        rows = _partition(run, batches, length, n, extras, threads, hash_mask, mem)
        if rows is None:
            return None
        plist, pcount = _positions(kept, rows.mask_of_rank)
        start_before = (_LATEST if plan.start_before is None
                        else min(max(plan.start_before - rows.t0, -1), _LATEST))
        parts = run(lambda i, p0, p1: _kmatch.match_partitions(
            rows.starts, p0, p1, rows.keys, rows.vals, rows.half, rows.bits - rows.half,
            len(extras.lead) > 0, len(extras.excl) > 0, len(extras.hold) > 0,
            rows.tie_bits, extras.rest_bits, rows.mask_of_rank, _MODES[plan.order], kept,
            plist, pcount, exbits, within, plan.window, start_before, len(plan.exclusions),
            rows.time_bits, *_outputs(mem, i, rows.starts[p1] - rows.starts[p0], n, bool(spec.by))),
            1 << rows.half)
        if not all(part[4] for part in parts):
            return None
        first, reached, chain, delta = _gather(run, [part[:4] for part in parts], mem)
    by = table.column("by").combine_chunks() if spec.by else None
    return Matched(first, reached, chain, delta, table.column("entity"), by)


def _gather(run: Callable[..., Any], parts: list[tuple[I64, ...]],
            mem: Scratch) -> list[I64]:
    """The threads' per-entity results, one after the other, copied out of their work
    memory by the threads that made them: the first row and steps reached to new
    arrays (a result keeps them), the chains and times to ``mem`` (only the report
    reads them)."""
    ends = np.cumsum([len(part[0]) for part in parts]).tolist()
    out = [np.empty((ends[-1], *column.shape[1:]), dtype=column.dtype) if i < 2
           else mem.take(f"all{i}", (ends[-1], *column.shape[1:]), column.dtype)
           for i, column in enumerate(parts[0])]

    def copy(i: int, _lo: int, _hi: int) -> None:
        for whole, column in zip(out, parts[i], strict=True):
            whole[ends[i] - len(column):ends[i]] = column

    run(copy, len(parts))
    return out


def _outputs(mem: Scratch, part: int, rows: int, n: int,
             with_chain: bool) -> tuple[I64, I64, I64, I64]:
    """Room for the per-entity results of ``rows`` rows (``match_partitions`` grows it
    if an entity has fewer than four rows on average)."""
    cap = max(16, rows // 4)
    return (mem.take(f"first{part}", cap, np.int64),
            mem.take(f"reached{part}", cap, np.int64),
            mem.take(f"chain{part}", (cap, n if with_chain else 0), np.int64),
            mem.take(f"delta{part}", (cap, n), np.int64))


def sort_table(table: pa.Table, spec: FunnelSpec) -> pa.Table:
    """The fetched rows in the SQL path's order (when ``match_table`` declines)."""
    keys = sort_keys(spec)
    if tuple(int(x) for x in pa.__version__.split(".")[:1]) >= (25,):
        # (pyarrow 25 takes the null placement per key, and warns on the global one)
        return table.sort_by([(k, how, "at_end") for k, how in keys])
    return table.sort_by(keys, null_placement="at_end")
