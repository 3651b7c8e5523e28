"""Privacy by catalog: what must not be kept is changed before anything is written.

Each cataloged property has a PII class, and the workspace's ``[privacy]`` policy says
what each class becomes:

| class | default | how |
| --- | --- | --- |
| none | kept | |
| pseudonymous | keyed hash | HMAC-SHA256 with the workspace secret, so equal inputs stay joinable |
| personal | keyed hash | or ``drop`` / ``keep`` by policy, or the property's own ``handling`` |
| sensitive | dropped | unless in ``allow_sensitive``: then its own ``handling`` (or kept) |

The hash is keyed because an unsalted hash of an email or an IPv4 address is reversed by
enumeration in milliseconds. ``context.ip`` is truncated to its /24 (IPv4) or /48 (IPv6)
network by default. Properties the catalog does not know (an unplanned event, or an extra
property) have no class; those whose names look personal (``email``, ``phone``...) are
hashed so that a quarantined event never holds them raw. Page URLs keep their query
strings unless ``url_query`` says otherwise (``protect_urls``).
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import hmac
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any, Literal

from nerve._urls import UrlQuery, clean_search, clean_url, url_query_setting
from nerve.catalog import Catalog, EventSpec, PropertySpec
from nerve.errors import WorkspaceError

__all__ = [
    "HASH_PREFIX",
    "PrivacyPolicy",
    "allow_sensitive_problems",
    "classed_names",
    "consent_allows",
    "is_pseudonym",
    "looks_personal",
    "protect_context",
    "protect_ip",
    "protect_payload",
    "protect_urls",
    "protecting_spec",
    "pseudonymise",
    "treatment",
    "truncate_ip",
    "url_fields",
    "url_paths",
    "url_properties",
]

Treatment = Literal["hash", "drop", "keep", "truncate"]
#: what a keyed hash (``pseudonymise``) starts with
HASH_PREFIX = "h:"

#: words that make an uncataloged property's name look personal (hashed anyway); a
#: ``*_name`` only of a person (``employee_name``, ``patient_name``, ``given_name``), not
#: of a thing (``event_name``, ``product_name``, ``screen_name``), nor an ambiguous one
#: (``display_name``, ``client_name``, ``parent_name``: an app's, a category's)
PERSONAL_NAMES = re.compile(
    r"(^|_)(e_?mail|phone|mobile|ssn|password|passwd|first_?name|last_?name|full_?name|"
    r"(user|customer|employee|patient|member|contact|person|owner|account_?holder|"
    r"card_?holder|holder|guardian|spouse|recipient|sender|guest|passenger|travell?er|"
    r"student|teacher|applicant|candidate|doctor|physician|nurse|clinician|given|family|"
    r"middle|maiden|nick|legal|real)_?name|surname|"
    r"address|street|postcode|zip_?code|birth_?date|dob|iban|card_?number|ip)($|_)",
    re.IGNORECASE,
)
#: where a camelCase name starts a word (``emailAddress``, ``IPAddress``): an underscore
#: there lets PERSONAL_NAMES see the words of Segment's own camelCase traits
_HUMPS = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def looks_personal(name: str) -> bool:
    """Whether an uncataloged name says it holds personal data.

    >>> [looks_personal(n) for n in ("email", "user_email", "emailAddress", "firstName")]
    [True, True, True, True]
    >>> [looks_personal(n) for n in ("shipping", "tipped", "zipper")]
    [False, False, False]
    """
    return PERSONAL_NAMES.search(_HUMPS.sub("_", name)) is not None


@dataclass(frozen=True, slots=True)
class PrivacyPolicy:
    """The workspace's ``[privacy]`` section (docs/privacy.md)."""

    secret: bytes
    personal: Treatment = "hash"
    #: ``event.property`` names whose sensitive values may be kept
    allow_sensitive: frozenset[str] = frozenset()
    ip: Treatment = "truncate"
    user_id: Literal["keep", "hash"] = "keep"
    #: drop events whose ``context.consent`` does not cover their purpose
    enforce_consent: bool = True
    #: hash uncataloged properties whose names look personal
    guard_unknown: bool = True
    #: what page URLs keep of their query string: "keep", "drop" or the parameters'
    #: names (``nerve._urls``)
    url_query: UrlQuery = "keep"
    #: names of the events' properties the catalog classes other than ``none``
    #: (``with_catalog``): ``guard_unknown`` hashes an undeclared value of that name too
    classed: frozenset[str] = frozenset()

    def with_catalog(self, catalog: Catalog) -> PrivacyPolicy:
        """The policy, guarding the names ``catalog`` classes as well (``classed_names``)."""
        return replace(self, classed=classed_names(catalog))

    def guards(self, name: str) -> bool:
        """Whether ``guard_unknown`` hashes an undeclared value named ``name``.

        >>> PrivacyPolicy(secret=b"k", classed=frozenset({"tracking_number"})).guards(
        ...     "tracking_number")
        True
        """
        return name in self.classed or looks_personal(name)

    @classmethod
    def from_config(cls, section: dict[str, Any], secret: bytes) -> PrivacyPolicy:
        def pick(key: str, allowed: tuple[str, ...], default: str) -> Any:
            value = section.get(key, default)
            if value not in allowed:
                raise WorkspaceError(
                    f"nerve.toml: [privacy] {key}: expected one of {', '.join(allowed)}, "
                    f"got {value!r}"
                )
            return value

        try:
            url_query = url_query_setting(section.get("url_query", "keep"))
        except ValueError as exc:
            raise WorkspaceError(f"nerve.toml: [privacy] url_query: {exc}") from None
        allow = section.get("allow_sensitive", [])
        if not isinstance(allow, list) or not all(isinstance(a, str) for a in allow):
            raise WorkspaceError("nerve.toml: [privacy] allow_sensitive: expected a list of "
                                 "'event.property' names")
        return cls(
            secret=secret,
            personal=pick("personal", ("hash", "drop", "keep"), "hash"),
            allow_sensitive=frozenset(allow),
            ip=pick("ip", ("truncate", "hash", "drop", "keep"), "truncate"),
            user_id=pick("user_id", ("keep", "hash"), "keep"),
            enforce_consent=bool(section.get("enforce_consent", True)),
            guard_unknown=bool(section.get("guard_unknown", True)),
            url_query=url_query,
        )


