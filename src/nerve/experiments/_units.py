"""From the warehouse to per-unit arrays: who was exposed to what, and what they did.

Exposures are ``experiment_viewed`` / ``Experiment Viewed`` events whose
``experiment_id`` is the experiment's key, with the variant in ``variant_id`` (nerve,
analytics.js plugins) or ``variation_id`` (the Segment spec). A unit is
``coalesce(user_id, anonymous_id)``; it counts from its first exposure, and a unit seen in
two variants is excluded (and counted).

Metric values come from the semantic layer, so an experiment reads exactly the metric
everyone else reads: each metric is split into per-unit additive components (a sum or a
count per unit), queried ``by user`` over the events after each unit's first exposure
(and, for CUPED, over the ``cuped_days`` before it).
"""

from __future__ import annotations

import dataclasses
import difflib
from datetime import datetime, timedelta
from typing import Any

import ibis
import ibis.expr.types as ir
import numpy as np
import pyarrow as pa
from ibis.common.exceptions import IbisError, TableNotFound

from nerve.errors import Location, QueryError
from nerve.experiments._analysis import PACE_DAYS, ArmData, MetricData
from nerve.experiments._model import Experiment, ExperimentError
from nerve.semantic import Measure, Metric, MetricQuery, SemanticLayer
from nerve.semantic._engines import backend_dialect, json_field
from nerve.warehouse import one_of

__all__ = ["Exposures", "check_metrics", "collect", "quarantined_exposures", "recent_pace"]


@dataclasses.dataclass(frozen=True)
class Exposures:
    units: pa.Table  # unit, variant, first_ts
    excluded: int  # units exposed to more than one variant
    first: datetime | None
    last: datetime | None
    #: units whose one variant is not in the experiment's file, by that variant key
    unknown: dict[str, int] = dataclasses.field(default_factory=dict)
    #: units exposed under the experiment's key in another case, by that spelling
    miscased: dict[str, int] = dataclasses.field(default_factory=dict)


def exposures(exp: Experiment, events: ir.Table, until: datetime) -> Exposures:
    dialect = backend_dialect(events)
    t = events.filter(events.type == "track", one_of(events.event, list(exp.exposure_events)),
                      events.timestamp < ibis.literal(until))
    if exp.start is not None:
        t = t.filter(t.timestamp >= ibis.literal(exp.start))
    t = t.select(
        unit=ibis.coalesce(t.user_id, t.anonymous_id),
        variant=ibis.coalesce(json_field(t.properties, ("variant_id",), "string", dialect),
                              json_field(t.properties, ("variation_id",), "string", dialect)),
        experiment=json_field(t.properties, ("experiment_id",), "string", dialect),
        ts=t.timestamp,
    )
    # an SDK that sends the key in another case ("Onboarding_Quiz") matches nothing: count
    # those units, so the readout can say where they went
    near = t.filter(t.experiment.lower() == exp.key.lower(), t.experiment != exp.key,
                    t.unit.notnull())
    miscased = {str(row["experiment"]): int(row["units"]) for row in near.group_by(
        "experiment").aggregate(units=near.unit.nunique()).to_pyarrow().to_pylist()}
    t = t.filter(t.experiment == exp.key, t.unit.notnull(), t.variant.notnull())
    per_unit = t.group_by("unit").aggregate(
        variant=t.variant.min(), variants=t.variant.nunique(), first_ts=t.ts.min())
    table = per_unit.to_pyarrow()
    multi = pa.compute.greater(table["variants"], 1)
    excluded = int(pa.compute.sum(multi).as_py() or 0)
    table = table.filter(pa.compute.invert(multi)).select(["unit", "variant", "first_ts"])
    known = pa.compute.is_in(table["variant"], pa.array(exp.variant_keys))
    unknown: dict[str, int] = {}
    for variant in table.filter(pa.compute.invert(known))["variant"].to_pylist():
        unknown[variant] = unknown.get(variant, 0) + 1
    table = table.filter(known)
    first = pa.compute.min(table["first_ts"]).as_py() if table.num_rows else None
    last = pa.compute.max(table["first_ts"]).as_py() if table.num_rows else None
    return Exposures(table, excluded, first, last, dict(sorted(unknown.items())),
                     dict(sorted(miscased.items())))


