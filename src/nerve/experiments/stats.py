"""The statistics of experiments, as pure functions over per-variant summaries.

Everything takes sufficient statistics (counts, means, variances, covariances), so the
warehouse does the heavy aggregation and these functions stay exact and cheap.

- Welch's t-test for the absolute difference and, with the delta method's standard error
  of the log ratio of means, for the relative lift: its interval is built on
  ``log(mean_t / mean_c)`` and turned back, so it never reaches below -100% (its p-value
  and interval agree); the delta method for ratio metrics (Deng et al. 2018, "Applying the
  Delta Method in Metric Analytics").
- A count of zero in a variant (no failed payment among its payments): the delta method's
  variance is then 0 and its interval has no width, so the lift is Gart's add-half log
  ratio instead (statsmodels' default ``log-adjusted`` for a ratio of proportions).
- CUPED (Deng, Xu, Kohavi, Walker 2013): a pre-exposure covariate removes the variance it
  explains; theta is pooled across variants, so the adjustment is unbiased.
- Confidence sequences (Howard, Ramdas, McAuliffe, Sekhon 2021; the asymptotic form of
  Waudby-Smith et al. 2021): intervals valid at every look, so peeking is safe.
- A Bayesian view with a flat prior on the log ratio of means (the interval's scale):
  chance to beat control and expected loss.
- Sample-ratio mismatch (chi-square against configured weights) and multiple-testing
  corrections (Holm, Benjamini-Hochberg).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "Effect",
    "Summary",
    "add_half",
    "bayes",
    "benjamini_hochberg",
    "confidence_sequence",
    "cuped_theta",
    "holm",
    "lift_sequence",
    "ratio_summary",
    "sample_size",
    "srm_p_value",
    "welch",
]


@dataclass(frozen=True, slots=True)
class Summary:
    """A variant's per-unit values: count, mean and (sample, ddof=1) variance."""

    n: int
    mean: float
    var: float

    @classmethod
    def of(cls, values: np.ndarray | list[float]) -> Summary:
        arr = np.asarray(values, dtype=float)
        return cls(int(arr.size), float(arr.mean()) if arr.size else 0.0,
                   float(arr.var(ddof=1)) if arr.size > 1 else 0.0)

    @property
    def std(self) -> float:
        return math.sqrt(self.var)


@dataclass(frozen=True, slots=True)
class Effect:
    """Treatment versus control."""

    diff: float  # absolute: mean_t - mean_c
    diff_low: float
    diff_high: float
    lift: float  # relative: mean_t / mean_c - 1 (nan when the control mean is 0)
    lift_se: float  # the delta method's, of the lift itself
    ci_low: float  # of the relative lift
    ci_high: float
    p_value: float  # two-sided, of the relative lift (Welch's degrees of freedom)
    #: the delta method's standard error of log(mean_t / mean_c), which the intervals and
    #: the p-value use; nan where a mean is not positive (they then use ``lift_se``)
    log_se: float = math.nan


def welch(control: Summary, treatment: Summary, alpha: float = 0.05) -> Effect:
    """Welch's t on the difference of means and on the relative lift.

    The relative lift's interval is built on the log of the ratio of means (delta method)
    and turned back with ``exp(x) - 1``, so it is asymmetric and stays above -100%, as a
    metric that cannot be negative must. Where a mean is not positive (a metric that can be
    negative) there is no log, and the interval is the lift plus or minus its delta-method
    standard error. The p-value tests the lift with the same standard error and degrees of
    freedom as its interval, so it is below ``alpha`` exactly when the interval excludes
    zero. Where the lift is undefined (a control mean of 0) it is the absolute
    difference's.
    """
    from scipy import stats  # noqa: PLC0415 - SciPy loads on first use
    vc = control.var / control.n if control.n else math.inf
    vt = treatment.var / treatment.n if treatment.n else math.inf
    diff = treatment.mean - control.mean
    se = math.sqrt(vc + vt)
    lift, lift_se = _relative(control, treatment)
    log_se = _log_relative_se(control, treatment)
    # the statistic the lift's interval and p-value rest on, and its standard error
    center, center_se = ((math.log1p(lift), log_se) if math.isfinite(log_se)
                         else (lift, lift_se))
    if se == 0 or not math.isfinite(se):
        p = 1.0 if diff == 0 or not math.isfinite(se) else 0.0
        half = 0.0 if math.isfinite(se) else math.inf
        quantile = float(stats.norm.ppf(1 - alpha / 2))
    else:
        df = (vc + vt) ** 2 / (
            (vc**2 / (control.n - 1) if control.n > 1 else 0.0)
            + (vt**2 / (treatment.n - 1) if treatment.n > 1 else 0.0)
        ) if (control.n > 1 or treatment.n > 1) else 1.0
        quantile = float(stats.t.ppf(1 - alpha / 2, df))
        half = quantile * se
        t = center / center_se if math.isfinite(center) and center_se > 0 else diff / se
        p = float(2 * stats.t.sf(abs(t), df))
    low, high = _back(center - quantile * center_se, center + quantile * center_se, log_se)
    return Effect(diff, diff - half, diff + half, lift, lift_se, low, high, p, log_se)


