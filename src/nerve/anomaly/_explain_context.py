"""What ``explain`` says around the drivers: the funnel step that broke, the other events
that moved at the same time (overall and for the top driver's value), and the
data-quality findings that could bias the numbers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

import ibis.expr.types as ir
import numpy as np
import pandas as pd

from nerve.anomaly._explain_decompose import DISPERSION, SIGNIFICANT_Z, count_z
from nerve.anomaly._series import event_counts
from nerve.quality import CHECKS
from nerve.semantic import SemanticLayer

__all__ = ["ARRIVAL_CHECKS", "CAVEAT_CHECKS", "CHANGE_CHECKS", "CHECK_IMPACT", "as_count",
           "funnel_steps",
           "gap_bounds", "leave_out_gaps", "quality_caveats", "related_events"]


class _Span(Protocol):
    """A period: ``[start, end)`` (``nerve.anomaly._explain.Period``)."""

    @property
    def start(self) -> datetime: ...

    @property
    def end(self) -> datetime: ...


_S = TypeVar("_S", bound=_Span)

#: the checks that judge the change itself (an anomaly in a count or a rate), not the
#: data: the explanation is about them, they are no caveat
CHANGE_CHECKS = ("volume", "rate")
#: the checks run for caveats
CAVEAT_CHECKS = tuple(c for c in CHECKS if c not in CHANGE_CHECKS)
#: checks about how recent events arrive (not what they hold): they speak of the last
#: day of data, so they are caveats of a period that ends in it, not of last month
ARRIVAL_CHECKS = ("freshness", "loader_lag", "lateness", "clock_skew", "withheld", "refusals")

#: how each quality check's finding can bias an explanation
CHECK_IMPACT = {
    "schema": "quarantined events are not counted, so counts are low by that share",
    "drift": "events or properties outside the catalog are not in these numbers",
    "duplicates": "repeated messages may be counted twice",
    "withheld": "events withheld for consent are not stored, so counts are low by that "
                "share",
    "refusals": "the collector refused requests: their events are not in these numbers",
    "natural_key_duplicates": "events repeating a natural key are counted twice",
    "freshness": "events may have stopped arriving: the period may be incomplete",
    "loader_lag": "loading lags: the latest hours may be incomplete",
    "lateness": "late events may still arrive: the latest hours may be undercounted",
    "clock_skew": "device clocks are off: events may fall in the wrong hour",
    "null_rate": "a property is missing: breakdowns by it put events under (none)",
    "missing_events": "an event stopped arriving: its drop may be instrumentation, "
                      "not behaviour",
    "disappeared_values": "a property value stopped arriving: a driver on it may be "
                          "instrumentation, not behaviour",
    "sequence": "events arrive out of their expected order: funnels may be off",
}


def funnel_steps(table: ir.Table, steps: Sequence[str], span: _Span, base: _Span,
                 window: str) -> dict[str, Any]:
    """Per step, the conversion from the previous step in the period and in the baseline
    (``nerve.analytics`` funnels); the broken step is the one whose conversion fell most."""
    from nerve.analytics import FunnelSpec, Step, funnel, parse_duration  # noqa: PLC0415

    def run(p: _Span) -> list[dict[str, Any]]:
        spec = FunnelSpec(tuple(Step(e) for e in steps), window=parse_duration(window),
                          since=p.start, until=p.end)
        return funnel(table, spec).rows

    now_rows, then_rows = run(span), run(base)
    out = []
    for a, b in zip(now_rows, then_rows, strict=True):
        out.append({"step": a["step"], "event": a["event"], "users": a["users"],
                    "expected_users": b["users"],
                    "step_conversion": _round(a["step_conversion"]),
                    "expected_step_conversion": _round(b["step_conversion"])})
    candidates = [r for r in out[1:] if r["step_conversion"] is not None
                  and r["expected_step_conversion"] is not None]
    broken = min(candidates, key=lambda r: r["step_conversion"] - r[
        "expected_step_conversion"], default=None)
    if broken is not None and broken["step_conversion"] >= broken["expected_step_conversion"]:
        broken = None
    return {"steps": out, "window": window, "broken_step": broken}


def _path(layer: SemanticLayer, dimension: str) -> str | None:
    """The JSON path of a breakdown, when it is one (not a join on user traits)."""
    spec = layer.dimensions.get(dimension)
    expr = spec.expr if spec is not None else f"properties.{dimension}"
    return expr if expr.startswith(("properties.", "context.", "traits.")) else None


def related_events(table: ir.Table, layer: SemanticLayer, span: _Span,
                   bases: Sequence[_Span], events: Sequence[str],
                   target_events: Sequence[str], drivers: Sequence[dict[str, Any]]
                   ) -> list[dict[str, Any]]:
    """Events whose count moved a lot over the same period: overall, and for the leading
    drivers' values when the event carries that breakdown (``payment_failed`` up for
    ``payment_provider = adyen`` while purchases fall).

    Each says whether it moved with the target (``moved_with``, judged against ``lead``:
    the value of the row, or the first driver's for a row overall): true when its change
    sits in that value, as the target's does (outside it, the event did not move the same
    way by half as much beyond noise), false when it moved outside it too (an outage's
    failed payments on every platform are no part of an iOS-only drop in carts), null when
    it cannot be told (no driver, or the event does not carry that breakdown)."""
    earliest = min(b.start for b in bases)
    wanted = {d["dimension"]: str(d["value"]) for d in drivers}
    paths = {dim: _path(layer, dim) for dim in wanted}
    dims = {dim: (path,) for dim, path in paths.items() if path}
    frame = event_counts(table, start=earliest, end=span.end, dims=dims, grain_hours=1)
    if frame.empty:
        return []
    frame["at"] = pd.to_datetime(frame["period"] * 3600, unit="s", utc=True)
    carries = {dim: set(frame.loc[frame["dimension"] == dim, "target"]) for dim in dims}
    keep = frame["dimension"] == ""
    for dim in dims:
        keep |= (frame["dimension"] == dim) & (frame["value"] == wanted[dim])
    frame = frame[keep]
    counts: dict[tuple[str, str], tuple[float, list[float], float]] = {}
    for (event, dimension), sub in frame.groupby(["target", "dimension"]):
        obs = float(sub[(sub["at"] >= span.start) & (sub["at"] < span.end)]["n"].sum())
        each = [float(sub[(sub["at"] >= b.start) & (sub["at"] < b.end)]["n"].sum())
                for b in bases]
        # events per user-hour: how much more than a Poisson count this one varies
        users = float(sub["users"].sum()) if "users" in sub else 0.0
        spread = max(1.0, float(sub["n"].sum()) / users) if users else DISPERSION
        counts[(str(event), str(dimension))] = (obs, each, spread)
    first = next((dim for dim in wanted if dim in dims), None)
    out: list[dict[str, Any]] = []
    for (event, dimension), (obs, each, spread) in counts.items():
        if events and event not in events:
            continue
        exp = float(np.median(each))
        # a value never seen in the baseline is still only evidence of half an event
        z = count_z(obs, exp, spread=spread, baselines=len(bases),
                    floor=0.5 if dimension else 0.0)
        # judged with one event added to both sides (nothing expected is no infinite
        # change), reported as the figures shown read: observed / expected - 1
        change = (obs + 1) / (exp + 1) - 1
        if abs(z) >= SIGNIFICANT_Z and abs(change) >= 0.3 and max(obs, exp) >= 3:
            lead = dimension or first
            with_lead = None
            if lead is not None and event in carries[lead]:
                nothing = (0.0, [0.0] * len(bases), 1.0)  # no event with that value
                with_lead = _sits_in(counts.get((event, lead), nothing),
                                     counts[(event, "")], len(bases), change)
            out.append({"event": event, "dimension": dimension or None,
                        "value": wanted[dimension] if dimension else None,
                        "observed": as_count(obs), "expected": as_count(exp),
                        "change": _round(obs / exp - 1 if exp else change), "z": _round(z),
                        "direction": "up" if change > 0 else "down",
                        "in_target": event in target_events, "moved_with": with_lead,
                        "lead": None if lead is None else f"{lead} = {wanted[lead]}"})
    out.sort(key=lambda r: -abs(float(r["z"] or 0)))
    return out[:10]


def _sits_in(inside: tuple[float, list[float], float],
             overall: tuple[float, list[float], float], baselines: int,
             change: float) -> bool:
    """Whether an event's ``change`` sits in one value: outside it (``overall`` less
    ``inside``: observed, each baseline's count, spread) it did not move the same way by
    half as much (relative) as inside, beyond noise."""
    obs, each, _ = inside
    exp = float(np.median(each))
    out_obs = overall[0] - obs
    out_exp = float(np.median([o - i for o, i in zip(overall[1], each, strict=True)]))
    moved = (obs + 1) / (exp + 1) - 1
    elsewhere = (out_obs + 1) / (out_exp + 1) - 1
    z = count_z(out_obs, out_exp, spread=overall[2], baselines=baselines)
    return not (abs(z) >= SIGNIFICANT_Z and np.sign(elsewhere) == np.sign(change)
                and abs(elsewhere) >= 0.5 * abs(moved))


def quality_caveats(events: Sequence[str], span: _Span, last_event: datetime | None,
                    recorded: Sequence[dict[str, Any]],
                    run_checks: Callable[[Sequence[str], datetime], list[dict[str, Any]]]
                    | None, now: datetime | None = None, bases: Sequence[_Span] = ()
                    ) -> list[dict[str, Any]]:
    """Findings that could bias the explanation: the quality checks on the target's events
    (run as of the period's end when ``run_checks`` is given, or as of ``now`` when the
    period ended within the day before it, so that the period's events that arrived
    since, such as a backfill, are judged too: it gets the ``select`` of
    ``nerve.quality.run_checks``, the events and :data:`CAVEAT_CHECKS`; else the recorded
    ones), not passing, except volume and rate (the change being explained is no
    data-quality problem) and, for a period that ended over a day before the last event,
    the arrival checks (:data:`ARRIVAL_CHECKS`); and whether the data ends before the
    period does. A day without events (``missing_events`` with a ``day``: of the whole
    product, or of one of the events) is a caveat when the period or one of the
    ``bases`` (the baseline periods) holds it, and only then."""
    out: list[dict[str, Any]] = []
    if last_event is None or last_event < span.end - timedelta(hours=1):
        ends = last_event.isoformat() if last_event else "nowhere (no events)"
        out.append({"check": "coverage", "status": "warn", "event": None,
                    "dimensions": {}, "since": None,
                    "message": f"The data ends at {ends}, before the period ends "
                               f"({span.end.isoformat()}).",
                    "impact": "the last hours of the period are missing, not zero",
                    "source": "the events table"})
    results = list(recorded)
    source = "recorded"
    if run_checks is not None and events:
        if now is not None and span.end <= now <= span.end + timedelta(days=1):
            results = run_checks([*events, *CAVEAT_CHECKS], now)
            source = "as of now"
        else:
            results = run_checks([*events, *CAVEAT_CHECKS], span.end)
            source = "as of the period's end"
    recent = last_event is None or span.end >= last_event - timedelta(days=1)
    for r in results:
        gap = _gap_in(r, [span, *bases])
        if gap is False or (gap and r.get("event") not in (None, *events)):
            continue
        if (r.get("event") not in events and not gap) or r.get("check") in CHANGE_CHECKS \
                or r.get("status") not in ("warn", "fail", "error") \
                or (r.get("check") in ARRIVAL_CHECKS and not recent):
            continue
        out.append({"check": r.get("check"), "status": r.get("status"),
                    "event": r.get("event"), "dimensions": r.get("dimensions") or {},
                    "since": r.get("since"), "message": r.get("message"),
                    "impact": gap or CHECK_IMPACT.get(str(r.get("check")),
                                                      "may bias these numbers"),
                    "source": source})
    return out


def leave_out_gaps(bases: Sequence[_S], caveats: list[dict[str, Any]]
                   ) -> tuple[list[_S], list[dict[str, Any]]]:
    """The baseline periods without a day that has no events (the caveats' gaps), and
    the caveats saying so: of the median of the same hours 1-4 weeks before, the weeks
    that hold such a day are left out while one week is left."""
    def holds(b: _Span, c: dict[str, Any]) -> bool:
        bounds = gap_bounds(c)
        return bounds is not None and bounds[0] < b.end and b.start < bounds[1]

    kept = [b for b in bases if not any(holds(b, c) for c in caveats)]
    if not kept or len(kept) == len(bases):
        return list(bases), caveats
    out = [{**c, "impact": f"{c['dimensions']['day']} counts nothing: the week that "
                           "holds it is left out of the expected value"}
           if any(holds(b, c) for b in bases) and not any(holds(b, c) for b in kept) else c
           for c in caveats]
    return kept, out


def gap_bounds(result: dict[str, Any]) -> tuple[datetime, datetime] | None:
    """The UTC bounds of a day without events (a ``missing_events`` result with a
    ``day``), None for any other result; a recorded one keeps only its ``since`` (the
    day's start): a day of 24 hours is an hour off on a DST switch, which is no matter."""
    details = result.get("details") or {}
    if result.get("check") != "missing_events" \
            or "day" not in (result.get("dimensions") or {}):
        return None
    if "start" in details:
        return datetime.fromisoformat(details["start"]), datetime.fromisoformat(details["end"])
    if not result.get("since"):
        return None
    start = datetime.fromisoformat(str(result["since"]))
    return start, start + timedelta(days=1)


def _gap_in(result: dict[str, Any], spans: Sequence[_Span]) -> str | bool | None:
    """For a day without events (a ``missing_events`` result with a ``day``): its impact
    when the period (``spans[0]``) or a baseline period holds it, False when none does;
    None for any other result."""
    bounds = gap_bounds(result)
    if bounds is None:
        return None
    start, end = bounds
    held = [i for i, s in enumerate(spans) if start < s.end and s.start < end]
    if not held:
        return False
    where = "the period" if held[0] == 0 else "the baseline"
    return (f"{result['dimensions']['day']} counts nothing in {where}, as if there was "
            f"no traffic: {where} is low by that day's events, and the change is off by "
            "as much")


def as_count(value: Any) -> int | float | None:
    """A count as JSON carries it: an integer, unless it is not a whole number (the median
    of an even number of baseline periods can fall between two counts: 4.5)."""
    out = _round(value)
    return int(out) if out is not None and out.is_integer() else out


def _round(value: Any) -> float | None:
    if value is None or not np.isfinite(float(value)):
        return None
    return round(float(value), 6)