def allow_sensitive_problems(allowed: Iterable[str], catalog: Catalog) -> list[str]:
    """Why each ``[privacy] allow_sensitive`` entry names no sensitive property of
    ``catalog`` (an empty list when every one does), with the closest that does.

    The privacy step keeps a sensitive value when ``event.property`` is listed (a nested
    property by its own name, an array's items by the array's): an entry with a typo
    matches nothing, and the value it was meant to keep is dropped without a word.

    >>> from nerve.catalog import Version
    >>> visit = EventSpec("visit", Version(1), properties=(
    ...     PropertySpec("diagnosis", "string", pii="sensitive"),))
    >>> allow_sensitive_problems(["visit.diagnosys"], Catalog.from_specs([visit]))
    ["'visit.diagnosys': visit has no property 'diagnosys'; did you mean 'visit.diagnosis'?"]
    """
    classes: dict[str, str] = {}  # "event.property" -> its PII class in any version
    for name in catalog.names():
        for spec in catalog.versions(name):
            for spec_prop in spec.properties:
                _classes(spec_prop, spec_prop.name, spec.name, classes)
    sensitive = [entry for entry, pii in classes.items() if pii == "sensitive"]
    problems = []
    for entry in allowed:
        if classes.get(entry) == "sensitive":
            continue
        event, _, name = entry.partition(".")
        if not name:
            what = "expected 'event.property': the event's name, a dot, the property's"
        elif entry in classes:
            what = (f"{entry} is {classes[entry]}, not sensitive; allow_sensitive keeps "
                    "sensitive values only (the others follow [privacy] personal or their "
                    "handling)")
        elif event not in catalog:
            what = f"no event {event!r} in the catalog"
        else:
            what = f"{event} has no property {name!r}"
        close = difflib.get_close_matches(entry, sensitive, n=1)
        hint = (f"; did you mean {close[0]!r}?" if close
                else "" if sensitive else " (the catalog has no sensitive property)")
        problems.append(f"{entry!r}: {what}{hint}")
    return problems


