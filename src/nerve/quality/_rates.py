"""Rate checks: one count per another (payment_failed per payment_submitted), overall and
per dimension value, against the share of the training window.

The rates come from ``rates:`` in checks.yaml or, with none, from the workspace's ratio
metrics whose sides are plain event counts (``ChecksConfig.rates``). Each rate's series
are judged by ``nerve.quality._seasonal.judge_rates``: the numerator's sum over 1, 4
and 24 hours is binomial (beta-binomial with the training windows' overdispersion) in
the denominator's sum, at the pooled share of the clean training hours; one
Benjamini-Hochberg family over every rate series of the run.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import ibis
import numpy as np
import pandas as pd

from nerve.quality import _scan
from nerve.quality._config import ChecksConfig, Rate
from nerve.quality._context import Context, moment
from nerve.quality._engine import epoch_seconds, event_key
from nerve.quality._result import CheckResult, Status, fmt_count, fmt_pct, fmt_time
from nerve.quality._seasonal import Judgement, Rules, judge_rates, normal_score
from nerve.quality._volume import Finding, decide, matrix_of, run_of
from nerve.warehouse import one_of

__all__ = ["check_rates"]


def check_rates(ctx: Context, profile: pd.DataFrame, dims: list[str]) -> list[CheckResult]:
    """Every configured (or metric-implied) rate: anomalies, else one pass per rate."""
    cfg = ctx.cfg
    if profile.empty or not cfg.rates:
        return []
    last = int(ctx.now // 3600) - 1
    seen = set(profile["event"].unique())
    findings: list[Finding] = []
    judged: dict[str, int] = {}
    active: list[Rate] = []
    for rate in cfg.rates:
        if not cfg.enabled("rate", rate.numerator) or not {rate.numerator,
                                                           rate.denominator} <= seen:
            continue
        active.append(rate)
        extra = {} if rate.dimensions is not None else shared_enums(ctx, rate)
        wanted = list(rate.dimensions) if rate.dimensions is not None else [
            *dims, *[d for d in extra if d not in dims]]
        for finding in _judge_rate(ctx, rate, profile, [
                d for d in wanted if d in cfg.dimensions or d in extra], extra, last):
            judged[rate.name] = judged.get(rate.name, 0) + 1
            findings.append(finding)
    found = decide(findings)
    results = list(found)
    flagged = {r.details.get("rate") for r in found}
    for rate in active:
        if rate.name in flagged:
            continue
        hours = max(1, int(cfg.seconds("rate", "evaluate", rate.numerator) // 3600))
        results.append(ctx.result(
            "rate", Status.passed,
            f"{rate.numerator} per {rate.denominator} ({rate.name}) stayed at its usual "
            f"share over the last {hours} h ({judged.get(rate.name, 0)} series).",
            event=rate.numerator, details={"rate": rate.name,
                                           "series": judged.get(rate.name, 0)}))
    return results


def shared_enums(ctx: Context, rate: Rate) -> dict[str, tuple[str, ...]]:
    """Enumerated properties both sides of a rate have in the catalog (payment_provider
    of payment_failed and payment_submitted): name -> JSON path, for zero configuration."""
    if ctx.catalog is None:
        return {}
    common: set[str] | None = None
    for event in (rate.numerator, rate.denominator):
        spec = ctx.catalog.get(event)
        names = {p.name for p in spec.properties if p.enum} if spec is not None else set()
        common = names if common is None else common & names
    return {name: (f"properties.{name}",) for name in sorted(common or ())
            if name not in ctx.cfg.dimensions}


def _judge_rate(ctx: Context, rate: Rate, profile: pd.DataFrame, dims: list[str],
                extra: dict[str, tuple[str, ...]], last: int) -> list[Finding]:
    cfg = replace(ctx.cfg, dimensions={**ctx.cfg.dimensions, **extra}) if extra else ctx.cfg
    event = rate.numerator
    training_h = int(cfg.seconds("rate", "training", event) // 3600)
    evaluate_h = max(1, int(cfg.seconds("rate", "evaluate", event) // 3600))
    history_h = int(cfg.seconds("rate", "min_history", event) // 3600)
    top = int(cfg.get("rate", "top_values", event))
    keys: list[dict[str, str]] = [{}]
    nums: list[pd.Series] = []
    dens: list[pd.Series] = []
    hourly = profile.groupby(["event", "hour"])["n"].sum()
    nums.append(hourly.get(rate.numerator, pd.Series(dtype=float)))
    dens.append(hourly.get(rate.denominator, pd.Series(dtype=float)))
    scanned = [d for d in dims if f"dim:{d}" in ctx.cache]
    own = [d for d in dims if d not in scanned]
    both = ctx.scan(f"rate:{rate.numerator}:{rate.denominator}:{','.join(own)}",
                    lambda: _rate_counts(ctx, cfg, rate, own)) if own else None
    for dim in dims:
        if both is not None and dim in own:
            frame = both[both["dim"] == dim]
        else:
            frame = ctx.cache[f"dim:{dim}"].dropna(subset=["value"])
        den_all = frame[frame["event"] == rate.denominator]
        num_all = frame[frame["event"] == rate.numerator]
        best = den_all.groupby("value")["n"].sum().sort_values(ascending=False).index[:top]
        for value in best:
            keys.append({dim: str(value)})
            dens.append(den_all[den_all["value"] == value].groupby("hour")["n"].sum())
            nums.append(num_all[num_all["value"] == value].groupby("hour")["n"].sum())
    # the denominator decides when a series began; a numerator may be silent for days
    series = matrix_of(dens, last, training_h, evaluate_h, history_h)
    if series is None:
        return []
    hours = series.hours
    num = np.column_stack([nums[i].reindex(hours).fillna(0).to_numpy(dtype=float)
                           for i in series.columns])
    num[np.isnan(series.values)] = np.nan
    rules = Rules(sensitivity=float(cfg.get("rate", "sensitivity", event)),
                  direction=str(cfg.get("rate", "direction", event)),
                  min_volume=float(cfg.get("rate", "min_volume", event)),
                  min_change=float(cfg.get("rate", "min_change", event)))
    judgement = judge_rates(num, series.values, hours, series.train, series.evaluated,
                            rules)
    return [Finding(event, float(judgement.p[j]), rules.q,
                    _reporter(ctx, rate, keys[i], hours, num, series.values, judgement, j,
                              rules))
            for j, i in enumerate(series.columns)]


def _rate_counts(ctx: Context, cfg: ChecksConfig, rate: Rate, dims: list[str]
                 ) -> pd.DataFrame:
    """Counts per event, hour and value of each of ``dims``, of the rate's two events
    only (one scan, one JSON read per row of those events): event, hour, dim, value, n."""
    e = ctx.inputs.events
    backend = ctx.inputs.backend
    ts = epoch_seconds(e.timestamp, backend)
    start = ctx.now - cfg.seconds("rate", "training", rate.numerator)
    key = event_key(e)
    columns: dict[str, Any] = {"event": key, "hour": (ts // 3600).cast("int64")}
    for i, dim in enumerate(dims):
        columns[f"d{i}"] = _scan.dimension_expr(e, cfg.dimensions[dim], backend)
    cells = (e.filter(ts >= start, ts < ctx.now + 3600,
                      one_of(key, [rate.numerator, rate.denominator]))
             .select(**columns).group_by(list(columns)).agg(n=ibis._.count()).to_pandas())
    parts = []
    for i, dim in enumerate(dims):
        one = cells.dropna(subset=[f"d{i}"]).groupby(["event", "hour", f"d{i}"],
                                                     as_index=False)["n"].sum()
        parts.append(one.rename(columns={f"d{i}": "value"}).assign(dim=dim))
    if not parts:
        return pd.DataFrame(columns=["event", "hour", "value", "n", "dim"])
    return pd.concat(parts, ignore_index=True)


def _reporter(ctx: Context, rate: Rate, dims: dict[str, str], hours: np.ndarray[Any, Any],
              num: np.ndarray[Any, Any], den: np.ndarray[Any, Any], judgement: Judgement,
              j: int, rules: Rules) -> Callable[[float], CheckResult]:
    def report(threshold: float) -> CheckResult:
        thresholds = np.full(judgement.p.shape, -1.0)
        thresholds[j] = threshold
        marks = judgement.marks(thresholds, rules, np.nan_to_num(num))[:, j]
        best = (int(judgement.start[j]), int(judgement.end[j]), int(judgement.sign[j]))
        begin, end, sign = run_of(marks, best)
        part = slice(begin, end + 1)
        x, m = float(np.nansum(num[part, j])), float(np.nansum(den[part, j]))
        share = float(judgement.expected_points[part, j].sum()) / m if m else 0.0
        observed = x / m if m else 0.0
        first, second = judgement.noise[min(judgement.noise,
                                            key=lambda n: abs(n - (end - begin + 1)))]
        z = normal_score(threshold / max(int(judgement.tests[j]), 1))
        if judgement.binomial is None or judgement.binomial[j]:  # beta-binomial: rho
            sd = math.sqrt(max(share * (1 - share) * (1 + (m - 1) * float(first[j]))
                               / max(m, 1), 0.0))
        else:
            # a count with mean m x share and the volume check's (phi, alpha): taken for
            # rho, phi (1 or more) made every such range 0%-100% beside a failing result
            mean = share * m
            sd = math.sqrt(max(float(first[j]) * mean + float(second[j]) * mean ** 2,
                               0.0)) / max(m, 1)
        lo, hi = max(0.0, share - z * sd), share + z * sd
        if judgement.binomial is None or judgement.binomial[j]:
            hi = min(1.0, hi)  # a share; refunds per order may exceed 100%
        since = moment(float(hours[begin] * 3600))
        ongoing = end == len(hours) - 1
        change = observed / share - 1 if share else 1.0
        status = Status.fail if abs(change) >= 2 * rules.min_change else Status.warn
        where = "".join(f" on {k}={v}" for k, v in dims.items())
        until = moment(float(hours[end] + 1) * 3600)
        message = (
            f"{rate.numerator} per {rate.denominator}{where} ({rate.name}) "
            f"{'rose' if sign > 0 else 'fell'} to {fmt_pct(observed)} "
            f"({fmt_count(x)} of {fmt_count(m)}) against an expected {fmt_pct(share)} "
            f"(range {fmt_pct(lo)}-{fmt_pct(hi)}) for {end - begin + 1} h since "
            f"{fmt_time(since) if since else '?'}"
            + (", still ongoing." if ongoing or until is None
               else f", until {fmt_time(until)}."))
        return ctx.result("rate", status, message, event=rate.numerator,
                          dimensions=dict(dims), observed=observed,
                          expected={"min": lo, "max": hi}, unit="share", since=since,
                          details={"rate": rate.name, "denominator": rate.denominator,
                                   "expected": share, "numerator_events": x,
                                   "denominator_events": m, "hours": end - begin + 1,
                                   "direction": "up" if sign > 0 else "down",
                                   "ongoing": ongoing, "p_value": float(judgement.p[j]),
                                   "sigma": round(normal_score(float(judgement.p[j])), 2)})
    return report
