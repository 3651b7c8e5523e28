"""The readout on per-unit data with known truth: effects, CUPED, health checks, decisions."""

import math
from datetime import UTC, datetime, timedelta
from statistics import NormalDist

import numpy as np
import pyarrow as pa
import pytest
from statsmodels.stats.proportion import confint_proportions_2indep

from nerve.experiments._analysis import ArmData, MetricData, analyze
from nerve.experiments._run import report_text
from nerve.experiments._units import Exposures, recent_pace


def arm(values: np.ndarray, pre: np.ndarray | None = None,
        den: np.ndarray | None = None) -> ArmData:
    ones = np.ones(values.size)
    return ArmData(values.astype(float), ones if den is None else den.astype(float),
                   (np.zeros(values.size) if pre is None else pre).astype(float), ones)


def simple_metric(control: ArmData, treatment: ArmData, *, name: str = "orders",
                  role: str = "primary", up_is_good: bool = True) -> MetricData:
    return MetricData(name, role, up_is_good, {"control": control, "treatment": treatment})


def test_clear_winner_ships_and_rows_have_every_field() -> None:
    rng = np.random.default_rng(1)
    c = arm(rng.normal(10, 2, 4000))
    t = arm(rng.normal(11, 2, 4000))
    readout = analyze("exp", "control", ["control", "treatment"], [1, 1],
                      [simple_metric(c, t)], mde=0.05)
    assert readout.decision == "ship"
    row = readout.rows[1].as_dict()
    for key in ("variant", "metric", "units", "mean", "std", "lift", "ci_low", "ci_high",
                "p_value", "seq_ci_low", "seq_ci_high", "cuped_lift", "cuped_ci_low",
                "cuped_ci_high", "chance_to_win", "srm_p_value"):
        assert key in row
    assert row["lift"] == pytest.approx(0.1, abs=0.01)
    assert row["ci_low"] < 0.1 < row["ci_high"]
    assert row["seq_ci_low"] < row["ci_low"]  # always-valid intervals are wider
    assert row["chance_to_win"] > 0.999
    assert readout.rows[0].lift is None  # the control's row carries its level only


def test_harmful_primary_stops_and_down_is_good_flips_chance() -> None:
    rng = np.random.default_rng(2)
    c = arm(rng.normal(10, 2, 4000))
    t = arm(rng.normal(9, 2, 4000))
    assert analyze("e", "control", ["control", "treatment"], [1, 1],
                   [simple_metric(c, t)]).decision == "stop"
    fewer_errors = analyze("e", "control", ["control", "treatment"], [1, 1],
                           [simple_metric(c, t, name="errors", up_is_good=False)])
    assert fewer_errors.decision == "ship"
    assert fewer_errors.rows[1].chance_to_win is not None
    assert fewer_errors.rows[1].chance_to_win > 0.99


def test_sample_ratio_mismatch_means_investigate() -> None:
    rng = np.random.default_rng(3)
    c = arm(rng.normal(10, 2, 5400))
    t = arm(rng.normal(12, 2, 4600))
    readout = analyze("e", "control", ["control", "treatment"], [1, 1], [simple_metric(c, t)])
    assert readout.srm_p_value < 0.001
    assert readout.decision == "investigate"
    assert "sample ratio mismatch" in readout.reasons[0]


def test_harmed_guardrail_blocks_shipping() -> None:
    rng = np.random.default_rng(4)
    primary = simple_metric(arm(rng.normal(10, 2, 4000)), arm(rng.normal(11, 2, 4000)))
    guard = simple_metric(arm(rng.normal(1, 0.5, 4000)), arm(rng.normal(1.3, 0.5, 4000)),
                          name="payment_failures", role="guardrail", up_is_good=False)
    readout = analyze("e", "control", ["control", "treatment"], [1, 1], [primary, guard])
    assert readout.decision == "investigate"
    assert any("guardrail payment_failures got worse" in r for r in readout.reasons)


