"""Analyse an experiment end to end: definitions, warehouse, semantic layer, readout."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import ibis.expr.types as ir
import numpy as np

from nerve.errors import did_you_mean
from nerve.experiments._analysis import MetricData, Readout, analyze
from nerve.experiments._model import Experiment
from nerve.experiments._units import (
    check_metrics,
    collect,
    quarantined_exposures,
    recent_pace,
    unit_dimension,
)
from nerve.semantic import SemanticLayer

__all__ = ["analyze_experiment", "confidence_level", "readout_dict", "report_text",
           "sequential_level"]


def analyze_experiment(exp: Experiment, layer: SemanticLayer, events: ir.Table, *,
                       now: datetime | None = None, by: str | None = None,
                       masked_key: str | None = None) -> Readout:
    """Every statistic of ``exp`` over the warehouse's ``events``, with a decision.

    ``by`` (a dimension such as ``platform`` or ``user.age_group``) adds the same rows per
    value of it at each unit's first exposure, in ``Readout.breakdown``. On a reader's
    view, ``masked_key`` is the experiment's key as that view masks an undeclared value
    (so the quarantined exposures are counted as on the admin's).
    """
    now = now or datetime.now(UTC)
    check_metrics(exp, layer)  # an unknown metric fails here, naming file, line and field
    data, exposed = collect(exp, layer, events, now=now)
    until = min(exp.end, now) if exp.end else now
    pace = recent_pace(exposed, exp.variant_keys, until)

    def read(metrics: list[MetricData]) -> Readout:
        return analyze(exp.key, exp.control, exp.variant_keys, exp.weights, metrics,
                       alpha=exp.alpha, correction=exp.correction, mde=exp.mde,
                       power=exp.power, excluded=exposed.excluded, pace=pace,
                       ended=exp.end if exp.end is not None and exp.end <= now else None)

    readout = read(data)
    readout.quarantined_exposures = quarantined_exposures(exp, events, until,
                                                          masked_key=masked_key)
    readout.warnings.extend(_quarantine_warning(exp.key, readout.quarantined_exposures))
    readout.unknown_variants = exposed.unknown
    readout.warnings.extend(_unknown_variant_warning(exp, exposed.unknown))
    if exposed.miscased:
        spellings = ", ".join(f"{n} as {key!r}" for key, n in exposed.miscased.items())
        readout.warnings.append(
            f"{sum(exposed.miscased.values())} units were exposed under the key "
            f"{exp.key!r} in another case and are not counted here ({spellings}): the "
            "experiment_id the SDKs send must match the file's key, case included")
    if by is None:
        return readout
    values = unit_dimension(exp, layer, events, by, until)
    for value in sorted({v for v in values.values() if v is not None}):
        part = []
        for metric in data:
            arms = {}
            for variant, arm in metric.arms.items():
                keep = np.array([values.get(u) == value for u in arm.ids], dtype=bool)
                arms[variant] = arm.subset(keep) if arm.n else arm
            part.append(MetricData(metric.name, metric.role, metric.up_is_good, arms,
                                   metric.ratio))
        for row in read(part).rows:
            row.dimension, row.value = by, value
            readout.breakdown.append(row)
    return readout


def _quarantine_warning(key: str, held: dict[str, int]) -> list[str]:
    if not held:
        return []
    events = ", ".join(f"{n} {event!r}" for event, n in held.items())
    return [f"{sum(held.values())} exposures of {key} are in the quarantine and not counted "
            f"here ({events}): catalog the event or fix what its violations say (`nerve "
            f"quarantine list --event NAME`), then `nerve quarantine replay`"]


def _unknown_variant_warning(exp: Experiment, unknown: dict[str, int]) -> list[str]:
    if not unknown:
        return []
    keys = ", ".join(f"{n} in {variant!r}{did_you_mean(variant, exp.variant_keys)}"
                     for variant, n in unknown.items())
    where = exp.file or f"experiments/{exp.key}.yaml"
    return [f"{sum(unknown.values())} units of {exp.key} were exposed to a variant that "
            f"{where} does not have and are not counted here ({keys}; its variants: "
            f"{', '.join(exp.variant_keys)}): the variant keys the SDKs send must match "
            "the file's, case included"]


def readout_dict(exp: Experiment, readout: Readout) -> dict[str, Any]:
    """The readout as JSON: experiment-level health and decision, and one row per
    variant and metric (``rows``)."""
    return {
        "experiment": exp.key, "name": exp.name, "hypothesis": exp.hypothesis,
        "alpha": exp.alpha, "decision": readout.decision, "reasons": readout.reasons,
        "srm_p_value": readout.srm_p_value, "units": readout.units,
        "excluded_multiple_variants": readout.excluded_multiple_variants,
        "planned_units_per_variant": readout.planned_units_per_variant,
        "quarantined_exposures": readout.quarantined_exposures,
        "unknown_variants": readout.unknown_variants,
        "warnings": readout.warnings,
        "rows": [row.as_dict() for row in readout.rows],
        "breakdown": [row.as_dict() for row in readout.breakdown],
    }


def confidence_level(readout: dict[str, Any]) -> str:
    """The intervals' level as people read it: alpha 0.1 gives "90%", 0.025 "97.5%"."""
    return f"{100 * (1 - float(readout.get('alpha', 0.05))):.4g}%"


def sequential_level(readout: dict[str, Any]) -> str:
    """The always-valid intervals' level: the treatment variants share alpha, so with
    two of them and alpha 0.05 it is "97.5%" (with one, the same as the fixed-horizon's)."""
    treatments = max(1, len(readout.get("units") or {}) - 1)
    return f"{100 * (1 - float(readout.get('alpha', 0.05)) / treatments):.4g}%"


def _pct(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:+.1%}"


def report_text(readout: dict[str, Any]) -> str:
    """A readout that reads like a decision: the effect, its uncertainty, the health
    checks, and what to do next."""
    lines = [f"{readout['name']} ({readout['experiment']})"]
    if readout.get("hypothesis"):
        lines.append(f"Hypothesis: {readout['hypothesis']}")
    lines.append("")
    lines.extend(f"WARNING: {warning}" for warning in readout.get("warnings", []))
    decision = {"ship": "SHIP", "stop": "STOP", "keep running": "KEEP RUNNING",
                "investigate": "INVESTIGATE"}.get(readout["decision"], readout["decision"])
    lines.append(f"Decision: {decision}")
    lines.extend(f"  - {reason}" for reason in readout["reasons"])
    lines.append("")
    units = ", ".join(f"{v}: {n}" for v, n in readout["units"].items())
    srm = readout["srm_p_value"]
    health = "ok" if srm >= 0.001 else "MISMATCH"
    lines.append(f"Units {units} (sample ratio p = {srm:.3g}, {health}); "
                 f"{readout['excluded_multiple_variants']} excluded for seeing two variants.")
    level = confidence_level(readout)
    seq_level = sequential_level(readout)
    for row in readout["rows"]:
        if row.get("note") == "no units":
            continue  # the warnings name the variant once
        if row.get("note"):  # no events: nothing to read, not a certain -100% lift
            lines.append(f"  {row['role']} {row['metric']}: {row['variant']} {row['note']} "
                         f"({row['units']:,} units)")
            continue
        if row["lift"] is None:
            continue
        # one indent for every role: right-aligning them indented "primary" alone
        lines.append(
            f"  {row['role']} {row['metric']}: {row['variant']} {_pct(row['lift'])} "
            f"({level} CI {_pct(row['ci_low'])} to {_pct(row['ci_high'])}, p = "
            f"{row['p_value']:.3g}; always-valid {seq_level} {_pct(row['seq_ci_low'])} to "
            f"{_pct(row['seq_ci_high'])}; CUPED {_pct(row['cuped_lift'])}; "
            f"chance to win {row['chance_to_win']:.1%})"
            if row["p_value"] is not None and row["chance_to_win"] is not None
            else f"  {row['role']} {row['metric']}: {row['variant']} {_pct(row['lift'])}"
        )
    return "\n".join(lines)
