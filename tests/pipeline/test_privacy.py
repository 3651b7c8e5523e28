from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nerve.catalog import Catalog, EventSpec, PropertySpec, Version
from nerve.errors import WorkspaceError
from nerve.pipeline import (
    Guard,
    PrivacyPolicy,
    allow_sensitive_problems,
    consent_allows,
    protect_context,
    protect_payload,
    pseudonymise,
    truncate_ip,
)

SECRET = b"s3cret-for-tests"
POLICY = PrivacyPolicy(secret=SECRET)

SIGNUP = EventSpec(
    name="signup",
    version=Version(1),
    properties=(
        PropertySpec("plan", "string"),
        PropertySpec("email", "string", pii="personal"),
        PropertySpec("phone", "string", pii="personal", handling="drop"),
        PropertySpec("device_id", "string", pii="pseudonymous"),
        PropertySpec("diagnosis", "string", pii="sensitive"),
        PropertySpec("address", "object", pii="personal", properties=(
            PropertySpec("city", "string"),
            PropertySpec("street", "string", pii="personal"),
        )),
    ),
)


def test_each_pii_class_is_treated_by_policy() -> None:
    raw = {"plan": "pro", "email": "ann@example.com", "phone": "+49 30 1234",
           "device_id": "dev-1", "diagnosis": "flu",
           "address": {"city": "Berlin", "street": "Unter den Linden 1"}}
    out, changed = protect_payload(raw, SIGNUP, POLICY)
    assert out["plan"] == "pro"
    assert out["email"] == pseudonymise("ann@example.com", SECRET)
    assert out["device_id"] == pseudonymise("dev-1", SECRET)
    assert "phone" not in out  # the property's own handling: drop
    assert "diagnosis" not in out  # sensitive: dropped by default
    assert out["address"] == {"city": "Berlin",
                              "street": pseudonymise("Unter den Linden 1", SECRET)}
    assert changed == 5
    assert raw["email"] == "ann@example.com"  # input untouched


def test_policy_options() -> None:
    keep = PrivacyPolicy(secret=SECRET, personal="keep", allow_sensitive=frozenset(
        {"signup.diagnosis"}))
    out, _ = protect_payload({"email": "a@b.c", "diagnosis": "flu"}, SIGNUP, keep)
    assert out == {"email": "a@b.c", "diagnosis": "flu"}
    drop = PrivacyPolicy(secret=SECRET, personal="drop")
    out, _ = protect_payload({"email": "a@b.c", "plan": "x"}, SIGNUP, drop)
    assert out == {"plan": "x"}


def test_an_allowed_sensitive_value_follows_its_own_handling() -> None:
    """allow_sensitive lifts the drop; the catalog's handling then applies (a sensitive
    value declared ``handling: hash`` was kept in clear once allowed)."""
    spec = EventSpec(name="visit", version=Version(1), properties=(
        PropertySpec("diagnosis", "string", pii="sensitive", handling="hash"),
        PropertySpec("clinic_ip", "string", pii="sensitive", handling="truncate",
                     format="ipv4"),
        PropertySpec("notes", "string", pii="sensitive", handling="drop"),
        PropertySpec("ward", "string", pii="sensitive", handling="keep")))
    raw = {"diagnosis": "flu", "clinic_ip": "10.1.2.3", "notes": "x", "ward": "B"}
    allowed = PrivacyPolicy(secret=SECRET, allow_sensitive=frozenset(
        f"visit.{name}" for name in raw))
    assert protect_payload(raw, spec, allowed)[0] == {
        "diagnosis": pseudonymise("flu", SECRET), "clinic_ip": "10.1.2.0", "ward": "B"}
    assert protect_payload(raw, spec, POLICY)[0] == {}  # not allowed: all dropped


def test_unknown_personal_looking_properties_are_hashed() -> None:
    out, changed = protect_payload({"user_email": "a@b.c", "color": "red"}, None, POLICY)
    assert out == {"user_email": pseudonymise("a@b.c", SECRET), "color": "red"}
    assert changed == 1
    lax = PrivacyPolicy(secret=SECRET, guard_unknown=False)
    assert protect_payload({"user_email": "a@b.c"}, None, lax)[0] == {"user_email": "a@b.c"}


