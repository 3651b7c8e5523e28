"""Compare two catalogs and say what each change needs: a major, minor or patch bump.

``diff_catalogs(old, new)`` is pure: it looks only at the two compiled catalogs. The rules
follow what breaks a producer or a loader (SchemaVer's spirit, semver's names):

- **breaking** (major): a property removed or renamed, a type changed or narrowed, a new
  required property, optional -> required, an enum value removed, a constraint tightened
  (minimum up, maximum down, a pattern or format added or changed), additional properties
  forbidden, the event's call type changed, an event removed;
- **additive** (minor): an optional property added, an event added, an enum widened, a
  constraint loosened, a type widened (integer -> number, timestamp -> string), a PII class
  or handling changed (it changes what lands in the warehouse, not who may send);
- **docs** (patch): descriptions, owner, purpose, trigger, status, retention.

Versions are paired by event: a version present on both sides is compared with itself (a
published version must not change except in its docs); a new version is compared with the
highest older version of the same event, and its bump is the difference of the two.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from nerve.catalog._catalog import Catalog
from nerve.catalog._model import EventSpec, PropertySpec, Version
from nerve.errors import close_match

__all__ = ["LEVELS", "Change", "EventVerdict", "bump_level", "check_bumps", "diff_catalogs"]

#: change levels, weakest first; each needs at least the bump of the same rank
LEVELS = ("docs", "additive", "breaking")
_BUMP_FOR = {"docs": "patch", "additive": "minor", "breaking": "major"}
_BUMP_RANK = {"none": 0, "patch": 1, "minor": 2, "major": 3}

#: type changes that accept every value the old type accepted
_WIDENINGS = {("integer", "number"), ("timestamp", "string")}
_DOC_FIELDS = ("description", "owner", "purpose", "trigger", "status", "retention")


@dataclass(frozen=True, slots=True)
class Change:
    """One difference between the old and the new catalog."""

    event: str
    #: what changed, e.g. ``property_removed``, ``enum_widened``, ``description_changed``
    kind: str
    #: ``breaking``, ``additive`` or ``docs``
    level: str
    message: str
    #: the property path (``price``, ``address.city``, ``tags.items``), or None for the event
    path: str | None = None
    old_version: Version | None = None
    new_version: Version | None = None
    file: Path | None = None
    line: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"event": self.event, "kind": self.kind, "level": self.level,
                "path": self.path, "message": self.message,
                "old_version": str(self.old_version) if self.old_version else None,
                "new_version": str(self.new_version) if self.new_version else None,
                "file": str(self.file) if self.file else None, "line": self.line}


@dataclass(frozen=True, slots=True)
class EventVerdict:
    """Whether the version declared for one event's changes is enough."""

    event: str
    old_version: Version | None
    new_version: Version | None
    #: the bump the changes need: none, patch, minor or major
    required: str
    #: the bump declared: none, patch, minor, major, or ``lower`` when the version went down
    declared: str
    ok: bool
    message: str
    file: Path | None = None
    line: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"event": self.event,
                "old_version": str(self.old_version) if self.old_version else None,
                "new_version": str(self.new_version) if self.new_version else None,
                "required": self.required, "declared": self.declared, "ok": self.ok,
                "message": self.message, "file": str(self.file) if self.file else None,
                "line": self.line}


def bump_level(old: Version, new: Version) -> str:
    """The bump from ``old`` to ``new``: major, minor, patch, none, or lower.

    >>> bump_level(Version(1, 2, 0), Version(2)), bump_level(Version(1), Version(1, 0, 1))
    ('major', 'patch')
    """
    if new < old:
        return "lower"
    if new.major > old.major:
        return "major"
    if new.minor > old.minor:
        return "minor"
    if new.patch > old.patch:
        return "patch"
    return "none"


# ---------------------------------------------------------------------------------- diff


