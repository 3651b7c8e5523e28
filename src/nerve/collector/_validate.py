"""Validation of one message's payload against its catalog entry, the declared version or
the latest, with the compiled validator's fast path first."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import orjson

from nerve.catalog import PAYLOAD_FIELD, Catalog, EventSpec

__all__ = ["Rule", "TooDeepError", "Validator"]

#: (schema_version, violations as JSON text or None)
Verdict = tuple[str | None, str | None]


class Rule(NamedTuple):
    """How to judge messages of one (type, event, declared version).

    ``check`` is the compiled validator's yes/no (None: nothing to validate against, and
    ``verdict`` is the answer for every such message); ``problems`` is the catalog's
    explainer of ``spec``, for the few payloads that fail ``check``.
    """

    check: Callable[[Any], bool] | None
    spec: EventSpec | None
    verdict: Verdict
    problems: Callable[[Any], list[dict[str, Any]]] | None = None


def _violation(path: str, rule: str, message: str) -> dict[str, Any]:
    return {"path": path, "rule": rule, "message": message, "file": None, "line": None}


def _refuse(path: str, rule: str, message: str) -> Rule:
    return Rule(None, None, (None, _dumps([_violation(path, rule, message)])))


class TooDeepError(ValueError):
    """A payload nested too deep for the validator to explain (jsonschema-rs stops at
    ~255 levels), so too deep to store as well: the request is refused, not answered 500."""


_UNVALIDATED = Rule(None, None, (None, None))
#: unknown event names are client-controlled: bound the cache of rules
_MAX_RULES = 100_000


class Validator:
    """Judges messages against a catalog; rules are cached per (type, event, version).

    >>> from nerve.catalog import EventSpec, Version
    >>> v = Validator(Catalog.from_specs([EventSpec(name="signup", version=Version(1))]))
    >>> v.judge("track", "signup", {}, None)
    ('1.0.0', None)
    >>> v.judge("track", "nope", {}, None)[1][:40]
    '[{"path":"$.event","rule":"unknown_event'
    """

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.rules: dict[tuple[str, str | None, str | None], Rule] = {}

    def rule(self, type_: str, event: str | None, version: str | None) -> Rule:
        """The (cached) rule for messages of this type, event and declared version."""
        key = (type_, event, version)
        found = self.rules.get(key)
        if found is None:
            found = self._resolve(type_, event, version)
            if len(self.rules) < _MAX_RULES:
                self.rules[key] = found
        return found

    def _resolve(self, type_: str, event: str | None, version: str | None) -> Rule:
        if type_ == "track":
            name = event or ""
            if name not in self.catalog:
                return _refuse("$.event", "unknown_event",
                               f"{name!r} is not in the catalog: add it to events/, or fix "
                               "the name")
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
                return _refuse("$.context.event_version", "invalid_version", f"{name}: {exc}")
            if spec is None:
                known = ", ".join(str(s.version) for s in self.catalog.versions(name))
                return _refuse("$.context.event_version", "unknown_version",
                               f"{name}: version {version} is not in the catalog "
                               f"(known: {known})")
        assert spec is not None  # name is in the catalog
        # ``catalog.is_valid(spec, payload)`` looks the validator up by (name, Version) on
        # every call, and hashing the Version dataclass cost more than the validation
        check = self.catalog.validity_check(spec)
        return Rule(check, spec, (str(spec.version), None), self.catalog.explainer(spec))

    def explain(self, rule: Rule, payload: Any) -> Verdict:
        """The verdict for a payload that failed ``rule.check``: every violation, as JSON."""
        explainer = rule.problems
        if explainer is None:  # a Rule built by hand, without the explainer
            assert rule.spec is not None
            explainer = self.catalog.explainer(rule.spec)
        # ``rule.check`` said no: no second ``is_valid`` (as ``catalog.violations`` does)
        try:
            problems = explainer(payload)
        except ValueError as exc:
            if "Recursion limit" not in str(exc):
                raise
            raise TooDeepError(str(exc)) from exc
        return (rule.verdict[0], _dumps(problems) if problems else None)

    def judge(self, type_: str, event: str | None, payload: Any,
              version: str | None) -> Verdict:
        """``(schema_version, violations_json)`` for one message's properties or traits.

        ``schema_version`` is the catalog version that judged it (None when none did);
        ``violations_json`` is None when the message is valid.
        """
        rule = self.rule(type_, event, version)
        if rule.check is None or rule.check(payload):
            return rule.verdict
        return self.explain(rule, payload)


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()