def classed_names(catalog: Catalog) -> frozenset[str]:
    """The names of the properties that an event of ``catalog`` (track, page or screen, in
    any version) classes other than ``none``, nested ones by their own name.

    An event the catalog does not know (a misspelt name, bound for the quarantine) or an
    undeclared property carries them as sent: a ``tracking_number`` every event hashes
    reached the quarantine raw from ``parcel_trackd``, and a replay once the event was
    cataloged loaded it raw beside the hashed ones. Traits (identify, group) are another
    namespace: their ``name`` is a person's, an event's is often a product's.

    >>> from nerve.catalog import Version
    >>> seen = EventSpec("seen", Version(1), properties=(
    ...     PropertySpec("device_id", "string", pii="pseudonymous"),
    ...     PropertySpec("plan", "string", pii="none")))
    >>> sorted(classed_names(Catalog.from_specs([seen])))
    ['device_id']
    """
    names: set[str] = set()

    def visit(prop: PropertySpec, name: str) -> None:
        if prop.pii != "none":
            names.add(name)
        for child in prop.properties:
            visit(child, child.name)
        if prop.items is not None:
            visit(prop.items, name)

    for event in catalog.names():
        for spec in catalog.versions(event):
            if spec.type not in ("identify", "group"):
                for prop in spec.properties:
                    visit(prop, prop.name)
    return frozenset(names)


def _classes(prop: PropertySpec, name: str, event: str, found: dict[str, str]) -> None:
    """The PII class of ``prop`` and what it holds, by the names the privacy step matches."""
    key = f"{event}.{name}"
    if found.get(key) != "sensitive":
        found[key] = prop.pii
    for child in prop.properties:
        _classes(child, child.name, event, found)
    if prop.items is not None:
        _classes(prop.items, name, event, found)


def pseudonymise(value: Any, secret: bytes) -> str:
    """A keyed, deterministic stand-in for ``value``: equal inputs give equal outputs.

    >>> pseudonymise("a@b.c", b"k") == pseudonymise("a@b.c", b"k") != pseudonymise("a@b.c", b"j")
    True
    """
    return _pseudonym(value if isinstance(value, str) else repr(value), secret)


def is_pseudonym(value: Any) -> bool:
    """Whether ``value`` is a keyed hash ``pseudonymise`` made.

    >>> is_pseudonym(pseudonymise("a@b.c", b"k")), is_pseudonym("a@b.c")
    (True, False)
    """
    return (isinstance(value, str) and len(value) == _PSEUDONYM_LENGTH
            and value.startswith(HASH_PREFIX) and _HEX.fullmatch(value, 2) is not None)


_PSEUDONYM_LENGTH = len(HASH_PREFIX) + 32
_HEX = re.compile(r"[0-9a-f]{32}")


@functools.lru_cache(maxsize=16384)
def _pseudonym(text: str, secret: bytes) -> str:
    """``pseudonymise`` of a text, cached: traffic repeats what it hashes (a client SDK's
    batch is one user's events, and mobile SDKs send the user's traits with each event).
    The raw values stay in this process's memory only, as the values being hashed do."""
    mac = _keyed(secret).copy()
    mac.update(text.encode("utf-8", "surrogatepass"))
    return HASH_PREFIX + mac.hexdigest()[:32]


@functools.lru_cache(maxsize=8)
def _keyed(secret: bytes) -> hmac.HMAC:
    """An HMAC-SHA256 keyed with ``secret`` and fed nothing: copying it skips the key
    schedule, ~25% of each hash (a workspace has one secret; tests use a few)."""
    return hmac.new(secret, digestmod=hashlib.sha256)


@functools.lru_cache(maxsize=65536)
def truncate_ip(value: str) -> str | None:
    """The /24 network of an IPv4 address (also written IPv4-mapped, ``::ffff:a.b.c.d``),
    the /48 of an IPv6 one; None if not an address.

    Cached, and dotted-quad IPv4 takes a string fast path: ``ipaddress`` was a fifth of
    the collector's CPU when every event carried an IP.

    >>> truncate_ip("203.0.113.77"), truncate_ip("2001:db8:85a3::8a2e:370:7334")
    ('203.0.113.0', '2001:db8:85a3::')
    """
    parts = value.split(".")
    if len(parts) == 4 and all(
            p.isdigit() and p.isascii() and len(p) <= 3 and (p == "0" or p[0] != "0")
            and int(p) <= 255 for p in parts):
        return f"{parts[0]}.{parts[1]}.{parts[2]}.0"
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        # some proxies (Azure's among them) append the client's port: "a.b.c.d:port",
        # "[v6]:port"; without the port it is the address (this was hashed whole)
        host = _without_port(value.strip())
        try:
            address = ipaddress.ip_address(host or "")
        except ValueError:
            return None
    if address.version == 6 and address.ipv4_mapped is not None:
        # a dual-stack socket (`nerve serve --host ::`) reports IPv4 clients as
        # ::ffff:a.b.c.d, whose /48 is "::" for all of them: keep the IPv4's /24
        address = address.ipv4_mapped
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False).network_address)