def _pairs(old: Catalog, new: Catalog, name: str) -> list[tuple[EventSpec | None,
                                                                EventSpec | None]]:
    """(old, new) spec pairs to compare for one event name."""
    olds = {s.version: s for s in old.versions(name)}
    news = {s.version: s for s in new.versions(name)}
    pairs: list[tuple[EventSpec | None, EventSpec | None]] = []
    for version, spec in news.items():
        if version in olds:
            pairs.append((olds[version], spec))
            continue
        below = [v for v in olds if v < version]
        # a version lower than every old one is compared with the newest (and fails)
        base = olds[below[-1]] if below else (olds[max(olds)] if olds else None)
        pairs.append((base, spec))
    used = {id(a) for a, _ in pairs if a is not None}
    newest_new = max(news) if news else None
    for version, spec in olds.items():
        if id(spec) in used:
            continue
        if newest_new is not None and version < newest_new and any(
                v.major == version.major for v in news):
            continue  # a newer version of its major judges its clients now
        pairs.append((spec, None))  # the event, or a major of it, is gone
    return pairs


def diff_catalogs(old: Catalog, new: Catalog) -> list[Change]:
    """Every change from ``old`` to ``new``, in event order, each with its level.

    >>> a = Catalog.from_specs([EventSpec("signup", Version(1))])
    >>> [c.kind for c in diff_catalogs(a, Catalog.from_specs([]))]
    ['event_removed']
    """
    changes: list[Change] = []
    renamed = _renamed_events(old, new)
    renamed_from = {fresh: gone for gone, fresh in renamed.items()}
    for name in sorted({*old.names(), *new.names()}):
        for before, after in _pairs(old, new, name):
            if before is not None and after is None and name in new:
                changes.append(_retired(before))
                continue
            for change in diff_events(before, after):
                hint = ""
                if change.kind == "event_removed" and name in renamed:
                    hint = f"; renamed to {renamed[name]}?"
                elif change.kind == "event_added" and name in renamed_from:
                    hint = f"; renamed from {renamed_from[name]}?"
                changes.append(replace(change, message=change.message + hint)
                               if hint else change)
    return changes


def _renamed_events(old: Catalog, new: Catalog) -> dict[str, str]:
    """Events that look renamed: each event gone from ``new`` with the event new in it
    that has the same properties (names and types) or else the closest name, as a hint
    (a removal and an addition are what the diff reports: their clients differ)."""
    gone = sorted(set(old.names()) - set(new.names()))
    added = sorted(set(new.names()) - set(old.names()))

    def shape(catalog: Catalog, name: str) -> frozenset[tuple[str, str]]:
        spec = catalog.get(name)
        return frozenset((p.name, p.type) for p in spec.properties) if spec else frozenset()

    renamed: dict[str, str] = {}
    for by_shape in (True, False):  # same properties first, then names alone
        for name in gone:
            if name in renamed:
                continue
            free = [a for a in added if a not in renamed.values()]
            if by_shape:
                free = [a for a in free
                        if shape(old, name) and shape(new, a) == shape(old, name)]
            found = close_match(name, free) or (free[0] if by_shape and free else None)
            if found is not None:
                renamed[name] = found
    return renamed


def _retired(old: EventSpec) -> Change:
    """An older major version removed while the event lives on: its clients' events are
    quarantined from now on, so it is retired as an event is removed (deprecated first)."""
    status = "deprecated" if old.status == "deprecated" else "active"
    return Change(old.name, "version_retired", "breaking",
                  f"{old.name} {old.version}: version retired ({status} in the base); "
                  f"events declaring {old.version.major}.x are quarantined as "
                  "unknown_version from now on", old_version=old.version, file=old.file,
                  line=old.lines.get("version") or old.lines.get("name"))


