"""Volume anomalies: hourly counts per event and key dimension against a seasonal baseline.

Every series (an event, or an event within one dimension value) is judged by the shared
seasonal count model (``nerve.quality._seasonal``, docs/quality.md "How volume is
judged"): expected counts per hour of day and day of week, robust to past incidents in
the training window; sums over 1, 4 and 24 hours ending in the evaluated hours tested
with a negative-binomial tail (exact at low counts); one Benjamini-Hochberg family over
all the series of the run, so a clean day raises nothing whatever hour it ends.

Series with too little history (``min_history``) are not judged; windows expecting
fewer than ``min_volume`` events are not judged for drops. For the ``mix_dimensions``
(app version), where new values appear at every release, the event's share of all
events in a value (within its platform) over the evaluated hours is compared with the
event's share of that platform before them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from nerve.quality import _scan
from nerve.quality._context import Context, moment
from nerve.quality._result import CheckResult, Status, fmt_count, fmt_pct, fmt_time
from nerve.quality._seasonal import (
    Judgement,
    Rules,
    judge_counts,
    normal_score,
    reject,
    wall_hours,
)

__all__ = ["Finding", "Series", "check_volume", "decide", "matrix_of", "run_of"]

Key = tuple[str, dict[str, str]]


@dataclass
class Finding:
    """One judged series of a family: its p-value, its family level and how to report."""

    event: str
    p: float
    q: float
    report: Callable[[float], CheckResult]


@dataclass(frozen=True, slots=True)
class Series:
    """A judged matrix: hours (rows) x series (columns), and what was judged."""

    hours: np.ndarray[Any, Any]
    values: np.ndarray[Any, Any]
    train: np.ndarray[Any, Any]
    evaluated: np.ndarray[Any, Any]
    columns: np.ndarray[Any, Any]


def decide(findings: list[Finding]) -> list[CheckResult]:
    """Benjamini-Hochberg over the family; the rejected series' results."""
    if not findings:
        return []
    rejected, thresholds = reject(np.array([f.p for f in findings]),
                                  np.array([f.q for f in findings]))
    return [f.report(float(t)) for f, r, t in zip(findings, rejected, thresholds,
                                                     strict=True) if r]


def matrix_of(columns: list[pd.Series], last: int, span_h: int, evaluate_h: int,
              history_h: int) -> Series | None:
    """Hours x series (NaN before a series' first event), for the series with history."""
    hours = np.arange(last - span_h + 1, last + 1)
    first = np.array([c.index.min() for c in columns])
    keep = (last - first) >= history_h
    if not keep.any():
        return None
    frame = pd.concat([c.rename(i) for i, c in enumerate(columns) if keep[i]], axis=1)
    values = frame.reindex(hours).fillna(0).to_numpy(dtype=float)
    values[hours[:, None] < first[keep][None, :]] = np.nan
    train = hours <= last - evaluate_h
    return Series(hours=hours, values=values, train=train, evaluated=~train,
                  columns=np.flatnonzero(keep))


def run_of(marks: np.ndarray[Any, Any], best: tuple[int, int, int]) -> tuple[int, int, int]:
    """The run of marks (joining gaps of up to 2 hours) around the best window, or it."""
    begin, end, sign = best
    hits = np.flatnonzero(marks == sign)
    if hits.size == 0:
        return begin, end, sign
    near = hits[(hits >= begin - 2) & (hits <= end + 2)]
    lo, hi = (int(near.min()), int(near.max())) if near.size else (begin, end)
    while True:
        left = hits[(hits < lo) & (hits >= lo - 3)]
        right = hits[(hits > hi) & (hits <= hi + 3)]
        if not left.size and not right.size:
            return lo, hi, sign
        lo = int(left.min()) if left.size else lo
        hi = int(right.max()) if right.size else hi


