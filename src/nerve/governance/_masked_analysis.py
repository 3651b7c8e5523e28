"""Funnels, retention and trends on the reader's view: a filter, a breakdown or a held
value that reads a masked value is refused, as a metric's filter is (nerve.governance).

The analytics requests (docs/analytics.md) name fields as the event stores them
(``context.ip``, ``traits.age``, a property, ``user_id``); a funnel's ``by`` is a
dimension of the semantic layer when every step is cataloged (``age``, ``user.age``).
Each name is looked up in ``MaskedFields`` as ``check_masked_filters`` looks up the
layer's names. A filter on a masked value is refused unless it compares a hashed value
with a mask (``user_id=m:...``). A breakdown or a held value is refused when the mask
loses equality (a removed ``user.age`` puts every entity in one empty group, a cut
address merges pages) and kept when it is a keyed hash: the same groups as the admin's,
with masked labels.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from nerve.analytics import (
    Filter,
    FunnelSpec,
    breakdown_layer,
    funnel_spec,
    retention_spec,
    trend_filters,
)
from nerve.analytics._fields import field_source
from nerve.errors import QueryError
from nerve.governance._masked_filters import _mask_safe, check_masked_filters, refusal
from nerve.semantic import SemanticLayer
from nerve.semantic._expr import Cmp, Lit, Ref
from nerve.semantic._resolve import Resolved, ResolveError
from nerve.warehouse import EVENT_COLUMNS
from nerve.warehouse._masking import MaskedFields

__all__ = ["ANALYSES", "check_masked_analysis"]

#: the requests checked, named as their HTTP paths (``POST /v1/funnels``...)
ANALYSES = ("funnels", "retention", "trends")
_ANY = ("*",)


def check_masked_analysis(kind: str, body: dict[str, Any], fields: MaskedFields | None,
                          layer: Callable[[], SemanticLayer] | None = None, *,
                          timezone: str = "UTC") -> None:
    """Raise QueryError when the ``kind`` request ``body`` (``funnels``, ``retention``,
    ``trends``) filters on, breaks down by or holds a value ``fields`` masks (nothing to
    check on the admin's view: ``fields`` None).

    ``layer`` returns the workspace's SemanticLayer: a funnel's ``by`` is its dimension
    when every step is cataloged, and a metric's trend is checked with
    ``check_masked_filters``. A malformed body raises the request's own QueryError.
    """
    if kind not in ANALYSES:
        raise ValueError(f"kind: one of {', '.join(ANALYSES)}, got {kind!r}")
    if fields is None:
        return
    if kind == "funnels":
        _funnel(funnel_spec(body, timezone=timezone), fields, layer)
    elif kind == "retention":
        spec = retention_spec(body, timezone=timezone)
        _filters("start_where filter", spec.start_where, _on(spec.start_event), fields)
        _filters("return_where filter", spec.return_where, _on(spec.return_event), fields)
    elif body.get("metric"):
        if layer is not None:
            check_masked_filters(layer(), fields, [str(body["metric"])],
                                 where=body.get("where"))
    else:
        _filters("filter", trend_filters(body), _on(body.get("event")), fields)


def _on(event: Any) -> tuple[str, ...]:
    """The events a filter applies to: one, or any when the request names none."""
    return (event,) if isinstance(event, str) and event else _ANY


def _funnel(spec: FunnelSpec, fields: MaskedFields,
            layer: Callable[[], SemanticLayer] | None) -> None:
    for number, step in enumerate(spec.steps, 1):  # numbered as requests number them
        _filters(f"step {number} ({step.event}) filter", step.where, (step.event,), fields)
    for exclusion in spec.exclusions:
        _filters(f"exclusion {exclusion.event} filter", exclusion.where, (exclusion.event,),
                 fields)
    events = tuple(dict.fromkeys(step.event for step in spec.steps))
    for name in spec.hold:
        _grouping("hold", name, _field(name), events, fields)
    if spec.by:
        semantic = breakdown_layer(spec, layer)
        found = _field(spec.by) if semantic is None else _dimension(semantic, spec.by, events)
        if found is not None:
            _grouping("by", spec.by, found, events, fields)


def _field(name: str) -> Resolved:
    """A field read from the event itself, as the semantic layer would resolve it."""
    kind, path = field_source(name, EVENT_COLUMNS)
    return Resolved(kind, path, "string", name)  # type: ignore[arg-type]


def _dimension(layer: SemanticLayer, name: str, events: tuple[str, ...]) -> Resolved | None:
    """The layer's dimension ``name`` (None when it names nothing: the funnel says so)."""
    try:
        return layer.resolver.resolve(Ref(tuple(name.split("."))), events)
    except ResolveError:
        return None


def _grouping(use: str, name: str, found: Resolved, events: tuple[str, ...],
              fields: MaskedFields) -> None:
    """A breakdown or held value: kept when masked by a keyed hash (equal values, equal
    masks), refused when removed or cut (the groups would not be the stored values')."""
    how = fields.how(found.kind, found.path, events)
    if how is not None and how != MaskedFields.HASH:
        raise QueryError(refusal(use, name, name, found.lineage, how, use=use))


def _filters(what: str, filters: Iterable[Filter], events: tuple[str, ...],
             fields: MaskedFields) -> None:
    for flt in filters:
        found = _field(flt.field)
        how = fields.how(found.kind, found.path, events)
        value = Lit(flt.value)
        if how is not None and not _mask_safe(Cmp(flt.op, Ref(found.path), value), [value],
                                              how):
            raise QueryError(refusal(what, str(flt), flt.field, found.lineage, how))