def diff_events(old: EventSpec | None, new: EventSpec | None) -> list[Change]:
    """The changes between two versions of one event (either may be None)."""
    if old is None and new is None:
        return []
    if old is None:
        assert new is not None
        return [Change(new.name, "event_added", "additive",
                       f"{new.name}: new event (version {new.version})",
                       new_version=new.version, file=new.file, line=new.lines.get("name"))]
    if new is None:
        status = "deprecated" if old.status == "deprecated" else "active"
        return [Change(old.name, "event_removed", "breaking",
                       f"{old.name} {old.version}: removed ({status} in the base)",
                       old_version=old.version, file=old.file, line=old.lines.get("name"))]
    out = _Collector(old, new)
    for key in _DOC_FIELDS:
        before, after = getattr(old, key), getattr(new, key)
        if before != after:
            out.add(f"{key}_changed", "docs", f"{key}: {before!r} -> {after!r}", None,
                    new.lines.get(key))
    if old.type != new.type:
        out.add("call_type_changed", "breaking", f"type: {old.type} -> {new.type}", None,
                new.lines.get("type"))
    if old.additional_properties != new.additional_properties:
        level = "additive" if new.additional_properties else "breaking"
        out.add("additional_properties_changed", level,
                f"additional_properties: {old.additional_properties} -> "
                f"{new.additional_properties}", None, new.lines.get("additional_properties"))
    _diff_property_lists(out, old.properties, new.properties, "", new.lines.get("properties"))
    if not out.changes and old.version != new.version:
        # the number alone moved: still a change, so a version that went down is judged
        # (its clients, declaring the higher one, would be quarantined as unknown_version)
        out.add("version_changed", "docs", f"version: {old.version} -> {new.version}, "
                "nothing else changed", None, new.lines.get("version"))
    return out.changes


class _Collector:
    """Accumulates the changes of one event pair, stamping names, versions and files."""

    def __init__(self, old: EventSpec, new: EventSpec) -> None:
        self.old, self.new = old, new
        self.changes: list[Change] = []

    def add(self, kind: str, level: str, detail: str, path: str | None, line: int | None,
            file: Path | None = None) -> None:
        where = f"{self.new.name}.{path}" if path else self.new.name
        self.changes.append(Change(
            self.new.name, kind, level, f"{where}: {detail}", path,
            self.old.version, self.new.version, file or self.new.file,
            line or self.new.lines.get("version")))


def _diff_property_lists(out: _Collector, old: tuple[PropertySpec, ...],
                         new: tuple[PropertySpec, ...], prefix: str,
                         parent_line: int | None) -> None:
    before = {p.name: p for p in old}
    after = {p.name: p for p in new}
    removed = [before[n] for n in before if n not in after]
    added = [after[n] for n in after if n not in before]
    # a removal and an addition of the same type and description is a rename
    renamed: dict[str, PropertySpec] = {}
    for gone in removed:
        for fresh in added:
            taken = any(fresh is other for other in renamed.values())
            if (not taken and fresh.description and fresh.type == gone.type
                    and fresh.description == gone.description):
                renamed[gone.name] = fresh
                break
    renamed_to = {id(p) for p in renamed.values()}
    for gone in removed:
        path = prefix + gone.name
        if gone.name in renamed:
            fresh = renamed[gone.name]
            out.add("property_renamed", "breaking", f"renamed to {fresh.name!r}", path,
                    fresh.line, fresh.file)
        elif gone.line is not None and out.old.file is not None:
            # the new file has no line of it: the finding points at the old file's
            out.add("property_removed", "breaking",
                    f"removed (it was at {out.old.file}:{gone.line})", path, gone.line,
                    out.old.file)
        else:
            out.add("property_removed", "breaking", "removed", path, parent_line)
    for fresh in added:
        if id(fresh) in renamed_to:
            continue
        path = prefix + fresh.name
        if fresh.required:
            out.add("required_property_added", "breaking", "new required property", path,
                    fresh.line, fresh.file)
        else:
            out.add("property_added", "additive", f"new optional {fresh.type} property", path,
                    fresh.line, fresh.file)
    for name, prop in after.items():
        if name in before:
            _diff_property(out, before[name], prop, prefix + name)