def test_personal_properties_inside_array_items_are_protected() -> None:
    """A personal property of an array's objects is treated as its class says."""
    spec = EventSpec(name="party_created", version=Version(1), properties=(
        PropertySpec("guests", "array", items=PropertySpec("items", "object", properties=(
            PropertySpec("guest_email", "string", pii="personal", handling="hash"),
            PropertySpec("guest_medical", "string", pii="sensitive"),
            PropertySpec("seat", "integer"),
        ))),
        PropertySpec("emails", "array", items=PropertySpec("items", "string", pii="personal",
                                                           handling="drop")),
    ))
    raw = {"guests": [{"guest_email": "ann@example.org", "guest_medical": "asthma",
                       "seat": 3}, "not an object"],
           "emails": ["bob@example.org", "cy@example.org"]}
    out, changed = protect_payload(raw, spec, POLICY)
    guest = out["guests"][0]
    assert guest["guest_email"] == pseudonymise("ann@example.org", SECRET)
    assert "guest_medical" not in guest
    assert guest["seat"] == 3
    # not the object the items declare: it may be a flattened guest_medical, so it goes
    # as the strictest class inside (sensitive) has it
    assert out["guests"] == [guest]
    assert out["emails"] == []  # each item dropped
    assert changed == 5
    for raw_value in ("ann@", "asthma", "bob@", "cy@"):
        assert raw_value not in str(out)


def test_an_object_its_class_drops_is_dropped_with_its_nested_properties() -> None:
    """A sensitive object (or a personal one handled by ``drop``) goes whole, even when
    the properties it declares inside are of class ``none`` (the default): its GPS
    coordinates were kept as sent."""
    spec = EventSpec(name="workout_logged", version=Version(1), properties=(
        PropertySpec("location", "object", pii="sensitive", handling="drop", properties=(
            PropertySpec("lat", "number"), PropertySpec("lon", "number", pii="none"))),
        PropertySpec("home", "object", pii="personal", handling="drop", properties=(
            PropertySpec("street", "string"),)),
        PropertySpec("route", "object", pii="sensitive", properties=(
            PropertySpec("city", "string"),)),
        PropertySpec("workout_type", "string"),
    ))
    raw = {"location": {"lat": 37.710123, "lon": -122.410456},
           "home": {"street": "Raw Street 17"}, "route": {"city": "Lisbon"},
           "workout_type": "run"}
    out, changed = protect_payload(raw, spec, POLICY)
    assert out == {"workout_type": "run"}
    assert changed == 3
    # allowed, a sensitive object without a handling is kept, and what it declares
    # applies inside; one whose own handling is drop is still dropped
    allowed = PrivacyPolicy(secret=SECRET, allow_sensitive=frozenset(
        {"workout_logged.location", "workout_logged.route"}))
    out, _ = protect_payload(raw, spec, allowed)
    assert out["route"] == {"city": "Lisbon"}
    assert "location" not in out
    assert "home" not in out
    # a personal object handled by the policy's drop goes whole too
    address = EventSpec(name="signup", version=Version(1), properties=(
        PropertySpec("address", "object", pii="personal", properties=(
            PropertySpec("city", "string"),)),))
    drop = PrivacyPolicy(secret=SECRET, personal="drop")
    assert protect_payload({"address": {"city": "Berlin"}}, address, drop)[0] == {}


def test_uncataloged_camel_case_and_nested_personal_names_are_hashed() -> None:
    raw = {"emailAddress": "camel@example.org", "firstName": "Ann",
           "contact": {"email": "nested@example.org", "kind": "work"},
           "people": [{"phone_number": "+33 1"}], "zipper": "yes"}
    out, changed = protect_payload(raw, None, POLICY)
    assert out["emailAddress"] == pseudonymise("camel@example.org", SECRET)
    assert out["firstName"] == pseudonymise("Ann", SECRET)
    assert out["contact"] == {"email": pseudonymise("nested@example.org", SECRET),
                              "kind": "work"}
    assert out["people"] == [{"phone_number": pseudonymise("+33 1", SECRET)}]
    assert out["zipper"] == "yes"
    assert changed == 4
    # without guard_unknown, uncataloged values are kept as sent
    kept, none = protect_payload(raw, None, PrivacyPolicy(secret=SECRET, guard_unknown=False))
    assert kept == raw
    assert none == 0


