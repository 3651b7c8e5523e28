"""Filters on masked values, refused on the reader's view (nerve.governance)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from nerve.errors import QueryError
from nerve.semantic import Measure, Metric, SemanticLayer
from nerve.semantic._expr import (
    And,
    Arith,
    Cmp,
    InList,
    IsNull,
    Like,
    Lit,
    Neg,
    Node,
    Not,
    Or,
    Ref,
    parse_arithmetic,
    parse_filter,
    refs,
)
from nerve.semantic._resolve import ResolveError
from nerve.warehouse._masking import MASK_PREFIX, MaskedFields

__all__ = ["check_masked_filters", "masked_fields_of", "masked_text_of"]

_ANY = ("*",)


def masked_fields_of(warehouse: Any) -> MaskedFields | None:
    """What ``warehouse`` masks: a ``MaskedWarehouse``'s fields, None for the admin's."""
    fields = getattr(warehouse, "masked_fields", None)
    return fields if isinstance(fields, MaskedFields) else None


def masked_text_of(warehouse: Any, text: str) -> str | None:
    """``text`` as ``warehouse``'s reader view shows a masked text (``m:...``), for
    matching a constant of nerve's own (an experiment's key) with values that view
    masks; None on the admin's view."""
    if masked_fields_of(warehouse) is None:
        return None
    mask = getattr(warehouse, "mask", None)
    return str(mask(text)) if callable(mask) else None


def check_masked_filters(layer: SemanticLayer, fields: MaskedFields | None,
                         metrics: Iterable[str] = (), *, where: str | None = None,
                         segments: Sequence[str] = (), by: Sequence[str] = ()) -> None:
    """Raise QueryError when ``where``, a segment or a named metric's own filter reads a
    value ``fields`` masks, a breakdown ``by`` one the view removes or cuts (every row
    would fall in one empty group), or a named metric aggregates one (an average of a
    removed value is empty); nothing to check on the admin's view (``fields`` None).

    Comparing a hashed value with masks (``user_id = 'm:...'``, as a reader saw them)
    and testing it for null stay allowed: the mask keeps equality and nullness, so a
    breakdown by a hashed value has the admin's groups too. Names the layer cannot
    resolve are left to the query, which reports them itself.
    """
    if fields is None:
        return
    events = _events(layer, metrics)
    for name in by:
        try:
            found = layer.resolver.resolve(Ref(tuple(name.split("."))), events)
        except (ResolveError, ValueError):
            continue
        how = fields.how(found.kind, found.path, events)
        if how is not None and how != MaskedFields.HASH:
            raise QueryError(refusal("by", name, name, found.lineage, how, use="by"))
    for metric in _metrics(layer, metrics):
        for measure in _measures(metric):
            if measure.of is None:
                continue
            try:
                found = layer.resolver.resolve(Ref(tuple(measure.of.split("."))),
                                               measure.events)
            except (ResolveError, ValueError):
                continue
            how = fields.how(found.kind, found.path, measure.events)
            if how is not None and how != MaskedFields.HASH:
                raise QueryError(refusal(f"metric {metric.name}",
                                         f"{measure.agg} of {measure.of}", measure.of,
                                         found.lineage, how, use="measure"))
    checks: list[tuple[str, str, tuple[str, ...]]] = []  # (what, filter text, events)
    if where:
        checks.append(("filter", where, events))
    for name in segments:
        segment = layer.segments.get(name)
        if segment is not None:
            checks.append((f"segment {name}", segment.where, events))
    for metric in _metrics(layer, metrics):
        checks.extend((f"metric {metric.name}", text, found)
                      for text, found in _metric_filters(metric, events))
    for what, text, on in checks:
        try:
            node = parse_filter(text)
        except ValueError:
            continue  # the query says what is wrong with it
        for ref, lineage, how in _masked(node, layer, fields, on, ()):
            raise QueryError(refusal(what, text, ref.text, lineage, how))


#: use -> what a masked value would do to the answer, and what to ask instead
_USES = {
    "filter": ("the filter cannot match the stored values and its figure would be wrong",
               "Filter on"),
    "by": ("its groups would not be the stored values (a removed value puts everyone in "
           "one empty group) and each group's figure would be wrong", "Break down by"),
    "hold": ("the held values would not compare as stored and the figure would be wrong",
             "Hold"),
    "measure": ("the metric would aggregate what the view left (nothing, or cut values) "
                "and its figure would be wrong", "Measure"),
}


