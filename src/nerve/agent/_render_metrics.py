"""The answers that read ``query_metrics``: a metric's value, a comparison of two
periods, a trend, and a breakdown or top list; with the caveats they share (quality
findings on the metric's events, a range before the data, a partial today).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from nerve.agent._answer import Builder, value_text
from nerve.agent._plan import Plan
from nerve.agent._render import (
    _command,
    _filters,
    _first_of,
    _fmt_of,
    _metric_args,
    _query,
    _range,
    shell_join,
)
from nerve.agent._time import Span, trend_grain
from nerve.agent._tools import Context, run_tool
from nerve.errors import QueryError

__all__ = ["MAX_GROUPS"]


#: the most groups a breakdown's answer lists (the largest); it says how many there are
MAX_GROUPS = 20


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
