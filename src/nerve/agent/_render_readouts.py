"""The answers that read out one tool's result each: a funnel (``run_funnel``), a
forecast, the data health of the latest checks, an experiment's readout, and a catalog
entry (an event or a metric).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from nerve.agent._answer import Builder, value_text
from nerve.agent._plan import Plan
from nerve.agent._render import _fmt_of, _unknown, shell_join
from nerve.agent._tools import Context, run_tool

__all__: list[str] = []


def _aware(day: date, ctx: Context) -> str:
    from zoneinfo import ZoneInfo  # noqa: PLC0415

    return datetime(day.year, day.month, day.day,
                    tzinfo=ZoneInfo(ctx.layer.timezone)).isoformat()


def _funnel(plan: Plan, ctx: Context, b: Builder) -> None:
    if len(plan.steps) < 2:
        _unknown(plan, ctx, b)
        return
    args: dict[str, Any] = {"steps": plan.steps, "window": "1d"}
    if plan.span is not None and plan.span.since is not None:
        args["since"] = _aware(plan.span.since, ctx)
    if plan.span is not None and plan.span.until is not None:
        args["until"] = _aware(plan.span.until + timedelta(days=1), ctx)
    if plan.by:  # "funnel ... by platform": one funnel per value, as nerve funnel --by
        args["by"] = plan.by
    result = run_tool(ctx, "run_funnel", args)
    # the command a reader can run for the same figures: every argument the tool got
    command = ["nerve", "funnel", *plan.steps, "--window", args["window"],
               *(arg for key in ("since", "until", "by") if key in args
                 for arg in (f"--{key}", args[key]))]
    q = b.ran("run_funnel", args, command=shell_join(command))
    b.caveats.extend(result.get("caveats") or [])
    rows = result["rows"]
    groups: dict[Any, list[str]] = {}
    for r in rows:
        value = r.get(plan.by) if plan.by else None
        about = f"{r['event']}{f' {plan.by}={value_text(value)}' if plan.by else ''}"
        users = b.num(f"{about} users", r["users"], q, "run_funnel")
        conv = b.num(f"{about} conversion", r["conversion"], q, "run_funnel", "percent")
        groups.setdefault(value, []).append(f"{r['event']} {users} ({conv})")
    when = f" {plan.span.label}" if plan.span else ""
    if plan.by:
        parts = [f"{b.label(value)}: {'; '.join(steps)}" for value, steps in groups.items()]
        b.say(f"Funnel{when} by {plan.by} (within a day, per user): {'. '.join(parts)}.")
        return
    b.say(f"Funnel{when} (within a day, per user): {'; '.join(groups.get(None, []))}.")
    if len(rows) >= 2:
        worst = max(rows[:-1], key=lambda r: r.get("drop_off") or 0)
        nxt = rows[rows.index(worst) + 1]["event"]
        drop = b.num(f"drop-off after {worst['event']}", worst.get("drop_off"), q,
                     "run_funnel", "percent")
        b.say(f"The biggest drop is from {worst['event']} to {nxt} ({drop} drop off).")


def _forecast(plan: Plan, ctx: Context, b: Builder) -> None:
    assert plan.metric is not None
    args = {"metric": plan.metric, "horizon": "7d"}
    r = run_tool(ctx, "forecast_metric", args)
    q = b.ran("forecast_metric", args, command=f"nerve forecast {plan.metric} --horizon 7d")
    kind, currency = _fmt_of(ctx, plan.metric)
    label = ctx.layer.get(plan.metric).title
    rows = r.get("forecast") or []
    parts = []
    for row in rows:
        value = b.num(f"{label} forecast {row['date']}", row["forecast"], q,
                      "forecast_metric", kind, currency)
        parts.append(f"{row['date']}: {value}")
    level = b.num("interval level", r.get("level"), q, "forecast_metric", "percent")
    b.say(f"Daily forecast of {label.lower()} for the next days (model "
          f"{b.quote(r.get('model'))}): {'; '.join(parts)}.")
    if rows:
        lo = b.num("first day low", rows[0]["low"], q, "forecast_metric", kind, currency)
        hi = b.num("first day high", rows[0]["high"], q, "forecast_metric", kind, currency)
        b.say(f"The {level} interval for {rows[0]['date']} is {lo} to {hi}.")


def _health(plan: Plan, ctx: Context, b: Builder) -> None:
    args = {"event": plan.event} if plan.event else {}
    r = run_tool(ctx, "data_health", args)
    q = b.ran("data_health", args)  # the latest recorded run of `nerve check`
    if r["status"] == "unknown":
        b.answered = False
        b.say("No data-quality checks are recorded yet; run `nerve check` first.")
        return
    n = b.num("checks", r["checks"], q, "data_health")
    bad = b.num("problems", len(r["problems"]), q, "data_health")
    about = f" for {plan.event}" if plan.event else ""
    b.say(f"Data health{about}: {r['status'].upper()} — {bad} of {n} checks in the latest "
          "run found problems.")
    fails = [p for p in r["problems"] if p["status"] in ("fail", "error")]
    warns = [p for p in r["problems"] if p["status"] == "warn"]
    for title, group in (("Failing", fails), ("Warning", warns)):
        if group:
            names = sorted({f"{p['check']} on {p['event'] or 'all events'}" for p in group})
            b.say(f"{title}: {b.quote(', '.join(names[:6]))}"
                  f"{' and more' if len(names) > 6 else ''}.")
    b.caveats.extend(f"{p['check']} {p['status']} on {p['event']}: {p['message']}"
                     for p in r["problems"])


def _experiment(plan: Plan, ctx: Context, b: Builder) -> None:
    if plan.experiment is None:
        _unknown(plan, ctx, b)
        return
    args = {"key": plan.experiment}
    r = run_tool(ctx, "experiment_results", args)
    q = b.ran("experiment_results", args,
              command=f"nerve experiment analyze {plan.experiment}")
    b.say(f"Experiment {plan.experiment} ({b.quote(r.get('name'))}): the decision is "
          f"'{r['decision']}'.")
    # with two treatments or more, each is one more comparison, as each metric is
    family = ("several variants and metrics" if len(r.get("units") or {}) > 2
              else "several metrics")
    for row in r["rows"]:
        if row["variant"] == r.get("rows", [{}])[0].get("variant") and row["lift"] is None:
            continue  # the control's row: a level, no lift
        if row["role"] not in ("primary", "guardrail") or row["lift"] is None:
            continue
        kind = "percent"
        lift = b.num(f"{row['variant']} {row['metric']} lift", row["lift"], q,
                     "experiment_results", "signed_percent")
        lo = b.num("ci low", row.get("ci_low"), q, "experiment_results", "signed_percent")
        hi = b.num("ci high", row.get("ci_high"), q, "experiment_results", "signed_percent")
        p = b.num("p-value", row.get("p_value"), q, "experiment_results", "pvalue")
        # significance is judged on the p-value corrected across the variants and metrics
        # (Holm by default): "p = 0.025, not significant" alone would read as a
        # contradiction
        adjusted = row.get("p_value_adjusted")
        if adjusted is not None and adjusted != row.get("p_value"):
            p += (f" ({b.num('adjusted p-value', adjusted, q, 'experiment_results', 'pvalue')}"
                  f" corrected for the experiment's {family})")
        del kind
        b.say(f"{row['role'].capitalize()} metric {row['metric']}, variant "
              f"{b.label(row['variant'])}: "
              f"lift {lift} (interval {lo} to {hi}), p {'' if p.startswith('<') else '= '}{p}"
              f"{', significant' if row.get('significant') else ', not significant'}.")
    units = [f"{b.label(k)} {b.num(f'units {k}', v, q, 'experiment_results')}"
             for k, v in (r.get("units") or {}).items()]
    if units:
        b.say(f"Units: {', '.join(units)}.")


def _catalog(plan: Plan, ctx: Context, b: Builder) -> None:
    if plan.event is not None:
        r = run_tool(ctx, "describe_event", {"name": plan.event})
        b.ran("describe_event", {"name": plan.event},
              command=f"nerve catalog show {plan.event}")
        props = ", ".join(f"{p['name']} ({p['type']})" for p in r["properties"])
        b.say(f"{plan.event} ({r['type']} event): {b.quote(r['description'])}")
        if r.get("trigger"):
            b.say(f"It fires when {b.quote(r['trigger'])}")
        if props:
            b.say(f"Properties: {b.quote(props)}.")
        if r["metrics"]:
            b.say(f"Metrics that read it: {', '.join(r['metrics'])}.")
        return
    if plan.metric is not None:
        r = run_tool(ctx, "describe_metric", {"name": plan.metric})
        b.ran("describe_metric", {"name": plan.metric},
              command=f"nerve metrics show {plan.metric}")
        b.say(f"{b.quote(r['label'])} ({r['name']}, a {r['type']} metric): "
              f"{b.quote(r['description'])}")
        b.say(f"Computed as {b.quote(r['formula'])}, from "
              f"{', '.join(r['events']) or 'every event'}.")
        if r.get("owner"):
            b.say(f"Owner: {b.quote(r['owner'])}.")
        return
    _unknown(plan, ctx, b)
