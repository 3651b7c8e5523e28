"""What a name in a metric file means: a property, a context field, a trait, a column.

The rules (docs/metrics.md#references), tried in order:

1. ``user`` -- the person: ``coalesce(user_id, anonymous_id)``.
2. ``user.<trait>`` -- a trait from identify, as of the event's time (typed by the
   catalog's ``identify`` entry).
3. ``context.<path>`` -- a field of the event's context (device, os, app, location...).
4. ``properties.<name>`` -- a property of the event, typed by the catalog.
5. a built-in column: ``event``, ``source``, ``user_id``, ``anonymous_id``, ``type``.
6. a named dimension from a ``dimensions:`` section.
7. a named segment (in filters only).
8. otherwise a property of the event(s) being measured.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from difflib import get_close_matches
from typing import Any, Literal

from nerve.catalog import Catalog, PropertySpec
from nerve.semantic._expr import Node, Ref
from nerve.semantic._model import ANY_EVENT, MEASURED_TYPES, Dimension, Segment

__all__ = ["BUILTIN_COLUMNS", "ResolveError", "Resolved", "Resolver"]

#: envelope columns usable by name, and their types
BUILTIN_COLUMNS = {"event": "string", "source": "string", "user_id": "string",
                   "anonymous_id": "string", "type": "string", "name": "string"}
#: the catalog entry whose properties are identify traits
IDENTIFY = "identify"

Kind = Literal["user", "trait", "context", "property", "column", "segment"]


class ResolveError(ValueError):
    """A name that means nothing here; the message says why and what would."""


@dataclass(frozen=True, slots=True)
class Resolved:
    """A resolved name: where its value lives and its catalog type."""

    kind: Kind
    #: JSON path (trait, context, property) or the column name
    path: tuple[str, ...]
    type: str
    #: the name as written
    text: str
    #: for a segment, its parsed condition
    condition: Node | None = None

    @property
    def lineage(self) -> str:
        """``properties.revenue``, ``user.age``, ``context.os.name``, ``event``."""
        if self.kind == "property":
            return "properties." + ".".join(self.path)
        if self.kind == "trait":
            return "user." + ".".join(self.path)
        if self.kind == "context":
            return "context." + ".".join(self.path)
        return ".".join(self.path) if self.path else self.kind


def _nested(props: tuple[PropertySpec, ...], path: tuple[str, ...]) -> PropertySpec | None:
    current: PropertySpec | None = None
    for key in path:
        current = next((p for p in props if p.name == key), None)
        if current is None:
            return None
        props = current.properties
    return current


def _paths(props: tuple[PropertySpec, ...], prefix: str = "") -> Iterator[str]:
    """Every property's dotted path, nested ones too (``item``, ``item.sku``)."""
    for prop in props:
        yield prefix + prop.name
        yield from _paths(prop.properties, f"{prefix}{prop.name}.")


def _did_you_mean(label: str, props: Iterable[PropertySpec]) -> str:
    """``"did you mean 'country'? "`` when a declared name is close to ``label``, else
    nothing: what a misspelt name was meant to be, in front of the list of known ones."""
    close = get_close_matches(label, list(_paths(tuple(props))), n=1)
    return f"did you mean {close[0]!r}? " if close else ""


