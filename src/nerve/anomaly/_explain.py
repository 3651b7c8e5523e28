"""``explain``: why did a metric or an event count change? Drivers (mix, rate and volume
effects per breakdown value), related anomalies, the broken funnel step and data-quality
caveats.

Method (docs/anomalies.md#nerve-explain): the target is computed through the semantic layer for
the period and for its baseline (the previous period, or the robust seasonal expectation:
the median of the same hours 1 to 4 weeks before). Each breakdown splits the change among
its values, and each value's change into volume, mix and rate effects against an exposure
(active user-hours of the value for a count or a sum, the denominator for a ratio):
``nerve.anomaly._explain_decompose``. A value is scored as a driver by the share of the
change its rate or mix effect carries beyond its usual size, discounted by how cleanly its
breakdown explains the change, by the breakdown's number of values and by the evidence
(a Poisson test on counts). An app version that users upgrade away from loses exposure,
not rate: it is a mix effect, and a platform whose users tap less is a rate effect.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import ibis.expr.types as ir
import numpy as np
import pandas as pd

from nerve.anomaly._explain_context import (
    as_count,
    funnel_steps,
    leave_out_gaps,
    quality_caveats,
    related_events,
)
from nerve.anomaly._explain_decompose import (
    DISPERSION,
    SIGNIFICANT_Z,
    count_z,
    decompose,
    score_drivers,
    significant_z,
)
from nerve.anomaly._explain_gaps import tracking_gaps
from nerve.anomaly._explain_words import MIN_SCORE, summary
from nerve.anomaly._run import resolve_target
from nerve.anomaly._series import count_metric, with_metrics
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
    #: the time zone of a period of local days (yesterday, last_week, dates): it is
    #: shifted by local days, so that the week before a week holding a 25-hour day also
    #: runs from local midnight to local midnight; None for a rolling period (24h, 7d)
    tz: str | None = None

    @property
    def length(self) -> timedelta:
        """How long it is: in local days and hours for local days (a week holding a
        DST switch is 7 days, 169 or 167 hours), else in hours."""
        if self.tz is None:
            return self.end - self.start
        zone = ZoneInfo(self.tz)  # one object: the difference is of wall-clock times
        return self.end.astimezone(zone) - self.start.astimezone(zone)

    def shifted(self, delta: timedelta) -> Period:
        label = f"{self.label} - {delta.days}d"
        if self.tz is None:
            return Period(self.start - delta, self.end - delta, label)
        zone = ZoneInfo(self.tz)
        # an aware datetime minus a timedelta moves its wall-clock time
        return Period((self.start.astimezone(zone) - delta).astimezone(UTC),
                      (self.end.astimezone(zone) - delta).astimezone(UTC), label, self.tz)

    def as_dict(self) -> dict[str, str]:
        return {"label": self.label, "start": self.start.isoformat(),
                "end": self.end.isoformat()}


def parse_period(text: str, now: datetime, tz: str = "UTC") -> Period:
    """``24h``, ``7d``, ``yesterday``, ``last_week``, ``YYYY-MM-DD..YYYY-MM-DD`` (both
    days included, local time) or ``YYYY-MM-DD`` (one day). Rolling periods, and days
    that are not over, end at the last complete hour: today so far is compared with the
    same hours before, not with whole days.

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
        return _local(today - timedelta(days=1), today, text, tz)
    if text == "last_week":
        monday = today - timedelta(days=today.weekday())
        return _local(monday - _WEEK, monday, text, tz)
    if ".." in text or _is_date(text):
        first, _, last = text.partition("..") if ".." in text else (text, "", text)
        try:
            a, b = date.fromisoformat(first.strip()), date.fromisoformat(last.strip())
        except ValueError as exc:
            raise QueryError(f"--period: {text!r}: expected YYYY-MM-DD..YYYY-MM-DD") from exc
        if b < a:
            raise QueryError(f"--period: {text!r} ends before it starts")
        start = datetime(a.year, a.month, a.day, tzinfo=zone)
        end = datetime(b.year, b.month, b.day, tzinfo=zone) + timedelta(days=1)
        if start >= hour_end:
            raise QueryError(f"--period: {text!r} has no complete hour yet (it is "
                             f"{now.astimezone(zone):%Y-%m-%d %H:%M} {tz})")
        return _local(start, min(end, hour_end.astimezone(zone)), text, tz)
    raise QueryError(f"--period: {text!r}: expected 24h, 7d, yesterday, last_week, "
                     "YYYY-MM-DD or YYYY-MM-DD..YYYY-MM-DD")


