"""Reading an experiment: per-unit values in, one result per variant and metric out.

Pure: takes numpy arrays of per-unit values, so every number here is testable against an
independent computation. Each metric is a ratio of per-unit sums, ``num / den`` (``den`` is
1 for a plain per-unit metric), analysed through its linearisation
``u_i = num_i - R * den_i`` (the delta method), which CUPED then adjusts with the same
metric measured before the unit's first exposure.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from nerve.experiments.stats import (
    Effect,
    Summary,
    add_half,
    bayes,
    benjamini_hochberg,
    holm,
    lift_sequence,
    sample_size,
    srm_p_value,
    welch,
)

__all__ = ["ArmData", "MetricData", "Readout", "ResultRow", "analyze"]

#: flag a sample-ratio mismatch or a CUPED covariate imbalance below this p-value
HEALTH_ALPHA = 0.001
#: the days whose new units give the pace of a test that is not conclusive yet: the
#: average since the start overstates it once the eligible population is used up
PACE_DAYS = 7
#: units each variant needs before a readout decides anything (SHIP or STOP): the
#: intervals rest on the normal approximation of each arm's mean, which a handful of
#: units does not support (three equal values per arm made a zero-width interval, SHIP)
MIN_UNITS = 100


@dataclass(frozen=True)
class ArmData:
    """Per-unit values of one metric in one variant: after exposure and before it."""

    num: np.ndarray
    den: np.ndarray
    pre_num: np.ndarray
    pre_den: np.ndarray
    #: the unit ids, in the arrays' order (for breakdowns)
    ids: tuple[str, ...] = ()

    @property
    def n(self) -> int:
        return int(self.num.size)

    def subset(self, keep: np.ndarray) -> ArmData:
        """The units where ``keep`` (a boolean mask) is true."""
        return ArmData(self.num[keep], self.den[keep], self.pre_num[keep], self.pre_den[keep],
                       tuple(i for i, k in zip(self.ids, keep, strict=True) if k))


@dataclass(frozen=True)
class MetricData:
    name: str
    role: str  # primary | secondary | guardrail
    up_is_good: bool
    arms: dict[str, ArmData]
    ratio: bool = False


@dataclass
class ResultRow:
    """One variant and metric; the control's row carries its level, not a lift."""

    experiment: str
    variant: str
    metric: str
    role: str
    units: int
    mean: float | None
    std: float | None
    lift: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    p_value_adjusted: float | None = None
    seq_ci_low: float | None = None
    seq_ci_high: float | None = None
    cuped_lift: float | None = None
    cuped_ci_low: float | None = None
    cuped_ci_high: float | None = None
    cuped_imbalance_p: float | None = None
    chance_to_win: float | None = None
    expected_loss: float | None = None
    srm_p_value: float | None = None
    significant: bool = False
    #: "no units" (none exposed) or "no events" (no unit has a value of the metric): the
    #: row has no lift, interval, p-value or chance, where a variant of zeros read as a
    #: certain -100% (an interval of zero width)
    note: str | None = None
    #: set on breakdown rows: the dimension and the unit's value at first exposure
    dimension: str | None = None
    value: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: _clean(v) for k, v in asdict(self).items()}


@dataclass
class Readout:
    """The whole analysis: rows, health checks, and the decision."""

    rows: list[ResultRow]
    srm_p_value: float
    units: dict[str, int]
    excluded_multiple_variants: int
    decision: str
    reasons: list[str] = field(default_factory=list)
    planned_units_per_variant: int | None = None
    #: the same rows per value of a dimension (``analyze_experiment(by=...)``)
    breakdown: list[ResultRow] = field(default_factory=list)
    #: exposures of the experiment held in the quarantine, by event: not counted above
    quarantined_exposures: dict[str, int] = field(default_factory=dict)
    #: units exposed to a variant key the experiment's file lacks, by that key: not counted
    unknown_variants: dict[str, int] = field(default_factory=dict)
    #: what makes the readout less than the whole truth (quarantined exposures, unknown
    #: variant keys)
    warnings: list[str] = field(default_factory=list)


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, np.floating):
        return _clean(float(value))
    return value


