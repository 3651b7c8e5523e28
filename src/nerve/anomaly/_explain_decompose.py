"""The arithmetic of ``explain``: split a change among the values of one breakdown into
volume, mix, rate and arrival effects, and score each value as a driver. Pure: frames in,
frames out.

Every breakdown value ``v`` has an amount ``n`` (the target's events or sum, or a ratio's
numerator) and an exposure ``e`` (active user-hours of that value for an event count or
a sum; the denominator for a ratio), in the period (``1``) and the baseline (``0``). With
``D`` the total exposure, ``w = e / D`` a value's share of it and ``r = n / e`` its rate,
and ``e0' = w0 D1`` the baseline exposure at today's volume:

- **volume** (counts and sums): the value's part of the overall change of exposure,
  ``(e0' - e0) r0``: more shoppers, more events, nothing to explain.
- **mix**: its change of share at its *baseline* rate, ``(e1 - e0') r0``; for a ratio,
  against the average rate, ``(w1 - w0)(r0 - mean r0)``, since a value growing at the
  average rate moves no average. Users moving from app version 4.1.1 to 4.2.0 are a mix
  effect of about zero: what 4.1.1 loses, 4.2.0 gains.
- **rate**: the change of rate on the exposure the value had in both periods,
  ``min(e0', e1)(r1 - r0)``: like for like.
- **arrivals**: the rest, ``(e1 - min(e0', e1))(r1 - r0)``: exposure new to the value
  whose rate differs from the value's baseline rate (Android users landing on an app
  version that iOS users had before). It compares different people, so it is reported
  but never scored: it is neither a like-for-like rate change nor a change of mix.

A value new in the period has no baseline rate: the average stands in, on its whole
exposure, as its rate effect (a new release whose checkout fails). volume + mix +
rate + arrivals is exactly the value's change (its count change for a count, its part of
the ratio's change for a ratio), and the values' parts add up to the target's change.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = ["DISPERSION", "SIGNIFICANT_Z", "cardinality_weight", "count_z", "decompose",
           "poisson_z", "score_drivers", "significant_z"]

#: how much more than a Poisson count a count varies when it is not measured: events
#: come in sessions (exposure user-hours too: a session spans hours)
DISPERSION = 2.0
#: |z| from which a driver counts as significant (and full weight in the score)
SIGNIFICANT_Z = 3.0

F64 = npt.NDArray[np.float64]


def poisson_z(observed: F64, expected: F64) -> F64:
    """The normal score of a Poisson tail: positive when ``observed`` is above ``expected``.

    Regularised incomplete gamma functions give the tails for scaled (non-integer) counts.

    >>> [round(float(v), 1) for v in poisson_z(np.array([5.0, 0.0]), np.array([0.25, 30.0]))]
    [4.4, -7.4]
    """
    from scipy import special  # noqa: PLC0415 - SciPy loads on first use
    lam = np.maximum(np.asarray(expected, dtype=float), 1e-9)
    k = np.maximum(np.asarray(observed, dtype=float), 0.0)
    up = k > lam
    upper = special.gammainc(np.maximum(k, 1e-12), lam)  # P(X >= k)
    lower = special.gammaincc(k + 1.0, lam)  # P(X <= k)
    p = np.where(up, upper, lower).clip(1e-300, 1.0)
    z = np.maximum(-special.ndtri(p), 0.0)
    out: F64 = np.where(up, z, -z)
    return out


def count_z(observed: float, expected: float, *, spread: float, baselines: int,
            floor: float = 0.0) -> float:
    """The z of a count against its baseline: a Poisson test of counts scaled down by
    ``spread`` (events per acting user-hour: a shopper's burst of ten is one piece of
    evidence, not ten) and by the baseline's own variance, which shrinks with the number
    of ``baselines`` it is the median of. ``floor``: the least expected count (a value
    never seen before is still evidence of only half an event).

    >>> round(count_z(150, 254, spread=1.0, baselines=1), 1)
    -4.9
    """
    scale = max(spread, 1.0) * (1.0 + 1.0 / max(baselines, 1))
    return float(poisson_z(np.array([observed / scale]),
                           np.array([max(expected, floor) / scale]))[0])


def significant_z(tests: int, family: float = 0.01) -> float:
    """The |z| a driver needs among ``tests`` values tried: Bonferroni for a family-wise
    false-alarm rate of ``family``, and never below :data:`SIGNIFICANT_Z` (ten
    breakdowns of five values each need 3.5: at 3, one clean day in fifteen would show
    a "significant" driver).

    >>> significant_z(1), round(significant_z(50), 2)
    (3.0, 3.54)
    """
    from scipy import special  # noqa: PLC0415 - SciPy loads on first use
    return max(SIGNIFICANT_Z, float(-special.ndtri(family / max(tests, 1))))


def cardinality_weight(values: int) -> float:
    """The discount of a breakdown with many values: with more values, one of them
    carries a large share of a change by chance more often (1 for two values, 0.8 for
    four, 0.67 for eight).

    >>> cardinality_weight(2), round(cardinality_weight(8), 2)
    (1.0, 0.67)
    """
    return 1.0 / (1.0 + math.log2(max(values, 2) / 2) / 4)


def decompose(cells: pd.DataFrame, *, additive: bool, unit: float = 1.0,
              baselines: int = 1, population: bool = True) -> pd.DataFrame:
    """Per value (the index of ``cells``, with columns ``n1 d1 n0 d0``): ``observed``,
    ``expected``, ``contribution`` and its ``volume``, ``mix`` and ``rate`` parts, the
    rates, the value's ``weight`` (its share of the exposure, both periods averaged) and
    the significance ``z`` of the rate and mix effects.

    ``unit`` is the size of one counted thing in the amount's unit (the average order for
    a revenue sum; 1 for counts): significance is judged on counts. ``baselines`` is the
    number of periods the baseline is the median of (its variance shrinks with them).
    Optional columns ``a1 a0``: the amount's acting user-hours, to judge significance on.

    ``population``: whether the values' exposure is the active users (every value of a
    context or user dimension). When it is only the users who carried the property
    (``payment_provider``, sent on payment events only), a count's users coming or going
    are no cause: they are the people who paid, who fall with the count itself. Then the
    mix effect (``mix_moved``) is the value's change of share among them, without the
    breakdown's volume, and its ``z_mix`` tests that share.
    """
    c = cells[["n1", "d1", "n0", "d0"]].astype(float).fillna(0.0)
    n1, d1, n0, d0 = c["n1"], c["d1"], c["n0"], c["d0"]
    big_d1, big_d0 = float(d1.sum()), float(d0.sum())
    w1 = d1 / big_d1 if big_d1 > 0 else d1 * 0.0
    w0 = d0 / big_d0 if big_d0 > 0 else d0 * 0.0
    r1 = (n1 / d1.where(d1 > 0)).fillna(0.0)
    r0 = (n0 / d0.where(d0 > 0)).fillna(0.0)
    mean0 = float(n0.sum()) / big_d0 if big_d0 > 0 else 0.0
    new = d0 <= 0
    r0 = r0.where(~new, mean0)  # no baseline rate: the average stands in
    out = pd.DataFrame(index=c.index)
    if additive:
        e1, e0, e0_now = d1, d0, w0 * big_d1
        volume = (e0_now - e0) * r0
        mix = (e1 - e0_now) * r0
        out["observed"], out["expected"] = n1, n0
    else:
        # a value's part of the ratio is w r (its amount over the total exposure)
        e1, e0_now = w1, w0
        volume = n0 * 0.0
        mix = (w1 - w0) * (r0 - mean0)
        out["observed"], out["expected"] = r1.where(d1 > 0), r0
    # a value's usual size: its share of the exposure (of the shoppers, or of a ratio's
    # denominator) over both periods; a change spread in proportion to it says nothing
    # (of the periods that had any: when everything stopped, a value's size is its
    # baseline share, not half of it)
    out["weight"] = w0 if big_d1 <= 0 else w1 if big_d0 <= 0 else (w0 + w1) / 2
    # a value new to the period has nothing to compare like for like: its whole exposure
    # is measured against the average rate (a release whose checkout fails)
    overlap = np.minimum(e0_now, e1).where(~new, e1)
    rate = overlap * (r1 - r0)
    arrivals = (e1 - overlap) * (r1 - r0)
    if additive:
        total = n1 - n0
    else:
        part1 = n1 / big_d1 if big_d1 > 0 else n1 * 0.0
        part0 = n0 / big_d0 if big_d0 > 0 else n0 * 0.0
        total = part1 - part0 - (w1 - w0) * mean0  # the centring sums to zero
    # rounding aside these agree; amounts without exposure (a numerator event whose
    # value has no denominator event) land here too, as in N / D
    arrivals = arrivals + (total - volume - mix - rate - arrivals)
    out["volume"], out["mix"], out["rate"], out["arrivals"] = volume, mix, rate, arrivals
    # what a mix effect ranks on: for a count, its users coming or going (volume
    # included), unless its users are known only from what they did (``population``)
    out["mix_moved"] = mix + volume if population else mix
    out["contribution"] = total
    out["rate_observed"], out["rate_expected"] = r1.where(d1 > 0), r0  # new: the average
    out["exposure"], out["expected_exposure"] = d1, d0
    # significance, on counts. The rate effect: is what was counted on the overlap out
    # of line with the value's baseline rate? Counted are the acting user-hours when
    # given (``a1 a0``: one shopper's spree of retries is one, not ten), else the amount
    # in units, as overdispersed counts. The baseline side is an estimate too: its
    # variance scales with (d1 / d0) and shrinks with the number of baseline periods.
    overlap_d = overlap if additive else overlap * big_d1
    ratio = (d1 / d0.where(d0 > 0)).fillna(0.0) / max(baselines, 1)
    acting = {"a1", "a0"} <= set(cells.columns) and additive
    if acting:
        c1, c0 = cells["a1"].astype(float), cells["a0"].astype(float)
        z_rate = _proportion_z(c1, d1, c0, d0, overlap_d, 1.0 + ratio)
    else:
        c1, c0 = n1 / max(unit, 1e-12), n0 / max(unit, 1e-12)
        z_rate = _rate_z(c1, d1, c0, d0, overlap_d, DISPERSION * (1.0 + ratio))
    out["z_rate"] = z_rate
    before = d0 if additive and population else w0 * big_d1
    exposure_inflate = DISPERSION * (1.0 + ratio)
    out["z_mix"] = poisson_z((d1 / exposure_inflate).to_numpy(),
                             (before / exposure_inflate).to_numpy())
    return out


def _rate_z(c1: pd.Series, d1: pd.Series, c0: pd.Series, d0: pd.Series,
            overlap: pd.Series, inflate: pd.Series) -> pd.Series:
    """Poisson z of the counts on the overlap against the baseline rate there. A rate
    seen on little exposure is uncertain: one unit at the baseline's overall rate is
    added to every value's baseline (no sale in JP yesterday does not make one today a
    surprise), half a unit over the whole baseline when it counted nothing."""
    total0 = float(d0.sum())
    pooled = max(float(c0.sum()), 0.5) / total0 if total0 > 0 else 0.0
    rc1 = (c1 / d1.where(d1 > 0)).fillna(0.0)
    rc0 = (c0 + 1.0) / (d0 + 1.0 / pooled) if pooled > 0 else rc1 * 0.0
    z = poisson_z((rc1 * overlap / inflate).to_numpy(), (rc0 * overlap / inflate).to_numpy())
    return pd.Series(z, index=c1.index)


def _proportion_z(c1: pd.Series, d1: pd.Series, c0: pd.Series, d0: pd.Series,
                  overlap: pd.Series, inflate: pd.Series) -> pd.Series:
    """z of a share of user-hours (acting among active): binomial, tested as a Poisson
    on its rarer side. 97% of adyen's payers usually buy; 13 of 23 buying is 10 not
    buying where 0.7 are expected, a certainty a Poisson test of 13 against 22 misses."""
    low = _rate_z(c1, d1, c0, d0, overlap, inflate)
    high = -_rate_z(d1 - c1, d1, d0 - c0, d0, overlap, inflate)
    share0 = float(c0.sum()) / float(d0.sum()) if float(d0.sum()) > 0 else 0.0
    common = ((c0 + share0) / (d0 + 1.0)).where(d0 > 0, share0)
    return low.where(common <= 0.5, high)


def score_drivers(parts: pd.DataFrame, change: float) -> pd.DataFrame:
    """Score each value of one breakdown as the driver of ``change``: for its rate effect
    and its mix effect (the larger wins), ``excess x purity x cardinality x evidence``:

    - *excess*: the share of the change the effect carries beyond the value's usual size,
      its share of the exposure (the whole change on a value that is 90% of the shoppers
      says little). A rate effect
      is a share of the change left once overall volume is set aside; a mix effect
      (``mix_moved``; for a count: the value's users coming or going, volume included)
      a share of the change,
      and never more than its breakdown's net mix effect: versions replacing each other
      move a lot and explain little;
    - *purity*: ``|sum of the breakdown's effects| / sum of |effects|`` for that kind
      (1 for the rate effect of an offset: it opposes the net by definition);
    - *cardinality*: :func:`cardinality_weight`;
    - *evidence*: 0 below |z| = 1, rising to 1 at |z| = 3.

    Adds ``effect`` (rate or mix), ``share``, ``purity``, ``z`` and ``score``; values
    whose effect goes against the change score 0 there, and get the same columns
    prefixed ``counter_`` for the opposite direction instead (adyen's purchases falling
    in a period whose purchases rose).
    """
    out = parts.copy()
    sign = float(np.sign(change))
    out["share"] = out["contribution"] / change if change else 0.0
    for prefix, direction in (("", sign), ("counter_", -sign)):
        effect, z, purity, score = _best(parts, change, direction)
        out[f"{prefix}effect"], out[f"{prefix}z"] = effect, z
        out[f"{prefix}purity"], out[f"{prefix}score"] = purity, score
    return out


def _best(parts: pd.DataFrame, change: float, direction: float
          ) -> tuple[pd.Series, pd.Series, pd.Series, pd.Series]:
    """Per value, the better of its rate and mix scores in ``direction`` (+1, -1)."""
    card = cardinality_weight(len(parts))
    size = abs(change)
    volume = float(parts["volume"].sum())
    best = pd.Series(0.0, index=parts.index)
    effect = pd.Series("rate", index=parts.index)
    z_best, purity_best = parts["z_rate"].copy(), pd.Series(0.0, index=parts.index)
    for kind in ("rate", "mix"):
        amount = parts["mix_moved"] if kind == "mix" else parts["rate"]
        net = float(amount.sum())
        gross = float(amount.abs().sum())
        purity = abs(net) / gross if gross > 0 else 0.0
        if direction != np.sign(change) and kind == "rate":
            # an offset moves against the net by definition; its rate is like for like,
            # while mix effects that cancel out within a breakdown are still churn
            purity = 1.0
        if kind == "mix":
            along = amount.clip(-abs(net), abs(net)) * direction
            share = along / size if size else amount * 0.0
        else:
            # of the change left once overall volume is set aside (when that is still a
            # change this way)
            rest = (change - volume) * direction if direction == np.sign(change) else size
            share = amount * direction / rest if rest > 0 else amount * 0.0
        excess = (share.clip(upper=1.0) - parts["weight"]).clip(lower=0.0)
        z = parts[f"z_{kind}"]
        evidence = ((z.abs() - 1.0) / (SIGNIFICANT_Z - 1.0)).clip(0.0, 1.0)
        ok = (np.sign(amount) == direction) & (direction != 0)
        score = (excess * purity * card * evidence).where(ok, 0.0)
        better = score > best
        best = best.where(~better, score)
        effect = effect.where(~better, kind)
        z_best = z_best.where(~better, z)
        purity_best = purity_best.where(~better, purity)
    return effect, z_best, purity_best, best

