"""The seasonal robust model and the detector on synthetic series with known answers."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from nerve.anomaly import Detection, Settings, Window, detect, poisson_z, robust_fit, seasonal_fit
from nerve.anomaly._detect import detect_rates
from nerve.anomaly._model import runs
from nerve.errors import UserError

START = 490_000  # hours since the epoch (a Thursday, 2025-11-20 16:00 UTC)
HOURS = np.arange(START, START + 28 * 24)


def rate(hours: np.ndarray, level: float = 20.0) -> np.ndarray:
    """A daily curve (x0.2 to x1.8) and quieter weekends (x0.6)."""
    daily = 1 + 0.8 * np.sin((hours % 24) / 24 * 2 * np.pi)
    weekend = np.where((hours // 24) % 7 >= 2, 1.0, 0.6)
    return level * daily * weekend


def frame(**series: np.ndarray) -> pd.DataFrame:
    rows = [(name, "", "", int(h), float(n)) for name, values in series.items()
            for h, n in zip(HOURS, values, strict=True)]
    return pd.DataFrame(rows, columns=["target", "dimension", "value", "period", "n"])


def window(evaluate: int = 24) -> Window:
    return Window(last=int(HOURS[-1]), evaluate=evaluate, training=21 * 24)


def test_expected_value_recovers_the_seasonal_pattern() -> None:
    truth = rate(HOURS, 50)
    values = np.random.default_rng(1).poisson(truth).astype(float)
    train = HOURS[-24] > HOURS
    band = robust_fit(HOURS, values, train)
    error = np.abs(band.expected[~train] - truth[~train]) / truth[~train]
    assert float(np.median(error)) < 0.1
    low, high = band.bounds(4.0)
    assert ((low <= values) & (values <= high))[~train].all()


def test_a_past_incident_in_training_moves_neither_expectation_nor_band() -> None:
    values = np.random.default_rng(2).poisson(rate(HOURS)).astype(float)
    hit = values.copy()
    hit[5 * 24: 6 * 24] *= 10  # a day of 10x traffic two weeks before
    train = HOURS[-24] > HOURS
    clean, dirty = robust_fit(HOURS, values, train), robust_fit(HOURS, hit, train)
    assert np.allclose(clean.expected[~train], dirty.expected[~train], rtol=0.1)
    # the plain one-pass fit is thrown further by the same incident (medians resist, but
    # the robust refit is what makes the means usable)
    assert seasonal_fit(HOURS, hit, train).scale.max() >= clean.scale.max()
    result = detect(frame(x=hit), window(), Settings())
    assert result.anomalies == []


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_clean_poisson_series_raise_nothing(seed: int) -> None:
    rng = np.random.default_rng(seed)
    result = detect(frame(big=rng.poisson(rate(HOURS, 80)).astype(float),
                          small=rng.poisson(rate(HOURS, 3)).astype(float)),
                    window(7 * 24), Settings())
    assert result.judged == 2
    assert result.anomalies == []


def test_a_drop_is_found_with_its_start_and_direction() -> None:
    values = np.random.default_rng(6).poisson(rate(HOURS)).astype(float)
    values[-10:] = np.random.default_rng(7).poisson(rate(HOURS[-10:]) * 0.4)
    result = detect(frame(add_to_cart=values), window(), Settings())
    assert len(result.anomalies) == 1
    found = result.anomalies[0]
    assert found.direction == "down"
    assert found.ongoing
    assert abs((found.start.timestamp() // 3600) - HOURS[-10]) <= 2
    assert found.observed < found.expected * 0.7


def test_a_small_burst_shows_in_a_window_sum_not_hour_by_hour() -> None:
    values = np.random.default_rng(8).poisson(np.full(len(HOURS), 0.1)).astype(float)
    values[-8:-4] += [3, 4, 3, 3]  # 13 failures in 4 hours where 0.4 are expected
    result = detect(frame(payment_failed=values), window(), Settings(min_volume=5))
    assert [a.direction for a in result.anomalies] == ["up"]
    assert result.anomalies[0].periods >= 3


def test_direction_and_minimum_volume_settings() -> None:
    values = np.random.default_rng(9).poisson(rate(HOURS)).astype(float)
    values[-10:] = 0
    assert detect(frame(x=values), window(), Settings(direction="up")).anomalies == []
    assert detect(frame(x=values), window(), Settings(direction="down")).anomalies
    tiny = np.random.default_rng(10).poisson(np.full(len(HOURS), 0.01)).astype(float)
    result = detect(frame(tiny=tiny), window(), Settings(min_volume=50))
    assert result.anomalies == []
    assert result.skipped == 1
    with pytest.raises(UserError, match="direction"):
        Settings(direction="sideways")


def test_backtest_lists_past_alerts_and_keeps_them_out_of_later_training() -> None:
    values = np.random.default_rng(11).poisson(rate(HOURS)).astype(float)
    incident = slice(len(HOURS) - 6 * 24, len(HOURS) - 5 * 24)  # a dead day, 5 days ago
    values[incident] = 0
    result = detect(frame(x=values), window(14 * 24), Settings())
    assert len(result.anomalies) == 1
    found = result.anomalies[0]
    assert found.direction == "down"
    assert not found.ongoing
    # the quiet night hours it began in (5 events/h expected) take a few hours to prove
    assert 0 <= found.start.timestamp() // 3600 - HOURS[incident.start] <= 4
    assert found.end.timestamp() // 3600 == HOURS[incident.stop]
    points = detect(frame(x=values), window(14 * 24), Settings(), keep_points=True).points
    assert len(points) == 14 * 24
    assert sum(p["alert"] == "down" for p in points) == found.periods


def test_new_series_wait_for_history() -> None:
    values = np.random.default_rng(12).poisson(rate(HOURS)).astype(float)
    values[: 25 * 24] = 0  # a version released three days ago
    young = frame(v=values)
    young = young[young["n"] > 0]
    assert detect(young, window(), Settings()).skipped == 1


def test_a_series_is_judged_from_the_day_it_has_its_history() -> None:
    """A version released 9 days before the end of a 3-day evaluation has its 7 days of
    history from the evaluation's second day on: its payments failing at 45% in the last
    4 hours are found (the whole run used to skip it as too new), and its points start
    where it is judged."""
    rng = np.random.default_rng(31)
    born = len(HOURS) - 9 * 24
    frame = _payments(rng, {"old": 20.0, "new": 15.0},
                      lambda version: np.where(
                          (version == "new") & (HOURS[-4] <= HOURS), 0.45, 0.03))
    frame = frame[(frame["value"] == "old") | (frame["period"] >= HOURS[born])]
    result = detect_rates(frame[frame["target"] == "payment_failed"],
                          frame[frame["target"] == "payment_submitted"], "failure_rate",
                          Window(last=int(HOURS[-1]), evaluate=72, training=21 * 24),
                          Settings(), keep_points=True)
    assert result.judged == 2
    assert [(a.value, a.direction) for a in result.anomalies] == [("new", "up")]
    assert result.anomalies[0].start.timestamp() // 3600 == HOURS[-4]
    new = [p for p in result.points if p["value"] == "new"]
    assert len(new) == 48
    assert new[0]["time"] == pd.Timestamp(int(HOURS[-48]) * 3600, unit="s", tz="UTC").isoformat()


def test_poisson_scores_match_scipy() -> None:
    z = poisson_z(np.array([12.0, 2.0]), np.array([4.0, 10.0]))
    assert z[0] == pytest.approx(stats.norm.isf(stats.poisson.sf(11, 4.0)))
    assert z[1] == pytest.approx(-stats.norm.isf(stats.poisson.cdf(2, 10.0)))


def test_runs_join_short_gaps() -> None:
    assert runs(np.array([-1, -1, 0, 0, -1, 1]), 1, gap=2) == [(0, 4, -1), (5, 5, 1)]
    assert runs(np.array([1, 0, 0, 0, 1]), 1, gap=2) == [(0, 0, 1), (4, 4, 1)]


def test_exported_names() -> None:
    import nerve.anomaly

    assert sorted(nerve.anomaly.__all__) == sorted([
        "KEY_DIMENSIONS", "Anomaly", "Band", "Detection", "LiveAlert", "LiveMonitor",
        "Period", "Request", "Settings", "Window", "backtest", "daily_values", "detect",
        "event_counts", "explain", "find_anomalies", "forecast", "metric_series",
        "parse_period", "poisson_z", "prometheus_collector", "prometheus_text",
        "resolve_target", "robust_fit", "seasonal_fit", "start_live"])


def _payments(rng: np.random.Generator, levels: dict[str, float],
              share: Callable[[str], np.ndarray]) -> pd.DataFrame:
    """Hourly payments submitted per provider (its level, with the day's shape) and
    failed at ``share(provider)`` per hour, as detect_rates' rows."""
    rows = []
    for provider, level in levels.items():
        submitted = rng.poisson(rate(HOURS, level))
        failed = rng.binomial(submitted, share(provider))
        for h, s, f in zip(HOURS, submitted, failed, strict=True):
            rows += [("payment_submitted", "provider", provider, int(h), float(s)),
                     ("payment_failed", "provider", provider, int(h), float(f))]
    return pd.DataFrame(rows, columns=["target", "dimension", "value", "period", "n"])


def test_a_rate_is_judged_as_a_share_per_value() -> None:
    """Payments of three providers failing at 3%; one fails at 45% for the last 4 hours:
    only that provider's rate alerts, from the hour it started."""
    rng = np.random.default_rng(13)
    frame = _payments(rng, {"adyen": 12.0, "stripe": 20.0, "paypal": 8.0},
                      lambda provider: np.where(
                          (provider == "adyen") & (HOURS[-4] <= HOURS), 0.45, 0.03))
    result = detect_rates(frame[frame["target"] == "payment_failed"],
                          frame[frame["target"] == "payment_submitted"], "failure_rate",
                          window(), Settings())
    assert result.judged == 3
    assert [(a.target, a.value, a.direction) for a in result.anomalies] == [
        ("failure_rate", "adyen", "up")]
    found = result.anomalies[0]
    assert found.start.timestamp() // 3600 == HOURS[-4]
    assert found.observed > 0.25
    assert found.expected < 0.05
    # a rate reads as shares ("rose to 11.03% against an expected 1.94%"), not as an
    # amount "per period" (it read "spiked to 0.1103 per period against ... 0.01941")
    assert f"failure_rate on provider=adyen rose to {found.observed:.2%} against " \
        f"an expected {found.expected:.2%} (one period's band 0.00%-" in found.message()
    assert "per period" not in found.message()


def test_a_dimension_value_takes_its_event_weekday_factor() -> None:
    """Three weeks of an event overall, its last week on android: the judged day is a
    quiet weekday the android series has never seen. Its weekday factor comes from the
    overall series (that has seen it three times), so the quiet day is no drop, and a
    real 40% drop on it is found (unknown weekdays would make every day uncertain)."""
    # up to the end of the last quiet (x0.6) day
    end = int(np.flatnonzero((HOURS % 24 == 23) & ((HOURS // 24) % 7 == 0))[-1])
    hours = HOURS[: end + 1]
    assert set((hours[-24:] // 24) % 7) == {0}
    rng = np.random.default_rng(14)
    overall = rng.poisson(rate(hours, 60)).astype(float)
    android = rng.poisson(rate(hours, 40)).astype(float)

    def judged(android: np.ndarray) -> Detection:
        rows = [("x", "", "", int(h), float(n)) for h, n in zip(hours, overall, strict=True)]
        rows += [("x", "platform", "android", int(h), float(n))
                 for h, n in zip(hours[-7 * 24:], android[-7 * 24:], strict=True)]
        frame = pd.DataFrame(rows, columns=["target", "dimension", "value", "period", "n"])
        return detect(frame, Window(last=int(hours[-1]), evaluate=24, training=21 * 24,
                                    min_history=5 * 24), Settings())

    assert judged(android).judged == 2
    assert judged(android).anomalies == []
    android[-24:] = rng.poisson(rate(hours[-24:], 40) * 0.6)
    found = judged(android).anomalies
    assert [(a.value, a.direction) for a in found] == [("android", "down")]


def test_a_short_outage_is_reported_on_its_own_hours_only() -> None:
    """Payments failing at 4%; one provider fails at 40% for 4 hours, two days before the
    end of a 3-day evaluation. The run is those 4 hours (start and end computed from the
    plant), and the next day's 24-hour sums, which still hold the outage, report nothing
    more: no second run, no "spike" of a rate below its expected share."""
    rng = np.random.default_rng(24)
    outage = HOURS[-48 - 6: -48 - 2]  # 4 hours of the evaluated span
    frame = _payments(rng, {"stripe": 30.0, "paypal": 12.0},
                      lambda provider: np.where(
                          (provider == "paypal") & np.isin(HOURS, outage), 0.40, 0.04))
    result = detect_rates(frame[frame["target"] == "payment_failed"],
                          frame[frame["target"] == "payment_submitted"], "failure_rate",
                          window(evaluate=72), Settings())
    assert [(a.value, a.direction) for a in result.anomalies] == [("paypal", "up")]
    found = result.anomalies[0]
    assert found.start.timestamp() // 3600 == outage[0]
    assert found.end.timestamp() // 3600 == outage[-1] + 1
    assert found.periods == len(outage)
    assert found.change > 0


def test_an_unknown_target_names_the_closest_event_or_metric() -> None:
    from nerve.anomaly._run import resolve_target

    with pytest.raises(UserError, match=r"neither .* \(did you mean sync_failed\?\)"):
        resolve_target("sync_faild", None, ["sync_failed", "sync_attempted"])
    with pytest.raises(UserError) as far:
        resolve_target("revenue", None, ["sync_failed"])
    assert "did you mean" not in str(far.value)


def test_a_drop_that_began_before_the_window_says_so() -> None:
    # a 70% drop of the last 30 hours, judged over the last 24: its start is not known
    values = np.random.default_rng(6).poisson(rate(HOURS)).astype(float)
    values[-30:] = np.random.default_rng(7).poisson(rate(HOURS[-30:]) * 0.3)
    found, = detect(frame(add_to_cart=values), window(), Settings()).anomalies
    assert found.direction == "down"
    assert found.began_before
    assert found.start.timestamp() // 3600 == HOURS[-24]
    assert "for at least 24 period(s) from" in found.message()
    # the run's mean is judged on sums: the band shown is a single period's
    assert "per period against an expected" in found.message()
    assert "(one period's band " in found.message()
    assert " UTC or before, still ongoing." in found.message()
    assert found.as_dict()["began_before"] is True
    # one that began inside it keeps its start
    values[-30:-10] = np.random.default_rng(8).poisson(rate(HOURS[-30:-10]))
    found, = detect(frame(add_to_cart=values), window(), Settings()).anomalies
    assert not found.began_before
    assert "or before" not in found.message()


def test_a_rate_that_is_no_share_gets_the_band_of_counts() -> None:
    """Refunds per order (more refunds than orders in some hours) are judged as counts,
    with (phi, alpha); the band read phi as a share's rho and came out far too wide."""
    from nerve.anomaly._detect import _band
    from nerve.quality._seasonal import Rules, judge_rates, normal_score

    rng = np.random.default_rng(4)
    den = rng.poisson(rate(HOURS, 3.0)).astype(float)[:, None]
    num = rng.poisson(np.full(len(HOURS), 1.5)).astype(float)[:, None]
    assert (num > den).any()
    train = HOURS[-24] > HOURS
    rules = Rules()
    judgement = judge_rates(num, den, HOURS, train, ~train, rules)
    assert judgement.binomial is not None
    assert judgement.binomial.tolist() == [False]
    e, _low, high, _z = _band(judgement, rules, 1, True)
    phi, alpha = judgement.noise[min(judgement.noise)]
    level = normal_score(rules.q / max(int(judgement.tests.max()), 1))
    counts = np.sqrt(np.maximum(phi[None, :] * e + alpha[None, :] * e * e, 0))
    assert np.allclose(high, e + level * counts)
