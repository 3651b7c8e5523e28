"""Validation of one message's payload against its catalog entry, the declared version or
the latest, with the compiled validator's fast path first."""

from __future__ import annotations

from typing import Any

import orjson

from nerve.catalog import PAYLOAD_FIELD, Catalog, EventSpec

__all__ = ["Validator"]

#: (schema_version, violations as JSON text or None)
Verdict = tuple[str | None, str | None]

_UNVALIDATED: Verdict = (None, None)


def _violation(path: str, rule: str, message: str) -> dict[str, Any]:
    return {"path": path, "rule": rule, "message": message, "file": None, "line": None}


class Validator:
    """Judges messages against a catalog; spec lookups are cached per (type, event, version).

    >>> from nerve.catalog import EventSpec, Version
    >>> v = Validator(Catalog.from_specs([EventSpec(name="signup", version=Version(1))]))
    >>> v.judge("track", "signup", {}, None)
    ('1.0.0', None)
    >>> v.judge("track", "nope", {}, None)[1][:40]
    '[{"path":"$.event","rule":"unknown_event'
    """

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._specs: dict[tuple[str, str | None, str | None], EventSpec | Verdict] = {}

    def _lookup(self, type_: str, event: str | None, version: str | None) -> EventSpec | Verdict:
        """The spec to validate against, or the verdict when there is none to use."""
        key = (type_, event, version)
        found = self._specs.get(key)
        if found is None:
            found = self._resolve(type_, event, version)
            if len(self._specs) < 100_000:  # unknown event names are client-controlled
                self._specs[key] = found
        return found

    def _resolve(self, type_: str, event: str | None, version: str | None) -> EventSpec | Verdict:
        if type_ == "track":
            name = event or ""
            if name not in self.catalog:
                return (None, _dumps([_violation(
                    "$.event", "unknown_event",
                    f"{name!r} is not in the catalog: add it to events/, or fix the name")]))
        elif type_ in PAYLOAD_FIELD and type_ in self.catalog:
            name = type_
        else:
            return _UNVALIDATED  # alias, or a call type the catalog does not describe
        if version is None:
            spec = self.catalog.get(name)
        else:
            try:
                spec = self.catalog.get(name, version)
            except ValueError as exc:
                return (None, _dumps([_violation("$.context.event_version", "invalid_version",
                                                 f"{name}: {exc}")]))
            if spec is None:
                known = ", ".join(str(s.version) for s in self.catalog.versions(name))
                return (None, _dumps([_violation(
                    "$.context.event_version", "unknown_version",
                    f"{name}: version {version} is not in the catalog (known: {known})")]))
        assert spec is not None  # name is in the catalog
        return spec

    def judge(self, type_: str, event: str | None, payload: Any,
              version: str | None) -> Verdict:
        """``(schema_version, violations_json)`` for one message's properties or traits.

        ``schema_version`` is the catalog version that judged it (None when none did);
        ``violations_json`` is None when the message is valid.
        """
        found = self._lookup(type_, event, version)
        if not isinstance(found, EventSpec):
            return found
        version_text = str(found.version)
        if self.catalog.is_valid(found, payload):
            return (version_text, None)
        problems = [v.as_dict() for v in self.catalog.violations(found, payload)]
        return (version_text, _dumps(problems))


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()