def _without_port(value: str) -> str | None:
    """The address of ``a.b.c.d:port`` or ``[v6]:port`` (or ``[v6]``); None otherwise."""
    if value.startswith("["):
        host, bracket, rest = value[1:].partition("]")
        port_ok = not rest or (rest[:1] == ":" and rest[1:].isdigit())
        return host if bracket and port_ok else None
    host, colon, port = value.partition(":")
    return host if colon and port.isdigit() and "." in host else None


def treatment(prop: PropertySpec, name: str, event: str, policy: PrivacyPolicy
              ) -> Treatment:
    """How the policy treats a value of ``prop`` (``name``: the property's, or the array's
    whose items ``prop`` describes): "drop" means it is never stored.

    >>> treatment(PropertySpec("diagnosis", "string", pii="sensitive"), "diagnosis",
    ...           "visit", PrivacyPolicy(secret=b""))
    'drop'
    """
    if prop.pii == "none":
        return "keep"
    if prop.pii == "pseudonymous":
        return "hash"
    if prop.pii == "sensitive" and f"{event}.{name}" not in policy.allow_sensitive:
        return "drop"
    handling = prop.handling
    if handling in ("hash", "drop", "keep", "truncate"):
        return handling  # type: ignore[return-value]
    # an allowed sensitive value without a handling of its own is kept, as allowed
    return "keep" if prop.pii == "sensitive" else policy.personal


def _apply(value: Any, treatment: Treatment, policy: PrivacyPolicy) -> tuple[bool, Any]:
    """(keep?, new value). A keyed hash already (a quarantined value that a replay
    protects again) stays as it is: hashed again, it would match no other row."""
    if treatment == "drop":
        return False, None
    if treatment == "keep" or value is None or is_pseudonym(value):
        return True, value
    if treatment == "truncate" and isinstance(value, str):
        truncated = truncate_ip(value)
        if truncated is not None:
            return True, truncated
    return True, pseudonymise(value, policy.secret)


def protect_payload(
    payload: dict[str, Any], spec: EventSpec | None, policy: PrivacyPolicy
) -> tuple[dict[str, Any], int]:
    """Properties (or traits) with the policy applied, and how many values were changed."""
    props = {p.name: p for p in spec.properties} if spec is not None else {}
    event = spec.name if spec is not None else ""
    return _protect(payload, props, event, policy)


def _protect(
    payload: dict[str, Any], props: dict[str, PropertySpec], event: str, policy: PrivacyPolicy
) -> tuple[dict[str, Any], int]:
    result: dict[str, Any] = {}
    changed = 0
    for key, value in payload.items():
        prop = props.get(key)
        if prop is None:
            keep, new, n = _protect_unknown(key, value, event, policy)
        else:
            keep, new, n = _protect_value(value, prop, prop.name, event, policy)
        if keep:
            result[key] = new
        changed += n
    return result, changed


