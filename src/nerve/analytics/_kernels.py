"""Compiled kernels of the funnel fast path (numba), part 1: group rows per entity in
O(rows) and order each entity's few rows. Part 2 (``_kmatch``) matches them.

ClickHouse's ``windowFunnel`` is fast because it never sorts the whole table: it groups
rows per user in a hash table and sorts each user's few events. These kernels do the
same over the columns DuckDB hands over unsorted:

1. ``hash_strings``: two independent 64-bit hashes of each entity id, 8 bytes at a time
   (h1 groups; h2, carried along, tells two ids apart if their h1 ever collide);
   ``batch_stats``: each record batch's time range and step sets.
2. ``hash_strings`` (counting), ``bucket_offsets``, ``scatter_rows``: a counting sort (no
   comparison) of the rows into cache-sized partitions by h1's top bits, each row
   packed in 24 bytes: h1, time-and-tie, row number and h2's top half.
3. ``sort_buckets`` (from ``_kmatch.match_partitions``, per partition while it is in
   the cache): counting sorts by coarse time, then stably into buckets of ~2 rows, each
   then sorted by (h1, [held value], time, tie rule); runs of equal h1 are entities.

Every kernel is serial and releases the GIL (``nogil``): the caller runs it on ranges of
rows or buckets from a few Python threads. That uses the cores without numba's parallel
layers (its OpenMP layer spins idle threads, which on a 2-core machine slowed everything
else around a funnel 2-5x; its workqueue layer aborts on concurrent calls, as from the
HTTP server's threads). Nothing allocates per row; kernels are cached on disk
(``cache=True``), so only the first call on a machine pays the compilation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba
import numpy as np
import numpy.typing as npt

__all__ = ["LATEST", "NONE", "batch_stats", "bucket_offsets", "hash_strings", "jit",
           "scatter_rows", "sort_buckets", "words_of"]

F = TypeVar("F", bound=Callable[..., Any])
NONE = np.iinfo(np.int64).min
LATEST = np.iinfo(np.int64).max
SMALL = 24  # ranges up to this size are insertion-sorted


def jit(inline: bool = False) -> Callable[[F], F]:
    # helpers are inlined into the kernels at numba's level: a call per entity or per
    # comparison otherwise costs more than the work (array arguments, reference counts)
    return cast(Callable[[F], F], numba.njit(cache=True, nogil=True,
                                             inline="always" if inline else "never"))


def words_of(data: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint64]:
    """The 8 bytes starting at each byte of ``data`` as one little-endian word (an
    unaligned view, no copy), for ``hash_strings``; the last 7 bytes have none."""
    return np.ndarray((max(len(data) - 7, 0),), np.uint64, data, 0, (1,))


@jit()
def hash_strings(offsets: Any, data: Any, words: Any, rows: int, h1: Any, h2: Any,
                 narrow: Any, bits: int, counts: Any) -> None:
    """Two independent 64-bit hashes of ``rows`` strings (Arrow offsets and bytes), 8
    bytes at a time (``words``: ``words_of(data)``): two different multiply-xorshift
    chains over the words, each with a splitmix64 finalizer (the top bits of ``h1``
    pick the partition, so they must be well mixed); ``h1`` is ANDed with ``narrow``
    (all ones but in a test). Counts the rows per partition (the top ``bits`` of h1) on
    the way: the counting sort's first pass."""
    shift = np.uint64(64 - bits)
    loaded = len(words)
    for i in range(rows):
        start, end = offsets[i], offsets[i + 1]
        a = np.uint64(0x9E3779B97F4A7C15) ^ np.uint64(end - start)
        b = np.uint64(0xD6E8FEB86659FD93) + np.uint64(end - start)
        for j in range(start, end, 8):
            if j < loaded:
                w = words[j]
            else:  # the buffer's last 7 bytes: no word starts there
                w = np.uint64(0)
                for k in range(min(8, len(data) - j)):
                    w |= np.uint64(data[j + k]) << np.uint64(8 * k)
            if end - j < 8:  # the string's last bytes: keep only them
                w &= (np.uint64(1) << np.uint64(8 * (end - j))) - np.uint64(1)
            a = (a ^ w) * np.uint64(0x100000001B3A5A5B)
            a ^= a >> np.uint64(29)
            b = (b + w) * np.uint64(0xFF51AFD7ED558CCD)
            b ^= b >> np.uint64(32)
        x = _mix(a) & narrow
        h1[i] = x
        h2[i] = _mix(b ^ np.uint64(0x2545F4914F6CDD1D))
        counts[np.int64(x >> shift)] += 1


