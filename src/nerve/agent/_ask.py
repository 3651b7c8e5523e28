"""Plan -> tools -> answer: the offline asker.

``ask(question, ctx)`` plans the question over the vocabulary of ``ctx`` (metrics,
dimensions and their values, segments, events, experiments), runs the plan through the
tools, and writes a few sentences from the results only.
"""

from __future__ import annotations

import math
import re
import shlex
import statistics
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from nerve.agent._answer import Answer, Builder, value_text
from nerve.agent._plan import MetricInfo, Plan, Vocabulary, plan_question
from nerve.agent._time import Span, find_comparison, trend_grain
from nerve.agent._tools import Context, run_tool
from nerve.errors import QueryError
from nerve.semantic import Metric

__all__ = ["ask", "plan_for", "vocabulary"]

_SKIP_VALUES = ("os_version", "app_version", "device_model")  # numbers, not words


def vocabulary(ctx: Context) -> Vocabulary:
    """What the planner may map a question onto, read from ``ctx``."""
    values = ctx.dimension_values()
    return Vocabulary(
        metrics=tuple(_metric_info(m, tuple(ctx.layer.events_of(m.name)))
                      for m in ctx.layer.metrics.values()),
        dimensions={n: (d.description, () if n in _SKIP_VALUES else values.get(n, ()))
                    for n, d in ctx.layer.dimensions.items()},
        segments={n: s.description for n, s in ctx.layer.segments.items()},
        events=tuple(ctx.catalog.names()),
        experiments={k: e.name for k, e in ctx.experiments().items()},
        properties=tuple(sorted({p.name for spec in ctx.catalog if spec.type == "track"
                                 for p in spec.properties})))


def _metric_info(metric: Metric, events: tuple[str, ...] = ()) -> MetricInfo:
    counts = over = None
    measure = metric.measure
    if metric.type == "simple" and measure is not None:
        if measure.agg == "count":
            counts = "events"
        elif measure.agg == "count_distinct" and measure.of in (None, "user"):
            counts = "people"
        filters = [f for f in (measure.filter, metric.filter) if f]
        over = " | ".join(measure.events) + "".join(f" where {f}" for f in filters)
    return MetricInfo(metric.name, metric.title, metric.description, tuple(metric.synonyms),
                      counts, over or "", events)


def plan_for(question: str, ctx: Context) -> Plan:
    """The plan ``ask`` would run for ``question``."""
    return plan_question(question, vocabulary(ctx), ctx.today())


#: a date in an answer's text: its days are the workspace's local days
_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")


def ask(question: str, ctx: Context) -> Answer:
    """Answer ``question`` from nerve's data, offline; every number from a tool.

    >>> ask("revenue yesterday on ios", ctx).answer           # doctest: +SKIP
    'Revenue was 1,234.50 USD on 2026-11-27 (platform = ios).'
    """
    plan = plan_for(question, ctx)
    b = Builder(question, plan.as_dict())
    handler = _HANDLERS.get(plan.intent, _unknown)
    try:
        handler(plan, ctx, b)
    except QueryError as exc:
        b.answered = False
        b.say(f"nerve could not answer this: {b.quote(str(exc))}")
    if b.answered and any(_DATE.search(s) for s in b.sentences):
        # "last week" is Monday to Sunday somewhere: say where
        b.say(f"Days are those of the workspace's time zone, "
              f"{b.quote(ctx.layer.timezone)}.")
    return b.finish()


#: the most groups a breakdown's answer lists (the largest); it says how many there are
MAX_GROUPS = 20


# ---------------------------------------------------------------- helpers

def _metric_args(plan: Plan, span: Span | None, **extra: Any) -> dict[str, Any]:
    args: dict[str, Any] = {"metrics": [plan.metric]}
    if plan.where:
        args["where"] = " and ".join(plan.where)
    if plan.segments:
        args["segments"] = list(plan.segments)
    if span is not None and span.since is not None:
        args["since"] = span.since.isoformat()
    if span is not None and span.until is not None:
        args["until"] = span.until.isoformat()
    args.update({k: v for k, v in extra.items() if v is not None})
    return args


def shell_join(parts: list[str]) -> str:
    """A command line to copy into a shell, as a person would type it: a filter with
    quotes in double quotes, where shlex.join's single quotes come out unreadable.

    >>> print(shell_join(["nerve", "metrics", "query", "revenue", "--where",
    ...                   "platform = 'android'", "--since", "2026-11-09"]))
    nerve metrics query revenue --where "platform = 'android'" --since 2026-11-09
    >>> print(shell_join(["nerve", "ask", 'say "$HOME"']))
    nerve ask 'say "$HOME"'
    """
    return " ".join(f'"{part}"' if shlex.quote(part) != part and not set('"$`\\!') & set(part)
                    else shlex.quote(part) for part in parts)


def _command(args: dict[str, Any]) -> str:
    parts = ["nerve", "metrics", "query", *args["metrics"]]
    for key in ("by", "segments"):
        for value in args.get(key, []):
            parts += [f"--{'segment' if key == 'segments' else key}", value]
    for key in ("grain", "where", "since", "until", "limit"):
        if args.get(key) is not None:
            parts += [f"--{key}", str(args[key])]
    for value in args.get("order_by", []):
        parts += ["--order-by", value]
    return shell_join(parts)


