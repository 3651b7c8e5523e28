"""The hot path's payload step equals the pure step it short-cuts, on any input.

``Guard.payload`` skips ``protect_payload`` when a payload has nothing to protect, judged
from names it has already seen per spec (a set per spec, one superset test per payload).
Whatever order payloads come in, and however often, it must answer exactly what
``protect_payload`` answers.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from nerve.catalog import EventSpec, PropertySpec, Version
from nerve.pipeline import Guard, PrivacyPolicy, protect_payload

PLAIN = EventSpec(name="viewed", version=Version(1), properties=(
    PropertySpec("sku", "string"),
    PropertySpec("ip", "string"),  # cataloged as not personal: kept, despite its name
))
PERSONAL = EventSpec(name="signed_up", version=Version(1), properties=(
    PropertySpec("plan", "string"),
    PropertySpec("email", "string", pii="personal"),
    PropertySpec("address", "object", properties=(
        PropertySpec("street", "string", pii="personal"),
    )),
))
LISTS = EventSpec(name="party", version=Version(1), properties=(
    PropertySpec("tags", "array", items=PropertySpec("items", "string")),
    PropertySpec("meta", "object"),  # free-form: what it holds is judged by name
))
GUESTS = EventSpec(name="party_created", version=Version(1), properties=(
    PropertySpec("guests", "array", items=PropertySpec("items", "object", properties=(
        PropertySpec("guest_email", "string", pii="personal"),
        PropertySpec("note", "string", pii="sensitive"),
    ))),
))
SPECS = [None, PLAIN, PERSONAL, LISTS, GUESTS]
NAMES = ["sku", "ip", "plan", "email", "user_email", "phone", "address", "color", "Email",
         "emailAddress", "tags", "meta", "guests"]

scalars = st.one_of(st.none(), st.text(max_size=4), st.integers())
inner = st.dictionaries(st.sampled_from(["street", "city", "guest_email", "note",
                                         "firstName"]), scalars, max_size=3)
values = st.one_of(scalars, inner, st.lists(st.one_of(scalars, inner), max_size=3))
payloads = st.dictionaries(st.sampled_from(NAMES), values, max_size=5)


@settings(max_examples=200, deadline=None)
@given(calls=st.lists(st.tuples(st.sampled_from(SPECS), payloads), min_size=1, max_size=12),
       personal=st.sampled_from(["hash", "drop", "keep"]), guard_unknown=st.booleans())
def test_guard_payload_equals_protect_payload(calls: list[tuple[EventSpec | None,
                                                                dict[str, Any]]],
                                              personal: str, guard_unknown: bool) -> None:
    policy = PrivacyPolicy(secret=b"k", personal=personal,  # type: ignore[arg-type]
                           guard_unknown=guard_unknown)
    guard = Guard(policy)
    for spec, payload in calls * 2:  # the second time round, every name is cached
        expected, changed = protect_payload(payload, spec, policy)
        # not known valid: any payload (an object where a string is declared included)
        got, got_changed = guard.payload(payload, spec, valid=False)
        assert got == expected
        assert got_changed == changed
        if _shaped_as_declared(payload, spec):  # as a payload that passed its schema
            assert guard.payload(payload, spec) == (expected, changed)


def _shaped_as_declared(payload: dict[str, Any], spec: EventSpec | None) -> bool:
    """Whether every declared property holds an object or array only where the spec
    declares one (what the schema checks before ``valid`` is passed as True)."""
    declared = {p.name: p for p in spec.properties} if spec is not None else {}
    return all(name not in declared or _fits(value, declared[name])
               for name, value in payload.items())


def _fits(value: Any, prop: PropertySpec) -> bool:
    if isinstance(value, dict):
        return prop.type == "object"
    if isinstance(value, list):
        return prop.type == "array" and (
            prop.items is None or all(_fits(item, prop.items) for item in value))
    return True


def test_an_object_where_a_string_is_declared_is_judged_by_the_names_inside() -> None:
    """An invalid event (quarantined) sent {"sku": {"email": ...}} for the plain string
    sku: the email was kept raw in the quarantine."""
    guard = Guard(PrivacyPolicy(secret=b"k"))
    payload = {"sku": {"email": "ann@example.com", "size": 42}}
    protected, changed = guard.payload(payload, PLAIN, valid=False)
    assert protected["sku"]["email"].startswith("h:")
    assert protected["sku"]["size"] == 42
    assert changed == 1
    assert protect_payload(payload, PLAIN, guard.policy) == (protected, changed)
    # context.traits are never validated against identify: judged as sent, always
    identify = EventSpec(name="identify", version=Version(1), type="identify",
                         properties=(PropertySpec("plan", "string"),))
    guard = Guard(PrivacyPolicy(secret=b"k"), identify)
    context = guard.context({"traits": {"plan": {"email": "ann@example.com"}}}, None, None)
    assert context["traits"]["plan"]["email"].startswith("h:")


def test_a_personal_looking_name_is_never_cached_as_safe() -> None:
    guard = Guard(PrivacyPolicy(secret=b"k"))
    plain = {"color": "red"}
    assert guard.payload(plain, PLAIN)[0] is plain  # nothing to protect: not even copied
    protected, changed = guard.payload({"color": "red", "user_email": "a@b.c"}, PLAIN)
    assert changed == 1
    assert protected["user_email"].startswith("h:")
    # and again, now that "color" is known to be safe for this spec
    assert guard.payload({"user_email": "a@b.c"}, PLAIN)[1] == 1


def test_a_withheld_violation_still_says_what_the_rule_expects() -> None:
    """A personal property of the wrong type read ``breaks the type rule (value withheld:
    personal data)``: the client's author could not tell what to send instead."""
    from nerve.catalog import Catalog
    from nerve.pipeline import withhold_values

    spec = EventSpec(name="signed_up", version=Version(1), properties=(
        PropertySpec("birth_year", "integer", pii="personal"),
        PropertySpec("phone", "string", pii="personal", pattern="^[+][0-9-]+$"),
        PropertySpec("plan", "string", enum=("free", "plus")),
    ))
    payload = {"birth_year": "nineteen 1873", "phone": "call 555-1873", "plan": "gold"}
    violations = Catalog.from_specs([spec]).explainer(spec)(payload)
    protected, _ = protect_payload(payload, spec, PrivacyPolicy(secret=b"k"))
    withheld = {v["path"]: v["message"] for v in withhold_values(violations, payload,
                                                                 protected)}
    assert withheld["$.properties.birth_year"] == (
        "$.properties.birth_year: breaks the type rule, expected integer "
        "(value withheld: personal data)")
    assert withheld["$.properties.phone"] == (
        '$.properties.phone: breaks the pattern rule, expected to match "^[+][0-9-]+$" '
        "(value withheld: personal data)")
    assert "1873" not in " ".join(withheld.values())
    # a value that is not personal is still quoted
    assert '"gold"' in withheld["$.properties.plan"]