class Resolver:
    """Resolves names against the catalog, named dimensions and segments."""

    def __init__(self, catalog: Catalog, dimensions: Mapping[str, Dimension],
                 segments: Mapping[str, Segment], parsed_segments: Mapping[str, Node]) -> None:
        self.catalog = catalog
        self.dimensions = dimensions
        self.segments = segments
        self.parsed_segments = parsed_segments

    def property_type(self, events: tuple[str, ...], path: tuple[str, ...], text: str) -> str:
        """The catalog type of a property on every one of ``events``."""
        label = ".".join(path)
        if events == (ANY_EVENT,):
            found = {spec.name: _nested(spec.properties, path) for spec in self.catalog
                     if spec.type == "track"}
            types = {p.type for p in found.values() if p is not None}
            if len(types) == 1:
                return types.pop()
            if not types:
                declared = [p for spec in self.catalog if spec.type == "track"
                            for p in spec.properties]
                hint = _did_you_mean(label, declared).strip()
                raise ResolveError(f"{text!r}: no cataloged event has a property {label!r}"
                                   + (f" ({hint})" if hint else ""))
            raise ResolveError(f"{text!r}: property {label!r} has different types across events "
                             f"({', '.join(sorted(types))})")
        types = set()
        for event in events:
            spec = self.catalog.get(event)
            if spec is None:
                raise ResolveError(f"{text!r}: event {event!r} is not in the catalog")
            prop = _nested(spec.properties, path)
            if prop is None:
                known = ", ".join(p.name for p in spec.properties) or "none"
                elsewhere = [other.name for other in self.catalog if other.name != event
                             and _nested(other.properties, path) is not None]
                also = (f"; {label!r} is a property of {', '.join(elsewhere[:3])}"
                        if elsewhere else "")
                raise ResolveError(f"{text!r}: {event} has no property {label!r} "
                                   f"({_did_you_mean(label, spec.properties)}its properties: "
                                   f"{known}{also})")
            types.add(prop.type)
        if len(types) > 1 and not types <= {"integer", "number"}:
            raise ResolveError(f"{text!r}: property {label!r} has different types across "
                             f"{', '.join(events)} ({', '.join(sorted(types))})")
        return "number" if len(types) > 1 else types.pop()

    def trait_type(self, path: tuple[str, ...], text: str) -> str:
        spec = self.catalog.get(IDENTIFY)
        if spec is None:
            raise ResolveError(f"{text!r}: traits need an 'identify' entry in the catalog "
                             "(events/identify.yaml with type: identify)")
        prop = _nested(spec.properties, path)
        if prop is None:
            known = ", ".join(p.name for p in spec.properties) or "none"
            label = ".".join(path)
            raise ResolveError(f"{text!r}: identify has no trait {label!r} "
                               f"({_did_you_mean(label, spec.properties)}its traits: {known})")
        return prop.type

    def dimension_type(self, dim: Dimension) -> str | None:
        """The type ``dim`` declares, else the one every cataloged event that has its
        property gives it (None: its reference's type, the catalog's for a trait).

        A property typed differently by two events is an error: the long form with a
        ``type`` says which reading is meant.
        """
        head, _, rest = dim.expr.partition(".")
        if dim.type is not None or head != "properties" or not rest:
            return dim.type
        path = tuple(rest.split("."))
        declared = {spec.name: prop.type for spec in self.catalog
                    if spec.type in MEASURED_TYPES
                    and (prop := _nested(spec.properties, path)) is not None}
        types = set(declared.values())
        if len(types) > 1 and not types <= {"integer", "number"}:
            each = ", ".join(f"{type_} in {event}" for event, type_ in sorted(declared.items()))
            raise ResolveError(f"{dim.expr!r} is {each}; write the long form with the type "
                               f"you mean: {{expr: {dim.expr}, type: ...}}")
        if len(types) > 1:
            return "number"
        # a property no event declares is read as text, as context fields are
        return types.pop() if types else "string"

    def typed(self, dim: Dimension) -> Dimension:
        """``dim`` with the type it is read as (as it is when it does not resolve)."""
        try:
            return replace(dim, type=self.resolve(Ref((dim.name,)), (ANY_EVENT,)).type)
        except ResolveError:
            return dim

    def resolve(self, ref: Ref, events: tuple[str, ...], *, allow_segments: bool = False,
                declared_type: str | None = None, _seen: tuple[str, ...] = ()) -> Resolved:
        """What ``ref`` means for a measure over ``events``; raises ResolveError."""
        path, text = ref.path, ref.text
        head, rest = path[0], path[1:]
        if head == "user" and not rest:
            return Resolved("user", (), "string", text)
        if head == "user":
            return Resolved("trait", rest, declared_type or self.trait_type(rest, text), text)
        if head == "context" and rest:
            return Resolved("context", rest, declared_type or "string", text)
        if head == "properties" and rest:
            return Resolved("property", rest,
                            declared_type or self.property_type(events, rest, text), text)
        if not rest and head in BUILTIN_COLUMNS:
            return Resolved("column", (head,), BUILTIN_COLUMNS[head], text)
        if not rest and head in self.dimensions:
            if head in _seen:
                raise ResolveError(f"{text!r}: dimension {head!r} refers to itself")
            dim = self.dimensions[head]
            inner = self.resolve(Ref(tuple(dim.expr.split("."))), events,
                                 declared_type=self.dimension_type(dim), _seen=(*_seen, head))
            return Resolved(inner.kind, inner.path, inner.type, text)
        if not rest and head in self.parsed_segments:
            if not allow_segments:
                raise ResolveError(f"{text!r} is a segment; use it in a filter, not as a value")
            return Resolved("segment", (head,), "boolean", text, self.parsed_segments[head])
        try:
            type_ = self.property_type(events, path, text)
        except ResolveError as exc:
            names = [*self.dimensions, *(self.parsed_segments if allow_segments else ())]
            close = get_close_matches(head, names, n=1) if not rest else []
            if not close:
                raise
            kind = "dimension" if close[0] in self.dimensions else "segment"
            raise ResolveError(f"{exc}; did you mean the {kind} {close[0]!r}?") from None
        return Resolved("property", path, type_, text)

    def type_of(self, events: tuple[str, ...]) -> _TypeOf:
        return _TypeOf(self, events)


class _TypeOf:
    """A ``Ref -> type`` callable for expression type checks (unknown names: None), and
    ``enum(ref)``: the values a property or trait may take (None: any)."""

    def __init__(self, resolver: Resolver, events: tuple[str, ...]) -> None:
        self.resolver = resolver
        self.events = events

    def __call__(self, ref: Ref) -> str | None:
        try:
            return self.resolver.resolve(ref, self.events, allow_segments=True).type
        except ResolveError:
            return None

    def enum(self, ref: Ref) -> frozenset[Any] | None:
        """Every value the catalog allows ``ref`` in any version of the events (or of
        identify, for a trait): a stored value is one of them. None when a version
        allows any value, or the name is not a cataloged property or trait."""
        try:
            resolved = self.resolver.resolve(ref, self.events, allow_segments=True)
        except ResolveError:
            return None
        catalog = self.resolver.catalog
        if resolved.kind == "trait":
            names: Iterable[str] = (IDENTIFY,)
        elif resolved.kind == "property":
            names = ({s.name for s in catalog if s.type == "track"}
                     if self.events == (ANY_EVENT,) else self.events)
        else:
            return None
        allowed: set[Any] = set()
        for name in names:
            for spec in catalog.versions(name):
                prop = _nested(spec.properties, resolved.path)
                if prop is None:
                    continue
                if prop.enum is None:
                    return None
                allowed.update(prop.enum)
        return frozenset(allowed) or None
