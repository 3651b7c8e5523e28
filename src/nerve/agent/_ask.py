"""Plan -> tools -> answer: the offline asker.

``ask(question, ctx)`` plans the question over the vocabulary of ``ctx`` (metrics,
dimensions and their values, segments, events, experiments), runs the plan through the
tools, and writes a few sentences from the results only. Each intent's renderer lives
in a module of its own: ``_render_metrics`` (value, comparison, trend, breakdown, top),
``_render_explain`` (why), ``_render_readouts`` (funnel, forecast, health, experiment,
catalog), over what they share in ``_render``.
"""

from __future__ import annotations

import re

from nerve.agent._answer import Answer, Builder
from nerve.agent._plan import MetricInfo, Plan, Vocabulary, plan_question
from nerve.agent._render import _unknown
from nerve.agent._render_explain import _explain
from nerve.agent._render_metrics import _breakdown, _comparison, _trend, _value
from nerve.agent._render_readouts import _catalog, _experiment, _forecast, _funnel, _health
from nerve.agent._tools import Context
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


_HANDLERS = {"value": _value, "comparison": _comparison, "trend": _trend,
             "breakdown": _breakdown, "top": _breakdown, "funnel": _funnel,
             "explain": _explain, "forecast": _forecast, "health": _health,
             "experiment": _experiment, "catalog": _catalog, "unknown": _unknown}