def _is_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _local(start: datetime, end: datetime, label: str, tz: str) -> Period:
    return Period(start.astimezone(UTC), end.astimezone(UTC), label, tz)


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
    #: a count of the amount's events when the amount is a sum (revenue): significance
    #: is judged on counts, in units of the average amount
    units: str = ""
    #: distinct users of the amount's events, per hour: significance is judged on them
    #: (a shopper adding five items at once, or retrying a payment ten times, is one)
    actors: str = ""
    #: a conversion rate: its numerator is the rate times the denominator, per period
    conversion: bool = False
    #: how values print: percent (rates), count (whole numbers: a count of events or
    #: people, as `nerve ask` writes them) or number
    style: str = "number"
    #: the amount is a count (events or users), the exposure too: JSON carries integers
    counted: bool = False
    exposure_counted: bool = False
    #: a filter over the semantic layer's dimensions and segments (``platform =
    #: 'android'``): the target, its baseline and every breakdown are computed inside it
    where: str | None = None
    #: the baseline periods (indexes into them) the target's median is the mean of: the
    #: breakdown values' expected figures come from the same periods, so that they add
    #: up to the target's expected value (``_median_periods``)
    median_of: tuple[int, ...] = ()


def _target(layer: SemanticLayer, target: str, events: Sequence[str]) -> _Target:
    if target in events:
        metric = count_metric(target)
        extra, units, actors = _extras(metric.name, metric.measure)
        return _Target(with_metrics(layer, [metric, EXPOSURE, *extra]), metric.name,
                       f"{target} events", "additive", events=(target,), actors=actors,
                       style="count", counted=True, exposure_counted=True)
    # a typo may mean an event as well as a metric: the error names the closest of both
    metric = layer.get(resolve_target(target, layer, events)[1])
    used = tuple(layer.events_of(metric.name))
    if metric.type == "simple" and metric.measure and metric.measure.agg in (
            "count", "count_distinct", "sum"):
        extra, units, actors = _extras(metric.name, metric.measure)
        return _Target(with_metrics(layer, [EXPOSURE, *extra]), metric.name, metric.title,
                       "additive", events=used, up_is_good=metric.up_is_good,
                       units=units, actors=actors, counted=metric.is_count,
                       style="count" if metric.is_count and metric.format == "number"
                       else "number", exposure_counted=True)
    sides: list[Metric] = []
    num = den = units = actors = ""
    if metric.type == "ratio":
        num = _side(metric.name, metric.numerator, "num", sides)
        den = _side(metric.name, metric.denominator, "den", sides)
        measure = layer.get(metric.numerator).measure if isinstance(
            metric.numerator, str) else metric.numerator
        extra, units, actors = _extras(metric.name, measure)
        sides.extend(extra)
    elif metric.conversion is not None:
        base = metric.conversion.base
        den = _side(metric.name, Measure(agg="count_distinct", events=base.events,
                                         filter=base.filter, of="user"), "den", sides)
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
    return _Target(extended, metric.name, metric.title, kind, numerator=num or metric.name,
                   denominator=den, events=used, up_is_good=metric.up_is_good,
                   steps=steps, window=window, units=units, actors=actors,
                   conversion=metric.conversion is not None,
                   style="percent" if metric.format == "percent" else "number",
                   exposure_counted=bool(den) and _counts(
                       extended.get(den).measure if den else None))


def _counts(measure: Measure | None) -> bool:
    return measure is not None and measure.agg in ("count", "count_distinct")


#: the exposure of a count or a sum: distinct active users (any event), summed per hour
EXPOSURE = Metric(name="explain__exposure", type="simple",
                  measure=Measure(agg="count_distinct", events=("*",), of="user"))


