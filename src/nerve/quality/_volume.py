"""Volume anomalies: hourly counts per event and key dimension against a seasonal baseline.

The model, for every series at once (an event, or an event within one dimension value),
on ``log1p(count)`` of complete hours in the training window, excluding the hours being
evaluated:

- expected = median at the same hour of day + median offset of the same day of week;
- spread = 1.4826 x MAD of the training residuals, at least the Poisson noise of the
  expected count (so a series of 5 events/h does not alarm on 2 or 9);
- an hour is anomalous when it is ``sensitivity`` spreads away in the configured
  ``direction`` and the change is at least ``min_change`` (30%); a run of anomalous
  hours of at least ``min_duration`` is reported, with the hour it started.

Medians and MAD ignore the past incidents in the training window. Series with too
little history (``min_history``) or too little volume (``min_volume`` per hour
expected) are not judged. For the ``mix_dimensions`` (app version), where new values
appear at every release, the event's share of all events in a value (within its
platform) over the evaluated hours is compared with the event's share of that platform
before them.
"""

from __future__ import annotations

import math
import warnings
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from nerve.quality import _scan
from nerve.quality._context import Context, moment
from nerve.quality._result import CheckResult, Status, fmt_count, fmt_pct, fmt_time

__all__ = ["check_volume"]

_MAD = 1.4826