def refusal(what: str, text: str, name: str, lineage: str, how: str,
            use: str = "filter") -> str:
    """Why ``what`` (``text``) is refused: ``name`` reads ``lineage``, masked ``how``;
    ``use`` is how the request reads it (a ``filter``, a breakdown ``by``, a ``hold``)."""
    masked = "removed, as it is not text" if how == MaskedFields.DROP else \
        "cut before its query string" if how == MaskedFields.URL else "a keyed hash"
    named = name if name == lineage else f"{name} ({lineage})"
    consequence, instead = _USES[use]
    return (f"{what} {text!r}: {named} is personal data, masked in this view ({masked}), "
            f"so {consequence}; nerve refuses it. {instead} a dimension that is not "
            "personal (an age group rather than an age, for example), or ask with the "
            "admin's view (`--unmasked` on nerve ask and nerve mcp, or an admin token)")


def _events(layer: SemanticLayer, metrics: Iterable[str]) -> tuple[str, ...]:
    found: list[str] = []
    for name in metrics:
        try:
            found += layer.events_of(name) or list(_ANY)
        except QueryError:
            continue
    return tuple(dict.fromkeys(found)) or _ANY


def _metrics(layer: SemanticLayer, names: Iterable[str]) -> Iterator[Metric]:
    """The named metrics and those they are built from, each once."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        try:
            metric = layer.get(todo.pop())
        except QueryError:
            continue
        if metric.name in seen:
            continue
        seen.add(metric.name)
        todo.extend(metric.referenced_metrics())
        if metric.expr and metric.type == "derived":
            # a derived metric's expression names metrics it does not list as inputs
            # (layer.events_of follows them the same way)
            aliases = {i.alias for i in metric.inputs}
            try:
                names = [ref.text for ref in refs(parse_arithmetic(metric.expr))]
            except ValueError:
                names = []
            todo.extend(n for n in names if n not in aliases and n in layer.metrics)
        yield metric


def _metric_filters(metric: Metric, events: tuple[str, ...]
                    ) -> Iterator[tuple[str, tuple[str, ...]]]:
    if metric.filter:
        yield metric.filter, events
    for measure in _measures(metric):
        if measure.filter:
            yield measure.filter, measure.events


def _measures(metric: Metric) -> Iterator[Measure]:
    """The measures ``metric`` aggregates itself (not those of metrics it refers to)."""
    measures = [metric.measure, metric.numerator, metric.denominator]
    if metric.conversion is not None:
        measures += [metric.conversion.base, metric.conversion.conversion]
    for measure in measures:
        if isinstance(measure, Measure):
            yield measure


def _masked(node: Node, layer: SemanticLayer, fields: MaskedFields, events: tuple[str, ...],
            seen: tuple[str, ...]) -> Iterator[tuple[Ref, str, str]]:
    """(name, lineage, how) of each masked value ``node`` compares, segments followed."""
    def how(ref: Ref) -> tuple[str, str] | None:
        try:
            found = layer.resolver.resolve(ref, events, allow_segments=True)
        except ResolveError:
            return None
        if found.kind == "segment":
            return None
        masked = fields.how(found.kind, found.path, events)
        return (found.lineage, masked) if masked is not None else None

    if isinstance(node, Ref):
        segment = layer.resolver.parsed_segments.get(node.text)
        if segment is not None and node.text not in layer.dimensions:
            if node.text not in seen:
                yield from _masked(segment, layer, fields, events, (*seen, node.text))
            return
        found = how(node)
        if found is not None:
            yield node, *found
    elif isinstance(node, Cmp | InList | IsNull):
        subject, values = _operands(node)
        found = how(subject) if isinstance(subject, Ref) else None
        if found is not None:
            if not _mask_safe(node, values, found[1]):
                yield subject, *found  # type: ignore[misc]
        else:
            yield from _masked(subject, layer, fields, events, seen)
        for item in values:
            yield from _masked(item, layer, fields, events, seen)
    elif isinstance(node, Like | Not | Neg):
        yield from _masked(node.expr if isinstance(node, Like) else node.item, layer, fields,
                           events, seen)
    elif isinstance(node, And | Or):
        for item in node.items:
            yield from _masked(item, layer, fields, events, seen)
    elif isinstance(node, Arith):
        yield from _masked(node.left, layer, fields, events, seen)
        yield from _masked(node.right, layer, fields, events, seen)


def _operands(node: Cmp | InList | IsNull) -> tuple[Node, list[Node]]:
    """What is compared, and with what (``65 <= age`` reads as ``age >= 65``)."""
    if isinstance(node, InList):
        return node.expr, list(node.values)
    if isinstance(node, IsNull):
        return node.expr, []
    if isinstance(node.left, Lit) and not isinstance(node.right, Lit):
        return node.right, [node.left]
    return node.left, [node.right]


def _mask_safe(node: Node, values: list[Node], how: str) -> bool:
    """A hashed value compared for (in)equality with masks only, or tested for null."""
    if how != MaskedFields.HASH:
        return False
    if isinstance(node, IsNull):
        return True
    if isinstance(node, Cmp) and node.op not in ("=", "!="):
        return False
    return bool(values) and all(isinstance(v, Lit) and isinstance(v.value, str)
                                and v.value.startswith(MASK_PREFIX) for v in values)