def _extras(name: str, measure: Any) -> tuple[list[Metric], str, str]:
    """For an amount that is a count or a sum: a count of its events when it is a sum
    (its unit), and its distinct users per hour (how clustered its events are)."""
    if not isinstance(measure, Measure) or measure.agg not in ("count", "sum") \
            or measure.any_event:
        return [], "", ""
    extra = [Metric(name=f"{name}__actors", type="simple",
                    measure=Measure(agg="count_distinct", events=measure.events,
                                    filter=measure.filter, of="user"))]
    units = ""
    if measure.agg == "sum":
        units = f"{name}__units"
        extra.append(Metric(name=units, type="simple", measure=Measure(
            agg="count", events=measure.events, filter=measure.filter)))
    return extra, units, extra[0].name


def _single_event(layer: SemanticLayer, side: Any) -> str | None:
    measure = layer.get(side).measure if isinstance(side, str) else side
    if isinstance(measure, Measure) and len(measure.events) == 1 and not measure.any_event:
        return measure.events[0]
    return None


def _side(metric: str, side: Any, tag: str, out: list[Metric]) -> str:
    if isinstance(side, str):
        return side
    name = f"{metric}__{tag}"
    out.append(Metric(name=name, type="simple", measure=side))
    return name



NONE = "(none)"  # the value of events without the breakdown's property (web has no app)


def _hourly(t: _Target, table: ir.Table, names: Sequence[str], dim: str, start: datetime,
            end: datetime, now: datetime) -> pd.DataFrame:
    """Hourly values of ``names`` by ``dim`` (or overall) as a frame with a UTC ``at``."""
    query = MetricQuery(tuple(names), by=(dim,) if dim else (), grain="hour", since=start,
                        until=end, where=t.where)
    result = t.layer.query(query, table, now=now)
    frame = result.table.to_pandas()
    local = pd.to_datetime(frame[result.time_column or "hour"])
    frame["at"] = local.dt.tz_localize(ZoneInfo(t.layer.timezone), ambiguous="NaT",
                                       nonexistent="shift_forward").dt.tz_convert(UTC)
    if dim:
        frame[dim] = frame[dim].astype("string").fillna(NONE)
    return frame


def _sum(frame: pd.DataFrame, period: Period, dim: str, names: Sequence[str]
         ) -> pd.DataFrame:
    inside = frame[(frame["at"] >= period.start) & (frame["at"] < period.end)]
    return inside.groupby(dim)[list(names)].sum().astype(float)


def _median_periods(values: Sequence[float]) -> tuple[int, ...]:
    """The periods whose mean is the median of ``values``: the middle one, or the middle
    two (ties in the order given).

    >>> _median_periods([130.0, 130.0, 120.0, 110.0])
    (0, 2)
    """
    order = sorted(range(len(values)), key=lambda i: values[i])
    middle = len(order) // 2
    return tuple(sorted(order[middle - 1:middle + 1] if len(order) % 2 == 0
                        else order[middle:middle + 1]))


def _baseline(parts: list[pd.DataFrame], median_of: Sequence[int]) -> pd.DataFrame:
    """Per value and column, the mean over the baseline periods the target's median comes
    from (absent = zero), and ``seen``: the value's largest column over every baseline
    period (zero: the value is new to the period). A median per value would not add up
    to the target's: during a rollout, a version seen in one week of four has a median
    of zero, its users counted nowhere."""
    index = parts[0].index
    for p in parts[1:]:
        index = index.union(p.index)
    stacked = np.stack([p.reindex(index).fillna(0.0).to_numpy() for p in parts])
    picked = list(median_of) or list(range(len(parts)))
    out = pd.DataFrame(stacked[picked].mean(axis=0), index=index, columns=parts[0].columns)
    out["seen"] = stacked.max(axis=(0, 2))
    return out


