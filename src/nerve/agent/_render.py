"""What the renderers of ``ask``'s intents share: the ``query_metrics`` arguments and
command line of a plan, the wording of its range and filters, a metric's format, the
first day of its data, and the answer to a question nerve cannot map (``_unknown``).
"""

from __future__ import annotations

import shlex
from datetime import date, datetime, timedelta
from typing import Any

from nerve.agent._answer import Builder
from nerve.agent._plan import Plan
from nerve.agent._time import Span
from nerve.agent._tools import Context, run_tool

__all__ = ["shell_join"]


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


def _first_of(plan: Plan, ctx: Context) -> date | None:
    """The local day of the first event the plan's metric reads (of any event for a
    metric of every event): another event's older data does not cover it."""
    events = ctx.layer.events_of(plan.metric) if plan.metric else \
        [plan.event] if plan.event else []
    return ctx.first_event(events)


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
