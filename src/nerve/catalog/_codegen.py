"""Typed tracking code from the catalog: Python over nerve.sdk, TypeScript over analytics.js.

The generated code makes a misspelt event, a missing required property, a wrong type or
an unknown enum value a type-checker error (mypy --strict, tsc --strict) instead of a
quarantined event, and stamps ``context.event_version`` so the collector validates each
event against the version the code was written for. Only track events get functions.
"""

from __future__ import annotations

import json
import keyword
import re
from typing import Any

from nerve.catalog._catalog import Catalog
from nerve.catalog._model import EventSpec, PropertySpec

__all__ = ["generate", "generate_python", "generate_typescript", "python_name", "track_specs"]

#: the generated functions' own keyword arguments: a property named like one gets a
#: trailing underscore (``timestamp_``), as do Python keywords (``class_``)
_RESERVED_ARGS = {"client", "user_id", "anonymous_id", "context", "properties", "timestamp",
                  "message_id"}
_PY_TYPES = {"string": "str", "integer": "int", "number": "float", "boolean": "bool",
             "timestamp": "datetime | str", "object": "dict[str, Any]"}
_TS_TYPES = {"string": "string", "integer": "number", "number": "number",
             "boolean": "boolean", "timestamp": "string | Date",
             "object": "Record<string, unknown>"}


def generate(catalog: Catalog, lang: str) -> str:
    """Source code for ``lang`` (``python`` or ``typescript``)."""
    if lang == "python":
        return generate_python(catalog)
    if lang == "typescript":
        return generate_typescript(catalog)
    raise ValueError(f"unknown language {lang!r}: python or typescript")


def track_specs(catalog: Catalog) -> list[EventSpec]:
    """The events that get a function: every track event. A deprecated one's is marked
    so (apps still sending it keep building during its deprecation window, and are told)."""
    return [s for s in catalog if s.type == "track"]


def _deprecation(spec: EventSpec) -> str:
    return (f"{spec.name} is deprecated in the catalog (version {spec.version}): stop "
            "sending it; it will be removed")


def python_name(name: str) -> str:
    """A Python identifier for an event or property name: ``Order Completed`` ->
    ``order_completed``.

    >>> python_name("Order Completed"), python_name("class"), python_name("3d_view")
    ('order_completed', 'class_', '_3d_view')
    """
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)
    text = re.sub(r"\W+", "_", text).strip("_").lower() or "event"
    if text[0].isdigit():
        text = "_" + text
    if keyword.iskeyword(text):
        text += "_"
    return text


def _doc(text: str) -> str:
    """Text safe inside a triple-quoted docstring."""
    return text.replace("\\", "\\\\").replace('"""', r"\"\"\"").strip()


# ---------------------------------------------------------------------------------- Python


def _py_literal(values: tuple[Any, ...]) -> str | None:
    if not all(isinstance(v, str | int) for v in values):  # Literal cannot hold floats
        return None
    return "Literal[" + ", ".join(repr(v) for v in values) + "]"


def _py_class_name(*names: str) -> str:
    """A PascalCase class name from a path of names: (order_completed, items) ->
    ``OrderCompletedItems``."""
    words = [w for name in names for w in python_name(name).split("_") if w]
    text = "".join(w[:1].upper() + w[1:] for w in words)
    return "_" + text if text[:1].isdigit() else text


