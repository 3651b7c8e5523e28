"""Detection and backtest: judge series frames with the seasonal robust model.

``detect`` looks at the last ``evaluate`` periods of every series; ``backtest`` walks a
longer window one day at a time, refitting before each day on the ``training`` periods
before it (without the points it already found anomalous), exactly as a detector that
ran every day would have.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from nerve.anomaly._model import F64, Settings, robust_fit, runs, scan

__all__ = ["Anomaly", "Detection", "Window", "detect"]


@dataclass(frozen=True, slots=True)
class Window:
    """Where to look, in periods of ``grain_hours`` hours (1 = hourly, 24 = daily).

    ``last`` is the index of the last complete period; the evaluated periods are the
    ``evaluate`` ones ending there, judged against the ``training`` ones before them.
    ``min_history`` periods of history are needed before a series is judged at all.
    """

    last: int
    evaluate: int = 24
    training: int = 28 * 24
    grain_hours: int = 1
    min_history: int = 7 * 24
    #: periods evaluated per refit (a backtest refits once per step)
    step: int = 24
    #: lengths of the sums judged besides single periods (see ``nerve.anomaly._model.scan``)
    windows: tuple[int, ...] = (1, 4, 24)

    def moment(self, period: int) -> datetime:
        return datetime.fromtimestamp(period * 3600 * self.grain_hours, UTC)


@dataclass(frozen=True, slots=True)
class Anomaly:
    """A run of anomalous periods of one series."""

    target: str
    dimension: str
    value: str
    direction: str
    start: datetime
    end: datetime
    periods: int
    observed: float
    expected: float
    low: float
    high: float
    max_z: float
    ongoing: bool

    @property
    def change(self) -> float:
        return self.observed / self.expected - 1 if self.expected else float("inf")

    def as_dict(self) -> dict[str, Any]:
        return {"target": self.target, "dimension": self.dimension or None,
                "value": self.value or None, "direction": self.direction,
                "start": self.start.isoformat(), "end": self.end.isoformat(),
                "periods": self.periods, "observed": round(self.observed, 4),
                "expected": round(self.expected, 4), "low": round(self.low, 4),
                "high": round(self.high, 4),
                "change": round(self.change, 4) if np.isfinite(self.change) else None,
                "max_z": round(self.max_z, 2), "ongoing": self.ongoing,
                "message": self.message()}

    def message(self) -> str:
        where = f" on {self.dimension}={self.value}" if self.dimension else ""
        what = "dropped" if self.direction == "down" else "spiked"
        change = f"{self.change:+.0%}" if np.isfinite(self.change) else "new"
        return (f"{self.target}{where} {what} to {self.observed:,.4g} per period against an "
                f"expected {self.expected:,.4g} (band {self.low:,.4g}-{self.high:,.4g}; "
                f"{change}) for {self.periods} period(s) from {self.start:%Y-%m-%d %H:%M} UTC"
                + (", still ongoing." if self.ongoing else f" to {self.end:%Y-%m-%d %H:%M}."))


@dataclass
class Detection:
    """What a run found: the anomalies, every judged point (for a backtest), and the
    series it skipped (too new or too small)."""

    anomalies: list[Anomaly] = field(default_factory=list)
    points: list[dict[str, Any]] = field(default_factory=list)
    judged: int = 0
    skipped: int = 0

    def as_dict(self, *, points: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"anomalies": [a.as_dict() for a in self.anomalies],
                               "series_judged": self.judged, "series_skipped": self.skipped}
        if points:
            out["points"] = self.points
        return out


def detect(frame: pd.DataFrame, window: Window, settings: Settings, *, counts: bool = True,
           top_values: int = 10, keep_points: bool = False) -> Detection:
    """Judge every series of a series frame (see ``nerve.anomaly._series``).

    Per target and dimension, only the ``top_values`` values with the most volume are
    judged. ``keep_points`` returns every evaluated point with its band and flag.
    """
    found = Detection()
    if frame.empty:
        return found
    first = window.last - window.evaluate + 1
    frame = frame[frame["period"] <= window.last]
    totals = frame.groupby(["target", "dimension", "value"], sort=False)["n"].sum()
    keep = set()
    for (_target, dim), sub in totals.groupby(level=[0, 1], sort=False):
        ordered = sub.sort_values(ascending=False)
        keep.update(ordered.index[: (1 if dim == "" else top_values)])
    for key, sub in frame.groupby(["target", "dimension", "value"], sort=True):
        if key not in keep:
            continue
        target, dim, value = (str(k) for k in key)
        series = sub.groupby("period")["n"].sum()
        born = int(series.index.min())
        if first - born < window.min_history:
            found.skipped += 1
            continue
        begin = max(born, first - window.training)
        periods = np.arange(begin, window.last + 1, dtype=np.int64)
        values = series.reindex(periods, fill_value=0.0 if counts else np.nan).to_numpy(
            dtype=float)
        if not counts:
            values = pd.Series(values).ffill().fillna(0.0).to_numpy()
        judged = _walk(periods, values, first, window, settings, counts)
        if judged is None:
            found.skipped += 1
            continue
        found.judged += 1
        marks, expected, low, high, z = judged
        part = periods >= first
        if keep_points:
            for i in np.flatnonzero(part):
                found.points.append({
                    "target": target, "dimension": dim or None, "value": value or None,
                    "time": window.moment(int(periods[i])).isoformat(),
                    "observed": float(values[i]), "expected": round(float(expected[i]), 4),
                    "low": round(float(low[i]), 4), "high": round(float(high[i]), 4),
                    "z": round(float(z[i]), 2),
                    "alert": {1: "up", -1: "down"}.get(int(marks[i])),
                })
        offset = int(np.flatnonzero(part)[0])
        for start, end, sign in runs(marks[part], settings.min_duration, gap=2):
            a, b = offset + start, offset + end + 1
            found.anomalies.append(Anomaly(
                target=target, dimension=dim, value=value,
                direction="up" if sign > 0 else "down",
                start=window.moment(int(periods[a])), end=window.moment(int(periods[b - 1]) + 1),
                periods=b - a, observed=float(values[a:b].mean()),
                expected=float(expected[a:b].mean()), low=float(low[a:b].mean()),
                high=float(high[a:b].mean()), max_z=float(np.abs(z[a:b]).max()),
                ongoing=b >= len(periods) - 2))  # within the gap runs bridge
    found.anomalies.sort(key=lambda x: (x.start, -x.max_z))
    return found


def _walk(periods: np.ndarray[Any, Any], values: F64, first: int, window: Window,
          settings: Settings, counts: bool
          ) -> tuple[np.ndarray[Any, Any], F64, F64, F64, F64] | None:
    """Evaluate ``[first, last]`` step by step; flagged points leave later trainings."""
    n = len(values)
    marks = np.zeros(n, dtype=np.int64)
    expected, low, high, z = (np.zeros(n) for _ in range(4))
    usable = np.ones(n, dtype=bool)
    evaluated = 0
    start = first
    while start <= window.last:
        stop = min(start + window.step, window.last + 1)
        train = usable & (periods < start) & (periods >= start - window.training)
        if train.sum() < max(2 * (24 // max(1, window.grain_hours)), 7):
            start = stop
            continue
        band = robust_fit(periods, values, train, counts=counts,
                          grain_hours=window.grain_hours, sensitivity=settings.sensitivity)
        here = (periods >= start) & (periods < stop)
        lo, hi = band.bounds(settings.sensitivity)
        expected[here], low[here], high[here], z[here] = (
            band.expected[here], lo[here], hi[here], band.z[here])
        sub = scan(values, band, train, window.windows, settings, marks=marks.copy())
        # a window ending in this step may mark judged points of the previous steps too
        reach = (periods >= first) & (periods < stop)
        marks[reach] = np.where(marks[reach] != 0, marks[reach], sub[reach])
        usable[here] = marks[here] == 0
        evaluated += int(here.sum())
        start = stop
    if not evaluated:
        return None
    part = periods >= first
    if counts and max(expected[part].sum(), values[part].sum()) < settings.min_volume:
        return None  # too sparse to judge at all
    return marks, expected, low, high, z