def _protect_value(value: Any, prop: PropertySpec, name: str, event: str,
                   policy: PrivacyPolicy) -> tuple[bool, Any, int]:
    """(keep?, the value as kept, how many values changed) for a cataloged property.

    An object is protected property by property and an array item by item, so that a
    personal property inside the items of an array is treated as its class says; what an
    object or array property holds beyond the catalog is judged by name, as at the top.
    A value whose own class drops it (sensitive and not allowed, or personal handled by
    ``drop``) is dropped whole, whatever its nested properties declare: a sensitive
    ``location`` object's ``lat`` and ``lon`` go with it.
    """
    how = treatment(prop, name, event, policy)
    if how == "drop":
        return False, None, 1
    if (how == "keep" and value is not None
            and ((prop.type == "object" and not isinstance(value, dict))
                 or (prop.type == "array" and not isinstance(value, list)))):
        # not the object or array the catalog declares (an invalid event, bound for the
        # quarantine): it may be what the declared inside holds, flattened (``guardian:
        # "ana@x.es"`` for a personal ``guardian.email``), so the whole value is treated
        # as the strictest class declared inside treats its values
        inner = _strictest(prop, name, event, policy)
        if inner != "keep":
            keep, new = _apply(value, inner, policy)
            return keep, new, 1
    if isinstance(value, dict) and (prop.properties
                                    or (prop.pii == "none" and prop.type == "object")):
        nested, n = _protect(value, {p.name: p for p in prop.properties}, event, policy)
        return True, nested if n else value, n
    if isinstance(value, list) and prop.pii == "none" and prop.type == "array":
        kept: list[Any] = []
        changed = 0
        for item in value:
            if prop.items is None:
                keep, new, n = _protect_unknown("", item, event, policy)
            else:
                keep, new, n = _protect_value(item, prop.items, name, event, policy)
            changed += n
            if keep:
                kept.append(new)
        return True, kept if changed else value, changed
    if how == "keep" and prop.pii == "none" and isinstance(value, dict | list):
        # an object or array where the catalog declares something else (an invalid
        # event, bound for the quarantine): what it holds is judged by name
        return _protect_unknown("", value, event, policy)
    keep, new = _apply(value, how, policy)
    return keep, new, int(new is not value or not keep)


#: treatments from the most protective
_STRICTNESS = ("drop", "hash", "truncate", "keep")


#: a class and handling that ``treatment`` gives each protective treatment, whatever the
#: property's name (``allow_sensitive`` names none of them)
_CLASS_OF: dict[Treatment, tuple[str, str | None]] = {
    "drop": ("personal", "drop"), "hash": ("pseudonymous", None),
    "truncate": ("personal", "truncate")}


def _strictest(prop: PropertySpec, name: str, event: str, policy: PrivacyPolicy) -> Treatment:
    """The most protective treatment of the properties declared inside ``prop`` (an
    object's, an array's items and theirs), "keep" when none is protected."""
    found: list[Treatment] = []
    for child in prop.properties:
        found.append(treatment(child, child.name, event, policy))
        found.append(_strictest(child, child.name, event, policy))
    if prop.items is not None:
        found.append(treatment(prop.items, name, event, policy))
        found.append(_strictest(prop.items, name, event, policy))
    return min(found, key=_STRICTNESS.index, default="keep")


def protecting_spec(spec: EventSpec, versions: Iterable[EventSpec], policy: PrivacyPolicy
                    ) -> EventSpec:
    """``spec`` with each property (nested ones and an array's items included) classed as
    the strictest of ``versions`` (every version of its event) treats it, for the privacy
    step; ``spec`` itself when no other version is stricter anywhere.

    A client still sending an older version declares it in ``context.event_version``, and
    is validated against it; but a field a newer version classes ``personal`` is personal
    data whatever version an old app says it sends (readers' masking reads every version
    too). A property only other versions declare is added when they protect it (an
    invalid event bound for the quarantine may carry it). A property another version
    declares with another type (``address`` a string here, an object with a personal
    ``street`` there) is classed as the strictest class declared inside it there treats
    values: ``spec``'s value is not shaped as that version declares, and may hold what it
    holds. Worked out once per catalog (``Guard``): the events' step only looks the
    result up.

    >>> from nerve.catalog import Version
    >>> v1 = EventSpec("signup", Version(1), properties=(PropertySpec("email", "string"),))
    >>> v2 = EventSpec("signup", Version(2), properties=(
    ...     PropertySpec("email", "string", pii="personal"),))
    >>> protecting_spec(v1, [v1, v2], PrivacyPolicy(secret=b"k")).properties[0].pii
    'personal'
    """
    others = [v.properties for v in versions if v is not spec]
    if not others:
        return spec
    merged = _merge_props(spec.properties, others, spec.name, policy)
    return spec if merged == spec.properties else replace(spec, properties=merged)


def _merge_props(own: tuple[PropertySpec, ...], others: list[tuple[PropertySpec, ...]],
                 event: str, policy: PrivacyPolicy) -> tuple[PropertySpec, ...]:
    """``own`` properties, each as strict as the same name in ``others``, then those only
    ``others`` declare, as far as they are protected."""
    names = {p.name for p in own}
    result = [_merge_prop(p, [q for props in others for q in props if q.name == p.name],
                          p.name, event, policy) for p in own]
    extra: dict[str, list[PropertySpec]] = {}
    for props in others:
        for q in props:
            if q.name not in names:
                extra.setdefault(q.name, []).append(q)
    for name, found in extra.items():
        kept = _protected_only(_merge_prop(found[0], found[1:], name, event, policy),
                               name, event, policy)
        if kept is not None:
            result.append(kept)
    return tuple(result)


