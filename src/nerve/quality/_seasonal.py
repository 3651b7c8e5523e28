"""The one seasonal count model of nerve: volume checks and anomaly detection share it.

Pure numpy/scipy, no I/O; every function works on many series at once (a matrix with
one row per period and one column per series; NaN before a series existed).

**Expected counts.** Two passes over the training periods of each series:

1. medians of ``log1p(count)`` per hour of day, plus a median offset per day of week; a
   training period more than 4 robust spreads off (1.4826 x MAD, at least the Poisson
   noise) is a past incident and leaves the training;
2. on the periods left: the mean count per hour of day x a day-of-week factor (shrunk
   towards 1), rescaled to the level of the latest training week. Means, not medians:
   the median of sparse counts (0, 0, 1, 0, 2...) is 0.

**Noise.** Sums over windows of ``L`` periods (1, 4 and 24 hours by default) vary as
``phi * mu + alpha * mu**2``: ``phi`` >= 1 because events come in sessions (one shopper,
twenty product views), ``alpha`` >= 0 for the model's own relative error, which
dominates at large counts. Both are fitted per series and window length on the clean
training windows (the mean Pearson statistic of the quieter and the busier half). The
tail probability of an observed sum is that of a negative binomial with this mean and
variance (shape ``r = 1 / ((phi - 1) / mu + alpha)``: sessions of logarithmic size at
low counts, the model's relative error at high counts; Poisson when ``phi`` is 1 and
``alpha`` 0): exact at low counts, where a normal z-score is wrong. The tails are then
calibrated on the series' own training windows (an empirical null), for whatever the
negative binomial still misses.

**Family error.** A series' p-value is its smallest window p-value times the number of
windows and directions it was judged on (Bonferroni within the series). Across the
series of one run (hundreds: events x dimension values x rates), Benjamini-Hochberg at
``q = 2 * Phi(-sensitivity)``: with every series clean (a clean simulation) the chance of
any alarm is at most ``q`` (0.27% at the default ``sensitivity: 3``), whatever hour the
data ends; the within-series correction makes it much less in practice.

**Rates** (``payment_failed`` per ``payment_submitted``) are judged as a share of the
denominator's count: binomial, or beta-binomial with the overdispersion ``rho`` of the
training windows; the expected share is the pooled share of the clean training periods.
A numerator that is no share of its denominator (refunds per order) is a count with
mean ``denominator x rate`` and the negative-binomial tails above.

>>> import numpy as np
>>> matrix = np.full((24 * 14, 1), 5.0); matrix[-3:] = 40
>>> train = np.arange(24 * 14) < 24 * 13
>>> found = judge_counts(matrix, np.arange(24 * 14), train, ~train, Rules())
>>> bool(found.p[0] < 1e-6), int(found.sign[0])
(True, 1)
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import tzinfo

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = ["Judgement", "Rules", "family_level", "fit_expected", "judge_counts",
           "judge_rates", "nb_tails", "normal_score", "reject", "strongest", "wall_hours"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]

_MAD = 1.4826
#: robust spreads off the first fit that make a training period a past incident
_OUTLIER = 4.0
#: pseudo-days at the series' average level in each hour-of-day mean
_PRIOR_DAYS = 2.0
#: expected events in the quieter half of the training windows below which their
#: overdispersion is not trusted alone (``_dispersion``)
_SPARSE = 30.0


@dataclass(frozen=True, slots=True)
class Rules:
    """When a window is judged and what counts as a change.

    - ``sensitivity``: the family error in normal sigmas (3: a clean run alarms with
      probability <= 0.27%; 2.5: 1.2%);
    - ``direction``: ``both``, ``up`` or ``down``;
    - ``min_volume``: a window is judged when it expects at least this many events (a
      drop), or when it expects or holds that many (a spike); for rates, the
      denominator's count;
    - ``min_change``: the relative change of the window's sum must be at least this;
    - ``windows``: the window lengths, in periods.
    """

    sensitivity: float = 3.0
    direction: str = "both"
    min_volume: float = 5.0
    min_change: float = 0.3
    windows: tuple[int, ...] = (1, 4, 24)

    @property
    def q(self) -> float:
        return family_level(self.sensitivity)


def family_level(sensitivity: float) -> float:
    """The family error rate of ``sensitivity`` sigmas: ``2 * Phi(-sensitivity)``."""
    from scipy import special  # noqa: PLC0415 - SciPy loads on first use
    return float(2 * special.ndtr(-sensitivity))


@dataclass
class Judgement:
    """Per series (column): the family-ready p-value and its best window; per point the
    marks (+1 up, -1 down) of every window significant at ``threshold``."""

    p: F64
    sign: I64
    start: I64
    end: I64
    observed: F64
    expected: F64
    expected_points: F64
    #: per point: the spread of a single period's value (the 1-period noise), for trimming
    spread_points: F64
    tests: I64
    #: per series and window length: (phi, alpha) or (rho, 0) for rates
    noise: dict[int, tuple[F64, F64]]
    #: per window length: the raw (uncorrected) one-sided p-values, up and down
    tails: dict[int, tuple[F64, F64, F64, F64]]
    #: rates: per series, whether the numerator is a share of the denominator (its
    #: ``noise`` is then ``(rho, 0)``, else the counts' ``(phi, alpha)``)
    binomial: Mask | None = None

    def marks(self, threshold: F64, rules: Rules, values: F64) -> I64:
        """+1/-1 on the points of windows whose corrected p-value is within ``threshold``
        (per series) and that moved by ``min_change`` themselves.

        A window longer than one period marks only its strongest stretch (see
        ``strongest``): a 24-hour sum that holds a 4-hour outage is significant for 24
        hours after it, and without trimming every hour of it with one failed payment
        more than expected would join the incident (a 4-hour outage must not spread to
        every unlucky hour of the 24-hour window around it)."""
        n, s = self.expected_points.shape
        out = np.zeros((n, s), dtype=np.int64)
        for length, (p_up, p_down, _obs, _exp) in sorted(self.tails.items()):
            for sign, p in ((1, p_up), (-1, p_down)):
                hit = (p * self.tests[None, :]) <= threshold[None, :]
                for end_row, col in zip(*np.nonzero(hit), strict=True):
                    part = slice(max(0, end_row - length + 1), end_row + 1)
                    gap = sign * (values[part, col] - self.expected_points[part, col])
                    moved = gap > rules.min_change * np.maximum(
                        self.expected_points[part, col], 0.5)
                    if length > 1:
                        lo, hi = strongest(gap / self.spread_points[part, col])
                        # a silent day of 0.6 events an hour: no hour is a spread off
                        # on its own, and a stretch holding less than half the gap is
                        # no account of it; its moved hours are
                        if gap[lo:hi].sum() >= 0.5 * gap.sum():
                            moved[:lo] = False
                            moved[hi:] = False
                    seg = out[part, col]
                    seg[moved & (seg == 0)] = sign
        return out


def strongest(scores: F64, sharp: float = 2.0) -> tuple[int, int]:
    """The stretch ``[lo, hi)`` of points whose scores (one period's deviation in its
    spreads, signed towards the window's direction) sum highest once each pays one
    spread: the periods that deviate themselves. A point one spread off is neutral, so
    an hour with one failed payment more than expected next to an outage stays out of
    it, while a day-long drop of 1-2 spreads an hour keeps the hours its noise lifted in
    the middle. A stretch that holds a point ``sharp`` spreads off (an outage, a dead
    day) starts and ends on points 1.5 spreads off, so the merely quiet hour before a
    dead day is no part of it. Empty (``lo == hi``) when no point is more than one
    spread off.

    >>> strongest(np.array([1.0, 0.2, 6.0, 5.5, 7.0, 0.5, 1.5, 0.0]))
    (2, 5)
    >>> strongest(np.array([1.2, 6.0, 1.5, 6.0, 1.3]))
    (1, 4)
    >>> strongest(np.array([0.5, 1.6, 1.2, 1.9, 1.4, 0.2]))
    (1, 5)
    """
    z = np.nan_to_num(scores)
    best, lo, hi = 0.0, 0, 0
    run, start = 0.0, 0
    for i, score in enumerate(z - 1.0):
        if run <= 0:
            run, start = 0.0, i
        run += float(score)
        if run > best:
            best, lo, hi = run, start, i + 1
    edge = 1.5 if lo < hi and z[lo:hi].max() >= sharp else 1.0
    while lo < hi and z[lo] < edge:
        lo += 1
    while hi > lo and z[hi - 1] < edge:
        hi -= 1
    return lo, hi


def wall_hours(hours: I64, tz: str | tzinfo | None) -> I64:
    """Hours since the epoch (UTC) as ``tz``'s wall clock numbers them.

    Their hour of day and day of week are local: traffic that wakes at 08:00 in New York
    wakes in the same slot before and after a DST switch (in UTC hours it moves by one,
    and a model of UTC hours of day blends both for weeks). An hour that a switch repeats
    numbers twice; one it skips, never. A half-hour zone's hour counts in the local hour
    it starts in.
    """
    if tz is None or str(tz) == "UTC" or hours.size == 0:
        return hours
    local = pd.to_datetime(hours * 3600, unit="s", utc=True).tz_convert(tz).tz_localize(None)
    out: I64 = np.asarray(local.asi8 // 3_600_000_000_000, dtype=np.int64)
    return out


def _slots(periods: I64, grain_hours: int) -> tuple[I64, I64]:
    if grain_hours >= 24:
        return np.zeros_like(periods), periods % 7
    return periods % 24, (periods // 24) % 7


def fit_expected(values: F64, periods: I64, train: Mask, *, grain_hours: int = 1,
                 parents: I64 | None = None) -> tuple[F64, F64, Mask]:
    """Expected counts for every point of every series, the same without each training
    point's own day (out of sample, for the noise), and the clean training mask.

    ``values`` is periods x series (NaN where a series did not exist yet); ``train`` is
    periods x series or one column for all.
    """
    train = np.broadcast_to(train if train.ndim == 2 else train[:, None], values.shape)
    known = ~np.isnan(values)
    train = train & known
    hod, dow = _slots(periods, grain_hours)
    y = np.where(train, np.log1p(np.nan_to_num(values)), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices of new series
        overall = np.nanmedian(y, axis=0)
        level = np.empty_like(y)
        for h in np.unique(hod):
            rows = hod == h
            level[rows] = np.nanmedian(y[rows], axis=0)
        level = np.where(np.isnan(level), overall[None, :], level)
        resid = y - level
        offset = np.zeros_like(y)
        for d in np.unique(dow):
            rows = dow == d
            offset[rows] = np.nan_to_num(np.nanmedian(resid[rows], axis=0))
        center = np.nan_to_num(level + offset)
        r = y - center
        spread = _MAD * np.nanmedian(np.abs(r - np.nanmedian(r, axis=0)), axis=0)
    scale = np.maximum(np.nan_to_num(spread)[None, :], 1.0 / np.sqrt(np.expm1(center) + 1.0))
    z = (np.log1p(np.nan_to_num(values)) - center) / scale
    clean = train & (np.abs(z) <= _OUTLIER)
    # too few clean points: an unstable series, keep its whole training
    few = clean.sum(axis=0) < max(24 // max(grain_hours, 1), 7)
    clean[:, few] = train[:, few]
    filled = np.nan_to_num(values)
    expected, loo, factor = _mean_fit(filled, periods, clean, hod, dow, grain_hours, None)
    if parents is not None and (parents >= 0).any():
        # a series by dimension value takes its day-of-week factor from its event's
        # overall series: weeks more of history than the JSON scan of dimensions reads
        children = np.flatnonzero(parents >= 0)
        given = factor.copy()
        given[:, children] = factor[:, parents[children]]
        expected, loo, _ = _mean_fit(filled, periods, clean, hod, dow, grain_hours, given)
    return expected, loo, clean


def _hour_prior(v: F64, seen: F64, hod: I64, overall: F64) -> F64:
    """Pseudo-days at the series' average level in each hour-of-day mean: at most
    ``_PRIOR_DAYS``, and as few as the spread of the hour-of-day means allows (the
    gamma-Poisson posterior mean: ``overall / tau2`` days, ``tau2`` the variance of the
    hours' true rates beyond their Poisson noise). A flat or sparse series keeps the two
    days; a busy one with a clear daily curve keeps its curve: two days pulled the peak
    and the trough of a week of training 20% towards the mean, the same way for hours
    on end, and the noise model read that error as overdispersion (phi 5-8 for a 4-hour
    sum of pure Poisson counts), blind to a 50% drop."""
    slots = np.unique(hod)
    n = np.stack([seen[hod == h].sum(axis=0) for h in slots])
    sums = np.stack([v[hod == h].sum(axis=0) for h in slots])
    has = n > 0
    means = np.where(has, sums / np.maximum(n, 1), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        spread = np.nanvar(means, axis=0)
        noise = np.nanmean(np.where(has, overall[None, :] / np.maximum(n, 1), np.nan), axis=0)
    tau2 = np.nan_to_num(spread - noise, nan=0.0)
    out: F64 = np.where(tau2 > 0, np.minimum(_PRIOR_DAYS, overall / np.maximum(tau2, 1e-12)),
                        _PRIOR_DAYS)
    return out


def _day_prior(day_v: F64, day_b: F64, day_dow: I64, grain_hours: int) -> F64:
    """Pseudo-days at factor 1 in each day-of-week factor: at most half a day, and as few
    as the weekly pattern's strength allows (``var_day / tau2`` days: ``var_day`` a
    day's relative deviation from its weekday's factor, measured on the weekdays seen
    twice or more and at least Poisson's, ``tau2`` the variance of the factors beyond
    it). Half a day shrank a weekday seen once in a week and a half of history by a
    third: a weekend 25% above the week expected 17% above, for 24 hours on end."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        # whole days only (the first and last of a training span are cut)
        typical = np.nanmedian(np.where(day_b > 0, day_b, np.nan), axis=0)
        full = (day_b > 0) & (day_b > 0.5 * np.nan_to_num(typical)[None, :])
        r = np.where(full, day_v / np.maximum(day_b, 1e-12), np.nan)
        total = np.nanmean((r - 1.0) ** 2, axis=0)
        poisson = np.nanmean(np.where(full, 1.0 / np.maximum(day_b, 1e-12), np.nan), axis=0)
        within = np.zeros(day_v.shape[1])
        dof = np.zeros(day_v.shape[1])
        for d in range(7):
            rd = r[day_dow == d]
            k = (~np.isnan(rd)).sum(axis=0)
            dev = np.nansum((rd - np.nanmean(rd, axis=0)) ** 2, axis=0)
            within += np.where(k >= 2, dev, 0.0)
            dof += np.maximum(k - 1, 0)
    var_day = np.fmax(np.where(dof > 0, within / np.maximum(dof, 1), 0.0),
                      np.nan_to_num(poisson))
    tau2 = np.nan_to_num(total - var_day, nan=0.0)
    out: F64 = np.where(tau2 > 0, np.minimum(0.5, var_day / np.maximum(tau2, 1e-12)), 0.5)
    return out


def _mean_fit(values: F64, periods: I64, clean: Mask, hod: I64, dow: I64,
              grain_hours: int, given: F64 | None) -> tuple[F64, F64, F64]:
    """(expected, expected without the point's own day): the second, for the clean
    training points only, is what the model would have said of that day before seeing
    it, so the noise is measured out of sample (in sample, a day-of-week factor learnt
    from one or two days absorbs each day's own deviation and the noise looks small)."""
    v = np.where(clean, values, 0.0)
    seen = clean.astype(float)
    total, count = v.sum(axis=0), seen.sum(axis=0)
    overall = total / np.maximum(count, 1)
    base = np.empty_like(values)
    base_loo = np.empty_like(values)
    prior = _hour_prior(v, seen, hod, overall)
    for h in np.unique(hod):
        rows = hod == h
        n = seen[rows].sum(axis=0)
        sums = v[rows].sum(axis=0)
        # shrunk towards the series' average period: a quiet hour that happened to see
        # nothing for weeks expects little, not nothing
        base[rows] = (sums + prior * overall) / (n + prior)
        # without the point itself (one point per hour of day and day)
        base_loo[rows] = np.where(
            clean[rows], (sums[None, :] - v[rows] + prior[None, :] * overall[None, :])
            / np.maximum(n[None, :] - 1 + prior[None, :], 1e-9), base[rows])
    num = np.zeros((7, values.shape[1]))
    den = np.zeros((7, values.shape[1]))
    for d in range(7):
        rows = dow == d
        num[d] = v[rows].sum(axis=0)
        den[d] = (base[rows] * seen[rows]).sum(axis=0)
    # shrunk towards 1 by at most half an average day (``_day_prior``): with 1-4 of each
    # weekday in training, an unshrunk factor copies each day's noise. A day, not a
    # weekday's total: that would be as many days as weeks of training and flatten a
    # 4-week weekly pattern by a third (a Saturday 15% above its factor, a Monday 8%
    # below, and the noise model then learns a 10% error for every day)
    day = periods * max(grain_hours, 1) // 24
    _, day_index = np.unique(day, return_inverse=True)
    day_v = np.zeros((int(day_index.max()) + 1, values.shape[1]))
    day_b = np.zeros_like(day_v)
    np.add.at(day_v, day_index, v)
    np.add.at(day_b, day_index, base * seen)
    day_dow = np.zeros(len(day_v), dtype=np.int64)
    day_dow[day_index] = dow
    days = seen.sum(axis=0) * max(grain_hours, 1) / 24
    prior = _day_prior(day_v, day_b, day_dow, grain_hours) * den.sum(axis=0) / np.maximum(
        days, 1.0)
    factor = (num + prior) / np.maximum(den + prior, 1e-12)
    own = np.ones(values.shape[1], dtype=bool) if given is None else ~np.any(
        given != factor, axis=0)
    if given is not None:
        factor = given
    expected = base * factor[dow]
    factor_loo = (num[dow] - day_v[day_index] + prior) / np.maximum(
        den[dow] - day_b[day_index] + prior, 1e-12)
    # a factor from the parent series does not depend on this series' own days
    factor_loo = np.where(own[None, :], factor_loo, factor[dow])
    loo = np.where(clean, base_loo * factor_loo, expected)
    # the level of the latest training week: products grow (or shrink)
    has = clean.any(axis=1)
    if has.any():
        newest = periods[has].max()
        week = (periods > newest - 7 * 24 // max(1, grain_hours))[:, None] & clean
        seen_sum = np.where(week, values, 0).sum(axis=0)
        exp_sum = np.where(week, expected, 0).sum(axis=0)
        level = ((seen_sum + 10.0) / (exp_sum + 10.0))[None, :]
        expected, loo = expected * level, loo * level
    return np.maximum(expected, 0.0), np.maximum(loo, 0.0), factor


def _window_sums(matrix: F64, length: int) -> F64:
    """Sums over the ``length`` periods ending at each row (NaN until a full window)."""
    c = np.cumsum(np.nan_to_num(matrix), axis=0)
    out = np.full_like(c, np.nan)
    out[length - 1:] = c[length - 1:]
    out[length:] -= c[:-length]
    return out


def _full(mask: Mask, length: int) -> Mask:
    """Rows whose whole window of ``length`` rows is within ``mask``."""
    bad = _window_sums((~mask).astype(float), length)
    out: Mask = np.nan_to_num(bad, nan=1.0) == 0
    return out


def _dispersion(obs: F64, exp: F64, ok: Mask, scale: F64 | None = None
                ) -> tuple[F64, F64]:
    """(phi, alpha) per series from training windows, by moments: ``phi`` = sum of
    squared errors / sum of expectations over the quieter half of the windows (ratios
    of sums: stable where most windows are empty), ``alpha`` = what the busier half has
    beyond that, per squared expectation. ``exp`` is the out-of-sample expectation,
    ``scale`` (default ``exp``) the in-sample one: a noisy small ``exp`` in the
    denominator would inflate the statistic of sparse series."""
    scale = exp if scale is None else scale
    use = ok & (scale > 0)
    err = np.where(use, (obs - exp) ** 2, 0.0)
    e = np.where(use, scale, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mid = np.nanmedian(e, axis=0)
    low = use & (np.nan_to_num(e) <= mid[None, :])
    high = use & ~low
    low_e = np.where(low, scale, 0).sum(axis=0)
    pooled = err.sum(axis=0) / np.maximum(np.where(use, scale, 0).sum(axis=0), 1e-12)
    phi = np.where(low_e > 0, np.where(low, err, 0).sum(axis=0) / np.maximum(low_e, 1e-12),
                   pooled)
    # a quieter half expecting few events has seen few sessions, if any: bursts of one
    # user (nine payments in an hour, then nothing for days) hide from it, and its phi
    # reads 1; all the windows have seen them
    phi = np.where(low_e < _SPARSE, np.fmax(phi, pooled), phi)
    phi = np.clip(np.nan_to_num(phi, nan=1.0), 1.0, None)
    extra = np.where(high, err - phi[None, :] * scale, 0).sum(axis=0)
    alpha = np.clip(extra / np.maximum(np.where(high, scale ** 2, 0).sum(axis=0), 1e-12),
                    0.0, None)
    return phi, np.nan_to_num(alpha)


def nb_tails(observed: F64, expected: F64, phi: F64, alpha: F64) -> tuple[F64, F64]:
    """(P(S >= observed), P(S <= observed)) for a negative binomial sum with mean
    ``expected`` and variance ``phi * expected + alpha * expected**2``: shape
    ``r = 1 / ((phi - 1) / expected + alpha)``. At low counts this is the compound
    Poisson of sessions (NB1: sessions of logarithmic size, heavy tails: 13 events in a
    quiet hour may be one shopper), at high counts NB2 (the model's relative error);
    Poisson when ``phi`` is 1 and ``alpha`` 0. Smooth in ``observed`` (incomplete beta
    and gamma functions, vectorised over whole matrices).

    >>> up, down = nb_tails(np.array([5.0]), np.array([0.25]), np.array([1.0]),
    ...                     np.array([0.0]))
    >>> f"{up[0]:.1e}"
    '6.6e-06'
    """
    from scipy import special  # noqa: PLC0415 - SciPy loads on first use
    shape = np.broadcast_shapes(np.shape(observed), np.shape(expected), np.shape(phi),
                                np.shape(alpha))
    m = np.broadcast_to(np.maximum(expected, 1e-12), shape)
    k = np.broadcast_to(np.nan_to_num(np.maximum(observed, 0.0)), shape)
    inv_r = np.maximum(phi - 1.0, 0.0) / m + np.maximum(alpha, 0.0)
    poisson = inv_r < 1e-9
    r = 1.0 / np.where(poisson, 1.0, inv_r)
    p = r / (r + m)
    up, down = np.ones(shape), np.ones(shape)
    # each function only where it is needed: most cells of sparse series are zeros
    nb, po, some = ~poisson, poisson, k > 0
    with np.errstate(all="ignore"):
        down[nb] = special.betainc(r[nb], k[nb] + 1.0, p[nb])
        down[po] = special.gammaincc(k[po] + 1.0, m[po])
        sel = nb & some
        up[sel] = special.betainc(k[sel], r[sel], 1.0 - p[sel])
        sel = po & some
        up[sel] = special.gammainc(k[sel], m[sel])
    return np.clip(np.nan_to_num(up, nan=1.0), 0, 1), np.clip(np.nan_to_num(down, nan=1.0),
                                                              0, 1)


def _calibrated(p: F64, ref: Mask) -> F64:
    """Tail probabilities recalibrated on the series' own training windows (an empirical
    null): where sessions make the tails heavier than the negative binomial's (one
    shopper's spree of 13 searches in a quiet hour), the training windows' normal scores
    run wide; they are scaled back so that their 97.5th percentile is a normal's 1.96 and
    their third largest what the third largest of that many normal scores would be."""
    from scipy import special  # noqa: PLC0415 - SciPy loads on first use
    with np.errstate(all="ignore"):
        z = np.clip(np.nan_to_num(-special.ndtri(np.clip(p, 1e-300, 1.0)), nan=0.0),
                    -40, 40)
    masked = np.where(ref, z, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        high = np.nanquantile(masked, 0.975, axis=0)
    count = ref.sum(axis=0)
    third = -np.sort(-np.where(ref, z, -np.inf), axis=0)[min(2, z.shape[0] - 1)]
    normal_third = -special.ndtri(3.0 / (count + 1.0))
    scale = np.fmax(np.nan_to_num(high / 1.96, nan=1.0),
                    np.where((count >= 30) & np.isfinite(third),
                             third / np.maximum(normal_third, 1.0), 1.0))
    scale = np.clip(np.nan_to_num(scale, nan=1.0), 1.0, None)
    out: F64 = np.where(z > 0, special.ndtr(-z / scale[None, :]), p)
    return out


def _best(judgement: Judgement, p: F64, sign: int, rows: Mask, length: int,
          obs: F64, exp: F64) -> None:
    """Keep, per series, the window with the smallest p so far."""
    masked = np.where(rows, p, np.inf)
    at = np.argmin(masked, axis=0)
    best = masked[at, np.arange(p.shape[1])]
    better = best < judgement.p
    cols = np.flatnonzero(better)
    judgement.p[cols] = best[cols]
    judgement.sign[cols] = sign
    judgement.end[cols] = at[cols]
    judgement.start[cols] = np.maximum(at[cols] - length + 1, 0)
    judgement.observed[cols] = obs[at[cols], cols]
    judgement.expected[cols] = exp[at[cols], cols]


def _empty(n: int, s: int, expected: F64) -> Judgement:
    return Judgement(p=np.ones(s), sign=np.zeros(s, dtype=np.int64),
                     start=np.zeros(s, dtype=np.int64), end=np.zeros(s, dtype=np.int64),
                     observed=np.zeros(s), expected=np.zeros(s), expected_points=expected,
                     spread_points=np.sqrt(np.maximum(expected, 0.25)),
                     tests=np.zeros(s, dtype=np.int64), noise={}, tails={})


def judge_counts(values: F64, periods: I64, train: Mask, evaluated: Mask, rules: Rules,
                 *, grain_hours: int = 1, parents: I64 | None = None) -> Judgement:
    """Judge the ``evaluated`` periods of count series (periods x series) against a fit on
    the ``train`` periods: every window of each length ending in an evaluated period.
    Hour ``periods`` are numbered on the workspace's wall clock (``wall_hours``), so
    that their hours of day are local.

    ``parents[j]``, when not -1, is the column of series j's parent (its event overall):
    j takes the parent's day-of-week factor, learnt on more history.

    An incident that began in the training periods and goes on into the evaluated ones
    (an event silent for 40 hours, judged on its last 24) is not training: the periods
    just before the evaluated ones that moved as the first evaluated one did
    (``_carried``) leave it, and the series are judged again. At 0.6 events an hour
    its silent hours are no outliers one by one, and they made the noise of the 24-hour
    sums look three times what it was."""
    found = _judge_counts(values, periods, train, evaluated, rules, grain_hours, parents)
    carried = _carried(values, found, train, evaluated, rules)
    if not carried.any():
        return found
    train2 = np.broadcast_to(train if train.ndim == 2 else train[:, None], values.shape)
    return _judge_counts(values, periods, train2 & ~carried, evaluated, rules, grain_hours,
                         parents)


def _carried(values: F64, found: Judgement, train: Mask, evaluated: Mask, rules: Rules
             ) -> Mask:
    """Per series, the training periods right before the first evaluated one that moved
    (by ``min_change``, as ``Judgement.marks`` counts it) in the direction of the
    series' strongest window, when the first evaluated period moved so too: the start
    of an incident that the evaluated windows continue."""
    out = np.zeros(values.shape, dtype=bool)
    at = np.flatnonzero(evaluated)
    if at.size == 0 or at[0] == 0:
        return out
    first = int(at[0])
    train2 = np.broadcast_to(train if train.ndim == 2 else train[:, None], values.shape)
    y = np.nan_to_num(values)
    e = found.expected_points
    for j in np.flatnonzero((found.p < 1) & (found.sign != 0)):
        gap = found.sign[j] * (y[:first + 1, j] - e[:first + 1, j])
        moved = (gap > rules.min_change * np.maximum(e[:first + 1, j], 0.5)) & ~np.isnan(
            values[:first + 1, j])
        if not moved[first]:
            continue
        k = first
        while k > 0 and moved[k - 1] and train2[k - 1, j]:
            k -= 1
        out[k:first, j] = True
    return out


def _judge_counts(values: F64, periods: I64, train: Mask, evaluated: Mask, rules: Rules,
                  grain_hours: int, parents: I64 | None) -> Judgement:
    n, s = values.shape
    expected, loo, clean = fit_expected(values, periods, train, grain_hours=grain_hours,
                                        parents=parents)
    known = ~np.isnan(values)
    found = _empty(n, s, expected)
    for length in sorted(set(rules.windows)):
        if length > n:
            continue
        obs, exp = _window_sums(values, length), _window_sums(expected, length)
        ref = _full(clean, length)
        fitted = exp
        # training windows are judged against their out-of-sample expectation
        exp = np.where(ref, _window_sums(loo, length), exp)
        phi, alpha = _dispersion(obs, exp, ref, fitted)
        # sessions make a day's sum at least as overdispersed as an hour's: the phi of
        # the shorter windows, fitted on many more of them, floors the longer ones' (a
        # week of dimension training holds six independent days; their phi can be 1)
        for shorter, _ in found.noise.values():
            phi = np.fmax(phi, shorter)
        found.noise[length] = (phi, alpha)
        if length == min(found.noise):
            found.spread_points = _spread(expected, phi, alpha)
        rows = evaluated[:, None] & _full(known, length)
        change = (obs + 1) / (exp + 1) - 1
        p_up, p_down = nb_tails(obs, exp, phi[None, :], alpha[None, :])
        p_up, p_down = _calibrated(p_up, ref & (exp > 0)), _calibrated(p_down, ref & (exp > 0))
        up_ok = rows & (np.maximum(obs, exp) >= rules.min_volume) & (change > rules.min_change)
        down_ok = rows & (exp >= rules.min_volume) & (change < -rules.min_change)
        _record(found, length, rules, rows, (p_up, up_ok), (p_down, down_ok), obs, exp)
    found.p = np.minimum(1.0, found.p * np.maximum(found.tests, 1))
    return found


def judge_rates(numerator: F64, denominator: F64, periods: I64, train: Mask,
                evaluated: Mask, rules: Rules) -> Judgement:
    """Judge the rate ``numerator / denominator`` of series (periods x series).

    Where the numerator is a share of the denominator (never above it in training, and
    below half of it: failed payments of submitted ones), its window sum is binomial in
    the denominator's, beta-binomial with the training windows' overdispersion ``rho``.
    Otherwise (refunds per order: other events, other hours) it is a count with mean
    ``denominator x rate``, judged by the same negative-binomial tails as volumes. The
    expected rate is the pooled one of the clean training periods. ``expected`` in the
    answer is the expected numerator; the change is the rate's.
    """
    n, s = numerator.shape
    train2 = np.broadcast_to(train if train.ndim == 2 else train[:, None], numerator.shape)
    known = ~np.isnan(denominator)
    num, den = np.nan_to_num(numerator), np.nan_to_num(denominator)
    use = train2 & known
    rate = _pooled(num, den, use)
    share = ~np.any(use & (num > den), axis=0) & (rate < 0.5)
    # pass 2: training hours far off the pooled rate are past incidents
    up, down = _rate_tails(num, den, rate, share, np.zeros(s), np.ones(s), np.zeros(s))
    clean = use & (np.minimum(up, down) > 1e-5)
    few = clean.sum(axis=0) < 24
    clean[:, few] = use[:, few]
    rate = _pooled(num, den, clean)
    expected_points = den * rate[None, :]
    found = _empty(n, s, expected_points)
    found.binomial = share
    for length in sorted(set(rules.windows)):
        if length > n:
            continue
        x, m = _window_sums(num, length), _window_sums(den, length)
        exp = m * rate[None, :]
        ok = _full(clean, length) & (m > 1)
        pear = np.where(ok, (x - exp) ** 2 / np.maximum(exp * (1 - rate[None, :]), 1e-12),
                        0.0)
        rho = np.clip(np.where(ok, pear - 1, 0).sum(axis=0)
                      / np.maximum(np.where(ok, m - 1, 0).sum(axis=0), 1e-9), 0.0, 0.5)
        phi, alpha = _dispersion(x, exp, ok)
        found.noise[length] = (np.where(share, rho, phi), np.where(share, 0.0, alpha))
        if length == min(found.noise):
            binomial = np.sqrt(np.maximum(expected_points * (1 - rate[None, :]) * (
                1 + np.maximum(den - 1, 0) * rho[None, :]), 0.25))
            found.spread_points = np.where(share[None, :], binomial,
                                           _spread(expected_points, phi, alpha))
        rows = evaluated[:, None] & _full(known, length) & (m >= 1)
        p_up, p_down = _rate_tails(x, m, rate, share, rho, phi, alpha)
        change = (x + rate[None, :]) / (exp + rate[None, :]) - 1
        volume = m >= rules.min_volume
        up_ok = rows & volume & (change > rules.min_change)
        down_ok = rows & volume & (change < -rules.min_change)
        _record(found, length, rules, rows, (p_up, up_ok), (p_down, down_ok), x, exp)
    found.p = np.minimum(1.0, found.p * np.maximum(found.tests, 1))
    return found


def _record(found: Judgement, length: int, rules: Rules, rows: Mask,
            up: tuple[F64, Mask], down: tuple[F64, Mask], obs: F64, exp: F64) -> None:
    """Keep the tails of windows of ``length`` where a change may be judged (``up`` and
    ``down``: the p-values and where each direction qualifies, as ``rules`` allow),
    count every window that could have been judged, whatever the data did, and note
    each series' strongest evidence."""
    p_up = np.where(up[1], up[0], 1.0) if rules.direction != "down" else np.ones_like(obs)
    p_down = np.where(down[1], down[0], 1.0) if rules.direction != "up" else np.ones_like(obs)
    found.tails[length] = (p_up, p_down, obs, exp)
    found.tests += _tests(rows, length, rules)
    _best(found, p_up, 1, rows, length, obs, exp)
    _best(found, p_down, -1, rows, length, obs, exp)


def _rate_tails(x: F64, m: F64, rate: F64, share: Mask, rho: F64, phi: F64, alpha: F64
                ) -> tuple[F64, F64]:
    """Tails of the numerator: beta-binomial for share columns, else negative binomial."""
    up = np.ones_like(x)
    down = np.ones_like(x)
    cols = np.flatnonzero(share)
    if cols.size:
        u, d = _binomial_tails(x[:, cols], m[:, cols], rate[None, cols], rho[None, cols])
        up[:, cols], down[:, cols] = u, d
    other = np.flatnonzero(~share)
    if other.size:
        u, d = nb_tails(x[:, other], m[:, other] * rate[None, other], phi[None, other],
                        alpha[None, other])
        up[:, other], down[:, other] = u, d
    return up, down


def _spread(expected: F64, phi: F64, alpha: F64) -> F64:
    """One period's spread under the negative binomial (at least half an event)."""
    out: F64 = np.sqrt(np.maximum(phi[None, :] * expected + alpha[None, :] * expected ** 2,
                                  0.25))
    return out


def _tests(rows: Mask, length: int, rules: Rules) -> I64:
    """Tests a series takes for one window length: its non-overlapping windows in the
    evaluated span, plus one (overlapping windows of one length are nearly the same
    test), per judged direction."""
    n = rows.sum(axis=0)
    count = np.where(n > 0, -(-n // length) + 1, 0)
    out: I64 = count * (2 if rules.direction == "both" else 1)
    return out


def _pooled(num: F64, den: F64, mask: Mask) -> F64:
    total = np.where(mask, den, 0).sum(axis=0)
    # half an event of prior keeps a never-failing provider's share above zero
    out: F64 = (np.where(mask, num, 0).sum(axis=0) + 0.5) / (total + 1.0)
    return out


def _binomial_tails(x: F64, m: F64, share: F64, rho: F64) -> tuple[F64, F64]:
    """(P(X >= x), P(X <= x)) for X beta-binomial(m, share, rho); binomial at rho 0."""
    from scipy import special, stats  # noqa: PLC0415 - SciPy loads on first use
    shape = np.broadcast_shapes(x.shape, m.shape, share.shape, rho.shape)
    x, m = np.broadcast_to(x, shape), np.broadcast_to(m, shape)
    share, rho = np.broadcast_to(share, shape), np.broadcast_to(rho, shape)
    xi, mi = np.round(np.nan_to_num(x)), np.round(np.nan_to_num(m))
    p = np.clip(share, 1e-9, 1 - 1e-9)
    with np.errstate(all="ignore"):
        # binomial tails as incomplete betas (fast over whole matrices)
        b_ge = np.where(xi > 0, special.betainc(np.maximum(xi, 1e-12),
                                                np.maximum(mi - xi + 1, 1e-12), p), 1.0)
        b_le = np.where(xi < mi, special.betainc(np.maximum(mi - xi, 1e-12), xi + 1, 1 - p),
                        1.0)
    up, down = b_ge, b_le
    over = rho > 1e-9
    if over.any():
        idx = np.nonzero(over & (mi > 0))
        k = 1 / rho[idx] - 1
        a, b = p[idx] * k, (1 - p[idx]) * k
        up = up.copy()
        down = down.copy()
        up[idx] = stats.betabinom.sf(xi[idx] - 1, mi[idx], a, b)
        down[idx] = stats.betabinom.cdf(xi[idx], mi[idx], a, b)
    return np.clip(np.nan_to_num(up, nan=1.0), 0, 1), np.clip(np.nan_to_num(down, nan=1.0),
                                                              0, 1)


def reject(p: F64, q: F64 | float) -> tuple[Mask, F64]:
    """Benjamini-Hochberg over one family of series p-values: (rejected, thresholds).

    ``q`` may differ per series (events with their own sensitivity): a series is rejected
    when its BH-adjusted p-value is within its own ``q``. ``thresholds`` is, per series,
    the largest raw p-value that would have been rejected (for marking the windows).

    >>> rejected, _ = reject(np.array([1e-6, 0.2, 0.5, 0.03]), 0.05)
    >>> rejected.tolist()
    [True, False, False, False]
    """
    p = np.asarray(p, dtype=float)
    qs = np.broadcast_to(np.asarray(q, dtype=float), p.shape)
    m = len(p)
    if m == 0:
        return np.zeros(0, dtype=bool), np.zeros(0)
    order = np.argsort(p)
    ranked = p[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum.accumulate(ranked[::-1])[::-1]
    adj = np.empty(m)
    adj[order] = np.minimum(adjusted, 1.0)
    rejected = adj <= qs
    k = int(rejected.sum())
    # the step-up threshold: the k-th smallest p passes at k/m of its q
    thresholds = qs * max(k, 1) / m
    return rejected, thresholds


def normal_score(p: float) -> float:
    """A p-value as the one-sided normal score (for messages: 'a 5.2 sigma event')."""
    from scipy import special  # noqa: PLC0415 - SciPy loads on first use
    return float(-special.ndtri(max(min(p, 1.0), 1e-300))) if p < 1 else 0.0