def _diff_property(out: _Collector, old: PropertySpec, new: PropertySpec, path: str) -> None:
    def line(key: str) -> int | None:
        return new.lines.get(key) or new.line

    def add(kind: str, level: str, detail: str, key: str) -> None:
        out.add(kind, level, detail, path, line(key), new.file)

    if old.type != new.type:
        widened = (old.type, new.type) in _WIDENINGS
        add("type_widened" if widened else "type_changed", "additive" if widened else "breaking",
            f"type {old.type} -> {new.type}", "type")
    if old.required != new.required:
        if new.required:
            add("made_required", "breaking", "optional -> required", "required")
        else:
            add("made_optional", "additive", "required -> optional", "required")
    _diff_enum(add, old.enum, new.enum)
    _diff_bound(add, "minimum", old.minimum, new.minimum, tighter=lambda a, b: b > a)
    _diff_bound(add, "maximum", old.maximum, new.maximum, tighter=lambda a, b: b < a)
    for key in ("pattern", "format"):
        before, after = getattr(old, key), getattr(new, key)
        if before == after:
            continue
        if after is None:
            add(f"{key}_removed", "additive", f"{key} {before!r} removed", key)
        else:
            add(f"{key}_changed" if before else f"{key}_added", "breaking",
                f"{key} {before!r} -> {after!r}", key)
    if old.pii != new.pii or old.handling != new.handling:
        add("privacy_changed", "additive",
            f"pii {old.pii}/{old.handling or '-'} -> {new.pii}/{new.handling or '-'}",
            "pii" if old.pii != new.pii else "handling")
    if old.description != new.description:
        add("description_changed", "docs", "description changed", "description")
    if old.group != new.group:
        moved = (f"moved into property group {new.group}" if old.group is None
                 else f"moved out of property group {old.group}" if new.group is None
                 else f"moved from property group {old.group} to {new.group}")
        add("group_changed", "docs", f"{moved}, unchanged", "description")
    if old.items is not None and new.items is not None:
        _diff_property(out, old.items, new.items, f"{path}[]")  # lines[].sku, tags[]
    elif old.items != new.items:
        level = "additive" if new.items is None else "breaking"
        add("items_changed", level, "array item schema " +
            ("removed" if new.items is None else "added"), "items")
    if old.properties or new.properties:
        _diff_property_lists(out, old.properties, new.properties, f"{path}.",
                             line("properties"))


def _diff_enum(add: Any, old: tuple[Any, ...] | None, new: tuple[Any, ...] | None) -> None:
    if old == new:
        return
    if new is None:
        add("enum_removed", "additive", "enum removed: any value accepted", "enum")
        return
    if old is None:
        add("enum_added", "breaking", f"values restricted to {list(new)}", "enum")
        return
    dropped = [v for v in old if v not in new]
    gained = [v for v in new if v not in old]
    if dropped:
        # one value out, one in: a rename, which the clients sending the old one miss
        renamed = (f" (renamed to {gained[0]!r}? clients still sending {dropped[0]!r} "
                   "fail this version)" if len(dropped) == len(gained) == 1 else "")
        add("enum_narrowed", "breaking", f"enum values removed: {dropped}{renamed}", "enum")
    if gained:
        add("enum_widened", "additive", f"enum values added: {gained}", "enum")
    if not dropped and not gained:
        add("enum_reordered", "docs", "enum values reordered", "enum")


def _diff_bound(add: Any, key: str, old: float | None, new: float | None, *,
                tighter: Any) -> None:
    if old == new:
        return
    if new is None:
        add(f"{key}_loosened", "additive", f"{key} {old} removed", key)
    elif old is None:
        add(f"{key}_tightened", "breaking", f"{key} {new} added", key)
    elif tighter(old, new):
        add(f"{key}_tightened", "breaking", f"{key} {old} -> {new}", key)
    else:
        add(f"{key}_loosened", "additive", f"{key} {old} -> {new}", key)


# ---------------------------------------------------------------------------- the verdict


def _strongest(changes: list[Change]) -> str | None:
    levels = {c.level for c in changes}
    for level in reversed(LEVELS):
        if level in levels:
            return level
    return None