def _merge_prop(prop: PropertySpec, others: list[PropertySpec], name: str, event: str,
                policy: PrivacyPolicy) -> PropertySpec:
    """``prop`` (its type kept) with the class and handling of whichever of ``prop`` and
    ``others`` the policy treats the strictest (``prop`` on a tie), and what it holds
    merged alike. ``name``: the property's, or the array's whose items these are."""
    strictest = min((prop, *others), key=lambda p: _STRICTNESS.index(
        treatment(p, name, event, policy)))
    how = treatment(strictest, name, event, policy)
    # a version that declares another type (``address`` a string in 1.0.0, an object
    # with a personal ``street`` in 2.0.0): ``prop``'s value is not shaped as that
    # version declares, so it is treated whole as the strictest class declared inside
    # there, as ``_protect_value`` treats a value not shaped as its own spec declares
    reshaped: Treatment = min((_strictest(q, name, event, policy) for q in others
                                 if q.type != prop.type), key=_STRICTNESS.index, default="keep")
    pii, handling = strictest.pii, strictest.handling
    if _STRICTNESS.index(reshaped) < _STRICTNESS.index(how):
        pii, handling = _CLASS_OF[reshaped]
    children = _merge_props(prop.properties, [q.properties for q in others], event, policy)
    inner = [q.items for q in others if q.items is not None]
    if prop.items is not None:
        items: PropertySpec | None = _merge_prop(prop.items, inner, name, event, policy)
    elif inner:
        items = _protected_only(_merge_prop(inner[0], inner[1:], name, event, policy),
                                name, event, policy)
    else:
        items = None
    if (pii, handling) == (prop.pii, prop.handling) and children == prop.properties \
            and items == prop.items:
        return prop
    return replace(prop, pii=pii, handling=handling, properties=children, items=items)


def _protected_only(prop: PropertySpec, name: str, event: str, policy: PrivacyPolicy
                    ) -> PropertySpec | None:
    """``prop`` reduced to what the policy protects in it (None: nothing). Another
    version's ``pii: none`` declaration does not make a value the declared version lacks
    "not personal": such a value stays judged by its name (``guard_unknown``)."""
    if treatment(prop, name, event, policy) != "keep":
        return prop
    children = tuple(kept for child in prop.properties
                     if (kept := _protected_only(child, child.name, event, policy)) is not None)
    items = (_protected_only(prop.items, name, event, policy) if prop.items is not None
             else None)
    if not children and items is None:
        return None
    return replace(prop, properties=children, items=items)


def _protect_unknown(name: str, value: Any, event: str,
                     policy: PrivacyPolicy) -> tuple[bool, Any, int]:
    """The same for a value the catalog does not describe: hashed if its name looks
    personal, or is one the catalog classes elsewhere (``PrivacyPolicy.guards``)."""
    if not policy.guard_unknown or value is None:
        return True, value, 0
    if name and policy.guards(name):
        if is_pseudonym(value):  # a quarantined value hashed at collection, replayed
            return True, value, 0
        return True, pseudonymise(value, policy.secret), 1
    if isinstance(value, dict):
        nested, n = _protect(value, {}, event, policy)
        return True, nested if n else value, n
    if isinstance(value, list):
        items = [_protect_unknown("", item, event, policy) for item in value]
        changed = sum(n for _, _, n in items)
        return True, [new for _, new, _ in items] if changed else value, changed
    return True, value, 0


def protect_context(
    context: dict[str, Any], identify: EventSpec | None, policy: PrivacyPolicy
) -> dict[str, Any]:
    """``context`` with its IP treated and its ``traits`` protected like identify's traits."""
    result = dict(context)
    ip = result.get("ip")
    # not only text: an address sent as a number or a list is personal data all the same
    if ip is not None and ip != "":
        kept = protect_ip(ip, policy)
        if kept is None:
            del result["ip"]
        else:
            result["ip"] = kept
    traits = result.get("traits")
    if isinstance(traits, dict):
        result["traits"] = protect_payload(traits, identify, policy)[0]
    return result