PEOPLES_NAMES = ["employee_name", "employeeName", "patient_name", "customerName",
                 "full_name", "fullName", "first_name", "surname", "username", "user_name",
                 "given_name", "family_name", "middle_name", "maiden_name", "nickname",
                 "cardholder_name", "account_holder_name", "guardian_name", "contact_name",
                 "recipient_name", "doctor_name", "guest_name", "patientFullName"]
THINGS_NAMES = ["event_name", "product_name", "page_name", "screen_name", "file_name",
                "app_name", "company_name", "plan_name", "campaign_name", "brand_name",
                "category_name", "hostname", "host_name", "name", "display_name",
                "client_name", "driver_name", "provider_name", "parent_name", "rename"]


@pytest.mark.parametrize("name", PEOPLES_NAMES)
def test_uncataloged_names_of_people_are_hashed(name: str) -> None:
    """A person's name under a name of its own (an HR tool's ``employee_name``, a
    clinic's ``patient_name``) was stored as sent: only first, last and full names
    were guarded."""
    out, changed = protect_payload({name: "Jane Rawdoe"}, None, POLICY)
    assert (out[name], changed) == (pseudonymise("Jane Rawdoe", SECRET), 1)


@pytest.mark.parametrize("name", THINGS_NAMES)
def test_uncataloged_names_of_things_are_kept(name: str) -> None:
    """Names of events, products, pages and screens are what analytics breaks down by:
    hashing them would break every such breakdown without a word."""
    out, changed = protect_payload({name: "Checkout"}, None, POLICY)
    assert (out[name], changed) == ("Checkout", 0)


def test_hash_is_keyed() -> None:
    assert pseudonymise("a@b.c", b"one") != pseudonymise("a@b.c", b"two")
    assert pseudonymise("a@b.c", b"one").startswith("h:")
    # an unkeyed sha256 of the value must not appear
    import hashlib

    assert hashlib.sha256(b"a@b.c").hexdigest()[:32] not in pseudonymise("a@b.c", b"one")


@given(st.binary(max_size=80), st.binary(max_size=80), st.text(), st.text())
def test_hash_is_hmac_sha256_of_the_value_with_the_secret(one: bytes, two: bytes, a: str,
                                                          b: str) -> None:
    # the documented form (anyone holding the secret can compute it), whatever the secrets
    # and values hashed before: a reused keyed state must carry no key or text between calls
    import hashlib
    import hmac

    for secret, value in ((one, a), (two, b), (one, b), (two, a)):
        expected = hmac.new(secret, value.encode("utf-8", "surrogatepass"),
                            hashlib.sha256).hexdigest()[:32]
        assert pseudonymise(value, secret) == "h:" + expected


@pytest.mark.parametrize(("ip", "expected"), [
    ("192.168.1.77", "192.168.1.0"),
    ("8.8.8.8", "8.8.8.0"),
    ("2001:db8:85a3:1:2:8a2e:370:7334", "2001:db8:85a3::"),
    ("::1", "::"),
    ("not-an-ip", None),
])
def test_truncate_ip(ip: str, expected: str | None) -> None:
    assert truncate_ip(ip) == expected


