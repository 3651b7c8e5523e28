"""The seasonal robust model of metric values: an expected value and a band per point.

Counts (events, the two sides of a rate) go through the count model the quality checks
share (``nerve.quality._seasonal``); this one judges the values of other metrics
(revenue, averages) series by series, and ``poisson_z`` scores counts for the live
monitor and explanations. Pure numpy, no I/O. Per series, on ``log1p(value)`` for
counts (the raw value otherwise):

- center = median at the same hour of day + median offset of the same day of week,
  over the training points;
- spread = 1.4826 x MAD of the training residuals; for counts at least the Poisson noise
  of the expected count, so a series of 5 events/h does not alarm on 2 or 9;
- z = (value - center) / spread.

Medians and MAD already shrug off a few bad hours; ``robust_fit`` goes further and refits
without the training points the first fit finds anomalous, so a past incident in the
training window neither shifts the expectation nor widens the band.

>>> import numpy as np
>>> hours = np.arange(24 * 14)
>>> values = 100 + 50 * np.sin(hours % 24 / 24 * 2 * np.pi)
>>> band = robust_fit(hours, values, hours < 24 * 13)
>>> bool(abs(band.expected[-1] - values[-1]) < 1)
True
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from nerve.errors import UserError

__all__ = ["DIRECTIONS", "MAD", "Band", "Settings", "flags", "mean_fit", "poisson_z", "robust_fit",
           "runs", "scan", "seasonal_fit", "slots"]

MAD = 1.4826
DIRECTIONS = ("both", "up", "down")

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class Settings:
    """When a point is anomalous.

    - ``sensitivity``: how many spreads away from the expected value (4 = rare alerts);
    - ``direction``: ``both``, ``up`` (spikes only) or ``down`` (drops only);
    - ``min_volume``: counts below this (expected, for drops; observed, for spikes) are
      never judged: too little data to tell noise from change;
    - ``min_change``: the relative change must be at least this (0.3 = 30%);
    - ``min_duration``: points in a row before a run is reported.
    """

    sensitivity: float = 3.0
    direction: str = "both"
    min_volume: float = 20.0
    min_change: float = 0.3
    min_duration: int = 1

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise UserError(f"direction: expected one of {', '.join(DIRECTIONS)}, "
                            f"got {self.direction!r}")
        if self.sensitivity <= 0:
            raise UserError(f"sensitivity: expected a positive number, got {self.sensitivity}")
        if self.min_duration < 1:
            raise UserError(f"min_duration: expected 1 or more, got {self.min_duration}")


@dataclass(frozen=True, slots=True)
class Band:
    """The model's answer for every point: center and scale on the model's scale (log1p
    for counts), the expected value and z-score on the value's own scale."""

    center: F64
    scale: F64
    expected: F64
    z: F64
    counts: bool

    def bounds(self, sensitivity: float) -> tuple[F64, F64]:
        """The band ``sensitivity`` spreads around the expected value: (low, high)."""
        low = self.center - sensitivity * self.scale
        high = self.center + sensitivity * self.scale
        if self.counts:
            return np.expm1(low).clip(min=0), np.expm1(high)
        return low, high


