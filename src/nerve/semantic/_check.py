"""Check metric definitions against the catalog: every event, property and type.

Each problem names the file and line, like the catalog's own errors.
"""

from __future__ import annotations

from collections.abc import Mapping

from nerve.catalog import Catalog
from nerve.errors import Location
from nerve.semantic._expr import Node, Ref, parse_arithmetic, parse_filter, refs, type_problems
from nerve.semantic._load import Definitions
from nerve.semantic._model import ANY_EVENT, Measure, Metric
from nerve.semantic._resolve import BUILTIN_COLUMNS, ResolveError, Resolver
from nerve.semantic._time import parse_duration

__all__ = ["check_definitions", "parse_ref", "parse_segments"]

Problems = list[tuple[Location, str]]

_NUMERIC = {"integer", "number"}
#: names a dimension or segment may not take: they already mean something
_RESERVED = {"user", "context", "properties", *BUILTIN_COLUMNS}


def parse_segments(defs: Definitions, problems: Problems) -> dict[str, Node]:
    parsed: dict[str, Node] = {}
    for seg in defs.segments.values():
        try:
            parsed[seg.name] = parse_filter(seg.where)
        except ValueError as exc:
            problems.append((Location(seg.file or "metrics", seg.line),
                             f"segments.{seg.name}: {exc}"))
    return parsed


def _check_filter(text: str | None, events: tuple[str, ...], resolver: Resolver,
                  where: Location, subject: str, problems: Problems) -> None:
    if not text:
        return
    try:
        node = parse_filter(text)
    except ValueError as exc:
        problems.append((where, f"{subject}: {exc}"))
        return
    for ref in refs(node):
        try:
            resolver.resolve(ref, events, allow_segments=True)
        except ResolveError as exc:
            problems.append((where, f"{subject}: {exc}"))
            return
    problems.extend((where, f"{subject}: {text}: {p}")
                    for p in type_problems(node, resolver.type_of(events)))


def _check_measure(measure: Measure, catalog: Catalog, resolver: Resolver, subject: str,
                   problems: Problems) -> None:
    where = Location(measure.file or "metrics", measure.line)
    if not measure.any_event:
        for event in measure.events:
            spec = catalog.get(event)
            if spec is None:
                close = [n for n in catalog.names() if event[:4] in n][:3]
                hint = f" (did you mean {', '.join(close)}?)" if close else ""
                problems.append((where, f"{subject}.event: {event!r} is not in the catalog"
                                        f"{hint}"))
                return
            if spec.type not in ("track", "page", "screen"):
                problems.append((where, f"{subject}.event: {event!r} is a {spec.type} call, "
                                        "not an event to measure"))
                return
    if measure.of:
        try:
            target = resolver.resolve(parse_ref(measure.of), measure.events)
        except (ResolveError, ValueError) as exc:
            problems.append((where, f"{subject}.of: {exc}"))
            return
        if measure.agg in ("sum", "avg", "percentile") and target.type not in _NUMERIC:
            problems.append((where, f"{subject}.of: {measure.agg} needs a number, but "
                                    f"{measure.of} is {target.type}"))
        if measure.agg in ("min", "max") and target.type not in (*_NUMERIC, "timestamp"):
            problems.append((where, f"{subject}.of: {measure.agg} needs a number or timestamp, "
                                    f"but {measure.of} is {target.type}"))
    _check_filter(measure.filter, measure.events, resolver, where, f"{subject}.filter",
                  problems)


def parse_ref(text: str) -> Ref:
    """A reference like ``price``, ``user.age`` or ``context.os.name``."""
    parts = tuple(text.strip().split("."))
    if not all(p.replace("_", "a").replace("-", "a").isalnum() for p in parts):
        raise ValueError(f"{text!r} is not a reference like price, user.age or context.os.name")
    return Ref(parts)


def _measures(metric: Metric) -> list[tuple[str, Measure]]:
    found: list[tuple[str, Measure]] = []
    if metric.measure is not None:
        found.append(("measure", metric.measure))
    for key, side in (("numerator", metric.numerator), ("denominator", metric.denominator)):
        if isinstance(side, Measure):
            found.append((key, side))
    if metric.conversion is not None:
        found.extend([("base", metric.conversion.base),
                      ("conversion", metric.conversion.conversion)])
    return found