def _query(ctx: Context, b: Builder, args: dict[str, Any]) -> tuple[dict[str, Any], str]:
    result = run_tool(ctx, "query_metrics", args)
    return result, b.ran("query_metrics", args, result["sql"], _command(args))


def _range(result: dict[str, Any]) -> str:
    start = datetime.fromisoformat(result["start"])
    end = datetime.fromisoformat(result["end"])
    last = (end - timedelta(microseconds=1)).date()
    if last == start.date():
        return f"on {start.date().isoformat()}"
    return f"from {start.date().isoformat()} to {last.isoformat()}"


def _filters(plan: Plan) -> str:
    parts = [w.replace("'", "") for w in plan.where] + \
        [s.replace("_", " ") for s in plan.segments]
    return f" ({', '.join(parts)})" if parts else ""


def _fmt_of(ctx: Context, name: str) -> tuple[str, str | None]:
    """How the metric's values read: its format, and ``count`` for a count of events or
    users (its median or forecast reads as a whole number too)."""
    metric = ctx.layer.get(name)
    return "count" if metric.is_count and metric.format == "number" else metric.format, \
        metric.currency


def _caveats(plan: Plan, ctx: Context, b: Builder, spans: list[Span | None]) -> None:
    """Quality findings on the metric's events, a range before the data, a partial today."""
    if plan.intent != "comparison":  # a comparison says it of its earlier period
        _before_data(spans[0] if spans else None, plan, ctx, b)
    events = ctx.layer.events_of(plan.metric) if plan.metric else []
    health = run_tool(ctx, "data_health", {})
    b.ran("data_health", {})
    # a metric over every event ("*") hears only of failures, not of every warning
    hit = [p for p in health["problems"] if (p.get("event") in events
           or (not events and p.get("event") and p["status"] in ("fail", "error")))
           and _in_spans(p, ctx, spans)]
    if health["status"] == "unknown":
        b.caveats.append("no data-quality checks are recorded yet (run `nerve check`)")
    for problem in hit:
        b.caveats.append(f"{problem['check']} check {problem['status']} on "
                         f"{problem['event']}: {problem['message']}")
    if hit:
        names = sorted({f"{p['check']} ({p['event']}, {p['status']})" for p in hit})
        b.say(f"Caveat: data-quality checks flag {b.quote(', '.join(names[:4]))}"
              f"{' and more' if len(names) > 4 else ''}; see caveats.")
    today = ctx.today()
    if any(s is None or s.until is None or s.until >= today for s in spans):
        b.caveats.append("the range includes today, which is not over: its numbers "
                         "are partial")


def _in_spans(problem: dict[str, Any], ctx: Context, spans: list[Span | None]) -> bool:
    """Whether a quality problem is about the answer's periods: a lateness result that
    says when its late events happened (``happened_from``/``happened_to``), or a day
    without events (``missing_events`` with a ``day``), is only when that time meets
    one of the spans (local days of the workspace); any other result, one recorded
    without the range, or an open span, is."""
    from nerve.anomaly._explain_context import gap_bounds  # noqa: PLC0415

    details = problem.get("details") or {}
    bounds = gap_bounds(problem)
    if problem.get("check") == "lateness" and "happened_from" in details:
        bounds = (datetime.fromisoformat(details["happened_from"]),
                  datetime.fromisoformat(details["happened_to"]) + timedelta(microseconds=1))
    if bounds is None:
        return True
    zone = ZoneInfo(ctx.layer.timezone)
    for span in spans:
        if span is None or span.since is None or span.until is None:
            return True
        start = datetime.combine(span.since, time(), zone)
        end = datetime.combine(span.until + timedelta(days=1), time(), zone)
        if bounds[0] < end and start < bounds[1]:
            return True
    return False


# ---------------------------------------------------------------- intents

def _value(plan: Plan, ctx: Context, b: Builder) -> None:
    assert plan.metric is not None
    kind, currency = _fmt_of(ctx, plan.metric)
    result, q = _query(ctx, b, _metric_args(plan, plan.span))
    value = result["rows"][0][plan.metric] if result["rows"] else None
    label = ctx.layer.get(plan.metric).title
    text = b.num(label, value, q, "query_metrics", kind, currency)
    where = "over all the data " if plan.span is None else ""
    b.say(f"{label} {where}{_range(result)}{_filters(plan)}: {text}.")
    if value == 0 and plan.span is not None:
        _silent_gap(plan.metric, plan.span, ctx, b)
    _caveats(plan, ctx, b, [plan.span])


def _silent_gap(metric: str, span: Span, ctx: Context, b: Builder) -> None:
    """A zero over a range where the metric's one event has no row at all, while it has
    some before and after: the events may be missing (a broken release, a stalled
    sender), which a zero cannot tell from nobody doing it. Says so."""
    events = ctx.layer.events_of(metric)
    if span.since is None or span.until is None or len(events) != 1:
        return
    from zoneinfo import ZoneInfo  # noqa: PLC0415

    zone = ZoneInfo(ctx.layer.timezone)
    start = datetime.combine(span.since, time(), zone).astimezone(UTC)
    end = datetime.combine(span.until + timedelta(days=1), time(), zone).astimezone(UTC)
    t = ctx.events
    rows = t.filter(t.event == events[0])
    counts = rows.aggregate(before=(rows.timestamp < start).sum(),
                            inside=((rows.timestamp >= start) & (rows.timestamp < end)).sum(),
                            after=(rows.timestamp >= end).sum()).to_pyarrow().to_pylist()[0]
    if not counts["inside"] and counts["before"] and counts["after"]:
        b.say(f"Caveat: no {events[0]} event at all is in the warehouse for this range, "
              "though there are some before and after it: they may be missing rather "
              "than zero (see `nerve quarantine` and `nerve check`).")
        b.caveats.append(f"no {events[0]} event at all from {span.since.isoformat()} to "
                         f"{span.until.isoformat()}, with some before and after: the "
                         "events may be missing (instrumentation or pipeline), not zero")


