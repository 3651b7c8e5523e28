"""checks.yaml against the catalog: every event and property it names must exist.

A misspelt name is not a data problem: ``events: {playlst_created: ...}`` would tune
nothing, ``natural_key: [properties.playlist_idd]`` would be null on every row (so the
check finds no key and says nothing), and ``preceded_by: song_playd`` would fail the
sequence check on perfect data. They are reported as configuration errors instead, each
with its line in checks.yaml.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from nerve.catalog import PAYLOAD_FIELD, Catalog, EventSpec, PropertySpec
from nerve.errors import did_you_mean

__all__ = ["Problem", "did_you_mean", "line_of", "reference_problems"]

#: (line, field, problem); line is None when the YAML did not say
Problem = tuple[int | None, str, str]

_SEGMENT = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def line_of(raw: Any, where: str) -> int | None:
    """The line of the deepest key of ``where`` (``sequences[0].within``) found in ``raw``.

    ``raw`` comes from the catalog's line-tracking loader (mappings are ``LineDict``). Keys
    may hold dots (``expected_values: {properties.provider: ...}``), so each step takes the
    longest run of segments that is a key.
    """
    parts = [m.group(1) if m.group(1) is not None else int(m.group(2))
             for m in _SEGMENT.finditer(where)]
    node, line = raw, getattr(raw, "line", None)
    i = 0
    while i < len(parts):
        part = parts[i]
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                break
            node = node[part]
            line = getattr(node, "line", line)
            i += 1
            continue
        if not isinstance(node, dict):
            break
        for j in range(len(parts), i, -1):
            chunk = parts[i:j]
            if all(isinstance(p, str) for p in chunk) and ".".join(map(str, chunk)) in node:
                key = ".".join(map(str, chunk))
                line = getattr(node, "lines", {}).get(key, line)
                node, i = node[key], j
                break
        else:
            break
    return line


def reference_problems(raw: dict[str, Any], catalog: Catalog) -> list[Problem]:
    """Every name in checks.yaml (already parsed) that the catalog does not have.

    Parts of the wrong shape are skipped: the layout check reports them.
    """
    problems: list[Problem] = []
    events = _of(raw.get("events"), dict)
    for name, given in events.items():
        where = f"events.{name}"
        if name not in catalog:
            problems.append((line_of(raw, where), where, _unknown_event(str(name), catalog)))
            continue
        spec = _of(given, dict)
        for i, path in enumerate(_of(spec.get("natural_key"), list)):
            problem = _path_problem(str(path), catalog.versions(name))
            if problem:
                problems.append((line_of(raw, f"{where}.natural_key"),
                                 f"{where}.natural_key[{i}]", problem))
        for path in _of(spec.get("expected_values"), dict):
            problem = _path_problem(str(path), catalog.versions(name))
            if problem:
                field = f"{where}.expected_values.{path}"
                problems.append((line_of(raw, field), field, problem))
    for name, given in _of(raw.get("dimensions"), dict).items():
        for path in [given] if isinstance(given, str) else _of(given, list):
            problem = _personal_dimension(str(path), catalog)
            if problem:
                where = f"dimensions.{name}"
                problems.append((line_of(raw, where), where, problem))
    for i, item in enumerate(_of(raw.get("sequences"), list)):
        problems.extend(_names(raw, f"sequences[{i}]", item, ("event", "preceded_by"), catalog))
    for i, item in enumerate(_of(raw.get("rates"), list)):
        problems.extend(_names(raw, f"rates[{i}]", item, ("numerator", "denominator"), catalog))
    return problems


def _of(value: Any, kind: type) -> Any:
    """``value`` when it is a ``kind`` (dict or list), else an empty one."""
    return value if isinstance(value, kind) else kind()


def _names(raw: dict[str, Any], where: str, item: Any, keys: Iterable[str],
           catalog: Catalog) -> list[Problem]:
    item = _of(item, dict)
    return [(line_of(raw, f"{where}.{key}"), f"{where}.{key}",
             _unknown_event(str(item[key]), catalog))
            for key in keys if key in item and str(item[key]) not in catalog]


def _unknown_event(name: str, catalog: Catalog) -> str:
    return f"{name!r} is not a cataloged event{did_you_mean(name, catalog.names())}"


def _path_problem(path: str, versions: list[EventSpec]) -> str | None:
    """Why ``path`` names nothing in any version of the event, or None when it is fine.

    A path is an envelope column (``user_id``), ``context.ANYTHING`` (not cataloged), or
    the event's payload (``properties.`` or ``traits.`` for identify and group) followed
    by a cataloged property, nested into cataloged object properties.
    """
    from nerve.warehouse import EVENT_COLUMNS, JSON_COLUMNS  # noqa: PLC0415 - Arrow when used

    head, _, rest = path.partition(".")
    payload = {PAYLOAD_FIELD.get(spec.type, "properties") for spec in versions}
    if head not in EVENT_COLUMNS:
        columns = ", ".join(c for c in EVENT_COLUMNS if c not in JSON_COLUMNS)
        return (f"{path!r}: expected {' or '.join(sorted(payload))}.NAME, context.PATH or "
                f"an envelope field ({columns})")
    if not rest or head not in JSON_COLUMNS or head == "context":
        return None
    if head not in payload:
        return (f"{path!r}: this event carries its fields in {' or '.join(sorted(payload))}, "
                f"not {head}")
    if any(spec.additional_properties for spec in versions):
        return None  # uncataloged properties are allowed: any name may be there
    names = rest.split(".")
    options: list[tuple[PropertySpec, ...]] = [spec.properties for spec in versions]
    for depth, name in enumerate(names):
        found = [p for props in options for p in props if p.name == name]
        if not found:
            known = {p.name for props in options for p in props}
            prefix = ".".join([head, *names[:depth]])
            return (f"{path!r}: {prefix} has no cataloged property {name!r}"
                    f"{did_you_mean(name, known)}")
        if any(p.type != "object" or not p.properties for p in found):
            return None  # a scalar, array or free-form object: nothing deeper to check
        options = [p.properties for p in found]
    return None


#: envelope fields that identify a person (a reader's view masks them)
_IDS = ("user_id", "anonymous_id", "previous_id")


def _personal_dimension(path: str, catalog: Catalog) -> str | None:
    """Why a key dimension may not read ``path``, or None: a value a reader's view masks.

    The checks write a key dimension's values into their results (``platform = ios`` has
    disappeared), which readers read as stored, alerts send to webhooks, and ``nerve
    forget`` does not reach: an e-mail or a diagnosis there would escape all three.
    """
    reason = masked_reason(path, catalog)
    if reason is None:
        return None
    return (f"{path!r} is {reason}, masked in a reader's view: a key dimension's values are "
            "written into the checks' results (check_results, which readers read as "
            "stored, and webhook alerts), where nerve forget does not reach them; break "
            "down by a value that is not personal")


def masked_reason(path: str, catalog: Catalog) -> str | None:
    """What the value at ``path`` is when a reader's view masks it (``a person's id``,
    ``identify.country (pii: personal)``), else None."""
    from nerve.warehouse._masking import MaskedFields  # noqa: PLC0415 - Arrow when used

    head, _, rest = path.partition(".")
    reason: str | None = None
    if head in _IDS:
        reason = "a person's id"
    elif head == "context" and not rest.startswith("traits."):
        how = MaskedFields(catalog).how("context", tuple(rest.split(".")))
        if how in (MaskedFields.HASH, MaskedFields.DROP):
            reason = "personal data (an IP address, a device's id or name, a precise location)"
    elif head in ("properties", "traits", "context"):
        payload, names = (("traits", rest.split(".")[1:]) if head == "context"
                          else (head, rest.split(".")))
        reason = _classed(payload, names, catalog)
    return reason


def _classed(payload: str, names: list[str], catalog: Catalog) -> str | None:
    """``appointment_booked.email (pii: personal)`` when a version of a cataloged event
    classes the property at ``names`` (or an object holding it) personal or sensitive."""
    for spec in catalog:
        for version in catalog.versions(spec.name):
            if PAYLOAD_FIELD.get(version.type, "properties") != payload:
                continue
            props: tuple[PropertySpec, ...] = version.properties
            for depth, name in enumerate(names):
                prop = next((p for p in props if p.name == name), None)
                if prop is None:
                    break
                if prop.pii in ("personal", "sensitive"):
                    dotted = ".".join(names[:depth + 1])
                    return f"{spec.name}.{dotted} (pii: {prop.pii})"
                props = prop.properties
    return None