@pytest.mark.parametrize(("ip", "expected"), [
    ("198.51.100.25:5555", "198.51.100.0"),
    ("[2001:db8:abcd:12::1]:443", "2001:db8:abcd::"),
    ("[2001:db8:abcd:12::1]", "2001:db8:abcd::"),
    ("[::ffff:198.51.100.26]:80", "198.51.100.0"),
    ("198.51.100.25:", None),
    ("198.51.100.25:http", None),
    ("[1.2.3.4:80]:80", None),
])
def test_an_address_with_its_port_is_truncated_as_the_address(ip: str,
                                                              expected: str | None) -> None:
    """Proxies such as Azure's append the client's port to X-Forwarded-For: the IP was
    then hashed whole, port included (a new pseudonym per connection, no /24 kept)."""
    assert truncate_ip(ip) == expected
    if expected is not None:
        assert protect_context({"ip": ip}, None, POLICY)["ip"] == expected


def test_context_ip_and_traits() -> None:
    identify = EventSpec(name="identify", version=Version(1), type="identify",
                         properties=(PropertySpec("email", "string", pii="personal"),))
    ctx = {"ip": "203.0.113.9", "traits": {"email": "x@y.z", "plan": "pro"}, "locale": "de"}
    out = protect_context(ctx, identify, POLICY)
    assert out["ip"] == "203.0.113.0"
    assert out["traits"] == {"email": pseudonymise("x@y.z", SECRET), "plan": "pro"}
    assert out["locale"] == "de"
    assert "ip" not in protect_context(ctx, identify, PrivacyPolicy(secret=SECRET, ip="drop"))


@pytest.mark.parametrize("ip", [3405803853, ["203.0.113.77"], {"v4": "203.0.113.77"}])
@pytest.mark.parametrize("treatment", ["truncate", "hash", "drop"])
def test_a_context_ip_that_is_not_text_is_not_kept_raw(ip: Any, treatment: str) -> None:
    # 3405803853 is 203.0.113.77 as a number
    policy = PrivacyPolicy(secret=SECRET, ip=treatment)
    out = protect_context({"ip": ip}, None, policy)
    if treatment == "drop":
        assert "ip" not in out
    else:
        assert out["ip"] == pseudonymise(ip, SECRET)
    guard = Guard(policy, None)
    assert guard.context({"ip": ip}, "198.51.100.7", None) == out


def test_consent() -> None:
    assert consent_allows({}, "analytics")
    ctx = {"consent": {"categoryPreferences": {"Analytics": True, "Advertising": False}}}
    assert consent_allows(ctx, "analytics")
    assert not consent_allows(ctx, "advertising")
    assert not consent_allows(ctx, "billing")  # preferences given, purpose not covered


@pytest.mark.parametrize(("prefs", "allowed"), [
    (None, True),                                      # no consent object
    ({}, True),                                        # no preference given
    ({"Analytics": True, "Advertising": False}, True),  # something granted
    ({"Analytics": False, "Advertising": False}, False),
    ({"Analytics": "yes"}, False),                     # only true grants
])
def test_consent_without_a_purpose_needs_some_grant(prefs: dict[str, Any] | None,
                                                    allowed: bool) -> None:
    """An event with no catalog purpose (uncataloged) is refused only when the sender
    granted nothing at all."""
    ctx = {} if prefs is None else {"consent": {"categoryPreferences": prefs}}
    assert consent_allows(ctx, None) is allowed
    assert consent_allows(ctx, "") is allowed
    assert Guard(PrivacyPolicy(secret=SECRET)).consents(ctx, None) is allowed
    assert Guard(PrivacyPolicy(secret=SECRET, enforce_consent=False)).consents(ctx, None)


def test_policy_from_config_errors_name_the_key() -> None:
    with pytest.raises(WorkspaceError, match=r"\[privacy\] personal"):
        PrivacyPolicy.from_config({"personal": "encrypt"}, SECRET)
    policy = PrivacyPolicy.from_config({"ip": "drop", "allow_sensitive": ["a.b"]}, SECRET)
    assert policy.ip == "drop"
    assert policy.allow_sensitive == frozenset({"a.b"})


VISIT = EventSpec("visit", Version(1), properties=(
    PropertySpec("diagnosis", "string", pii="sensitive"),
    PropertySpec("vitals", "object", properties=(
        PropertySpec("blood_type", "string", pii="sensitive"),)),
    PropertySpec("allergies", "array", items=PropertySpec("allergies", "string",
                                                          pii="sensitive")),
    PropertySpec("email", "string", pii="personal"),
))


