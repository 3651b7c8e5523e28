"""The answer to "why did X drop?": the day or days that moved (when the question
names no period), ``explain_change`` against them, the question's premise checked, and
the drivers, candidates and caveats worded as ``nerve explain`` words them.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import replace
from datetime import date, timedelta
from typing import Any

from nerve.agent._answer import Builder
from nerve.agent._plan import Plan
from nerve.agent._render import _filters, _first_of, _fmt_of, _metric_args, _query, shell_join
from nerve.agent._time import Span, find_comparison
from nerve.agent._tools import Context, run_tool

__all__ = ["LOOK_BACK_DAYS", "STANDS_OUT", "UNUSUAL_MOVE", "UNUSUAL_Z"]


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
        if vs == "expected" else _before(span.since, until)
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


def _before(since: date | None, until: date) -> str:
    """The period a "why" answer is compared with, in words and dates: as many days as
    ``since..until``, ending the day before it starts (``nerve explain --vs previous``).

    >>> _before(date(2026, 11, 23), date(2026, 11, 29))
    'from 2026-11-16 to 2026-11-22, the same number of days just before'
    """
    if since is None:
        return "the period before"
    days = (until - since).days + 1
    end = since - timedelta(days=1)
    if days == 1:
        return f"on {end.isoformat()}, the day before"
    start = since - timedelta(days=days)
    return f"from {start.isoformat()} to {end.isoformat()}, the same number of days just before"


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