def recent_pace(exposed: Exposures, variants: list[str], until: datetime) -> float | None:
    """New units a day of the slowest variant over the last ``PACE_DAYS`` days before
    ``until`` (or since the first exposure, when the test is younger); None: no exposure."""
    if exposed.first is None:
        return None
    first = exposed.first if exposed.first.tzinfo else exposed.first.replace(tzinfo=until.tzinfo)
    since = max(until - timedelta(days=PACE_DAYS), first)
    days = max((until - since).total_seconds() / 86400, 1 / 24)
    recent = exposed.units.filter(pa.compute.greater_equal(
        exposed.units["first_ts"], pa.scalar(since, exposed.units.schema.field("first_ts").type)))
    counts = dict.fromkeys(variants, 0)
    for variant in recent["variant"].to_pylist():
        counts[variant] += 1
    return min(counts.values()) / days


def quarantined_exposures(exp: Experiment, events: ir.Table, until: datetime, *,
                          masked_key: str | None = None) -> dict[str, int]:
    """Exposures of ``exp`` the collector put in the ``quarantine`` table (an uncataloged
    ``Experiment Viewed``, an exposure failing its event's schema), by event name; the
    analysis does not see them. Empty when ``events``' backend has no quarantine (a
    table loaded on its own, as tests and other engines do). On a reader's view, which
    masks the undeclared values of an uncataloged event, ``masked_key`` is the key as
    the view shows it there, and is matched too."""
    try:
        q = events.get_backend().table("quarantine")
    except (TableNotFound, IbisError, LookupError, AttributeError):
        return {}
    dialect = backend_dialect(q)
    q = q.filter(q.type == "track", one_of(q.event, list(exp.exposure_events)),
                 q.timestamp < ibis.literal(until))
    if exp.start is not None:
        q = q.filter(q.timestamp >= ibis.literal(exp.start))
    keys = [exp.key] if masked_key is None else [exp.key, masked_key]
    q = q.filter(json_field(q.properties, ("experiment_id",), "string", dialect).isin(keys))
    counts = q.group_by("event").aggregate(n=q.count()).to_pyarrow().to_pylist()
    return {row["event"]: int(row["n"]) for row in sorted(counts, key=lambda r: r["event"])}


# ------------------------------------------------------------------ metric decomposition

_ADDITIVE = ("count", "sum")


def _component(name: str, metric: Metric, measure: Measure) -> tuple[Metric, str]:
    """A simple metric computing ``measure`` per unit, and how to read it per unit."""
    if measure.agg in _ADDITIVE:
        how = "value"
    elif measure.agg == "count_distinct" and measure.of in (None, "user"):
        how = "any"  # per unit: did it at least once
    else:
        raise QueryError(f"metric {metric.name!r} ({measure.describe()}): experiments read "
                         "metrics made of counts and sums per unit; "
                         f"{measure.agg} per unit is not additive")
    return dataclasses.replace(metric, name=name, type="simple", measure=measure,
                               numerator=None, denominator=None, conversion=None,
                               expr=None, inputs=()), how


