"""The read-only tools every asker uses: the offline planner, an LLM, the MCP server.

Each tool takes JSON-ready arguments and answers a JSON-ready dict through nerve's own
Python APIs (the semantic layer, funnels, explain, quality checks, experiments, the
catalog). ``TOOLS`` names them with a description and a JSON Schema of their arguments,
which is what an LLM's function calling and MCP both need.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from nerve._arguments import check_arguments
from nerve.catalog import Catalog
from nerve.errors import QueryError, did_you_mean
from nerve.governance import (
    check_masked_analysis,
    check_masked_filters,
    masked_fields_of,
    masked_text_of,
)
from nerve.semantic import MetricQuery, SemanticLayer
from nerve.warehouse import analysis_events
from nerve.warehouse._masking import MaskedFields
from nerve.workspace import Workspace

__all__ = ["TOOLS", "Context", "Tool", "run_tool"]

_MAX_VALUES = 50  # more distinct values than this: not a filter vocabulary
_VALUES_CACHE: dict[tuple[str, str, int, str], dict[str, tuple[str, ...]]] = {}


@dataclass
class Context:
    """What the tools read: the workspace, its layer and catalog, the events table."""

    workspace: Workspace
    layer: SemanticLayer
    catalog: Catalog
    #: the warehouse's Ibis backend (``events`` and ``check_results`` are read from it)
    con: Any
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    #: what the reader's view masks (``MaskedWarehouse``), None on the admin's view:
    #: filters on those values are refused (nerve.governance)
    masked: MaskedFields | None = None
    #: an experiment's key as the reader's view masks it (None on the admin's view)
    masked_key: Callable[[str], str | None] = lambda _key: None
    _values: dict[str, tuple[str, ...]] | None = None
    _health: list[Any] | None = None

    @classmethod
    def open(cls, workspace: Workspace, warehouse: Any, *, now: datetime | None = None,
             catalog: Catalog | None = None) -> Context:
        """A context over a ``Warehouse`` (or an Ibis backend with an ``events`` table)."""
        catalog = catalog if catalog is not None else Catalog.load(workspace.events_dir)
        layer = SemanticLayer.load(workspace, catalog)
        ibis_of = getattr(warehouse, "ibis", None)
        con = ibis_of() if callable(ibis_of) else warehouse
        return cls(workspace, layer, catalog, con, now or datetime.now(UTC),
                   masked_fields_of(warehouse),
                   masked_key=lambda key: masked_text_of(warehouse, key))

    @property
    def events(self) -> Any:
        return analysis_events(self.con)

    def today(self) -> date:
        from zoneinfo import ZoneInfo  # noqa: PLC0415

        return self.now.astimezone(ZoneInfo(self.layer.timezone)).date()

    def dimension_values(self) -> dict[str, tuple[str, ...]]:
        """The values each string dimension takes in the data (few-valued ones only).

        A scan of every event (seconds per few hundred thousand), so it is kept per
        process until the next load (``max(loaded_at)`` changes): a server or MCP
        process pays it once per load, not once per question.
        """
        if self._values is None:
            t = self.events
            stamp = t.aggregate(n=t.count(), at=t.loaded_at.max()).to_pyarrow() \
                .to_pylist()[0]
            key = (str(self.workspace.root), repr(sorted(self.layer.dimensions)),
                   stamp["n"], str(stamp["at"]))
            cached = _VALUES_CACHE.get(key)
            if cached is not None:
                self._values = cached
                return cached
            names = [n for n, d in self.layer.dimensions.items()
                     if getattr(d, "type", "string") == "string"]
            found: dict[str, tuple[str, ...]] = dict.fromkeys(names, ())
            if names:
                rows = self.layer.event_rows(self.events, "*", dimensions=names)
                cols = {n: rows[n.replace(".", "_")] for n in names}
                counts = rows.aggregate(**{n: c.nunique() for n, c in cols.items()}) \
                    .to_pyarrow().to_pylist()[0]
                few = [n for n in names if (counts[n] or 0) <= _MAX_VALUES]
                if few:  # one pass for every few-valued dimension
                    values = rows.aggregate(**{n: cols[n].collect(distinct=True)
                                               for n in few}).to_pyarrow().to_pylist()[0]
                    for n in few:
                        found[n] = tuple(sorted(str(v) for v in values[n] or []
                                                if v is not None and str(v).strip()))
            self._values = found
            _VALUES_CACHE.clear()  # one workspace state per process is enough
            _VALUES_CACHE[key] = found
        return self._values

    def health(self) -> list[Any]:
        """The latest recorded quality results (read once per context)."""
        if self._health is None:
            from nerve.quality import latest_results  # noqa: PLC0415

            self._health = list(latest_results(self.con))
        return self._health

    def first_event(self, events: Sequence[str] = ()) -> date | None:
        """The local day of the first event, of ``events`` only when it names some (a
        metric's own events: another event's older data does not cover it); None when
        there is none."""
        from zoneinfo import ZoneInfo  # noqa: PLC0415

        t = self.events
        if events:
            t = t.filter(t.event.isin(list(events)))
        first = t.aggregate(lo=t.timestamp.min()).to_pyarrow().column("lo")[0].as_py()
        if first is None:
            return None
        first = first if first.tzinfo else first.replace(tzinfo=UTC)
        return first.astimezone(ZoneInfo(self.layer.timezone)).date()  # type: ignore[no-any-return]

    def experiments(self) -> dict[str, Any]:
        folder = self.workspace.root / "experiments"
        if not folder.is_dir():
            return {}
        from nerve.experiments import load_experiments  # noqa: PLC0415

        return dict(load_experiments(folder, self.layer.timezone))


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]
    run: Callable[[Context, dict[str, Any]], dict[str, Any]]


def _str(args: dict[str, Any], key: str, *, required: bool = False) -> str | None:
    value = args.get(key)
    if value is None or value == "":
        if required:
            raise QueryError(f"{key}: required")
        return None
    if not isinstance(value, str):
        raise QueryError(f"{key}: expected a string, got {value!r}")
    return value


def _list(args: dict[str, Any], key: str) -> list[str]:
    value = args.get(key) or []
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise QueryError(f"{key}: expected a list of strings")
    return value


# ---------------------------------------------------------------- catalog and metrics

def list_metrics(ctx: Context, _args: dict[str, Any]) -> dict[str, Any]:
    return {"metrics": [{"name": m.name, "label": m.title, "description": m.description,
                         "synonyms": list(m.synonyms), "format": m.format}
                        for m in ctx.layer.metrics.values()],
            "dimensions": {n: d.description for n, d in ctx.layer.dimensions.items()},
            "segments": {n: s.description for n, s in ctx.layer.segments.items()}}


def describe_metric(ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
    return ctx.layer.describe(_str(args, "name", required=True) or "")


def list_events(ctx: Context, _args: dict[str, Any]) -> dict[str, Any]:
    events = []
    for name in ctx.catalog.names():
        spec = ctx.catalog.get(name)
        # the type: only track events are a funnel's steps (the console's picker lists those)
        events.append({"name": name, "type": spec.type if spec else "track",
                       "description": spec.description if spec else ""})
    return {"events": events}


def describe_event(ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
    name = _str(args, "name", required=True) or ""
    spec = ctx.catalog.get(name)
    if spec is None:
        raise QueryError(f"event {name!r} is not in the catalog"
                         f"{did_you_mean(name, ctx.catalog.names())}")
    return {"name": spec.name, "version": str(spec.version), "type": spec.type,
            "description": spec.description, "trigger": spec.trigger, "owner": spec.owner,
            "status": spec.status,
            "properties": [{"name": p.name, "type": str(p.type), "required": p.required,
                            "description": p.description} for p in spec.properties],
            "metrics": [m for m in ctx.layer.metrics if name in ctx.layer.events_of(m)]}


def query_metrics(ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
    limit = args.get("limit")
    query = MetricQuery(
        tuple(_list(args, "metrics")), by=tuple(_list(args, "by")),
        grain=_str(args, "grain"), where=_str(args, "where"),
        segments=tuple(_list(args, "segments")), since=_str(args, "since"),
        until=_str(args, "until"), order_by=tuple(_list(args, "order_by")),
        limit=int(limit) if limit is not None else None)
    if not query.metrics:
        raise QueryError("metrics: required, e.g. [\"revenue\"]")
    check_masked_filters(ctx.layer, ctx.masked, query.metrics, where=query.where,
                         segments=query.segments, by=query.by)
    return ctx.layer.query(query, ctx.events, now=ctx.now).as_dict()


def run_funnel(ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
    """``nerve funnel``: a breakdown is the semantic layer's dimension when it names one
    (``platform``, a trait as of each event), as the CLI and the HTTP API read it;
    ``caveats`` says which steps the catalog does not know (they count nothing). On the
    masked view a step filter or breakdown on a masked value is refused (governance)."""
    from nerve.analytics import funnel_request  # noqa: PLC0415

    body = {k: v for k, v in args.items() if k in
            ("steps", "by", "since", "until", "window", "order") and v is not None}
    by = _list(args, "by")
    if len(by) > 1:
        raise QueryError(f"by: a funnel breaks down by one dimension or property, got "
                         f"{len(by)} ({', '.join(by)}); run one funnel per breakdown")
    body.pop("by", None)
    if by:
        body["by"] = by[0]
    timezone = ctx.workspace.config.timezone
    check_masked_analysis("funnels", body, ctx.masked, lambda: ctx.layer, timezone=timezone)
    result = funnel_request(ctx.events, body, layer=lambda: ctx.layer, timezone=timezone,
                            catalog=ctx.catalog)
    return {"body": body, **result, "caveats": _uncataloged(ctx, body.get("steps") or [])}


def _uncataloged(ctx: Context, steps: list[Any]) -> list[str]:
    """A warning per step the catalog does not know but the warehouse holds (a name in
    neither is refused: ``check_seen``): an event no longer planned, or sent unplanned."""
    import difflib  # noqa: PLC0415

    names = ctx.catalog.names()
    found = []
    for step in steps:
        event = step.get("event") if isinstance(step, dict) else step
        if isinstance(event, str) and event not in ctx.catalog:
            close = difflib.get_close_matches(event, names, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            found.append(f"{event!r} is not in the catalog (events/){hint}; it was counted "
                         "from the warehouse's events of that name")
    return list(dict.fromkeys(found))


# ---------------------------------------------------------------- health, experiments

def data_health(ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
    """The latest recorded quality checks (``nerve check``); ``event`` narrows them."""
    from nerve.quality import worst  # noqa: PLC0415

    results = ctx.health()
    event = _str(args, "event")
    if event:
        results = [r for r in results if r.event == event]
        if not results and event not in ctx.catalog:  # a typo is no "unknown" health
            import difflib  # noqa: PLC0415

            close = difflib.get_close_matches(event, ctx.catalog.names(), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise QueryError(f"event {event!r} is not in the catalog and no check "
                             f"judged it{hint}")
    return {"status": str(worst([r.status for r in results])) if results else "unknown",
            "checks": len(results),
            "problems": [r.as_dict() for r in results if str(r.status) != "pass"]}


def experiment_results(ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
    from nerve.experiments import get_experiment  # noqa: PLC0415
    from nerve.experiments._run import analyze_experiment, readout_dict  # noqa: PLC0415

    key = _str(args, "key", required=True) or ""
    exp = get_experiment(ctx.experiments(), key)
    # on the masked view a metric filter on a masked value would read 0 in every variant
    check_masked_filters(ctx.layer, ctx.masked, [metric for metric, _ in exp.metrics])
    readout = analyze_experiment(exp, ctx.layer, ctx.events, now=ctx.now,
                                 masked_key=ctx.masked_key(exp.key))
    return readout_dict(exp, readout)


# ---------------------------------------------------------------- explain and forecast

def explain_change(ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
    """Why a metric moved: ``nerve explain`` (nerve.anomaly) over the same warehouse;
    ``where`` narrows it to a filter of the semantic layer (``platform = 'android'``),
    ``by`` names the only breakdown to look at."""
    explain = _anomaly("explain")
    target = _str(args, "target", required=True) or ""
    where = _str(args, "where")
    by = _list(args, "by")
    check_masked_filters(ctx.layer, ctx.masked, [target] if target in ctx.layer else (),
                         where=where, by=by)
    caveats = [r.as_dict() for r in ctx.health()]
    result: dict[str, Any] = explain(
        ctx.events, target, layer=ctx.layer,
        period=_str(args, "period") or "7d", vs=_str(args, "vs") or "previous",
        catalog_events=ctx.catalog.names(), caveats=caveats, now=ctx.now, where=where,
        dimensions=by or None)
    return result


def forecast_metric(ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
    """A daily forecast with intervals (``nerve forecast``, nerve.anomaly)."""
    forecast_local = _anomaly("forecast_local")
    body = {"metric": _str(args, "metric", required=True),
            "horizon": _str(args, "horizon") or "7d"}
    metric = body["metric"] or ""
    # on the masked view a metric filter on a masked value would forecast zeros
    check_masked_filters(ctx.layer, ctx.masked, [metric] if metric in ctx.layer else ())
    result: dict[str, Any] = forecast_local(ctx.con, ctx.workspace, body, ctx.now,
                                            ctx.catalog)
    return result


def _anomaly(name: str) -> Any:
    """nerve.anomaly's function, imported only when a question needs it."""
    try:
        if name == "forecast_local":
            from nerve.anomaly._service import forecast_local  # noqa: PLC0415

            return forecast_local
        from nerve.anomaly import explain  # noqa: PLC0415

        return explain
    except ImportError as exc:  # pragma: no cover - only in a partial install
        raise QueryError(f"this install of nerve cannot {name.split('_', maxsplit=1)[0]} "
                         f"(nerve.anomaly is missing: {exc})") from exc