def test_cuped_narrows_the_interval_without_moving_the_estimate() -> None:
    rng = np.random.default_rng(5)
    pre_c, pre_t = rng.normal(20, 5, 3000), rng.normal(20, 5, 3000)
    c = arm(0.8 * pre_c + rng.normal(0, 2, 3000), pre_c)
    t = arm(0.8 * pre_t + 0.5 + rng.normal(0, 2, 3000), pre_t)
    row = analyze("e", "control", ["control", "treatment"], [1, 1],
                  [simple_metric(c, t)]).rows[1]
    assert row.cuped_ci_high - row.cuped_ci_low < 0.5 * (row.ci_high - row.ci_low)
    true_lift = 0.5 / (0.8 * 20)
    assert row.cuped_ci_low < true_lift < row.cuped_ci_high
    assert row.cuped_imbalance_p > 0.001


def test_ratio_metric_uses_sums_not_mean_of_ratios() -> None:
    num_c, den_c = np.array([1, 0, 3, 1]), np.array([2, 1, 4, 1])
    num_t, den_t = np.array([2, 2, 0, 1]), np.array([2, 3, 1, 2])
    metric = MetricData("conversion", "primary", True,
                        {"control": arm(num_c, den=den_c), "treatment": arm(num_t, den=den_t)},
                        ratio=True)
    rows = analyze("e", "control", ["control", "treatment"], [1, 1], [metric]).rows
    assert rows[0].mean == pytest.approx(5 / 8)
    assert rows[1].mean == pytest.approx(5 / 8)
    assert rows[1].lift == pytest.approx(0.0)


def test_not_yet_conclusive_says_how_long() -> None:
    rng = np.random.default_rng(6)
    c = arm(rng.normal(10, 5, 100))
    t = arm(rng.normal(10.2, 5, 100))
    readout = analyze("e", "control", ["control", "treatment"], [1, 1],
                      [simple_metric(c, t)], mde=0.02, pace=20)
    assert readout.decision == "keep running"
    planned = readout.planned_units_per_variant
    assert planned is not None
    assert planned > 100
    days = math.ceil((planned - 100) / 20)
    assert f"about {days} more days for {planned:,} units per variant (now 100, and 20 new a " \
           "day over the last 7 days)" in readout.reasons[0]


def test_no_new_units_lately_is_said_not_turned_into_days() -> None:
    rng = np.random.default_rng(6)
    c = arm(rng.normal(10, 5, 100))
    t = arm(rng.normal(10.2, 5, 100))
    readout = analyze("e", "control", ["control", "treatment"], [1, 1],
                      [simple_metric(c, t)], mde=0.02, pace=0.0)
    assert readout.decision == "keep running"
    assert "no new units in the last 7 days" in readout.reasons[0]
    assert "more days" not in readout.reasons[0]


def test_holm_across_metrics() -> None:
    rng = np.random.default_rng(7)
    metrics = [simple_metric(arm(rng.normal(10, 2, 500)), arm(rng.normal(10.3, 2, 500)),
                             name=f"m{i}", role="primary" if i == 0 else "secondary")
               for i in range(3)]
    rows = [r for r in analyze("e", "control", ["control", "treatment"], [1, 1],
                               metrics).rows if r.lift is not None]
    ps = sorted((r.p_value or 0, r.p_value_adjusted or 0) for r in rows)
    assert ps[0][1] == pytest.approx(min(1.0, 3 * ps[0][0]))
    assert all(adj >= p for p, adj in ps)


