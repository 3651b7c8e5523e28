"""Read events/*.yaml into EventSpecs, collecting every problem with its file and line."""

from __future__ import annotations

import difflib
from datetime import date
from pathlib import Path
from typing import Any

from nerve.catalog._model import (
    EVENT_TYPES,
    PII_CLASSES,
    PROPERTY_TYPES,
    STATUSES,
    EventSpec,
    PropertyGroup,
    PropertySpec,
    Version,
    parse_retention,
)
from nerve.catalog._yaml import LineDict, load_yaml
from nerve.errors import CatalogError, Location, close_match

GROUPS_DIR = "groups"
#: older versions of events that stay live: ``events/versions/<name>.v<N>.yaml``
VERSIONS_DIR = "versions"

_EVENT_FIELDS = {
    "name", "description", "owner", "purpose", "version", "status", "retention", "type",
    "trigger", "properties", "include", "additional_properties",
}
_PROPERTY_FIELDS = {
    "type", "required", "description", "pii", "handling", "enum", "minimum", "maximum",
    "pattern", "format", "items", "properties",
}
_GROUP_FIELDS = {"name", "description", "properties"}
#: what other schema languages call the property types (JSON Schema, Python, SQL)
_TYPE_ALIASES = {"int": "integer", "str": "string", "text": "string", "bool": "boolean",
                 "float": "number", "double": "number", "decimal": "number",
                 "datetime": "timestamp", "date": "timestamp", "list": "array",
                 "dict": "object", "map": "object"}
#: PII classes other tools (and people) write, by the nerve class they mean
_PII_ALIASES = {"public": "none", "non-pii": "none", "non_pii": "none", "nonpii": "none",
                "not_pii": "none", "private": "personal", "pii": "personal",
                "identifiable": "personal", "identifying": "personal",
                "confidential": "personal", "hashed": "pseudonymous",
                "pseudonymised": "pseudonymous", "pseudonymized": "pseudonymous",
                "special": "sensitive", "health": "sensitive", "spi": "sensitive"}


def _unknown_field(key: str, known: set[str]) -> str:
    """``unknown field; did you mean 'required'? (expected one of ...)``: the closest
    known field first, since a misspelt one (``requird: true``) is the usual cause."""
    expected = ", ".join(sorted(known))
    close = difflib.get_close_matches(key, sorted(known), n=1)
    if close:
        return f"unknown field; did you mean {close[0]!r}? (expected one of {expected})"
    return f"unknown field; expected one of {expected}"


def _not_one_of(value: Any, choices: tuple[str, ...] | list[str],
                aliases: dict[str, str] | None = None) -> str:
    """``expected one of none, ..., got 'persnal'; did you mean 'personal'?`` (``aliases``:
    other names of the choices, ``public`` for ``none``)."""
    close = (aliases or {}).get(str(value).lower()) or close_match(str(value), choices)
    hint = f"; did you mean {close!r}?" if close else ""
    if isinstance(value, bool):
        # `pii: no` is YAML's false, which the message would show as False
        hint = ("; YAML reads an unquoted yes, no, on or off as true or false"
                + (": write none" if not value and "none" in choices else ": quote it"))
    return f"expected one of {', '.join(choices)}, got {value!r}{hint}"


Problems = list[tuple[Location, str]]


def _line(mapping: Any, key: str) -> int | None:
    if isinstance(mapping, LineDict):
        return mapping.lines.get(key, mapping.line)
    return None


def _float_version(path: Path, line: int | None, value: float) -> str:
    """The version written as two parts, which YAML reads as a number: ``1.10`` is 1.1."""
    written = str(value)
    if line is not None:
        text = path.read_text(encoding="utf-8").splitlines()[line - 1]
        written = text.partition(":")[2].partition("#")[0].strip() or written
    return (f"{written} is read by YAML as the number {value!r} (so 1.10 is 1.1); write "
            f"all three parts: version: {written}.0")


