"""``explain``: why did a metric or an event count change? Drivers, mix and rate, related
anomalies, the broken funnel step and data-quality caveats.

Method (docs/anomalies.md#explain): the target is computed through the semantic layer
for the period and for its baseline (the previous period, or the robust seasonal
expectation: the median of the same hours 1 to 4 weeks before). Each breakdown splits
the change among its values. For an additive target (a count, a sum) the contribution
of a value is its own change. For a ratio N/D, the change of ``sum_v w_v r_v`` (``w`` the
value's share of D, ``r`` its rate) splits exactly into a *mix* effect
``(w1 - w0) r0`` and a *rate* effect ``w1 (r1 - r0)`` per value. Drivers are ranked by
their share of the change, discounted by how cleanly their breakdown explains it
(``|net| / sum |contributions|``: a version switch moves every version a lot and
explains little).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import ibis.expr.types as ir
import numpy as np
import pandas as pd

from nerve.anomaly._model import poisson_z
from nerve.anomaly._series import count_metric, event_counts, with_metrics
from nerve.errors import QueryError
from nerve.semantic import Measure, Metric, MetricQuery, SemanticLayer

__all__ = ["DEFAULT_DIMENSIONS", "Period", "explain", "parse_period"]

#: breakdowns tried by default, when the semantic layer defines them
DEFAULT_DIMENSIONS = ("platform", "os", "app_version", "country", "age_group", "channel",
                      "plan")
_WEEK = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class Period:
    """``[start, end)`` in UTC, and how the user named it."""

    start: datetime
    end: datetime
    label: str

    def shifted(self, delta: timedelta) -> Period:
        return Period(self.start - delta, self.end - delta, f"{self.label} - {delta.days}d")

    def as_dict(self) -> dict[str, str]:
        return {"label": self.label, "start": self.start.isoformat(),
                "end": self.end.isoformat()}


def parse_period(text: str, now: datetime, tz: str = "UTC") -> Period:
    """``24h``, ``7d``, ``yesterday``, ``last_week`` or ``YYYY-MM-DD..YYYY-MM-DD`` (both
    days included, local time). Rolling periods end at the last complete hour.

    >>> parse_period("yesterday", datetime(2026, 11, 20, 9, tzinfo=UTC)).start.isoformat()
    '2026-11-19T00:00:00+00:00'
    """
    zone = ZoneInfo(tz)
    local = now.astimezone(zone)
    hour_end = now.replace(minute=0, second=0, microsecond=0)
    text = text.strip()
    if text.endswith(("h", "d")) and text[:-1].isdigit():
        hours = int(text[:-1]) * (24 if text.endswith("d") else 1)
        return Period(hour_end - timedelta(hours=hours), hour_end, text)
    today = datetime(local.year, local.month, local.day, tzinfo=zone)
    if text == "yesterday":
        return _local(today - timedelta(days=1), today, text)
    if text == "last_week":
        monday = today - timedelta(days=today.weekday())
        return _local(monday - _WEEK, monday, text)
    if ".." in text:
        first, _, last = text.partition("..")
        try:
            a, b = date.fromisoformat(first.strip()), date.fromisoformat(last.strip())
        except ValueError as exc:
            raise QueryError(f"--period: {text!r}: expected YYYY-MM-DD..YYYY-MM-DD") from exc
        if b < a:
            raise QueryError(f"--period: {text!r} ends before it starts")
        start = datetime(a.year, a.month, a.day, tzinfo=zone)
        return _local(start, datetime(b.year, b.month, b.day, tzinfo=zone)
                      + timedelta(days=1), text)
    raise QueryError(f"--period: {text!r}: expected 24h, 7d, yesterday, last_week or "
                     "YYYY-MM-DD..YYYY-MM-DD")


def _local(start: datetime, end: datetime, label: str) -> Period:
    return Period(start.astimezone(UTC), end.astimezone(UTC), label)


@dataclass(frozen=True, slots=True)
class _Target:
    layer: SemanticLayer
    name: str  # the metric to report
    label: str
    kind: str  # additive | ratio | other
    numerator: str = ""
    denominator: str = ""
    events: tuple[str, ...] = ()
    up_is_good: bool = True
    #: funnel steps implied by the metric, and their conversion window
    steps: tuple[str, ...] = ()
    window: str = "1d"


def _target(layer: SemanticLayer, target: str, events: Sequence[str]) -> _Target:
    if target in events:
        metric = count_metric(target)
        return _Target(with_metrics(layer, [metric]), metric.name, f"{target} events",
                       "additive", events=(target,))
    metric = layer.get(target)
    used = tuple(layer.events_of(metric.name))
    if metric.type == "simple" and metric.measure and metric.measure.agg in (
            "count", "count_distinct", "sum"):
        return _Target(layer, metric.name, metric.title, "additive", events=used,
                       up_is_good=metric.up_is_good)
    sides: list[Metric] = []
    num = den = ""
    if metric.type == "ratio":
        num = _side(metric.name, metric.numerator, "num", sides)
        den = _side(metric.name, metric.denominator, "den", sides)
    elif metric.conversion is not None:
        base = metric.conversion.base
        den = _side(metric.name, Measure(agg="count_distinct", events=base.events,
                                         filter=base.filter), "den", sides)
    extended = with_metrics(layer, sides) if sides else layer
    kind = "ratio" if den else "other"
    steps: tuple[str, ...] = ()
    window = "1d"
    if metric.conversion is not None:
        steps = (metric.conversion.base.events[0], metric.conversion.conversion.events[0])
        window = metric.conversion.window
    elif metric.type == "ratio":
        ends = [_single_event(extended, s) for s in (metric.denominator, metric.numerator)]
        if all(ends) and ends[0] != ends[1]:
            steps = (str(ends[0]), str(ends[1]))
    return _Target(extended, metric.name, metric.title, kind, numerator=num,
                   denominator=den, events=used, up_is_good=metric.up_is_good,
                   steps=steps, window=window)


def _single_event(layer: SemanticLayer, side: Any) -> str | None:
    measure = layer.get(side).measure if isinstance(side, str) else side
    if isinstance(measure, Measure) and len(measure.events) == 1 and not measure.any_event:
        return measure.events[0]
    return None


def _funnel(table: ir.Table, steps: Sequence[str], span: Period, base: Period,
            window: str) -> dict[str, Any]:
    """Per step, the conversion from the previous step in the period and in the baseline
    (``nerve.analytics`` funnels); the broken step is the one whose conversion fell most."""
    from nerve.analytics import FunnelSpec, Step, funnel, parse_duration  # noqa: PLC0415

    def run(p: Period) -> list[dict[str, Any]]:
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


def _side(metric: str, side: Any, tag: str, out: list[Metric]) -> str:
    if isinstance(side, str):
        return side
    name = f"{metric}__{tag}"
    out.append(Metric(name=name, type="simple", measure=side))
    return name


def _hourly(t: _Target, table: ir.Table, names: Sequence[str], dim: str, start: datetime,
            end: datetime, now: datetime) -> pd.DataFrame:
    """Hourly values of ``names`` by ``dim`` (or overall) as a frame with a UTC ``at``."""
    query = MetricQuery(tuple(names), by=(dim,) if dim else (), grain="hour", since=start,
                        until=end)
    result = t.layer.query(query, table, now=now)
    frame = result.table.to_pandas()
    local = pd.to_datetime(frame[result.time_column or "hour"])
    frame["at"] = local.dt.tz_localize(ZoneInfo(t.layer.timezone), ambiguous="NaT",
                                       nonexistent="shift_forward").dt.tz_convert(UTC)
    if dim:
        frame = frame[frame[dim].notna()]
        frame[dim] = frame[dim].astype(str)
    return frame


def _sum(frame: pd.DataFrame, period: Period, keys: list[str], names: Sequence[str]
         ) -> pd.DataFrame:
    inside = frame[(frame["at"] >= period.start) & (frame["at"] < period.end)]
    if not keys:
        return inside[list(names)].astype(float).sum().to_frame().T
    return inside.groupby(keys)[list(names)].sum().astype(float)


def _baseline(frame: pd.DataFrame, period: Period, bases: list[Period], keys: list[str],
              names: Sequence[str]) -> pd.DataFrame:
    parts = [_sum(frame, b, keys, names) for b in bases]
    if len(parts) == 1:
        return parts[0]
    stacked = pd.concat(parts, keys=range(len(parts)))
    level = list(range(1, stacked.index.nlevels))
    return stacked.groupby(level=level).median() if keys else stacked.median().to_frame().T


def _decompose(t: _Target, obs: pd.DataFrame, base: pd.DataFrame, total_change: float
               ) -> pd.DataFrame:
    """Per value: observed, expected, contribution (and mix/rate for ratios)."""
    both = obs.join(base, how="outer", lsuffix="_1", rsuffix="_0").fillna(0.0)
    out = pd.DataFrame(index=both.index)
    if t.kind == "ratio":
        num, den = t.numerator, t.denominator
        n1, d1, n0, d0 = (both[f"{num}_1"], both[f"{den}_1"], both[f"{num}_0"],
                          both[f"{den}_0"])
        w1, w0 = d1 / max(d1.sum(), 1e-12), d0 / max(d0.sum(), 1e-12)
        r1 = (n1 / d1.where(d1 > 0)).fillna(0.0)
        r0 = (n0 / d0.where(d0 > 0)).fillna(0.0)
        r0 = r0.where(d0 > 0, r1)  # a new value: no rate change, only mix
        total0 = float(n0.sum() / d0.sum()) if d0.sum() else 0.0
        # mix against the average rate: a value that grows at the average rate moves
        # nothing; the mix terms still sum to the exact mix effect (sum w1 = sum w0 = 1)
        out["mix"], out["rate"] = (w1 - w0) * (r0 - total0), w1 * (r1 - r0)
        out["weight"] = w0
        out["contribution"] = out["mix"] + out["rate"]
        out["observed"], out["expected"] = r1, r0
    else:
        name = t.name
        out["observed"], out["expected"] = both[f"{name}_1"], both[f"{name}_0"]
        out["contribution"] = out["observed"] - out["expected"]
        out["weight"] = out["expected"] / max(float(out["expected"].sum()), 1e-12)
    out["share"] = out["contribution"] / total_change if total_change else 0.0
    return out


def explain(table: ir.Table, target: str, *, layer: SemanticLayer, period: str = "24h",
            vs: str = "previous", dimensions: Sequence[str] | None = None,
            catalog_events: Sequence[str] = (), caveats: Sequence[dict[str, Any]] = (),
            now: datetime | None = None, top: int = 10,
            funnel: Sequence[str] = ()) -> dict[str, Any]:
    """The explanation of ``target``'s change over ``period`` against ``vs``.

    ``caveats`` are recorded quality results (``CheckResult.as_dict()``) to consider;
    only those about the target's events and not passing are reported. ``funnel`` names
    the steps to find the broken one in (default: a conversion metric's base and
    conversion events, a ratio's denominator and numerator events).
    """
    if vs not in ("previous", "expected"):
        raise QueryError(f"--vs: expected previous or expected, got {vs!r}")
    now = now or datetime.now(UTC)
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    t = _target(layer, target, catalog_events)
    span = parse_period(period, now, layer.timezone)
    length = span.end - span.start
    first = _first_event(table)
    bases = [span.shifted(k * _WEEK) for k in range(1, 5)] \
        if vs == "expected" and length <= _WEEK else []
    # only weeks the data covers: an empty week is no evidence that zero is expected
    bases = [b for b in bases if first is not None and b.start >= first] \
        or [span.shifted(length)]
    earliest = min(b.start for b in bases)
    names = [t.numerator, t.denominator] if t.kind == "ratio" else [t.name]
    totals = _totals(t, table, span, bases, now)
    observed, baseline = totals
    change = observed - baseline
    dims = list(dimensions or _default_dims(layer, t, catalog_events))
    drivers: list[dict[str, Any]] = []
    for dim in dims:
        try:
            frame = _hourly(t, table, names, dim, earliest, span.end, now)
        except QueryError:
            continue  # a property this metric's events lack: not a breakdown of it
        if frame.empty or not 2 <= frame[dim].nunique() <= 50:
            continue  # one value explains nothing; fifty are not a breakdown
        parts = _decompose(t, _sum(frame, span, [dim], names),
                           _baseline(frame, span, bases, [dim], names), change)
        gross = float(parts["contribution"].abs().sum())
        purity = abs(float(parts["contribution"].sum())) / gross if gross else 0.0
        for value, row in parts.iterrows():
            if np.sign(row["contribution"]) != np.sign(change) or not change:
                continue
            # the change a value carries beyond its usual size, discounted by how cleanly
            # its breakdown explains the change; a value new in the period (a new
            # error code) is more often a symptom than a segment: half weight;
            new = bool(row["expected"] == 0 and row["weight"] == 0)
            # ...and so is a value that vanished (an app version replaced by a release)
            gone = bool(row["observed"] == 0 and row["weight"] > 0) and t.kind != "ratio"
            excess = abs(row["share"]) * (0.5 if new or gone else 1.0 - float(row["weight"]))
            item = {"dimension": dim, "value": str(value),
                    "contribution": _round(row["contribution"]),
                    "share": _round(row["share"]), "observed": _round(row["observed"]),
                    "expected": _round(row["expected"]),
                    "baseline_weight": _round(row["weight"]), "purity": _round(purity),
                    "score": _round(excess * purity), "new": bool(new)}
            if t.kind == "ratio":
                item["mix"], item["rate"] = _round(row["mix"]), _round(row["rate"])
            drivers.append(item)
    drivers.sort(key=lambda d: (-(d["score"] or 0), -abs(d["contribution"] or 0)))
    drivers = drivers[:top]
    related = _related(table, t, span, bases, catalog_events)
    steps = list(funnel or t.steps)
    notes = [c for c in caveats if c.get("event") in t.events
             and c.get("status") in ("warn", "fail", "error")]
    result = {
        "target": target, "kind": t.kind, "label": t.label,
        "period": span.as_dict(), "vs": vs,
        "baseline_periods": [b.as_dict() for b in bases],
        "baseline": _round(baseline), "observed": _round(observed),
        "change": _round(change),
        "change_pct": _round(change / baseline) if baseline else None,
        "drivers": drivers, "related": related,
        "funnel": _funnel(table, steps, span, bases[0], t.window) if len(steps) >= 2 else None,
        "caveats": [{"check": c.get("check"), "status": c.get("status"),
                     "event": c.get("event"), "message": c.get("message")} for c in notes],
    }
    result["summary"] = _summary(result, t)
    return result


def _first_event(table: ir.Table) -> datetime | None:
    value = table.aggregate(first=table.timestamp.min()).to_pyarrow().column(0)[0].as_py()
    if value is None:
        return None
    moment: datetime = value if value.tzinfo else value.replace(tzinfo=UTC)
    return moment


def _totals(t: _Target, table: ir.Table, span: Period, bases: list[Period], now: datetime
            ) -> tuple[float, float]:
    """The target itself over the period and its baseline (median over baseline periods)."""
    def value(p: Period) -> float:
        query = MetricQuery((t.name,), since=p.start, until=p.end)
        rows = t.layer.query(query, table, now=now).rows()
        v = rows[0][t.name] if rows else None
        return float(v) if v is not None else 0.0

    return value(span), float(np.median([value(b) for b in bases]))


def _default_dims(layer: SemanticLayer, t: _Target, events: Sequence[str]) -> list[str]:
    dims = [d for d in DEFAULT_DIMENSIONS if d in layer.dimensions]
    catalog = layer.catalog
    for event in t.events:
        if event not in catalog:
            continue
        # string properties other than ids; those with too many values are dropped
        # once their breakdown comes back (over 50 values)
        spec = catalog.get(event)
        for prop in spec.properties if spec is not None else ():
            few = prop.enum is not None and len(prop.enum) <= 50
            if (few or prop.type == "string") and not prop.name.endswith("_id") \
                    and prop.name not in dims:
                dims.append(prop.name)
    return dims


def _related(table: ir.Table, t: _Target, span: Period, bases: list[Period],
             events: Sequence[str]) -> list[dict[str, Any]]:
    """Other events whose count moved a lot over the same period."""
    earliest = min(b.start for b in bases)
    frame = event_counts(table, start=earliest, end=span.end, dims={}, grain_hours=1)
    if frame.empty:
        return []
    frame["at"] = pd.to_datetime(frame["period"] * 3600, unit="s", utc=True)
    out: list[dict[str, Any]] = []
    for event, sub in frame.groupby("target"):
        if events and event not in events:
            continue
        obs = float(sub[(sub["at"] >= span.start) & (sub["at"] < span.end)]["n"].sum())
        exp = float(np.median([sub[(sub["at"] >= b.start) & (sub["at"] < b.end)]["n"].sum()
                               for b in bases]))
        # counts halved: events come in sessions, so they vary about twice a Poisson's
        z = float(poisson_z(np.array([obs / 2]), np.array([exp / 2]))[0])
        change = (obs + 1) / (exp + 1) - 1
        if abs(z) >= 3 and abs(change) >= 0.3 and max(obs, exp) >= 5:
            out.append({"event": str(event), "observed": obs, "expected": exp,
                        "change": _round(change), "z": _round(z),
                        "direction": "up" if change > 0 else "down",
                        "in_target": str(event) in t.events})
    out.sort(key=lambda r: -abs(float(r["z"] or 0)))
    return out[:10]


def _round(value: Any) -> float | None:
    if value is None or not np.isfinite(float(value)):
        return None
    return round(float(value), 6)


def _fmt(value: float | None, kind: str) -> str:
    if value is None:
        return "n/a"
    return f"{value:.2%}" if kind == "ratio" else f"{value:,.6g}"


def _summary(r: dict[str, Any], t: _Target) -> str:
    pct = f" ({r['change_pct']:+.0%})" if r["change_pct"] is not None else ""
    against = ("the previous period" if r["vs"] == "previous"
               else "its expected value (median of the same hours 1-4 weeks before)")
    moved = "rose" if (r["change"] or 0) > 0 else "fell" if (r["change"] or 0) < 0 else "held"
    text = (f"{t.label} {moved} to {_fmt(r['observed'], t.kind)} over {r['period']['label']} "
            f"against {_fmt(r['baseline'], t.kind)} for {against}{pct}.")
    if r["drivers"]:
        d = r["drivers"][0]
        text += (f" The main driver is {d['dimension']} = {d['value']}: "
                 f"{_fmt(d['observed'], t.kind)} against {_fmt(d['expected'], t.kind)}, "
                 f"{(d['share'] or 0):.0%} of the change")
        if t.kind == "ratio":
            text += (f" (rate effect {_fmt(d['rate'], t.kind)}, mix effect "
                     f"{_fmt(d['mix'], t.kind)})")
        text += "."
        others = [f"{x['dimension']} = {x['value']} ({(x['share'] or 0):.0%})"
                  for x in r["drivers"][1:3]]
        if others:
            text += f" Next: {', '.join(others)}."
    broken = (r.get("funnel") or {}).get("broken_step")
    if broken:
        text += (f" In the funnel, step {broken['step']} ({broken['event']}) broke: "
                 f"{(broken['step_conversion'] or 0):.1%} of the previous step against "
                 f"{(broken['expected_step_conversion'] or 0):.1%}.")
    moving = [f"{x['event']} {x['direction']} {x['change']:+.0%}" for x in r["related"]
              if not x["in_target"]][:3]
    if moving:
        text += f" At the same time: {', '.join(moving)}."
    if r["caveats"]:
        text += (f" Caveat: {len(r['caveats'])} data-quality finding(s) on these events, "
                 f"e.g. {r['caveats'][0]['message']}")
    return text