def _ratio_parts(arm: ArmData) -> tuple[float, np.ndarray, float]:
    """(R, linearised per-unit deviations u, mean denominator)."""
    den_mean = float(arm.den.mean()) if arm.n else 0.0
    if arm.n == 0 or den_mean == 0:
        return math.nan, np.zeros(arm.n), den_mean
    r = float(arm.num.sum() / arm.den.sum())
    return r, arm.num - r * arm.den, den_mean


def _summary(arm: ArmData) -> tuple[Summary, np.ndarray]:
    r, u, den_mean = _ratio_parts(arm)
    if not math.isfinite(r):
        return Summary(arm.n, math.nan, math.nan), u
    var = float(u.var(ddof=1)) / den_mean**2 if arm.n > 1 else 0.0
    return Summary(arm.n, r, var), u


def _covariate(arm: ArmData, pooled_pre_ratio: float) -> np.ndarray:
    if arm.pre_den.sum() == 0:
        return arm.pre_num.astype(float)
    return arm.pre_num - pooled_pre_ratio * arm.pre_den


def _cuped(control: ArmData, treatment: ArmData, alpha: float) -> tuple[Any, float]:
    """CUPED-adjusted effect (theta pooled over both arms) and the covariate imbalance p."""
    pre_den = control.pre_den.sum() + treatment.pre_den.sum()
    pooled = float((control.pre_num.sum() + treatment.pre_num.sum()) / pre_den) if pre_den else 0
    adjusted = []
    xs = []
    us = []
    for arm in (control, treatment):
        summary, u = _summary(arm)
        x = _covariate(arm, pooled)
        adjusted.append(summary)
        xs.append(x)
        us.append(u)
    x_all = np.concatenate(xs)
    u_all = np.concatenate(us)
    var_x = float(x_all.var(ddof=1)) if x_all.size > 1 else 0.0
    theta = float(np.cov(u_all, x_all, ddof=1)[0, 1] / var_x) if var_x > 0 else 0.0
    x_mean = float(x_all.mean()) if x_all.size else 0.0
    summaries = []
    for arm, summary, u, x in zip((control, treatment), adjusted, us, xs, strict=True):
        den_mean = float(arm.den.mean()) if arm.n else 0.0
        if not math.isfinite(summary.mean) or den_mean == 0:
            summaries.append(summary)
            continue
        mean = summary.mean - theta * (float(x.mean()) - x_mean) / den_mean
        resid = u - theta * (x - float(x.mean()))
        var = float(resid.var(ddof=1)) / den_mean**2 if arm.n > 1 else 0.0
        summaries.append(Summary(arm.n, mean, var))
    imbalance = welch(Summary.of(xs[0]), Summary.of(xs[1])).p_value if var_x > 0 else 1.0
    return welch(summaries[0], summaries[1], alpha), imbalance