_NAME = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
_STRINGS = {"type": "array", "items": {"type": "string"}}
#: a breakdown: one dimension as a string, or a list of them (an agent sends either)
_BY = {"anyOf": [_STRINGS, {"type": "string"}]}

TOOLS: dict[str, Tool] = {t.name: t for t in (
    Tool("list_metrics", "Every metric of the semantic layer (name, label, description, "
         "synonyms), and the dimensions and segments to break down or filter by.",
         {"type": "object", "properties": {}}, list_metrics),
    Tool("describe_metric", "One metric (by name or synonym): its formula, the events it "
         "reads, owner and format.", _NAME, describe_metric),
    Tool("list_events", "Every cataloged event with its type and description.",
         {"type": "object", "properties": {}}, list_events),
    Tool("describe_event", "One cataloged event: what it tracks, when it fires, its "
         "properties and the metrics that read it.", _NAME, describe_event),
    Tool("query_metrics", "Compute metrics from the warehouse. Returns rows, the SQL run "
         "and lineage. by: a dimension or a list of them. since/until: YYYY-MM-DD (until "
         "included), 'yesterday', or a duration like '7d'. where: a filter such as "
         "\"platform = 'ios' and age >= 65\".",
         {"type": "object", "properties": {
             "metrics": _STRINGS, "by": _BY, "segments": _STRINGS,
             "grain": {"type": "string", "enum": ["hour", "day", "week", "month"]},
             "where": {"type": "string"}, "since": {"type": "string"},
             "until": {"type": "string"}, "order_by": _STRINGS,
             "limit": {"type": "integer"}}, "required": ["metrics"]}, query_metrics),
    Tool("run_funnel", "A conversion funnel over cataloged events in order: how many "
         "entities reached each step; by: one dimension of the semantic layer or a "
         "property (a string, or a list of one). caveats: steps the catalog does not know.",
         {"type": "object", "properties": {
             "steps": _STRINGS, "by": _BY, "since": {"type": "string"},
             "until": {"type": "string"}, "window": {"type": "string"}},
          "required": ["steps"]}, run_funnel),
    Tool("explain_change", "Why a metric or event count changed over a period against the "
         "period before: the dimension values that drove the change, related events and "
         "data-quality caveats. period: 'yesterday', 'last_week', '7d', or "
         "'YYYY-MM-DD..YYYY-MM-DD'. where: only the events matching a filter such as "
         "\"platform = 'android'\"; by: the only breakdowns to look at (a dimension or a "
         "list of them).",
         {"type": "object", "properties": {
             "target": {"type": "string"}, "period": {"type": "string"},
             "vs": {"type": "string", "enum": ["previous", "expected"]},
             "where": {"type": "string"}, "by": _BY},
          "required": ["target"]}, explain_change),
    Tool("forecast_metric", "A daily forecast of a metric with intervals.",
         {"type": "object", "properties": {"metric": {"type": "string"},
                                           "horizon": {"type": "string"}},
          "required": ["metric"]}, forecast_metric),
    Tool("data_health", "The latest data-quality checks: overall status and every "
         "problem found (optionally for one event).",
         {"type": "object", "properties": {"event": {"type": "string"}}}, data_health),
    Tool("experiment_results", "An experiment's readout: decision, and per variant and "
         "metric the lift, interval and p-value.",
         {"type": "object", "properties": {"key": {"type": "string"}},
          "required": ["key"]}, experiment_results),
)}


def run_tool(ctx: Context, name: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run the tool ``name`` with ``args``; QueryError for an unknown tool or bad args."""
    tool = TOOLS.get(name)
    if tool is None:
        raise QueryError(f"unknown tool {name!r}; tools: {', '.join(TOOLS)}")
    args = dict(args or {})
    check_arguments(name, tool.parameters, args)
    return tool.run(ctx, args)