def _check_metric(metric: Metric, metrics: Mapping[str, Metric], catalog: Catalog,
                  resolver: Resolver, problems: Problems) -> None:
    def at(key: str) -> Location:
        return Location(metric.file or "metrics", metric.lines.get(key, metric.line))

    events: set[str] = set()
    for key, measure in _measures(metric):
        _check_measure(measure, catalog, resolver, f"{metric.name}.{key}", problems)
        events.update(measure.events)
    for key in ("numerator", "denominator"):
        side = getattr(metric, key)
        if isinstance(side, str) and side not in metrics:
            problems.append((at(key), f"{metric.name}.{key}: unknown metric {side!r}"))
    if metric.filter:
        for key, measure in _measures(metric):
            _check_filter(metric.filter, measure.events, resolver, at("filter"),
                          f"{metric.name}.filter (on {key})", problems)
    for key in ("window",):
        value = getattr(metric, key) or (metric.conversion.window if metric.conversion else None)
        if value:
            try:
                parse_duration(value)
            except ValueError as exc:
                problems.append((at(key), f"{metric.name}.{key}: {exc}"))
    if metric.conversion is not None:
        conv = metric.conversion
        for key, measure in (("base", conv.base), ("conversion", conv.conversion)):
            if measure.any_event:
                problems.append((at(key), f"{metric.name}.{key}: name the event"))
                continue
            try:
                resolver.resolve(parse_ref(conv.entity), measure.events)
            except (ResolveError, ValueError) as exc:
                problems.append((at("entity"), f"{metric.name}.entity: {exc}"))
    if metric.type == "derived":
        assert metric.expr is not None
        try:
            node = parse_arithmetic(metric.expr)
        except ValueError as exc:
            problems.append((at("expr"), f"{metric.name}.expr: {exc}"))
            return
        aliases = {i.alias: i for i in metric.inputs}
        for item in metric.inputs:
            if item.metric not in metrics:
                problems.append((at("inputs"), f"{metric.name}.inputs: unknown metric "
                                               f"{item.metric!r}"))
            if item.offset:
                try:
                    parse_duration(item.offset)
                except ValueError as exc:
                    problems.append((at("inputs"), f"{metric.name}.inputs.offset: {exc}"))
        for ref in refs(node):
            if ref.text not in aliases and ref.text not in metrics:
                problems.append((at("expr"), f"{metric.name}.expr: {ref.text!r} is neither an "
                                             "input alias nor a metric"))


def _cycles(metrics: Mapping[str, Metric], problems: Problems) -> None:
    def deps(metric: Metric) -> list[str]:
        names = list(metric.referenced_metrics())
        if metric.type == "derived" and metric.expr:
            try:
                aliases = {i.alias for i in metric.inputs}
                names += [r.text for r in refs(parse_arithmetic(metric.expr))
                          if r.text not in aliases and r.text in metrics]
            except ValueError:
                pass
        return [n for n in names if n in metrics]

    state: dict[str, int] = {}

    def visit(name: str, trail: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = " -> ".join([*trail[trail.index(name):], name])
            metric = metrics[name]
            problems.append((Location(metric.file or "metrics", metric.line),
                             f"{name}: metrics refer to each other in a cycle: {cycle}"))
            return
        state[name] = 1
        for dep in deps(metrics[name]):
            visit(dep, [*trail, name])
        state[name] = 2

    for name in metrics:
        visit(name, [])


def check_definitions(defs: Definitions, catalog: Catalog, resolver: Resolver,
                      problems: Problems) -> None:
    """Append every problem of ``defs`` against ``catalog`` to ``problems``."""
    for dim in defs.dimensions.values():
        where = Location(dim.file or "metrics", dim.line)
        if dim.name in _RESERVED:
            problems.append((where, f"dimensions.{dim.name}: {dim.name!r} is a built-in name"))
        if dim.name in defs.segments:
            problems.append((where, f"dimensions.{dim.name}: also a segment name"))
        try:
            ref = parse_ref(dim.expr)
            if ref.path[0] not in ("user", "context", "properties") and \
                    ref.text not in BUILTIN_COLUMNS and ref.text not in defs.dimensions:
                raise ResolveError(f"{dim.expr!r}: a dimension is user.TRAIT, context.PATH, "
                                 "properties.NAME, a built-in column or another dimension")
            if ref.path[0] == "properties":
                resolver.dimension_type(dim)
            else:
                resolver.resolve(ref, (ANY_EVENT,), declared_type=dim.type)
        except (ResolveError, ValueError) as exc:
            problems.append((where, f"dimensions.{dim.name}: {exc}"))
    for seg in defs.segments.values():
        where = Location(seg.file or "metrics", seg.line)
        if seg.name in _RESERVED:
            problems.append((where, f"segments.{seg.name}: {seg.name!r} is a built-in name"))
        if seg.name in resolver.parsed_segments:
            node = resolver.parsed_segments[seg.name]
            in_scope = True
            for ref in refs(node):
                if ref.path[0] in ("user", "context") or ref.text in BUILTIN_COLUMNS or \
                        ref.text in defs.dimensions or ref.text in defs.segments:
                    continue
                in_scope = False
                problems.append((where, f"segments.{seg.name}: {ref.text!r}: a segment may use "
                                        "user.TRAIT, context.PATH, built-in columns, dimensions "
                                        "and other segments (event properties differ by event)"))
            if in_scope:
                # checked as a filter is: unknown traits and wrong literal types are load
                # errors here, not engine errors when a query uses the segment
                _check_filter(seg.where, (ANY_EVENT,), resolver, where, f"segments.{seg.name}",
                              problems)
    for metric in defs.metrics.values():
        _check_metric(metric, defs.metrics, catalog, resolver, problems)
    _cycles(defs.metrics, problems)
