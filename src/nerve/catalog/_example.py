"""Example payloads generated from an event's schema, for the docs site and for tests.

Every property gets a value its constraints accept: the first enum value, a number inside
the bounds, a string for the format, and for a pattern, the shortest string the regular
expression matches (built from the parsed regex; a pattern too clever for that gets a
placeholder).
"""

from __future__ import annotations

import re
from re import _parser as sre_parse  # type: ignore[attr-defined]  # stdlib, no stub
from typing import Any

from nerve.catalog._catalog import PAYLOAD_FIELD
from nerve.catalog._model import EventSpec, PropertySpec

__all__ = ["example_for_pattern", "example_payload", "example_properties"]

_FORMAT_EXAMPLES = {"email": "user@example.com", "uri": "https://example.com/p/1",
                    "uuid": "5f0c8f6e-1d7b-4f43-9b1e-2a9f6f3c0d11", "date": "2026-01-31",
                    "date-time": "2026-01-31T12:00:00Z", "ipv4": "203.0.113.7",
                    "hostname": "example.com"}
_CATEGORY = {"CATEGORY_DIGIT": "0", "CATEGORY_WORD": "a", "CATEGORY_SPACE": " ",
             "CATEGORY_NOT_DIGIT": "a", "CATEGORY_NOT_WORD": "-",
             "CATEGORY_NOT_SPACE": "a"}


def _build(parsed: Any) -> str:
    out = []
    for op, arg in parsed:
        name = str(op)
        if name == "LITERAL":
            out.append(chr(arg))
        elif name == "ANY":
            out.append("a")
        elif name == "IN":
            out.append(_first_in(arg))
        elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            low, _high, body = arg
            out.append(_build(body) * max(low, 0))
        elif name == "SUBPATTERN":
            out.append(_build(arg[-1]))
        elif name == "BRANCH":
            out.append(_build(arg[1][0]))
        elif name == "CATEGORY":
            out.append(_CATEGORY.get(str(arg), "a"))
        elif name in ("AT", "ASSERT", "ASSERT_NOT"):
            continue
        else:
            raise ValueError(f"unsupported regex element {name}")
    return "".join(out)


def _first_in(items: Any) -> str:
    for op, arg in items:
        name = str(op)
        if name == "NEGATE":
            return "~"  # a guess; example_for_pattern checks the result
        if name == "LITERAL":
            return chr(arg)
        if name == "RANGE":
            return chr(arg[0])
        if name == "CATEGORY":
            return _CATEGORY.get(str(arg), "a")
    return "a"


def example_for_pattern(pattern: str) -> str | None:
    """The shortest string ``pattern`` matches (None when it cannot tell).

    >>> example_for_pattern("^o-[0-9a-f]{8}$"), example_for_pattern("^SKU-\\\\d{4}$")
    ('o-00000000', 'SKU-0000')
    """
    try:
        candidate = _build(sre_parse.parse(pattern))
    except (ValueError, re.error, TypeError, IndexError):
        return None
    return candidate if re.search(pattern, candidate) else None


def _example(prop: PropertySpec) -> Any:
    if prop.enum:
        return prop.enum[0]
    if prop.type == "string":
        if prop.pattern:
            found = example_for_pattern(prop.pattern)
            if found is not None:
                return found
        return _FORMAT_EXAMPLES.get(prop.format or "", f"example {prop.name}")
    if prop.type in ("integer", "number"):
        low = prop.minimum if prop.minimum is not None else 0
        value: float = max(low, 1)
        if prop.maximum is not None:
            value = min(value, prop.maximum)
        if prop.type == "integer":
            return int(value)
        return round(float(value) + 0.99, 2) if prop.maximum is None else float(value)
    if prop.type == "boolean":
        return True
    if prop.type == "timestamp":
        return "2026-01-31T12:00:00.000Z"
    if prop.type == "array":
        return [_example(prop.items)] if prop.items is not None else []
    return {p.name: _example(p) for p in prop.properties}


def example_properties(spec: EventSpec) -> dict[str, Any]:
    """Example properties (or traits) for ``spec``, from its schema: every property set.

    >>> from nerve.catalog import Version
    >>> example_properties(EventSpec("x", Version(1), properties=(
    ...     PropertySpec("n", "integer", minimum=3),)))
    {'n': 3}
    """
    return {p.name: _example(p) for p in spec.properties}


def example_payload(spec: EventSpec) -> dict[str, Any]:
    """A whole Segment-spec call that the catalog accepts, with ``context.event_version``."""
    field = PAYLOAD_FIELD.get(spec.type, "properties")
    call: dict[str, Any] = {"type": spec.type}
    if spec.type == "track":
        call["event"] = spec.name
    call["userId"] = "user-123"
    call[field] = example_properties(spec)
    call["context"] = {"event_version": str(spec.version)}
    call["timestamp"] = "2026-01-31T12:00:00.000Z"
    return call
