"""The shared seasonal count model on synthetic series with known answers: low counts,
seasonal peaks, many null series under family error control, rates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from nerve.errors import UserError
from nerve.quality import load_config
from nerve.quality._config import Rate, metric_rates
from nerve.quality._seasonal import (
    Rules,
    family_level,
    fit_expected,
    judge_counts,
    judge_rates,
    nb_tails,
    reject,
)

START = 490_000  # hours since the epoch (a Thursday)
HOURS = np.arange(START, START + 28 * 24)
TRAIN = HOURS[-24] > HOURS  # the last day is evaluated


def curve(level: float) -> np.ndarray:
    """A daily curve (x0.2 to x1.8) and quieter weekends (x0.6)."""
    daily = 1 + 0.8 * np.sin((HOURS % 24) / 24 * 2 * np.pi)
    weekend = np.where((HOURS // 24) % 7 >= 2, 1.0, 0.6)
    return level * daily * weekend


def sessions(rng: np.random.Generator, level: np.ndarray, size: float = 3.0) -> np.ndarray:
    """Counts that come in sessions: Poisson sessions of geometric size (mean ``size``)."""
    n = rng.poisson(level / size)
    # a sum of n geometric sizes (each >= 1) is n plus a negative binomial
    extra = rng.negative_binomial(np.maximum(n, 1), 1 / size)
    return np.where(n > 0, n + extra, 0).astype(float)


def judge(matrix: np.ndarray, rules: Rules | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(rejected, direction) per series after the family correction."""
    rules = rules or Rules()
    found = judge_counts(matrix, HOURS, TRAIN, ~TRAIN, rules)
    rejected, _ = reject(found.p, rules.q)
    return rejected, found.sign


def test_a_low_count_spike_is_found() -> None:
    rng = np.random.default_rng(1)
    values = rng.poisson(np.full(len(HOURS), 0.2)).astype(float)
    values[-6:-3] += [3, 3, 2]  # 8 failures in 3 hours where 0.6 are expected
    rejected, sign = judge(values[:, None])
    assert rejected.tolist() == [True]
    assert sign.tolist() == [1]


def test_a_low_count_wobble_is_not() -> None:
    rng = np.random.default_rng(2)
    values = rng.poisson(np.full(len(HOURS), 0.2)).astype(float)
    values[-3] += 2  # 2 extra events in an hour: rare for one hour, not for a day of them
    rejected, _ = judge(values[:, None])
    assert rejected.tolist() == [False]


def test_the_seasonal_peak_and_the_weekend_are_not_anomalies() -> None:
    rng = np.random.default_rng(3)
    matrix = np.column_stack([sessions(rng, curve(level)) for level in (5, 50, 400)])
    rejected, _ = judge(matrix)
    assert not rejected.any()
    # the same without the model's seasonality would be flagged: the peak is 9x the night
    flat = judge_counts(matrix, HOURS, TRAIN, ~TRAIN, Rules(windows=(1,)))
    assert flat.expected_points[-24:, 2].max() > 5 * flat.expected_points[-24:, 2].min()


def test_a_drop_of_a_seasonal_series_is_found_from_where_it_started() -> None:
    rng = np.random.default_rng(4)
    values = sessions(rng, curve(40))
    values[-10:] = sessions(rng, curve(40)[-10:] * 0.4)
    found = judge_counts(values[:, None], HOURS, TRAIN, ~TRAIN, Rules())
    rejected, thresholds = reject(found.p, Rules().q)
    assert rejected.tolist() == [True]
    assert found.sign.tolist() == [-1]
    marks = found.marks(thresholds, Rules(), values[:, None])[:, 0]
    first = int(np.flatnonzero(marks == -1)[0])
    assert len(HOURS) - 10 <= first <= len(HOURS) - 6