def _series_text(event: str, judged: int, by: set[str], dims: list[str], mix: list[str],
                 per_dim: dict[str, pd.DataFrame]) -> str:
    """What a passing event was judged on: the dimensions it had values of (it listed
    every configured one, with an app's version or country it never sends), and the mix
    dimensions it has values of."""
    mixed = [d for d in mix if d in per_dim and (per_dim[d]["event"] == event).any()]
    named = [d for d in dims if d in by or d in mixed]
    text = f"{judged} series: overall"
    return text + (f" and by {', '.join(named)}" if named else " only, no key dimension values")


def check_volume(ctx: Context, profile: pd.DataFrame, dims: list[str]) -> list[CheckResult]:
    """Seasonal volume anomalies per event and dimension value, plus the mix check."""
    if profile.empty:
        return []
    cfg = ctx.cfg
    last = int(ctx.now // 3600) - 1  # the last complete hour
    mix = [d for d in cfg.get("volume", "mix_dimensions") if d in dims]
    top = int(cfg.get("volume", "top_values"))
    keys: list[Key] = []
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
    groups: dict[tuple[Any, ...], list[int]] = {}
    excluded = set(cfg.get("volume", "exclude"))
    for i, (event, _) in enumerate(keys):
        if not cfg.enabled("volume", event) or event in excluded:
            continue
        settings = tuple(cfg.get("volume", k, event) for k in
                         ("training", "evaluate", "min_history", "sensitivity", "direction",
                          "min_change", "min_volume", "min_duration"))
        groups.setdefault(settings, []).append(i)
    findings: list[Finding] = []
    judged: dict[str, int] = {}
    by: dict[str, set[str]] = {}  # the dimensions each event had series of
    for indices in groups.values():
        for i, finding in _judge_group(ctx, [keys[i] for i in indices],
                                       [columns[i] for i in indices], last):
            event, dimension = keys[indices[i]]
            judged[event] = judged.get(event, 0) + 1
            by.setdefault(event, set()).update(dimension)
            findings.append(finding)
    if mix:
        within = "platform" if "platform" in dims else None
        for dim in mix:
            findings.extend(_mix(ctx, dim, within, per_dim.get(within) if within else None,
                                 last))
    by_event: dict[str, list[CheckResult]] = {}
    for outcome in decide(findings):
        by_event.setdefault(str(outcome.event), []).append(outcome)
    results: list[CheckResult] = []
    for event in sorted({k[0] for k in keys if cfg.enabled("volume", k[0])} - excluded):
        found = by_event.get(event, [])
        if found:
            results.extend(found)
            continue
        hours = max(1, int(cfg.seconds("volume", "evaluate", event) // 3600))
        series = _series_text(event, judged.get(event, 0), by.get(event, set()), dims, mix,
                              per_dim)
        results.append(ctx.result(
            "volume", Status.passed,
            f"{event} volume stayed within its seasonal range over the last {hours} h "
            f"({series}).",
            event=event, details={"series": judged.get(event, 0)}))
    return results


def _rules(ctx: Context, check: str, event: str) -> Rules:
    cfg = ctx.cfg
    return Rules(sensitivity=float(cfg.get(check, "sensitivity", event)),
                 direction=str(cfg.get(check, "direction", event)),
                 min_volume=float(cfg.get(check, "min_volume", event)),
                 min_change=float(cfg.get(check, "min_change", event)))


def _judge_group(ctx: Context, keys: list[Key], columns: list[pd.Series], last: int
                 ) -> list[tuple[int, Finding]]:
    """Judge many series sharing one set of settings: (index, finding) per judged series."""
    cfg = ctx.cfg
    event = keys[0][0]
    # series by dimension value start where their (shorter) scan does: NaN before
    training_h = int(cfg.seconds("volume", "training", event) // 3600)
    evaluate_h = max(1, int(cfg.seconds("volume", "evaluate", event) // 3600))
    history_h = int(cfg.seconds("volume", "min_history", event) // 3600)
    series = matrix_of(columns, last, training_h, evaluate_h, history_h)
    if series is None:
        return []
    rules = _rules(ctx, "volume", event)
    min_run = max(1, int(cfg.seconds("volume", "min_duration", event) // 3600))
    column = {i: j for j, i in enumerate(series.columns)}
    overall = {keys[i][0]: column[i] for i in series.columns if not keys[i][1]}
    parents = np.array([overall.get(keys[i][0], -1) if keys[i][1] else -1
                        for i in series.columns])
    judgement = judge_counts(series.values, wall_hours(series.hours, cfg.timezone),
                             series.train, series.evaluated, rules, parents=parents)
    out = []
    for j, i in enumerate(series.columns):
        report = _reporter(ctx, keys[i], series, judgement, j, rules, min_run)
        out.append((int(i), Finding(keys[i][0], float(judgement.p[j]), rules.q, report)))
    return out


def _reporter(ctx: Context, key: Key, series: Series, judgement: Judgement, j: int,
              rules: Rules, min_run: int) -> Callable[[float], CheckResult]:
    def report(threshold: float) -> CheckResult:
        thresholds = np.full(judgement.p.shape, -1.0)
        thresholds[j] = threshold
        marks = judgement.marks(thresholds, rules, np.nan_to_num(series.values))[:, j]
        best = (int(judgement.start[j]), int(judgement.end[j]), int(judgement.sign[j]))
        begin, end, sign = run_of(marks, best)
        # the earliest hour a judged 24-hour sum holds: a run that reaches it may have
        # begun before (an event silent for a week), and its start is not known
        reach = int(np.flatnonzero(series.evaluated)[0]) - 23
        earlier = begin <= reach
        begin = max(begin, reach)
        if end - begin + 1 < min_run:
            begin = max(0, end - min_run + 1)
        part = slice(begin, end + 1)
        obs = float(np.nan_to_num(series.values[part, j]).mean())
        exp = float(judgement.expected_points[part, j].mean())
        length = end - begin + 1
        phi, alpha = _noise(judgement, length, j)
        z = normal_score(threshold / max(int(judgement.tests[j]), 1))
        total = exp * length
        sd = math.sqrt(phi * total + alpha * total * total)
        lo, hi = max(0.0, (total - z * sd) / length), (total + z * sd) / length
        # a drop whose later hours are quiet ones (a night) ends its run there, but an
        # event that has not come back since has not recovered
        silent = sign < 0 and not np.nan_to_num(series.values[end + 1:, j]).any()
        return _anomaly(ctx, key, obs, exp, lo, hi, series.hours, begin, end, sign,
                        rules.min_change, float(judgement.p[j]), earlier=earlier,
                        silent=silent, quiet_from=_quiet_from(series.values[:, j], begin)
                        if silent and obs == 0 else None)
    return report


def _quiet_from(values: np.ndarray[Any, Any], begin: int) -> int | None:
    """The first hour without an event before ``begin`` when the silence began earlier
    than the run of hours that stand out: quiet hours (a weekend) do not stand out one by
    one, so an event gone on Saturday read as dropped "since Monday 08:00"."""
    seen = np.flatnonzero(~np.isnan(values[:begin]) & (values[:begin] > 0))
    if not seen.size or np.isnan(values[seen[-1]:begin]).any() or seen[-1] + 1 == begin:
        return None
    return int(seen[-1]) + 1


def _noise(judgement: Judgement, length: int, j: int) -> tuple[float, float]:
    """(phi, alpha) of the nearest judged window length."""
    lengths = sorted(judgement.noise)
    nearest = min(lengths, key=lambda n: abs(n - length))
    phi, alpha = judgement.noise[nearest]
    return float(phi[j]), float(alpha[j])


def _anomaly(ctx: Context, key: Key, obs: float, exp: float, lo: float, hi: float,
             hours: np.ndarray[Any, Any], begin: int, end: int, sign: int,
             min_change: float, p: float, *, earlier: bool = False,
             silent: bool = False, quiet_from: int | None = None) -> CheckResult:
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
        f"(range {fmt_count(round(lo, 1))}-{fmt_count(round(hi, 1))}/h for these hours of day "
        f"and days of week; {_signed(change)}) for {'at least ' if earlier else ''}"
        f"{duration} h since {fmt_time(since) if since else '?'}"
        f"{' or before (the earliest hour this check looks at)' if earlier else ''}"
        + (", still ongoing." if ongoing else
           f", and not one since (the hours after {fmt_time(_end(int(hours[end])))} are "
           "quieter ones, where none is not unusual on its own)." if silent else
           f", until {fmt_time(_end(int(hours[end])))}.")
    )
    details: dict[str, Any] = {}
    if quiet_from is not None:
        quiet = moment(float(hours[quiet_from] * 3600))
        assert quiet is not None
        details["silent_since"] = quiet.isoformat()
        message = message[:-1] + (f"; none at all since {fmt_time(quiet)}, the hours between "
                                  "being quiet ones.")
    return ctx.result("volume", status, message, event=event, dimensions=dict(dims),
                      observed=obs, expected={"min": lo, "max": hi}, unit="events/h",
                      since=since, details={"expected": exp, "hours": duration,
                                            "direction": "down" if sign < 0 else "up",
                                            "ongoing": ongoing, "began_before": earlier,
                                            "p_value": p,
                                            "sigma": round(normal_score(p), 2), **details})


def _end(hour: int) -> datetime:
    end = moment(float(hour + 1) * 3600)
    assert end is not None
    return end


def _signed(change: float) -> str:
    return ("+" if change >= 0 else "-") + fmt_pct(abs(change))


def _mix(ctx: Context, dim: str, within: str | None, within_counts: pd.DataFrame | None,
         last: int) -> list[Finding]:
    """Each event's share of all events in each value of ``dim`` vs its usual share."""
    from scipy import special  # noqa: PLC0415 - SciPy loads on first use
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
    findings = []
    for (name, group, value), n in mine.items():
        event = str(name)
        if not cfg.enabled("volume", event) or event in cfg.get("volume", "exclude"):
            continue
        rules = _rules(ctx, "volume", event)
        total = float(totals.loc[(group, value)])
        past_total = float(past_all.get(group, 0))
        if past_total < 10 * rules.min_volume:
            continue  # no history for this platform to compare with
        share = float(past_event.get((group, event), 0)) / past_total
        if share <= 0 or share >= 1:
            continue
        exp = total * share
        if exp < rules.min_volume:
            continue
        # binomial spread, doubled: events of one user are not independent
        z = (float(n) - exp) / (2 * math.sqrt(exp * (1 - share)) + 1e-9)
        change = float(n) / exp - 1
        up = z > 0 and change > rules.min_change and rules.direction != "down"
        down = z < 0 and change < -rules.min_change and rules.direction != "up"
        if not (up or down):
            continue
        p = min(1.0, 2 * float(special.ndtr(-abs(z))))
        first = recent[(recent["value"] == value) & (recent["within"] == group)]["hour"].min()

        def report(_t: float, event: str = event, group: Any = group, value: Any = value,
                   n: float = float(n), total: float = total, share: float = share,
                   exp: float = exp, change: float = change, first: Any = first,
                   rules: Rules = rules) -> CheckResult:
            dims = {dim: str(value)}
            if within is not None:
                dims[within] = str(group)
            start = moment(float(first) * 3600)
            where = ", ".join(f"{k}={v}" for k, v in dims.items())
            status = Status.fail if abs(change) >= 2 * rules.min_change else Status.warn
            return ctx.result(
                "volume", status,
                f"{event} is {fmt_pct(n / total)} of all events on {where} over the last "
                f"{evaluate_h} h against {fmt_pct(share)} before"
                + (f" on {within}={group}" if within else "")
                + f" ({fmt_count(n)} events, {fmt_count(round(exp))} expected; "
                f"{_signed(change)}), since {fmt_time(start) if start else '?'}.",
                event=event, dimensions=dims, observed=n / total,
                expected={"min": share * (1 - rules.min_change),
                          "max": share * (1 + rules.min_change)},
                unit="share", since=start,
                details={"events": n, "expected_events": exp, "method": "mix"})

        findings.append(Finding(event, p, rules.q, report))
    return findings