def _cells(t: _Target, table: ir.Table, dim: str, span: Period, bases: list[Period],
           now: datetime) -> tuple[pd.DataFrame, float]:
    """Per value of ``dim``: ``n1 d1 n0 d0`` (amount and exposure, period and baseline),
    ``a1 a0`` (the amount's acting user-hours) when known, and the size of one counted
    unit of the amount."""
    amount = t.numerator if t.kind == "ratio" else t.name
    exposure = t.denominator if t.kind == "ratio" else EXPOSURE.name
    names = [amount, exposure, *(n for n in (t.units, t.actors) if n)]
    if t.conversion:
        # a conversion rate is not a sum over hours: one query per period, and the
        # numerator is the rate times its denominator (the converted users)
        def period_sums(p: Period) -> pd.DataFrame:
            query = MetricQuery((t.name, exposure), by=(dim,), since=p.start, until=p.end,
                                where=t.where)
            frame = t.layer.query(query, table, now=now).table.to_pandas()
            frame[dim] = frame[dim].astype("string").fillna(NONE)
            frame[amount] = frame[t.name].astype(float).fillna(0.0) * frame[exposure]
            return frame.groupby(dim)[[amount, exposure]].sum().astype(float)

        now_sums = period_sums(span)
        base_sums = _baseline([period_sums(b) for b in bases], t.median_of)
    else:
        frame = _hourly(t, table, names, dim, min(b.start for b in bases), span.end, now)
        now_sums = _sum(frame, span, dim, names)
        base_sums = _baseline([_sum(frame, b, dim, names) for b in bases], t.median_of)
    both = now_sums.join(base_sums, how="outer", lsuffix="_1", rsuffix="_0").fillna(0.0)
    cells = pd.DataFrame({"n1": both[f"{amount}_1"], "d1": both[f"{exposure}_1"],
                          "n0": both[f"{amount}_0"], "d0": both[f"{exposure}_0"],
                          "seen": both["seen"]})
    unit = 1.0
    if t.units:
        counted = float(both[f"{t.units}_1"].sum() + both[f"{t.units}_0"].sum())
        total = float(cells["n1"].sum() + cells["n0"].sum())
        unit = total / counted if counted > 0 and total > 0 else 1.0
    if t.actors and not t.conversion:
        cells["a1"], cells["a0"] = both[f"{t.actors}_1"], both[f"{t.actors}_0"]
    return cells, unit