@pytest.mark.parametrize("seed", [5, 6])
def test_many_null_series_raise_no_alarm_at_the_family_level(seed: int) -> None:
    """200 clean series (sessions, seasonal, 0.3 to 300 events/h) judged 5 times: with the
    family at 3 sigma (0.27%) a single alarm would be a 1-in-70 event; without the
    correction the smallest raw p-value is below the level in most runs."""
    rng = np.random.default_rng(seed)
    levels = np.geomspace(0.3, 300, 200)
    alarms, raw_hits = 0, 0
    for _ in range(5):
        matrix = np.column_stack([sessions(rng, curve(level)) for level in levels])
        found = judge_counts(matrix, HOURS, TRAIN, ~TRAIN, Rules())
        rejected, _ = reject(found.p, Rules().q)
        alarms += int(rejected.any())
        raw = min(min(float(t[0].min()), float(t[1].min())) for t in found.tails.values())
        raw_hits += raw < Rules().q
    assert alarms == 0
    assert raw_hits >= 3


def test_day_to_day_swings_are_noise_measured_out_of_sample() -> None:
    """Whole days 25% up or down at random (weather, a newsletter): in sample, a weekday
    factor learnt from four days absorbs them and the noise looks small; out of sample
    it does not, and no day alarms."""
    rng = np.random.default_rng(7)
    days = np.repeat(rng.lognormal(0, 0.25, 28), 24)
    matrix = np.column_stack([rng.poisson(curve(level) * days).astype(float)
                              for level in (20, 80, 300)])
    rejected, _ = judge(matrix)
    assert not rejected.any()


def test_a_past_incident_in_training_does_not_hide_a_new_one() -> None:
    rng = np.random.default_rng(8)
    values = sessions(rng, curve(30))
    values[5 * 24: 6 * 24] *= 8  # a wild day three weeks ago
    clean = judge(values[:, None])[0]
    values[-6:] = 0  # and a dead end now
    found = judge(values[:, None])
    assert clean.tolist() == [False]
    assert found[0].tolist() == [True]
    assert found[1].tolist() == [-1]


def test_min_volume_is_about_expected_counts_and_direction_is_honoured() -> None:
    rng = np.random.default_rng(9)
    values = rng.poisson(curve(3)).astype(float)
    values[-8:] = 0
    assert judge(values[:, None], Rules(direction="down"))[0].tolist() == [True]
    assert judge(values[:, None], Rules(direction="up"))[0].tolist() == [False]
    # 24 h expect about 70 events: a minimum of 100 expected events judges nothing
    assert judge(values[:, None], Rules(min_volume=100))[0].tolist() == [False]


def test_negative_binomial_tails_match_scipy() -> None:
    obs, mu = np.array([0.0, 3, 12, 40]), np.array([2.0, 3, 4, 20])
    up, down = nb_tails(obs, mu, np.ones(4), np.zeros(4))
    assert np.allclose(up, stats.poisson.sf(obs - 1, mu))
    assert np.allclose(down, stats.poisson.cdf(obs, mu))
    alpha = 0.3
    up, down = nb_tails(obs, mu, np.ones(4), np.full(4, alpha))
    r = 1 / alpha
    p = r / (r + mu)
    assert np.allclose(up, stats.nbinom.sf(obs - 1, r, p))
    assert np.allclose(down, stats.nbinom.cdf(obs, r, p))


def test_benjamini_hochberg_matches_statsmodels() -> None:
    rng = np.random.default_rng(10)
    p = np.concatenate([rng.uniform(size=200), rng.uniform(0, 1e-4, size=5)])
    for q in (0.01, 0.05, family_level(3)):
        ours, _ = reject(p, q)
        theirs = multipletests(p, alpha=q, method="fdr_bh")[0]
        assert ours.tolist() == theirs.tolist()
    assert family_level(3) == pytest.approx(0.0027, abs=1e-4)


