"""Exposures and per-unit metric values read from an events table, on every engine."""

import dataclasses
import math
import statistics
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import NormalDist
from typing import Any

import pytest

from nerve.experiments import analyze_experiment, load_experiments, readout_dict
from nerve.experiments._plan import plan_experiment
from nerve.semantic import SemanticLayer

T0 = datetime(2026, 11, 2, 12, tzinfo=UTC)

EVENTS = {
    "experiment_viewed.yaml": """
name: experiment_viewed
properties:
  experiment_id: {type: string, required: true}
  variant_id: {type: string}
  variation_id: {type: string}
""",
    "checkout_start.yaml": "name: checkout_start\n",
    "purchase_complete.yaml": """
name: purchase_complete
properties:
  revenue: {type: number, required: true}
""",
}

METRICS = """
metrics:
  orders:
    measure: {agg: count, event: purchase_complete}
  revenue:
    measure: {agg: sum, event: purchase_complete, of: revenue}
  buyers:
    measure: {agg: count_distinct, event: purchase_complete}
  checkout_conversion:
    type: conversion
    entity: user
    base: {event: checkout_start}
    conversion: {event: purchase_complete}
    window: 1d
"""

EXPERIMENT = """
key: exp1
name: Test
variants: [control, treatment]
primary: checkout_conversion
secondary: [orders, revenue, buyers]
start: 2026-11-01
cuped_days: 7
"""


def ev(minutes: float, event: str, user: str, **props: Any) -> dict[str, Any]:
    return {"timestamp": T0 + timedelta(minutes=minutes), "event": event, "user_id": user,
            "properties": props}


def expose(minutes: float, user: str, variant: str, key: str = "variant_id") -> dict[str, Any]:
    return ev(minutes, "experiment_viewed", user, experiment_id="exp1", **{key: variant})


ROWS = [
    # u1: control; one purchase before exposure (CUPED's covariate), two after
    ev(-60, "purchase_complete", "u1", revenue=5.0),
    expose(0, "u1", "control"),
    expose(30, "u1", "control"),  # a second exposure, same variant: still one unit
    ev(10, "checkout_start", "u1"),
    ev(20, "purchase_complete", "u1", revenue=10.0),
    ev(40, "purchase_complete", "u1", revenue=20.0),
    # u2: control, starts a checkout and does not buy
    expose(0, "u2", "control"),
    ev(5, "checkout_start", "u2"),
    # u3: treatment through the Segment spec's variation_id; buys after a checkout
    expose(0, "u3", "treatment", key="variation_id"),
    ev(1, "checkout_start", "u3"),
    ev(2, "purchase_complete", "u3", revenue=7.5),
    # u4: treatment, its purchase happened before exposure only: counts 0 after
    ev(-30, "purchase_complete", "u4", revenue=99.0),
    expose(0, "u4", "treatment"),
    # u5: seen in both variants: excluded
    expose(0, "u5", "control"),
    expose(5, "u5", "treatment"),
    ev(6, "purchase_complete", "u5", revenue=1000.0),
    # another experiment's exposure is ignored
    ev(0, "experiment_viewed", "u6", experiment_id="other", variant_id="control"),
]


@pytest.fixture
def layer_and_exp(make_workspace: Any) -> tuple[SemanticLayer, Any]:
    ws = make_workspace(EVENTS)
    (ws.metrics_dir / "shop.yaml").write_text(METRICS)
    folder = Path(ws.root) / "experiments"
    folder.mkdir()
    (folder / "exp1.yaml").write_text(EXPERIMENT)
    return SemanticLayer.load(ws), load_experiments(folder)["exp1"]