def _first_of(plan: Plan, ctx: Context) -> date | None:
    """The local day of the first event the plan's metric reads (of any event for a
    metric of every event): another event's older data does not cover it."""
    events = ctx.layer.events_of(plan.metric) if plan.metric else \
        [plan.event] if plan.event else []
    return ctx.first_event(events)


def _before_data(span: Span | None, plan: Plan, ctx: Context, b: Builder) -> None:
    first = _first_of(plan, ctx)
    if span is not None and first is not None and span.since is not None \
            and span.since < first:
        b.say(f"Note: the {plan.metric or plan.event} data starts on {first.isoformat()}, "
              f"after the start of the range ({span.since.isoformat()}), so the range is not "
              "fully covered.")
        b.caveats.append(f"the events of {plan.metric or plan.event} start on "
                         f"{first.isoformat()}, after the start of the range "
                         f"({span.since.isoformat()})")


def _comparison(plan: Plan, ctx: Context, b: Builder) -> None:
    assert plan.metric is not None
    today = ctx.today()
    span = plan.span or Span(today - timedelta(days=plan.compare_days or 7),
                             today - timedelta(days=1), "recent")
    if span.since is None:
        raise QueryError("a comparison needs a start date")
    cut = span.unit is not None and not span.whole and span.until == today \
        and span.since < today
    if cut:  # "this month vs last month": whole days on both sides, today is not over
        span = replace(span, until=today - timedelta(days=1))
    before = span.before(today)
    kind, currency = _fmt_of(ctx, plan.metric)
    label = ctx.layer.get(plan.metric).title
    now_r, q1 = _query(ctx, b, _metric_args(plan, span))
    was_r, q2 = _query(ctx, b, _metric_args(plan, before))
    cur = now_r["rows"][0][plan.metric] if now_r["rows"] else None
    old = was_r["rows"][0][plan.metric] if was_r["rows"] else None
    cur_t = b.num(f"{label} {span.label}", cur, q1, "query_metrics", kind, currency)
    old_t = b.num(f"{label} before", old, q2, "query_metrics", kind, currency)
    sentence = f"{label} {_range(now_r)}{_filters(plan)}: {cur_t}"
    if cur is not None and old:
        change = (cur - old) / old
        direction = "up" if change > 0 else "down" if change < 0 else "unchanged"
        pct = b.num(f"{label} change", change, f"({q1}) / ({q2}) - 1", "derived",
                    "abs_percent")
        sentence += f", {direction} {pct} against {old_t} {_range(was_r)}"
    else:
        sentence += f", against {old_t} {_range(was_r)}"
    if before.unit is not None and not before.whole:
        sentence += (f" ({before.label}{', today left out as it is not over' if cut else ''}"
                     ")")
    b.say(sentence + ".")
    first = _first_of(plan, ctx)
    if first is not None and before.since is not None and before.since < first:
        b.caveats.append(f"the earlier period starts before the first event "
                         f"({first.isoformat()}): the comparison is not like for like")
        b.say("Caveat: the data starts inside the earlier period, so it is incomplete.")
    _caveats(plan, ctx, b, [span, before])


def _trend(plan: Plan, ctx: Context, b: Builder) -> None:
    assert plan.metric is not None
    kind, currency = _fmt_of(ctx, plan.metric)
    label = ctx.layer.get(plan.metric).title
    today, first = ctx.today(), _first_of(plan, ctx)
    start = plan.span.since if plan.span is not None and plan.span.since else first
    asked = plan.grain or "day"
    plan.grain = trend_grain(asked, ((plan.span.until if plan.span and plan.span.until
                                      else today) - start).days + 1 if start else 0)
    result, q = _query(ctx, b, _metric_args(plan, plan.span, grain=plan.grain))
    col = result["time_column"]
    rows = result["rows"]
    parts = [f"{str(r[col])[:10] if plan.grain != 'hour' else str(r[col])[:16]}: "
             f"{b.num(f'{label} {r[col]}', r[plan.metric], q, 'query_metrics', kind, currency)}"
             for r in rows]
    b.say(f"{label} by {plan.grain} {_range(result)}{_filters(plan)}: {'; '.join(parts)}.")
    if plan.grain != asked:
        b.say(f"Grouped by {plan.grain} rather than by {asked}: one row per {asked} would "
              f"be too many to read over this range (`--grain {asked}` gives them).")
    _whole_periods(plan, result, today, b)
    start = datetime.fromisoformat(result["start"]).date()
    if plan.span is None and first is not None and start < first:
        b.say(f"The first {plan.grain} is partial: the data starts on {first.isoformat()}.")
    values = [r[plan.metric] for r in rows if r[plan.metric] is not None]
    if len(values) >= 2:
        high = max(rows, key=lambda r: r[plan.metric] if r[plan.metric] is not None
                   else float("-inf"))
        b.say(f"The highest was on {str(high[col])[:10]}.")
    _caveats(plan, ctx, b, [plan.span])


