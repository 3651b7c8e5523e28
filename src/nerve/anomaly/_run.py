"""Anomaly detection on a warehouse: pick the series, judge them, return a Detection.

``find_anomalies`` is what the CLI, the HTTP API and the live monitor call. A target is
an event (its count), a metric of the semantic layer, or nothing (every event).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import ibis.expr.types as ir
import pandas as pd

from nerve.anomaly._days import day_of
from nerve.anomaly._detect import Detection, Window, detect, detect_rates
from nerve.anomaly._model import Settings
from nerve.anomaly._series import (
    CHURNING,
    KEY_DIMENSIONS,
    count_metric,
    event_counts,
    metric_series,
    with_metrics,
)
from nerve.errors import QueryError
from nerve.quality._config import parse_duration
from nerve.semantic import Measure, Metric, SemanticLayer
from nerve.semantic._time import zone

__all__ = ["Request", "count_rates", "find_anomalies", "resolve_target"]


@dataclass(frozen=True, slots=True)
class Request:
    """What to judge and how (the CLI's options, the HTTP body's fields).

    Durations are strings (``24h``, ``28d``). ``backtest`` replaces ``evaluate``: every
    period of that window is judged as a daily run would have judged it.
    """

    target: str | None = None
    by: tuple[str, ...] = ()
    evaluate: str = "24h"
    training: str = "28d"
    backtest: str | None = None
    grain: str | None = None
    sensitivity: float = 3.0
    direction: str = "both"
    min_volume: float = 5.0
    min_change: float = 0.3
    min_duration: int = 1
    min_history: str = "7d"
    #: the training of the series by dimension value (they cost a JSON read per event)
    dimension_training: str = "14d"
    top_values: int = 10
    points: bool = False

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Request:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise QueryError(f"unknown field(s) {', '.join(unknown)}; expected "
                             f"{', '.join(sorted(known))}")
        values = dict(data)
        by = values.get("by") or ()
        values["by"] = tuple([by] if isinstance(by, str) else by)
        return cls(**values)

    def settings(self) -> Settings:
        return Settings(sensitivity=self.sensitivity, direction=self.direction,
                        min_volume=self.min_volume, min_change=self.min_change,
                        min_duration=self.min_duration)


def resolve_target(target: str, layer: SemanticLayer | None, events: Sequence[str]
                   ) -> tuple[str, str]:
    """("event" | "metric", canonical name): events first, then metrics and synonyms."""
    if target in events:
        return "event", target
    if layer is not None:
        try:
            return "metric", layer.get(target).name
        except QueryError:
            pass
    metrics = sorted(layer.metrics) if layer is not None else []
    close = difflib.get_close_matches(target, [*events, *metrics], n=1, cutoff=0.75)
    hint = f" (did you mean {close[0]}?)" if close else ""
    hint += f"; metrics: {', '.join(metrics)}" if metrics else ""
    raise QueryError(f"{target!r} is neither a cataloged event nor a metric{hint}")


def _hours(text: str, where: str) -> int:
    return max(1, int(parse_duration(text, where) // 3600))


def find_anomalies(events: ir.Table, request: Request, *, layer: SemanticLayer | None = None,
                   catalog_events: Sequence[str] = (), now: datetime | None = None
                   ) -> tuple[Detection, dict[str, Any]]:
    """Judge ``request.target`` (or every event) on the ``events`` table.

    Returns the detection and a description of what was judged (target, kind, grain,
    windows), for the report.
    """
    now = now or datetime.now(UTC)
    kind, name = ("all", "") if request.target is None else resolve_target(
        request.target, layer, catalog_events)
    metric = layer.get(name) if kind == "metric" and layer is not None else None
    rates = count_rates(layer) if layer is not None else {}
    counts = metric is None or name in rates or (
        metric.type == "simple" and metric.measure is not None
        and metric.measure.agg in ("count", "count_distinct", "sum"))
    grain = request.grain or ("hour" if counts else "day")
    if grain not in ("hour", "day"):
        raise QueryError(f"grain: expected hour or day, got {grain!r}")
    gh = 24 if grain == "day" else 1
    evaluate_h = _hours(request.backtest or request.evaluate, "evaluate")
    training_h = _hours(request.training, "training")
    history_h = _hours(request.min_history, "min_history")
    # days are the workspace's local days, as the semantic layer's (23 or 25 hours long
    # across a DST switch); hours are hours since the epoch
    tz = zone(layer.timezone if layer is not None else "UTC")
    # the last complete period
    last = day_of(now, tz) - 1 if gh == 24 else int(now.timestamp() // 3600) - 1
    window = Window(last=last, evaluate=max(1, evaluate_h // gh), training=training_h // gh,
                    grain_hours=gh, min_history=history_h // gh, step=max(1, 24 // gh),
                    windows=(1, 4, 24) if gh == 1 else (1, 3, 7), tz=tz)
    start = window.moment(last - window.evaluate - window.training + 1)
    end = window.moment(last + 1)
    by = request.by
    settings = request.settings()
    if kind == "metric" and name in rates and layer is not None:
        detection = _rates(events, {name: rates[name]}, layer, window, settings, request,
                           start, end, gh, by)
        return detection, _about(request, kind, grain, window, last, end, by)
    if kind == "metric" or (kind == "event" and not _scannable(by, layer)):
        if layer is None:
            raise QueryError("breakdowns by user traits and metrics need the semantic layer "
                             "(metrics/*.yaml)")
        if kind == "event":
            extra = count_metric(name)
            layer, name = with_metrics(layer, [extra]), extra.name
        frame = metric_series(layer, events, name, by=by, start=start, end=end,
                              grain_hours=gh, now=now)
        frame["target"] = request.target
    else:
        dims = {d: _paths(d) for d in by} if by else dict(KEY_DIMENSIONS)
        # counts of events in both directions: the model's dispersion (sessions) and its
        # calibration on the series' own training tails keep one shopper's spree from
        # passing for a spike, without a costly distinct count of users per cell
        only = [name] if kind == "event" else None
        frame = event_counts(events, start=start, end=end, dims={}, events=only,
                             grain_hours=gh, users=False, tz=tz)
        # dimension values read JSON, most of a scan's cost: they train on a shorter
        # window (two of each weekday by default) than the events overall
        since = max(start, window.moment(last + 1 - window.evaluate - _hours(
            request.dimension_training, "dimension_training") // gh))
        by_dim = event_counts(events, start=since, end=end, dims=dims, events=only,
                              grain_hours=gh, users=False, tz=tz)
        _check_found(by, set(by_dim["dimension"]), name if kind == "event" else None,
                     since, end, layer)
        frame = pd.concat([frame, by_dim[by_dim["dimension"] != ""]], ignore_index=True)
    detection = detect(frame, window, settings, counts=counts,
                       top_values=request.top_values, keep_points=request.points)
    if not by:
        detection.anomalies = [a for a in detection.anomalies
                               if not (a.dimension in CHURNING and a.direction == "down")]
    if kind == "all" and rates and layer is not None and gh == 1:
        rated = _rates(events, rates, layer, window, settings, request, start, end, gh, ())
        detection.anomalies = sorted(detection.anomalies + rated.anomalies,
                                     key=lambda a: (a.start, -a.max_z))
        detection.judged += rated.judged
        detection.skipped += rated.skipped
    return detection, _about(request, kind, grain, window, last, end, by)


def _about(request: Request, kind: str, grain: str, window: Window, last: int,
           end: datetime, by: Sequence[str]) -> dict[str, Any]:
    return {"target": request.target, "kind": kind, "grain": grain,
            "evaluated": {"start": window.moment(last - window.evaluate + 1).isoformat(),
                          "end": end.isoformat()},
            "training": request.training, "backtest": request.backtest,
            "by": list(by) or (list(KEY_DIMENSIONS) if kind != "metric" else []),
            "settings": {"sensitivity": request.sensitivity, "direction": request.direction,
                         "min_volume": request.min_volume, "min_change": request.min_change,
                         "min_duration": request.min_duration}}


def count_rates(layer: SemanticLayer) -> dict[str, tuple[str, str]]:
    """Ratio metrics whose two sides count one event each, without filters:
    name -> (numerator event, denominator event). Judged as shares (binomial tails)."""

    def counted(side: str | Measure | None) -> str | None:
        if isinstance(side, str):
            metric = layer.metrics.get(side)
            if metric is None or metric.type != "simple" or metric.filter:
                return None
            side = metric.measure
        if (not isinstance(side, Measure) or side.agg != "count" or side.filter
                or side.any_event or len(side.events) != 1):
            return None
        return side.events[0]

    found = {}
    for name, metric in layer.metrics.items():
        if not isinstance(metric, Metric) or metric.type != "ratio" or metric.filter:
            continue
        num, den = counted(metric.numerator), counted(metric.denominator)
        if num and den and num != den:
            found[name] = (num, den)
    return found


def _rate_dims(layer: SemanticLayer, events: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """The key dimensions, plus the enumerated properties every one of ``events`` has
    (payment_provider of payment_failed and payment_submitted): few values, and the
    ones a provider or a method breaks by."""
    dims = dict(KEY_DIMENSIONS)
    common: set[str] | None = None
    for event in events:
        spec = layer.catalog.get(event) if layer.catalog is not None else None
        names = {p.name for p in spec.properties if p.enum} if spec is not None else set()
        common = names if common is None else common & names
    for prop in sorted(common or ()):
        dims.setdefault(prop, (f"properties.{prop}",))
    return dims


def _rates(events: ir.Table, rates: dict[str, tuple[str, str]], layer: SemanticLayer,
           window: Window, settings: Settings, request: Request, start: datetime,
           end: datetime, gh: int, by: Sequence[str]) -> Detection:
    """Every rate: one scan of their events, then one family over all their series."""
    names = sorted({e for pair in rates.values() for e in pair})
    own = {name: ({d: _paths(d) for d in by} if by else _rate_dims(layer, pair))
           for name, pair in rates.items()}
    dims = {d: paths for per in own.values() for d, paths in per.items()}
    frame = event_counts(events, start=start, end=end, dims=dims, events=names,
                         grain_hours=gh, users=False, tz=window.tz)
    out = Detection()
    for name, (num, den) in sorted(rates.items()):
        mine = frame[frame["dimension"].isin(["", *own[name]])]
        found = detect_rates(mine[mine["target"] == num], mine[mine["target"] == den],
                             name, window, settings, top_values=request.top_values,
                             keep_points=request.points)
        out.anomalies.extend(found.anomalies)
        out.points.extend(found.points)
        out.judged += found.judged
        out.skipped += found.skipped
    return out


def _check_found(by: Sequence[str], found: set[str], event: str | None, since: datetime,
                 end: datetime, layer: SemanticLayer | None) -> None:
    """A ``--by`` no event carries is a typo more often than a property gone: judging
    nothing by it while saying "No anomalies" would pass for a clean bill."""
    missing = [d for d in by if d not in found]
    if not missing:
        return
    known = [*KEY_DIMENSIONS, *(layer.dimensions if layer is not None else ())]
    hints = []
    for dim in missing:
        close = difflib.get_close_matches(dim, known, n=1, cutoff=0.75)
        hints.append(f"{dim!r}" + (f" (did you mean {close[0]}?)" if close else ""))
    raise QueryError(
        f"--by {', '.join(hints)}: no {event or 'event'} event from "
        f"{since:%Y-%m-%d %H:%M %Z} to {end:%Y-%m-%d %H:%M %Z} carries it (a key dimension: "
        f"{', '.join(KEY_DIMENSIONS)}; a dimension of the semantic layer; a JSON path such "
        "as context.locale; or a property name)")


def _scannable(by: Sequence[str], layer: SemanticLayer | None) -> bool:
    """Whether one scan of the events answers every breakdown: no dimension of the
    semantic layer (those may be user traits as of the event), only key dimensions,
    JSON paths and property names."""
    named = set(layer.dimensions) if layer is not None else set()
    return all(d not in named for d in by)


def _paths(dim: str) -> tuple[str, ...]:
    if dim in KEY_DIMENSIONS:
        return KEY_DIMENSIONS[dim]
    if "." in dim:
        return (dim,)
    return (f"properties.{dim}",)  # a bare name is a property of the event