def slots(periods: I64, grain_hours: int = 1) -> tuple[I64, I64]:
    """(hour of day, day of week) of each period index (hours or days since the epoch).

    Day of week is 0 for Thursday (the epoch's weekday): only equality matters here.
    """
    if grain_hours >= 24:
        return np.zeros_like(periods), periods % 7
    return periods % 24, (periods // 24) % 7


def _group_median(values: F64, groups: I64, size: int, fallback: float) -> F64:
    out = np.full(size, fallback, dtype=float)
    if values.size == 0:
        return out
    order = np.argsort(groups, kind="stable")
    keys, starts = np.unique(groups[order], return_index=True)
    for key, part in zip(keys, np.split(values[order], starts[1:]), strict=True):
        out[int(key)] = float(np.median(part))
    return out


def seasonal_fit(periods: I64, values: F64, train: Mask, *, counts: bool = True,
                 grain_hours: int = 1) -> Band:
    """One fit of the seasonal model on the ``train`` points; a Band for every point."""
    y = np.log1p(np.maximum(values, 0)) if counts else values.astype(float)
    hod, dow = slots(periods, grain_hours)
    ytrain = y[train]
    overall = float(np.median(ytrain)) if ytrain.size else 0.0
    level = _group_median(ytrain, hod[train], 24, overall)[hod]
    offset = _group_median(ytrain - level[train], dow[train], 7, 0.0)[dow]
    center = np.nan_to_num(level + offset, nan=0.0)
    resid = ytrain - center[train]
    spread = MAD * float(np.median(np.abs(resid - np.median(resid)))) if resid.size else 0.0
    if counts:
        expected = np.expm1(center)
        floor = 1.0 / np.sqrt(np.maximum(expected, 0) + 1.0)  # Poisson noise on log scale
    else:
        expected = center
        # a rate that never moves in training still has some noise
        floor = np.maximum(0.02 * np.abs(center), 1e-9)
    scale = np.maximum(spread, floor)
    return Band(center=center, scale=scale, expected=expected, z=(y - center) / scale,
                counts=counts)


def mean_fit(periods: I64, values: F64, train: Mask, *, grain_hours: int = 1) -> Band:
    """Counts: expected = mean at the hour of day x the day of week's factor.

    Means, not medians: the median of sparse counts (0, 0, 1, 0, 2...) is 0, and a model
    expecting 0 where 0.6 is the rate alarms on every event. Run it on points already
    cleaned of outliers (``robust_fit`` does).
    """
    hod, dow = slots(periods, grain_hours)
    v = np.maximum(values[train], 0)
    overall = float(v.mean()) if v.size else 0.0
    level = np.full(24, overall)
    sums = np.bincount(hod[train], weights=v, minlength=24)
    seen = np.bincount(hod[train], minlength=24)
    level[seen > 0] = sums[seen > 0] / seen[seen > 0]
    base = level[hod]
    num = np.bincount(dow[train], weights=v, minlength=7)
    den = np.bincount(dow[train], weights=base[train], minlength=7)
    # shrunk towards 1 by half an average day: with 1-4 of each weekday in training, an
    # unshrunk factor copies each day's noise and judges every day against itself (a
    # day, not a weekday's total, which flattened a 4-week weekly pattern by a third)
    prior = 0.5 * den.sum() / max(1.0, float(train.sum()) * max(grain_hours, 1) / 24)
    factor = (num + prior) / (den + prior)
    expected = base * factor[dow]
    # the level of the latest week: products grow (or shrink), and a month's average
    # would expect last month's traffic from this week's users
    if train.any():
        latest = train & (periods > periods[train].max() - 7 * 24 // max(1, grain_hours))
        seen_sum, expected_sum = float(values[latest].sum()), float(expected[latest].sum())
        if expected_sum > 0:
            expected = expected * (seen_sum + 10.0) / (expected_sum + 10.0)
    center = np.log1p(expected)
    y = np.log1p(np.maximum(values, 0))
    resid = y[train] - center[train]
    spread = MAD * float(np.median(np.abs(resid - np.median(resid)))) if resid.size else 0.0
    scale = np.maximum(spread, 1.0 / np.sqrt(expected + 1.0))
    return Band(center=center, scale=scale, expected=expected, z=(y - center) / scale,
                counts=True)


def robust_fit(periods: I64, values: F64, train: Mask, *, counts: bool = True,
               grain_hours: int = 1, sensitivity: float = 4.0) -> Band:
    """Fit with medians, drop the training points more than ``sensitivity`` spreads off
    (past incidents), fit again on the rest (means for counts, medians otherwise)."""
    first = seasonal_fit(periods, values, train, counts=counts, grain_hours=grain_hours)
    clean = train & (np.abs(first.z) <= sensitivity)
    if clean.sum() < max(24 // max(grain_hours, 1), 7):
        clean = train
    if counts:
        return mean_fit(periods, values, clean, grain_hours=grain_hours)
    if clean.sum() == train.sum():
        return first
    return seasonal_fit(periods, values, clean, counts=counts, grain_hours=grain_hours)


def flags(values: F64, band: Band, settings: Settings) -> npt.NDArray[np.int64]:
    """+1 (spike), -1 (drop) or 0 for each point under ``settings``."""
    expected = band.expected
    if band.counts:
        change = (values + 1) / (expected + 1) - 1
        big_up = values >= settings.min_volume
        big_down = expected >= settings.min_volume
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            change = np.where(expected != 0, values / np.where(expected == 0, 1, expected) - 1,
                              np.sign(values) * np.inf)
        big_up = big_down = np.ones_like(values, dtype=bool)
    out = np.zeros(len(values), dtype=np.int64)
    s = settings.sensitivity
    if settings.direction in ("both", "up"):
        out[(band.z > s) & (change > settings.min_change) & big_up] = 1
    if settings.direction in ("both", "down"):
        out[(band.z < -s) & (change < -settings.min_change) & big_down] = -1
    return out


def runs(marks: npt.NDArray[Any], min_run: int = 1, gap: int = 0
         ) -> list[tuple[int, int, int]]:
    """Runs of equal non-zero marks at least ``min_run`` long: [(start, end, sign)].

    Up to ``gap`` unmarked points between marks of the same sign join their runs (a
    drop with one noisy hour in its middle is one incident, not two).

    >>> runs(np.array([0, 1, 1, 0, -1, 0, 1, 1, 1]), 2)
    [(1, 2, 1), (6, 8, 1)]
    >>> runs(np.array([-1, -1, 0, -1]), 1, gap=1)
    [(0, 3, -1)]
    """
    marks = np.array(marks, copy=True)
    if gap:
        nonzero = np.flatnonzero(marks)
        for a, b in itertools.pairwise(nonzero):
            if 1 < b - a <= gap + 1 and marks[a] == marks[b]:
                marks[a:b] = marks[a]
    found = []
    i, n = 0, len(marks)
    while i < n:
        if marks[i] == 0:
            i += 1
            continue
        j = i
        while j + 1 < n and marks[j + 1] == marks[i]:
            j += 1
        if j - i + 1 >= min_run:
            found.append((i, j, int(marks[i])))
        i = j + 1
    return found


def poisson_z(observed: F64, expected: F64) -> F64:
    """The normal score of an exact Poisson tail: how surprising ``observed`` counts are.

    Positive for more than expected (upper tail ``P(X >= observed)``), negative for less
    (``P(X <= observed)``). Exact where the log-scale approximation fails: 5 events
    where 0.25 are expected is a 4.4 sigma event, not a 1.7 sigma one.

    >>> [round(float(v), 1) for v in poisson_z(np.array([5.0, 0.0]), np.array([0.25, 30.0]))]
    [4.4, -7.4]
    """
    from scipy import special  # noqa: PLC0415 - SciPy loads on first use
    lam = np.maximum(expected, 1e-9)
    k = np.maximum(observed, 0.0)
    up = k > lam
    # the Poisson tails as regularized incomplete gamma functions (exact for integer
    # counts, smooth for the scaled ones of the quasi-Poisson test) and ~50x faster
    # than scipy.stats' distribution objects, which matters over thousands of series
    upper = special.gammainc(np.maximum(k, 1e-12), lam)  # P(X >= k)
    lower = special.gammaincc(k + 1.0, lam)  # P(X <= k)
    p = np.where(up, upper, lower).clip(1e-300, 1.0)
    z = -special.ndtri(p)
    out: F64 = np.where(up, np.maximum(z, 0), -np.maximum(z, 0))
    return out


def scan(values: F64, band: Band, train: Mask, windows: tuple[int, ...],
         settings: Settings, marks: npt.NDArray[np.int64] | None = None
         ) -> npt.NDArray[np.int64]:
    """Flags from sums over several window lengths ending at each point.

    A 60% drop of a series with 6 events an hour is invisible hour by hour and obvious
    over a day; a burst of 5 events in 4 hours where 0.3 are expected only shows as a
    4-hour sum. For each window length, the sum is judged twice and must pass both: an
    exact Poisson tail (counts only) and the spread of the same windows' sums in training
    (1.4826 x MAD of their log ratio), which carries the overdispersion of real traffic.
    A flagged window marks its points that moved the same way.
    """
    n = len(values)
    found = np.zeros(n, dtype=np.int64) if band.counts else flags(values, band, settings)
    marks = found if marks is None else np.where(marks != 0, marks, found)
    for length in sorted(windows):
        # points already marked count as expected in longer sums: a dead day must not
        # make the next day's 24-hour sums look low too
        values_now = np.where(marks != 0, band.expected, values)
        if length > n or (length <= 1 and not band.counts):
            continue
        kernel = np.ones(length)
        obs = np.convolve(values_now, kernel, mode="full")[:n].round(9)
        exp = np.convolve(band.expected, kernel, mode="full")[:n].clip(min=0)
        full = np.arange(n) >= length - 1
        if band.counts:
            # quasi-Poisson: real traffic comes in sessions, so counts vary more than a
            # Poisson's; the training windows' Pearson dispersion scales the test down
            ref = train & full & (exp > 0)
            # (untrimmed: bursts are exactly the overdispersion to learn; past incidents
            # are already out of ``train``)
            pearson = (obs[ref] - exp[ref]) ** 2 / exp[ref]
            phi = max(1.0, float(pearson.mean())) if pearson.size else 1.0
            z = poisson_z(obs / phi, exp / phi)
            # calibrated on the series' own training tails: where one shopper's spree
            # regularly makes a 5-sigma hour, a 5-sigma hour is ordinary (the 99th
            # percentile of training scores is held to a normal's 2.58)
            tails = np.abs(z[ref]) if pearson.size else np.empty(0)
            if tails.size >= 24:
                z = z / max(1.0, float(np.quantile(tails, 0.99)) / 2.58)
            change = (obs + 1) / (exp + 1) - 1
            volume = np.maximum(obs, exp) >= settings.min_volume
        else:
            ratio = (obs - exp) / length
            sample = ratio[train & full]
            spread = MAD * float(np.median(np.abs(sample - np.median(sample)))) \
                if sample.size else 0.0
            z = ratio / max(spread, 1e-12)
            with np.errstate(divide="ignore", invalid="ignore"):
                change = np.where(exp != 0, obs / np.where(exp == 0, 1, exp) - 1, 0.0)
            volume = np.ones(n, dtype=bool)
        s = settings.sensitivity
        hits = np.zeros(n, dtype=np.int64)
        if settings.direction in ("both", "up"):
            hits[full & (z > s) & (change > settings.min_change) & volume] = 1
        if settings.direction in ("both", "down"):
            hits[full & (z < -s) & (change < -settings.min_change) & volume] = -1
        for end in np.flatnonzero(hits):
            sign = hits[end]
            part = slice(end - length + 1, end + 1)
            # only the points that themselves moved by min_change: the window's other
            # points are ordinary neighbours of the incident
            gap = sign * (values[part] - band.expected[part])
            moved = gap > settings.min_change * np.abs(band.expected[part])
            segment = marks[part]
            segment[moved & (segment == 0)] = sign
    return marks