def analyze(key: str, control: str, variants: list[str], weights: list[float],
            metrics: list[MetricData], *, alpha: float = 0.05, correction: str = "holm",
            mde: float = 0.05, power: float = 0.8, excluded: int = 0,
            pace: float | None = None, ended: datetime | None = None) -> Readout:
    """Every statistic of the experiment, the health checks and a decision.

    ``pace``: new units per variant a day lately (``recent_pace``), for the days a
    test that is not conclusive yet still needs; ``ended``: the experiment's ``end``, when
    it is past (no new units come: the readout says so instead of counting days).
    """
    units = {v: next((m.arms[v].n for m in metrics if v in m.arms), 0) for v in variants}
    srm = srm_p_value([units[v] for v in variants], weights)
    # every treatment is compared with the control: with several, the always-valid
    # intervals (which decide) share alpha among them (Bonferroni), so an experiment of
    # four null variants ships one no more often than alpha
    seq_alpha = alpha / max(1, sum(1 for v in variants if v != control))
    rows: list[ResultRow] = []
    planned: int | None = None
    adjusted_notes: list[str] = []
    for metric in metrics:
        base = metric.arms.get(control)
        if base is None:
            continue
        base_summary, _ = _summary(base)
        rows.append(ResultRow(key, control, metric.name, metric.role, base.n,
                              base_summary.mean, base_summary.std, srm_p_value=srm))
        if metric.role == "primary" and math.isfinite(base_summary.mean):
            # sized for the alpha each treatment's comparison gets, as the plan is
            planned = sample_size(base_summary.mean, base_summary.std, mde, seq_alpha, power)
        rows[-1].note = _no_data(base, metric.ratio)
        for variant in variants:
            if variant == control or variant not in metric.arms:
                continue
            arm = metric.arms[variant]
            summary, _ = _summary(arm)
            note = _no_data(arm, metric.ratio)
            if note is not None:
                rows.append(ResultRow(key, variant, metric.name, metric.role, arm.n,
                                      summary.mean, summary.std, srm_p_value=srm, note=note))
                continue
            effect = welch(base_summary, summary, alpha)
            cuped, imbalance = _cuped(base, arm, alpha)
            if metric.ratio and _zero_count(base, arm):
                # a rate of 0 on a boundary: the delta method's interval had no width
                adjusted = _add_half(base, base_summary, arm, summary, alpha)
                effect = dataclasses.replace(
                    adjusted, diff=effect.diff, diff_low=effect.diff_low,
                    diff_high=effect.diff_high)
                # CUPED adjusts the delta method's estimate, whose interval has no width
                cuped = dataclasses.replace(cuped, lift=math.nan, ci_low=math.nan,
                                            ci_high=math.nan)
                none = [v for v, a in ((control, base), (variant, arm)) if not a.num.any()]
                adjusted_notes.append(
                    f"{variant} on {metric.name}: {' and '.join(none)} counted none, so "
                    "its lift and interval add half an event to each variant (Gart's "
                    "add-half log ratio; a rate of 0 has no delta-method interval)")
            total = base.n + arm.n
            seq = lift_sequence(effect, total, seq_alpha,
                                planned_n=2 * planned if planned else None)
            chance, loss = bayes(effect.lift, effect.lift_se, effect.log_se,
                                 up_is_good=metric.up_is_good)
            rows.append(ResultRow(
                key, variant, metric.name, metric.role, arm.n, summary.mean, summary.std,
                lift=effect.lift, ci_low=effect.ci_low, ci_high=effect.ci_high,
                p_value=effect.p_value, seq_ci_low=seq[0], seq_ci_high=seq[1],
                cuped_lift=cuped.lift, cuped_ci_low=cuped.ci_low, cuped_ci_high=cuped.ci_high,
                cuped_imbalance_p=imbalance, chance_to_win=chance, expected_loss=loss,
                srm_p_value=srm,
            ))
    _correct(rows, control, correction, alpha)
    decision, reasons = _decide(rows, metrics, control, srm, units, planned, pace, alpha,
                                seq_alpha, mde, ended)
    return Readout(rows, srm, units, excluded, decision, reasons, planned,
                   warnings=_no_data_warnings(rows) + list(dict.fromkeys(adjusted_notes)))


def _no_data(arm: ArmData, ratio: bool) -> str | None:
    """Why an arm has no effect to read: no unit exposed, or not one event of the metric
    among its units (all zeros: the normal approximation then gave an interval of zero
    width around -100%, and the likelier story is a variant that does not send them). A
    ratio metric with a denominator but no numerator (no failed payments among the
    payments) measured a rate of 0: that is data."""
    if arm.n == 0:
        return "no units"
    if not arm.num.any() and not (ratio and arm.den.any()):
        return "no events"
    return None


def _zero_count(control: ArmData, treatment: ArmData) -> bool:
    """Whether one variant of a ratio of counts counted no event (failed payments among
    its payments, conversions among its visits) while both have a denominator."""
    if not (control.den.any() and treatment.den.any()):
        return False
    if control.num.any() and treatment.num.any():
        return False
    return all(np.array_equal(a.num, np.round(a.num)) for a in (control, treatment))