def protect_ip(ip: Any, policy: PrivacyPolicy) -> Any:
    """``context.ip`` as the policy keeps it (None: drop it). A value that is not an
    address's text (a number, a list) is hashed where the policy truncates.

    >>> protect_ip("203.0.113.77", PrivacyPolicy(secret=b"k"))
    '203.0.113.0'
    """
    treatment = policy.ip
    if treatment == "keep":
        return ip
    if treatment == "drop":
        return None
    if is_pseudonym(ip):  # hashed already (a quarantined row, replayed): hashed again, it
        return ip         # would match no other row
    if treatment == "truncate" and isinstance(ip, str):
        return truncate_ip(ip) or pseudonymise(ip, policy.secret)
    return pseudonymise(ip, policy.secret)


#: the calls whose own properties describe a page (``url``, ``referrer``, ``search``)
_PAGE_CALLS = frozenset({"page", "screen"})
_PAGE_KEYS = ("url", "referrer", "search")
#: the formats of a cataloged property that holds a URL
URL_FORMATS = frozenset({"uri", "uri-reference", "iri", "iri-reference"})


def url_properties(spec: EventSpec | None) -> tuple[str, ...]:
    """The names of ``spec``'s properties (top level) declared with a URL format, whose
    values ``protect_urls`` treats as a page's URL.

    >>> from nerve.catalog import Version
    >>> url_properties(EventSpec("link_clicked", Version(1), properties=(
    ...     PropertySpec("href", "string", format="uri"), PropertySpec("text", "string"))))
    ('href',)
    """
    if spec is None:
        return ()
    return tuple(p.name for p in spec.properties if _is_url(p))


#: a place below the top level of a payload: keys, and ``None`` for each item of an array
UrlPath = tuple[str | None, ...]


def url_paths(spec: EventSpec | None) -> tuple[UrlPath, ...]:
    """Where ``spec`` declares a URL format below the top level of its properties (in an
    object, an array of objects, or as an array's items), as key paths with ``None`` for
    "each item of the array"; ``url_properties`` has the top-level ones. Worked out once
    per catalog, so an event that declares none pays nothing per event.

    >>> from nerve.catalog import Version
    >>> url = PropertySpec("url", "string", format="uri")
    >>> url_paths(EventSpec("episode_shared", Version(1), properties=(
    ...     PropertySpec("target", "object", properties=(url,)),
    ...     PropertySpec("links", "array", items=PropertySpec("items", "object",
    ...                                                      properties=(url,))),
    ...     PropertySpec("mirrors", "array", items=url), url)))
    (('target', 'url'), ('links', None, 'url'), ('mirrors', None))
    """
    if spec is None:
        return ()
    return tuple(path for p in spec.properties for path in _nested_urls(p, (p.name,)))


def url_fields(spec: EventSpec, versions: Iterable[EventSpec]
               ) -> tuple[tuple[str, ...], tuple[UrlPath, ...]]:
    """``url_properties`` and ``url_paths`` of ``spec`` and of every other of ``versions``
    (every version of its event), for ``protect_urls``: a property another version
    declares with a URL format is cleaned in ``spec``'s events too, as
    ``protecting_spec`` protects a field by its strictest version. A path the value is
    not shaped for (a string where another version declares an object) leaves it as it
    is. Worked out once per catalog (``Guard``).

    >>> from nerve.catalog import Version
    >>> v1 = EventSpec("link_clicked", Version(1), properties=(PropertySpec("href", "string"),))
    >>> v2 = EventSpec("link_clicked", Version(2), properties=(
    ...     PropertySpec("href", "string", format="uri"),))
    >>> url_fields(v1, [v1, v2])
    (('href',), ())
    """
    every = (spec, *(v for v in versions if v is not spec))
    names = dict.fromkeys(name for v in every for name in url_properties(v))
    paths = dict.fromkeys(path for v in every for path in url_paths(v))
    return tuple(names), tuple(paths)


def _is_url(prop: PropertySpec) -> bool:
    return prop.type == "string" and prop.format in URL_FORMATS


def _nested_urls(prop: PropertySpec, at: UrlPath) -> list[UrlPath]:
    found: list[UrlPath] = []
    for child in prop.properties:
        path = (*at, child.name)
        found.extend([path] if _is_url(child) else _nested_urls(child, path))
    if prop.items is not None:
        path = (*at, None)
        found.extend([path] if _is_url(prop.items) else _nested_urls(prop.items, path))
    return found