def test_allow_sensitive_entries_must_name_sensitive_properties_of_the_catalog() -> None:
    """A typo ("visit.diagnosys") was accepted, and the value it meant to keep dropped."""
    catalog = Catalog.from_specs([VISIT])
    named = ["visit.diagnosis", "visit.blood_type", "visit.allergies"]
    assert allow_sensitive_problems(named, catalog) == []
    payload = {"diagnosis": "flu", "vitals": {"blood_type": "A"}, "allergies": ["nuts"]}
    dropped, _ = protect_payload(payload, VISIT, POLICY)
    for entry in named:  # each name accepted is one the privacy step keeps a value for
        policy = PrivacyPolicy(secret=SECRET, allow_sensitive=frozenset({entry}))
        assert protect_payload(payload, VISIT, policy)[0] != dropped

    typo, event, personal, bare = allow_sensitive_problems(
        ["visit.diagnosys", "vist.diagnosis", "visit.email", "diagnosis"], catalog)
    assert typo.startswith("'visit.diagnosys': visit has no property 'diagnosys'")
    assert typo.endswith("did you mean 'visit.diagnosis'?")
    assert event.startswith("'vist.diagnosis': no event 'vist' in the catalog")
    assert event.endswith("did you mean 'visit.diagnosis'?")
    assert personal.startswith("'visit.email': visit.email is personal, not sensitive")
    assert bare.startswith("'diagnosis': expected 'event.property'")
    assert "(the catalog has no sensitive property)" in allow_sensitive_problems(
        ["signup.diagnosis"], Catalog.from_specs([EventSpec("signup", Version(1))]))[0]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)


@given(email=json_values.filter(lambda v: v is not None), diagnosis=json_values,
       extra=st.dictionaries(st.text(), json_values, max_size=4))
def test_no_raw_personal_or_sensitive_value_survives(email: Any, diagnosis: Any,
                                                     extra: dict[str, Any]) -> None:
    payload = {**extra, "email": email, "diagnosis": diagnosis}
    out, _ = protect_payload(payload, SIGNUP, POLICY)
    assert "diagnosis" not in out
    assert out["email"] == pseudonymise(email, SECRET)
    assert out["email"] != email


def test_workspace_secret_is_created_once_and_private(tmp_path: Path) -> None:
    from nerve.workspace import init_workspace

    ws = init_workspace(tmp_path / "w")
    first = ws.secret()
    assert len(first) == 64
    assert ws.secret() == first
    assert (ws.data_dir / "secret.key").stat().st_mode & 0o077 == 0


def test_catalog_unused_import_guard() -> None:
    assert Catalog.from_specs([SIGNUP]).get("signup") is SIGNUP


@given(st.ip_addresses(v=4))
def test_the_ipv4_fast_path_agrees_with_ipaddress(address: Any) -> None:
    import ipaddress

    expected = str(ipaddress.ip_network(f"{address}/24", strict=False).network_address)
    assert truncate_ip(str(address)) == expected


@given(st.ip_addresses(v=4))
def test_an_ipv4_mapped_address_keeps_its_ipv4_network(address: Any) -> None:
    # a dual-stack listener (`nerve serve --host ::`) sees every IPv4 client as
    # ::ffff:a.b.c.d; their /48 would be "::" for all of them
    assert truncate_ip(f"::ffff:{address}") == truncate_ip(str(address))
    assert truncate_ip(f"::FFFF:{address}") == truncate_ip(str(address))


@pytest.mark.parametrize("text", ["1.2.3", "1.2.3.4.5", "01.2.3.4", "1.2.3.256", "1.2.3.x",
                                  "\u0661.2.3.4", " 1.2.3.4", ""])
def test_not_quite_ipv4_text_is_not_truncated_by_the_fast_path(text: str) -> None:
    import ipaddress

    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        assert truncate_ip(text) is None
    else:
        assert truncate_ip(text) == str(ipaddress.ip_network(f"{address}/24",
                                                            strict=False).network_address)