def explain(table: ir.Table, target: str, *, layer: SemanticLayer, period: str = "24h",
            vs: str = "previous", dimensions: Sequence[str] | None = None,
            catalog_events: Sequence[str] = (), caveats: Sequence[dict[str, Any]] = (),
            now: datetime | None = None, top: int = 10,
            funnel: Sequence[str] = (),
            run_checks: Callable[[Sequence[str], datetime], list[dict[str, Any]]] | None = None,
            where: str | None = None) -> dict[str, Any]:
    """The explanation of ``target``'s change over ``period`` against ``vs``.

    ``caveats`` are recorded quality results (``CheckResult.as_dict()``); ``run_checks``,
    when given, runs the quality checks on the target's events as of the period's end
    (as of ``now`` when it ended within the day before) instead (``(select, at) ->
    results``, ``select`` as ``nerve.quality.run_checks`` takes it: the events and the
    checks). Only findings that are not passing, about the
    target's events, and not the volume change being explained are reported. ``funnel``
    names the steps to find the broken one in (default: a conversion metric's base and
    conversion events, a ratio's denominator and numerator events). ``where`` narrows
    the target, its baseline and its breakdowns to a filter of the semantic layer
    (``platform = 'android'``); related events and the funnel, which read the events
    without the layer, are then not computed (``related`` empty, ``funnel`` None).
    """
    if vs not in ("previous", "expected"):
        raise QueryError(f"--vs: expected previous or expected, got {vs!r}")
    now = now or datetime.now(UTC)
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    t = replace(_target(layer, target, catalog_events), where=where or None)
    span = parse_period(period, now, layer.timezone)
    length = span.length
    first, last = _event_range(table)
    bases = [span.shifted(k * _WEEK) for k in range(1, 5)] \
        if vs == "expected" and length <= _WEEK else []
    # only weeks the data covers: an empty week is no evidence that zero is expected
    bases = [b for b in bases if first is not None and b.start >= first] \
        or [span.shifted(length)]
    found = quality_caveats(t.events, span, last, caveats, run_checks, now, bases)
    if vs == "expected":
        # a week holding a day without any event is no evidence of what to expect either
        bases, found = leave_out_gaps(bases, found)
    observed, baseline, median_of = _totals(t, table, span, bases, now)
    t = replace(t, median_of=median_of)
    change = observed - baseline
    # a percentile or a derived metric does not split among values: no breakdowns
    dims = [] if t.kind == "other" else list(
        dimensions or _default_dims(layer, t, catalog_events))
    scored: list[pd.DataFrame] = []
    volume: dict[str, Any] | None = None
    change_z: float | None = None
    for dim in dims:
        try:
            cells, unit = _cells(t, table, dim, span, bases, now)
        except QueryError:
            continue  # a property this metric's events lack: not a breakdown of it
        if change_z is None and change:
            change_z = _change_z(t, cells, unit, observed, baseline, len(bases))
        cells, population = _segments(cells)
        if not 2 <= len(cells) <= 50:
            continue  # one value explains nothing; fifty are not a breakdown
        parts = decompose(cells, additive=t.kind == "additive", unit=unit,
                          baselines=len(bases), population=population)
        if volume is None and t.kind == "additive" and population:
            # the active users: not those of a property only some events send (payers)
            volume = {"effect": _round(parts["volume"].sum()),
                      "exposure": as_count(cells["d1"].sum()),
                      "expected_exposure": as_count(cells["d0"].sum())}
        parts = score_drivers(parts, change)
        parts["dimension"], parts["values"], parts["seen"] = dim, len(cells), cells["seen"]
        scored.append(parts)
    amount = as_count if t.counted else _round
    threshold = significant_z(sum(len(p) for p in scored))
    drivers = _overlaps(t, table, _drivers(scored, t, change, threshold)[:top], span,
                        bases, now, threshold)
    offsets = [d for d in _drivers(scored, t, change, threshold, "counter_")
               if (d["score"] or 0) >= MIN_SCORE][:5]
    # the other events are looked at overall, and for the top driver's value when it is
    # significant or scores twice what the summary needs, and the top offset's (a value
    # new to the period, or gone from it, has no baseline to compare with)
    leads: dict[str, dict[str, Any]] = {}
    for d in drivers[:1]:
        if (d["significant"] or (d["score"] or 0) >= 2 * MIN_SCORE) \
                and not d["new"] and d["exposure"]:
            leads.setdefault(d["dimension"], d)
    for d in offsets[:1]:
        if not d["new"] and d["exposure"]:
            leads.setdefault(d["dimension"], d)
    related = [] if t.where else related_events(table, t.layer, span, bases, catalog_events,
                                                t.events, list(leads.values()))
    steps = [] if t.where else list(funnel or t.steps)
    result = {
        "target": target, "kind": t.kind, "label": t.label, "where": t.where,
        "style": t.style,
        "period": span.as_dict(), "vs": vs,
        "baseline_periods": [b.as_dict() for b in bases],
        "baseline": amount(baseline), "observed": amount(observed),
        "change": amount(change),
        "change_pct": _round(change / baseline) if baseline else None,
        "change_z": _round(change_z),
        "change_significant": None if change_z is None
        else bool(abs(change_z) >= SIGNIFICANT_Z),
        "volume": volume,
        "significant_z": _round(threshold),
        "drivers": drivers, "offsets": offsets, "related": related,
        "funnel": funnel_steps(table, steps, span, bases[0], t.window)
        if len(steps) >= 2 else None,
        "caveats": found + _gaps(t, table, span, bases, drivers, now),
    }
    result["summary"] = summary(result, t)
    return result


def _segments(cells: pd.DataFrame) -> tuple[pd.DataFrame, bool]:
    """The values of one breakdown that are segments of the target, and whether their
    exposure is the active users (``population``: see ``decompose``).

    The users of events without the breakdown's property (every event but the payments
    for ``payment_provider``) are no segment of the target: without any of its amount,
    (none) only dilutes the shares, and is left out; nor is a value with neither amount
    nor exposure in either period (under ``where``, the values the filter leaves out come
    back as such empty rows: inside country = 'BR', country has one value). When (none)
    is left out so, the remaining values hold only the users who sent the property:
    people known by what they did, not the active users.
    """
    nothing = (cells[["n1", "d1", "n0", "d0"]] == 0).all(axis=1)
    idle = (cells.index == NONE) & (cells["n1"] == 0) & (cells["n0"] == 0)
    return cells[~(nothing | idle)], not bool((idle & ~nothing).any())