def _add_half(control: ArmData, control_summary: Summary, treatment: ArmData,
              treatment_summary: Summary, alpha: float) -> Effect:
    """``add_half`` on the variants' totals, with each one's delta-method log variance."""
    def totals(arm: ArmData, summary: Summary) -> tuple[float, float, float]:
        log_var = (summary.var / summary.n / summary.mean**2
                   if summary.n and summary.mean > 0 else 0.0)
        return float(arm.num.sum()), float(arm.den.sum()), log_var

    return add_half(totals(control, control_summary), totals(treatment, treatment_summary),
                    alpha)


def _no_data_warnings(rows: list[ResultRow]) -> list[str]:
    """One line per variant whose metrics have no units or no events."""
    warnings = []
    for variant in dict.fromkeys(row.variant for row in rows):
        mine = [row for row in rows if row.variant == variant and row.note is not None]
        if any(row.note == "no units" for row in mine):
            warnings.append(f"{variant}: no units exposed, so no result")
        elif mine:
            metrics = ", ".join(row.metric for row in mine)
            warnings.append(f"{variant}: no events of {metrics} among its {mine[0].units:,} "
                            "units, so no lift to read (is the variant sending them?)")
    return warnings


def _correct(rows: list[ResultRow], control: str, correction: str, alpha: float) -> None:
    """Adjust the p-values over the family of every treatment variant and metric: with
    several variants, each compared with the control is one more chance of a false
    positive, as each metric is."""
    group = [row for row in rows if row.variant != control and row.p_value is not None
             and math.isfinite(row.p_value)]
    p = [r.p_value or 1.0 for r in group]
    if correction == "holm":
        adjusted = holm(p)
    elif correction == "bh":
        adjusted = benjamini_hochberg(p)
    else:
        adjusted = p
    for row, value in zip(group, adjusted, strict=True):
        row.p_value_adjusted = value
        row.significant = value < alpha