def protect_urls(call: str, context: dict[str, Any], properties: dict[str, Any] | None,
                 policy: PrivacyPolicy, url_names: tuple[str, ...] = (),
                 nested: tuple[UrlPath, ...] = ()
                 ) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """``context`` and a page or screen call's ``properties`` with the query strings of
    their URLs as ``[privacy] url_query`` keeps them: ``context.page``'s ``url``,
    ``referrer`` and ``search``, ``context.referrer``'s ``url`` and ``link`` (a mobile
    app's deep link), a page or screen call's ``url``, ``referrer`` and ``search``, and
    the ``url_names`` properties of any call (those its spec declares with a URL format:
    ``url_properties``) and the values at its ``nested`` paths (``url_paths``). What
    holds nothing to remove is returned as is.

    >>> protect_urls("page", {"page": {"url": "https://b.example/?email=a%40b.c"}},
    ...              {"search": "?email=a%40b.c"}, PrivacyPolicy(b"k", url_query="drop"))
    ({'page': {'url': 'https://b.example/'}}, {'search': ''})
    """
    keep = policy.url_query
    result = context
    page = context.get("page")
    if isinstance(page, dict):
        cleaned = _clean_urls(page, ("url", "referrer", "search"), keep)
        if cleaned is not page:
            result = {**result, "page": cleaned}
    referrer = context.get("referrer")
    if isinstance(referrer, dict):
        cleaned = _clean_urls(referrer, ("url", "link"), keep)
        if cleaned is not referrer:
            result = {**result, "referrer": cleaned}
    if properties is not None:
        keys = (*_PAGE_KEYS, *url_names) if call in _PAGE_CALLS else url_names
        if keys:
            properties = _clean_urls(properties, keys, keep)
        for path in nested:
            properties = _clean_at(properties, path, keep)
    return result, properties


def _clean_at(value: Any, path: UrlPath, keep: UrlQuery) -> Any:
    """``value`` with the URL at ``path`` in it cleaned (copied where it changed)."""
    if not path:
        if not isinstance(value, str):
            return value
        cleaned = clean_url(value, keep)
        return value if cleaned == value else cleaned
    key, rest = path[0], path[1:]
    if key is None:
        if not isinstance(value, list):
            return value
        items = value
        for i, item in enumerate(value):
            cleaned = _clean_at(item, rest, keep)
            if cleaned is not item:
                if items is value:
                    items = list(value)
                items[i] = cleaned
        return items
    if not isinstance(value, dict) or key not in value:
        return value
    item = value[key]
    cleaned = _clean_at(item, rest, keep)
    return value if cleaned is item else {**value, key: cleaned}


def _clean_urls(fields: dict[str, Any], keys: tuple[str, ...], keep: UrlQuery
                ) -> dict[str, Any]:
    result = fields
    for key in keys:
        value = fields.get(key)
        if isinstance(value, str):
            cleaned = clean_search(value, keep) if key == "search" else clean_url(value, keep)
            if cleaned != value:
                if result is fields:
                    result = dict(fields)
                result[key] = cleaned
    return result


def consent_allows(context: dict[str, Any], purpose: str | None) -> bool:
    """Whether ``context.consent`` covers ``purpose``; True when no consent was sent.

    Reads Segment's consent shape, ``{"categoryPreferences": {"Analytics": true}}``
    (category names compared case-insensitively). A purpose with no matching category
    counts as not consented once any preference is given. Without a purpose (an
    uncataloged event, or an entry with no ``purpose:``), the event is allowed unless
    the preferences grant nothing at all: a sender who refused every category has
    refused this event too, whatever it turns out to be.

    >>> refused = {"consent": {"categoryPreferences": {"Analytics": False}}}
    >>> consent_allows(refused, None), consent_allows({}, None)
    (False, True)
    """
    consent = context.get("consent")
    if not isinstance(consent, dict):
        return True
    prefs = consent.get("categoryPreferences")
    if not isinstance(prefs, dict) or not prefs:
        return True
    if not purpose:
        return any(v is True for v in prefs.values())
    wanted = purpose.strip().lower()
    return any(str(k).strip().lower() == wanted and v is True for k, v in prefs.items())
