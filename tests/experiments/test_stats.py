"""Each statistic against an independent computation (scipy, statsmodels) or simulation."""

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import confint_proportions_2indep

from nerve.experiments.stats import (
    Summary,
    add_half,
    bayes,
    benjamini_hochberg,
    confidence_sequence,
    cuped_theta,
    holm,
    lift_sequence,
    ratio_summary,
    sample_size,
    srm_p_value,
    welch,
)

RNG = np.random.default_rng(7)


def test_welch_matches_scipy() -> None:
    control = RNG.normal(10, 3, 400)
    treatment = RNG.normal(10.6, 4, 350)
    effect = welch(Summary.of(control), Summary.of(treatment))
    reference = stats.ttest_ind(treatment, control, equal_var=False)
    low, high = reference.confidence_interval(0.95)
    assert effect.diff_low == pytest.approx(low, rel=1e-9)
    assert effect.diff_high == pytest.approx(high, rel=1e-9)
    assert effect.lift == pytest.approx(treatment.mean() / control.mean() - 1)


def test_the_p_value_agrees_with_the_relative_interval_and_holds_its_level() -> None:
    """p < alpha exactly when the relative interval excludes 0; under no effect, ~alpha.

    Skewed values at the sample sizes of small experiments, where a Welch p of the
    absolute difference disagreed with the delta-method interval in 7% of readouts.
    """
    disagreements, false_positives, runs = 0, 0, 2000
    for _ in range(runs):
        control = Summary.of(RNG.exponential(1.0, 150))
        effect = welch(control, Summary.of(RNG.exponential(1.2, 150)))
        excludes_zero = effect.ci_low > 0 or effect.ci_high < 0
        disagreements += (effect.p_value < 0.05) != excludes_zero
        false_positives += welch(control, Summary.of(RNG.exponential(1.0, 150))).p_value < 0.05
    assert disagreements == 0
    assert false_positives / runs == pytest.approx(0.05, abs=0.015)


def test_without_a_relative_lift_the_p_value_is_welchs_of_the_difference() -> None:
    control = np.zeros(50)
    treatment = RNG.normal(0.3, 1.0, 60)
    effect = welch(Summary.of(control), Summary.of(treatment))
    assert math.isnan(effect.lift)
    reference = stats.ttest_ind(treatment, control, equal_var=False)
    assert effect.p_value == pytest.approx(reference.pvalue, rel=1e-9)


def test_relative_lift_standard_error_matches_simulation() -> None:
    lifts, ses = [], []
    for _ in range(2000):
        c = RNG.exponential(5.0, 500)
        t = RNG.exponential(5.5, 500)
        effect = welch(Summary.of(c), Summary.of(t))
        lifts.append(effect.lift)
        ses.append(effect.lift_se)
    assert np.mean(ses) == pytest.approx(np.std(lifts), rel=0.05)
    assert np.mean(lifts) == pytest.approx(0.1, abs=0.01)


def test_ratio_metric_delta_method_matches_simulation() -> None:
    ratios, ses = [], []
    for _ in range(2000):
        sessions = RNG.poisson(3, 400) + 1
        orders = RNG.binomial(sessions, 0.2)
        cov = np.cov(orders, sessions, ddof=1)
        summary = ratio_summary(orders.mean(), cov[0, 0], sessions.mean(), cov[1, 1],
                                cov[0, 1], 400)
        ratios.append(summary.mean)
        ses.append(math.sqrt(summary.var / summary.n))
        assert summary.mean == pytest.approx(orders.sum() / sessions.sum())
    assert np.mean(ses) == pytest.approx(np.std(ratios), rel=0.06)


def test_cuped_reduces_variance_by_squared_correlation() -> None:
    # Deng et al. 2013: Var(Y_cuped) = Var(Y) * (1 - rho^2)
    pre = RNG.normal(20, 5, 20000)
    post = 0.8 * pre + RNG.normal(0, 3, 20000)
    cov = np.cov(post, pre, ddof=1)
    theta = cuped_theta(cov[0, 1], cov[1, 1])
    adjusted = post - theta * (pre - pre.mean())
    rho = np.corrcoef(post, pre)[0, 1]
    assert adjusted.var(ddof=1) == pytest.approx(post.var(ddof=1) * (1 - rho**2), rel=1e-9)
    assert adjusted.mean() == pytest.approx(post.mean())
    assert cuped_theta(1.0, 0.0) == 0.0