# Spark runs the same Ibis expressions in the semantic layer's own suite; here it would
# cost minutes for no new code path
@pytest.mark.parametrize("engine", ["duckdb", "postgres"], indirect=True)
def test_units_and_values_after_first_exposure(engine: Any, events_table: Any,
                                               layer_and_exp: Any) -> None:
    layer, exp = layer_and_exp
    events = engine.load("exp_events", events_table(ROWS))
    readout = readout_dict(exp, analyze_experiment(exp, layer, events,
                                                   now=T0 + timedelta(days=1)))
    assert readout["units"] == {"control": 2, "treatment": 2}
    assert readout["excluded_multiple_variants"] == 1
    rows = {(r["metric"], r["variant"]): r for r in readout["rows"]}
    assert rows[("orders", "control")]["mean"] == pytest.approx(1.0)  # (2 + 0) / 2
    assert rows[("orders", "treatment")]["mean"] == pytest.approx(0.5)  # (1 + 0) / 2
    assert rows[("revenue", "control")]["mean"] == pytest.approx(15.0)
    assert rows[("revenue", "treatment")]["mean"] == pytest.approx(3.75)
    assert rows[("buyers", "control")]["mean"] == pytest.approx(0.5)
    # converted checkouts / checkouts: control 1/2, treatment 1/1
    assert rows[("checkout_conversion", "control")]["mean"] == pytest.approx(0.5)
    assert rows[("checkout_conversion", "treatment")]["mean"] == pytest.approx(1.0)
    assert rows[("orders", "treatment")]["lift"] == pytest.approx(-0.5)
    assert readout["srm_p_value"] == pytest.approx(1.0)


@pytest.mark.parametrize("engine", ["duckdb"], indirect=True)
def test_breakdown_by_a_dimension_at_first_exposure(engine: Any, events_table: Any,
                                                    layer_and_exp: Any) -> None:
    layer, exp = layer_and_exp
    rows = [{**row, "context": {"os": {"name": "iOS" if row["user_id"] in ("u1", "u3")
                                       else "Android"}}} for row in ROWS]
    events = engine.load("exp_events_by", events_table(rows))
    readout = readout_dict(exp, analyze_experiment(exp, layer, events, by="context.os.name",
                                                   now=T0 + timedelta(days=1)))
    by = {(r["value"], r["metric"], r["variant"]): r for r in readout["breakdown"]}
    assert {r["dimension"] for r in readout["breakdown"]} == {"context.os.name"}
    assert by[("iOS", "orders", "control")]["units"] == 1  # u1
    assert by[("iOS", "orders", "control")]["mean"] == pytest.approx(2.0)
    assert by[("iOS", "orders", "treatment")]["mean"] == pytest.approx(1.0)  # u3
    assert by[("Android", "orders", "control")]["mean"] == pytest.approx(0.0)  # u2
    assert by[("Android", "revenue", "treatment")]["mean"] == pytest.approx(0.0)  # u4
    # the overall rows are unchanged by the breakdown
    assert {(r["metric"], r["variant"]): r["units"] for r in readout["rows"]}[
        ("orders", "control")] == 2


@pytest.mark.parametrize("engine", ["duckdb", "postgres"], indirect=True)
def test_plan_reads_the_primary_over_every_active_unit(engine: Any, events_table: Any,
                                                       layer_and_exp: Any) -> None:
    # u1..u6 are active; u1, u3, u4 and u5 bought: buyers' baseline is 4/6, not 1.0
    layer, exp = layer_and_exp
    events = engine.load("exp_events_plan", events_table(ROWS))
    plan = plan_experiment(dataclasses.replace(exp, primary="buyers"), layer, events,
                           baseline_days=14, now=T0 + timedelta(days=1))
    std = statistics.stdev([1, 1, 1, 1, 0, 0])
    z = NormalDist().inv_cdf(0.975) + NormalDist().inv_cdf(0.8)
    assert plan["baseline"] == pytest.approx(4 / 6)
    assert plan["baseline_std"] == pytest.approx(std)
    assert plan["units_per_variant"] == math.ceil(2 * (z * std / (0.05 * 4 / 6)) ** 2)
    assert plan["eligible_units_per_day"] == pytest.approx(6 / 14)


