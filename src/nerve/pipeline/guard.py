"""The collector's per-message pipeline step: enrich, check consent, protect.

``Guard`` bundles the pure steps of ``enrich`` and ``privacy`` for the hot path: the
policy and the catalog's identify spec are resolved once, per-spec property tables and
the verdicts on uncataloged property names are cached, and a payload without anything to
protect is returned as is (no dict is rebuilt).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson

from nerve.catalog import Catalog, EventSpec, PropertySpec
from nerve.pipeline.enrich import WEB_SDK_NAMESPACES, context_additions, parse_user_agent
from nerve.pipeline.privacy import (
    PrivacyPolicy,
    UrlPath,
    consent_allows,
    is_pseudonym,
    protect_ip,
    protect_payload,
    protect_urls,
    protecting_spec,
    pseudonymise,
    url_fields,
    url_paths,
    url_properties,
)

__all__ = ["Guard", "Protected", "withhold_values"]

_MAX_NAMES = 50_000  # uncataloged names are client-controlled: bound their cache


#: calls whose own ``traits`` are the payload (the others may carry ``context.traits``)
_TRAIT_CALLS = frozenset({"identify", "group"})


class Protected(NamedTuple):
    """What is stored of a message after the privacy step (``Guard.message``)."""

    context: dict[str, Any]
    #: a track's, page's or screen's properties (None for the other calls)
    properties: dict[str, Any] | None
    #: an identify's or group's traits, else the user's traits from ``context.traits``
    traits: dict[str, Any] | None
    violations: str | None
    user_id: str | None
    previous_id: str | None


#: ``context.get("app", _ABSENT)``: a context without the key (an app of None is an app's)
_ABSENT = object()

class Guard:
    """Enrichment and privacy for one workspace (``[privacy]`` policy, identify spec).

    >>> guard = Guard(PrivacyPolicy(secret=b"k"))
    >>> guard.payload({"email": "a@b.c"}, None)[0]["email"][:2]
    'h:'
    """

    def __init__(self, policy: PrivacyPolicy, identify: EventSpec | None = None,
                 catalog: Catalog | None = None) -> None:
        self.policy = policy
        self.identify = identify
        # ua-parser compiles its matchers on first use (~0.5 s): pay it now, not in the
        # first request, whose client would see it as latency
        parse_user_agent("Mozilla/5.0")
        #: spec id -> property names a payload may carry with nothing to protect; None
        #: when the spec itself has personal properties (every payload needs the work)
        self._safe: dict[int, set[str] | None] = {}
        #: spec id -> names that need nothing while their value holds no keys (an
        #: uncataloged name, or an object or array property: what is in it is judged too)
        self._loose: dict[int, set[str]] = {}
        #: spec id -> the properties any version of its event declares with a URL format:
        #: the top-level names (``url_properties``) and the paths below (``url_paths``),
        #: for every version in ``catalog`` now (``url_fields``), so that the events' step
        #: only looks them up
        self._url_names: dict[int, tuple[tuple[str, ...], tuple[UrlPath, ...]]] = {}
        if catalog is not None and policy.url_query != "keep":
            for name in catalog.names():
                for spec in catalog.versions(name):
                    self._url_names[id(spec)] = url_fields(spec, catalog.versions(name))
        #: spec id -> the spec its payloads are protected by: each property as the
        #: strictest version of its event classes it (``protecting_spec``), worked out
        #: now so that an event pays one lookup; only specs some other version is
        #: stricter than. ``_specs`` keeps the ids' objects alive.
        self._protecting: dict[int, EventSpec] = {}
        self._specs: tuple[EventSpec, ...] = ()
        if catalog is not None:
            self._specs = tuple(s for name in catalog.names() for s in catalog.versions(name))
            for spec in self._specs:
                strict = protecting_spec(spec, catalog.versions(spec.name), policy)
                if strict is not spec:
                    self._protecting[id(spec)] = strict
        #: ``context.ip`` -> what the policy keeps of it (None: drop); traffic repeats IPs
        self._ips: dict[str, str | None] = {}
        #: (agent, from the header?, has os?, has device?, has a browser or is an app's?)
        #: -> what enrichment adds to such a context; traffic repeats a few agents and
        #: context shapes
        self._additions: dict[tuple[str, bool, bool, bool, bool],
                              tuple[tuple[str, Any], ...]] = {}

    def message(self, type_: str, context: dict[str, Any], payload: dict[str, Any] | None,
                spec: EventSpec | None, violations: str | None, user_id: str | None,
                previous_id: str | None, anonymous_id: str | None,
                client_ip: str | None = None, user_agent: str | None = None,
                ) -> Protected | None:
        """The privacy step of one message, after its validation: None when its consent
        does not cover it (it is not stored), else what is stored of it.

        ``payload`` is a track's, page's or screen's properties, an identify's or group's
        traits (None for an alias), ``spec`` the catalog entry that judged it and
        ``violations`` what it broke (JSON text, None when valid). The collector
        (``map_messages``) and ``nerve quarantine replay`` both call this, so an event
        loaded from the quarantine is stored exactly as the same message sent now would
        be: its context (IP, ``context.traits``, URLs), its payload and its ids. Values
        hashed already (a quarantined row's) stay as they are.
        """
        policy = self.policy
        if (policy.enforce_consent and "consent" in context
                and not consent_allows(context, spec.purpose if spec is not None else None)):
            return None
        context = self.context(context, client_ip, user_agent)
        trait_call = type_ in _TRAIT_CALLS
        if payload is not None:
            protected, changed = self.payload(payload, spec, violations is None)
            if changed and violations:
                violations = orjson.dumps(withhold_values(
                    orjson.loads(violations), payload, protected)).decode()
            payload = protected
        if policy.url_query != "keep":
            context, cleaned, violations = self.urls(type_, context, payload, violations, spec)
            payload = cleaned if payload is not None else None
        if trait_call:
            traits = payload
        else:
            context_traits = context.get("traits")
            traits = context_traits if context_traits.__class__ is dict else None
        if policy.user_id != "keep":
            hashed = self.identifier(user_id)
            if hashed is not None and (traits or context.get("traits")):
                context, traits = self._user_id_in_traits(context, traits, trait_call,
                                                          user_id, hashed)
                if trait_call:
                    payload = traits
            user_id = hashed
            # an alias from the device's own anonymous id (analytics.js, the mobile SDKs)
            # keeps it as sent, as the anonymous_id column does, so identity stitching
            # can link the device; any other is an id, hashed
            if previous_id != anonymous_id:
                previous_id = self.identifier(previous_id)
        return Protected(context, None if trait_call else payload, traits, violations,
                         user_id, previous_id)

    def _user_id_in_traits(self, context: dict[str, Any], traits: dict[str, Any] | None,
                           trait_call: bool, user_id: str | None, hashed: str
                           ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """``context.traits`` (and an identify's or group's traits) with the user's id
        stored as the ``user_id`` column has it, wherever a trait repeats it.

        analytics-android and its forks send ``{"userId": ..., "anonymousId": ...}`` in
        the traits of every call: with ``user_id = "hash"`` the raw id was stored there,
        beside its hash in the column. A replayed row's id is hashed already: a trait
        whose hash is that id is the raw id.
        """
        def same(value: Any) -> bool:
            if value.__class__ is not str:
                return False
            if user_id != hashed:
                return bool(value == user_id)
            return not is_pseudonym(value) and pseudonymise(value, self.policy.secret) == hashed

        def cleaned(found: dict[str, Any]) -> dict[str, Any]:
            if not any(map(same, found.values())):
                return found
            return {key: hashed if same(value) else value for key, value in found.items()}

        in_context = context.get("traits")
        if in_context.__class__ is dict:
            kept = cleaned(in_context)
            if kept is not in_context:
                context = {**context, "traits": kept}
            if not trait_call:
                traits = kept
        if trait_call and traits is not None:
            traits = cleaned(traits)
        return context, traits

    def context(self, context: dict[str, Any], client_ip: str | None,
                user_agent: str | None) -> dict[str, Any]:
        """``context`` enriched (UA, IP, bot) then protected (IP policy, context.traits)."""
        # equal to protect_context(enrich_context(...)) (tests/pipeline/test_guard_context
        # checks it on any input), in one flat pass over one dict copy: every event takes
        # this step, and the two functions' calls, keyword arguments and lru_cache keys
        # were half its cost
        result = dict(context)
        get = result.get
        ip = get("ip")
        if client_ip and not ip:
            ip = result["ip"] = client_ip
        agent = get("userAgent")
        if not isinstance(agent, str) or not agent:
            agent = user_agent if isinstance(user_agent, str) else None
            from_header = True
        else:
            from_header = False
        if agent is not None:
            # enrich.names_os and enrich.is_native_app inlined (no call: every mobile
            # event has both): an os without a name is none (RudderStack's browser SDK
            # sends one), and a native app's context (it has app) gets no browser
            os_ = get("os")
            app = get("app", _ABSENT)
            key = (agent[:1024], from_header,
                   bool(os_.get("name") if os_.__class__ is dict else os_),
                   bool(get("device")),
                   (app is not _ABSENT and (app.__class__ is not dict or app.get("namespace")
                                            not in WEB_SDK_NAMESPACES))
                   or bool(get("browser")))
            additions = self._additions.get(key)
            if additions is None:
                additions = context_additions(*key)
                if len(self._additions) < _MAX_NAMES:
                    self._additions[key] = additions
            if additions:
                result.update(additions)
        if isinstance(ip, str) and ip:
            try:
                kept = self._ips[ip]
            except KeyError:
                kept = protect_ip(ip, self.policy)
                if len(self._ips) < _MAX_NAMES:
                    self._ips[ip] = kept
            if kept is None:
                del result["ip"]
            else:
                result["ip"] = kept
        elif ip is not None and ip != "":  # a number or a list: never kept by mistake
            kept = protect_ip(ip, self.policy)
            if kept is None:
                del result["ip"]
            else:
                result["ip"] = kept
        traits = get("traits")
        if isinstance(traits, dict):  # never validated against identify: judged as sent
            result["traits"] = self.payload(traits, self.identify, valid=False)[0]
        return result

    def consents(self, context: dict[str, Any], spec: EventSpec | None) -> bool:
        """Whether the event may be stored under the sender's consent choices (an event
        with no catalog purpose only when they grant something: ``consent_allows``)."""
        if not self.policy.enforce_consent or "consent" not in context:
            return True
        return consent_allows(context, spec.purpose if spec is not None else None)

    def payload(self, payload: dict[str, Any], spec: EventSpec | None, valid: bool = True
                ) -> tuple[dict[str, Any], int]:
        """Properties or traits with the policy applied, and how many values changed.

        ``valid``: the payload passed ``spec``'s schema, so a property declared plain
        holds no object or array. An invalid one that holds any is walked whole
        (``protect_payload``): an object sent where a string is declared is judged by
        the names inside it, which the per-name caches below do not look at. Each
        property is protected as the strictest version of ``spec``'s event classes it
        (``protecting_spec``); validation has used ``spec`` itself.
        """
        spec = self._protecting.get(id(spec), spec)
        if not valid and not _CONTAINERS.isdisjoint(map(type, payload.values())):
            return protect_payload(payload, spec, self.policy)
        safe = self._safe.get(id(spec))
        if safe is not None and safe.issuperset(payload):  # the usual payload, in one step
            return payload, 0
        if not self._needs_work(payload, spec):
            return payload, 0
        return protect_payload(payload, spec, self.policy)

    def urls(self, call: str, context: dict[str, Any], properties: dict[str, Any] | None,
             violations: str | None, spec: EventSpec | None = None
             ) -> tuple[dict[str, Any], dict[str, Any] | None, str | None]:
        """``protect_urls`` (``spec``'s properties declared with a URL format too), and
        the violations (JSON text) no longer quoting a URL it changed (a ``format: uri``
        rule's message quotes the whole URL), and ``context.traits`` declared with a URL
        format by the identify spec. Called only when ``[privacy] url_query`` is not
        ``"keep"``."""
        names, nested = self._urls_of(spec)
        context, cleaned = protect_urls(call, context, properties, self.policy, names, nested)
        traits = context.get("traits")
        if traits.__class__ is dict and self.identify is not None:
            names, nested = self._urls_of(self.identify)
            if names or nested:
                kept = protect_urls("identify", {}, traits, self.policy, names, nested)[1]
                if kept is not traits:
                    context = {**context, "traits": kept}
        if violations and cleaned is not properties and properties is not None:
            violations = orjson.dumps(withhold_values(
                orjson.loads(violations), properties, cleaned or {})).decode()
        return context, cleaned, violations

    def _urls_of(self, spec: EventSpec | None) -> tuple[tuple[str, ...], tuple[UrlPath, ...]]:
        found = self._url_names.get(id(spec))
        if found is None:  # a spec of no catalog given to the constructor (or None)
            found = self._url_names[id(spec)] = (url_properties(spec), url_paths(spec))
        return found

    def identifier(self, value: str | None) -> str | None:
        """``user_id`` (and an alias's ``previous_id``) as the policy keeps it (a keyed
        hash already, a quarantined row's, stays as it is)."""
        if value is None or self.policy.user_id == "keep" or is_pseudonym(value):
            return value
        return pseudonymise(value, self.policy.secret)

    def _needs_work(self, payload: dict[str, Any], spec: EventSpec | None) -> bool:
        # the answer depends on the spec, the property names and, for a name that may
        # hold an object or an array (whose keys are judged too), on the value. Per spec,
        # the names known to need nothing whatever their value are in ``safe`` (one C-level
        # superset test answers the usual payload), those that need nothing while their
        # value is plain in ``loose``
        key = id(spec)
        try:
            safe = self._safe[key]
        except KeyError:
            safe = self._safe[key] = (None if spec is not None and _has_pii(spec.properties)
                                      else set())
            self._loose[key] = set()
        if safe is None:
            return True
        loose = self._loose[key]
        for name in payload:
            if name not in safe and name not in loose:
                verdict = self._judge(name, spec)
                if verdict == "personal":
                    return True
                if len(safe) + len(loose) >= _MAX_NAMES:
                    return True  # the caches are full: the pure step decides
                (loose if verdict == "loose" else safe).add(name)
        if _CONTAINERS.isdisjoint(map(type, payload.values())):
            return False  # no value holds keys (one C-level pass)
        return not all(_plain(payload[name]) for name in loose.intersection(payload))

    def _judge(self, name: str, spec: EventSpec | None) -> str:
        """``personal``, ``loose`` (needs nothing while its value is plain) or ``safe``.

        Called only for specs without personal properties, once per name.
        """
        if not self.policy.guard_unknown:
            return "safe"  # only the catalog's classes apply, and this spec has none
        prop = spec.property(name) if spec is not None else None
        if prop is None:
            return "personal" if self.policy.guards(name) else "loose"
        holds_keys = prop.type == "object" or (prop.type == "array" and (
            prop.items is None or prop.items.type in ("object", "array")))
        return "loose" if holds_keys else "safe"


def _has_pii(props: tuple[PropertySpec, ...]) -> bool:
    return any(p.pii != "none" or _has_pii(p.properties)
               or (p.items is not None and _has_pii((p.items,))) for p in props)


_CONTAINERS = frozenset({dict, list})


def _plain(value: Any) -> bool:
    """A value without keys anywhere in it (a scalar, or an array of scalars), as parsed
    JSON has it."""
    kind = type(value)
    if kind is list:
        return _CONTAINERS.isdisjoint(map(type, value))
    return kind is not dict


def withhold_values(violations: list[dict[str, Any]], raw: dict[str, Any],
                    protected: dict[str, Any]) -> list[dict[str, Any]]:
    """Violations whose messages no longer quote a value the policy hashed or dropped.

    A validator's message may quote the offending value (``'ann@x' is not a 'uri'``),
    escaped in its own way; the quarantine must not keep it raw. A violation is rewritten
    to name only its path and rule when its path is under a protected property, or when
    its message holds a protected value in any usual spelling (plain, JSON-escaped,
    repr-escaped).
    """
    changed = _changed(raw, protected, "")
    if not changed:
        return violations
    spellings = {form for _, value in changed for text in _leaves(value) if text
                 for form in _spellings(text)}
    result = []
    for violation in violations:
        message = str(violation.get("message", ""))
        path = str(violation.get("path", ""))
        if (any(_under(path, key) for key, _ in changed)
                or any(form in message for form in spellings)):
            expected = _expectation(message, spellings)
            message = (f"{path}: breaks the {violation.get('rule')} rule"
                       f"{f', {expected}' if expected else ''} "
                       "(value withheld: personal data)")
        result.append({**violation, "message": message})
    return result


#: how a validator's message goes on after the value it quotes -> what the rule expects
_EXPECTS = (
    (" is not of types ", "expected one of "),
    (" is not of type ", "expected "),
    (" is not one of ", "expected one of "),
    (" does not match ", "expected to match "),
    (" is not a ", "expected a "),
    (" is less than the minimum of ", "expected at least "),
    (" is greater than the maximum of ", "expected at most "),
    (" is shorter than ", "expected no shorter than "),
    (" is longer than ", "expected no longer than "),
)


def _expectation(message: str, spellings: set[str]) -> str | None:
    """What the rule expects (``expected integer``), from the end of ``message``: the
    validator writes the value first, the rule's side after it, so the text after the
    last such phrase is the catalog's (None when it still holds a protected value)."""
    for phrase, expects in _EXPECTS:
        at = message.rfind(phrase)
        if at < 0:
            continue
        tail = message[at + len(phrase):]
        if phrase.startswith(" is not of type"):
            tail = tail.replace('"', "")
        if any(form in tail for form in spellings):
            return None
        return expects + tail
    return None


_GONE = object()


def _under(path: str, key: str) -> bool:
    for root in ("$.properties.", "$.traits."):
        if path.startswith(root + key):
            rest = path[len(root) + len(key):]
            if not rest or rest[0] in ".[":
                return True
    return False


def _spellings(value: str) -> set[str]:
    import orjson  # noqa: PLC0415 - only on the rare quarantined-with-PII path

    json_form = orjson.dumps(value).decode()[1:-1]
    ascii_form = json_form.encode("ascii", "backslashreplace").decode()
    return {value, json_form, ascii_form, repr(value)[1:-1]}


def _changed(raw: Any, protected: Any, at: str) -> list[tuple[str, Any]]:
    """Where (``key``, ``key.inner``, ``key[0].inner``) the policy replaced or removed a
    value of ``raw``, with the raw value: a URL cleaned inside an object names that
    URL's place, not the object's, whose other values' violations stay as they are."""
    if isinstance(raw, dict):
        pairs = [(f"{at}.{key}" if at else str(key), value,
                  protected.get(key, _GONE) if isinstance(protected, dict) else _GONE)
                 for key, value in raw.items()]
    elif isinstance(raw, list) and isinstance(protected, list) and len(raw) == len(protected):
        pairs = [(f"{at}[{i}]", value, new)
                 for i, (value, new) in enumerate(zip(raw, protected, strict=True))]
    else:
        return [(at, raw)]
    out: list[tuple[str, Any]] = []
    for path, value, new in pairs:
        if new is value:
            continue
        if type(value) is type(new) and isinstance(value, dict | list):
            out.extend(_changed(value, new, path))
        else:
            out.append((path, value))
    return out


def _leaves(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _leaves(v)]
    if isinstance(value, list):
        return [s for v in value for s in _leaves(v)]
    return [] if value is None else [str(value)]