def _rates(seed: int, outage: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Three providers' payments (about 12, 8 and 30 an hour, seasonal) failing at 3%;
    the first fails at ``outage`` for 4 hours from 10 hours ago."""
    rng = np.random.default_rng(seed)
    den = np.column_stack([rng.poisson(curve(level)).astype(float) for level in (12, 8, 30)])
    share = np.full(den.shape, 0.03)
    if outage is not None:
        share[-10:-6, 0] = outage
    return rng.binomial(den.astype(int), share).astype(float), den


def test_a_rate_shift_is_found_on_the_right_series() -> None:
    num, den = _rates(11, outage=0.45)
    found = judge_rates(num, den, HOURS, TRAIN, ~TRAIN, Rules())
    rejected, _ = reject(found.p, Rules().q)
    assert rejected.tolist() == [True, False, False]
    assert found.sign[0] == 1
    assert found.start[0] <= len(HOURS) - 7  # its best window covers the outage
    assert found.end[0] >= len(HOURS) - 10


@pytest.mark.parametrize("seed", [12, 13, 14])
def test_steady_rates_raise_nothing(seed: int) -> None:
    num, den = _rates(seed, outage=None)
    found = judge_rates(num, den, HOURS, TRAIN, ~TRAIN, Rules())
    assert not reject(found.p, Rules().q)[0].any()


def test_a_rate_that_is_no_share_is_judged_as_a_count() -> None:
    """Refunds per order: a refund belongs to an order of days before, so an hour may
    have more refunds than orders; still judged, with count tails."""
    rng = np.random.default_rng(15)
    den = rng.poisson(curve(2)).astype(float)
    num = rng.poisson(np.full(len(HOURS), 1.5)).astype(float)
    assert (num > den).any()
    found = judge_rates(num[:, None], den[:, None], HOURS, TRAIN, ~TRAIN, Rules())
    assert not reject(found.p, Rules().q)[0].any()
    num[-5:] += 12
    found = judge_rates(num[:, None], den[:, None], HOURS, TRAIN, ~TRAIN, Rules())
    assert reject(found.p, Rules().q)[0].tolist() == [True]


def test_rates_come_from_checks_yaml_or_from_ratio_metrics(tmp_path: Path) -> None:
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    (metrics / "m.yaml").write_text("""
metrics:
  failures: {measure: {agg: count, event: payment_failed}}
  failure_rate:
    type: ratio
    numerator: failures
    denominator: {agg: count, event: payment_submitted}
  cart_rate:
    type: ratio
    numerator: {agg: count_distinct, event: add_to_cart}
    denominator: {agg: count_distinct, event: product_view}
  zero_results:
    type: ratio
    numerator: {agg: count, event: product_search, filter: results_count = 0}
    denominator: {agg: count, event: product_search}
""")
    assert metric_rates(metrics) == [Rate("payment_failed", "payment_submitted",
                                          "failure_rate")]
    assert load_config(tmp_path).rates == (Rate("payment_failed", "payment_submitted",
                                                 "failure_rate"),)
    (tmp_path / "checks.yaml").write_text(
        "rates:\n  - {numerator: app_error, denominator: session_start, dimensions: [platform]}\n")
    assert load_config(tmp_path).rates == (Rate("app_error", "session_start",
                                                "app_error per session_start", ("platform",)),)
    (tmp_path / "checks.yaml").write_text("rates:\n  - {numerator: app_error}\n")
    with pytest.raises(UserError, match=r"checks.yaml:2: rates\[0\]: .*denominator"):
        load_config(tmp_path)


def test_an_outage_before_the_evaluated_day_is_marked_on_its_own_hours() -> None:
    """A 4-hour outage (4% -> 40% failed payments) ending 2 hours before the evaluated
    day: every 24-hour sum of that day still holds it. The marks are the 4 planted
    hours, not every hour of those windows with a failure more than expected (a 25-hour
    "incident")."""
    rng = np.random.default_rng(39)
    outage = (HOURS[-30] <= HOURS) & (HOURS[-26] > HOURS)
    den = rng.poisson(curve(30.0)).astype(float)
    num = rng.binomial(den.astype(int), np.where(outage, 0.40, 0.04)).astype(float)
    rules = Rules()
    found = judge_rates(num[:, None], den[:, None], HOURS, TRAIN, ~TRAIN, rules)
    rejected, thresholds = reject(found.p, rules.q)
    assert rejected.tolist() == [True]
    marks = found.marks(thresholds, rules, num[:, None])[:, 0]
    assert np.flatnonzero(marks).tolist() == np.flatnonzero(outage).tolist()
    assert set(marks[outage].tolist()) == {1}


def test_a_strong_weekly_pattern_is_not_flattened() -> None:
    """Four weeks of ~540 events a day whose busiest weekday is 1.7 times the quietest:
    each day's expected sum is within 6% of the mean of the same weekday in training
    (computed here from the data). A weekday factor shrunk by a weekday's total instead
    of half a day kept only two thirds of the pattern: weekends 10-15% above their
    expectation, Mondays 8% below, and a noise model that learnt that error as noise
    (the band of a 24-hour sum about +-50%, blind to a 32% drop)."""
    week = np.array([1.0, 1.0, 1.15, 1.5, 1.4, 0.9, 0.95])  # Thursday first (the epoch's)
    hours = np.arange(490_008, 490_008 + 29 * 24)  # from midnight: whole days
    daily = 1 + 0.8 * np.sin((hours % 24) / 24 * 2 * np.pi)
    values = np.random.default_rng(5).poisson(22.5 * daily * week[(hours // 24) % 7])
    days = hours // 24
    for last in range(22, 29):  # judge each of the last 7 days after the ones before it
        train, evaluated = days < days[0] + last, days == days[0] + last
        expected, _, _ = fit_expected(values[:, None].astype(float), hours, train)
        same = train & ((days - days[evaluated][0]) % 7 == 0)
        mean_same = values[same].sum() / len(np.unique(days[same]))
        assert expected[evaluated, 0].sum() == pytest.approx(mean_same, rel=0.06)


def _short_history(seed: int, drop: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ten days of one event overall and on three platforms (a first week and a half of
    data: each weekday seen once or twice), Poisson counts with a daily curve and busier
    weekends; ``drop`` cuts android for the last 8 hours. (hours, matrix, parents)."""
    rng = np.random.default_rng(seed)
    hours = np.arange(490_000, 490_000 + 10 * 24)
    curve = 1 + 0.6 * np.sin((hours % 24 - 9) / 24 * 2 * np.pi)
    week = np.where((hours // 24) % 7 >= 5, 1.25, 0.9)
    mus = [105 * share * curve * week for share in (0.45, 0.35, 0.20)]
    mus[0] = np.where(hours >= hours[-8], mus[0] * (1 - drop), mus[0])
    children = np.column_stack([rng.poisson(mu) for mu in mus]).astype(float)
    children[: 2 * 24] = np.nan  # the platforms' scan reads 8 days
    overall = rng.poisson(sum(mus)).astype(float)  # (its own draw: a separate scan)
    return hours, np.column_stack([overall, children]), np.array([-1, 0, 0, 0])


def test_poisson_counts_with_a_short_history_look_poisson() -> None:
    """With ten days of history, two pseudo-days in each hour-of-day mean pulled the
    daily curve 20% flat and half a day in each weekday factor shrank a weekend seen
    once by a third, for hours on end: the noise model read that error as noise (phi
    2-3.5 for 4-hour sums of pure Poisson counts by platform, 8 for the event overall)
    and missed a 50% drop of 47 events an hour on one platform for 8 hours."""
    hours, matrix, parents = _short_history(11)
    train = hours < hours[-24]
    found = judge_counts(matrix, hours, train, ~train, Rules(), parents=parents)
    phi, alpha = found.noise[4]
    assert phi[1:].max() < 2.0  # 1.1-1.8 here (estimated from a week of 4-hour sums)
    assert alpha[1:].max() < 0.01


@pytest.mark.parametrize("seed", [21, 22, 23])
def test_a_drop_on_one_platform_is_found_with_a_short_history(seed: int) -> None:
    hours, matrix, parents = _short_history(seed, drop=0.5)
    train = hours < hours[-24]
    found = judge_counts(matrix, hours, train, ~train, Rules(), parents=parents)
    rejected, _ = reject(found.p, Rules().q)
    # android and nothing else (the event overall, 22% down for 8 hours, may show too)
    assert rejected[1:].tolist() == [True, False, False]
    assert found.sign[1] == -1


def test_short_clean_histories_raise_nothing() -> None:
    alarms = 0
    for seed in range(30, 60):
        hours, matrix, parents = _short_history(seed)
        train = hours < hours[-24]
        found = judge_counts(matrix, hours, train, ~train, Rules(), parents=parents)
        alarms += int(reject(found.p, Rules().q)[0].any())
    assert alarms == 0


@pytest.mark.parametrize("seed", [0, 4])
def test_sparse_bursts_of_sessions_are_noise_not_spikes(seed: int) -> None:
    """40 clean series of 0.3 to 3 events an hour in sessions of 6 (a shopper's nine
    payments in an hour, then nothing for a day), a week of training as by dimension
    value: the quieter half of the training windows saw no session, and its phi of 1 made
    every burst a spike (1 to 3 alarms a run). A real spike, five times a Poisson
    series' rate for six hours, is still found."""
    rng = np.random.default_rng(seed)
    week = HOURS[-8 * 24:]
    train = week < week[-24]
    rules = Rules(min_volume=10)
    matrix = np.column_stack([sessions(rng, curve(level), size=6.0)
                              for level in np.geomspace(0.3, 3, 40)])[-8 * 24:]
    found = judge_counts(matrix, week, train, ~train, rules)
    assert not reject(found.p, rules.q)[0].any()
    spike = rng.poisson(np.r_[np.full(len(week) - 6, 1.0), np.full(6, 5.0)]).astype(float)
    found = judge_counts(spike[:, None], week, train, ~train, rules)
    assert reject(found.p, rules.q)[0].tolist() == [True]
    assert found.sign.tolist() == [1]


def _gone_silent(seed: int, silent: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ten days of an event sent at 0.6 an hour (Poisson), overall and on its only
    platform (whose scan reads 8 days), silent for the last ``silent`` hours."""
    rng = np.random.default_rng(seed)
    hours = np.arange(490_008, 490_008 + 10 * 24)  # from midnight
    values = rng.poisson(0.6, len(hours)).astype(float)
    if silent:
        values[-silent:] = 0
    child = values.copy()
    child[: 2 * 24] = np.nan
    return hours, np.column_stack([values, child]), np.array([-1, 0])


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_an_outage_begun_in_training_is_found_overall(seed: int) -> None:
    """40 silent hours judged on the last 24: the first 16 were training, no outliers
    one by one at 0.6 an hour, and through the weekday factor of the one other day of
    their weekday (out of sample) the event's overall series read them as noise (phi
    3.3 for the 24-hour sums): only the series by platform, which saw no twin weekday,
    was reported."""
    hours, matrix, parents = _gone_silent(seed, silent=40)
    train = hours < hours[-24]
    found = judge_counts(matrix, hours, train, ~train, Rules(), parents=parents)
    rejected, thresholds = reject(found.p, Rules().q)
    assert rejected.tolist() == [True, True]
    assert found.sign.tolist() == [-1, -1]
    # the report reaches back to where the silence began
    marks = found.marks(thresholds, Rules(), matrix)
    assert (marks[-40:, 0] == -1).mean() > 0.8


def test_a_sparse_event_that_keeps_sending_raises_nothing() -> None:
    alarms = 0
    for seed in range(40):
        hours, matrix, parents = _gone_silent(seed, silent=0)
        train = hours < hours[-24]
        found = judge_counts(matrix, hours, train, ~train, Rules(), parents=parents)
        alarms += int(reject(found.p, Rules().q)[0].any())
    assert alarms == 0
