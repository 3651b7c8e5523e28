"""Volume anomalies: hourly counts per event and key dimension against a seasonal baseline.

The model, per series (an event, or an event within one dimension value), on
``log1p(count)`` of complete hours in the training window, excluding the hours being
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
appear at every release, the event's share of all events in a value is compared with
its share in the other values of the same platform over the evaluated hours instead.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from nerve.quality._context import Context, moment
from nerve.quality._result import CheckResult, Status, fmt_count, fmt_duration, fmt_pct, fmt_time

__all__ = ["check_volume"]

_MAD = 1.4826


def check_volume(ctx: Context, profile: pd.DataFrame, dims: list[str]) -> list[CheckResult]:
    """Seasonal volume anomalies per event and dimension value, plus the mix check."""
    if profile.empty:
        return []
    cfg = ctx.cfg
    last = int(ctx.now // 3600) - 1  # the last complete hour
    results: list[CheckResult] = []
    mix = [d for d in cfg.get("volume", "mix_dimensions") if d in dims]
    seasonal = [d for d in dims if d not in mix]
    for name, frame in profile.groupby("event", sort=True):
        event = str(name)
        if not ctx.cfg.enabled("volume", event):
            continue
        found: list[CheckResult] = []
        series = _series(frame, seasonal, cfg.get("volume", "top_values", event))
        judged = 0
        for dims_key, counts in series:
            outcome = _judge(ctx, event, dims_key, counts, last)
            if outcome is None:
                continue
            judged += 1
            if outcome.status is not Status.passed:
                found.append(outcome)
        for dim in mix:
            found.extend(_mix(ctx, event, profile, dim, "platform" if "platform" in dims
                              else None, last))
        if found:
            results.extend(found)
        else:
            results.append(ctx.result(
                "volume", Status.passed,
                f"{event} volume stayed within its seasonal range over the last "
                f"{fmt_duration(cfg.seconds('volume', 'evaluate', event))} "
                f"({judged} series: overall and by {', '.join(dims) or 'nothing'}).",
                event=event, details={"series": judged}))
    return results


def _series(frame: pd.DataFrame, dims: list[str], top: int
            ) -> list[tuple[dict[str, str], pd.Series]]:
    """The overall series and the top dimension values' series of one event: hour -> n."""
    out: list[tuple[dict[str, str], pd.Series]] = [({}, frame.groupby("hour")["n"].sum())]
    for dim in dims:
        totals = frame.groupby(dim)["n"].sum().sort_values(ascending=False)
        for value in totals.index[:top]:
            sub = frame[frame[dim] == value]
            out.append(({dim: str(value)}, sub.groupby("hour")["n"].sum()))
    return out