@jit(inline=True)
def _mix(h: Any) -> Any:
    h ^= h >> np.uint64(30)
    h *= np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(27)
    h *= np.uint64(0x94D049BB133111EB)
    h ^= h >> np.uint64(31)
    return h


@jit()
def bucket_offsets(counts: Any) -> Any:
    """(chunks x buckets) counts -> each chunk's write position per bucket, in place;
    returns the bucket starts (buckets + 1)."""
    chunks, nb = counts.shape
    starts = np.empty(nb + 1, dtype=np.int64)
    pos = 0
    for b in range(nb):
        starts[b] = pos
        for c in range(chunks):
            v = counts[c, b]
            counts[c, b] = pos
            pos += v
    starts[nb] = pos
    return starts


@jit()
def batch_stats(ts: Any, rmask: Any, seen: Any, bounds: Any) -> None:
    """The step bitmasks present (``seen[mask]`` set) and the earliest and latest time
    (``bounds``, widened in place) of a batch of rows."""
    low, high = bounds[0], bounds[1]
    for i in range(len(ts)):
        seen[rmask[i]] = True
        t = ts[i]
        low = min(low, t)
        high = max(high, t)
    bounds[0], bounds[1] = low, high


@jit()
def scatter_rows(h1: Any, h2: Any, lead: Any, ts: Any, t0: int, rmask: Any, rank: Any,
                 rest: Any, rest_bits: int, tie_bits: int, excl: Any, hold: Any, bits: int,
                 lo: int, hi: int, cursor: Any, keys: Any, vals: Any) -> None:
    """Rows lo..hi to their partition's next free slot (a counting sort's first pass),
    packed as what sorting and matching read, so that both then work on contiguous
    memory: ``keys`` = (h1, [lead], time-and-tie) and ``vals`` = (row and h2's top 32
    bits, [excl], [hold]). Time-and-tie is ``(ts - t0) << tie_bits | tie``, where the tie
    is the step bitmask's rank (highest mask first) then the ``rest`` of the tie rule.
    ``ts`` and ``rmask`` hold rows lo..hi only (one record batch); the other per-row
    arrays hold every row."""
    shift = np.uint64(64 - bits)
    has_lead, has_excl, has_hold, has_rest = len(lead) > 0, len(excl) > 0, len(hold) > 0, \
        len(rest) > 0
    t = 2 if has_lead else 1
    e = 2 if has_excl else 1
    for i in range(lo, hi):
        b = np.int64(h1[i] >> shift)
        p = cursor[b]
        cursor[b] = p + 1
        keys[p, 0] = np.int64(h1[i])
        if has_lead:
            keys[p, 1] = lead[i]
        tie = rank[rmask[i - lo]] << rest_bits
        if has_rest:
            tie |= rest[i]
        keys[p, t] = ((ts[i - lo] - t0) << tie_bits) | tie
        vals[p, 0] = (i << 32) | np.int64(h2[i] >> np.uint64(32))
        if has_excl:
            vals[p, 1] = excl[i]
        if has_hold:
            vals[p, e] = hold[i]


@jit()
def _less(keys: Any, a: int, b: int) -> bool:
    for c in range(keys.shape[1]):
        x, y = keys[a, c], keys[b, c]
        if x != y:
            return bool(x < y)
    return False


@jit()
def _insertion(order: Any, lo: int, hi: int, keys: Any) -> None:
    for i in range(lo + 1, hi):
        x = order[i]
        j = i - 1
        while j >= lo and _less(keys, x, order[j]):
            order[j + 1] = order[j]
            j -= 1
        order[j + 1] = x