def _whole_periods(plan: Plan, result: dict[str, Any], today: date, b: Builder) -> None:
    """A trend's rows are whole weeks (Monday to Sunday) or months: when the first or
    last reaches outside the period asked (before it, or past its end and before today),
    the answer says so, as its range shows."""
    span = plan.span
    if span is None or span.since is None:
        return
    first = datetime.fromisoformat(result["start"]).date()
    last = (datetime.fromisoformat(result["end"]) - timedelta(microseconds=1)).date()
    until = span.until or today
    # past today a period holds nothing yet: only days already gone are outside it
    if first < span.since or (last > until and until < today):
        b.say(f"Its {plan.grain}s are whole, so the trend reaches outside the period asked "
              f"({span.since.isoformat()} to {until.isoformat()}).")
        b.caveats.append(f"the {plan.grain}s are whole: the trend covers {first.isoformat()} "
                         f"to {last.isoformat()}, the period asked "
                         f"{span.since.isoformat()} to {until.isoformat()}")


def _breakdown(plan: Plan, ctx: Context, b: Builder) -> None:
    assert plan.metric is not None
    assert plan.by is not None
    kind, currency = _fmt_of(ctx, plan.metric)
    label = ctx.layer.get(plan.metric).title
    order = plan.metric if plan.direction == "asc" else f"-{plan.metric}"
    limit = plan.limit if plan.intent == "top" else None
    args = _metric_args(plan, plan.span, by=[plan.by], order_by=[order], limit=limit)
    result, q = _query(ctx, b, args)
    rows = [r for r in result["rows"] if r[plan.metric] is not None] \
        if plan.intent == "top" else result["rows"]
    listed = len(rows)
    if plan.intent != "top" and listed > MAX_GROUPS:
        # "revenue by session_id": an answer lists the largest, and says how many there are
        rows = rows[:MAX_GROUPS]
    parts = [f"{b.label(r[plan.by])} "
             f"{b.num(f'{label} {plan.by}={value_text(r[plan.by])}', r[plan.metric], q, 'query_metrics', kind, currency)}"  # noqa: E501
             for r in rows]
    scope = f"{_range(result)}{_filters(plan)}"
    if plan.intent == "top" and len(rows) >= 1 and plan.limit == 1:
        which = "lowest" if plan.direction == "asc" else "highest"
        b.say(f"{b.label(rows[0][plan.by])} had the {which} {label.lower()} {scope}: {parts[0]}.")
    elif plan.intent == "top":
        b.say(f"{'Bottom' if plan.direction == 'asc' else 'Top'} {plan.by} values by "
              f"{label.lower()} {scope}: {'; '.join(parts)}.")
    elif listed > len(rows):
        values = b.num(f"{plan.by} values", listed, q, "query_metrics")
        b.say(f"{label} by {plan.by} {scope}, the largest of {values} {plan.by} values: "
              f"{'; '.join(parts)}. `{_command(args)}` lists every one.")
    else:
        b.say(f"{label} by {plan.by} {scope}: {'; '.join(parts) or 'no data'}.")
    if plan.intent != "top":
        _quarantined_values(plan, ctx, b, args, result["rows"])
    _caveats(plan, ctx, b, [plan.span])


def _quarantined_values(plan: Plan, ctx: Context, b: Builder, args: dict[str, Any],
                        rows: list[dict[str, Any]]) -> None:
    """Breakdown values with no row (none of the metric's events in the warehouse for the
    range, as ``query_metrics`` has it) whose events are in the quarantine: a platform
    whose every play failed the catalog read as one with no plays at all. Says so, with
    the count held, and keeps the numbers those of ``query_metrics``."""
    assert plan.metric is not None
    assert plan.by is not None
    events = ctx.layer.events_of(plan.metric)
    if len(events) != 1:
        return
    try:
        held = ctx.layer.event_rows(
            ctx.con.table("quarantine"), events, dimensions=[plan.by],
            where=args.get("where"), segments=args.get("segments") or (),
            since=args.get("since"), until=args.get("until"), now=ctx.now)
    except QueryError:  # a dimension the quarantined rows cannot resolve: nothing to say
        return
    column = plan.by.replace(".", "_")
    counts = held.group_by(column).aggregate(n=held.count())
    listed = {value_text(r[plan.by]) for r in rows}
    missing = [r for r in counts.order_by(column).to_pyarrow().to_pylist()
               if value_text(r[column]) not in listed]
    if not missing:
        return
    listing = ["nerve", "quarantine", "list", "--event", events[0]]
    for key in ("since", "until"):  # the range's events, as the count has them
        if args.get(key) is not None:
            listing += [f"--{key}", str(args[key])]
    command = shell_join(listing)
    q = b.ran("sql", {"table": "quarantine", "event": events[0], "by": plan.by},
              sql=str(counts.compile()), command=command)
    names = ", ".join(b.label(r[column]) for r in missing)
    found = ", ".join(f"{b.label(r[column])} "
                      f"{b.num(f'{events[0]} quarantined {plan.by}={value_text(r[column])}', r['n'], q, 'sql')}"  # noqa: E501
                      for r in missing)
    b.say(f"Not listed: {names}, whose {events[0]} events in this range are all in the "
          f"quarantine ({found}): they failed the catalog, so the warehouse has none to "
          f"count (`{command}`).")
    b.caveats.append(f"{plan.by} values whose {events[0]} events in the range are all in the "
                     f"quarantine, so not counted: {found}")


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