def test_confidence_sequence_is_safe_under_peeking() -> None:
    """Peek after every 100 units: the fixed CI is fooled far more often than alpha."""
    alpha, looks, runs = 0.05, 20, 400
    fixed_errors = seq_errors = 0
    for _ in range(runs):
        data = RNG.normal(0, 1, looks * 100)
        fixed_hit = seq_hit = False
        for k in range(1, looks + 1):
            x = data[: k * 100]
            se = x.std(ddof=1) / math.sqrt(x.size)
            z = stats.norm.ppf(1 - alpha / 2)
            if abs(x.mean()) > z * se:
                fixed_hit = True
            low, high = confidence_sequence(x.mean(), se, x.size, alpha,
                                            planned_n=looks * 100)
            if not low <= 0 <= high:
                seq_hit = True
        fixed_errors += fixed_hit
        seq_errors += seq_hit
    assert fixed_errors / runs > 2 * alpha
    assert seq_errors / runs <= alpha


def test_confidence_sequence_is_wider_than_fixed_interval() -> None:
    low, high = confidence_sequence(1.0, 0.1, 1000)
    assert high - 1.0 > 1.96 * 0.1
    assert low == pytest.approx(2.0 - high)


def test_bayes_chance_to_win() -> None:
    # a metric that can be negative has no log ratio: the lift itself is normal
    chance, loss = bayes(0.02, 0.01)
    assert chance == pytest.approx(stats.norm.cdf(2.0))
    assert 0 < loss < 0.001
    draws = RNG.normal(0.02, 0.01, 400_000)
    assert loss == pytest.approx(np.maximum(-draws, 0).mean(), rel=0.03)


def test_bayes_agrees_with_a_bootstrap_of_skewed_data() -> None:
    """Small samples of a skewed metric (revenue-like): the lift's distribution is skewed
    too, as the interval on the log ratio has it. Over 40 such experiments the chance to
    win and the expected loss (both ways: up good, down good) stay close to a bootstrap of
    the relative lift; a normal model of the lift itself was four times as far off
    (mean errors 0.017, 0.010 and 0.015)."""
    errors = []
    for seed in range(10):
        for n, treatment_mean in ((40, 0.6), (30, 1.5), (60, 0.8), (50, 1.2)):
            rng = np.random.default_rng(seed * 100 + n)
            control = rng.exponential(1.0, n)
            treatment = rng.exponential(treatment_mean, n)
            effect = welch(Summary.of(control), Summary.of(treatment))
            picks = (5000, n)
            boot = (treatment[rng.integers(0, n, picks)].mean(axis=1)
                    / control[rng.integers(0, n, picks)].mean(axis=1) - 1)
            chance, loss = bayes(effect.lift, effect.lift_se, effect.log_se)
            chance_down, loss_down = bayes(effect.lift, effect.lift_se, effect.log_se,
                                           up_is_good=False)
            assert chance_down == pytest.approx(1 - chance)
            errors.append([abs(chance - (boot > 0).mean()),
                           abs(loss - np.maximum(-boot, 0).mean()),
                           abs(loss_down - np.maximum(boot, 0).mean())])
    chance_error, loss_error, gain_error = np.mean(errors, axis=0)
    assert chance_error < 0.008
    assert loss_error < 0.004
    assert gain_error < 0.007


def test_bayes_agrees_with_the_interval_and_p_value() -> None:
    """The chance to win rests on the same log ratio as the interval: with many units
    (Welch's t is then normal), the two-sided p-value is twice the chance of the wrong
    sign, and a 95% interval excludes zero exactly when the chance is beyond 97.5%."""
    rng = np.random.default_rng(3)
    for treatment_mean in (0.9, 0.95, 1.05, 1.1, 1.2):
        control = rng.lognormal(0, 1.2, 3000)
        treatment = rng.lognormal(math.log(treatment_mean), 1.2, 3000)
        effect = welch(Summary.of(control), Summary.of(treatment))
        chance, _ = bayes(effect.lift, effect.lift_se, effect.log_se)
        assert effect.p_value == pytest.approx(2 * min(chance, 1 - chance), rel=0.01)
        assert (effect.ci_low > 0) == (chance > 0.975)
        assert (effect.ci_high < 0) == (chance < 0.025)


def test_bayes_of_a_known_lift() -> None:
    """No spread: the chance is certain and the loss is the lift the wrong way."""
    assert bayes(-0.1, 0.0, 0.0) == (0.0, pytest.approx(0.1))
    assert bayes(-0.1, 0.0, 0.0, up_is_good=False) == (1.0, 0.0)
    assert bayes(math.nan, math.nan) == (pytest.approx(math.nan, nan_ok=True),
                                          pytest.approx(math.nan, nan_ok=True))


def test_srm() -> None:
    assert srm_p_value([5000, 5000], [0.5, 0.5]) == pytest.approx(1.0)
    assert srm_p_value([5200, 4800], [1, 1]) == pytest.approx(
        stats.chisquare([5200, 4800]).pvalue)
    assert srm_p_value([5200, 4800], [1, 1]) < 0.001
    assert srm_p_value([2000, 8000], [0.2, 0.8]) == pytest.approx(1.0)