def _change_z(t: _Target, cells: pd.DataFrame, unit: float, observed: float,
              baseline: float, baselines: int) -> float:
    """How far the target's own change is beyond noise, by the noise model of its drivers
    (docs/anomalies.md#nerve-explain): for a count or a sum, its count in units against the
    baseline's, overdispersed by its events per acting user-hour (as related events are
    judged); for a ratio, its numerator against the baseline rate times today's
    denominator, as a driver's rate effect is (the breakdown's values summed into one).
    A change no breakdown value carries may still be far beyond noise, spread over all."""
    if t.kind != "additive":
        whole = cells.sum().to_frame().T
        return float(decompose(whole, additive=False, unit=unit, baselines=baselines)
                     ["z_rate"].iloc[0])
    amount = float(cells["n1"].sum() + cells["n0"].sum()) / max(unit, 1e-12)
    acting = float(cells["a1"].sum() + cells["a0"].sum()) if "a1" in cells else 0.0
    spread = max(1.0, amount / acting) if acting > 0 else DISPERSION
    return count_z(observed / max(unit, 1e-12), baseline / max(unit, 1e-12), spread=spread,
                   baselines=baselines)


def _drivers(scored: list[pd.DataFrame], t: _Target, change: float, threshold: float,
             prefix: str = "") -> list[dict[str, Any]]:
    """The values of every breakdown, best score first. Drivers (``prefix`` empty): the
    values that moved with the change. Offsets (``counter_``): the values that moved
    against it, scored for that direction, only those with a score."""
    if not scored or not change:
        return []
    every = pd.concat(scored)
    score = every[f"{prefix}score"]
    along = np.sign(every["contribution"]) == np.sign(change)
    every = every[(score > 0) | along] if not prefix else every[score > 0]
    every = every.assign(_abs=every["contribution"].abs()).sort_values(
        [f"{prefix}score", "_abs"], ascending=[False, False])
    amount = as_count if t.counted else _round
    exposure = as_count if t.exposure_counted else _round
    out = []
    for value, row in every.iterrows():
        item: dict[str, Any] = {
            "dimension": row["dimension"], "value": str(value),
            "contribution": amount(row["contribution"]), "share": _round(row["share"]),
            "observed": amount(row["observed"]), "expected": amount(row["expected"]),
            "effect": row[f"{prefix}effect"], "rate": _round(row["rate"]),
            "mix": _round(row["mix"]), "arrivals": _round(row["arrivals"]),
            "effect_change": _round(_effect_change(row, row[f"{prefix}effect"])),
            "effect_share": _round(_effect_change(row, row[f"{prefix}effect"]) / change),
            "score": _round(row[f"{prefix}score"]), "z": _round(row[f"{prefix}z"]),
            "significant": bool(abs(row[f"{prefix}z"]) >= threshold
                                and row[f"{prefix}score"] > 0),
            "purity": _round(row[f"{prefix}purity"]),
            "exposure_share": _round(row["weight"]), "values": int(row["values"]),
            # new: no events in any baseline period (a version out in one week of four
            # is no new version, though the median's weeks may not hold it)
            "new": bool(row["seen"] == 0),
            "exposure": exposure(row["exposure"]),
            "expected_exposure": exposure(row["expected_exposure"]),
        }
        if t.kind == "additive":
            item["volume"] = _round(row["volume"])
            item["rate_observed"] = _round(row["rate_observed"])
            item["rate_expected"] = _round(row["rate_expected"])
        out.append(item)
    return out


def _effect_change(row: pd.Series, effect: str) -> float:
    """The part of the value's change its ranked effect carries: the rate effect, or the
    mix effect (for a count or a sum, its users coming or going: volume included, unless
    they are known only by what they did), as :func:`score_drivers` scores them."""
    if effect == "rate":
        return float(row["rate"])
    return float(row["mix_moved"])


