"""Funnels: ``funnel(events, spec)`` -> per step and breakdown value, who got how far.

Two ways to the same per-entity result, then one ``report`` (per entity, then per group):

- the SQL path, on every engine: ``_rows`` (one Ibis query, filtered and sorted by the
  engine), then ``_match`` (numpy over the sorted rows);
- the compiled path, on an embedded DuckDB: ``_fast`` (the same query unsorted, then
  grouping and matching in numba, ``_kernels``), about 4x less work on large tables.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from typing import Any, Literal

import ibis.expr.types as ir
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from nerve.analytics._fast import (
    Matched,
    fast_engine,
    fetch_table,
    match_table,
    sort_table,
)
from nerve.analytics._match import MAX_OPTIONAL, Chains, Plan, match
from nerve.analytics._rows import FetchedRows, fetch_rows, shape_rows, to_micros
from nerve.analytics._scratch import scratch
from nerve.analytics._spec import MAX_STEPS, FunnelSpec
from nerve.errors import QueryError
from nerve.warehouse import stitch_identities

__all__ = ["COMPILED_MIN_ROWS", "METHODS", "FunnelResult", "funnel", "plan_of", "report",
           "sql_matched"]

I64 = npt.NDArray[np.int64]
_MICRO = 1_000_000
_US = timedelta(microseconds=1)
STATUSES = ("reached", "converted", "dropped")
Method = Literal["auto", "compiled", "sql"]
#: auto: compiled on an embedded DuckDB from COMPILED_MIN_ROWS step events, SQL elsewhere
METHODS: tuple[str, ...] = ("auto", "compiled", "sql")
#: below this many rows the SQL path's matcher (over rows sorted by Arrow) wins on a
#: first call: loading the kernels from numba's disk cache costs ~0.5 s per process, and
#: compiling them on a fresh install 14-37 s. Measured: the demo's funnel (170k rows)
#: took 0.31 s on the SQL path against 0.80 s (cached) and 14 s (fresh) compiled; from
#: ~2M rows a fresh process gains (3.9M rows: 1.35 s against 2.16 s)
COMPILED_MIN_ROWS = 1_000_000
#: from this many entities the report's per-step statistics run on two threads
PARALLEL_MIN_ENTITIES = 100_000


def plan_of(spec: FunnelSpec) -> Plan:
    """The matcher's view of a spec (durations in microseconds)."""
    optional = tuple(s.optional for s in spec.steps)
    if sum(optional) > MAX_OPTIONAL:
        raise QueryError(f"steps: at most {MAX_OPTIONAL} optional steps")
    n = len(spec.steps)
    return Plan(
        n=n,
        window=spec.window // _US,
        order=spec.order,
        within=tuple(None if s.within is None else s.within // _US for s in spec.steps),
        optional=optional,
        exclusions=tuple((x.after, n - 1 if x.before is None else x.before)
                         for x in spec.exclusions),
        start_before=None if spec.until is None else to_micros(spec.until),
    )


@dataclass(frozen=True)
class FunnelResult:
    """A computed funnel: ``rows`` for people and programs, ``users()`` for lists."""

    spec: FunnelSpec
    rows: list[dict[str, Any]]
    entity_rows: I64  # per entity that did the first step: one of its rows ...
    entity_column: pa.Array | pa.ChunkedArray  # ... in this column of ids (one per row)
    reached: I64  # bit k: the entity reached step k
    group: list[Any]  # the entity's breakdown value (None without a breakdown)
    extra: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def entities(self) -> pa.Array | pa.ChunkedArray:
        """The id of each entity that did the first step (taken when first asked for:
        most callers only want ``rows``)."""
        if not len(self.entity_rows):
            return pa.array([], type=pa.string())
        return self.entity_column.take(pa.array(self.entity_rows))

    def users(self, step: int, status: str = "reached", *, by: Any = None,
              limit: int | None = None) -> list[str]:
        """Entity ids at ``step`` (1-based) that ``reached`` it, ``converted`` (also
        reached the next step) or ``dropped`` (reached it, not the next one).

        ``by`` keeps one breakdown value. Sorted by id.
        """
        n = len(self.spec.steps)
        if not 1 <= step <= n:
            raise QueryError(f"step: 1..{n}, got {step}")
        if status not in STATUSES:
            raise QueryError(f"status: one of {', '.join(STATUSES)}, got {status!r}")
        k = step - 1
        here = (self.reached >> k) & 1 == 1
        if status != "reached" and k + 1 < n:
            nxt = (self.reached >> (k + 1)) & 1 == 1
            here &= nxt if status == "converted" else ~nxt
        elif status == "dropped":
            here &= False
        if by is not None and self.spec.by:
            here &= np.array([g == by for g in self.group], dtype=bool)
        ids = sorted(str(x) for x in self.entities.filter(pa.array(here)).to_pylist())
        return ids[:limit] if limit is not None else ids


def funnel(events: ir.Table, spec: FunnelSpec, *, layer: Any = None,
           method: Method = "auto", stitch: bool = True) -> FunnelResult:
    """Compute a funnel over an Ibis ``events`` table (any engine).

    ``stitch``: identities stitched first (``nerve.warehouse.stitch_identities``), as the
    CLI and the HTTP API count them: a device's anonymous rows count as the user who
    signed in on it. ``False`` counts each row's ``user_id``, else its ``anonymous_id``.

    ``layer``: a ``nerve.semantic.SemanticLayer``; the breakdown ``by`` is then one of
    its dimensions (``user.age_group`` as of each event), as in metrics.
    ``method``: ``compiled`` (embedded DuckDB only) or ``sql``; ``auto`` picks compiled
    on DuckDB from ``COMPILED_MIN_ROWS`` step events. All give the same result.

    >>> from nerve.analytics import FunnelSpec, Step
    >>> spec = FunnelSpec((Step("add_to_cart"), Step("purchase_complete")))
    >>> funnel(warehouse.table("events"), spec).rows  # doctest: +SKIP
    """
    spec = spec.validate()
    plan = plan_of(spec)
    if stitch:
        events = stitch_identities(events)
    if method not in METHODS:
        raise QueryError(f"method: {method!r} is not one of {', '.join(METHODS)}")
    fast = fast_engine(events)
    if method == "compiled" and not fast:
        raise QueryError("method 'compiled' needs a table on an embedded DuckDB; "
                         "use 'sql' (or 'auto') on other engines")
    if method == "sql" or not fast:
        return report(spec, sql_matched(fetch_rows(events, spec, layer), plan), "sql")
    table = fetch_table(events, spec, layer)
    if method == "compiled" or table.num_rows >= COMPILED_MIN_ROWS:
        with scratch() as mem:  # kept work memory, until the report has read it
            matched = match_table(table, spec, plan, mem=mem)
            if matched is not None:
                return report(spec, matched, "compiled")
    # few rows, or rows the kernels cannot take (see match_table)
    return report(spec, sql_matched(shape_rows(sort_table(table, spec), spec), plan), "sql")


def sql_matched(fetched: FetchedRows, plan: Plan) -> Matched:
    """The SQL path's per-entity result from its sorted rows."""
    ent_first, reached, chain = _entity_chains(fetched, match(fetched.rows, plan))
    delta = (np.full(chain.shape, -1, dtype=np.int64) if plan.order == "any"
             else _chain_delta(chain, fetched.rows.ts))
    return Matched(ent_first, reached, chain, delta, fetched.entities, fetched.by)


def _chain_delta(chain: I64, ts: I64) -> I64:
    """Microseconds from the previous step done to each step of the chains (-1: none)."""
    delta = np.full(chain.shape, -1, dtype=np.int64)
    prev = np.full(len(chain), -1, dtype=np.int64)
    for k in range(chain.shape[1]):
        here = chain[:, k]
        ok = (here >= 0) & (prev >= 0)
        delta[ok, k] = ts[here[ok]] - ts[prev[ok]]
        prev = np.where(here >= 0, here, prev)
    return delta


def _entity_chains(fetched: FetchedRows, chains: Chains) -> tuple[I64, I64, I64]:
    """Per entity (that reached step 0): (first row of the entity, reached, chain)."""
    rows = fetched.rows
    seg_first = chains.seg_first
    ent_first = np.flatnonzero(fetched.entity_start).astype(np.int64)
    n_ent = len(ent_first)
    if len(seg_first) == n_ent:  # one segment per entity: nothing to choose
        reached, chain = chains.reached, chains.chain
    else:
        ent_of_row = np.cumsum(fetched.entity_start, dtype=np.int32).astype(np.int64) - 1
        seg_ent = ent_of_row[seg_first]
        reached = np.zeros(n_ent, dtype=np.int64)
        np.bitwise_or.at(reached, seg_ent, chains.reached)
        # several held values per entity: keep the chain that goes deepest, then the
        # one that completes first
        depth = np.full(len(seg_first), -1, dtype=np.int64)
        for k in range(chains.chain.shape[1]):
            depth = np.where(chains.chain[:, k] >= 0, k, depth)
        last_row = chains.chain[np.arange(len(depth)), np.maximum(depth, 0)]
        done = np.where(last_row >= 0, rows.ts[np.maximum(last_row, 0)], np.iinfo(np.int64).max)
        order = np.lexsort((done, -depth, seg_ent))
        firsts = np.ones(len(order), dtype=bool)
        firsts[1:] = seg_ent[order][1:] != seg_ent[order][:-1]
        chosen = order[firsts]
        chain = np.full((n_ent, chains.chain.shape[1]), -1, dtype=np.int64)
        chain[seg_ent[chosen]] = chains.chain[chosen]
    keep = (reached & 1) == 1
    return ent_first[keep], reached[keep], chain[keep]


def _group_values(spec: FunnelSpec, matched: Matched) -> list[Any]:
    reached, chain = matched.reached, matched.chain
    if not spec.by or matched.by is None:
        return [None] * len(reached)
    n = len(spec.steps)
    if spec.attribution == "first_touch":
        at = chain[:, 0]
    elif spec.attribution == "last_touch":
        at = np.full(len(reached), -1, dtype=np.int64)
        for k in range(n):
            at = np.where(chain[:, k] >= 0, chain[:, k], at)
    else:
        at = chain[:, spec.attribution_step or 0]
    values = matched.by.take(pa.array(np.maximum(at, 0))).to_pylist() if len(at) else []
    return [v if a >= 0 else None for v, a in zip(values, at, strict=True)]


def _time_stats(seconds: npt.NDArray[np.float64], spec: FunnelSpec) -> dict[str, Any]:
    if len(seconds) == 0:
        return {"median_seconds": None,
                **{f"p{round(p * 100)}_seconds": None for p in spec.percentiles},
                "histogram": []}
    hi = float(seconds.max())
    # equal-width bins given as a count and a range: numpy's linear-time path (with the
    # edges as an array it binary-searches every value); the edges are the same
    counts, edges = np.histogram(seconds, bins=spec.bins, range=(0.0, hi if hi > 0 else 1.0))
    # the median and the percentiles in one selection pass
    median, *quantiles = np.quantile(seconds, [0.5, *spec.percentiles]).tolist()
    return {
        "median_seconds": median,
        **{f"p{round(p * 100)}_seconds": q
           for p, q in zip(spec.percentiles, quantiles, strict=True)},
        "histogram": [{"from_seconds": float(a), "to_seconds": float(b), "users": int(c)}
                      for a, b, c in zip(edges[:-1], edges[1:], counts, strict=True)],
    }


def _times_to_convert(spec: FunnelSpec, delta: I64) -> list[dict[str, Any]]:
    """Per step, the time-to-convert statistics of ``delta``'s column. Over many entities
    the steps share the cores (numpy's selection and filtering release the GIL)."""

    def stats(k: int) -> dict[str, Any]:
        column = delta[:, k] if k else delta[:0, 0]  # the first step: no time from before
        return _time_stats(column[column >= 0].astype(np.float64) / _MICRO, spec)

    steps = range(len(spec.steps))
    if len(delta) < PARALLEL_MIN_ENTITIES:
        return [stats(k) for k in steps]
    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(stats, steps))