class _TypedDicts:
    """The TypedDicts of the nested objects of a module, in the order they are defined.

    Each object property with declared properties (also as an array's items) gets a class
    named after its path (``OrderCompletedShipping``, ``OrderCompletedItemsItem``), so a
    misspelt or missing nested key is a type error as it is in TypeScript.
    """

    def __init__(self, taken: set[str]) -> None:
        self.taken = taken
        self.names: list[str] = []
        self.sources: list[str] = []

    def type_of(self, prop: PropertySpec, path: tuple[str, ...]) -> str:
        """The annotation of ``prop`` found at ``path`` (event name, then property names)."""
        if prop.enum is not None:
            literal = _py_literal(prop.enum)
            if literal is not None:
                return literal
        if prop.type == "array":
            if prop.items is None:
                return "list[Any]"
            return f"list[{self.type_of(prop.items, (*path, 'item'))}]"
        if prop.type == "object" and prop.properties:
            return self._define(prop.properties, path)
        return _PY_TYPES[prop.type]

    def _define(self, props: tuple[PropertySpec, ...], path: tuple[str, ...]) -> str:
        name = _unique(_py_class_name(*path), self.taken)
        fields = []
        for prop in props:  # nested classes first: each is defined before its use
            annotation = self.type_of(prop, (*path, prop.name))
            fields.append((prop, f"Required[{annotation}]" if prop.required else annotation))
        # a key named like a type (datetime, another class) would shadow it in a class body
        if all(p.name.isidentifier() and not keyword.iskeyword(p.name)
               and p.name not in self.taken for p in props):
            lines = [f"class {name}(TypedDict, total=False):"]
            for prop, annotation in fields:
                if prop.description:
                    lines.append(f"    #: {' '.join(prop.description.split())}")
                lines.append(f"    {prop.name}: {annotation}")
        else:  # keys that are not identifiers need the functional form
            lines = [f"{name} = TypedDict({json.dumps(name)}, {{",
                     *(f"    {json.dumps(p.name)}: {a}," for p, a in fields),
                     "}, total=False)"]
        self.names.append(name)
        self.sources.append("\n\n" + "\n".join(lines) + "\n")
        return name


_PY_HEADER = '''\
"""Typed tracking functions for the {project} catalog.

Generated by `nerve catalog codegen --lang python` from events/*.yaml. Do not edit by
hand: change the catalog and generate again. Each function sends one track event through
a nerve.sdk Client (or any client with the same ``track`` signature) and sets
``context.event_version`` to the catalog version it was generated from; ``timestamp``
and ``message_id``, when given, go to ``track`` as they are (backfills, idempotent resends);
each returns what ``track`` returns, the event's message id.
"""

from __future__ import annotations
{imports}
from datetime import UTC, date, datetime
from typing import {typing_names}

__all__ = {all_names!r}


class TrackClient(Protocol):
    """What the functions need from a client: nerve.sdk.Client's ``track``."""

    def track(
        self,
        event: str,
        properties: dict[str, Any],
        *,
        user_id: str | None,
        anonymous_id: str | None,
        context: dict[str, Any] | None,
        timestamp: datetime | date | str | None = None,
        message_id: str | None = None,
    ) -> str | None: ...


def _value(value: Any) -> Any:
    """JSON-ready: a datetime as RFC 3339 text, a naive one taken as UTC (as nerve.sdk does)."""
    if isinstance(value, datetime):
        return (value if value.utcoffset() is not None else value.replace(tzinfo=UTC)
                ).isoformat()
    if isinstance(value, list):
        return [_value(item) for item in value]
    if isinstance(value, dict):
        return {{key: _value(item) for key, item in value.items()}}
    return value


def _context(context: dict[str, Any] | None, version: str) -> dict[str, Any]:
    return {{**(context or {{}}), "event_version": version}}


def _options(timestamp: datetime | date | str | None, message_id: str | None
             ) -> dict[str, Any]:
    """The call's timestamp and message_id, only those given (passed to ``track`` as is)."""
    options: dict[str, Any] = {{}}
    if timestamp is not None:
        options["timestamp"] = timestamp
    if message_id is not None:
        options["message_id"] = message_id
    return options
'''


