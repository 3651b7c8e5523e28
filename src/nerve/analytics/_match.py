"""The funnel matcher: one vectorized pass per step over rows sorted per entity.

Input rows are sorted by (segment, timestamp, tie rank, message id), where a segment is
an entity (or an entity and a held property value), and each row carries a bitmask of
the steps it matches. Nothing here does I/O; everything is numpy over whole columns, so
the cost is O(rows x steps), with no join between pairs of steps.

Sequential and strict order keep, for each step k and each row r matching it, ``S[k][r]``:
the latest start time of a chain of distinct rows that does steps 0..k in order and ends
at r (or ``NONE``). The latest chain dominates every other one: it leaves the most of the
window, and the latest row before r also best satisfies a per-step window and an
exclusion (a chain must not straddle an excluded event). Because ``S[k]`` only grows
along the rows of a segment, the best predecessor of r is simply the latest valid row of
step k-1 before r, found with one running maximum (strict order: the row just before r).
That is also ClickHouse's ``windowFunnel`` greedy, so the two agree.

Optional steps break that monotonicity (a chain may come from two different previous
steps), so a funnel with m optional steps runs as the 2**m plain funnels it stands for
(m <= 4), and an entity reaches a step if any of them does.

Any order: a window opened by a step row s holds every step whose first row at or after s
falls within the window (steps are different events, so one row counts once); an entity
reaches "k steps" when its best window holds k.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np
import numpy.typing as npt

__all__ = ["MAX_OPTIONAL", "Chains", "Plan", "Rows", "match"]

I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]
NONE = np.iinfo(np.int64).min
MAX_OPTIONAL = 4


@dataclass(frozen=True, slots=True)
class Rows:
    """Rows sorted by (segment, ts, tie rank, message id)."""

    seg_start: Bools  # true on the first row of each segment
    ts: I64  # microseconds since the epoch
    mask: I64  # bit k: the row matches step k
    excl: I64  # bit e: the row matches exclusion e
    #: strict order with held properties: the previous row has the same held values
    same_hold_prev: Bools | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    """The funnel's shape, in microseconds."""

    n: int
    window: int
    order: str = "sequential"
    within: tuple[int | None, ...] = ()
    optional: tuple[bool, ...] = ()
    #: exclusion e forbids its event between the events of steps after[e] and before[e]
    exclusions: tuple[tuple[int, int], ...] = ()
    #: a chain must start before this time (the end of the queried period)
    start_before: int | None = None


@dataclass(frozen=True, slots=True)
class Chains:
    """Per segment: the steps reached, and one representative chain of rows.

    The representative chain is the one that first reaches the segment's deepest step,
    taken back through the latest predecessors (-1 where a step was not done or skipped).
    Any order: bit k of ``reached`` means "did at least k+1 of the steps", and ``chain``
    holds, for the first window that did, its first event (k = 0) or its last one.
    """

    seg_first: I64  # first row of each segment
    reached: I64  # bit k: some chain reaches step k
    chain: I64  # (segments, n) row indices


def _latest_before(sorted_rows: I64, targets: I64) -> I64:
    """For each target row, the latest of ``sorted_rows`` strictly before it (-1: none)."""
    pos = np.searchsorted(sorted_rows, targets, side="left") - 1
    out = np.full(len(targets), -1, dtype=np.int64)
    has = pos >= 0
    out[has] = sorted_rows[pos[has]]
    return out


def _segments(rows: Rows) -> tuple[I64, I64]:
    """(segment id of each row, first row of each segment)."""
    # int32 first: numpy's cumsum of booleans into int64 is ~8x slower
    seg_id = np.cumsum(rows.seg_start, dtype=np.int32).astype(np.int64) - 1
    return seg_id, np.flatnonzero(rows.seg_start).astype(np.int64)


