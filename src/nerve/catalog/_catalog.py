"""The compiled catalog: the one source of truth every stage reads."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import jsonschema_rs

from nerve.catalog._load import (
    GROUPS_DIR,
    VERSIONS_DIR,
    load_event,
    load_group,
    shown_path,
    yaml_files,
)
from nerve.catalog._model import INT64_RANGE, EventSpec, PropertyGroup, PropertySpec, Version
from nerve.errors import CatalogError, Location

__all__ = ["Catalog", "Violation"]


@dataclass(frozen=True, slots=True)
class Violation:
    """Why an event failed validation: where in the event, which rule, and which catalog line."""

    path: str
    rule: str
    message: str
    file: str | None = None
    line: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "rule": self.rule, "message": self.message,
                "file": self.file, "line": self.line}


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


#: where each call type keeps the data its catalog entry describes
PAYLOAD_FIELD = {"track": "properties", "page": "properties", "screen": "properties",
                 "identify": "traits", "group": "traits"}


class Catalog:
    """Every cataloged event, each version, compiled to JSON Schema validators.

    >>> cat = Catalog.from_specs([EventSpec(name="signup", version=Version(1))])
    >>> cat.get("signup").version
    Version(major=1, minor=0, patch=0)
    """

    def __init__(self, specs: list[EventSpec], groups: Mapping[str, PropertyGroup] | None = None,
                 root: Path | None = None) -> None:
        by_name: dict[str, dict[Version, EventSpec]] = {}
        for spec in specs:
            by_name.setdefault(spec.name, {})[spec.version] = spec
        self._versions = {name: dict(sorted(v.items())) for name, v in sorted(by_name.items())}
        self.groups: Mapping[str, PropertyGroup] = MappingProxyType(dict(groups or {}))
        self.root = root
        self._validators: dict[tuple[str, Version], Any] = {}
        self._explainers: dict[tuple[str, Version], _Explainer] = {}

    @classmethod
    def from_specs(cls, specs: list[EventSpec]) -> Catalog:
        return cls(specs)

    def __reduce__(self) -> tuple[type[Catalog], tuple[Any, ...]]:
        # pickled as what it was made of (a server hands its catalog to a worker process
        # it restarts); the compiled validators are made again on first use
        specs = [spec for versions in self._versions.values() for spec in versions.values()]
        return Catalog, (specs, dict(self.groups), self.root)

    @classmethod
    def load(cls, events_dir: Path | str) -> Catalog:
        """Load ``events/*.yaml``, older versions in ``events/versions/``, and property
        groups in ``events/groups/``.

        Raises CatalogError listing every problem with its file and line.
        """
        catalog, problems = cls.load_partial(events_dir)
        if problems:
            raise CatalogError(problems)
        return catalog

    @classmethod
    def load_partial(cls, events_dir: Path | str
                     ) -> tuple[Catalog, list[tuple[Location, str]]]:
        """What :meth:`load` reads, keeping every file that loads and compiles, and the
        problems of the others (for lint: one broken file must not hide the rest's findings).

        An event that includes a group that did not load is itself a problem, so what is
        kept never depends on a file that was left out.
        """
        events_dir = Path(events_dir)
        problems: list[tuple[Location, str]] = []
        groups: dict[str, PropertyGroup] = {}
        for path in yaml_files(events_dir / GROUPS_DIR):
            group = load_group(path, problems)
            if group is None:
                continue
            if group.name in groups:
                elsewhere = shown_path(groups[group.name].file, events_dir.parent)
                problems.append((Location(path, 1), f"property group {group.name!r} is also "
                                                    f"defined in {elsewhere}"))
            groups[group.name] = group
        seen: dict[tuple[str, Version], EventSpec] = {}
        for path in [*yaml_files(events_dir), *yaml_files(events_dir / VERSIONS_DIR)]:
            spec = load_event(path, groups, problems, events_dir.parent)
            if spec is None:
                continue
            key = (spec.name, spec.version)
            other = seen.get(key)
            if other is None:
                seen[key] = spec
                continue
            if path.stem == spec.name and other.file is not None \
                    and other.file.stem != spec.name and other.file.parent == path.parent:
                # the file named after the event keeps it; the other is most often a copy
                # made for a new event that kept the old name
                seen[key], spec = spec, other
            problems.append(_duplicate(spec, seen[key], events_dir))
        specs = list(seen.values())
        # compile every validator now, so a bad pattern fails at load, not at first event
        validators: dict[tuple[str, Version], Any] = {}
        for spec in specs:
            try:
                validators[(spec.name, spec.version)] = jsonschema_rs.Draft202012Validator(
                    spec.json_schema(), validate_formats=True)
            except ValueError as exc:
                problems.extend(p for p in _compile_problems(spec, exc) if p not in problems)
        catalog = cls([s for s in specs if (s.name, s.version) in validators], groups,
                      root=events_dir)
        catalog._validators.update(validators)
        return catalog, problems

    # lookups ------------------------------------------------------------------------------

    def __contains__(self, name: object) -> bool:
        return name in self._versions

    def __iter__(self) -> Iterator[EventSpec]:
        """The latest version of every event, by name."""
        for versions in self._versions.values():
            yield next(reversed(versions.values()))

    def __len__(self) -> int:
        return len(self._versions)

    def names(self) -> list[str]:
        return list(self._versions)

    def versions(self, name: str) -> list[EventSpec]:
        """Every version of an event, oldest first."""
        return list(self._versions.get(name, {}).values())

    def get(self, name: str, version: Version | str | int | None = None) -> EventSpec | None:
        """The given version of an event, or its latest; None when not cataloged.

        A version given as a bare major (``2``) picks the latest ``2.x.y``. A version given
        as text that the catalog no longer has (``1.0.0``, which a client generated before
        a minor or patch bump declares) picks the latest ``1.x.y`` above it: a bump within
        a major accepts what the versions before it did (``nerve catalog diff`` holds it
        to that). A ``Version`` object is looked up exactly.

        >>> cat = Catalog.from_specs([EventSpec("signup", Version(1, 0, 1)),
        ...                           EventSpec("signup", Version(1, 1)),
        ...                           EventSpec("signup", Version(2))])
        >>> [str(cat.get("signup", v).version) for v in ("1", "1.0.0", "1.0.1", "1.0.2")]
        ['1.1.0', '1.1.0', '1.0.1', '1.1.0']
        >>> cat.get("signup", "1.2.0") is None, cat.get("signup", Version(1)) is None
        (True, True)
        """
        versions = self._versions.get(name)
        if not versions:
            return None
        if version is None:
            return next(reversed(versions.values()))
        if isinstance(version, Version):
            return versions.get(version)
        text = str(version)
        wanted = Version.parse(text)
        exact = "." in text or "-" in text
        if exact and wanted in versions:
            return versions[wanted]
        same_major = [v for v in versions if v.major == wanted.major and
                      (not exact or v > wanted)]
        return versions[same_major[-1]] if same_major else None

    def for_call(self, type_: str, event: str | None) -> EventSpec | None:
        """The entry describing a message: a track event by name; other calls by their type."""
        if type_ == "track":
            return self.get(event) if event else None
        return self.get(type_) if type_ in PAYLOAD_FIELD else None

    # validation ---------------------------------------------------------------------------

    def compile_all(self) -> None:
        """Compile every validator now (so a bad pattern fails at load, not at first event)."""
        problems: list[tuple[Location, str]] = []
        for versions in self._versions.values():
            for spec in versions.values():
                try:
                    self._validator(spec)
                except ValueError as exc:
                    problems.extend(p for p in _compile_problems(spec, exc)
                                    if p not in problems)
        if problems:
            raise CatalogError(problems)

    def _validator(self, spec: EventSpec) -> Any:
        key = (spec.name, spec.version)
        validator = self._validators.get(key)
        if validator is None:
            validator = jsonschema_rs.Draft202012Validator(spec.json_schema(),
                                                           validate_formats=True)
            self._validators[key] = validator
        return validator

    def is_valid(self, spec: EventSpec, payload: Any) -> bool:
        return bool(self._validator(spec).is_valid(payload))

    def validity_check(self, spec: EventSpec) -> Callable[[Any], bool]:
        """``spec``'s compiled ``is_valid``, for callers that judge many payloads against
        one spec (the lookup by name and version costs more than a small payload)."""
        check: Callable[[Any], bool] = self._validator(spec).is_valid
        return check

    def explainer(self, spec: EventSpec) -> Callable[[Any], list[dict[str, Any]]]:
        """``spec``'s explanation of a payload: every violation as ``Violation.as_dict()``
        (empty when valid), for callers that explain many payloads against one spec; what
        each violation's file, line and message prefix are is worked out once per spec."""
        key = (spec.name, spec.version)
        found = self._explainers.get(key)
        if found is None or found.spec is not spec:
            found = self._explainers[key] = _Explainer(spec, self._validator(spec))
        return found

    def violations(self, spec: EventSpec, payload: Any) -> list[Violation]:
        """Every way ``payload`` (properties or traits) breaks ``spec``; empty when valid."""
        if self._validator(spec).is_valid(payload):
            return []
        return [Violation(**problem) for problem in self.explainer(spec)(payload)]


def _duplicate(spec: EventSpec, kept: EventSpec, events_dir: Path
               ) -> tuple[Location, str]:
    """Why ``spec`` is left out: ``kept`` defines the same event and version."""
    file = spec.file or Path(spec.name)
    where = str(kept.file)
    if kept.file is not None and kept.file.is_relative_to(events_dir.parent):
        where = kept.file.relative_to(events_dir.parent).as_posix()
    if file.parent.name == VERSIONS_DIR:
        advice = (f"a version kept in {VERSIONS_DIR}/ is older than the live file: set "
                  "the version it had")
    elif file.stem != spec.name:
        advice = (f"if this file is meant for a new event, give it a name of its own "
                  f"(name: {file.stem})")
    else:
        advice = "remove one of them, or give the other its own name or version"
    field = "version" if file.parent.name == VERSIONS_DIR else "name"
    return (Location(file, spec.lines.get(field, 1)),
            f"{spec.name} version {spec.version} is also defined in {where}: {advice}")


def _compile_problems(spec: EventSpec, exc: ValueError) -> list[tuple[Location, str]]:
    """Why ``spec``'s schema does not compile, at the file and line of each bad pattern.

    jsonschema-rs stops at the first bad pattern and names it by schema path, so each
    property's pattern is tried on its own; a failure that is not a pattern (none known)
    keeps the validator's own words.
    """
    found = []
    for prop, where in _walk(spec.properties, spec.name):
        reason = _regex_problem(prop.pattern) if prop.pattern is not None else None
        if reason is not None:
            file = prop.file or spec.file or spec.name
            found.append((Location(file, prop.lines.get("pattern", prop.line)),
                          f"{where}.pattern: not a valid regular expression: {reason}"))
    if found:
        return found
    first = str(exc).split("\n\n", 1)[0]
    return [(Location(spec.file or spec.name, 1), f"{spec.name}: schema does not compile: "
                                                   f"{first}")]


def _walk(props: tuple[PropertySpec, ...], prefix: str
          ) -> Iterator[tuple[PropertySpec, str]]:
    """Every property with its dotted name, nested and array items included; a group's
    properties are named by the group (one report for every event including it)."""
    for prop in props:
        where = f"{prop.group if prop.group else prefix}.{prop.name}"
        yield from _walk_one(prop, where)


def _walk_one(prop: PropertySpec, where: str) -> Iterator[tuple[PropertySpec, str]]:
    yield prop, where
    if prop.items is not None:
        yield from _walk_one(prop.items, f"{where}.items")
    for child in prop.properties:
        yield from _walk_one(child, f"{where}.{child.name}")


def _regex_problem(pattern: str) -> str | None:
    """Why the validator refuses ``pattern`` as a regex; None when it accepts it.

    jsonschema-rs decides, since its dialect (ECMA 262, with lookaround and ``\\p{L}``)
    is the one events are validated with; it only says "not a regex", so Python's ``re``
    explains the mistakes both dialects refuse (an unclosed ``[`` or ``(``, ``a{2,1}``).
    """
    try:
        jsonschema_rs.Draft202012Validator({"pattern": pattern})
    except ValueError:
        pass
    else:
        return None
    try:
        re.compile(pattern)
    except re.error as exc:
        return f"{exc.msg} at position {exc.pos}" if exc.pos is not None else exc.msg
    return "the validator's regex dialect (ECMA 262) refuses it"


#: rule name of each jsonschema-rs error kind (a class per JSON Schema keyword: a small,
#: fixed set, so the regex in ``_snake`` runs once per kind, not once per violation)
_RULES: dict[type, str] = {}

#: characters of a violation's path or message kept: the validator quotes the payload
#: (an undeclared key of 30,000 characters, 1,500 undeclared keys, an array of 3,000
#: values where a string was due), and such a message was as large as the event it
#: judged, in the quarantine and in every `nerve quarantine list` line
MAX_VIOLATION_CHARS = 500


def _cut(text: str) -> str:
    """``text``, or its first ``MAX_VIOLATION_CHARS`` characters and how many there were."""
    if len(text) <= MAX_VIOLATION_CHARS:
        return text
    return f"{text[:MAX_VIOLATION_CHARS]}... ({len(text):,} characters)"


#: at most this many allowed values in an enum violation's message, then "and N more"
ENUM_VALUES_SHOWN = 20


def _enum_message(value: Any, options: list[Any]) -> str:
    """An enum violation naming the allowed values, as a client's author needs them
    (jsonschema-rs names two and counts the rest: ``or 2 other candidates``); values are
    written as jsonschema-rs writes them in its other messages (compact JSON).

    >>> _enum_message("keto", ["omnivore", "vegan", "vegetarian"])
    '"keto" is not one of "omnivore", "vegan" or "vegetarian"'
    """
    shown = [_json(o) for o in options[:ENUM_VALUES_SHOWN]]
    rest = len(options) - len(shown)
    if rest:
        allowed = f"{', '.join(shown)} and {rest} more"
    elif len(shown) > 1:
        allowed = f"{', '.join(shown[:-1])} or {shown[-1]}"
    else:
        return f"{_json(value)} is not {''.join(shown)} (the only allowed value)"
    return f"{_json(value)} is not one of {allowed}"


def _int64_message(value: Any) -> str:
    """Why a whole number beyond 64 bits is refused. JSON's parser has already read one
    beyond unsigned 64 bits as the nearest float (2**70 as 1.1805916207174113e+21)."""
    low, high = INT64_RANGE
    return (f"{_json(value)} is outside the 64-bit integer range ({low} to {high}) that an "
            "integer is stored in; send such a value as a string (type: string) to keep its digits")


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _where(spec: EventSpec, prop: PropertySpec | None) -> tuple[str | None, int | None]:
    """The catalog file and line a violation of ``prop`` (None: of the whole payload) names."""
    line = prop.line if prop and prop.line else spec.lines.get("properties")
    file = str(prop.file if prop and prop.file else spec.file) if spec.file else None
    return file, line


def _declared(spec: EventSpec, schema_path: tuple[str | int, ...]) -> PropertySpec | None:
    """The innermost declared property (an object's key, an array's items) that a
    violation's schema path goes through and the catalog gives a line for; None for the
    payload as a whole. The schema path holds only names the catalog declares."""
    props, current, found, i = spec.properties, None, None, 0
    while i < len(schema_path):
        step = schema_path[i]
        if step == "properties" and i + 1 < len(schema_path):
            name = schema_path[i + 1]
            # the first of a name, as in ``spec.property``
            current = next((p for p in props if p.name == name), None)
            i += 2
        elif step == "items" and current is not None and current.items is not None:
            current = current.items
            i += 1
        else:
            break
        if current is None:
            break
        props = current.properties
        if current.line or found is None:
            found = current
    return found


def _path(instance_path: list[str | int]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in instance_path)


class _Explainer:
    """Explains payloads that break one spec.

    A violation names the catalog line of the innermost declared property it is about
    (``order_completed.items[0].quantity`` names the line of ``quantity`` under ``items``),
    found from its schema path; the file and line of each schema path are worked out once.
    The message names the exact place in the payload, as its JSON path does. Nothing from
    a payload is cached: schema paths hold only names the catalog declares.
    """

    __slots__ = ("_at", "_iter_errors", "_name", "_root", "spec")

    def __init__(self, spec: EventSpec, validator: Any) -> None:
        self.spec = spec
        self._iter_errors = validator.iter_errors
        self._name = spec.name
        self._root = f"$.{PAYLOAD_FIELD.get(spec.type, 'properties')}"
        self._at: dict[tuple[str | int, ...], tuple[str | None, int | None]] = {}

    def __call__(self, payload: Any) -> list[dict[str, Any]]:
        result = []
        for error in self._iter_errors(payload):
            instance_path = error.instance_path
            if not instance_path:
                path = ""
            elif len(instance_path) == 1 and instance_path[0].__class__ is str:
                path = "." + instance_path[0]
            else:
                path = _path(instance_path)
            schema_path = tuple(error.schema_path)
            at = self._at.get(schema_path)
            if at is None:
                at = self._at[schema_path] = _where(self.spec,
                                                    _declared(self.spec, schema_path))
            kind = error.kind.__class__
            rule = _RULES.get(kind)
            if rule is None:
                rule = _RULES[kind] = _snake(kind.__name__)
            if rule == "enum":
                message = _enum_message(error.instance, error.kind.options)
            elif rule in ("minimum", "maximum") and error.kind.limit in INT64_RANGE:
                message = _int64_message(error.instance)
            else:
                message = error.message
            result.append({"path": _cut(self._root + path), "rule": rule,
                           "message": _cut(f"{self._name}{path}: {message}"),
                           "file": at[0], "line": at[1]})
        return result