@pytest.mark.parametrize("method", ["holm", "fdr_bh"])
def test_corrections_match_statsmodels(method: str) -> None:
    p = [0.01, 0.04, 0.03, 0.005, 0.2, 0.04]
    ours = holm(p) if method == "holm" else benjamini_hochberg(p)
    assert ours == pytest.approx(list(multipletests(p, method=method)[1]))


def test_sample_size_matches_statsmodels() -> None:
    n = sample_size(baseline_mean=0.1, baseline_std=math.sqrt(0.09), mde=0.1)
    expected = NormalIndPower().solve_power(effect_size=0.01 / 0.3, alpha=0.05, power=0.8)
    assert n == math.ceil(expected)


def _binary(events: int, n: int) -> Summary:
    return Summary.of(np.r_[np.ones(events), np.zeros(n - events)])


def test_the_relative_interval_of_a_rare_rate_stays_above_minus_100_percent() -> None:
    """A rate cannot fall below zero, so its lift cannot fall below -100%: the demo's
    guardrail (7 failures in 314 units against 10 in 349) read -156.9% always-valid."""
    control, treatment = _binary(7, 314), _binary(10, 349)
    effect = welch(control, treatment)
    assert -1 < effect.ci_low < effect.lift < effect.ci_high
    low, high = lift_sequence(effect, 663)
    assert -1 < low < effect.ci_low
    assert high > effect.ci_high
    # built on the log ratio: the interval is symmetric there, not around the lift
    assert math.log1p(effect.ci_high) - math.log1p(effect.lift) == pytest.approx(
        math.log1p(effect.lift) - math.log1p(effect.ci_low))


@pytest.mark.parametrize(("events", "n"), [((300, 360), 10_000), ((640, 760), 1_000)])
def test_the_relative_interval_matches_statsmodels_log_ratio(events: tuple[int, int],
                                                             n: int) -> None:
    """The delta method on log(p_t / p_c) is statsmodels' "log" interval of a ratio of
    proportions (which uses z and variances over n, hence the tolerance)."""
    effect = welch(_binary(events[0], n), _binary(events[1], n))
    low, high = confint_proportions_2indep(events[1], n, events[0], n, compare="ratio",
                                           method="log")
    assert (effect.ci_low, effect.ci_high) == pytest.approx((low - 1, high - 1), rel=2e-3)


@pytest.mark.parametrize("true_lift", [0.0, 0.25, -0.5])
def test_the_relative_interval_of_a_rare_rate_covers_the_true_lift(true_lift: float) -> None:
    """A rate of 2.3% in 330 units per arm (A/A and known effects): the fixed interval
    covers the true lift about 95% of the time and never reaches below -100%; the
    delta method on the lift itself covered 90-92% and went below -100% in half the runs."""
    runs, covered, seq_covered = 0, 0, 0
    for _ in range(400):
        control = Summary.of(RNG.binomial(1, 0.023, 330))
        treatment = Summary.of(RNG.binomial(1, 0.023 * (1 + true_lift), 330))
        if control.mean == 0 or treatment.mean == 0:
            continue  # no log ratio (no events in an arm: 2% of runs at -50%)
        runs += 1
        effect = welch(control, treatment)
        low, high = lift_sequence(effect, 660)
        assert effect.ci_low > -1
        assert low > -1
        covered += effect.ci_low <= true_lift <= effect.ci_high
        seq_covered += low <= true_lift <= high
    assert 0.93 <= covered / runs <= 0.995
    assert seq_covered / runs >= 0.95


@pytest.mark.parametrize(("control", "treatment"),
                         [((30, 1000), (0, 1000)), ((0, 400), (7, 500)), ((0, 300), (0, 300)),
                          ((3, 80), (0, 120))])
def test_add_half_is_statsmodels_log_adjusted(control: tuple[int, int],
                                              treatment: tuple[int, int]) -> None:
    """With no delta-method variance to add, Gart's add-half log ratio is statsmodels'
    "log-adjusted" interval of a ratio of proportions, and its p-value agrees with it."""
    effect = add_half((*control, 0.0), (*treatment, 0.0))
    low, high = confint_proportions_2indep(*treatment, *control, compare="ratio",
                                           method="log-adjusted")
    assert (effect.ci_low, effect.ci_high) == pytest.approx((low - 1, high - 1), rel=1e-9)
    assert effect.ci_low < effect.lift < effect.ci_high
    assert (effect.p_value < 0.05) == (not effect.ci_low <= 0 <= effect.ci_high)
