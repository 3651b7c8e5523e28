"""Anomaly detection on a warehouse: pick the series, judge them, return a Detection.

``find_anomalies`` is what the CLI, the HTTP API and the live monitor call. A target is
an event (its count), a metric of the semantic layer, or nothing (every event).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import ibis.expr.types as ir

from nerve.anomaly._detect import Detection, Window, detect
from nerve.anomaly._model import Settings
from nerve.anomaly._series import (
    KEY_DIMENSIONS,
    count_metric,
    event_counts,
    metric_series,
    with_metrics,
)
from nerve.errors import QueryError
from nerve.quality._config import parse_duration
from nerve.semantic import SemanticLayer

__all__ = ["Request", "find_anomalies", "resolve_target"]


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
    sensitivity: float = 4.0
    direction: str = "both"
    min_volume: float = 5.0
    min_change: float = 0.3
    min_duration: int = 1
    min_history: str = "7d"
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
    hint = f"; metrics: {', '.join(sorted(layer.metrics))}" if layer and layer.metrics else ""
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
    counts = metric is None or (metric.type == "simple" and metric.measure is not None \
        and metric.measure.agg in ("count", "count_distinct", "sum"))
    grain = request.grain or ("hour" if counts else "day")
    if grain not in ("hour", "day"):
        raise QueryError(f"grain: expected hour or day, got {grain!r}")
    gh = 24 if grain == "day" else 1
    evaluate_h = _hours(request.backtest or request.evaluate, "evaluate")
    training_h = _hours(request.training, "training")
    history_h = _hours(request.min_history, "min_history")
    last = int(now.timestamp() // (3600 * gh)) - 1  # the last complete period
    window = Window(last=last, evaluate=max(1, evaluate_h // gh), training=training_h // gh,
                    grain_hours=gh, min_history=history_h // gh, step=max(1, 24 // gh),
                    windows=(1, 4, 24) if gh == 1 else (1, 3, 7))
    start = datetime.fromtimestamp((last - window.evaluate - window.training + 1) * 3600 * gh,
                                   UTC)
    end = datetime.fromtimestamp((last + 1) * 3600 * gh, UTC)
    by = request.by
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
        frame = event_counts(events, start=start, end=end, dims=dims,
                             events=[name] if kind == "event" else None, grain_hours=gh)
    settings = request.settings()
    if "users" in frame.columns and settings.direction != "down":
        # spikes are judged on distinct users: one shopper's spree of 30 searches is
        # not a spike of the product; drops are judged on events
        down = replace(settings, direction="down")
        detection = detect(frame, window, down, counts=counts,
                           top_values=request.top_values, keep_points=request.points) \
            if settings.direction == "both" else Detection()
        users = frame.assign(n=frame["users"])
        spikes = detect(users, window, replace(settings, direction="up"), counts=counts,
                        top_values=request.top_values)
        detection.anomalies = sorted(detection.anomalies + spikes.anomalies,
                                     key=lambda a: (a.start, -a.max_z))
        detection.judged = max(detection.judged, spikes.judged)
        detection.skipped = max(detection.skipped, spikes.skipped) \
            if settings.direction == "both" else spikes.skipped
    else:
        detection = detect(frame, window, settings, counts=counts,
                           top_values=request.top_values, keep_points=request.points)
    about = {"target": request.target, "kind": kind, "grain": grain,
             "evaluated": {"start": window.moment(last - window.evaluate + 1).isoformat(),
                           "end": end.isoformat()},
             "training": request.training, "backtest": request.backtest,
             "by": list(by) or (list(KEY_DIMENSIONS) if kind != "metric" else []),
             "settings": {"sensitivity": request.sensitivity, "direction": request.direction,
                          "min_volume": request.min_volume, "min_change": request.min_change,
                          "min_duration": request.min_duration}}
    return detection, about


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