#: "why did X drop?" without a period looks for the day it dropped in this many days (the
#: answer says "two weeks")
LOOK_BACK_DAYS = 14
#: how far that day must stand out from the median day (relative) to be the one explained
STANDS_OUT = 0.25
#: or how far its change from the same weekday a week before must stand out from the other
#: days' changes, in robust standard deviations (1.4826 MADs, and at least the Poisson
#: noise of a count): over noise alone (counts, or a 10% day-to-day spread), a day of two
#: weeks reaches it in about one case of a hundred or fewer
UNUSUAL_Z = 5.0
#: and how far, relative to that weekday a week before, it must have moved
UNUSUAL_MOVE = 0.10


def _sharpest_day(plan: Plan, ctx: Context, b: Builder) -> Span | None:
    """The days of the last ``LOOK_BACK_DAYS`` complete ones that stand out the way the
    question says: the one that moved furthest, when it is ``STANDS_OUT`` or more from the
    median day and from the same weekday a week before (a weekly rhythm's quiet Monday is
    no drop), else the one whose change from the same weekday a week before is unusual
    against the metric's own day-to-day changes (``_unusual_days``); with the days next
    to it that stand out so too (``_stretch``: a release that stopped sending an event
    for five days is those five days, not its first or its lowest one). None otherwise.
    A one-day drop (a broken release, an outage) is a few percent of a week: explaining
    the week called it ordinary variation."""
    today, first = ctx.today(), _first_of(plan, ctx)
    window = Span(today - timedelta(days=LOOK_BACK_DAYS + 7), today - timedelta(days=1),
                  f"the last {LOOK_BACK_DAYS} days and the week before")
    result, q, name = _daily(plan, ctx, b, window)
    col = result["time_column"]
    every = [(date.fromisoformat(str(r[col])[:10]), r[name]) for r in result["rows"]
             if r[name] is not None]
    every = [(day, value) for day, value in every if first is None or day > first]  # whole
    days = [d for d in every if d[0] >= today - timedelta(days=LOOK_BACK_DAYS)]
    if len(days) < LOOK_BACK_DAYS // 2:
        return None
    typical = statistics.median(value for _, value in days)
    sign = -1 if plan.premise == "down" else 1
    # a day with a week of data before it: what it is explained against
    known = [d for d in days if first is None or d[0] - timedelta(days=7) >= first]
    if not known:
        return None
    values = dict(every)
    kind, currency, label = _target_of(plan, ctx)
    out = {d for d, v in known if typical > 0 and sign * (v - typical) / typical >= STANDS_OUT
           and _beyond_week_before(values, d, sign)}
    if out:
        day = max(sorted(out), key=lambda d: sign * values[d])  # ties: the first
        since, until = _stretch(day, out)
        moved = "fell lowest" if sign < 0 else "rose highest"
        shown = b.num(f"{label} {day}", values[day], q, "query_metrics", kind, currency)
        if since == until:
            b.say(f"Of the last two weeks' complete days, {label}{_filters(plan)} {moved} "
                  f"on {day.isoformat()} ({shown}): that day is explained against what is "
                  "expected of it.")
            return Span(day, day, day.isoformat())
        b.say(f"Of the last two weeks' complete days, {label}{_filters(plan)} {moved} on "
              f"{day.isoformat()} ({shown}), one of the days from {since.isoformat()} to "
              f"{until.isoformat()} that all stand out so: those days are explained against "
              "what is expected of them.")
        return Span(since, until, f"{since.isoformat()}..{until.isoformat()}")
    unusual = _unusual_days(values, [d for d, _ in known], sign, _counts(plan, ctx))
    if not unusual:
        return None
    day = max(unusual, key=lambda d: sign * (values[d] - values[unusual[d]]))
    since, until = _stretch(day, set(unusual))
    before = unusual[day]
    shown = b.num(f"{label} {day}", values[day], q, "query_metrics", kind, currency)
    was = b.num(f"{label} {before}", values[before], q, "query_metrics", kind, currency)
    moved = "fell" if sign < 0 else "rose"
    if since == until:
        b.say(f"Of the last two weeks' complete days, {label}{_filters(plan)} {moved} "
              f"unusually on {day.isoformat()} ({shown}, against {was} a week before; "
              "beyond its usual day-to-day changes): that day is explained against what is "
              "expected of it.")
        return Span(day, day, day.isoformat())
    b.say(f"Of the last two weeks' complete days, {label}{_filters(plan)} {moved} unusually "
          f"from {since.isoformat()} to {until.isoformat()} (on {day.isoformat()}: {shown}, "
          f"against {was} a week before; each day beyond its usual day-to-day changes): "
          "those days are explained against what is expected of them.")
    return Span(since, until, f"{since.isoformat()}..{until.isoformat()}")


