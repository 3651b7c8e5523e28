"""Every version of an event is protected as its strictest version classes each field.

A client still sending an older version (``context.event_version``) is validated against
it, but a field another version classes ``personal`` or ``sensitive`` is personal data
whatever version the client declares: ``Guard`` protects each property path (nested ones
and an array's items too) by the strictest treatment any version's class gives it,
worked out once when it is built.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from nerve.catalog import Catalog, EventSpec, PropertySpec, Version
from nerve.pipeline import Guard, PrivacyPolicy, protect_payload, pseudonymise
from nerve.pipeline.privacy import protecting_spec, treatment

KEY = b"k"
POLICY = PrivacyPolicy(secret=KEY)


def _signup(version: int, email: str = "none", note: str = "none", phone: str = "none",
            extra: tuple[PropertySpec, ...] = (), handling: str | None = None) -> EventSpec:
    return EventSpec("signup", Version(version), properties=(
        PropertySpec("plan", "string"),
        PropertySpec("email", "string", pii=email, handling=handling),
        PropertySpec("guests", "array", items=PropertySpec("items", "object", properties=(
            PropertySpec("note", "string", pii=note),))),
        PropertySpec("contact", "object", properties=(
            PropertySpec("phone", "string", pii=phone),)),
        *extra))


def _guard(*specs: EventSpec, policy: PrivacyPolicy = POLICY) -> tuple[Guard, Catalog]:
    catalog = Catalog.from_specs(list(specs))
    return Guard(policy, None, catalog), catalog


def test_an_old_version_is_protected_as_a_newer_one_classes_its_fields() -> None:
    guard, catalog = _guard(_signup(1), _signup(2, email="personal", note="sensitive",
                                                phone="pseudonymous"))
    old = catalog.get("signup", "1")
    assert old is not None
    assert old.property("email").pii == "none"  # type: ignore[union-attr]
    sent = {"plan": "pro", "email": "a@b.c", "guests": [{"note": "ill", "x": 1}],
            "contact": {"phone": "+1"}}
    assert guard.payload(sent, old) == ({
        "plan": "pro", "email": pseudonymise("a@b.c", KEY), "guests": [{"x": 1}],
        "contact": {"phone": pseudonymise("+1", KEY)}}, 3)


def test_the_latest_version_is_protected_as_an_older_one_classes_its_fields() -> None:
    guard, catalog = _guard(_signup(1, email="sensitive"), _signup(2))
    assert guard.payload({"email": "a@b.c"}, catalog.get("signup")) == ({}, 1)


def test_a_handling_of_another_version_applies() -> None:
    guard, catalog = _guard(_signup(1), _signup(2, email="personal", handling="drop"))
    assert guard.payload({"email": "a@b.c", "plan": "x"}, catalog.get("signup", "1")) == (
        {"plan": "x"}, 1)


def test_a_field_only_another_version_declares_is_protected_by_its_class() -> None:
    """An invalid event (bound for the quarantine) may carry it: a sensitive one is
    dropped, not hashed by its name; one another version declares ``none`` stays judged
    by its name, as for any undeclared value."""
    newer = _signup(2, extra=(PropertySpec("diagnosis", "string", pii="sensitive"),
                              PropertySpec("user_email", "string")))
    guard, catalog = _guard(_signup(1), newer)
    assert guard.payload({"diagnosis": "ill", "user_email": "a@b.c"},
                         catalog.get("signup", "1"), valid=False) == (
        {"user_email": pseudonymise("a@b.c", KEY)}, 2)


def test_a_spec_no_other_version_is_stricter_than_is_used_as_it_is() -> None:
    v1, v2 = _signup(1, email="personal"), _signup(2, email="personal")
    assert protecting_spec(v1, [v1, v2], POLICY) is v1
    assert protecting_spec(v2, [v1, v2], POLICY) is v2
    guard, _ = _guard(v1, v2)
    assert guard._protecting == {}  # nothing to look up but the spec itself


def test_an_allowed_sensitive_value_is_not_kept_where_another_version_hashes_it() -> None:
    policy = PrivacyPolicy(secret=KEY, allow_sensitive=frozenset({"signup.email"}))
    guard, catalog = _guard(_signup(1, email="sensitive"), _signup(2, email="personal"),
                            policy=policy)
    hashed = pseudonymise("a@b.c", KEY)
    for version in ("1", "2"):
        assert guard.payload({"email": "a@b.c"}, catalog.get("signup", version))[0] == {
            "email": hashed}


CLASSES = st.tuples(st.sampled_from(["none", "pseudonymous", "personal", "sensitive"]),
                    st.sampled_from([None, "hash", "drop", "keep"]))


def _version(number: int, classes: list[tuple[str, str | None]]) -> EventSpec:
    (a, a_how), (b, b_how), (c, c_how) = classes
    return EventSpec("signup", Version(number), properties=(
        PropertySpec("a", "string", pii=a, handling=a_how),
        PropertySpec("box", "object", properties=(
            PropertySpec("b", "string", pii=b, handling=b_how),)),
        PropertySpec("tags", "array", items=PropertySpec("items", "string", pii=c,
                                                        handling=c_how))))


@settings(max_examples=150, deadline=None)
@given(versions=st.lists(st.lists(CLASSES, min_size=3, max_size=3), min_size=1, max_size=4),
       personal=st.sampled_from(["hash", "drop", "keep"]), allow=st.booleans(),
       text=st.text(min_size=1, max_size=3))
def test_every_version_stores_what_the_strictest_version_of_each_field_would(
        versions: list[list[tuple[str, str | None]]], personal: str, allow: bool,
        text: str) -> None:
    policy = PrivacyPolicy(secret=KEY, personal=personal,  # type: ignore[arg-type]
                           allow_sensitive=frozenset({"signup.a", "signup.b"} if allow
                                                     else ()))
    specs = [_version(i + 1, classes) for i, classes in enumerate(versions)]
    guard, catalog = _guard(*specs, policy=policy)

    def strictest(pick: Any, name: str) -> PropertySpec:
        order = ("drop", "hash", "truncate", "keep")
        return min((pick(s) for s in specs),
                   key=lambda p: order.index(treatment(p, name, "signup", policy)))

    a = strictest(lambda s: s.properties[0], "a")
    b = strictest(lambda s: s.properties[1].properties[0], "b")
    c = strictest(lambda s: s.properties[2].items, "tags")
    expected_spec = EventSpec("signup", Version(99), properties=(
        a, PropertySpec("box", "object", properties=(b,)),
        PropertySpec("tags", "array", items=c)))
    payload = {"a": text, "box": {"b": text}, "tags": [text, text]}
    expected = protect_payload(payload, expected_spec, policy)[0]
    for spec in catalog.versions("signup"):
        assert guard.payload(payload, spec)[0] == expected
        assert guard.payload(payload, spec, valid=False)[0] == expected


def _order(version: int, address: PropertySpec, *extra: PropertySpec) -> EventSpec:
    return EventSpec("order_placed", Version(version), properties=(address, *extra))


STREET = PropertySpec("address", "object", properties=(
    PropertySpec("city", "string"), PropertySpec("street", "string", pii="personal")))


def test_a_field_another_version_declares_an_object_is_treated_by_its_inside() -> None:
    """1.0.0 sends ``address`` as a string, ``pii: none``; 2.0.0 declares it an object
    with a personal ``street``: the string holds the street, so it is hashed whole, as a
    value not shaped as declared is."""
    guard, catalog = _guard(_order(1, PropertySpec("address", "string")), _order(2, STREET))
    sent = {"address": "1 Main St, Springfield"}
    assert guard.payload(sent, catalog.get("order_placed", "1")) == (
        {"address": pseudonymise("1 Main St, Springfield", KEY)}, 1)
    assert guard.payload({"address": {"city": "x", "street": "1 Main St"}},
                         catalog.get("order_placed", "2")) == (
        {"address": {"city": "x", "street": pseudonymise("1 Main St", KEY)}}, 1)


def test_the_strictest_inside_of_every_other_shape_applies() -> None:
    """An array of sensitive items in 3.0.0 drops 1.0.0's string whole (stricter than 2.0.0's
    personal ``street``); a ``drop`` handling inside applies as well."""
    items = PropertySpec("address", "array", items=PropertySpec(
        "items", "string", pii="sensitive"))
    guard, catalog = _guard(_order(1, PropertySpec("address", "string"),
                                   PropertySpec("plan", "string")),
                            _order(2, STREET), _order(3, items))
    assert guard.payload({"address": "1 Main St", "plan": "pro"},
                         catalog.get("order_placed", "1")) == ({"plan": "pro"}, 1)
    dropped = replace(STREET, properties=(PropertySpec(
        "street", "string", pii="personal", handling="drop"),))
    guard, catalog = _guard(_order(1, PropertySpec("address", "string")), _order(2, dropped))
    assert guard.payload({"address": "1 Main St"}, catalog.get("order_placed", "1")) == ({}, 1)


def test_another_version_of_the_same_type_or_with_nothing_protected_inside_changes_nothing(
        ) -> None:
    plain = PropertySpec("address", "object", properties=(PropertySpec("city", "string"),))
    v1, v2 = _order(1, PropertySpec("address", "string")), _order(2, plain)
    assert protecting_spec(v1, [v1, v2], POLICY) is v1
    v3 = _order(3, PropertySpec("address", "object", properties=(
        PropertySpec("street", "string", pii="personal"),)))
    # an object sent under 2.0.0 is walked by the names inside it, not hashed whole
    guard, catalog = _guard(v2, v3)
    assert guard.payload({"address": {"city": "x", "street": "1 Main St"}},
                         catalog.get("order_placed", "2")) == (
        {"address": {"city": "x", "street": pseudonymise("1 Main St", KEY)}}, 1)


def test_a_url_another_version_declares_is_cleaned_in_every_version() -> None:
    """``href`` and ``target.landing`` have ``format: uri`` only in 2.0.0: a 1.0.0 event's
    are cleaned as ``[privacy] url_query`` says all the same (the query strings carry
    sign-in tokens and e-mails whatever version the app declares)."""
    uri = {"type": "string", "format": "uri"}
    def clicked(version: int, fmt: dict[str, str]) -> EventSpec:
        return EventSpec("link_clicked", Version(version), properties=(
            PropertySpec("href", **fmt), PropertySpec("text", "string"),
            PropertySpec("target", "object", properties=(PropertySpec("landing", **fmt),))))
    guard, catalog = _guard(clicked(1, {"type": "string"}), clicked(2, uri),
                            policy=PrivacyPolicy(secret=KEY, url_query="drop"))
    sent = {"href": "https://b.example/r?token=s3cr3t", "text": "?a=b",
            "target": {"landing": "https://b.example/l?email=a%40b.c#x"}}
    for version in ("1", "2"):
        assert guard.urls("track", {}, sent, None, catalog.get("link_clicked", version))[1] == {
            "href": "https://b.example/r", "text": "?a=b",
            "target": {"landing": "https://b.example/l"}}