def decompose(layer: SemanticLayer, name: str) -> tuple[dict[str, tuple[Metric, str]],
                                                         str, str | None]:
    """Per-unit components of a metric: ({component: (metric, how)}, numerator, denominator)."""
    metric = layer.get(name)
    parts: dict[str, tuple[Metric, str]] = {}

    def side(label: str, value: str | Measure | None) -> str:
        if isinstance(value, Measure):
            parts[label] = _component(label, metric, value)
            return label
        if isinstance(value, str):
            inner = layer.get(value)
            if inner.type != "simple" or inner.measure is None:
                raise QueryError(f"metric {name!r}: its {label} {value!r} is a {inner.type} "
                                 "metric; experiments need counts and sums per unit")
            filtered = dataclasses.replace(inner, filter=_and(inner.filter, metric.filter))
            parts[label] = _component(label, filtered, inner.measure)
            return label
        raise QueryError(f"metric {name!r} has no {label}")

    if metric.type == "simple" and metric.measure is not None:
        if metric.measure.agg == "avg":
            total = dataclasses.replace(metric.measure, agg="sum")
            count = dataclasses.replace(metric.measure, agg="count", of=None)
            return ({"_num": _component("_num", metric, total),
                     "_den": _component("_den", metric, count)}, "_num", "_den")
        return {"_num": _component("_num", metric, metric.measure)}, "_num", None
    if metric.type == "ratio":
        return parts, side("_num", metric.numerator), side("_den", metric.denominator)
    if metric.type == "conversion" and metric.conversion is not None:
        converted = dataclasses.replace(
            metric, name="_num", conversion=dataclasses.replace(
                metric.conversion, calculation="conversions"))
        parts["_num"] = (converted, "value")
        parts["_den"] = _component("_den", metric, metric.conversion.base)
        return parts, "_num", "_den"
    raise QueryError(f"metric {name!r} is {metric.type}: experiments read simple, ratio and "
                     "conversion metrics")


_FIELD = {"primary": "primary", "secondary": "secondary", "guardrail": "guardrails"}


def check_metrics(exp: Experiment, layer: SemanticLayer) -> None:
    """Raise ExperimentError naming the file, line and field of every metric the
    experiment cannot read (unknown, or not made of counts and sums per unit), of an
    ``exposure_event`` the catalog lacks and of an unknown ``targeting.segment``."""
    problems: list[tuple[Location, str]] = []

    def bad(name: str, text: str) -> None:
        where = Location(exp.file or f"experiments/{exp.key}.yaml", exp.lines.get(name))
        problems.append((where, f"{exp.key}.{name}: {text}"))

    for metric, role in exp.metrics:
        try:
            decompose(layer, metric)
        except QueryError as exc:
            bad(_FIELD[role], str(exc))
    if "exposure_event" in exp.lines:
        # named on purpose: an exposure event the catalog lacks is quarantined, never counted
        for name in exp.exposure_events:
            if name not in layer.catalog:
                close = difflib.get_close_matches(name, layer.catalog.names(), n=3)
                hint = (f"; did you mean {', '.join(close)}?" if close else
                        f"; events: {', '.join(sorted(layer.catalog.names())) or 'none'}")
                bad("exposure_event", f"unknown event {name!r}: the catalog has no such "
                                      f"event, so no exposure of it is counted{hint}")
    if exp.segment is not None and exp.segment not in layer.segments:
        known = ", ".join(sorted(layer.segments)) or "none in metrics/*.yaml"
        bad("targeting", f"segment: unknown segment {exp.segment!r} (known: {known})")
    if problems:
        raise ExperimentError(problems)


def _and(a: str | None, b: str | None) -> str | None:
    if a and b:
        return f"({a}) and ({b})"
    return a or b


# ------------------------------------------------------------------ per-unit values


def _window_table(events: ir.Table, units: ir.Table, *, before: timedelta | None,
                  until: datetime) -> ir.Table:
    """Events of exposed units after their first exposure (or in ``before`` it),
    plus every identify (for traits as of the event)."""
    joined = events.left_join(units, events.unit_key == units.unit)
    if before is None:
        inside = (joined.timestamp >= joined.first_ts) & (joined.timestamp < ibis.literal(until))
    else:
        gap = ibis.interval(seconds=int(before.total_seconds()))
        inside = (joined.timestamp < joined.first_ts) & (joined.timestamp >= joined.first_ts - gap)
    kept = joined.filter((joined.type == "identify") | (joined.first_ts.notnull() & inside))
    return kept.select(*[c for c in events.columns if c != "unit_key"])