@jit()
def _sort_order(order: Any, m: int, keys: Any, spare: Any) -> Any:
    """Sort order[:m] (positions into ``keys``), stable: insertion sort for small
    ranges (the usual bucket), else runs of SMALL merged bottom-up (a heavy user)."""
    for r in range(0, m, SMALL):
        _insertion(order, r, min(r + SMALL, m), keys)
    src, dst = order, spare
    width = SMALL
    while width < m:
        for left in range(0, m, 2 * width):
            mid, right = min(left + width, m), min(left + 2 * width, m)
            i, j, k = left, mid, left
            while i < mid and j < right:
                if _less(keys, src[j], src[i]):
                    dst[k] = src[j]
                    j += 1
                else:
                    dst[k] = src[i]
                    i += 1
                k += 1
            while i < mid:
                dst[k] = src[i]
                i += 1
                k += 1
            while j < right:
                dst[k] = src[j]
                j += 1
                k += 1
        src, dst = dst, src
        width *= 2
    return src


@jit()
def sort_buckets(starts: Any, b0: int, b1: int, keys: Any, vals: Any, counts: Any) -> None:
    """Sort buckets b0..b1 in place by their keys, stably (rows arrive in row order, so
    equal keys keep it), and count their entities (runs of equal h1). Two ids with the
    same h1 but different h2 make ``counts[b]`` -1 (a collision: the caller falls back)."""
    big = 0
    for b in range(b0, b1):
        big = max(big, starts[b + 1] - starts[b])
    order = np.empty(big, dtype=np.int64)
    spare = np.empty(big, dtype=np.int64)
    kbuf = np.empty((big, keys.shape[1]), dtype=np.int64)
    vbuf = np.empty((big, vals.shape[1]), dtype=np.int64)
    simple = keys.shape[1] == 2 and vals.shape[1] == 1  # no held values nor exclusions
    for b in range(b0, b1):
        lo, hi = starts[b], starts[b + 1]
        m = hi - lo
        if m <= 1:
            counts[b] = m
            continue
        if simple and m <= SMALL:
            _insert_pairs(keys, vals, lo, hi)
        else:
            _sort_rows(keys, vals, lo, m, order, spare, kbuf, vbuf)
        found = 1
        low = np.int64(0xFFFFFFFF)
        for i in range(lo + 1, hi):
            if keys[i, 0] != keys[i - 1, 0]:
                found += 1
            elif (vals[i, 0] & low) != (vals[i - 1, 0] & low):
                found = -1  # same h1, another id
                break
        counts[b] = found


@jit()
def _insert_pairs(keys: Any, vals: Any, lo: int, hi: int) -> None:
    """Insertion sort of rows lo..hi with two keys and one value, written out: the
    common case, and ~2x faster than the general loop over columns."""
    for i in range(lo + 1, hi):
        a0, a1 = keys[i, 0], keys[i, 1]
        j = i - 1
        if not (a0 < keys[j, 0] or (a0 == keys[j, 0] and a1 < keys[j, 1])):
            continue
        v0 = vals[i, 0]
        while True:
            keys[j + 1, 0] = keys[j, 0]
            keys[j + 1, 1] = keys[j, 1]
            vals[j + 1, 0] = vals[j, 0]
            j -= 1
            if j < lo or not (a0 < keys[j, 0] or (a0 == keys[j, 0] and a1 < keys[j, 1])):
                break
        keys[j + 1, 0] = a0
        keys[j + 1, 1] = a1
        vals[j + 1, 0] = v0


@jit()
def _sort_rows(keys: Any, vals: Any, lo: int, m: int, order: Any, spare: Any, kbuf: Any,
               vbuf: Any) -> None:
    """Rows lo..lo+m sorted by their keys, stably, whatever the number of columns."""
    bk, bv = keys[lo:lo + m], vals[lo:lo + m]
    ordered = True
    for i in range(1, m):
        if _less(bk, i, i - 1):
            ordered = False
            break
    if ordered:
        return
    for i in range(m):  # sort positions (cheap moves), then move each row once
        order[i] = i
    done = _sort_order(order, m, bk, spare)
    kc, vc = keys.shape[1], vals.shape[1]
    for i in range(m):
        for c in range(kc):
            kbuf[i, c] = bk[done[i], c]
        for c in range(vc):
            vbuf[i, c] = bv[done[i], c]
    for i in range(m):
        for c in range(kc):
            bk[i, c] = kbuf[i, c]
        for c in range(vc):
            bv[i, c] = vbuf[i, c]