def _parse_property(
    name: str, raw: Any, file: Path, line: int | None, where: str, problems: Problems
) -> PropertySpec | None:
    if not isinstance(raw, dict):
        text = f"{where}: expected a mapping with a type"
        if name in _PROPERTY_FIELDS and not isinstance(raw, list):
            # `pii: none` one level too far left reads as a property named pii
            text += (f", got {raw!r}; {name} is a field of a property: indent it under "
                     "the property it belongs to")
        problems.append((Location(file, line), text))
        return None

    def bad(key: str, text: str) -> None:
        problems.append((Location(file, _line(raw, key) or line), f"{where}.{key}: {text}"))

    for key in raw:
        if key not in _PROPERTY_FIELDS:
            bad(key, _unknown_field(key, _PROPERTY_FIELDS))
    type_ = raw.get("type")
    if type_ not in PROPERTY_TYPES:
        if "type" in raw:
            close = _TYPE_ALIASES.get(str(type_).lower()) or next(
                iter(difflib.get_close_matches(str(type_), PROPERTY_TYPES, n=1)), None)
            hint = f"; did you mean {close!r}?" if close else ""
            bad("type", f"expected one of {', '.join(PROPERTY_TYPES)}, got {type_!r}{hint}")
        else:
            bad("type", f"missing; expected one of {', '.join(PROPERTY_TYPES)}")
        return None
    pii = raw.get("pii", "none")
    if pii not in PII_CLASSES:
        bad("pii", _not_one_of(pii, PII_CLASSES, _PII_ALIASES))
    required = raw.get("required", False)
    if not isinstance(required, bool):
        bad("required", f"expected true or false, got {required!r}")
    enum = raw.get("enum")
    if enum is not None and (not isinstance(enum, list) or not enum):
        bad("enum", "expected a non-empty list of values")
        enum = None
    dates = [v for v in enum or () if isinstance(v, date)]
    if dates:  # YAML reads 2026-01-01 unquoted as a date, which no JSON value equals
        bad("enum", f"{dates[0].isoformat()} is read as a date, not a JSON value: quote it "
                    f"('{dates[0].isoformat()}')")
        enum = None
    bounds: dict[str, float | None] = {}
    for key in ("minimum", "maximum"):
        value = raw.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            bad(key, f"expected a number, got {value!r}")
            value = None
        bounds[key] = value
    for key in ("pattern", "format", "description", "handling"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            bad(key, f"expected a string, got {raw[key]!r}")
    items = None
    if "items" in raw:
        if type_ != "array":
            bad("items", "only an array has items")
        if not isinstance(raw["items"], dict):
            # `items: string`: the element type written without its mapping
            shown = raw["items"] if isinstance(raw["items"], str) else "..."
            bad("items", f"expected a mapping with a type, got {raw['items']!r}; write "
                         f"the element's fields as a property's: items: {{type: {shown}}}")
        else:
            items = _parse_property(
                "items", raw["items"], file, _line(raw, "items"), f"{where}.items", problems
            )
    nested: list[PropertySpec] = []
    if "properties" in raw:
        if type_ != "object":
            bad("properties", "only an object has nested properties")
        nested = _parse_properties(raw["properties"], file, _line(raw, "properties"), where,
                                   problems)
    return PropertySpec(
        name=name,
        type=type_,
        required=required is True,
        description=str(raw.get("description") or ""),
        pii=pii if pii in PII_CLASSES else "none",
        handling=raw.get("handling"),
        enum=tuple(enum) if enum else None,
        minimum=bounds["minimum"],
        maximum=bounds["maximum"],
        pattern=raw.get("pattern"),
        format=raw.get("format"),
        items=items,
        properties=tuple(nested),
        file=file,
        line=line,
        lines=dict(raw.lines) if isinstance(raw, LineDict) else {},
    )


def _parse_properties(
    raw: Any, file: Path, line: int | None, where: str, problems: Problems
) -> list[PropertySpec]:
    if raw is None:
        return []
    if not isinstance(raw, dict):
        text = f"{where}.properties: expected a mapping of property names to their fields"
        if isinstance(raw, list):
            first = next((e.get("name") for e in raw if isinstance(e, dict)), None)
            example = first if isinstance(first, str) and first else "quantity"
            text += (f", got a list: write each property as its name, then its fields "
                     f"indented under it ({example}: {{type: ...}}), not as a '- name:' item")
        problems.append((Location(file, line), text))
        return []
    result = []
    for name, spec in raw.items():
        prop = _parse_property(name, spec, file, _line(raw, name), f"{where}.{name}", problems)
        if prop is not None:
            result.append(prop)
    return result


def load_group(path: Path, problems: Problems) -> PropertyGroup | None:
    raw = _load_mapping(path, problems)
    if raw is None:
        return None
    name = raw.get("name") or path.stem
    for key in raw:
        if key not in _GROUP_FIELDS:
            problems.append((Location(path, _line(raw, key)),
                             f"{name}.{key}: {_unknown_field(key, _GROUP_FIELDS)}"))
    props = _parse_properties(raw.get("properties"), path, _line(raw, "properties"), name,
                              problems)
    return PropertyGroup(
        name=name,
        description=str(raw.get("description") or ""),
        properties=tuple(p.__class__(**{**_fields(p), "group": name}) for p in props),
        file=path,
        line=1,
    )


def _fields(prop: PropertySpec) -> dict[str, Any]:
    return {name: getattr(prop, name) for name in prop.__dataclass_fields__}


def _load_mapping(path: Path, problems: Problems) -> LineDict | None:
    try:
        raw = load_yaml(path)
    except CatalogError as exc:
        problems.extend(exc.problems)
        return None
    if not isinstance(raw, LineDict):
        problems.append((Location(path, 1), "expected a mapping of fields (name, properties, ...)"))
        return None
    return raw


def shown_path(path: Path | None, root: Path | None) -> str:
    """``path`` as messages name it: relative to the workspace ``root`` when inside it
    (``events/groups/product.yaml``), as the location before each message is shown."""
    if path is None:
        return "?"
    if root is not None and path.is_relative_to(root):
        return path.relative_to(root).as_posix()
    return str(path)


def load_event(
    path: Path, groups: dict[str, PropertyGroup], problems: Problems,
    root: Path | None = None,
) -> EventSpec | None:
    """The event in ``path``, or None with its problems added; ``root``, the workspace,
    is what paths named in messages are relative to."""
    raw = _load_mapping(path, problems)
    if raw is None:
        return None
    before = len(problems)
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        problems.append((Location(path, _line(raw, "name")), "name: required, the event's name"))
        name = path.stem

    def bad(key: str, text: str) -> None:
        problems.append((Location(path, _line(raw, key)), f"{name}.{key}: {text}"))

    for key in raw:
        if key not in _EVENT_FIELDS:
            bad(key, _unknown_field(key, _EVENT_FIELDS))
    try:
        version = Version.parse(raw.get("version", 1))
    except ValueError as exc:
        bad("version", str(exc))
        version = Version(1)
    if isinstance(raw.get("version"), float):
        bad("version", _float_version(path, _line(raw, "version"), raw["version"]))
    type_ = raw.get("type", "track")
    if type_ not in EVENT_TYPES:
        bad("type", _not_one_of(type_, EVENT_TYPES))
    status = raw.get("status", "active")
    if status not in STATUSES:
        bad("status", _not_one_of(status, STATUSES))
    retention = str(raw.get("retention", "forever"))
    try:
        # `retention:` with no value is YAML's null, which would read as 'None'
        retention_days = parse_retention("" if raw.get("retention", "") is None
                                         else retention)
    except ValueError as exc:
        bad("retention", str(exc).replace("got ''", "got nothing"))
        retention_days = None
    if retention_days == 0:
        bad("retention", f"{retention} keeps nothing: the daily expiry would delete every "
                         "event of it as it lands; set 1d or more")
        retention_days = None
    for key in ("description", "owner", "purpose", "trigger"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            bad(key, f"expected a string, got {raw[key]!r}")
    props = _parse_properties(raw.get("properties"), path, _line(raw, "properties"), name,
                              problems)
    include = raw.get("include") or []
    if isinstance(include, str):
        include = [include]
    if not isinstance(include, list):
        bad("include", "expected a list of property group names")
        include = []
    own = {p.name: p for p in props}
    for group_name in include:
        group = groups.get(group_name)
        if group is None:
            known = ", ".join(sorted(groups)) or "none defined in events/groups/"
            bad("include", f"unknown property group {group_name!r} (known: {known})")
            continue
        for prop in group.properties:
            if prop.name in own:
                first = own[prop.name]
                bad("include", f"property {prop.name!r} is defined both in "
                               f"{shown_path(first.file or path, root)}:{first.line} and in "
                               f"group {group_name!r} ({shown_path(prop.file or group.file, root)}"
                               f":{prop.line}); keep one")
                continue
            own[prop.name] = prop
            props.append(prop)
    additional = raw.get("additional_properties", False)
    if not isinstance(additional, bool):
        bad("additional_properties", f"expected true or false, got {additional!r}")
    if len(problems) > before:
        return None
    return EventSpec(
        name=name,
        version=version,
        type=type_,
        description=str(raw.get("description") or ""),
        owner=str(raw.get("owner") or ""),
        purpose=str(raw.get("purpose") or ""),
        status=status,
        retention=retention,
        retention_days=retention_days,
        trigger=str(raw.get("trigger") or ""),
        properties=tuple(props),
        groups=tuple(include),
        additional_properties=additional is True,
        file=path,
        lines=dict(raw.lines),
        raw=dict(raw),
    )


def yaml_files(folder: Path) -> list[Path]:
    return sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")])