def _decide(rows: list[ResultRow], metrics: list[MetricData], control: str, srm: float,
            units: dict[str, int], planned: int | None, pace: float | None,
            alpha: float, seq_alpha: float, mde: float,
            ended: datetime | None) -> tuple[str, list[str]]:
    reasons: list[str] = []
    if srm < HEALTH_ALPHA:
        counts = ", ".join(f"{v} {n:,}" for v, n in units.items())
        return "investigate", [f"sample ratio mismatch (p = {srm:.2g}; units: {counts}): "
                               "assignment or exposure logging is broken, so no result is "
                               "trustworthy until it is fixed"]
    good = {m.name: m.up_is_good for m in metrics}
    primary = [r for r in rows if r.role == "primary" and r.variant != control
               and r.seq_ci_low is not None and r.seq_ci_high is not None
               and r.lift is not None]
    reasons.extend(
        f"{row.metric}: the pre-exposure covariate differs between variants "
        f"(p = {row.cuped_imbalance_p:.2g}); prefer the unadjusted result"
        for row in rows
        if row.cuped_imbalance_p is not None and row.cuped_imbalance_p < HEALTH_ALPHA)
    harmful = [r for r in rows if r.role == "guardrail" and r.variant != control
               and r.significant and r.lift is not None
               and (r.lift > 0) != good.get(r.metric, True)]
    reasons.extend(f"guardrail {row.metric} got worse in {row.variant} "
                   f"({row.lift or 0:+.1%}, adjusted p = {row.p_value_adjusted or 0:.2g})"
                   for row in harmful)

    def sign(row: ResultRow) -> float:  # +1 when up is good, -1 when down is
        return 1.0 if good.get(row.metric, True) else -1.0

    def verdict(row: ResultRow, word: str) -> str:
        return (f"{row.variant} is {word} on {row.metric}: {row.lift:+.1%} (always-valid "
                f"{100 * (1 - seq_alpha):.4g}% interval {row.seq_ci_low:+.1%} to "
                f"{row.seq_ci_high:+.1%})")

    have = min(units.values()) if units else 0
    if have < MIN_UNITS:
        # too few units for the intervals to mean anything: no verdict on any variant
        reasons.insert(0, f"too few units to decide: {have:,} in the smallest variant, and a "
                          f"decision needs at least {MIN_UNITS} per variant (the intervals "
                          "rest on a normal approximation that fewer do not support)")
        primary = []
    # every variant is judged, whatever its place in the file: one variant worse than
    # control does not stop an experiment where another is better
    better = sorted((r for r in primary if _on_side(r, sign(r))),
                    key=lambda r: -sign(r) * (r.lift or 0))
    worse = [r for r in primary if _on_side(r, -sign(r))]
    if better:
        reasons[:0] = [verdict(r, "better") for r in better] + [verdict(r, "worse")
                                                              for r in worse]
        return ("investigate" if harmful else "ship"), reasons
    if worse and {r.variant for r in worse} == {r.variant for r in primary}:
        reasons[:0] = [verdict(r, "worse") for r in worse]
        return "stop", reasons
    reasons[:0] = [verdict(r, "worse") + ": drop it; the others are not conclusive yet"
                   for r in worse]
    if planned:
        planned = max(planned, MIN_UNITS)  # a big effect's small plan: still no less
    reached = planned is not None and have >= planned
    reasons.extend(
        f"{row.variant} on {row.metric}: {row.lift or 0:+.1%} looks significant in the "
        f"fixed-horizon test (p = {row.p_value or 0:.2g}), but that test " + (
            "holds only if this is the first look at the data"
            if reached else "only holds at the planned sample size")
        + "; the always-valid interval still includes no change"
        for row in primary
        if row.p_value is not None and row.p_value < alpha and row not in worse)
    if planned:
        if reached:
            # an effect of the MDE is ruled out only when the interval excludes it; the
            # plan sizes a fixed-horizon test, and the wider always-valid interval can
            # still hold it at the planned sample
            open_ = [r for r in primary if r not in worse and _reach(r, sign(r)) >= mde]
            if not open_:
                reasons.insert(0, f"no effect of at least the minimum detectable size "
                                  f"({mde:+.1%}) on the primary metric after {have:,} units per "
                                  f"variant (planned {planned:,}): the always-valid interval "
                                  "excludes it")
                return "stop", reasons
            reasons[:0] = [
                f"{row.variant} on {row.metric}: the planned {planned:,} units per variant are "
                f"reached (now {have:,}), but the always-valid interval ({row.seq_ci_low:+.1%} "
                f"to {row.seq_ci_high:+.1%}) holds both no change and the minimum detectable "
                f"effect ({sign(row) * mde:+.1%}): keep running until it excludes one of "
                "them (or stop, if a smaller effect is not worth the wait)"
                for row in open_]
            return "keep running", reasons
        more = planned - have
        if ended is not None:
            # an end date is the midnight after the test's last day: name that day
            when = (f"after {ended - timedelta(days=1):%Y-%m-%d}"
                    if (ended.hour, ended.minute, ended.second) == (0, 0, 0)
                    else f"at {ended:%Y-%m-%d %H:%M %Z}")
            reasons.insert(0, f"not conclusive, and the experiment ended {when} with {have:,} "
                              f"of the planned {planned:,} units per variant: move its `end` "
                              "later to keep running")
        elif pace is not None and pace > 0:
            reasons.insert(0, f"not yet conclusive: about {math.ceil(more / pace)} more days "
                              f"for {planned:,} units per variant (now {have:,}, and "
                              f"{pace:.3g} new a day over the last {PACE_DAYS} days)")
        elif pace == 0:
            reasons.insert(0, f"not yet conclusive, and no new units in the last {PACE_DAYS} "
                              f"days: at that pace the planned {planned:,} units per variant "
                              f"(now {have:,}) are never reached")
        else:
            reasons.insert(0, f"not yet conclusive: {more:,} more units per variant needed "
                              f"(planned {planned:,}, now {have:,})")
    else:
        reasons.insert(0, "not yet conclusive")
    return "keep running", reasons


def _reach(row: ResultRow, sign: float) -> float:
    """How large a change in the direction ``sign`` the always-valid interval still holds."""
    return (row.seq_ci_high or 0.0) if sign > 0 else -(row.seq_ci_low or 0.0)


def _on_side(row: ResultRow, sign: float) -> bool:
    """Whether the always-valid interval lies entirely on the side ``sign`` (+1 up, -1
    down) of no change."""
    low, high = row.seq_ci_low or 0.0, row.seq_ci_high or 0.0
    return low > 0 if sign > 0 else high < 0