def test_recent_pace_reads_the_last_week_not_the_average_since_the_start() -> None:
    """Many units on the first days, then a trickle: the pace is the trickle's."""
    until = datetime(2026, 3, 31, tzinfo=UTC)
    start = until - timedelta(days=30)
    stamps = [start + timedelta(hours=i) for i in range(200)]  # days 0-8: 100 per arm
    stamps += [until - timedelta(days=6, hours=-i) for i in range(14)]  # last week: 7 per arm
    units = pa.table({"unit": [f"u{i}" for i in range(len(stamps))],
                      "variant": ["control", "treatment"] * (len(stamps) // 2),
                      "first_ts": pa.array(stamps, pa.timestamp("us", tz="UTC"))})
    exposed = Exposures(units, 0, min(stamps), max(stamps))
    assert recent_pace(exposed, ["control", "treatment"], until) == pytest.approx(1.0)
    young = Exposures(units.slice(0, 20), 0, stamps[0], stamps[19])  # 10 per arm
    assert recent_pace(young, ["control", "treatment"], start + timedelta(days=2)) \
        == pytest.approx(5.0)
    assert recent_pace(Exposures(units.slice(0, 0), 0, None, None),
                       ["control", "treatment"], until) is None


def _at_planned(lift: float, seed: int) -> tuple[object, object]:
    """A readout at (just past) its planned sample, with a true relative lift ``lift``."""
    rng = np.random.default_rng(seed)
    n = 200
    for _ in range(10):  # the plan comes from the control's own spread: settle on it
        c, t = rng.normal(10, 2, n), rng.normal(10 * (1 + lift), 2, n)
        readout = analyze("e", "control", ["control", "treatment"], [1, 1],
                          [simple_metric(arm(c), arm(t))], mde=0.05)
        planned = readout.planned_units_per_variant or 0
        if n >= planned:
            return readout, readout.rows[1]
        n = planned + 5
    raise AssertionError("the planned sample did not settle")


def test_planned_sample_reached_stops_only_when_the_mde_is_ruled_out() -> None:
    # a true lift of the MDE: at the planned sample the fixed-horizon test finds it 80% of
    # the time, the wider always-valid interval less often; "no effect of at least the
    # minimum detectable size" would be false while the interval still holds +5%
    for seed in range(40):
        readout, row = _at_planned(0.05, seed)
        if row.seq_ci_low < 0 < 0.05 < row.seq_ci_high:
            break
    else:
        raise AssertionError("no run with an interval holding both 0 and the MDE")
    assert readout.decision == "keep running"
    assert not any("no effect of at least" in r for r in readout.reasons)
    assert "holds both no change and the minimum detectable effect (+5.0%)" \
        in readout.reasons[0]
    # no effect at all, with enough units that the interval excludes the MDE: stop
    rng = np.random.default_rng(9)
    n = 4 * (readout.planned_units_per_variant or 0)
    big = analyze("e", "control", ["control", "treatment"], [1, 1],
                  [simple_metric(arm(rng.normal(10, 2, n)), arm(rng.normal(10, 2, n)))],
                  mde=0.05)
    assert big.rows[1].seq_ci_high is not None
    assert big.rows[1].seq_ci_high < 0.05
    assert big.decision == "stop"
    assert "no effect of at least the minimum detectable size" in big.reasons[0]


def test_every_variant_is_judged_whatever_its_order() -> None:
    rng = np.random.default_rng(10)
    c, a, b = rng.normal(10, 2, 4000), rng.normal(9, 2, 4000), rng.normal(11, 2, 4000)
    metric = MetricData("orders", "primary", True,
                        {"control": arm(c), "a": arm(a), "b": arm(b)})
    for order in (["control", "a", "b"], ["control", "b", "a"]):
        readout = analyze("e", "control", order, [1, 1, 1], [metric])
        assert readout.decision == "ship"
        assert readout.reasons[0].startswith("b is better on orders")
        assert any(r.startswith("a is worse on orders") for r in readout.reasons)
    # every variant worse: stop
    worse = MetricData("orders", "primary", True,
                       {"control": arm(c), "a": arm(a), "b": arm(a - 0.5)})
    assert analyze("e", "control", ["control", "a", "b"], [1, 1, 1],
                   [worse]).decision == "stop"
    # one worse, one not conclusive: drop the worse one, keep running
    mixed = MetricData("orders", "primary", True,
                       {"control": arm(c), "a": arm(a), "b": arm(rng.normal(10, 2, 4000))})
    readout = analyze("e", "control", ["control", "a", "b"], [1, 1, 1], [mixed], mde=0.01)
    assert (readout.planned_units_per_variant or 0) > 4000
    assert readout.decision == "keep running"
    assert any("a is worse on orders" in r and "drop it" in r for r in readout.reasons)


def test_an_ended_experiment_says_so_instead_of_counting_days() -> None:
    rng = np.random.default_rng(6)
    c = arm(rng.normal(10, 5, 100))
    t = arm(rng.normal(10.2, 5, 100))
    ended = datetime(2026, 11, 28, tzinfo=UTC)  # `end: 2026-11-27`: its last day
    readout = analyze("e", "control", ["control", "treatment"], [1, 1],
                      [simple_metric(c, t)], mde=0.02, pace=20, ended=ended)
    assert readout.decision == "keep running"
    assert "ended after 2026-11-27" in readout.reasons[0]
    assert "move its `end` later" in readout.reasons[0]
    assert "more days" not in readout.reasons[0]


def test_no_decision_on_a_handful_of_units() -> None:
    """Three equal values per arm made a zero-width always-valid interval, and SHIP."""
    tiny = analyze("e", "control", ["control", "treatment"], [1, 1],
                   [simple_metric(arm(np.full(3, 2.0)), arm(np.full(3, 3.0)))])
    assert tiny.decision == "keep running"
    assert any(r.startswith("too few units to decide: 3 in the smallest variant")
               for r in tiny.reasons), tiny.reasons
    # the same clear effect on enough units ships
    rng = np.random.default_rng(8)
    enough = analyze("e", "control", ["control", "treatment"], [1, 1],
                     [simple_metric(arm(rng.normal(2, 0.5, 150)),
                                    arm(rng.normal(3, 0.5, 150)))])
    assert enough.decision == "ship"


def test_a_win_among_several_variants_needs_the_interval_shared_among_them() -> None:
    # each treatment compared with the control is one more chance to ship by luck: an A/A
    # test of four null variants, peeked at 50 times, shipped or dropped one in 8% of
    # simulated runs with every interval at alpha; the intervals now share it
    rng = np.random.default_rng(3)
    control, noise = rng.normal(10, 2, 3000), rng.normal(0, 2, 3000)
    treatment = 10.25 + noise
    alone = {"control": arm(control), "t": arm(treatment)}
    two = analyze("e", "control", list(alone), [1, 1],
                  [MetricData("orders", "primary", True, alone)], mde=0.05)
    among = {**alone, "n1": arm(control), "n2": arm(control), "n3": arm(control)}
    five = analyze("e", "control", list(among), [1] * 5,
                   [MetricData("orders", "primary", True, among)], mde=0.05)
    assert two.decision == "ship"
    assert five.decision != "ship"
    row2, row5 = (next(r for r in x.rows if r.variant == "t") for x in (two, five))
    assert row5.lift == pytest.approx(row2.lift)
    assert (row5.seq_ci_low or 0) < (row2.seq_ci_low or 0) < 0.025
    assert (row5.seq_ci_high or 0) > (row2.seq_ci_high or 0)
    # the fixed-horizon interval is each comparison's own, unchanged
    assert (row5.ci_low, row5.ci_high) == pytest.approx((row2.ci_low, row2.ci_high))


def test_a_shipped_variant_among_several_names_its_interval_level() -> None:
    rng = np.random.default_rng(10)
    c, a, b = rng.normal(10, 2, 4000), rng.normal(10, 2, 4000), rng.normal(11, 2, 4000)
    metric = MetricData("orders", "primary", True,
                        {"control": arm(c), "a": arm(a), "b": arm(b)})
    readout = analyze("e", "control", ["control", "a", "b"], [1, 1, 1], [metric])
    assert readout.decision == "ship"
    assert "always-valid 97.5% interval" in readout.reasons[0]  # 95% over both variants


def test_holm_across_variants_as_across_metrics() -> None:
    rng = np.random.default_rng(7)
    c = rng.normal(10, 2, 500)
    metric = MetricData("orders", "primary", True,
                        {"control": arm(c), "a": arm(rng.normal(10.3, 2, 500)),
                         "b": arm(rng.normal(10, 2, 500))})
    rows = [r for r in analyze("e", "control", ["control", "a", "b"], [1, 1, 1],
                               [metric]).rows if r.lift is not None]
    ps = sorted((r.p_value or 0, r.p_value_adjusted or 0) for r in rows)
    assert ps[0][1] == pytest.approx(min(1.0, 2 * ps[0][0]))  # two comparisons
    assert ps[1][1] == pytest.approx(max(ps[0][1], ps[1][0]))


def test_the_text_readout_labels_the_always_valid_level_it_used() -> None:
    # with two treatments the always-valid intervals are 97.5% ones: the text showed them
    # beside the "95% CI" with no level, as if they were 95% ones too
    rng = np.random.default_rng(4)
    arms = {v: arm(rng.normal(10, 2, 500)) for v in ("control", "a", "b")}
    for variants, level in ((["control", "a"], "95%"), (["control", "a", "b"], "97.5%")):
        readout = analyze("e", "control", variants, [1] * len(variants),
                          [MetricData("orders", "primary", True,
                                      {v: arms[v] for v in variants})])
        text = report_text({"name": "E", "experiment": "e", "alpha": 0.05,
                            "decision": readout.decision, "reasons": readout.reasons,
                            "units": readout.units, "srm_p_value": readout.srm_p_value,
                            "excluded_multiple_variants": 0,
                            "rows": [r.as_dict() for r in readout.rows]})
        lines = [line for line in text.splitlines() if "95% CI" in line]
        assert len(lines) == len(variants) - 1
        assert all(f"always-valid {level} " in line for line in lines)


def test_the_readout_sizes_several_treatments_as_the_plan_does() -> None:
    rng = np.random.default_rng(5)
    control = arm(rng.normal(10, 2, 300))
    arms = {"control": control, "a": arm(rng.normal(10, 2, 300)),
            "b": arm(rng.normal(10, 2, 300))}
    two = analyze("e", "control", ["control", "a"], [1, 1],
                  [MetricData("orders", "primary", True, arms)])
    three = analyze("e", "control", ["control", "a", "b"], [1, 1, 1],
                    [MetricData("orders", "primary", True, arms)])
    mean, std = float(control.num.mean()), float(control.num.std(ddof=1))
    for readout, per_comparison in ((two, 0.05), (three, 0.025)):
        z = NormalDist().inv_cdf(1 - per_comparison / 2) + NormalDist().inv_cdf(0.8)
        assert readout.planned_units_per_variant == math.ceil(
            2 * (z * std / (0.05 * mean)) ** 2)


def test_the_text_readout_indents_every_role_alike() -> None:
    # "primary" was right-aligned to the width of "secondary": two spaces before it,
    # none before the secondary and guardrail lines
    rng = np.random.default_rng(6)
    metrics = [MetricData(name, role, True, {v: arm(rng.normal(10, 2, 300))
                                             for v in ("control", "a")})
               for name, role in (("orders", "primary"), ("revenue", "secondary"),
                                  ("refunds", "guardrail"))]
    readout = analyze("e", "control", ["control", "a"], [1, 1], metrics)
    text = report_text({"name": "E", "experiment": "e", "alpha": 0.05,
                        "decision": readout.decision, "reasons": readout.reasons,
                        "units": readout.units, "srm_p_value": readout.srm_p_value,
                        "excluded_multiple_variants": 0,
                        "rows": [r.as_dict() for r in readout.rows]})
    lines = [line for line in text.splitlines() if "95% CI" in line]
    assert [line.split()[0] for line in lines] == ["primary", "secondary", "guardrail"]
    indents = {len(line) - len(line.lstrip()) for line in lines}
    assert len(indents) == 1


def test_a_variant_without_units_or_events_has_no_effect_but_a_zero_rate_is_data() -> None:
    rng = np.random.default_rng(4)
    control = arm(rng.binomial(1, 0.3, 300).astype(float))
    metric = MetricData("conversion", "primary", True, {
        "control": control, "silent": arm(np.zeros(300)), "ghost": arm(np.zeros(0))})
    readout = analyze("exp", "control", ["control", "silent", "ghost"], [1, 1, 0.0001],
                      [metric])
    silent, ghost = readout.rows[1], readout.rows[2]
    assert (silent.note, ghost.note) == ("no events", "no units")
    for row in (silent, ghost):  # the ghost's p-value read 1.0 and its imbalance p 1.0
        assert (row.lift, row.ci_low, row.p_value, row.cuped_imbalance_p,
                row.chance_to_win) == (None, None, None, None, None)
    assert readout.warnings == [
        "silent: no events of conversion among its 300 units, so no lift to read (is the "
        "variant sending them?)", "ghost: no units exposed, so no result"]
    # a ratio metric with payments but no failed one measured a rate of 0: that is read
    payments = rng.integers(1, 4, 300).astype(float)
    failures = MetricData("failure_rate", "guardrail", False, {
        "control": arm(rng.binomial(1, 0.2, 300).astype(float), den=payments),
        "treatment": arm(np.zeros(300), den=payments)}, ratio=True)
    row = analyze("exp", "control", ["control", "treatment"], [1, 1], [failures]).rows[1]
    assert row.note is None
    assert row.mean == 0
    # its interval has a width (add-half: see test_a_count_of_zero_...)
    assert -1 < row.ci_low < row.lift < row.ci_high  # type: ignore[operator]


def _rates(events: np.ndarray, den: np.ndarray) -> ArmData:
    return arm(events.astype(float), den=den.astype(float))


def test_a_count_of_zero_in_a_ratio_has_an_interval_with_a_width() -> None:
    """22 failed payments of about 2,000 in control, none in the treatment: the delta
    method's variance of a rate of 0 is 0, and the readout said -100% with an interval
    from -100% to -100% (fixed and always-valid), a certain win, SHIP on 1,000 units."""
    rng = np.random.default_rng(4)
    payments = rng.integers(1, 4, 1000)
    failures = MetricData("failure_rate", "primary", False, {
        "control": _rates(rng.binomial(payments, 0.01), payments),
        "treatment": _rates(np.zeros(1000), payments)}, ratio=True)
    readout = analyze("exp", "control", ["control", "treatment"], [1, 1], [failures])
    row = readout.rows[1]
    assert row.mean == 0
    assert -1 < row.ci_low < row.lift < row.ci_high < 0  # type: ignore[operator]
    assert -1 < row.seq_ci_low < row.seq_ci_high  # type: ignore[operator]
    assert row.as_dict()["cuped_lift"] is None  # CUPED adjusts the zero-width estimate
    assert row.chance_to_win is not None
    assert row.chance_to_win < 1
    assert readout.decision != "ship"
    assert any("treatment counted none" in w and "add half an event" in w
               for w in readout.warnings)


@pytest.mark.parametrize(("control_events", "units"), [(30, 1000), (60, 3000), (0, 300)])
def test_a_conversion_of_zero_matches_statsmodels_log_adjusted(control_events: int,
                                                                units: int) -> None:
    """Gart's add-half log ratio is statsmodels' default interval of a ratio of two
    proportions (method="log-adjusted"); the control's variance is the delta method's
    where larger, about the same here, hence the tolerance."""
    converted = np.zeros(units)
    converted[:control_events] = 1
    metric = MetricData("conversion", "primary", True, {
        "control": _rates(converted, np.ones(units)),
        "treatment": _rates(np.zeros(units), np.ones(units))}, ratio=True)
    row = analyze("exp", "control", ["control", "treatment"], [1, 1], [metric]).rows[1]
    low, high = confint_proportions_2indep(0, units, control_events, units,
                                           compare="ratio", method="log-adjusted")
    assert (row.ci_low, row.ci_high) == pytest.approx((low - 1, high - 1), rel=1e-3)


@pytest.mark.parametrize(("rate", "true_lift", "units"),
                         [(0.01, -0.8, 300), (0.005, -0.5, 400), (0.01, 0.0, 200)])
def test_rare_failures_with_zero_counts_are_covered(rate: float, true_lift: float,
                                                    units: int) -> None:
    """Failures per payment rare enough that a variant often counts none: over every
    run, zero counts included, the 95% interval covers the true lift about 95% of the
    time or more (add-half is conservative). The zero-width interval at -100% covered it
    in none of the runs with a zero count (66% overall at -80%)."""
    rng = np.random.default_rng(11)
    runs, covered, zero, zero_covered = 400, 0, 0, 0
    for _ in range(runs):
        payments = rng.integers(1, 4, 2 * units)
        c = rng.binomial(payments[:units], rate)
        t = rng.binomial(payments[units:], rate * (1 + true_lift))
        metric = MetricData("failure_rate", "guardrail", False, {
            "control": _rates(c, payments[:units]),
            "treatment": _rates(t, payments[units:])}, ratio=True)
        row = analyze("exp", "control", ["control", "treatment"], [1, 1], [metric]).rows[1]
        ok = row.ci_low is not None and row.ci_low <= true_lift <= row.ci_high
        covered += ok
        if not (c.any() and t.any()):
            zero += 1
            zero_covered += ok
    assert zero >= 15
    assert covered / runs >= 0.94
    assert zero_covered / zero >= 0.9