def check_bumps(old: Catalog, new: Catalog, changes: list[Change]) -> list[EventVerdict]:
    """For each changed event version, whether its declared bump covers its changes.

    An event removed from the catalog passes only when the base had it ``deprecated``:
    deprecate first (a patch), remove later, so consumers get a warning in between.
    """
    verdicts: list[EventVerdict] = []
    renamed = _renamed_events(old, new)
    groups: dict[tuple[str, Version | None, Version | None], list[Change]] = {}
    for change in changes:
        groups.setdefault((change.event, change.old_version, change.new_version),
                          []).append(change)
    for (name, before, after), items in groups.items():
        first = items[0]
        if after is None:
            assert before is not None
            spec = old.get(name, before)
            ok = spec is not None and spec.status == "deprecated"
            message = (f"{name} {before}: removed after deprecation" if ok else
                       f"{name} {before}: removed while active; mark it "
                       f"`status: deprecated` first, remove it in a later change")
            if name in renamed:
                message += f" (renamed to {renamed[name]}?)"
            verdicts.append(EventVerdict(name, before, None, "major", "removed", ok, message,
                                         first.file, first.line))
            continue
        if before is None:
            verdicts.append(EventVerdict(name, None, after, "none", "new", True,
                                         f"{name} {after}: new", first.file, first.line))
            continue
        level = _strongest(items) or "docs"
        required = _BUMP_FOR[level]
        declared = bump_level(before, after)
        spec = new.get(name, after)
        file = spec.file if spec else first.file
        line = spec.lines.get("version") if spec else first.line
        ok = declared != "lower" and _BUMP_RANK[declared] >= _BUMP_RANK[required]
        kinds = sorted({c.kind for c in items if c.level == level})
        if ok:
            message = f"{name} {before} -> {after}: {declared} bump covers {level} changes"
        elif declared == "lower":
            message = f"{name}: version went down from {before} to {after}"
        elif declared == "none" and level != "docs" and _superseded(new, name, after):
            message = _frozen_message(name, before, kinds, spec, old.get(name, before),
                                      items, new.root)
        elif declared == "none" and level != "docs":
            # within a major, clients declaring the old version are judged by the new one
            keep = (" (keep the old one in events/versions/ if clients still send it)"
                    if required == "major" else "")
            message = (f"{name} {before} was changed in place ({', '.join(kinds)}); a "
                       f"published version is immutable: set version: "
                       f"{_suggest(before, required)}{keep}")
        else:
            message = (f"{name}: {level} changes ({', '.join(kinds)}) need a {required} "
                       f"bump, but the version is {before} -> {after} ({declared}); "
                       f"set version: {_suggest(before, required)}")
        verdicts.append(EventVerdict(name, before, after, required, declared, ok, message,
                                     file, line))
    return verdicts


def _superseded(catalog: Catalog, name: str, version: Version) -> bool:
    """Whether a newer version of the event exists (so this one cannot be bumped)."""
    latest = catalog.get(name)
    return latest is not None and latest.version > version


def _frozen_message(name: str, version: Version, kinds: list[str], spec: EventSpec | None,
                    base: EventSpec | None, changes: list[Change], root: Path | None) -> str:
    """Advice for an older version changed in place: a new version number cannot fix it
    (newer ones exist), so its file must describe what it described before. When the
    change came through an included property group, that means inlining the group's
    properties as they were."""
    where: Path | str = "its file"
    if spec is not None and spec.file is not None:
        where = spec.file  # events/versions/x.v1.yaml, as the rest of the output says it
        if root is not None and spec.file.is_relative_to(root.parent):
            where = spec.file.relative_to(root.parent).as_posix()
    # a group both sides include changed; one the file added to or dropped from its
    # include: is the file's own edit, which restoring the file undoes
    both = set(spec.groups if spec is not None else ()) & set(base.groups if base else ())
    groups = []
    for change in changes:
        top = (change.path or "").split(".")[0]
        for side in (spec, base):
            prop = side.property(top) if side is not None and top else None
            if prop is not None and prop.group in both and prop.group not in groups:
                groups.append(prop.group)
    text = (f"{name} {version} was changed in place ({', '.join(kinds)}); it is an older "
            f"version that newer ones supersede, so it keeps its definition")
    if not groups:
        return f"{text}: restore it in {where}"
    names = ", ".join(groups)
    return (f"{text}: it changed through property group {names}; in {where}, replace "
            f"{names} in include: with the group's properties as they were")


def _suggest(version: Version, bump: str) -> str:
    if bump == "major":
        return str(Version(version.major + 1))
    if bump == "minor":
        return str(Version(version.major, version.minor + 1))
    return str(Version(version.major, version.minor, version.patch + 1))