def _beyond_week_before(values: dict[date, float], day: date, sign: int) -> bool:
    """Whether ``day`` moved ``STANDS_OUT`` or more the way ``sign`` says from the same
    weekday a week before (when that day is known)."""
    before = values.get(day - timedelta(days=7))
    if before is None:
        return True
    moved = sign * (values[day] - before)
    return moved > 0 and moved >= STANDS_OUT * before


def _stretch(day: date, out: set[date]) -> tuple[date, date]:
    """The first and last day of the run of consecutive days of ``out`` that holds
    ``day``."""
    since = until = day
    while since - timedelta(days=1) in out:
        since -= timedelta(days=1)
    while until + timedelta(days=1) in out:
        until += timedelta(days=1)
    return since, until


def _unusual_days(values: dict[date, float], days: list[date], sign: int,
                  counts: bool) -> dict[date, date]:
    """Of ``days``, those whose change from the same weekday a week before (so a weekly
    rhythm is no change) moved the way ``sign`` says ``UNUSUAL_Z`` robust standard
    deviations beyond the median change and ``UNUSUAL_MOVE`` or more, each with that
    weekday. The spread is 1.4826 median absolute deviations of the changes, and for a
    count at least its Poisson noise (the square root of the two days' sum): a steady
    count's 20% drop stands out, a small count's ordinary wobble does not."""
    changes = {d: values[d] - values[d - timedelta(days=7)] for d in days
               if d - timedelta(days=7) in values}
    if len(changes) < LOOK_BACK_DAYS // 2:
        return {}
    center = statistics.median(changes.values())
    spread = 1.4826 * statistics.median(abs(c - center) for c in changes.values())
    out = {}
    for day, change in changes.items():
        before = day - timedelta(days=7)
        noise = max(spread, math.sqrt(max(values[day] + values[before], 1.0))) \
            if counts else spread
        moved = sign * change
        if noise <= 0 or values[before] <= 0 or moved / values[before] < UNUSUAL_MOVE:
            continue
        if (moved - sign * center) / noise >= UNUSUAL_Z:
            out[day] = before
    return out


def _counts(plan: Plan, ctx: Context) -> bool:
    """What is explained is a count (of events, or of people): its noise is Poisson's."""
    if plan.metric is None:
        return True
    return ctx.layer.get(plan.metric).is_count


def _daily(plan: Plan, ctx: Context, b: Builder,
           window: Span) -> tuple[dict[str, Any], str, str]:
    """The daily values of the metric, or of the count of the event, explained in
    ``window``: the query's result, its query text and the result's column."""
    if plan.metric is not None:
        result, q = _query(ctx, b, _metric_args(plan, window, grain="day"))
        return result, q, plan.metric
    assert plan.event is not None
    assert window.since is not None
    assert window.until is not None
    from nerve.anomaly._series import count_metric, with_metrics  # noqa: PLC0415

    counted = count_metric(plan.event)  # the ad-hoc count `nerve explain EVENT` reads
    events = replace(ctx, layer=with_metrics(ctx.layer, [counted]))
    args = _metric_args(plan, window, grain="day")
    args["metrics"] = [counted.name]
    result = run_tool(events, "query_metrics", args)
    # the same daily counts as a command (`nerve trend` counts an event, unfiltered)
    command = None if plan.where or plan.segments else shell_join([
        "nerve", "trend", plan.event, "--grain", "day", "--since", window.since.isoformat(),
        "--until", window.until.isoformat()])
    return result, b.ran("query_metrics", args, result["sql"], command), counted.name


def _target_of(plan: Plan, ctx: Context) -> tuple[str, str | None, str]:
    """The format, currency and label of what a "why" question explains: the metric,
    or the count of the event (as `nerve explain` labels it)."""
    if plan.metric is not None:
        kind, currency = _fmt_of(ctx, plan.metric)
        return kind, currency, ctx.layer.get(plan.metric).title
    return "count", None, f"{plan.event} events"


