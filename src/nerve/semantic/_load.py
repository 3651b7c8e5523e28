"""Read metrics/*.yaml into Metrics, Dimensions and Segments, with file and line on problems.

A file holds up to three sections, each a mapping keyed by name::

    metrics:
      revenue: {type: simple, measure: {agg: sum, event: purchase_complete, of: revenue}}
    dimensions:
      platform: context.os.name
    segments:
      seniors: "user.age >= 65"

Only the shape of each entry is checked here; ``_check.py`` checks the meaning against
the catalog.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from nerve.catalog._yaml import LineDict, load_yaml
from nerve.errors import CatalogError, Location
from nerve.semantic._model import (
    AGGREGATIONS,
    ANY_EVENT,
    FORMATS,
    GRAINS,
    METRIC_TYPES,
    ConversionSpec,
    Dimension,
    Measure,
    Metric,
    MetricInput,
    Segment,
)

__all__ = ["Definitions", "MetricsError", "load_definitions"]

Problems = list[tuple[Location, str]]

_SECTIONS = {"metrics", "dimensions", "segments"}
_METRIC_FIELDS = {
    "type", "label", "description", "owner", "synonyms", "format", "currency", "up_is_good",
    "filter", "measure", "numerator", "denominator", "expr", "inputs", "window",
    "grain_to_date", "entity", "base", "conversion", "calculation",
}
_MEASURE_FIELDS = {"agg", "event", "of", "percentile", "filter"}
_INPUT_FIELDS = {"metric", "offset", "alias"}
_DIMENSION_FIELDS = {"expr", "type", "description"}
_SEGMENT_FIELDS = {"where", "description"}
_TYPE_FIELDS = {
    "simple": {"measure"},
    "ratio": {"numerator", "denominator"},
    "derived": {"expr", "inputs"},
    "cumulative": {"measure", "window", "grain_to_date"},
    "conversion": {"entity", "base", "conversion", "window", "calculation"},
}


class MetricsError(CatalogError):
    """An invalid metrics/*.yaml file; ``problems`` lists each with its file and line."""

    code = "metrics"


@dataclass
class Definitions:
    """Everything read from a metrics folder, before checking against the catalog."""

    metrics: dict[str, Metric] = field(default_factory=dict)
    dimensions: dict[str, Dimension] = field(default_factory=dict)
    segments: dict[str, Segment] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)


def _line(mapping: Any, key: str | None = None) -> int | None:
    if isinstance(mapping, LineDict):
        return mapping.lines.get(key, mapping.line) if key else mapping.line
    return None


class _Reader:
    """Parses one file, recording problems instead of stopping at the first."""

    def __init__(self, path: Path, problems: Problems) -> None:
        self.path = path
        self.problems = problems

    def bad(self, where: Any, key: str | None, text: str) -> None:
        self.problems.append((Location(self.path, _line(where, key)), text))

    def unknown(self, raw: dict[str, Any], allowed: set[str], subject: str) -> None:
        for key in raw:
            if key not in allowed:
                # closer than close_match's cutoff: 'kind' is not a misspelt 'window'
                close = difflib.get_close_matches(str(key), sorted(allowed), n=1, cutoff=0.75)
                hint = f"did you mean {close[0]!r}? " if close else ""
                self.bad(raw, key, f"{subject}.{key}: unknown field; {hint}expected one of "
                                   f"{', '.join(sorted(allowed))}")

    def text(self, raw: dict[str, Any], key: str, subject: str) -> str | None:
        value = raw.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            self.bad(raw, key, f"{subject}.{key}: expected a string, got {value!r}")
            return None
        return str(value)

    def measure(self, raw: Any, parent: Any, key: str, subject: str) -> Measure | None:
        where = f"{subject}.{key}"
        if not isinstance(raw, dict):
            self.bad(parent, key, f"{where}: expected a mapping with agg and event")
            return None
        self.unknown(raw, _MEASURE_FIELDS, where)
        agg = raw.get("agg", "count")
        if agg not in AGGREGATIONS:
            self.bad(raw, "agg", f"{where}.agg: expected one of {', '.join(AGGREGATIONS)}, "
                                 f"got {agg!r}")
            return None
        events = raw.get("event")
        if isinstance(events, str):
            events = [events]
        if (not isinstance(events, list) or not events
                or not all(isinstance(e, str) and e for e in events)):
            self.bad(raw, "event", f"{where}.event: required, an event name, a list of them, "
                                   f"or \"{ANY_EVENT}\" for any event")
            return None
        if ANY_EVENT in events and len(events) > 1:
            self.bad(raw, "event", f"{where}.event: \"{ANY_EVENT}\" already means every event")
        of = self.text(raw, "of", where)
        if agg in ("sum", "avg", "min", "max", "percentile") and not of:
            self.bad(raw, None, f"{where}.of: required for {agg}: the property to aggregate")
        if agg == "count" and of:
            self.bad(raw, "of", f"{where}.of: count counts events; use count_distinct to count "
                                f"distinct values of {of!r}")
        percentile = raw.get("percentile")
        if agg == "percentile":
            if (isinstance(percentile, bool) or not isinstance(percentile, int | float)
                    or not 0 <= percentile <= 1):
                self.bad(raw, "percentile" if "percentile" in raw else None,
                         f"{where}.percentile: required for agg percentile, a fraction "
                         f"between 0 and 1 (0.5 = median), got {percentile!r}")
                percentile = 0.5
        elif percentile is not None:
            self.bad(raw, "percentile", f"{where}.percentile: only for agg percentile")
            percentile = None
        return Measure(agg=agg, events=tuple(events),
                       of=of or ("user" if agg == "count_distinct" else None),
                       percentile=float(percentile) if percentile is not None else None,
                       filter=self.text(raw, "filter", where), file=self.path,
                       line=_line(raw))

    def conversion_base(self, raw: dict[str, Any], base: Measure, entity: str,
                        name: str) -> Measure:
        """A conversion's base: distinct entities unless ``agg: count`` asks for events."""
        if "agg" not in raw:
            return replace(base, agg="count_distinct", of=entity)
        if base.agg == "count":
            return base
        if base.agg != "count_distinct":
            self.bad(raw, "agg", f"{name}.base.agg: count_distinct (of the entity, the "
                                 f"default) or count (of base events), got {base.agg}")
        elif "of" not in raw:
            return replace(base, of=entity)
        elif base.of != entity:
            self.bad(raw, "of", f"{name}.base.of: a conversion counts distinct entities "
                                f"({entity!r}); set entity: {base.of} instead, or leave of out")
        return base

    def side(self, raw: dict[str, Any], key: str, subject: str) -> str | Measure | None:
        value = raw.get(key)
        if isinstance(value, str):
            return value
        if isinstance(value, dict):
            return self.measure(value, raw, key, subject)
        self.bad(raw, key if key in raw else None,
                 f"{subject}.{key}: required, a metric name or a measure mapping")
        return None

    def inputs(self, raw: dict[str, Any], subject: str) -> tuple[MetricInput, ...]:
        value = raw.get("inputs", [])
        if not isinstance(value, list):
            self.bad(raw, "inputs", f"{subject}.inputs: expected a list of {{metric, offset, "
                                    "alias}}")
            return ()
        result = []
        for item in value:
            if isinstance(item, str):
                result.append(MetricInput(metric=item, alias=item))
                continue
            if not isinstance(item, dict) or not isinstance(item.get("metric"), str):
                self.bad(raw, "inputs", f"{subject}.inputs: each input needs metric: NAME")
                continue
            self.unknown(item, _INPUT_FIELDS, f"{subject}.inputs")
            offset = self.text(item, "offset", f"{subject}.inputs")
            alias = self.text(item, "alias", f"{subject}.inputs") or item["metric"]
            result.append(MetricInput(metric=item["metric"], alias=alias, offset=offset))
        return tuple(result)

    def metric(self, name: str, raw: Any, section: Any) -> Metric | None:
        if not isinstance(raw, dict):
            self.bad(section, name, f"{name}: expected a mapping of fields (type, measure, ...)")
            return None
        self.unknown(raw, _METRIC_FIELDS, name)
        type_ = raw.get("type", "simple")
        if type_ not in METRIC_TYPES:
            self.bad(raw, "type", f"{name}.type: expected one of {', '.join(METRIC_TYPES)}, "
                                  f"got {type_!r}")
            return None
        own = _TYPE_FIELDS[type_]
        for other, fields in _TYPE_FIELDS.items():
            for key in sorted(fields - own - {"window"}):
                if key in raw and other != type_:
                    self.bad(raw, key, f"{name}.{key}: only for {other} metrics, this one is "
                                       f"{type_}")
        if "window" in raw and type_ not in ("cumulative", "conversion"):
            self.bad(raw, "window", f"{name}.window: only for cumulative and conversion metrics")
        fmt = raw.get("format", "number")
        if fmt not in FORMATS:
            self.bad(raw, "format", f"{name}.format: expected one of {', '.join(FORMATS)}, "
                                    f"got {fmt!r}")
            fmt = "number"
        up = raw.get("up_is_good", True)
        if not isinstance(up, bool):
            self.bad(raw, "up_is_good", f"{name}.up_is_good: expected true or false, got {up!r}")
            up = True
        synonyms = raw.get("synonyms", [])
        if isinstance(synonyms, str):
            synonyms = [synonyms]
        if not isinstance(synonyms, list) or not all(isinstance(s, str) for s in synonyms):
            self.bad(raw, "synonyms", f"{name}.synonyms: expected a list of words")
            synonyms = []
        common: dict[str, Any] = {
            "name": name, "type": type_, "label": self.text(raw, "label", name) or "",
            "description": self.text(raw, "description", name) or "",
            "owner": self.text(raw, "owner", name) or "", "synonyms": tuple(synonyms),
            "format": fmt, "currency": self.text(raw, "currency", name), "up_is_good": up,
            "filter": self.text(raw, "filter", name), "file": self.path, "line": _line(raw),
            "lines": dict(raw.lines) if isinstance(raw, LineDict) else {},
        }
        if type_ in ("simple", "cumulative"):
            measure = self.measure(raw.get("measure"), raw, "measure", name) \
                if "measure" in raw else None
            if measure is None:
                if "measure" not in raw:
                    self.bad(raw, None, f"{name}.measure: required for a {type_} metric")
                return None
            common["measure"] = measure
        if type_ == "cumulative":
            window, gtd = self.text(raw, "window", name), raw.get("grain_to_date")
            if window and gtd:
                self.bad(raw, "grain_to_date", f"{name}: give window or grain_to_date, not both")
            if gtd is not None and gtd not in (*GRAINS, "year"):
                self.bad(raw, "grain_to_date", f"{name}.grain_to_date: expected one of "
                                               f"day, week, month, year, got {gtd!r}")
                gtd = None
            common.update(window=window, grain_to_date=gtd)
        if type_ == "ratio":
            num, den = self.side(raw, "numerator", name), self.side(raw, "denominator", name)
            if num is None or den is None:
                return None
            common.update(numerator=num, denominator=den)
        if type_ == "derived":
            expr = self.text(raw, "expr", name)
            if not expr:
                self.bad(raw, None, f"{name}.expr: required for a derived metric, e.g. "
                                    "(revenue - revenue_last_week) / revenue_last_week")
                return None
            common.update(expr=expr, inputs=self.inputs(raw, name))
        if type_ == "conversion":
            base = self.measure(raw.get("base"), raw, "base", name)
            conv = self.measure(raw.get("conversion"), raw, "conversion", name)
            if base is None or conv is None:
                return None
            entity = self.text(raw, "entity", name) or "user"
            base = self.conversion_base(raw["base"], base, entity, name)
            calc = raw.get("calculation", "conversion_rate")
            if calc not in ("conversion_rate", "conversions"):
                self.bad(raw, "calculation", f"{name}.calculation: conversion_rate or "
                                             f"conversions, got {calc!r}")
                calc = "conversion_rate"
            common["conversion"] = ConversionSpec(
                base=base, conversion=conv, entity=entity,
                window=self.text(raw, "window", name) or "1d", calculation=calc)
        return Metric(**common)

    def dimension(self, name: str, raw: Any, section: Any) -> Dimension | None:
        if isinstance(raw, str):
            return Dimension(name=name, expr=raw, file=self.path, line=_line(section, name))
        if not isinstance(raw, dict) or not isinstance(raw.get("expr"), str):
            self.bad(section, name, f"dimensions.{name}: expected a reference like "
                                    "context.os.name, or a mapping with expr")
            return None
        self.unknown(raw, _DIMENSION_FIELDS, f"dimensions.{name}")
        type_ = raw.get("type")
        if type_ not in (None, "string", "integer", "number", "boolean", "timestamp"):
            self.bad(raw, "type", f"dimensions.{name}.type: expected string, integer, number, "
                                  f"boolean or timestamp, got {type_!r}")
            type_ = None
        return Dimension(name=name, expr=raw["expr"], type=type_,
                         description=self.text(raw, "description", name) or "",
                         file=self.path, line=_line(section, name))

    def segment(self, name: str, raw: Any, section: Any) -> Segment | None:
        if isinstance(raw, str):
            return Segment(name=name, where=raw, file=self.path, line=_line(section, name))
        if not isinstance(raw, dict) or not isinstance(raw.get("where"), str):
            self.bad(section, name, f"segments.{name}: expected a filter like "
                                    "\"user.age >= 65\", or a mapping with where")
            return None
        self.unknown(raw, _SEGMENT_FIELDS, f"segments.{name}")
        return Segment(name=name, where=raw["where"],
                       description=self.text(raw, "description", name) or "",
                       file=self.path, line=_line(section, name))


def load_definitions(metrics_dir: Path, problems: Problems) -> Definitions:
    """Read every ``*.yaml``/``*.yml`` under ``metrics_dir`` (sorted); collect problems."""
    found = Definitions()
    origin: dict[tuple[str, str], Location] = {}
    paths = sorted([*metrics_dir.rglob("*.yaml"), *metrics_dir.rglob("*.yml")]) \
        if metrics_dir.is_dir() else []
    for path in paths:
        found.files.append(path)
        try:
            raw = load_yaml(path)
        except CatalogError as exc:
            problems.extend(exc.problems)
            continue
        if raw is None:
            continue
        reader = _Reader(path, problems)
        if not isinstance(raw, dict):
            reader.bad(None, None, "expected a mapping with metrics:, dimensions: or segments:")
            continue
        reader.unknown(raw, _SECTIONS, path.name)
        for section, build, target in (
            ("metrics", reader.metric, found.metrics),
            ("dimensions", reader.dimension, found.dimensions),
            ("segments", reader.segment, found.segments),
        ):
            entries = raw.get(section)
            if entries is None:
                continue
            if not isinstance(entries, dict):
                reader.bad(raw, section, f"{section}: expected a mapping keyed by name")
                continue
            for name, body in entries.items():
                if not _is_name(name):
                    reader.bad(entries, name, f"{section}.{name}: names are lowercase letters, "
                                              "digits and underscores, starting with a letter")
                    continue
                previous = origin.get((section, name))
                if previous is not None:
                    reader.bad(entries, name, f"{section}.{name}: already defined in "
                                              f"{_shown(previous, metrics_dir.parent)}")
                    continue
                item = build(name, body, entries)
                if item is not None:
                    origin[(section, name)] = Location(path, _line(entries, name))
                    target[name] = item  # type: ignore[assignment]
    return found


def _shown(where: Location, root: Path) -> str:
    """``metrics/shop.yaml:9``: relative to the folder holding ``metrics/`` (the
    workspace), as people and ``nerve metrics lint`` name files."""
    path = Path(where.file)
    if path.is_relative_to(root):
        where = Location(path.relative_to(root).as_posix(), where.line)
    return str(where)


def _is_name(name: str) -> bool:
    return bool(name) and name[0].isalpha() and name.isascii() and \
        all(c.isalnum() or c == "_" for c in name) and name == name.lower()