def _step_rows(mask: I64, n: int) -> list[I64]:
    """For each step, the rows that match it (sorted): one bit test per row and step,
    on a narrow copy of the mask (cheaper to scan than int64)."""
    small = mask.astype(np.uint8 if n <= 8 else np.uint16 if n <= 16 else np.uint32)
    return [np.flatnonzero(np.bitwise_and(small, 1 << k)).astype(np.int64, copy=False)
            for k in range(n)]


def match(rows: Rows, plan: Plan) -> Chains:
    """Every segment's reached steps and representative chain (see module docstring)."""
    seg_id, seg_first = _segments(rows)
    if plan.order == "any":
        return _match_any(rows, plan, seg_id, seg_first)
    hits = _step_rows(rows.mask, plan.n)
    optional = [k for k in range(plan.n) if plan.optional and plan.optional[k]]
    best: Chains | None = None
    for r in range(len(optional) + 1):
        for skipped in combinations(optional, r):
            kept = [k for k in range(plan.n) if k not in skipped]
            found = _match_plain(rows, plan, kept, hits, seg_id, seg_first)
            best = found if best is None else _better(best, found, rows.ts)
    assert best is not None
    return best


def _match_plain(rows: Rows, plan: Plan, kept: list[int], hits: list[I64], seg_id: I64,
                 seg_first: I64) -> Chains:
    """A funnel without optional steps over the original steps ``kept``.

    Works on the rows of each step only (index arrays), so a rare step costs little.
    """
    n_seg, n = len(seg_first), plan.n
    ts = rows.ts
    #: per position: the rows that validly end a chain there, their starts, predecessors
    done: list[I64] = []
    starts: list[I64] = []
    preds: list[I64] = []
    excl_rows: dict[int, I64] = {}
    for pos, k in enumerate(kept):
        here = hits[k]
        if pos == 0:
            if plan.start_before is not None:
                here = here[ts[here] < plan.start_before]
            done.append(here)
            starts.append(ts[here])
            preds.append(np.full(len(here), -1, dtype=np.int64))
            continue
        prev_rows, prev_starts = done[pos - 1], starts[pos - 1]
        t_here = ts[here]
        if plan.order == "strict":
            cand = here - 1
            at = np.searchsorted(prev_rows, cand)
            at_c = np.minimum(at, max(len(prev_rows) - 1, 0))
            ok = (at < len(prev_rows))
            if len(prev_rows):
                ok &= prev_rows[at_c] == cand
            if rows.same_hold_prev is not None:
                ok &= rows.same_hold_prev[here]
        else:
            at = np.searchsorted(prev_rows, here, side="left") - 1
            ok = at >= 0
            at_c = np.maximum(at, 0)
            cand = np.where(ok, prev_rows[at_c] if len(prev_rows) else -1, -1)
        ok &= cand >= seg_first[seg_id[here]]
        # an exclusion between steps a and b kills chains that did step a (a <= j < b)
        j = kept[pos - 1]
        bits = 0
        for e, (after, before) in enumerate(plan.exclusions):
            if after <= j < before:
                bits |= 1 << e
        if bits:
            if bits not in excl_rows:
                excl_rows[bits] = np.flatnonzero((rows.excl & bits) != 0).astype(np.int64)
            # strictly between: the predecessor may itself be an excluded event
            ok &= cand >= _latest_before(excl_rows[bits], here)
        cand_c = np.maximum(cand, 0)
        within = plan.within[k] if plan.within else None
        if within is not None:
            ok &= t_here - ts[cand_c] <= within
        start = prev_starts[at_c] if len(prev_starts) else np.zeros(len(here), np.int64)
        ok &= t_here - start <= plan.window
        done.append(here[ok])
        starts.append(start[ok])
        preds.append(cand[ok])

    reached = np.zeros(n_seg, dtype=np.int64)
    deepest = np.full(n_seg, -1, dtype=np.int64)
    done_row = np.full(n_seg, -1, dtype=np.int64)
    for pos, k in enumerate(kept):
        segs, first_hit = _first_per_segment(done[pos], seg_id)
        reached[segs] |= np.int64(1 << k)
        deepest[segs] = pos
        done_row[segs] = first_hit
    # walk each segment's chain back from the first row that reached its deepest step
    chain = np.full((n_seg, n), -1, dtype=np.int64)
    cur = np.full(n_seg, -1, dtype=np.int64)
    for pos in range(len(kept) - 1, -1, -1):
        cur = np.where(deepest == pos, done_row, cur)
        active = np.flatnonzero((deepest >= pos) & (cur >= 0))
        chain[active, kept[pos]] = cur[active]
        where = np.searchsorted(done[pos], cur[active])
        nxt = np.full(n_seg, -1, dtype=np.int64)
        nxt[active] = preds[pos][where]
        cur = nxt
    return Chains(seg_first, reached, chain)