def generate_python(catalog: Catalog, project: str = "nerve") -> str:
    """A Python module with one typed function per track event.

    >>> from nerve.catalog import EventSpec, Version
    >>> "def signup_completed(" in generate_python(
    ...     Catalog.from_specs([EventSpec("signup_completed", Version(1))]))
    True
    """
    specs = track_specs(catalog)
    taken = {"TrackClient", "Any", "Literal", "Protocol", "Required", "TypedDict", "UTC",
             "date", "datetime", "annotations", "_value", "_context", "_options"}
    names = ["TrackClient"]
    functions = []
    typed_dicts = _TypedDicts(taken)
    for spec in specs:
        # two events can map to one name (``Add To Cart``, ``add_to_cart``): number them
        name = _unique(python_name(spec.name), taken)
        names.append(name)
        functions.append(_py_function(spec, name, typed_dicts))
    body = "".join(typed_dicts.sources) + "".join(functions)
    used = {"Literal": "Literal[" in body, "Required": "Required[" in body,
            "TypedDict": bool(typed_dicts.names)}
    typing_names = ", ".join(["Any", *(n for n in sorted(used) if used[n]), "Protocol"])
    # a deprecated event's function warns when called
    imports = "\nimport warnings\n" if any(s.status == "deprecated" for s in specs) else ""
    return _PY_HEADER.format(project=project, all_names=names + typed_dicts.names,
                             typing_names=typing_names, imports=imports) + body


def _unique(name: str, taken: set[str]) -> str:
    candidate, number = name, 2
    while candidate in taken:
        candidate = f"{name.rstrip('_')}_{number}"
        number += 1
    taken.add(candidate)
    return candidate


def _py_function(spec: EventSpec, function_name: str, typed_dicts: _TypedDicts) -> str:
    props = sorted(spec.properties, key=lambda p: not p.required)  # required first
    # keyword names: snake_case, never a reserved argument, never twice (userId, user_id)
    taken = set(_RESERVED_ARGS)
    arg_names = {}
    for prop in props:
        name = python_name(prop.name)
        arg_names[id(prop)] = _unique(name + "_" if name in _RESERVED_ARGS else name, taken)

    def _arg_name(prop: PropertySpec) -> str:
        return arg_names[id(prop)]

    args = ["    client: TrackClient,", "    *,"]
    for prop in props:
        default = "" if prop.required else " | None = None"
        annotation = typed_dicts.type_of(prop, (spec.name, prop.name))
        args.append(f"    {_arg_name(prop)}: {annotation}{default},")
    args += ["    user_id: str | None = None,", "    anonymous_id: str | None = None,",
             "    context: dict[str, Any] | None = None,",
             "    timestamp: datetime | date | str | None = None,",
             "    message_id: str | None = None,"]
    doc = [f'    """{_doc(spec.description) or spec.name}', ""]
    if spec.trigger:
        doc.append(f"    Sent when: {_doc(spec.trigger)}")
    doc.append(f"    Event ``{spec.name}`` version {spec.version}; owner {spec.owner or '-'}.")
    deprecated = spec.status == "deprecated"
    if deprecated:
        doc += ["", f"    Deprecated: {_doc(_deprecation(spec))}."]
    doc += ["", "    Args:"]
    for prop in props:
        extra = " (required)" if prop.required else ""
        text = _doc(prop.description) or prop.type
        doc.append(f"        {_arg_name(prop)}: {text}{extra}")
    doc += ["        timestamp: when it happened, for a backfill (a naive datetime is UTC); "
            "default now.",
            "        message_id: the event's id; the same id sent again lands once "
            "(default a new one).",
            "",
            "    Returns:",
            "        the message id, as the client's ``track`` returns it (nerve.sdk: None "
            "when it refused the call)."]
    doc.append('    """')
    body = [f"    warnings.warn({json.dumps(_deprecation(spec))}, DeprecationWarning, "
            "stacklevel=2)"] if deprecated else []
    body += ["    properties: dict[str, Any] = {"]
    body += [f"        {json.dumps(p.name)}: _value({_arg_name(p)})," for p in props
             if p.required]
    body.append("    }")
    for prop in props:
        if not prop.required:
            arg = _arg_name(prop)
            body += [f"    if {arg} is not None:",
                     f"        properties[{json.dumps(prop.name)}] = _value({arg})"]
    body += [f"    return client.track({json.dumps(spec.name)}, properties, user_id=user_id,",
             "                        anonymous_id=anonymous_id,",
             f"                        context=_context(context, {json.dumps(str(spec.version))}),",
             "                        **_options(timestamp, message_id))"]
    lines = ["", "", f"def {function_name}(", *args, ") -> str | None:", *doc, *body]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------ TypeScript


