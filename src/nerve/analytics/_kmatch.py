"""Compiled kernels of the funnel fast path (numba), part 2: match every entity's rows.

``match_partitions`` takes the partitions of ``_kernels``' first pass one at a time,
while one is in the cache: a second counting sort into buckets (``sort_buckets``), then
per entity the same greedy as ``_match`` (see its docstring: the latest valid
predecessor is the best one), row by row in time order, for sequential, strict and any
order, windows, per-step windows, exclusions, optional steps (as the 2**m plain funnels
they stand for) and held properties (segments of one entity), with the same
representative chain. Helpers are inlined (``jit(inline=True)``) and index their
scratch arrays in place: a call or a view per entity costs more than its work.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nerve.analytics._kernels import LATEST, NONE, jit, sort_buckets

__all__ = ["MODE_ANY", "MODE_SEQUENTIAL", "MODE_STRICT", "match_partitions", "match_plain"]

MODE_SEQUENTIAL, MODE_STRICT, MODE_ANY = 0, 1, 2
TIME_BINS_BITS = 8  # 256 coarse time bins per partition (~30 rows each)


@jit(inline=True)
def _plain(lo: int, hi: int, ts: Any, rank: Any, excl: Any, hold: Any, strict: bool,
           kept: Any, s: int, plist: Any, pcount: Any, exbits: Any, within: Any,
           window: int, start_before: int, nexcl: int, sel: Any, o: int, work: Any,
           chains: Any) -> int:
    """One segment (local rows lo..hi), the steps ``kept[s]`` (no optional step left).
    A row's step bitmask is known by its rank: ``plist[s, rank, :pcount[s, rank]]`` are
    the positions in ``kept[s]`` of the steps it matches, highest first.

    Writes the representative chain (local rows, -1 elsewhere) to ``sel[o]`` and returns
    the bitmask of steps reached. Scratch: ``work`` rows are the latest valid row per
    position, its chain's start, the previous row's starts (strict) and the latest
    excluded row per exclusion; ``chains`` (2 x steps x steps) the chains behind them.
    Everything is indexed in place: slicing a view per entity costs more than the work.
    """
    length = 0
    n = sel.shape[1]
    for pos in range(n):
        if kept[s, pos] >= 0:
            length = pos + 1
    for pos in range(length):
        work[0, pos] = -1
        work[1, pos] = NONE
        work[2, pos] = NONE
    for e in range(nexcl):
        work[3, e] = -1
    for k in range(n):
        sel[o, k] = -1
    cur, prev = 0, 1
    reached = 0
    deepest = -1
    for i in range(lo, hi):
        r = rank[i]
        t = ts[i]
        if strict:
            cur, prev = prev, cur
            for pos in range(length):
                work[2, pos] = work[1, pos] if work[0, pos] == i - 1 else NONE
        for u in range(pcount[s, r]):
            pos = plist[s, r, u]
            k = kept[s, pos]
            if pos == 0:
                if t >= start_before:
                    continue
                start = t
                p = -1
            else:
                if strict:
                    p = i - 1
                    start = work[2, pos - 1]
                    if i == lo or start == NONE:
                        continue
                    if len(hold) and hold[p] != hold[i]:
                        continue
                else:
                    p = work[0, pos - 1]
                    if p < 0:
                        continue
                    start = work[1, pos - 1]
                if t - start > window:
                    continue
                if within[k] >= 0 and t - ts[p] > within[k]:
                    continue
                bits = exbits[s, pos]
                void = False
                for e in range(nexcl):
                    if (bits >> e) & 1 and work[3, e] > p:
                        void = True
                if void:
                    continue
            work[0, pos] = i
            work[1, pos] = start
            c_src = prev if strict else 0
            c_dst = cur if strict else 0
            for q in range(pos):
                chains[c_dst, pos, q] = chains[c_src, pos - 1, q]
            chains[c_dst, pos, pos] = i
            reached |= 1 << k
            if pos > deepest:
                deepest = pos
                for q in range(pos + 1):
                    sel[o, kept[s, q]] = chains[c_dst, pos, q]
        if nexcl:
            x = excl[i]
            for e in range(nexcl):
                if (x >> e) & 1:
                    work[3, e] = i
    return reached


@jit(inline=True)
def _any(lo: int, hi: int, ts: Any, mask: Any, window: int, start_before: int, sel: Any,
         work: Any) -> int:
    """Any order over one segment: the window opened by each step row holds every step
    whose first row at or after it is within the window (see ``_match._match_any``).
    The chain lands in ``sel[0]``."""
    n = sel.shape[1]
    for k in range(n):
        work[0, k] = -1  # the first row at or after i doing step k
        sel[0, k] = -1
    best = -1
    for i in range(hi - 1, lo - 1, -1):
        m = mask[i]
        for k in range(n):
            if (m >> k) & 1:
                work[0, k] = i
        if m == 0 or ts[i] >= start_before:
            continue
        count, end = 0, i
        for k in range(n):
            j = work[0, k]
            if j >= 0 and ts[j] - ts[i] <= window:
                count += 1
                end = max(end, j)
        # walking backwards, the last write is the earliest window
        for c in range(count):
            sel[0, c] = i if c == 0 else end
        best = max(best, count - 1)
    reached = 0
    for k in range(best + 1):
        reached |= 1 << k
    return reached


@jit(inline=True)
def _segment(lo: int, hi: int, ts: Any, mask: Any, rank: Any, excl: Any, hold: Any,
             mode: int, kept: Any, plist: Any, pcount: Any, exbits: Any, within: Any,
             window: int, start_before: int, nexcl: int, sel: Any, work: Any,
             chains: Any) -> int:
    """One segment, every optional-step variant; the best chain lands in ``sel[0]``."""
    if mode == MODE_ANY:
        return _any(lo, hi, ts, mask, window, start_before, sel, work)
    n = sel.shape[1]
    reached = 0
    for s in range(kept.shape[0]):
        o = 1 if s else 0
        got = _plain(lo, hi, ts, rank, excl, hold, mode == MODE_STRICT, kept, s, plist,
                     pcount, exbits, within, window, start_before, nexcl, sel, o, work,
                     chains)
        if s:
            # the deeper run wins, then the one that completes first (``_match._better``)
            da, db = _high_bit(reached), _high_bit(got)
            done_a = LATEST if da < 0 or sel[0, da] < 0 else ts[sel[0, da]]
            done_b = LATEST if db < 0 or sel[1, db] < 0 else ts[sel[1, db]]
            if db > da or (db == da and done_b < done_a):
                for k in range(n):
                    sel[0, k] = sel[1, k]
        reached |= got
    return reached


@jit(inline=True)
def _high_bit(x: int) -> int:
    k = -1
    while x:
        x >>= 1
        k += 1
    return k


@jit()
def match_entities(starts: Any, b0: int, b1: int, keys: Any, vals: Any, has_lead: bool,
                   has_excl: bool, has_hold: bool, tie_bits: int, rest_bits: int,
                   mask_of_rank: Any, mode: int, kept: Any, plist: Any, pcount: Any,
                   exbits: Any, within: Any, window: int, start_before: int, nexcl: int,
                   first: Any, reached: Any, chain: Any, delta: Any, w: int) -> int:
    """Entities of the sorted buckets b0..b1 that did the first step, written from
    index ``w`` on (returns the next free index): a row of each, the steps reached,
    the representative chain (rows, -1 where no step; only when ``chain`` has a column
    per step: a breakdown reads it, nothing else does) and its times from step to step
    (``delta``, -1 where none). ``start_before`` is relative to the packed times'
    origin, as they are."""
    n = delta.shape[1]
    with_chain = chain.shape[1] > 0
    t = keys.shape[1] - 1
    e_col = 1
    h_col = 2 if has_excl else 1
    size = max(n, nexcl, 1)
    work = np.empty((4, size), dtype=np.int64)
    chains = np.empty((2, n, n), dtype=np.int64)
    sel = np.empty((2, n), dtype=np.int64)  # a segment's best chain, and a trial
    best_chain = np.empty(n, dtype=np.int64)
    # local columns as long as the largest bucket (an entity's rows are in one bucket),
    # allocated once: growing them inside the loop made numba count references to
    # them on every entity (~30% of this kernel's time on the benchmark)
    cap = 1
    for b in range(b0, b1):
        cap = max(cap, starts[b + 1] - starts[b])
    ts = np.empty(cap, dtype=np.int64)
    mask = np.empty(cap, dtype=np.int64)
    rank = np.empty(cap, dtype=np.int64)
    excl = np.zeros(cap if has_excl else 0, dtype=np.int64)
    hold = np.zeros(cap if has_hold else 0, dtype=np.int64)
    tie_low = (np.int64(1) << tie_bits) - 1
    e = w
    for b in range(b0, b1):
        p, end = starts[b], starts[b + 1]
        while p < end:
            q = p + 1
            while q < end and keys[q, 0] == keys[p, 0]:
                q += 1
            m = q - p
            seen = 0
            for i in range(m):  # unpack the entity's rows, in time order
                packed = keys[p + i, t]
                ts[i] = packed >> tie_bits
                rank[i] = (packed & tie_low) >> rest_bits
                mask[i] = mask_of_rank[rank[i]]
                seen |= mask[i]
                if has_excl:
                    excl[i] = vals[p + i, e_col]
                if has_hold:
                    hold[i] = vals[p + i, h_col]
            first[e] = vals[p, 0] >> 32
            reached[e] = 0
            for k in range(n):
                delta[e, k] = -1
                if with_chain:
                    chain[e, k] = -1
            best_depth, best_done = -1, LATEST
            # no row of the first step (or of any step, in any order): nothing to match
            lo = m if (seen & 1 == 0 if mode != MODE_ANY else seen == 0) else 0
            while lo < m:  # segments: runs of one held value (sequential, any)
                hi = lo + 1
                if has_lead:
                    while hi < m and keys[p + hi, 1] == keys[p + lo, 1]:
                        hi += 1
                else:
                    hi = m
                reached[e] |= _segment(lo, hi, ts, mask, rank, excl, hold, mode, kept,
                                       plist, pcount, exbits, within, window,
                                       start_before, nexcl, sel, work, chains)
                depth = -1
                for k in range(n):
                    if sel[0, k] >= 0:
                        depth = k
                done = LATEST if depth < 0 else ts[sel[0, depth]]
                # the deepest segment's chain, then the one completing first
                if depth > best_depth or (depth == best_depth and done < best_done):
                    best_depth, best_done = depth, done
                    for k in range(n):
                        best_chain[k] = sel[0, k]
                        if with_chain:
                            chain[e, k] = (vals[p + sel[0, k], 0] >> 32 if sel[0, k] >= 0
                                           else -1)
                lo = hi
            if mode != MODE_ANY and best_depth > 0:
                prev = -1
                for k in range(n):
                    if best_chain[k] >= 0:
                        if prev >= 0:
                            delta[e, k] = ts[best_chain[k]] - ts[prev]
                        prev = best_chain[k]
            e += reached[e] & 1  # kept only if it did the first step
            p = q
    return e


@jit()
def match_plain(starts: Any, nb: int, keys: Any, vals: Any, tie_bits: int, rest_bits: int,
                mask_of_rank: Any, window: int, start_before: int, first: Any, reached: Any,
                chain: Any, delta: Any, w: int) -> int:
    """``match_entities`` for the usual funnel: sequential order, and no optional step,
    exclusion, held value nor step window. The same greedy and the same results, with
    the chains kept as links (the row each step's row followed) instead of copies: the
    representative chain is walked back once per entity (~40% less time)."""
    n = delta.shape[1]
    with_chain = chain.shape[1] > 0
    cap = 1
    for b in range(nb):
        cap = max(cap, starts[b + 1] - starts[b])
    ts = np.empty(cap, dtype=np.int64)
    link = np.empty((cap, n), dtype=np.int64)  # (row, step) -> the previous step's row
    latest = np.empty(n, dtype=np.int64)  # the latest valid row per step ...
    begin = np.empty(n, dtype=np.int64)  # ... and the time its chain started
    tie_low = (np.int64(1) << tie_bits) - 1
    e = w
    for b in range(nb):
        p, end = starts[b], starts[b + 1]
        while p < end:
            q = p + 1
            while q < end and keys[q, 0] == keys[p, 0]:
                q += 1
            for k in range(n):
                latest[k] = -1
                delta[e, k] = -1
                if with_chain:
                    chain[e, k] = -1
            got, deepest, deep_row = 0, -1, -1
            for i in range(q - p):  # the entity's rows, in time order
                packed = keys[p + i, 1]
                t = packed >> tie_bits
                ts[i] = t
                mask = mask_of_rank[(packed & tie_low) >> rest_bits]
                for k in range(n - 1, -1, -1):  # its steps, highest first
                    if not (mask >> k) & 1:
                        continue
                    if k == 0:
                        if t >= start_before:
                            continue
                        begin[0] = t
                        link[i, 0] = -1
                    else:
                        before = latest[k - 1]
                        if before < 0 or t - begin[k - 1] > window:
                            continue
                        begin[k] = begin[k - 1]
                        link[i, k] = before
                    latest[k] = i
                    got |= 1 << k
                    if k > deepest:  # the first chain to get this far represents it
                        deepest, deep_row = k, i
            first[e] = vals[p, 0] >> 32
            reached[e] = got
            row = deep_row
            for k in range(deepest, -1, -1):
                before = link[row, k]
                if with_chain:
                    chain[e, k] = vals[p + row, 0] >> 32
                if before >= 0:
                    delta[e, k] = ts[row] - ts[before]
                row = before
            e += got & 1  # kept only if it did the first step
            p = q
    return e


@jit()
def match_partitions(starts1: Any, p0: int, p1: int, keys: Any, vals: Any, bits1: int,
                     bits2: int, has_lead: bool, has_excl: bool, has_hold: bool,
                     tie_bits: int, rest_bits: int, mask_of_rank: Any, mode: int, kept: Any,
                     plist: Any, pcount: Any, exbits: Any, within: Any, window: int,
                     start_before: int, nexcl: int, time_bits: int, o_first: Any,
                     o_reached: Any, o_chain: Any, o_delta: Any) -> Any:
    """Partitions p0..p1 of the first pass, one at a time while it is in the cache:
    split by the next ``bits2`` bits of h1 into buckets of a few rows (a second
    counting sort, into a local copy), sort each bucket, match each entity.

    ``time_bits``: the width of the packed times (the last column of ``keys``).

    Returns, for the entities that did the first step, (a row of each, steps reached,
    chain, delta) as in ``match_entities``, written to the ``o_*`` arrays given (one
    row per entity; the chain has a column per step or none) or to larger copies when
    they are full, and False if two ids collided (then the caller falls back to the
    SQL path's matcher).
    """
    # the usual funnel (sequential, no optional step, exclusion, held value nor step
    # window) has a leaner matcher
    plain = (mode == MODE_SEQUENTIAL and kept.shape[0] == 1 and nexcl == 0
             and not has_lead and not has_hold and within.max() < 0)
    nb2 = 1 << bits2
    shift = np.uint64(64 - bits1 - bits2)
    low = np.uint64(nb2 - 1)
    cursor = np.empty(nb2, dtype=np.int64)
    lstarts = np.empty(nb2 + 1, dtype=np.int64)
    counts = np.empty(nb2, dtype=np.int64)
    t_col = keys.shape[1] - 1
    t_shift = max(0, time_bits - TIME_BINS_BITS)
    t_cursor = np.empty((1 << TIME_BINS_BITS) + 1, dtype=np.int64)
    big = 1
    for part in range(p0, p1):
        big = max(big, starts1[part + 1] - starts1[part])
    kc, vc = keys.shape[1], vals.shape[1]
    kb = np.empty((big, kc), dtype=np.int64)
    vb = np.empty((big, vc), dtype=np.int64)
    kt = np.empty((big, kc), dtype=np.int64)
    vt = np.empty((big, vc), dtype=np.int64)
    cap = len(o_first)
    done = 0
    for part in range(p0, p1):
        lo, hi = starts1[part], starts1[part + 1]
        # by coarse time first (the bins' counting sort, into kt/vt), then stably into
        # buckets: each bucket's rows then come nearly in time order, and sorting them
        # moves little (on rows in random time order: ~45% less time for both)
        t_cursor[:] = 0
        for i in range(lo, hi):
            t_cursor[(keys[i, t_col] >> t_shift) + 1] += 1
        for j in range(1, len(t_cursor)):
            t_cursor[j] += t_cursor[j - 1]
        cursor[:] = 0
        for i in range(lo, hi):
            q = t_cursor[keys[i, t_col] >> t_shift]
            t_cursor[keys[i, t_col] >> t_shift] = q + 1
            for c in range(kc):
                kt[q, c] = keys[i, c]
            for c in range(vc):
                vt[q, c] = vals[i, c]
            cursor[np.int64((np.uint64(keys[i, 0]) >> shift) & low)] += 1
        pos = 0
        for j in range(nb2):
            v = cursor[j]
            cursor[j] = pos
            lstarts[j] = pos
            pos += v
        lstarts[nb2] = pos
        for i in range(hi - lo):
            b = np.int64((np.uint64(kt[i, 0]) >> shift) & low)
            q = cursor[b]
            cursor[b] = q + 1
            for c in range(kc):
                kb[q, c] = kt[i, c]
            for c in range(vc):
                vb[q, c] = vt[i, c]
        counts[:] = 0
        sort_buckets(lstarts, 0, nb2, kb, vb, counts)
        for j in range(nb2):
            if counts[j] < 0:
                return o_first[:0], o_reached[:0], o_chain[:0], o_delta[:0], False
        if done + (hi - lo) > cap:  # room for every entity of the partition
            while done + (hi - lo) > cap:
                cap *= 2
            o_first = _grow(o_first[:done], cap)
            o_reached = _grow(o_reached[:done], cap)
            o_chain = _grow2(o_chain[:done], cap)
            o_delta = _grow2(o_delta[:done], cap)
        if plain:
            done = match_plain(lstarts, nb2, kb, vb, tie_bits, rest_bits, mask_of_rank,
                               window, start_before, o_first, o_reached, o_chain, o_delta,
                               done)
        else:
            done = match_entities(lstarts, 0, nb2, kb, vb, has_lead, has_excl, has_hold,
                                  tie_bits, rest_bits, mask_of_rank, mode, kept, plist,
                                  pcount, exbits, within, window, start_before, nexcl,
                                  o_first, o_reached, o_chain, o_delta, done)
    return o_first[:done], o_reached[:done], o_chain[:done], o_delta[:done], True


@jit()
def _grow(a: Any, cap: int) -> Any:
    out = np.empty(cap, dtype=a.dtype)
    out[:len(a)] = a
    return out


@jit()
def _grow2(a: Any, cap: int) -> Any:
    out = np.empty((cap, a.shape[1]), dtype=a.dtype)
    out[:len(a)] = a
    return out
