"""The readiness map: can each metric be trusted today?

For every metric: the events, properties and traits it needs, whether the catalog has
them (with compatible types), and whether their data is healthy. Health comes from a
``HealthSource`` -- the quality checks (nerve.quality) plug in here; without one, health
is ``unknown``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from nerve.catalog import Catalog
from nerve.semantic._check import parse_ref
from nerve.semantic._expr import parse_arithmetic, parse_filter, refs
from nerve.semantic._model import ANY_EVENT, Measure, Metric
from nerve.semantic._resolve import ResolveError, Resolver

__all__ = [
    "ChecksHealth",
    "Health",
    "HealthSource",
    "Readiness",
    "Requirement",
    "health_from_checks",
    "readiness",
]

#: health statuses, best first
HEALTH = ("ok", "warn", "fail", "unknown")


@dataclass(frozen=True, slots=True)
class Health:
    status: str  # ok | warn | fail | unknown
    detail: str = ""


class HealthSource(Protocol):
    """Anything that can say whether an event's recent data is healthy.

    nerve.quality provides one; tests and other tools may pass their own.
    """

    def event_health(self, event: str) -> Health | None:
        """The event's data health, or None when nothing is known."""


class ChecksHealth:
    """A HealthSource over quality-check results (``nerve.quality.CheckResult``s, or
    anything with ``event``, ``status`` and ``message``).

    An event's health is the worst status of its checks; checks about no single event
    (pipeline freshness, say) count for every event. ``error`` (a check that could not
    run) says nothing: ``unknown``.
    """

    _RANK: ClassVar[dict[str, int]] = {"ok": 0, "unknown": 1, "warn": 2, "fail": 3}
    _STATUS: ClassVar[dict[str, str]] = {"pass": "ok", "warn": "warn", "fail": "fail",
                                         "error": "unknown"}

    def __init__(self, results: Iterable[Any]) -> None:
        self._by_event: dict[str | None, list[Any]] = {}
        for result in results:
            self._by_event.setdefault(getattr(result, "event", None), []).append(result)

    def event_health(self, event: str) -> Health | None:
        results = [*self._by_event.get(event, []), *self._by_event.get(None, [])]
        if not results:
            return None
        worst = Health("ok", f"{len(results)} checks passed")
        for result in results:
            status = self._STATUS.get(str(getattr(result, "status", "error")), "unknown")
            if self._RANK[status] > self._RANK[worst.status]:
                worst = Health(status, str(getattr(result, "message", "")))
        return worst


def health_from_checks(con: Any) -> HealthSource | None:
    """Data health from the latest quality-check run recorded in a warehouse (an Ibis
    backend), or None when the quality stage is absent or no run was recorded.

    Health is optional: a history that cannot be read counts as no health.
    """
    try:
        from nerve.quality import latest_results  # noqa: PLC0415 - an optional stage
    except ImportError:
        return None
    try:
        results = latest_results(con)
    except Exception:  # noqa: BLE001 - a missing or older history table: health unknown
        return None
    return ChecksHealth(results) if results else None


@dataclass(frozen=True, slots=True)
class Requirement:
    """One thing a metric needs: an event, or a field of one."""

    event: str
    field: str | None
    in_catalog: bool
    problem: str = ""


@dataclass(frozen=True, slots=True)
class Readiness:
    """A metric's readiness: ``ready``, ``missing`` (catalog gaps) or ``unhealthy``."""

    metric: str
    status: str
    requirements: tuple[Requirement, ...]
    health: dict[str, Health] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "status": self.status,
            "events": sorted({r.event for r in self.requirements}),
            "requirements": [{"event": r.event, "field": r.field, "in_catalog": r.in_catalog,
                              "problem": r.problem} for r in self.requirements],
            "health": {k: {"status": v.status, "detail": v.detail}
                       for k, v in sorted(self.health.items())},
        }


def _measure_needs(measure: Measure, extra: list[str], resolver: Resolver,
                   catalog: Catalog) -> list[Requirement]:
    needs: list[Requirement] = []
    events = measure.events
    if measure.any_event:
        needs.append(Requirement(ANY_EVENT, None, True))
    for event in events:
        if event != ANY_EVENT:
            present = event in catalog
            needs.append(Requirement(event, None, present,
                                     "" if present else "not in the catalog"))
    texts = [t for t in (measure.of,) if t]
    filters = [t for t in (measure.filter, *extra) if t]
    names = []
    for text in texts:
        try:
            names.append(parse_ref(text))
        except ValueError as exc:
            needs.append(Requirement(events[0], text, False, str(exc)))
    for text in filters:
        try:
            names.extend(refs(parse_filter(text)))
        except ValueError as exc:
            needs.append(Requirement(events[0], text, False, str(exc)))
    for ref in names:
        try:
            item = resolver.resolve(ref, events, allow_segments=True)
        except ResolveError as exc:
            needs.append(Requirement("|".join(events), ref.text, False, str(exc)))
            continue
        if item.kind == "segment":
            continue
        owner = "identify" if item.kind == "trait" else "|".join(events)
        needs.append(Requirement(owner, item.lineage, True))
    return needs


def _needs(metric: Metric, metrics: Mapping[str, Metric], resolver: Resolver,
           catalog: Catalog, seen: frozenset[str] = frozenset()) -> list[Requirement]:
    if metric.name in seen:
        return []
    seen = seen | {metric.name}
    extra = [metric.filter] if metric.filter else []
    needs: list[Requirement] = []
    measures = [m for m in (metric.measure, metric.numerator, metric.denominator)
                if isinstance(m, Measure)]
    if metric.conversion is not None:
        measures += [metric.conversion.base, metric.conversion.conversion]
    for measure in measures:
        needs.extend(_measure_needs(measure, extra, resolver, catalog))
    others = list(metric.referenced_metrics())
    if metric.type == "derived" and metric.expr:
        with contextlib.suppress(ValueError):
            others += [r.text for r in refs(parse_arithmetic(metric.expr))]
    for name in dict.fromkeys(others):
        other = metrics.get(name)
        if other is not None:
            needs.extend(_needs(other, metrics, resolver, catalog, seen))
        elif name not in {i.alias for i in metric.inputs}:
            needs.append(Requirement(name, None, False, f"unknown metric {name!r}"))
    return list(dict.fromkeys(needs))


def readiness(metrics: Mapping[str, Metric], resolver: Resolver, catalog: Catalog,
              health: HealthSource | None = None) -> list[Readiness]:
    """The readiness of every metric, in name order."""
    result = []
    cache: dict[str, Health] = {}
    for name in sorted(metrics):
        needs = _needs(metrics[name], metrics, resolver, catalog)
        events = sorted({e for r in needs for e in r.event.split("|")
                         if e != ANY_EVENT and e in catalog})
        states: dict[str, Health] = {}
        for event in events:
            if event not in cache:
                found = health.event_health(event) if health is not None else None
                cache[event] = found or Health("unknown", "no quality checks have run")
            states[event] = cache[event]
        if any(not r.in_catalog for r in needs):
            status = "missing"
        elif any(h.status == "fail" for h in states.values()):
            status = "unhealthy"
        elif any(h.status == "warn" for h in states.values()):
            status = "degraded"
        else:
            status = "ready"
        result.append(Readiness(name, status, tuple(needs), states))
    return result