def _explain(plan: Plan, ctx: Context, b: Builder) -> None:
    target = plan.metric or plan.event
    assert target is not None
    if plan.metric is None:  # "why did item added drop?": no metric counts the event
        b.say(f"No metric counts {plan.event}, so this explains its count of events (as "
              f"`nerve explain {plan.event}` does).")
    today = ctx.today()
    span, vs = plan.span, "previous"
    if span is None and plan.premise is not None \
            and find_comparison(plan.question)[0] is None:  # "why did X drop?"
        span = _sharpest_day(plan, ctx, b)
        vs = "previous" if span is None else "expected"
    span = span or Span(today - timedelta(days=plan.compare_days or 7),
                        today - timedelta(days=1), "recent")
    until = span.until or today
    period = f"{span.since.isoformat() if span.since else today}..{until.isoformat()}"
    args = {"target": target, "period": period, "vs": vs}
    where = " and ".join([*plan.where, *plan.segments])
    if where:  # "on android": the explanation of android's change, not everyone's
        args["where"] = where
    if plan.by:  # "why did orders drop, by country": that breakdown only
        args["by"] = plan.by
    r = run_tool(ctx, "explain_change", args)
    command = ["nerve", "explain", target, "--period", period, "--vs", vs,
               *(["--by", plan.by] if plan.by else []),
               *(["--where", where] if where else [])]
    q = b.ran("explain_change", args, command=shell_join(command))
    kind, currency, label = _target_of(plan, ctx)
    obs = b.num(f"{label} observed", r.get("observed"), q, "explain_change", kind, currency)
    base = b.num(f"{label} baseline", r.get("baseline"), q, "explain_change", kind, currency)
    change = r.get("change") or 0
    moved = "rose to" if change > 0 else "fell to" if change < 0 else "held at"
    pct = ""
    if r.get("change_pct") is not None:
        pct = f" ({b.num(f'{label} change', r['change_pct'], q, 'explain_change', 'signed_percent')})"  # noqa: E501
    when = f"on {until.isoformat()}" if span.since == until else \
        f"from {period.replace('..', ' to ')}"
    against = "expected (the median of the same hours one to four weeks before)" \
        if vs == "expected" else "the period before"
    b.say(f"{label}{_filters(plan)} {moved} {obs} {when}, against {base} {against}{pct}.")
    _premise(plan, change, b)
    first = _first_of(plan, ctx)
    if vs == "previous" and first is not None and span.since is not None and \
            span.since - (until - span.since + timedelta(days=1)) < first:
        b.say(f"Caveat: the data starts on {first.isoformat()}, inside the period before, "
              "so the baseline is incomplete.")
        b.caveats.append("the period before starts before the first event")
    _drivers(r, q, kind, currency, change, b)
    _explain_caveats(r.get("caveats") or [], b)
    if not ctx.health():  # its caveats come from the recorded checks: say there are none
        b.caveats.append("no data-quality checks are recorded yet (run `nerve check`), so "
                         "this explanation carries no data-quality caveat")


def _explain_caveats(caveats: list[dict[str, Any]], b: Builder) -> None:
    """The explanation's caveats: the quality checks that flag its events, and whether
    the data ends before the period does (a finding on no event: ``coverage``)."""
    for c in caveats:
        on = f" on {c['event']}" if c.get("event") else ""
        b.caveats.append(f"{c.get('check')} check {c.get('status')}{on}: {c.get('message')}")
    for c in caveats:
        if c.get("check") != "tracking_gap":
            continue
        who = " with " + " and ".join(f"{k} = {b.label(v)}" for k, v in
                                      (c.get("dimensions") or {}).items())
        b.say(f"Caveat: no {c['event']} event{who if c.get('dimensions') else ''} arrived "
              f"on some days from {c['since']} while those users stayed active, so this "
              "drop may be events not sent (a tracking or release bug), not a change in "
              "behaviour; see caveats.")
        break  # the first (the target overall, or its leading driver) says it
    events = sorted({str(c["event"]) for c in caveats
                     if c.get("event") and c.get("check") != "tracking_gap"})
    if events:
        b.say(f"Caveat: data-quality checks flag {b.quote(', '.join(events))}; see caveats.")
    days = sorted({str(c["dimensions"]["day"]) for c in caveats if not c.get("event")
                   and c.get("check") == "missing_events" and c.get("dimensions")})
    if days:
        b.say(f"Caveat: {b.quote(', '.join(days))} has no event at all in the data, and "
              "the comparison holds it; see caveats.")
    if any(not c.get("event") and c.get("check") == "coverage" for c in caveats):
        b.say("Caveat: the data ends before the period does, so its last hours are "
              "missing, not zero; see caveats.")


def _premise(plan: Plan, change: float, b: Builder) -> None:
    """"Why did sales drop?" when they rose: the question's premise is wrong, and the
    answer says so before anything else."""
    if plan.premise is None:
        return
    asked = "drop" if plan.premise == "down" else "rise"
    if (plan.premise == "down" and change < 0) or (plan.premise == "up" and change > 0):
        return
    actual = "rose" if change > 0 else "fell" if change < 0 else "did not change"
    b.say(f"So it did not {asked}: it {actual}.")
    b.caveats.append(f"the question assumes a {asked}, but the metric {actual}")