#: words a strict-mode TypeScript module cannot name a function with
_TS_RESERVED = frozenset({
    "arguments", "await", "break", "case", "catch", "class", "const", "continue", "debugger",
    "default", "delete", "do", "else", "enum", "eval", "export", "extends", "false", "finally",
    "for", "function", "if", "implements", "import", "in", "instanceof", "interface", "let",
    "new", "null", "package", "private", "protected", "public", "return", "static", "super",
    "switch", "this", "throw", "true", "try", "typeof", "var", "void", "while", "with",
    "yield"})


def _ts_name(name: str) -> str:
    """``add_to_cart`` -> ``addToCart``; ``class`` -> ``class_``."""
    parts = [p for p in re.split(r"[\W_]+", python_name(name)) if p]  # letters of any script
    text = parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:]) if parts else "event"
    text = "_" + text if text[0].isdigit() else text
    return text + "_" if text in _TS_RESERVED else text


def _ts_key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z_$][\w$]*", name) else json.dumps(name)


def _ts_type(prop: PropertySpec, indent: str) -> str:
    if prop.enum is not None:
        return " | ".join(json.dumps(v) for v in prop.enum)
    if prop.type == "array":
        inner = _ts_type(prop.items, indent) if prop.items is not None else "unknown"
        return f"Array<{inner}>"
    if prop.type == "object" and prop.properties:
        return "{\n" + _ts_members(prop.properties, indent + "  ") + indent + "}"
    return _TS_TYPES[prop.type]


def _comment(text: str) -> str:
    """Text safe inside a /** */ comment."""
    return text.replace("*/", "*\\/").strip()


def _ts_members(props: tuple[PropertySpec, ...], indent: str) -> str:
    out = []
    for prop in props:
        if prop.description:
            out.append(f"{indent}/** {_comment(prop.description)} */")
        optional = "" if prop.required else "?"
        out.append(f"{indent}{_ts_key(prop.name)}{optional}: {_ts_type(prop, indent)};")
    return "\n".join(out) + "\n"


_TS_HEADER = """\
// Typed tracking functions for the catalog, generated by
// `nerve catalog codegen --lang typescript` from events/*.yaml. Do not edit by hand.
// Each function calls analytics.js' track (or any object with the same method) and sets
// context.event_version to the catalog version it was generated from.

export interface AnalyticsLike {
  track(event: string, properties?: object, options?: object): unknown;
}

export interface TrackOptions {
  context?: Record<string, unknown>;
  [option: string]: unknown;
}

function withVersion(options: TrackOptions | undefined, version: string): TrackOptions {
  return { ...options, context: { ...options?.context, event_version: version } };
}
"""


def generate_typescript(catalog: Catalog) -> str:
    """A TypeScript module: a properties interface and a function per track event."""
    parts = [_TS_HEADER]
    taken = {"AnalyticsLike", "TrackOptions", "withVersion"}
    for spec in track_specs(catalog):
        # two events can map to one name (``Add To Cart``, ``add_to_cart``): number them
        fn = _unique(_ts_name(spec.name), taken)
        iface = fn[:1].upper() + fn[1:] + "Properties"
        doc = _comment(spec.description or spec.name)
        parts.append(f"\n/** Properties of `{spec.name}` version {spec.version}. */\n"
                     f"export interface {iface} {{\n{_ts_members(spec.properties, '  ')}}}\n")
        trigger = f"\n * Sent when: {_comment(spec.trigger)}" if spec.trigger else ""
        if spec.status == "deprecated":  # editors strike the calls through
            trigger += f"\n * @deprecated {_comment(_deprecation(spec))}."
        optional = "" if any(p.required for p in spec.properties) else "?"
        parts.append(
            f"\n/**\n * {doc}{trigger}\n * Owner: {spec.owner or '-'}.\n */\n"
            f"export function {fn}(analytics: AnalyticsLike, properties{optional}: {iface}, "
            f"options?: TrackOptions): unknown {{\n"
            f"  return analytics.track({json.dumps(spec.name)}, properties ?? {{}}, "
            f"withVersion(options, {json.dumps(str(spec.version))}));\n}}\n")
    return "".join(parts)