def _judge(ctx: Context, event: str, dims: dict[str, str], counts: pd.Series, last: int
           ) -> CheckResult | None:
    cfg = ctx.cfg
    training_h = int(cfg.seconds("volume", "training", event) // 3600)
    evaluate_h = max(1, int(cfg.seconds("volume", "evaluate", event) // 3600))
    history_h = int(cfg.seconds("volume", "min_history", event) // 3600)
    first_seen = int(counts.index.min())
    if last - first_seen < history_h:
        return None  # a new series: no baseline yet
    start = max(first_seen, last - training_h + 1)
    hours = np.arange(start, last + 1)
    values = counts.reindex(hours, fill_value=0).to_numpy(dtype=float)
    logs = np.log1p(values)
    hod = hours % 24
    dow = (hours // 24) % 7
    train = hours <= last - evaluate_h
    if train.sum() < 48:
        return None
    base = pd.Series(logs[train]).groupby(hod[train]).median()
    level = base.reindex(hod).to_numpy()
    offset = pd.Series(logs[train] - level[train]).groupby(dow[train]).median()
    expected_log = level + offset.reindex(dow).fillna(0).to_numpy()
    expected_log = np.nan_to_num(expected_log, nan=0.0)
    resid = logs[train] - expected_log[train]
    spread = _MAD * float(np.median(np.abs(resid - np.median(resid))))
    expected = np.expm1(expected_log)
    noise = 1.0 / np.sqrt(expected + 1.0)  # Poisson noise on the log scale
    scale = np.maximum(spread, noise)
    z = (logs - expected_log) / scale
    sensitivity = float(cfg.get("volume", "sensitivity", event))
    direction = cfg.get("volume", "direction", event)
    min_change = float(cfg.get("volume", "min_change", event))
    min_volume = float(cfg.get("volume", "min_volume", event))
    change = (values + 1) / (expected + 1) - 1
    up = (z > sensitivity) & (change > min_change) & (values >= min_volume)
    down = (z < -sensitivity) & (change < -min_change) & (expected >= min_volume)
    flags = np.zeros_like(values, dtype=int)
    if direction in ("both", "up"):
        flags[up] = 1
    if direction in ("both", "down"):
        flags[down] = -1
    flags[train] = 0
    evaluated = ~train
    if expected[evaluated].mean() < min_volume and values[evaluated].mean() < min_volume:
        return None  # too sparse to judge hour by hour
    min_run = max(1, int(cfg.seconds("volume", "min_duration", event) // 3600))
    run = _latest_run(flags, min_run)
    low = np.expm1(expected_log - sensitivity * scale).clip(min=0)
    high = np.expm1(expected_log + sensitivity * scale)
    where = "".join(f" on {k}={v}" for k, v in dims.items())
    if run is None:
        obs = float(values[evaluated].mean())
        exp = float(expected[evaluated].mean())
        return ctx.result(
            "volume", Status.passed,
            f"{event}{where}: {fmt_count(round(obs, 1))} events/h over the last "
            f"{evaluate_h} h, within the expected {fmt_count(round(low[evaluated].mean(), 1))}"
            f"-{fmt_count(round(high[evaluated].mean(), 1))}/h.",
            event=event, dimensions=dims, observed=obs,
            expected={"min": float(low[evaluated].mean()), "max": float(high[evaluated].mean())},
            unit="events/h", details={"expected": exp})
    begin, end, sign = run
    part = slice(begin, end + 1)
    obs = float(values[part].mean())
    exp = float(expected[part].mean())
    lo, hi = float(low[part].mean()), float(high[part].mean())
    since = moment(float(hours[begin] * 3600))
    ongoing = end == len(hours) - 1
    what = "dropped" if sign < 0 else "spiked"
    duration = (end - begin + 1)
    status = Status.fail if abs(obs / exp - 1 if exp else 1) >= 2 * min_change else Status.warn
    message = (
        f"{event}{where} {what} to {fmt_count(round(obs, 1))} events/h against an expected "
        f"{fmt_count(round(exp, 1))}/h (range {fmt_count(round(lo, 1))}-{fmt_count(round(hi, 1))}"
        f"/h for this hour of day and day of week; {_signed(obs / exp - 1 if exp else 1)}) "
        f"for {duration} h since {fmt_time(since) if since else '?'}"
        + (", still ongoing." if ongoing else f", until {fmt_time(_end(hours[end]))}.")
    )
    return ctx.result("volume", status, message, event=event, dimensions=dims, observed=obs,
                      expected={"min": lo, "max": hi}, unit="events/h", since=since,
                      details={"expected": exp, "hours": duration, "direction":
                               "down" if sign < 0 else "up", "ongoing": ongoing,
                               "max_abs_z": float(np.abs(z[part]).max())})


def _end(hour: int) -> datetime:
    moment_ = moment(float(hour + 1) * 3600)
    assert moment_ is not None
    return moment_


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


def _mix(ctx: Context, event: str, profile: pd.DataFrame, dim: str, within: str | None,
         last: int) -> list[CheckResult]:
    """The event's share of all events in each value of ``dim`` vs the other values."""
    cfg = ctx.cfg
    evaluate_h = max(1, int(cfg.seconds("volume", "evaluate", event) // 3600))
    recent = profile[(profile["hour"] > last - evaluate_h) & (profile["hour"] <= last)]
    if recent.empty:
        return []
    keys = [within, dim] if within else [dim]
    recent = recent.dropna(subset=keys)
    # the event's share before the evaluated hours, per platform: the mix to expect
    before = profile[profile["hour"] <= last - evaluate_h]
    if within:
        before = before.dropna(subset=[within])
        past_all = before.groupby(within)["n"].sum()
        past_mine = before[before["event"] == event].groupby(within)["n"].sum()
    else:
        past_all = pd.Series({None: before["n"].sum()})
        past_mine = pd.Series({None: before[before["event"] == event]["n"].sum()})
    everything = recent.groupby(keys)["n"].sum()
    mine = recent[recent["event"] == event].groupby(keys)["n"].sum().reindex(
        everything.index, fill_value=0)
    sensitivity = float(cfg.get("volume", "sensitivity", event))
    min_change = float(cfg.get("volume", "min_change", event))
    min_volume = float(cfg.get("volume", "min_volume", event))
    direction = cfg.get("volume", "direction", event)
    results = []
    groups = everything.groupby(level=0) if within else [(None, everything)]
    for group, totals in groups:
        if len(totals) < 2:
            continue
        ours = mine.loc[totals.index]
        for key, total in totals.items():
            n = float(ours.loc[key])
            past_total = float(past_all.get(group, 0))
            if past_total >= 10 * min_volume:
                share = float(past_mine.get(group, 0)) / past_total
                versus = f"{fmt_pct(share)} before"
            else:  # no history: compare with the other values now
                other_total = float(totals.sum() - total)
                other_n = float(ours.sum() - n)
                if other_total <= 0 or other_n <= 0:
                    continue
                share = other_n / other_total
                versus = f"{fmt_pct(share)} on the other {dim} values"
            if share <= 0 or share >= 1:
                continue
            exp = total * share
            if exp < min_volume:
                continue
            # binomial spread, doubled: events of one user are not independent
            z = (n - exp) / (2 * math.sqrt(exp * (1 - share)) + 1e-9)
            change = n / exp - 1
            bad_down = z < -sensitivity and change < -min_change and direction != "up"
            bad_up = z > sensitivity and change > min_change and direction != "down"
            if not (bad_down or bad_up):
                continue
            value = key[-1] if isinstance(key, tuple) else key
            dims = {dim: str(value)}
            if within is not None:
                dims[within] = str(group)
            first = recent[(recent[dim] == value)]["hour"].min()
            since = moment(float(first) * 3600)
            where = ", ".join(f"{k}={v}" for k, v in dims.items())
            status = Status.fail if abs(change) >= 2 * min_change else Status.warn
            results.append(ctx.result(
                "volume", status,
                f"{event} is {fmt_pct(n / total)} of all events on {where} over the last "
                f"{evaluate_h} h against {versus}"
                + (f" on {within}={group}" if within else "")
                + f" ({fmt_count(n)} events, "
                f"{fmt_count(round(exp))} expected; {_signed(change)}), "
                f"since {fmt_time(since) if since else '?'}.",
                event=event, dimensions=dims, observed=n / total,
                expected={"min": share * (1 - min_change), "max": share * (1 + min_change)},
                unit="share", since=since,
                details={"events": n, "expected_events": exp, "method": "mix"}))
    return results