def check_volume(ctx: Context, profile: pd.DataFrame, dims: list[str]) -> list[CheckResult]:
    """Seasonal volume anomalies per event and dimension value, plus the mix check."""
    if profile.empty:
        return []
    cfg = ctx.cfg
    last = int(ctx.now // 3600) - 1  # the last complete hour
    mix = [d for d in cfg.get("volume", "mix_dimensions") if d in dims]
    top = int(cfg.get("volume", "top_values"))
    keys: list[tuple[str, dict[str, str]]] = []
    columns: list[pd.Series] = []
    for event, counts in profile.groupby(["event", "hour"])["n"].sum().groupby(level=0):
        keys.append((str(event), {}))
        columns.append(counts.droplevel(0))
    per_dim: dict[str, pd.DataFrame] = {}
    for dim in dims:
        frame = ctx.scan(f"dim:{dim}", lambda d=dim: _scan.dimension_counts(
            ctx.inputs, cfg, ctx.now, d)).dropna(subset=["value"])
        per_dim[dim] = frame
        if dim in mix:
            continue
        totals = frame.groupby(["event", "value"])["n"].sum()
        for event, values in totals.groupby(level=0):
            best = values.droplevel(0).sort_values(ascending=False).index[:top]
            sub = frame[(frame["event"] == event) & frame["value"].isin(best)]
            for value, counts in sub.groupby("value"):
                keys.append((str(event), {dim: str(value)}))
                columns.append(counts.groupby("hour")["n"].sum())
    results: list[CheckResult] = []
    by_event: dict[str, list[CheckResult]] = {}
    judged: dict[str, int] = {}
    groups: dict[tuple[Any, ...], list[int]] = {}
    excluded = set(cfg.get("volume", "exclude"))
    for i, (event, _) in enumerate(keys):
        if not cfg.enabled("volume", event) or event in excluded:
            continue
        settings = (bool(keys[i][1]), *(cfg.get("volume", k, event) for k in
                         ("training", "evaluate", "min_history", "sensitivity", "direction",
                          "min_change", "min_volume", "min_duration")))
        groups.setdefault(settings, []).append(i)
    for indices in groups.values():
        event0 = keys[indices[0]][0]
        for i, outcome in _judge_all(ctx, event0, [keys[i] for i in indices],
                                     [columns[i] for i in indices], last):
            event = keys[indices[i]][0]
            judged[event] = judged.get(event, 0) + 1
            if outcome is not None:
                by_event.setdefault(event, []).append(outcome)
    if mix:
        within = "platform" if "platform" in dims else None
        for dim in mix:
            by_mix = _mix(ctx, dim, within, per_dim.get(within) if within else None, last)
            for outcome in by_mix:
                by_event.setdefault(str(outcome.event), []).append(outcome)
    for event in sorted({k[0] for k in keys if cfg.enabled("volume", k[0])} - excluded):
        found = by_event.get(event, [])
        if found:
            results.extend(found)
            continue
        hours = max(1, int(cfg.seconds("volume", "evaluate", event) // 3600))
        results.append(ctx.result(
            "volume", Status.passed,
            f"{event} volume stayed within its seasonal range over the last {hours} h "
            f"({judged.get(event, 0)} series: overall and by {', '.join(dims) or 'nothing'}).",
            event=event, details={"series": judged.get(event, 0)}))
    return results


def _judge_all(ctx: Context, event: str, keys: list[tuple[str, dict[str, str]]],
               columns: list[pd.Series], last: int
               ) -> list[tuple[int, CheckResult | None]]:
    """Judge many series sharing one set of settings: (index, anomaly or None) per judged."""
    cfg = ctx.cfg
    training_h = int(cfg.seconds("volume", "training", event) // 3600)
    if any(dims for _, dims in keys):
        training_h = min(training_h,
                         int(cfg.seconds("volume", "dimension_training", event) // 3600))
    evaluate_h = max(1, int(cfg.seconds("volume", "evaluate", event) // 3600))
    history_h = int(cfg.seconds("volume", "min_history", event) // 3600)
    hours = np.arange(last - training_h + 1, last + 1)
    matrix = pd.concat([c.rename(i) for i, c in enumerate(columns)], axis=1) \
        .reindex(hours).fillna(0).to_numpy(dtype=float)
    first = np.array([c.index.min() for c in columns])
    keep = (last - first) >= history_h
    if not keep.any():
        return []
    values = matrix[:, keep]
    index = np.flatnonzero(keep)
    logs = np.log1p(values)
    # hours before a series existed are not zeros to learn from
    logs[hours[:, None] < first[keep][None, :]] = np.nan
    train = hours <= last - evaluate_h
    hod, dow = hours % 24, (hours // 24) % 7
    level = np.full_like(logs, np.nan)
    offset = np.zeros_like(logs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices of new series
        for h in range(24):
            rows = hod == h
            if (rows & train).any():
                level[rows] = np.nanmedian(logs[rows & train], axis=0)
        resid = logs - level
        for d in range(7):
            rows = dow == d
            if (rows & train).any():
                offset[rows] = np.nan_to_num(np.nanmedian(resid[rows & train], axis=0))
        expected_log = np.nan_to_num(level + offset)
        r = (logs - expected_log)[train]
        center = np.nanmedian(r, axis=0)
        spread = _MAD * np.nan_to_num(np.nanmedian(np.abs(r - center), axis=0))
    observed = values
    expected = np.expm1(expected_log)
    scale = np.maximum(spread[None, :], 1.0 / np.sqrt(expected + 1.0))
    z = (np.log1p(observed) - expected_log) / scale
    sensitivity = float(cfg.get("volume", "sensitivity", event))
    direction = cfg.get("volume", "direction", event)
    min_change = float(cfg.get("volume", "min_change", event))
    min_volume = float(cfg.get("volume", "min_volume", event))
    min_run = max(1, int(cfg.seconds("volume", "min_duration", event) // 3600))
    change = (observed + 1) / (expected + 1) - 1
    flags = np.zeros(observed.shape, dtype=int)
    if direction in ("both", "up"):
        flags[(z > sensitivity) & (change > min_change) & (observed >= min_volume)] = 1
    if direction in ("both", "down"):
        flags[(z < -sensitivity) & (change < -min_change) & (expected >= min_volume)] = -1
    flags[train] = 0
    low = np.expm1(expected_log - sensitivity * scale).clip(min=0)
    high = np.expm1(expected_log + sensitivity * scale)
    out: list[tuple[int, CheckResult | None]] = []
    evaluated = ~train
    windows = _window_spread(logs, expected, train, evaluate_h)
    for j, i in enumerate(index):
        exp_total = float(expected[evaluated, j].sum())
        obs_total = float(observed[evaluated, j].sum())
        if max(exp_total, obs_total) < min_volume:
            continue  # too few events in the whole window to judge
        dense = max(expected[evaluated, j].mean(), observed[evaluated, j].mean()) >= min_volume
        run = _latest_run(flags[:, j], min_run) if dense else None
        if run is None:
            # sparse series, or no long hourly run: judge the window's total instead
            found = _window_anomaly(ctx, keys[i], obs_total, exp_total, windows[j], hours,
                                    train, observed[:, j], expected[:, j], sensitivity,
                                    direction, min_change)
            out.append((int(i), found))
            continue
        begin, end, sign = run
        part = slice(begin, end + 1)
        obs, exp = float(observed[part, j].mean()), float(expected[part, j].mean())
        lo, hi = float(low[part, j].mean()), float(high[part, j].mean())
        out.append((int(i), _anomaly(ctx, keys[i], obs, exp, lo, hi, hours, begin, end, sign,
                                     min_change, float(np.abs(z[part, j]).max()))))
    return out


def _window_spread(logs: np.ndarray[Any, Any], expected: np.ndarray[Any, Any],
                   train: np.ndarray[Any, Any], length: int) -> list[tuple[float, float]]:
    """Per series: median and robust spread of log(observed/expected) over past windows
    of the evaluated length (how far a normal day's total strays from the model)."""
    observed = np.expm1(np.nan_to_num(logs, nan=0.0))
    known = ~np.isnan(logs)
    ends = np.flatnonzero(train)[::-1][::length]  # window ends, newest first
    ratios = []
    for end in ends:
        begin = end - length + 1
        if begin < 0:
            break
        part = slice(begin, end + 1)
        ok = known[part].all(axis=0)
        ratio = np.log1p(observed[part].sum(axis=0)) - np.log1p(expected[part].sum(axis=0))
        ratios.append(np.where(ok, ratio, np.nan))
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        matrix = np.array(ratios) if ratios else np.full((1, logs.shape[1]), np.nan)
        center = np.nanmedian(matrix, axis=0)
        spread = _MAD * np.nanmedian(np.abs(matrix - center), axis=0)
    for c, s in zip(center, spread, strict=True):
        out.append((float(np.nan_to_num(c)), float(np.nan_to_num(s))))
    return out


def _window_anomaly(ctx: Context, key: tuple[str, dict[str, str]], obs: float, exp: float,
                    window: tuple[float, float], hours: np.ndarray[Any, Any],
                    train: np.ndarray[Any, Any], observed: np.ndarray[Any, Any],
                    expected: np.ndarray[Any, Any], sensitivity: float, direction: str,
                    min_change: float) -> CheckResult | None:
    """The evaluated window's total against the model, for series too sparse per hour."""
    center, spread = window
    ratio = math.log1p(obs) - math.log1p(exp) - center
    scale = max(spread, 1.0 / math.sqrt(exp + 1.0))
    z = ratio / scale
    change = (obs + 1) / (exp + 1) - 1
    up = z > sensitivity and change > min_change and direction != "down"
    down = z < -sensitivity and change < -min_change and direction != "up"
    if not (up or down):
        return None
    sign = 1 if up else -1
    evaluated = np.flatnonzero(~train)
    # the start: the first evaluated hour already off in the same direction
    moved = [k for k in evaluated
             if sign * (observed[k] - expected[k]) > min_change * max(expected[k], 1.0)]
    begin = moved[0] if moved else evaluated[0]
    end = int(evaluated[-1])
    hours_n = len(evaluated)
    lo = math.expm1((math.log1p(exp) + center) - sensitivity * scale)
    hi = math.expm1((math.log1p(exp) + center) + sensitivity * scale)
    return _anomaly(ctx, key, obs / hours_n, exp / hours_n, max(lo, 0) / hours_n,
                    hi / hours_n, hours, int(begin), end, sign, min_change, abs(z))


def _anomaly(ctx: Context, key: tuple[str, dict[str, str]], obs: float, exp: float,
             lo: float, hi: float, hours: np.ndarray[Any, Any], begin: int, end: int,
             sign: int, min_change: float, max_z: float) -> CheckResult:
    event, dims = key
    since = moment(float(hours[begin] * 3600))
    ongoing = end == len(hours) - 1
    duration = end - begin + 1
    change = obs / exp - 1 if exp else 1.0
    status = Status.fail if abs(change) >= 2 * min_change else Status.warn
    where = "".join(f" on {k}={v}" for k, v in dims.items())
    message = (
        f"{event}{where} {'dropped' if sign < 0 else 'spiked'} to "
        f"{fmt_count(round(obs, 1))} events/h against an expected {fmt_count(round(exp, 1))}/h "
        f"(range {fmt_count(round(lo, 1))}-{fmt_count(round(hi, 1))}/h for this hour of day "
        f"and day of week; {_signed(change)}) for {duration} h since "
        f"{fmt_time(since) if since else '?'}"
        + (", still ongoing." if ongoing else f", until {fmt_time(_end(int(hours[end])))}.")
    )
    return ctx.result("volume", status, message, event=event, dimensions=dict(dims),
                      observed=obs, expected={"min": lo, "max": hi}, unit="events/h",
                      since=since, details={"expected": exp, "hours": duration,
                                            "direction": "down" if sign < 0 else "up",
                                            "ongoing": ongoing, "max_abs_z": max_z})


def _end(hour: int) -> datetime:
    end = moment(float(hour + 1) * 3600)
    assert end is not None
    return end


def _signed(change: float) -> str:
    return ("+" if change >= 0 else "-") + fmt_pct(abs(change))


def _latest_run(flags: np.ndarray[Any, Any], min_run: int) -> tuple[int, int, int] | None:
    """The latest run of equal non-zero flags at least ``min_run`` long: (start, end, sign)."""
    best = None
    i = 0
    while i < len(flags):
        if flags[i] == 0:
            i += 1
            continue
        j = i
        while j + 1 < len(flags) and flags[j + 1] == flags[i]:
            j += 1
        if j - i + 1 >= min_run:
            best = (i, j, int(flags[i]))
        i = j + 1
    return best


def _mix(ctx: Context, dim: str, within: str | None, within_counts: pd.DataFrame | None,
         last: int) -> list[CheckResult]:
    """Each event's share of all events in each value of ``dim`` vs its usual share."""
    cfg = ctx.cfg
    evaluate_h = max(1, int(cfg.seconds("volume", "evaluate") // 3600))
    since = float((last - evaluate_h + 1) * 3600)
    recent = ctx.scan(f"mix:{dim}:{within}", lambda: _scan.dimension_counts(
        ctx.inputs, cfg, ctx.now, dim, since=since, within=within))
    recent = recent[recent["hour"] <= last].dropna(subset=["value"])
    if within is None:
        recent = recent.assign(within="")
    recent = recent.dropna(subset=["within"])
    if recent.empty:
        return []
    # the usual share of each event per platform, from the hours before
    if within_counts is not None:
        before = within_counts[within_counts["hour"] <= last - evaluate_h].dropna(
            subset=["value"])
        past_all = before.groupby("value")["n"].sum()
        past_event = before.groupby(["value", "event"])["n"].sum()
    else:
        past_all = pd.Series(dtype=float)
        past_event = pd.Series(dtype=float)
    totals = recent.groupby(["within", "value"])["n"].sum()
    mine = recent.groupby(["event", "within", "value"])["n"].sum()
    results = []
    for (name, group, value), n in mine.items():
        event = str(name)
        if not cfg.enabled("volume", event) or event in cfg.get("volume", "exclude"):
            continue
        sensitivity = float(cfg.get("volume", "sensitivity", event))
        min_change = float(cfg.get("volume", "min_change", event))
        min_volume = float(cfg.get("volume", "min_volume", event))
        direction = cfg.get("volume", "direction", event)
        total = float(totals.loc[(group, value)])
        past_total = float(past_all.get(group, 0))
        if past_total < 10 * min_volume:
            continue  # no history for this platform to compare with
        share = float(past_event.get((group, event), 0)) / past_total
        if share <= 0 or share >= 1:
            continue
        exp = total * share
        if exp < min_volume:
            continue
        # binomial spread, doubled: events of one user are not independent
        z = (float(n) - exp) / (2 * math.sqrt(exp * (1 - share)) + 1e-9)
        change = float(n) / exp - 1
        if not ((z < -sensitivity and change < -min_change and direction != "up")
                or (z > sensitivity and change > min_change and direction != "down")):
            continue
        dims = {dim: str(value)}
        if within is not None:
            dims[within] = str(group)
        first = recent[(recent["value"] == value) & (recent["within"] == group)]["hour"].min()
        start = moment(float(first) * 3600)
        where = ", ".join(f"{k}={v}" for k, v in dims.items())
        status = Status.fail if abs(change) >= 2 * min_change else Status.warn
        results.append(ctx.result(
            "volume", status,
            f"{event} is {fmt_pct(float(n) / total)} of all events on {where} over the last "
            f"{evaluate_h} h against {fmt_pct(share)} before"
            + (f" on {within}={group}" if within else "")
            + f" ({fmt_count(float(n))} events, {fmt_count(round(exp))} expected; "
            f"{_signed(change)}), since {fmt_time(start) if start else '?'}.",
            event=event, dimensions=dims, observed=float(n) / total,
            expected={"min": share * (1 - min_change), "max": share * (1 + min_change)},
            unit="share", since=start,
            details={"events": float(n), "expected_events": exp, "method": "mix"}))
    return results