@pytest.mark.parametrize("engine", ["duckdb"], indirect=True)
def test_units_in_a_variant_the_file_lacks_are_counted_and_warned(
        engine: Any, events_table: Any, layer_and_exp: Any) -> None:
    # an SDK sending "Treatment" for the file's "treatment": those units were silently gone
    rows = [*ROWS, expose(0, "u7", "Treatment"), expose(0, "u8", "Treatment"),
            expose(5, "u8", "Treatment"), expose(0, "u9", "beta")]
    layer, exp = layer_and_exp
    events = engine.load("exp_events_unknown", events_table(rows))
    readout = readout_dict(exp, analyze_experiment(exp, layer, events,
                                                   now=T0 + timedelta(days=1)))
    assert readout["units"] == {"control": 2, "treatment": 2}  # still not counted
    assert readout["unknown_variants"] == {"Treatment": 2, "beta": 1}
    [warning] = readout["warnings"]
    assert "3 units of exp1" in warning
    assert "2 in 'Treatment' (did you mean treatment?)" in warning
    assert "1 in 'beta'" in warning


@pytest.mark.parametrize("engine", ["duckdb"], indirect=True)
def test_units_under_the_key_in_another_case_are_counted_and_warned(
        engine: Any, events_table: Any, layer_and_exp: Any) -> None:
    # an SDK sending experiment_id "EXP1" for the file's "exp1": never matched, no word
    rows = [*ROWS, ev(0, "experiment_viewed", "u7", experiment_id="EXP1", variant_id="control"),
            ev(0, "experiment_viewed", "u8", experiment_id="Exp1", variant_id="treatment"),
            ev(9, "experiment_viewed", "u8", experiment_id="Exp1", variant_id="treatment")]
    layer, exp = layer_and_exp
    events = engine.load("exp_events_miscased", events_table(rows))
    readout = readout_dict(exp, analyze_experiment(exp, layer, events,
                                                   now=T0 + timedelta(days=1)))
    assert readout["units"] == {"control": 2, "treatment": 2}  # still not counted
    [warning] = readout["warnings"]
    assert "2 units were exposed under the key 'exp1' in another case" in warning
    assert "1 as 'EXP1', 1 as 'Exp1'" in warning


@pytest.mark.parametrize("engine", ["duckdb"], indirect=True)
def test_no_unknown_variant_warning_when_every_key_is_known(
        engine: Any, events_table: Any, layer_and_exp: Any) -> None:
    layer, exp = layer_and_exp
    events = engine.load("exp_events_known", events_table(ROWS))
    readout = readout_dict(exp, analyze_experiment(exp, layer, events,
                                                   now=T0 + timedelta(days=1)))
    assert readout["unknown_variants"] == {}
    assert readout["warnings"] == []


@pytest.mark.parametrize("engine", ["duckdb"], indirect=True)
def test_plan_of_several_treatments_sizes_each_comparison_at_its_share_of_alpha(
        engine: Any, events_table: Any, layer_and_exp: Any) -> None:
    # the analysis compares each of two treatments at alpha / 2: a plan at alpha promised
    # a power the readout could not reach
    layer, exp = layer_and_exp
    events = engine.load("exp_events_plan3", events_table(ROWS))
    three = dataclasses.replace(exp, primary="buyers",
                                variants=(*exp.variants, dataclasses.replace(
                                    exp.variants[1], key="other")))
    plan = plan_experiment(three, layer, events, baseline_days=14,
                           now=T0 + timedelta(days=1))
    std = statistics.stdev([1, 1, 1, 1, 0, 0])
    z = NormalDist().inv_cdf(1 - 0.05 / 4) + NormalDist().inv_cdf(0.8)
    assert plan["alpha"] == 0.05
    assert plan["alpha_per_comparison"] == pytest.approx(0.025)
    assert plan["units_per_variant"] == math.ceil(2 * (z * std / (0.05 * 4 / 6)) ** 2)