def _first_per_segment(rows_: I64, seg_id: I64) -> tuple[I64, I64]:
    """(segments with one of ``rows_`` (sorted), the first of them in each)."""
    segs = seg_id[rows_]
    if len(segs) == 0:
        return segs, rows_
    change = np.empty(len(segs), dtype=bool)
    change[0] = True
    np.not_equal(segs[1:], segs[:-1], out=change[1:])
    return segs[change], rows_[change]


def _depth(chains: Chains) -> I64:
    """Index of the deepest step reached (-1: none)."""
    out = np.full(len(chains.reached), -1, dtype=np.int64)
    for k in range(chains.chain.shape[1]):
        out = np.where((chains.reached >> k) & 1 == 1, k, out)
    return out


def _better(a: Chains, b: Chains, ts: I64) -> Chains:
    """Merge two runs: reached steps are united; the chain that goes deeper (then
    completes first) is kept."""
    da, db = _depth(a), _depth(b)
    n_rows = len(ts)

    def done_ts(c: Chains, d: I64) -> I64:
        row = c.chain[np.arange(len(d)), np.maximum(d, 0)]
        return np.where((d >= 0) & (row >= 0), ts[np.clip(row, 0, max(n_rows - 1, 0))],
                        np.iinfo(np.int64).max)

    use_b = (db > da) | ((db == da) & (done_ts(b, db) < done_ts(a, da)))
    chain = np.where(use_b[:, None], b.chain, a.chain)
    return Chains(a.seg_first, a.reached | b.reached, chain)


def _match_any(rows: Rows, plan: Plan, seg_id: I64, seg_first: I64) -> Chains:
    """Windows anchored on their first event: for each step row s, the steps done at or
    after s (in row order) within the window; the best window per segment counts."""
    n_seg, n = len(seg_first), plan.n
    ts = rows.ts
    starts = np.flatnonzero(rows.mask != 0).astype(np.int64)
    if plan.start_before is not None:
        starts = starts[ts[starts] < plan.start_before]
    seg_end = np.append(seg_first[1:], len(ts))[seg_id[starts]]
    count = np.zeros(len(starts), dtype=np.int64)
    end = starts.copy()
    for k in range(n):
        step_rows = np.flatnonzero((rows.mask & (1 << k)) != 0).astype(np.int64)
        pos = np.searchsorted(step_rows, starts, side="left")  # at or after the start
        has = pos < len(step_rows)
        first = np.where(has, step_rows[np.minimum(pos, max(len(step_rows) - 1, 0))]
                         if len(step_rows) else 0, -1)
        inside = has & (first < seg_end) & (ts[np.maximum(first, 0)] - ts[starts]
                                            <= plan.window)
        count += inside
        end = np.where(inside, np.maximum(end, first), end)
    reached = np.zeros(n_seg, dtype=np.int64)
    chain = np.full((n_seg, n), -1, dtype=np.int64)
    for k in range(n):
        ok = count >= k + 1
        segs, first_hit = _first_per_segment(starts[ok], seg_id)
        reached[segs] |= np.int64(1 << k)
        # the window's first event for step 0, its last event for the others
        chain[segs, k] = first_hit if k == 0 else end[ok][np.searchsorted(starts[ok],
                                                                          first_hit)]
    return Chains(seg_first, reached, chain)
