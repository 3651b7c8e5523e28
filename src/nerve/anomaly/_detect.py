"""Detection and backtest: judge series frames with the seasonal model.

``detect`` looks at the last ``evaluate`` periods of every series; a backtest walks a
longer window one day at a time, refitting before each day on the ``training`` periods
before it (without the points it already found anomalous), exactly as a detector that
ran every day would have.

Counts (events, distinct users, and the two sides of a rate) go through the count model
shared with the quality checks (``nerve.quality._seasonal``): negative-binomial tails
of window sums, one Benjamini-Hochberg family per run (per day of a backtest) over all
the series judged. Metric values (revenue, an average) have no exact tail: each series
is judged on its own by ``nerve.anomaly._model`` at ``sensitivity + 1`` spreads.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from nerve.anomaly._days import day_start
from nerve.anomaly._model import F64, Settings, robust_fit, runs, scan
from nerve.quality._seasonal import (
    Judgement,
    Rules,
    judge_counts,
    judge_rates,
    normal_score,
    reject,
    wall_hours,
)

__all__ = ["Anomaly", "Detection", "Window", "detect", "detect_rates"]


@dataclass(frozen=True, slots=True)
class Window:
    """Where to look, in periods of ``grain_hours`` hours (1 = hourly, 24 = daily).

    Hour periods are hours since the epoch (the model reads their hours of day and days
    of week on ``tz``'s wall clock: ``clock``); day periods are local days of ``tz`` (the
    workspace's time zone, default UTC) numbered from 1970-01-01 (``nerve.anomaly._days``):
    a day of a DST switch is one period of 23 or 25 hours.

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
    tz: ZoneInfo | None = None

    def clock(self, periods: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """``periods`` numbered on the workspace's wall clock, for the model's hours of
        day and days of week (day periods are local already)."""
        if self.grain_hours >= 24:
            return periods
        return wall_hours(periods, self.tz)

    def moment(self, period: int) -> datetime:
        """The start of ``period``: a UTC instant for hours, local midnight for days."""
        if self.grain_hours >= 24:
            return day_start(period, self.tz or ZoneInfo("UTC"))
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
    #: the run holds the first judged period and the sums judged there show it before
    #: too: it began before the evaluated window, at a time not known
    began_before: bool = False
    #: ``count`` (events per period, judged on sums over windows: the band is one
    #: period's), ``share`` (a rate: observed, expected and band are shares) or ``value``
    #: (a metric's value, each period judged against its band)
    kind: str = "value"

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
                "began_before": self.began_before, "message": self.message()}

    def message(self) -> str:
        where = f" on {self.dimension}={self.value}" if self.dimension else ""
        what = "dropped" if self.direction == "down" else "spiked"
        change = f"{self.change:+.0%}" if np.isfinite(self.change) else "new"
        if self.kind == "share":  # a rate: shares, not amounts per period
            what = "fell" if self.direction == "down" else "rose"
            level = (f"{self.observed:.2%} against an expected {self.expected:.2%} "
                     f"(one period's band {self.low:.2%}-{self.high:.2%}; {change})")
        else:
            # counts are judged on sums over 1 to 24 periods: a run's mean can lie
            # inside a single period's band and still be far beyond its own
            band = "one period's band" if self.kind == "count" else "band"
            level = (f"{self.observed:,.4g} per period against an expected "
                     f"{self.expected:,.4g} ({band} {self.low:,.4g}-{self.high:,.4g}; "
                     f"{change})")
        return (f"{self.target}{where} {what} to {level} "
                f"for {'at least ' if self.began_before else ''}{self.periods} "
                f"period(s) from {self.start:%Y-%m-%d %H:%M %Z}"
                + (" or before" if self.began_before else "")
                + (", still ongoing." if self.ongoing
                   else f" to {self.end:%Y-%m-%d %H:%M %Z}."))


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


def _keep(frame: pd.DataFrame, top_values: int, weight: str = "n") -> set[Any]:
    """Per target and dimension, the ``top_values`` values with the most volume."""
    totals = frame.groupby(["target", "dimension", "value"], sort=False)[weight].sum()
    keep: set[Any] = set()
    for (_target, dim), sub in totals.groupby(level=[0, 1], sort=False):
        ordered = sub.sort_values(ascending=False)
        keep.update(ordered.index[: (1 if dim == "" else top_values)])
    return keep


def detect(frame: pd.DataFrame, window: Window, settings: Settings, *, counts: bool = True,
           top_values: int = 10, keep_points: bool = False) -> Detection:
    """Judge every series of a series frame (see ``nerve.anomaly._series``).

    Per target and dimension, only the ``top_values`` values with the most volume are
    judged. ``keep_points`` returns every evaluated point with its band and flag.
    """
    if frame.empty:
        return Detection()
    frame = frame[frame["period"] <= window.last]
    if counts:
        return _detect_matrix(frame, None, window, settings, top_values, keep_points)
    return _detect_values(frame, window, settings, top_values, keep_points)


def detect_rates(numerator: pd.DataFrame, denominator: pd.DataFrame, target: str,
                 window: Window, settings: Settings, *, top_values: int = 10,
                 keep_points: bool = False) -> Detection:
    """Judge the share ``numerator / denominator`` (two count series frames with the same
    dimensions) per series: binomial / beta-binomial tails, one family per run."""
    if denominator.empty:
        return Detection()
    den = denominator[denominator["period"] <= window.last].assign(target=target)
    num = numerator[numerator["period"] <= window.last].assign(target=target)
    return _detect_matrix(den, num, window, settings, top_values, keep_points)


def _pivot(frame: pd.DataFrame, keys: list[Any], periods: np.ndarray[Any, Any]
           ) -> np.ndarray[Any, Any]:
    wide = frame.pivot_table(index="period", columns=["target", "dimension", "value"],
                             values="n", aggfunc="sum")
    out: np.ndarray[Any, Any] = wide.reindex(
        index=periods, columns=pd.MultiIndex.from_tuples(keys)).to_numpy(dtype=float)
    return out


def _detect_matrix(frame: pd.DataFrame, numerator: pd.DataFrame | None, window: Window,
                   settings: Settings, top_values: int, keep_points: bool) -> Detection:
    """Counts (or, with a ``numerator``, the share of ``frame``'s counts it holds)."""
    found = Detection()
    first = window.last - window.evaluate + 1
    keep = _keep(frame, top_values)
    born = frame.groupby(["target", "dimension", "value"], sort=True)["period"].min()
    keys = [k for k in born.index if k in keep]
    # a series is judged from the first step at which it has ``min_history`` periods
    # behind it (a version released six days before a week's backtest is judged on its
    # later days); one too young even at the last step is skipped
    young = [k for k in keys if window.last - int(born[k]) < window.min_history]
    found.skipped += len(young)
    keys = [k for k in keys if k not in set(young)]
    if not keys:
        return found
    periods = np.arange(max(int(born[keys].min()), first - window.training), window.last + 1,
                        dtype=np.int64)
    dense = np.nan_to_num(_pivot(frame, keys, periods))
    births = np.array([int(born[k]) for k in keys])
    before = periods[:, None] < births[None, :]
    values = np.where(before, np.nan, dense)
    num = None
    if numerator is not None:
        num = np.where(before, np.nan, np.nan_to_num(_pivot(numerator, keys, periods)))
    # a series by dimension value takes the weekday factor of its target overall
    overall = {k[0]: j for j, k in enumerate(keys) if k[1] == ""}
    parents = np.array([overall.get(k[0], -1) if k[1] != "" else -1 for k in keys])
    rules = Rules(sensitivity=settings.sensitivity, direction=settings.direction,
                  min_volume=settings.min_volume, min_change=settings.min_change,
                  windows=window.windows)
    clock = window.clock(periods)
    n, s = values.shape
    marks = np.zeros((n, s), dtype=np.int64)
    expected, low, high, z = (np.zeros((n, s)) for _ in range(4))
    usable = np.ones((n, s), dtype=bool)
    p_best = np.ones(s)
    judged = np.zeros(s, dtype=bool)
    # marks of the first step's sums on the period before the window (they reach back)
    before = np.zeros(s, dtype=np.int64)
    start = first
    while start <= window.last:
        stop = min(start + window.step, window.last + 1)
        here = (periods >= start) & (periods < stop)
        train = usable & ((periods < start) & (periods >= start - window.training))[:, None]
        # points already marked count as expected in this step's longer sums: a dead day
        # must not make the next day's 24-hour sums look low too, nor an outage's failed
        # payments the next day's failure rate high (``expected`` holds the expected
        # numerator of a share until the loop ends)
        values_now = np.where(marks != 0, expected, values) if num is None else values
        num_now = np.where(marks != 0, expected, num if num is not None else values)
        if num is None:
            judgement = judge_counts(values_now[: stop - periods[0]],
                                     clock[: stop - periods[0]],
                                     train[: stop - periods[0]], here[: stop - periods[0]],
                                     rules, grain_hours=window.grain_hours, parents=parents)
        else:
            judgement = judge_rates(num_now[: stop - periods[0]], values[: stop - periods[0]],
                                    periods[: stop - periods[0]], train[: stop - periods[0]],
                                    here[: stop - periods[0]], rules)
        rows = np.flatnonzero(here)
        upto = slice(0, stop - periods[0])
        enough = train[upto].sum(axis=0) >= max(2 * (24 // max(1, window.grain_hours)), 7)
        volume = np.maximum(np.nansum(judgement.expected_points[rows], axis=0),
                            np.nansum((num if num is not None else values)[rows], axis=0)
                            ) >= (settings.min_volume if num is None else 1.0)
        old = start - births >= window.min_history
        family = enough & volume & old
        judged |= family
        p = np.where(family, judgement.p, 1.0)
        rejected, thresholds = reject(p[family], rules.q)
        threshold = np.full(s, -1.0)
        threshold[np.flatnonzero(family)[rejected]] = thresholds[rejected]
        step_marks = judgement.marks(threshold, rules, np.nan_to_num(
            (num if num is not None else values)[upto]))
        reach = slice(max(0, first - int(periods[0])), stop - periods[0])
        if start == first and reach.start > 0:
            before = step_marks[reach.start - 1]
        marks[reach] = np.where(marks[reach] != 0, marks[reach], step_marks[reach])
        usable[rows] = marks[rows] == 0
        e, lo, hi, zz = _band(judgement, rules, s, num is not None)
        expected[rows], low[rows], high[rows], z[rows] = e[rows], lo[rows], hi[rows], zz[rows]
        p_best = np.minimum(p_best, np.where(family, judgement.p, 1.0))
        start = stop
    found.judged += int(judged.sum())
    found.skipped += int((~judged).sum())
    shown = np.nan_to_num(num / np.where(values > 0, values, np.nan)) if num is not None \
        else np.nan_to_num(values)
    if num is not None:  # bands and expectations of a share, not of its numerator
        expected, low, high = (np.nan_to_num(x / np.where(values > 0, values, np.nan))
                               for x in (expected, low, high))
    part = periods >= first
    offset = int(np.flatnonzero(part)[0])
    for j, key in enumerate(keys):
        if not judged[j]:
            continue
        target, dim, value = (str(k) for k in key)
        if keep_points:
            for i in np.flatnonzero(part):
                if periods[i] - births[j] < window.min_history:
                    continue  # not judged yet: too young
                found.points.append({
                    "target": target, "dimension": dim or None, "value": value or None,
                    "time": window.moment(int(periods[i])).isoformat(),
                    "observed": float(shown[i, j]), "expected": round(float(expected[i, j]), 4),
                    "low": round(float(low[i, j]), 4), "high": round(float(high[i, j]), 4),
                    "z": round(float(z[i, j]), 2),
                    "alert": {1: "up", -1: "down"}.get(int(marks[i, j])),
                })
        for begin, end, sign in runs(marks[part, j], settings.min_duration, gap=2):
            a, b = offset + begin, offset + end + 1
            if num is not None:
                total = float(np.nansum(values[a:b, j]))
                observed = float(np.nansum(num[a:b, j])) / total if total else 0.0
                exp = float(np.nansum(expected[a:b, j] * values[a:b, j])) / total \
                    if total else 0.0
            else:
                observed, exp = float(shown[a:b, j].mean()), float(expected[a:b, j].mean())
            if sign * (observed - exp) <= 0:
                continue  # the points that moved are outweighed by the gaps runs bridge
            found.anomalies.append(Anomaly(
                target=target, dimension=dim, value=value,
                direction="up" if sign > 0 else "down",
                start=window.moment(int(periods[a])), end=window.moment(int(periods[b - 1]) + 1),
                periods=b - a, observed=observed, expected=exp,
                low=float(low[a:b, j].mean()), high=float(high[a:b, j].mean()),
                max_z=max(float(np.abs(z[a:b, j]).max()), normal_score(float(p_best[j]))),
                ongoing=b >= len(periods) - 2,  # within the gap runs bridge
                began_before=begin == 0 and int(before[j]) == sign,
                kind="count" if num is None else "share"))
    found.anomalies.sort(key=lambda x: (x.start, -x.max_z))
    return found


def _band(judgement: Judgement, rules: Rules, series: int, share: bool
          ) -> tuple[F64, F64, F64, F64]:
    """Per point: expected, a band at the family level, and a signed score of the point
    alone (from the 1-period tails), for the report and the backtest's points."""
    from scipy import special  # noqa: PLC0415 - SciPy loads on first use
    e = judgement.expected_points
    length = min(judgement.noise) if judgement.noise else 1
    if not judgement.noise:
        zero = np.zeros_like(e)
        return e, e, e, zero
    a, b = judgement.noise[length]
    level = normal_score(rules.q / max(series, 1) / max(int(judgement.tests.max()), 1))
    if judgement.tails and length == 1:
        p_up, p_down, _, _ = judgement.tails[1]
    else:
        p_up = p_down = np.ones_like(e)
    with np.errstate(all="ignore"):
        up = np.clip(np.nan_to_num(-special.ndtri(np.clip(p_up, 1e-300, 1)), nan=0.0), 0, 50)
        down = np.clip(np.nan_to_num(-special.ndtri(np.clip(p_down, 1e-300, 1)), nan=0.0),
                       0, 50)
    z = np.where(up >= down, up, -down)
    # the expected numerator of a share: about Poisson, widened by rho; a rate whose
    # numerator is no share of its denominator (judge_rates tells) has the counts'
    # (phi, alpha) there, which read as rho widened its band many times over
    shares = np.full(e.shape[1], share, dtype=bool)
    if share and judgement.binomial is not None:
        shares = judgement.binomial
    with np.errstate(all="ignore"):
        binomial = np.sqrt(np.maximum(e, 0) * (1 + a[None, :] * np.maximum(e, 1)))
        counts = np.sqrt(np.maximum(a[None, :] * e + b[None, :] * e * e, 0))
    sd = np.where(shares[None, :], binomial, counts)
    return e, np.maximum(e - level * sd, 0), e + level * sd, z


def _detect_values(frame: pd.DataFrame, window: Window, settings: Settings,
                   top_values: int, keep_points: bool) -> Detection:
    """Metric values: each series on its own, at one spread more than counts' family
    level (no exact tail, no family correction: 4 spreads at the default 3)."""
    settings = replace(settings, sensitivity=settings.sensitivity + 1)
    found = Detection()
    first = window.last - window.evaluate + 1
    keep = _keep(frame, top_values)
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
        values = pd.Series(series.reindex(periods).to_numpy(dtype=float)).ffill().fillna(
            0.0).to_numpy()
        judged = _walk(periods, values, first, window, settings, False)
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
                ongoing=b >= len(periods) - 2))
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
    clock = window.clock(periods)
    start = first
    while start <= window.last:
        stop = min(start + window.step, window.last + 1)
        train = usable & (periods < start) & (periods >= start - window.training)
        if train.sum() < max(2 * (24 // max(1, window.grain_hours)), 7):
            start = stop
            continue
        band = robust_fit(clock, values, train, counts=counts,
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


