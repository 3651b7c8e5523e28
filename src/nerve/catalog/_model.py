"""The catalog's typed objects: events, their properties, property groups."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from nerve._durations import parse_retention

__all__ = [
    "EVENT_TYPES",
    "INT64_RANGE",
    "PII_CLASSES",
    "PROPERTY_TYPES",
    "EventSpec",
    "PropertyGroup",
    "PropertySpec",
    "Version",
    "parse_retention",
]

PROPERTY_TYPES = ("string", "integer", "number", "boolean", "timestamp", "array", "object")
PII_CLASSES = ("none", "pseudonymous", "personal", "sensitive")
#: what a catalog entry describes: a track event's properties, or the traits/properties
#: of the other Segment calls
EVENT_TYPES = ("track", "identify", "page", "screen", "group")
STATUSES = ("draft", "active", "deprecated")
#: the whole numbers an ``integer`` property may hold: the warehouse's BIGINT (typed views,
#: metrics). A JSON integer outside them is quarantined, not stored as a float or a NULL
INT64_RANGE = (-(2**63), 2**63 - 1)

PropertyType = Literal["string", "integer", "number", "boolean", "timestamp", "array", "object"]


@dataclass(frozen=True, slots=True, order=True)
class Version:
    """MAJOR.MINOR.PATCH: major for breaking changes, minor for additive, patch for docs."""

    major: int
    minor: int = 0
    patch: int = 0

    @classmethod
    def parse(cls, value: object) -> Version:
        if isinstance(value, bool):
            raise ValueError(f"expected a version like 1 or 1.2.0, got {value!r}")
        if isinstance(value, int):
            return cls(value)
        # at most 18 digits a part: a client's 5000-digit context.event_version used to
        # quarantine its event with Python's int-conversion limit as the message
        match = re.fullmatch(r"(\d{1,18})(?:[.-](\d{1,18}))?(?:[.-](\d{1,18}))?",
                             str(value).strip())
        if not match:
            shown = repr(value)
            if len(shown) > 60:
                shown = f"{shown[:60]}... ({len(str(value))} characters)"
            raise ValueError(f"expected a version like 1 or 1.2.0, got {shown}")
        major, minor, patch = (int(g) if g else 0 for g in match.groups())
        return cls(major, minor, patch)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


@dataclass(frozen=True, slots=True)
class PropertySpec:
    """One property of an event (or trait of identify/group)."""

    name: str
    type: PropertyType
    required: bool = False
    description: str = ""
    pii: str = "none"
    #: for personal/sensitive values: how the pipeline treats them (hash, drop, keep, truncate)
    handling: str | None = None
    enum: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    pattern: str | None = None
    format: str | None = None
    #: element type of an array
    items: PropertySpec | None = None
    #: nested properties of an object
    properties: tuple[PropertySpec, ...] = ()
    file: Path | None = None
    line: int | None = None
    #: the property group it came from, if any
    group: str | None = None
    #: 1-based line of each field written in the YAML (which fields were declared at all)
    lines: dict[str, int] = field(default_factory=dict, compare=False, hash=False)

    def json_schema(self, closed: bool = False) -> dict[str, Any]:
        """This property as a JSON Schema (Draft 2020-12) fragment.

        ``closed``: an object with declared properties refuses keys it does not declare
        (its event's ``additional_properties: false``), as the event's top level does; an
        object declared without properties takes any.
        """
        schema: dict[str, Any]
        if self.type == "timestamp":
            schema = {"type": "string", "format": "date-time"}
        else:
            schema = {"type": self.type}
        if self.description:
            schema["description"] = self.description
        if self.enum is not None:
            schema["enum"] = list(self.enum)
        low, high = self.minimum, self.maximum
        if self.type == "integer":
            low = INT64_RANGE[0] if low is None else max(low, INT64_RANGE[0])
            high = INT64_RANGE[1] if high is None else min(high, INT64_RANGE[1])
        if low is not None:
            schema["minimum"] = low
        if high is not None:
            schema["maximum"] = high
        if self.pattern is not None:
            schema["pattern"] = self.pattern
        if self.format is not None and self.type != "timestamp":
            schema["format"] = self.format
        if self.items is not None:
            schema["items"] = self.items.json_schema(closed)
        if self.properties:
            schema["properties"] = {p.name: p.json_schema(closed) for p in self.properties}
            required = [p.name for p in self.properties if p.required]
            if required:
                schema["required"] = required
            if closed:
                schema["additionalProperties"] = False
        return schema


@dataclass(frozen=True, slots=True)
class PropertyGroup:
    """Properties shared by several events, included by name."""

    name: str
    description: str
    properties: tuple[PropertySpec, ...]
    file: Path | None = None
    line: int | None = None


@dataclass(frozen=True, slots=True)
class EventSpec:
    """One version of one cataloged event."""

    name: str
    version: Version
    type: str = "track"
    description: str = ""
    owner: str = ""
    purpose: str = ""
    status: str = "active"
    retention: str = "forever"
    retention_days: int | None = None
    #: what makes the product send it ("user taps Add to cart")
    trigger: str = ""
    properties: tuple[PropertySpec, ...] = ()
    #: names of the property groups it includes (their properties are in ``properties``)
    groups: tuple[str, ...] = ()
    #: allow properties the catalog does not list (default false: they are violations)
    additional_properties: bool = False
    file: Path | None = None
    #: 1-based line of each top-level field in ``file``
    lines: dict[str, int] = field(default_factory=dict, compare=False, hash=False)
    #: the whole parsed YAML, for fields later stages own
    raw: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def property(self, name: str) -> PropertySpec | None:
        for prop in self.properties:
            if prop.name == name:
                return prop
        return None

    def json_schema(self) -> dict[str, Any]:
        """The schema of this event's properties (traits for identify/group), Draft 2020-12."""
        schema: dict[str, Any] = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"nerve:{quote(self.name, safe='')}/{self.version}",
            "title": self.name,
            "type": "object",
            "properties": {p.name: p.json_schema(not self.additional_properties)
                           for p in self.properties},
            "additionalProperties": self.additional_properties,
        }
        if self.description:
            schema["description"] = self.description
        required = [p.name for p in self.properties if p.required]
        if required:
            schema["required"] = required
        return schema