def _overlaps(t: _Target, table: ir.Table, drivers: list[dict[str, Any]], span: Period,
              bases: list[Period], now: datetime, threshold: float
              ) -> list[dict[str, Any]]:
    """Mark the significant drivers of other breakdowns that are the top driver's change
    seen through another breakdown: outside the top driver's value they do not move
    beyond noise (``overlaps``: the top driver, ``outside_z``). In an adyen outage,
    ``platform = web`` holds a share of adyen's failed payments: without adyen, web's
    failures did not move, and naming web as a driver of its own would blame it.

    Of those, the ones outside whose value the top driver does not move beyond noise
    either hold its change (``holds_change``, ``lead_outside_z``): a drop of Android 5.2.0
    in Germany is inside ``app_version = 5.2.0`` and ``country = DE`` too, where an
    iOS-only drop is not inside ``country = DE`` (iOS fell outside Germany as well),
    though Germany's carts, outside iOS, did not move either."""
    if not drivers or not drivers[0]["significant"] or drivers[0]["value"] == NONE:
        return drivers
    lead = drivers[0]
    for d in drivers[1:6]:
        if d["dimension"] == lead["dimension"] or not d["significant"]:
            continue
        try:
            z = _outside_z(t, table, d, lead, span, bases, now)
        except QueryError:
            continue
        if abs(z) >= threshold:
            continue
        d["overlaps"] = f"{lead['dimension']} = {lead['value']}"
        d["outside_z"] = _round(z)
        if d["value"] == NONE:
            continue
        back = _outside_z(t, table, lead, d, span, bases, now)
        d["holds_change"] = bool(abs(back) < threshold)
        d["lead_outside_z"] = _round(back)
    return drivers


def _outside_z(t: _Target, table: ir.Table, d: dict[str, Any], lead: dict[str, Any],
               span: Period, bases: list[Period], now: datetime) -> float:
    """The z of the effect that makes ``d`` a driver, among the events without ``lead``'s
    value (and those without ``lead``'s property); 0 when it moved the other way there."""
    dim, value = str(lead["dimension"]), str(lead["value"]).replace("'", "''")
    outside = f"({dim} != '{value}' or {dim} is null)"
    rest = replace(t, where=f"({t.where}) and {outside}" if t.where else outside)
    cells, unit = _cells(rest, table, str(d["dimension"]), span, bases, now)
    cells, population = _segments(cells)
    if d["value"] not in cells.index:
        return 0.0
    parts = decompose(cells, additive=t.kind == "additive", unit=unit,
                      baselines=len(bases), population=population)
    row = parts.loc[d["value"]]
    if np.sign(row["contribution"]) != np.sign(d["contribution"] or 0):
        return 0.0  # outside the lead it moved the other way: none of its own
    return float(row["z_rate"] if d["effect"] == "rate" else row["z_mix"])


def _gaps(t: _Target, table: ir.Table, span: Period, bases: list[Period],
          drivers: list[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """Tracking gaps of a count or a sum: overall, and in its three leading drivers that
    fell (``nerve.anomaly._explain_gaps``)."""
    counter = t.name if t.counted else t.units
    if t.kind != "additive" or not counter:
        return []
    candidates = [("", ""), *((str(d["dimension"]), str(d["value"])) for d in drivers[:3]
                              if (d["contribution"] or 0) < 0 and d["value"] != NONE)]
    return tracking_gaps(table, t.layer, counter=counter, active=EXPOSURE.name,
                         events=t.events, span=span, bases=bases, candidates=candidates,
                         where=t.where, now=now)


def _event_range(table: ir.Table) -> tuple[datetime | None, datetime | None]:
    row = table.aggregate(first=table.timestamp.min(), last=table.timestamp.max()
                          ).to_pyarrow().to_pylist()[0]

    def aware(value: Any) -> datetime | None:
        if value is None:
            return None
        moment: datetime = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment

    return aware(row["first"]), aware(row["last"])


def _totals(t: _Target, table: ir.Table, span: Period, bases: list[Period], now: datetime
            ) -> tuple[float, float, tuple[int, ...]]:
    """The target itself over the period and its baseline (median over baseline periods),
    and the baseline periods that median is the mean of."""
    def value(p: Period) -> float:
        query = MetricQuery((t.name,), since=p.start, until=p.end, where=t.where)
        rows = t.layer.query(query, table, now=now).rows()
        v = rows[0][t.name] if rows else None
        return float(v) if v is not None else 0.0

    values = [value(b) for b in bases]
    return value(span), float(np.median(values)), _median_periods(values)


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


def _round(value: Any) -> float | None:
    if value is None or not np.isfinite(float(value)):
        return None
    return round(float(value), 6)