def add_half(control: tuple[float, float, float], treatment: tuple[float, float, float],
             alpha: float = 0.05) -> Effect:
    """The relative lift of a ratio of counts where one variant counted none, on Gart's
    add-half log ratio (Gart and Zweifel 1967; statsmodels' ``log-adjusted``).

    Each variant is ``(events, denominator, log_var)``: the total count of the numerator
    (failed payments), the total of the denominator (payments), and the delta method's
    variance of the log of its rate (0 for the variant that counted none). With a count of
    0 the rate's estimate sits on its boundary and the delta method's variance is 0, so
    its interval had no width at -100%. Here half an event is added to each variant's count
    and to its denominator; the lift is that of the adjusted rates, and the variance of
    each log rate is the count's, ``1/(x + 1/2) - 1/(d + 1/2)``, or the delta method's
    where it is larger (events clustered within units). The interval and the p-value use
    the normal quantile, as statsmodels does; the rest (always-valid interval, chance to
    win) reads ``log_se`` as with any other lift. The absolute difference is not here:
    ``welch``'s stands.
    """
    from scipy import stats  # noqa: PLC0415 - SciPy loads on first use
    rates, var = [], 0.0
    for events, denominator, log_var in (control, treatment):
        x, d = events + 0.5, denominator + 0.5
        rates.append(x / d)
        # Poisson's 1/x where the count exceeds its denominator (events per session)
        count_var = 1 / x - 1 / d if x <= d else 1 / x
        var += max(count_var, log_var if math.isfinite(log_var) else 0.0)
    center, log_se = math.log(rates[1] / rates[0]), math.sqrt(var)
    quantile = float(stats.norm.ppf(1 - alpha / 2))
    lift = math.expm1(center)
    p = float(2 * stats.norm.sf(abs(center) / log_se))
    return Effect(math.nan, math.nan, math.nan, lift, (1 + lift) * log_se,
                  math.expm1(center - quantile * log_se), math.expm1(center + quantile * log_se),
                  p, log_se)


def lift_sequence(effect: Effect, n: int, alpha: float = 0.05,
                  planned_n: int | None = None) -> tuple[float, float]:
    """The always-valid interval of ``effect``'s relative lift, on the scale of its fixed
    interval: the log ratio of means where both are positive, the lift itself otherwise."""
    if math.isfinite(effect.log_se):
        low, high = confidence_sequence(math.log1p(effect.lift), effect.log_se, n, alpha,
                                        planned_n)
        return _back(low, high, effect.log_se)
    return confidence_sequence(effect.lift, effect.lift_se, n, alpha, planned_n)


def _back(low: float, high: float, log_se: float) -> tuple[float, float]:
    """An interval of the log ratio turned into one of the relative lift (as is, when it
    was built on the lift itself)."""
    if math.isfinite(log_se):
        return math.expm1(low), math.expm1(high)
    return low, high


def _relative(control: Summary, treatment: Summary) -> tuple[float, float]:
    """Relative lift and its delta-method standard error (independent samples)."""
    mc, mt = control.mean, treatment.mean
    if mc == 0 or not control.n or not treatment.n:
        return math.nan, math.nan
    var = (treatment.var / treatment.n) / mc**2 + (mt**2) * (control.var / control.n) / mc**4
    return mt / mc - 1, math.sqrt(var)


def _log_relative_se(control: Summary, treatment: Summary) -> float:
    """The delta-method standard error of log(mean_t / mean_c); nan unless both are positive."""
    mc, mt = control.mean, treatment.mean
    if not (control.n and treatment.n and mc > 0 and mt > 0):
        return math.nan
    return math.sqrt(treatment.var / treatment.n / mt**2 + control.var / control.n / mc**2)


def ratio_summary(num_mean: float, num_var: float, den_mean: float, den_var: float,
                  cov: float, n: int) -> Summary:
    """A ratio metric (sum of numerators / sum of denominators over units) as a Summary.

    The returned ``var`` is n times the delta-method variance of the ratio, so that
    ``var / n`` is the ratio's squared standard error, as ``welch`` expects.
    """
    if den_mean == 0:
        return Summary(n, math.nan, math.nan)
    r = num_mean / den_mean
    var_r = (num_var - 2 * r * cov + r**2 * den_var) / (den_mean**2)
    return Summary(n, r, max(var_r, 0.0))


