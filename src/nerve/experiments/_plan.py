"""How many units and days an experiment needs, from the primary metric's recent history."""

from __future__ import annotations

import dataclasses
import math
from datetime import datetime, timedelta
from typing import Any

import ibis
import ibis.expr.types as ir
import numpy as np

from nerve.experiments._model import Experiment
from nerve.experiments._units import _component, _per_unit, check_metrics, decompose
from nerve.experiments.stats import sample_size
from nerve.semantic import Measure, SemanticLayer

__all__ = ["plan_experiment"]


def plan_experiment(exp: Experiment, layer: SemanticLayer, events: ir.Table, *,
                    baseline_days: int, now: datetime) -> dict[str, Any]:
    """Units per variant for the MDE, from the primary metric over the last days.

    Every active unit of the baseline window (one with any event) stands in for an
    exposed one, with the primary metric's value 0 when it did not do the metric's event:
    an estimate, as every power calculation is.
    """
    check_metrics(exp, layer)
    since = now - timedelta(days=baseline_days)
    components, num, den = decompose(layer, exp.primary)
    # the units active in the window, whatever they did: a did-it-or-not metric read only
    # over the units that did it is 1 for all of them (no variance, no sample needed)
    primary = dataclasses.replace(layer.get(exp.primary), filter=None)
    components["_active"] = _component("_active", primary, Measure("count", ("*",)))
    window = events.filter(events.timestamp >= ibis.literal(since),
                           events.timestamp < ibis.literal(now))
    values = _per_unit(layer, components, window, since, now)
    units = sorted(set(values["_active"]) | set(values[num])
                   | (set(values[den]) if den else set()))
    n = np.array([values[num].get(u, 0.0) for u in units])
    d = np.array([values[den].get(u, 0.0) for u in units]) if den else np.ones(len(units))
    if len(units) < 2 or d.sum() == 0:
        return {"experiment": exp.key, "metric": exp.primary, "baseline_units": len(units),
                "message": "not enough history of the primary metric to plan"}
    ratio = float(n.sum() / d.sum())
    std = float(np.std((n - ratio * d) / d.mean(), ddof=1))
    # several treatments share alpha, each compared with the control at its share
    # (docs/experiments.md#analysis): each needs the units of that stricter test
    per_comparison = exp.alpha / max(1, len(exp.variant_keys) - 1)
    per_variant = sample_size(ratio, std, exp.mde, per_comparison, exp.power)
    weights = np.asarray(exp.weights) / sum(exp.weights)
    total = math.ceil(per_variant / float(weights.min()))
    # the share of units that can enter: coverage, the experiment's slice of its layer and
    # what the holdout leaves (targeting is not known from the events)
    share = exp.coverage * (1 - exp.holdout)
    if exp.layer is not None:
        share *= exp.layer_range[1] - exp.layer_range[0]
    eligible_per_day = len(units) * share / baseline_days
    days = math.ceil(total / eligible_per_day) if eligible_per_day else None
    return {"experiment": exp.key, "metric": exp.primary, "baseline": ratio,
            "baseline_std": std, "mde": exp.mde, "alpha": exp.alpha,
            "alpha_per_comparison": per_comparison, "power": exp.power,
            "units_per_variant": per_variant, "units_total": total,
            "eligible_units_per_day": eligible_per_day, "days": days,
            "note": "every active unit of the baseline window counts as eligible (after "
                    "coverage, layer and holdout); with targeting, fewer are"}