def _per_unit(layer: SemanticLayer, components: dict[str, tuple[Metric, str]],
              table: ir.Table, since: datetime, until: datetime) -> dict[str, dict[str, float]]:
    local = layer.with_metrics([m for m, _ in components.values()], strict=False)
    query = MetricQuery(tuple(components), by=("user",), since=since, until=until)
    result = local.query(query, table).table
    user_col = result.column_names[0] if "user" not in result.column_names else "user"
    users = result.column(user_col).to_pylist()
    values: dict[str, dict[str, float]] = {}
    for name, (_, how) in components.items():
        column = result.column(name).to_pylist()
        values[name] = {
            u: (1.0 if (v or 0) > 0 else 0.0) if how == "any" else float(v or 0)
            for u, v in zip(users, column, strict=True) if u is not None
        }
    return values


def collect(exp: Experiment, layer: SemanticLayer, events: ir.Table, *, now: datetime,
            ) -> tuple[list[MetricData], Exposures]:
    """Per-unit arrays for every metric of ``exp``, by variant."""
    until = min(exp.end, now) if exp.end else now
    exposed = exposures(exp, events, until)
    units = ibis.memtable(exposed.units)
    keyed = events.mutate(unit_key=ibis.coalesce(events.user_id, events.anonymous_id))
    after = _window_table(keyed, units, before=None, until=until)
    before = _window_table(keyed, units, before=timedelta(days=exp.cuped_days), until=until)
    since = exposed.first or exp.start or now
    order = exposed.units.column("unit").to_pylist()
    variant_of = exposed.units.column("variant").to_pylist()
    data = []
    for name, role in exp.metrics:
        metric = layer.get(name)
        components, num, den = decompose(layer, name)
        post = _per_unit(layer, components, after, since, until) if order else {}
        pre = (_per_unit(layer, components, before,
                         since - timedelta(days=exp.cuped_days), until) if order else {})
        arms = {}
        for variant in exp.variant_keys:
            idx = [i for i, v in enumerate(variant_of) if v == variant]
            ids = [order[i] for i in idx]
            arms[variant] = ArmData(
                num=_array(post.get(num, {}), ids),
                den=_array(post.get(den, {}), ids) if den else np.ones(len(ids)),
                pre_num=_array(pre.get(num, {}), ids),
                pre_den=_array(pre.get(den, {}), ids) if den else np.ones(len(ids)),
                ids=tuple(ids),
            )
        data.append(MetricData(metric.name, role, metric.up_is_good, arms, ratio=den is not None))
    return data, exposed


def unit_dimension(exp: Experiment, layer: SemanticLayer, events: ir.Table, by: str,
                   until: datetime) -> dict[str, str | None]:
    """Each exposed unit's value of dimension ``by`` at its first exposure."""
    names = [e for e in exp.exposure_events if e in layer.catalog]
    if not names:
        raise QueryError(f"breakdowns need the exposure event ({', '.join(exp.exposure_events)})"
                         " in the catalog, to resolve dimensions on it")
    rows = layer.event_rows(events, names, dimensions=[by],
                            where=f"properties.experiment_id = '{exp.key}'",
                            since=exp.start, until=until)
    column = by.replace(".", "_")
    table = rows.select("user", "timestamp", column).order_by("timestamp").to_pyarrow()
    found: dict[str, str | None] = {}
    for user, value in zip(table.column("user").to_pylist(), table.column(column).to_pylist(),
                           strict=True):
        if user is not None and user not in found:
            found[user] = None if value is None else str(value)
    return found


def _array(values: dict[str, float], ids: list[Any]) -> np.ndarray:
    return np.array([values.get(u, 0.0) for u in ids], dtype=float)