def cuped_theta(cov_xy: float, var_x: float) -> float:
    """CUPED's theta: the regression slope of the metric on its pre-exposure covariate."""
    return cov_xy / var_x if var_x > 0 else 0.0


def confidence_sequence(estimate: float, se: float, n: int, alpha: float = 0.05,
                        planned_n: int | None = None) -> tuple[float, float]:
    """An asymptotic confidence sequence around ``estimate``: valid under continuous peeking.

    ``se`` is the estimate's standard error with ``n`` units; the boundary is a normal
    mixture tuned (rho) to be tightest at ``planned_n`` units (default: ``n``).
    """
    if n <= 0 or not math.isfinite(se):
        return -math.inf, math.inf
    sigma = se * math.sqrt(n)
    target = planned_n or n
    rho2 = (-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / target
    half = sigma * math.sqrt(
        2 * (n * rho2 + 1) / (n**2 * rho2) * math.log(math.sqrt(n * rho2 + 1) / alpha)
    )
    return estimate - half, estimate + half


def bayes(lift: float, lift_se: float, log_se: float = math.nan, *,
          up_is_good: bool = True) -> tuple[float, float]:
    """(chance that treatment beats control, expected relative loss if shipped).

    A flat prior on the same scale as ``welch``'s interval: where ``log_se`` is finite
    (both means positive) the posterior of ``log(mean_t / mean_c)`` is
    ``N(log(1 + lift), log_se^2)``, so the lift ``exp(x) - 1`` never falls below -100% and
    the chance agrees with the interval (above ``1 - alpha/2`` about when the interval
    excludes zero); otherwise (a metric that can be negative) the lift itself is normal,
    ``N(lift, lift_se^2)``. The loss is the expected relative change the wrong way,
    ``E[max(0, -lift)]`` (``E[max(0, lift)]`` when down is good).

    >>> chance, loss = bayes(0.02, 0.01, 0.0098)
    >>> round(chance, 3), round(loss, 5)
    (0.978, 8e-05)
    """
    from scipy import stats  # noqa: PLC0415 - SciPy loads on first use
    if not math.isfinite(lift):
        return math.nan, math.nan
    sign = 1.0 if up_is_good else -1.0
    if math.isfinite(log_se):
        if log_se <= 0:
            return float(sign * lift > 0), max(0.0, -sign * lift)
        m, s = math.log1p(lift), log_se
        # E[exp(x); x > 0] and E[exp(x); x < 0] for x ~ N(m, s^2), in logs (a wide s
        # would overflow exp(m + s^2 / 2) on its own)
        above = math.exp(m + s * s / 2 + float(stats.norm.logcdf((m + s * s) / s)))
        below = math.exp(m + s * s / 2 + float(stats.norm.logcdf(-(m + s * s) / s)))
        up = float(stats.norm.cdf(m / s))
        if up_is_good:
            return up, max(0.0, (1 - up) - below)  # E[1 - exp(x); x < 0]
        return 1 - up, max(0.0, above - up)  # E[exp(x) - 1; x > 0]
    if not math.isfinite(lift_se) or lift_se <= 0:
        return float(sign * lift > 0), max(0.0, -sign * lift)
    z = sign * lift / lift_se
    chance = float(stats.norm.cdf(z))
    loss = float(lift_se * stats.norm.pdf(z) - sign * lift * stats.norm.cdf(-z))
    return chance, loss


def srm_p_value(counts: list[int], weights: list[float]) -> float:
    """Chi-square goodness of fit of observed units per variant to the configured weights."""
    from scipy import stats  # noqa: PLC0415 - SciPy loads on first use
    total = sum(counts)
    if total == 0 or len(counts) < 2:
        return 1.0
    w = np.asarray(weights, dtype=float)
    expected = w / w.sum() * total
    return float(stats.chisquare(np.asarray(counts, dtype=float), expected).pvalue)


def holm(p_values: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (family-wise error), in the input's order."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def benjamini_hochberg(p_values: list[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (false discovery rate), in the input's order."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i], reverse=True)
    adjusted = [0.0] * m
    running = 1.0
    for k, i in enumerate(order):
        rank = m - k
        running = min(running, p_values[i] * m / rank)
        adjusted[i] = min(1.0, running)
    return adjusted


def sample_size(baseline_mean: float, baseline_std: float, mde: float, alpha: float = 0.05,
                power: float = 0.8) -> int:
    """Units per variant to detect a relative effect ``mde`` (0.05 = 5%) with a two-sided test."""
    from scipy import stats  # noqa: PLC0415 - SciPy loads on first use
    delta = abs(mde * baseline_mean)
    if delta == 0:
        return 0
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    return math.ceil(float(2 * (z * baseline_std / delta) ** 2))
