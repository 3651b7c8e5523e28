"""The catalog's lint rules: naming, metadata, privacy, enums, constraints, versions.

``lint_catalog(catalog, config)`` is pure. Each rule yields ``Finding``s with a rule id,
a severity, the file and line, and a message. ``nerve.toml`` tunes it::

    [catalog]
    naming = "snake_case"          # or "object_action" (the default), or a regex
    min_description = 20           # characters
    [catalog.rules]
    property-description = "off"   # or "warning" / "error": any rule's severity
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from nerve.catalog._catalog import Catalog
from nerve.catalog._load import GROUPS_DIR, VERSIONS_DIR, yaml_files
from nerve.catalog._model import EventSpec, PropertySpec
from nerve.errors import CatalogError, WorkspaceError, close_match

__all__ = ["FORMATS", "HANDLINGS", "RULES", "Finding", "FolderCounts", "LintConfig",
           "findings_from_error", "lint_catalog", "lint_folder", "to_junit"]

#: what the privacy stage may do with a personal or sensitive value
HANDLINGS = ("hash", "drop", "keep", "truncate")

#: every rule id with its default severity and what it checks (docs/catalog.md lists them)
RULES: dict[str, tuple[str, str]] = {
    "load": ("error", "the file loads: valid YAML, known fields, valid types"),
    "unread-file": ("error", "every YAML file under events/ is one nerve reads"),
    "no-events": ("warning", "the catalog defines at least one event (else the events "
                             "sent are quarantined as not in the catalog)"),
    "event-name": ("error", "event names follow the naming convention"),
    "property-name": ("error", "property names are snake_case"),
    "file-name": ("warning", "the file is named after the event it defines"),
    "event-description": ("error", "every event has a description of a minimum length"),
    "event-owner": ("error", "every event has an owner"),
    "event-purpose": ("error", "every event says what it is collected for"),
    "event-retention": ("error", "every event declares a retention"),
    "event-version": ("warning", "every event declares its version (the diff checks bumps)"),
    "event-trigger": ("warning", "track events say what makes the product send them"),
    "property-description": ("warning", "every property has a description"),
    "property-pii": ("error", "every property declares its PII class"),
    "pii-handling": ("error", "personal and sensitive properties declare a handling, or "
                              "nerve.toml's [privacy] policy decides it"),
    "handling-value": ("error", "handling is one of hash, drop, keep, truncate"),
    "sensitive-kept": ("warning", "sensitive values kept in clear need a second look"),
    "sensitive-not-allowed": ("warning", "a sensitive property with a handling other than "
                                         "drop is listed in [privacy] allow_sensitive (else "
                                         "it is dropped)"),
    "truncate-ip": ("warning", "handling truncate is for IP addresses (other values are "
                               "hashed)"),
    "pii-retention": ("warning", "personal data is not kept forever"),
    "unused-group": ("warning", "every property group is included by some event"),
    "enum-duplicate": ("error", "no duplicate enum values"),
    "enum-type": ("error", "enum values match the property type"),
    "enum-single": ("warning", "an enum with one value is a constant"),
    "constraint-type": ("error", "minimum/maximum on numbers, pattern on strings"),
    "constraint-range": ("error", "minimum is not above maximum"),
    "array-items": ("warning", "arrays declare their item type"),
    "format-known": ("error", "format is one the validator checks (email, uri, date, ...)"),
    "pattern-anchored": ("warning", "patterns are anchored with ^ and $ (else they match "
                                    "anywhere in the value)"),
    "event-duplicate": ("error", "one live file per event in events/ (older versions go in "
                                 "events/versions/)"),
    "version-order": ("error", "versions in events/versions/ are older than the live file"),
    "version-file-name": ("warning", "versions/ files are named <event>.v<version>.yaml"),
}

_NAMINGS = {
    # object_action: at least two snake_case words (product_viewed, add_to_cart)
    "object_action": r"[a-z][a-z0-9]*(_[a-z0-9]+)+",
    "snake_case": r"[a-z][a-z0-9]*(_[a-z0-9]+)*",
}
_SNAKE = re.compile(_NAMINGS["snake_case"])


def _snake_case(name: str) -> str:
    """``durationSeconds``, ``Ride Started``, ``userID`` as ``duration_seconds``,
    ``ride_started``, ``user_id``: the name a naming finding suggests."""
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    text = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", text)
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()


#: events that Segment-spec SDKs and integrations send under these names themselves (the
#: mobile lifecycle, push and deep-link events, A/B tools' exposures): no naming
#: convention of the workspace can rename them, so ``event-name`` accepts them as they are
SDK_EVENT_NAMES = frozenset({
    "Application Installed", "Application Opened", "Application Updated",
    "Application Backgrounded", "Application Foregrounded", "Application Crashed",
    "Application Uninstalled", "Install Attributed", "Deep Link Opened", "Deep Link Clicked",
    "Push Notification Received", "Push Notification Tapped", "Push Notification Bounced",
    "Experiment Viewed",
})
#: JSON Schema 2020-12 formats that jsonschema-rs validates; others would pass anything
FORMATS = ("date", "date-time", "duration", "email", "hostname", "idn-email",
           "idn-hostname", "ipv4", "ipv6", "iri", "iri-reference", "json-pointer",
           "regex", "relative-json-pointer", "time", "uri", "uri-reference", "uri-template",
           "uuid")
#: property names that hold an IP address (ip, client_ip, ip_address)
_IP_NAME = re.compile(r"(?:^|_)ip(?:_|$)|ip_?address", re.IGNORECASE)
_VERSION_FILE = re.compile(r"(?P<name>.+)\.v(?P<version>\d+(?:\.\d+){0,2})")
_ENUM_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,),
    "timestamp": (str,),
}


@dataclass(frozen=True, slots=True)
class Finding:
    """One lint finding: which rule, how bad, where, and what to do."""

    rule: str
    severity: str
    message: str
    file: str | None = None
    line: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "severity": self.severity, "file": self.file,
                "line": self.line, "message": self.message}


@dataclass(frozen=True, slots=True)
class LintConfig:
    """The ``[catalog]`` section of nerve.toml."""

    naming: str = "object_action"
    min_description: int = 20
    severities: Mapping[str, str] | None = None
    #: ``[privacy] allow_sensitive`` (``event.property`` entries); None: not known
    allow_sensitive: frozenset[str] | None = None
    #: ``[privacy] personal``: what ingest does with a personal value without a
    #: handling of its own (hash, drop, keep); None: not known
    personal: str | None = None

    @classmethod
    def from_toml(cls, raw: Mapping[str, Any], path: Path | str = "nerve.toml",
                  line_of: Callable[[str, str | None], int | None] | None = None
                  ) -> LintConfig:
        """Read ``[catalog]`` (already parsed); errors name the file, the line where
        ``line_of(section, key)`` (``Workspace.line_of``) finds it, and the field."""

        def at(section: str, key: str | None) -> str:
            line = line_of(section, key) if line_of else None
            if line is None and line_of and section == "catalog.rules":
                line = line_of("catalog", "rules")  # an inline table: rules = {...}
            return f"{path}:{line}: " if line else f"{path}: "

        section = raw.get("catalog") or {}
        if not isinstance(section, dict):
            raise WorkspaceError(f"{at('catalog', None)}[catalog]: must be a table")
        naming = str(section.get("naming", "object_action"))
        try:
            re.compile(_NAMINGS.get(naming, naming))
        except re.error as exc:
            raise WorkspaceError(f"{at('catalog', 'naming')}[catalog] naming: not a regex "
                                 f"({exc})") from exc
        min_description = section.get("min_description", 20)
        if not isinstance(min_description, int) or isinstance(min_description, bool):
            raise WorkspaceError(f"{at('catalog', 'min_description')}[catalog] "
                                 "min_description: expected a whole number")
        rules = section.get("rules") or {}
        if not isinstance(rules, dict):
            raise WorkspaceError(f"{at('catalog', 'rules')}[catalog] rules: expected a table "
                                 f"of rule = severity ([catalog.rules]), got {rules!r}")
        for rule, severity in rules.items():
            if rule not in RULES:
                close = difflib.get_close_matches(rule, list(RULES), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise WorkspaceError(f"{at('catalog.rules', rule)}[catalog.rules] {rule}: "
                                     f"unknown rule{hint} (known: {', '.join(sorted(RULES))})")
            if severity not in ("error", "warning", "off"):
                close = difflib.get_close_matches(str(severity), ["error", "warning", "off"],
                                                  n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise WorkspaceError(f"{at('catalog.rules', rule)}[catalog.rules] {rule}: "
                                     f"expected error, warning or off, got {severity!r}{hint}")
        privacy = raw.get("privacy")
        if not isinstance(privacy, dict):
            privacy = {}
        allowed = privacy.get("allow_sensitive") or []
        return cls(naming=naming, min_description=min_description, severities=dict(rules),
                   allow_sensitive=frozenset(str(entry) for entry in allowed),
                   personal=str(privacy.get("personal", "hash")))

    @property
    def name_regex(self) -> re.Pattern[str]:
        return re.compile(_NAMINGS.get(self.naming, self.naming))


def _loc(file: Path | str | None) -> str | None:
    return str(file) if file is not None else None


def findings_from_error(error: CatalogError) -> list[Finding]:
    """Load errors as ``load`` findings, so CI reports them like any other rule."""
    return [Finding("load", "error", text, _loc(where.file), where.line)
            for where, text in error.problems]


@dataclass(frozen=True, slots=True)
class FolderCounts:
    """How many files lint read, and how many of them did not load.

    >>> str(FolderCounts(event_files=4, events_failed=1))
    '4 event files, 1 could not be loaded'
    """

    #: events/*.yaml and events/versions/*.yaml
    event_files: int
    events_failed: int = 0
    #: events/groups/*.yaml
    group_files: int = 0
    groups_failed: int = 0

    def __str__(self) -> str:
        text = _files(self.event_files, "event", self.events_failed)
        if self.groups_failed:
            text += "; " + _files(self.group_files, "group", self.groups_failed)
        return text


def _files(count: int, kind: str, failed: int) -> str:
    text = f"{count} {kind} file{'' if count == 1 else 's'}"
    return text + (f", {failed} could not be loaded" if failed else "")


def lint_folder(events_dir: Path, config: LintConfig | None = None
                ) -> tuple[list[Finding], FolderCounts]:
    """Findings for an events folder, and how many files it has and how many did not load.

    A file that does not load is a ``load`` finding; every other file is still linted, so
    CI sees all the problems in one run. ``unused-group`` needs every event's ``include``,
    so it is not reported while some file does not load.
    """
    catalog, problems = Catalog.load_partial(events_dir)
    findings = lint_catalog(catalog, config)
    if problems:
        load = findings_from_error(CatalogError(problems))
        findings = [*load, *(f for f in findings if f.rule != "unused-group")]
    # a file did not load when it has a load problem, or is not in the catalog (an event
    # whose group's pattern does not compile: the problem names the group's file)
    named = {Path(where.file) for where, _ in problems}
    loaded = {spec.file for spec in _all_specs(catalog)} | \
        {group.file for group in catalog.groups.values()}
    event_files = [*yaml_files(events_dir), *yaml_files(events_dir / VERSIONS_DIR)]
    group_files = yaml_files(events_dir / GROUPS_DIR)
    severity = ((config or LintConfig()).severities or {}).get("unread-file", "error")
    if severity != "off":
        findings.extend(Finding("unread-file", severity, _UNREAD, str(path), None)
                        for path in _unread_files(events_dir, {*event_files, *group_files}))
    severity = ((config or LintConfig()).severities or {}).get("no-events", "warning")
    if not event_files and severity != "off":
        findings.append(Finding("no-events", severity, _NO_EVENTS, str(events_dir), None))
    findings.sort(key=lambda f: (f.file or "", f.line or 0, f.rule))
    return findings, FolderCounts(
        event_files=len(event_files),
        events_failed=sum(p in named or p not in loaded for p in event_files),
        group_files=len(group_files),
        groups_failed=sum(p in named or p not in loaded for p in group_files))


_UNREAD = (f"nerve does not read this file: events are read from events/*.yaml and "
           f"events/{VERSIONS_DIR}/, property groups from events/{GROUPS_DIR}/ (move it "
           "there, or out of events/)")

_NO_EVENTS = ("no event files: the catalog defines no event, so the events sent are "
              "quarantined as not in the catalog (add events/<name>.yaml: docs/catalog.md)")


def _unread_files(events_dir: Path, read: set[Path]) -> list[Path]:
    """YAML files under ``events_dir`` that the catalog does not load (another subfolder)."""
    return sorted(path for path in events_dir.rglob("*")
                  if path.suffix in (".yaml", ".yml") and path.is_file() and path not in read)


def lint_catalog(catalog: Catalog, config: LintConfig | None = None) -> list[Finding]:
    """Every finding for a loaded catalog, sorted by file and line.

    >>> from nerve.catalog import EventSpec, Version
    >>> [f.rule for f in lint_catalog(Catalog.from_specs([EventSpec("Signup", Version(1))]))
    ...  if f.rule == "event-name"]
    ['event-name']
    """
    config = config or LintConfig()
    severities = config.severities or {}
    found: list[Finding] = []
    for name in catalog.names():
        versions = catalog.versions(name)
        for spec in versions:
            found.extend(_event_rules(spec, config))
        found.extend(_version_rules(versions))
    used = {g for spec in _all_specs(catalog) for g in spec.groups}
    found.extend(Finding("unused-group", "warning",
                         f"property group {group.name!r} is included by no event",
                         _loc(group.file), group.line)
                 for group in catalog.groups.values() if group.name not in used)
    result = []
    seen: set[tuple[str, str | None, int | None, str]] = set()
    for finding in found:
        severity = severities.get(finding.rule, finding.severity)
        if severity == "off":
            continue
        key = (finding.rule, finding.file, finding.line, finding.message)
        if key in seen:  # a group's property is reported once, not once per event
            continue
        seen.add(key)
        result.append(replace(finding, severity=severity))
    result.sort(key=lambda f: (f.file or "", f.line or 0, f.rule))
    return result


def _all_specs(catalog: Catalog) -> Iterator[EventSpec]:
    for name in catalog.names():
        yield from catalog.versions(name)


def _event_rules(spec: EventSpec, config: LintConfig) -> Iterator[Finding]:
    file = _loc(spec.file)

    def at(rule: str, message: str, key: str = "name") -> Finding:
        return Finding(rule, RULES[rule][0], f"{spec.name}: {message}", file,
                       spec.lines.get(key) or spec.lines.get("name"))

    meant: str | None = None
    if (spec.type == "track" and spec.name not in SDK_EVENT_NAMES
            and not config.name_regex.fullmatch(spec.name)):
        convention = config.naming if config.naming in _NAMINGS else "configured"
        meant = _snake_case(spec.name)
        if not config.name_regex.fullmatch(meant):
            meant = None
        hint = f"; rename it {meant}" if meant else ""
        yield at("event-name", f"name does not follow the {convention} naming convention "
                               f"(nerve.toml [catalog] naming){hint}")
    # a misnamed event's file is named after the name event-name says to give it
    if spec.file is not None and spec.file.parent.name != VERSIONS_DIR \
            and spec.file.stem not in (spec.name, meant):
        yield at("file-name", f"defined in {spec.file.name}; name the file "
                              f"{meant or spec.name}.yaml")
    if not spec.description.strip():
        yield at("event-description", "add a description: what happened, in the user's words")
    elif len(spec.description.strip()) < config.min_description:
        yield Finding("event-description", "warning",
                      f"{spec.name}: description is shorter than {config.min_description} "
                      "characters", file, spec.lines.get("description"))
    if not spec.owner.strip():
        yield at("event-owner", "add an owner: the team to ask about it")
    if not spec.purpose.strip():
        yield at("event-purpose", "add a purpose: what the data is collected for")
    if "retention" not in spec.lines:
        yield at("event-retention", "add a retention such as 400d, 2y or forever")
    if "version" not in spec.lines:
        yield at("event-version", "add version: 1.0.0; `nerve catalog diff` checks its bumps")
    if spec.type == "track" and not spec.trigger.strip():
        yield at("event-trigger", "add a trigger: what makes the product send it")
    for prop in spec.properties:
        yield from _property_rules(spec, prop, prop.name, config)


def _property_rules(spec: EventSpec, prop: PropertySpec, path: str,
                    config: LintConfig, owner: str | None = None) -> Iterator[Finding]:
    """The property rules for ``prop`` at ``path``; ``owner`` is the array's name when
    ``prop`` is an array's items (the privacy step matches those by the array's name)."""
    file = _loc(prop.file or spec.file)
    allowed = config.allow_sensitive

    def at(rule: str, message: str, key: str | None = None, severity: str | None = None
           ) -> Finding:
        line = prop.lines.get(key) if key else None
        return Finding(rule, severity or RULES[rule][0], f"{spec.name}.{path}: {message}",
                       file, line or prop.line)

    is_items = owner is not None
    if not is_items and not _SNAKE.fullmatch(prop.name):
        meant = _snake_case(prop.name)
        hint = f"; rename it {meant}" if _SNAKE.fullmatch(meant) else ""
        yield at("property-name", f"property names are snake_case{hint}")
    if not is_items and not prop.description.strip():
        yield at("property-description", "add a description")
    if not is_items and "pii" not in prop.lines:
        yield at("property-pii", "declare pii: none, pseudonymous, personal or sensitive")
    if prop.handling is not None and prop.handling not in HANDLINGS:
        close = close_match(str(prop.handling), HANDLINGS)
        hint = f"; did you mean {close!r}?" if close else ""
        yield at("handling-value", f"handling {prop.handling!r} is not one of "
                                   f"{', '.join(HANDLINGS)}{hint}", "handling")
    # the privacy step matches a nested property by its own name, items by the array's
    entry = f"{spec.name}.{owner or prop.name}"
    if prop.pii in ("personal", "sensitive") and prop.handling is None:
        yield _without_handling(prop, entry, config, at)
    if (prop.handling == "truncate" and prop.format not in ("ipv4", "ipv6")
            and not _IP_NAME.search(prop.name)):
        yield at("truncate-ip", "truncate shortens IP addresses to their /24 or /48; any "
                                "other value is hashed: declare format: ipv4 or ipv6, or "
                                "handling: hash", "handling")
    if (prop.pii == "sensitive" and prop.handling not in (None, "drop")
            and allowed is not None and entry not in allowed):
        yield at("sensitive-not-allowed", f"sensitive value dropped: handling: "
                                          f"{prop.handling} applies only to a property "
                                          f"listed in nerve.toml's [privacy] allow_sensitive; "
                                          f"add {entry!r} there to keep it, or write "
                                          f"handling: drop", "handling")
    elif prop.pii == "sensitive" and prop.handling == "keep":
        yield at("sensitive-kept", "sensitive value kept in clear; prefer hash or drop",
                 "handling")
    if prop.pii in ("personal", "sensitive") and prop.handling != "drop" \
            and spec.retention_days is None:
        yield at("pii-retention", f"{prop.pii} data kept forever (retention: forever); set "
                                  "a retention such as 400d or 2y", "pii")
    yield from _enum_rules(prop, at)
    numeric = prop.type in ("integer", "number")
    for key in ("minimum", "maximum"):
        if getattr(prop, key) is not None and not numeric:
            yield at("constraint-type", f"{key} applies to numbers, not {prop.type}", key)
    if prop.pattern is not None and prop.type != "string":
        yield at("constraint-type", f"pattern applies to strings, not {prop.type}", "pattern")
    if prop.format is not None and prop.format not in FORMATS:
        close = close_match(str(prop.format), FORMATS)
        hint = f"did you mean {close!r}? " if close else ""
        yield at("format-known", f"format {prop.format!r} is not checked by the validator; "
                                 f"{hint}use one of {', '.join(FORMATS)} or a pattern",
                 "format")
    if prop.pattern is not None and not (prop.pattern.startswith("^")
                                         and prop.pattern.endswith("$")):
        yield at("pattern-anchored", f"pattern {prop.pattern!r} matches anywhere in the "
                                     "value; anchor it: ^...$", "pattern")
    if prop.minimum is not None and prop.maximum is not None and prop.minimum > prop.maximum:
        yield at("constraint-range", f"minimum {prop.minimum} is above maximum {prop.maximum}",
                 "minimum")
    if prop.type == "array" and prop.items is None:
        yield at("array-items", "declare items: {type: ...}")
    if prop.items is not None:
        yield from _property_rules(spec, prop.items, f"{path}.items", config,
                                   owner or prop.name)
    for child in prop.properties:
        yield from _property_rules(spec, child, f"{path}.{child.name}", config)


#: what ingest does with a value by the policy, in a finding's words
_DONE = {"hash": "hashed", "drop": "dropped", "keep": "kept as sent"}


def _without_handling(prop: PropertySpec, entry: str, config: LintConfig,
                      at: Callable[..., Finding]) -> Finding:
    """``pii-handling`` for a personal or sensitive property without a handling: an error
    when the policy is not known (``lint_catalog`` without nerve.toml); otherwise what
    ingest does with it, as the policy decides. A hashed or dropped value is reported at
    severity ``off`` (``[catalog.rules] pii-handling = "error"`` asks for every handling
    to be written), a value kept as sent as a warning."""
    needs = f"{prop.pii} data needs handling: {' | '.join(HANDLINGS)}"
    if prop.pii == "personal" and config.personal in _DONE:
        done = _DONE[config.personal]
        return at("pii-handling", f"no handling: [privacy] personal = "
                                  f"\"{config.personal}\" applies ({done}); write handling: "
                                  f"{config.personal} to say so here", "pii",
                  "warning" if config.personal == "keep" else "off")
    if prop.pii == "sensitive" and config.allow_sensitive is not None:
        if entry not in config.allow_sensitive:
            return at("pii-handling", "no handling: dropped, as [privacy] allow_sensitive "
                                      "does not list it; write handling: drop to say so here",
                      "pii", "off")
        return at("pii-handling", "no handling: kept as sent, as [privacy] allow_sensitive "
                                  "lists it; write handling: keep to say so here, or hash",
                  "pii", "warning")
    return at("pii-handling", needs, "pii")


def _yaml(value: Any) -> str:
    """A value as the YAML wrote it: ``true``, ``null`` (not Python's True, None)."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    return repr(value)


def _enum_rules(prop: PropertySpec, at: Any) -> Iterator[Finding]:
    if prop.enum is None:
        return
    seen: list[Any] = []
    for value in prop.enum:
        if any(value == other and type(value) is type(other) for other in seen):
            yield at("enum-duplicate", f"enum value {_yaml(value)} is listed twice", "enum")
        seen.append(value)
    allowed = _ENUM_TYPES.get(prop.type)
    if allowed is not None:
        wrong = [v for v in prop.enum if not isinstance(v, allowed)
                 or (isinstance(v, bool) and prop.type != "boolean")]
        if wrong:
            hint = ("; quote them (YAML reads yes, no, on, off unquoted as booleans, and "
                    "digits as numbers)" if prop.type == "string" else "")
            yield at("enum-type", f"enum values [{', '.join(map(_yaml, wrong))}] are not "
                                  f"{prop.type}{hint}", "enum")
    if len(prop.enum) == 1:
        yield at("enum-single", "an enum with one value; is it a constant?", "enum")


def _version_rules(versions: list[EventSpec]) -> Iterator[Finding]:
    live = [s for s in versions if s.file is None or s.file.parent.name != VERSIONS_DIR]
    latest_live = max((s.version for s in live), default=None)
    # two files in events/ naming one event: most often a copy for a new event that kept
    # the old name, so the new event is not in the catalog and the old one got a version
    files = [s for s in live if s.file is not None]
    if len(files) > 1:
        # the file named after the event stays (else the newest); the others are flagged
        kept = max(files, key=lambda s: (s.file is not None and s.file.stem == s.name,
                                          s.version))
        other = kept.file.name if kept.file is not None else ""
        for spec in files:
            if spec is not kept:
                yield Finding(
                    "event-duplicate", "error",
                    f"{spec.name} {spec.version}: events/{other} defines {spec.name} too; "
                    f"events/ holds one file per event: give a new event a name of its own, or "
                    f"move an older version to events/{VERSIONS_DIR}/"
                    f"{spec.name}.v{spec.version.major}.yaml", str(spec.file),
                    spec.lines.get("name"))
    for spec in versions:
        if spec.file is None or spec.file.parent.name != VERSIONS_DIR:
            continue
        line = spec.lines.get("version")
        if latest_live is not None and spec.version >= latest_live:
            yield Finding("version-order", "error",
                          f"{spec.name}: {spec.version} in {VERSIONS_DIR}/ is not older than "
                          f"the live file's {latest_live}", str(spec.file), line)
        match = _VERSION_FILE.fullmatch(spec.file.stem)
        expected = f"{spec.name}.v{spec.version.major}"
        if match is None or match["name"] != spec.name or \
                _major(match["version"]) != spec.version.major:
            yield Finding("version-file-name", "warning",
                          f"{spec.name} {spec.version}: name the file {expected}.yaml",
                          str(spec.file), line)


def _major(text: str) -> int:
    return int(text.split(".", maxsplit=1)[0])


def to_junit(findings: list[Finding], files: list[str]) -> str:
    """JUnit XML for CI: one test case per catalog file, failing when it has an error.

    Warnings go to the case's ``system-out`` so they show without failing the build.
    """
    by_file: dict[str, list[Finding]] = {f: [] for f in files}
    for finding in findings:
        by_file.setdefault(finding.file or "nerve.toml", []).append(finding)
    errors = sum(1 for items in by_file.values() if any(f.severity == "error" for f in items))
    suite = ET.Element("testsuite", name="nerve catalog lint", tests=str(len(by_file)),
                       failures=str(errors), errors="0", skipped="0")
    for file, items in sorted(by_file.items()):
        case = ET.SubElement(suite, "testcase", classname="nerve.catalog", name=file)
        bad = [f for f in items if f.severity == "error"]
        if bad:
            failure = ET.SubElement(case, "failure", type="lint",
                                    message=f"{len(bad)} error(s): {bad[0].message}")
            failure.text = "\n".join(_line_text(f) for f in bad)
        warnings = [f for f in items if f.severity != "error"]
        if warnings:
            out = ET.SubElement(case, "system-out")
            out.text = "\n".join(_line_text(f) for f in warnings)
    suites = ET.Element("testsuites")
    suites.append(suite)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suites, "unicode") + "\n"


def _line_text(finding: Finding) -> str:
    where = f"{finding.file}:{finding.line}" if finding.line else str(finding.file)
    return f"{where}: {finding.severity} [{finding.rule}] {finding.message}"