def _drivers(r: dict[str, Any], q: str, kind: str, currency: str | None, change: float,
             b: Builder) -> None:
    """The drivers ``nerve explain`` finds significant and large enough to name (its
    ``MIN_SCORE``); the others are noise, and an answer that named them would explain
    nothing (docs/anomalies.md#nerve-explain)."""
    from nerve.anomaly._explain_words import (  # noqa: PLC0415 - with explain
        MIN_SCORE,
        drill_down,
        total_moved,
    )

    drivers = [d for d in r.get("drivers") or []
               if d.get("significant") and (d.get("score") or 0) >= MIN_SCORE]
    if drivers:
        parts: list[str] = []
        along: list[str] = []
        for d in drivers[:3]:
            amount_kind = kind if kind != "percent" else "number"
            contribution = b.num(f"contribution {d['dimension']}={d['value']}",
                                 d.get("contribution"), q, "explain_change",
                                 amount_kind, currency)
            value = b.label(d["value"])
            found = along if d.get("overlaps") else parts
            if _along(d):
                share = _of_the_change(d, "share", d.get("contribution"), change, q,
                                       amount_kind, currency, b)
                found.append(f"{d['dimension']} = {value} ({contribution}, {share})")
                continue
            # its own change went the other way (more users at a lower rate): quote the
            # effect that makes it a driver, never "+55, -36% of the change"
            effect = b.num(f"{d['effect']} effect {d['dimension']}={d['value']}",
                           d.get("effect_change"), q, "explain_change", amount_kind, currency)
            share = _of_the_change(d, "effect_share", d.get("effect_change"), change, q,
                                   amount_kind, currency, b)
            moved = total_moved(d.get("contribution"))
            if d.get("contribution"):
                total = b.num(f"change of the total {d['dimension']}={d['value']}",
                              abs(d["contribution"]), q, "explain_change", amount_kind,
                              currency)
                moved += f" by {total}"
            found.append(f"{d['dimension']} = {value} ({d['effect']} effect {effect}, {share}, "
                         f"while its total {moved})")
        if not parts:  # the lead is below what an answer names: name them as they are
            parts, along = along, []
        b.say(f"Main driver{'s' if len(parts) > 1 else ''}: {'; '.join(parts)}.")
        if along:
            # the lead's change seen through another breakdown (web's share of an adyen
            # outage): not a cause of its own, and the answer must not read as one
            lead = b.label(next(str(d["overlaps"]) for d in drivers if d.get("overlaps")))
            b.say(f"Part of the same change (outside {lead} they did not move beyond "
                  f"noise): {'; '.join(along)}.")
            # outside these values the lead did not move either: its change sits there
            for d in drivers:
                if d.get("holds_change"):
                    b.label(d["value"])
            b.say(drill_down(lead, drivers))
    elif change:
        b.say(_no_driver(r, q, b))
        _candidate(r, q, kind, currency, b)


def _of_the_change(d: dict[str, Any], key: str, amount: float | None, change: float,
                   q: str, kind: str, currency: str | None, b: Builder) -> str:
    """"84.1% of the change", or, for an amount larger than the whole change (a share of
    115%: other values moved the other way), "more than the whole change of -114; the
    rest moved the other way by 17", as `nerve explain` words it (inside the answer's
    parentheses)."""
    share = d.get(key)
    where = f"{d['dimension']}={d['value']}"
    if share is None or share <= 1 or amount is None or not change:
        return b.num(f"share of change {where}", share, q, "explain_change",
                     "percent") + " of the change"
    whole = b.num("change", change, q, "explain_change", kind, currency)
    rest = b.num(f"moved the other way {where}", abs(amount - change), q, "explain_change",
                 kind, currency)
    return (f"more than the whole change of {'+' if change > 0 else ''}{whole}; the rest "
            f"moved the other way by {rest}")


def _candidate(r: dict[str, Any], q: str, kind: str, currency: str | None,
               b: Builder) -> None:
    """The value ``nerve explain`` ranks first though not beyond noise ("the main driver
    ..., weak evidence"), named as a candidate only: an answer that said no value explains
    the change, while explain names one, hid where to look (a release new that day)."""
    from nerve.anomaly._explain_words import MIN_SCORE  # noqa: PLC0415 - with explain

    found = [d for d in r.get("drivers") or [] if (d.get("score") or 0) >= MIN_SCORE]
    if not found or found[0].get("z") is None:
        return
    d = found[0]
    effect = b.num(f"{d['effect']} effect {d['dimension']}={d['value']}",
                   d.get("effect_change"), q, "explain_change",
                   kind if kind != "percent" else "number", currency)
    z = b.num(f"z {d['dimension']}={d['value']}", d["z"], q, "explain_change")
    b.say(f"The likeliest candidate, on weak evidence only (z = {z}), is {d['dimension']} "
          f"= {b.label(d['value'])}: a {d['effect']} effect of {effect}.")


def _along(d: dict[str, Any]) -> bool:
    """Whether a driver's own change goes the way of the effect that ranks it."""
    contribution, effect = d.get("contribution") or 0, d.get("effect_change") or 0
    return (contribution > 0) == (effect > 0) and (contribution < 0) == (effect < 0)


def _no_driver(r: dict[str, Any], q: str, b: Builder) -> str:
    """No driver is not no change: a change beyond noise that no single value carries
    (``change_significant``, by ``nerve explain``'s noise model) is said to be real;
    only one within noise may be ordinary variation."""
    if r.get("change_z") is None:
        return "No breakdown value explains the change beyond noise."
    z = b.num("z of the change", r["change_z"], q, "explain_change")
    if r.get("change_significant"):
        return (f"The change itself is beyond noise (z = {z}), but no single breakdown "
                "value explains it.")
    return (f"The change itself is within noise (z = {z}) and no breakdown value "
            "explains it, so it may be ordinary variation.")


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


def _unknown(plan: Plan, ctx: Context, b: Builder) -> None:
    b.answered = False
    problem = "; ".join(plan.problems) or "nerve could not map this question onto its data"
    b.say(f"{b.quote(problem[0].upper() + problem[1:])}.")
    if plan.suggestions:
        b.say(f"The closest it has: {b.quote(', '.join(plan.suggestions[:5]))}.")
    else:
        b.say("See `nerve metrics list` and `nerve catalog list` for what it has.")
    b.say("Nothing was computed, so no number is given.")
    del ctx


_HANDLERS = {"value": _value, "comparison": _comparison, "trend": _trend,
             "breakdown": _breakdown, "top": _breakdown, "funnel": _funnel,
             "explain": _explain, "forecast": _forecast, "health": _health,
             "experiment": _experiment, "catalog": _catalog, "unknown": _unknown}