def report(spec: FunnelSpec, matched: Matched, method: str = "sql") -> FunnelResult:
    """Per step and breakdown value: users, conversion, drop-off, time to convert."""
    n = len(spec.steps)
    assert n <= MAX_STEPS
    reached, delta = matched.reached, matched.delta
    groups = _group_values(spec, matched)
    ordered: list[tuple[Any, I64 | None]]
    if not spec.by:
        ordered = [(None, None)]  # every entity (no copy of its columns)
    else:
        encoded = pa.array(groups, type=pa.string()).dictionary_encode()
        codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)
        values = [*encoded.dictionary.to_pylist(), None]
        members = [np.flatnonzero(codes == (i if v is not None else -1)).astype(np.int64)
                   for i, v in enumerate(values)]
        groups_of = sorted(((v, m) for v, m in zip(values, members, strict=True) if len(m)),
                           key=lambda vm: (-len(vm[1]), str(vm[0])))
        ordered = list(groups_of)
    out: list[dict[str, Any]] = []
    for value, idx in ordered:
        r = reached if idx is None else reached[idx]
        dt = delta if idx is None else delta[idx]
        # entities per distinct set of steps reached (a few dozen): one pass over them
        sets = pc.value_counts(pa.array(r, type=pa.int64()))
        masks = sets.field("values").to_numpy()
        tally = sets.field("counts").to_numpy()
        first = int(tally[masks & 1 == 1].sum())
        prev_users = first
        times = _times_to_convert(spec, dt)
        for k, step in enumerate(spec.steps):
            users = int(tally[(masks >> k) & 1 == 1].sum())
            converted = int(tally[(masks >> k) & 3 == 3].sum()) if k + 1 < n else users
            row: dict[str, Any] = {"step": k + 1, "event": step.event, "label": step.name}
            if spec.by:
                row[spec.by] = value
            row |= {
                "users": users,
                "converted": converted if k + 1 < n else None,
                "dropped": users - converted if k + 1 < n else None,
                "conversion": users / first if first else None,
                "step_conversion": users / prev_users if prev_users else None,
                "drop_off": (users - converted) / users if users and k + 1 < n else None,
            }
            prev_users = users if not step.optional else prev_users
            row |= times[k]
            out.append(row)
    return FunnelResult(spec, out, matched.first_row, matched.entities, reached, groups,
                        {"method": method})
