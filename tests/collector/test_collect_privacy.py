"""Enrichment, consent and privacy as wired into ``Collector.collect`` (docs/privacy.md)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nerve.catalog import Catalog
from nerve.collector import Collector
from nerve.envelope import Envelope
from nerve.pipeline import pseudonymise
from nerve.pipeline.privacy import _pseudonym
from nerve.workspace import Workspace

SIGNUP = """\
name: signup
description: Someone signs up.
owner: growth
purpose: analytics
version: 1
retention: 400d
properties:
  plan: {type: string, enum: [free, pro], pii: none}
  email: {type: string, pii: personal, format: uri}
  device_id: {type: string, pii: pseudonymous}
  diagnosis: {type: string, pii: sensitive}
"""

AD_CLICK = """\
name: ad_click
description: An ad was clicked.
owner: growth
purpose: advertising
version: 1
retention: 30d
properties:
  campaign: {type: string, pii: none}
"""

IDENTIFY = """\
name: identify
type: identify
description: Who the user is.
owner: growth
purpose: analytics
version: 1
retention: 400d
properties:
  email: {type: string, pii: personal}
  name: {type: string, pii: personal, handling: drop}
"""

SECRET = b"collector-privacy-secret"
CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/120.0.0.0 Safari/537.36")


@pytest.fixture
def make_collector(make_workspace: Callable[..., Workspace]) -> Callable[..., Collector]:
    def make(extra_toml: str = "") -> Collector:
        ws = make_workspace({"signup.yaml": SIGNUP, "ad_click.yaml": AD_CLICK,
                             "identify.yaml": IDENTIFY}, extra_toml=extra_toml)
        ws.data_dir.mkdir(exist_ok=True)
        (ws.data_dir / "secret.key").write_bytes(SECRET)
        return Collector(ws, Catalog.load(ws.events_dir))

    return make


def collect(collector: Collector, *messages: dict[str, Any], **kwargs: Any
            ) -> tuple[list[Envelope], dict[tuple[str, str], int]]:
    key = collector.workspace.config.sources[0].write_key
    auth = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    got = collector.collect(orjson.dumps({"batch": list(messages)}), endpoint="batch",
                            authorization=auth, **kwargs)
    return got.envelopes, got.dropped


def signup(**properties: Any) -> dict[str, Any]:
    return {"type": "track", "event": "signup", "userId": "u1", "messageId": "m1",
            "properties": properties}


def test_each_pii_class_is_protected_before_the_row_exists(
        make_collector: Callable[..., Collector]) -> None:
    (env,), _ = collect(make_collector(), signup(
        plan="pro", email="https://ann.example", device_id="dev-42", diagnosis="flu"))
    props = orjson.loads(env["properties"] or "")
    assert props == {"plan": "pro", "email": pseudonymise("https://ann.example", SECRET),
                     "device_id": pseudonymise("dev-42", SECRET)}
    assert env["violations"] is None


def test_a_violation_never_quotes_a_protected_value(
        make_collector: Callable[..., Collector]) -> None:
    # "ann@example.com" is not a URI: the event is quarantined, its message must not quote it
    (env,), _ = collect(make_collector(), signup(email="ann@example.com", plan="gold"))
    text = orjson.dumps(env).decode()
    assert "ann@example.com" not in text
    violations = orjson.loads(env["violations"] or "")
    assert {v["path"] for v in violations} == {"$.properties.email", "$.properties.plan"}
    # values that are not personal are still quoted, to help fix the sender
    assert any("gold" in v["message"] for v in violations)


def test_an_object_sent_for_a_plain_property_is_judged_by_the_names_inside(
        make_collector: Callable[..., Collector]) -> None:
    """{"plan": {"email": ...}} for the string plan (pii none): the event is quarantined,
    and the email in it was kept raw, in the violation's quoted value too."""
    (env,), _ = collect(make_collector(), signup(plan={"email": "ann@example.com",
                                                       "tier": "gold"}))
    assert env["violations"] is not None
    assert "ann@example.com" not in orjson.dumps(env).decode()
    props = orjson.loads(env["properties"] or "")
    assert props["plan"] == {"email": pseudonymise("ann@example.com", SECRET), "tier": "gold"}


def test_an_undeclared_property_the_catalog_classes_elsewhere_is_hashed(
        make_collector: Callable[..., Collector]) -> None:
    """A misspelt event carries the catalog's pseudonymous ``device_id``: it reached the
    quarantine raw (its name does not look personal), and a replay loaded it so. Names
    classed only in traits (identify's ``name``) are not: an event's ``name`` is often a
    product's."""
    collector = make_collector()
    misspelt = {**signup(device_id="dev-42", diagnosis="flu", plan="pro", name="Runner"),
                "event": "sigup", "messageId": "m2"}
    extra = signup(plan="pro", promo={"device_id": "dev-42"})  # inside an undeclared object
    for env in collect(collector, misspelt, extra)[0]:
        assert env["violations"] is not None  # bound for the quarantine
        assert "dev-42" not in orjson.dumps(env).decode()
    (misspelt_env, extra_env), _ = collect(collector, misspelt, extra)
    assert orjson.loads(misspelt_env["properties"] or "") == {
        "device_id": pseudonymise("dev-42", SECRET),
        "diagnosis": pseudonymise("flu", SECRET), "plan": "pro", "name": "Runner"}
    assert orjson.loads(extra_env["properties"] or "")["promo"] == {
        "device_id": pseudonymise("dev-42", SECRET)}


def test_identify_traits_and_context_traits_are_protected(
        make_collector: Callable[..., Collector]) -> None:
    (env,), _ = collect(make_collector(), {
        "type": "identify", "userId": "u1", "traits": {"email": "ann@x.io", "name": "Ann"},
        "context": {"traits": {"email": "ann@x.io", "phone": "+49 301"}}})
    text = orjson.dumps(env).decode()
    for raw in ("ann@x.io", "Ann", "+49 301"):
        assert raw not in text
    traits = orjson.loads(env["traits"] or "")
    assert traits == {"email": pseudonymise("ann@x.io", SECRET),
                      "phone": pseudonymise("+49 301", SECRET)}


def test_track_context_traits_are_protected_in_both_columns(
        make_collector: Callable[..., Collector]) -> None:
    message = signup(plan="free")
    message["context"] = {"traits": {"email": "bob@x.io", "age_group": "65+"}}
    (env,), _ = collect(make_collector(), message)
    hashed = pseudonymise("bob@x.io", SECRET)
    assert orjson.loads(env["traits"] or "") == {"email": hashed, "age_group": "65+"}
    assert orjson.loads(env["context"] or "")["traits"]["email"] == hashed


def test_enrichment_from_the_request_then_ip_truncated(
        make_collector: Callable[..., Collector]) -> None:
    (env,), _ = collect(make_collector(), signup(plan="pro"), client_ip="203.0.113.77",
                        user_agent=CHROME)
    context = orjson.loads(env["context"] or "")
    assert context["ip"] == "203.0.113.0"
    assert context["browser"]["name"] == "Chrome"
    assert context["os"]["name"] == "Windows"
    assert context["device"]["type"] == "desktop"
    assert "bot" not in context


def test_what_the_sdk_sent_wins_over_the_request(
        make_collector: Callable[..., Collector]) -> None:
    message = signup(plan="pro")
    message["context"] = {"ip": "2001:db8:85a3::8a2e:370:7334",
                          "os": {"name": "iOS", "version": "17"}}
    (env,), _ = collect(make_collector(), message, client_ip="198.51.100.1", user_agent=CHROME)
    context = orjson.loads(env["context"] or "")
    assert context["ip"] == "2001:db8:85a3::"
    assert context["os"] == {"name": "iOS", "version": "17"}


def test_consent_that_does_not_cover_the_purpose_drops_and_counts(
        make_collector: Callable[..., Collector]) -> None:
    consent = {"consent": {"categoryPreferences": {"Analytics": True, "Advertising": False}}}
    ads = {"type": "track", "event": "ad_click", "userId": "u1", "messageId": "a1",
           "properties": {"campaign": "c"}, "context": consent}
    kept = {**signup(plan="pro"), "context": consent}
    envelopes, dropped = collect(make_collector(), ads, kept, {**ads, "messageId": "a2"})
    assert [e["event"] for e in envelopes] == ["signup"]
    assert dropped == {("consent", "ad_click"): 2}


def test_consent_that_grants_nothing_drops_events_without_a_purpose(
        make_collector: Callable[..., Collector]) -> None:
    """An uncataloged event has no purpose to compare: when the sender refused every
    category it is not stored (not even in the quarantine); when they granted some, it
    is quarantined as before, so a typo in an event name is still seen."""
    refused = {"consent": {"categoryPreferences": {"Analytics": False, "Advertising": False}}}
    some = {"consent": {"categoryPreferences": {"Analytics": True, "Advertising": False}}}
    promo = {"type": "track", "event": "promo_seen", "userId": "u1", "messageId": "p1",
             "properties": {"campaign": "c"}, "context": refused}
    alias = {"type": "alias", "userId": "u2", "previousId": "u1", "messageId": "al1",
             "context": refused}
    envelopes, dropped = collect(make_collector(), promo, alias,
                                 {**promo, "messageId": "p2", "context": some},
                                 {**alias, "messageId": "al2", "context": some})
    assert [(e["message_id"], e["violations"] is not None) for e in envelopes] == [
        ("p2", True), ("al2", False)]
    assert dropped == {("consent", "promo_seen"): 1, ("consent", "alias"): 1}


def test_consent_is_not_enforced_when_the_policy_says_so(
        make_collector: Callable[..., Collector]) -> None:
    collector = make_collector("[privacy]\nenforce_consent = false\n")
    ads = {"type": "track", "event": "ad_click", "userId": "u1", "properties": {},
           "context": {"consent": {"categoryPreferences": {"Advertising": False}}}}
    envelopes, dropped = collect(collector, ads)
    assert len(envelopes) == 1
    assert dropped == {}


def test_policy_hashes_user_id_and_drops_ip(make_collector: Callable[..., Collector]) -> None:
    collector = make_collector('[privacy]\nuser_id = "hash"\nip = "drop"\n'
                               'allow_sensitive = ["signup.diagnosis"]\n')
    (env, alias), _ = collect(collector, signup(diagnosis="flu"),
                              {"type": "alias", "userId": "u2", "previousId": "u1"},
                              client_ip="192.0.2.5")
    assert env["user_id"] == pseudonymise("u1", SECRET)
    assert alias["previous_id"] == pseudonymise("u1", SECRET)
    assert "ip" not in orjson.loads(env["context"] or "")
    assert orjson.loads(env["properties"] or "") == {"diagnosis": "flu"}


def test_an_alias_from_the_devices_own_anonymous_id_keeps_it(
        make_collector: Callable[..., Collector]) -> None:
    """analytics.js and the mobile SDKs alias from the anonymous id the message carries:
    hashed, it matched no device and identity stitching could not link the device."""
    collector = make_collector('[privacy]\nuser_id = "hash"\n')
    (device, login), _ = collect(
        collector,
        {"type": "alias", "userId": "u2", "previousId": "anon-7", "anonymousId": "anon-7"},
        {"type": "alias", "userId": "u2", "previousId": "u1", "anonymousId": "anon-7"})
    assert (device["user_id"], device["previous_id"], device["anonymous_id"]) == (
        pseudonymise("u2", SECRET), "anon-7", "anon-7")
    assert login["previous_id"] == pseudonymise("u1", SECRET)  # an old login: an id


def test_each_event_of_a_batch_gets_its_own_users_hash(
        make_collector: Callable[..., Collector]) -> None:
    # hashes are cached (a client's batch is one user's events), so interleaved users,
    # numeric ids and anonymous events must each keep their own
    collector = make_collector('[privacy]\nuser_id = "hash"\n')
    ids: list[Any] = ["u1", "u2", "u1", None, 42, "u2", "42", "u1"]
    messages = [{"type": "track", "event": "ad_click", "messageId": f"m{i}",
                 "anonymousId": "a1", "properties": {},
                 **({} if user is None else {"userId": user})} for i, user in enumerate(ids)]
    _pseudonym.cache_clear()
    envelopes, _ = collect(collector, *messages)
    assert [env["user_id"] for env in envelopes] == [
        None if user is None else pseudonymise(str(user), SECRET) for user in ids]
    assert envelopes[0]["user_id"] != envelopes[1]["user_id"]
    # "u1", "u2" and "42" (the number is sent as text, as Segment does) hashed once each
    assert _pseudonym.cache_info().misses == 3


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(st.text(min_size=1, max_size=20), min_size=4, max_size=4),
       extra=st.sampled_from(["e_mail", "user_email", "phone", "first_name", "ip_address"]),
       valid=st.booleans())
def test_no_raw_protected_value_survives_in_any_column(
        make_collector: Callable[..., Collector], values: list[str], extra: str,
        valid: bool) -> None:
    """Whatever the values (and whether the event is valid or quarantined), hashed and
    dropped values appear nowhere in the envelope: not in a column, not in a violation."""
    collector = _PROPERTY_COLLECTOR.get("c") or _PROPERTY_COLLECTOR.setdefault(
        "c", make_collector())
    email, device, diagnosis, other = (f"RAW{i}-{v}" for i, v in enumerate(values))
    message = signup(email=email, device_id=device, diagnosis=diagnosis,
                     plan="pro" if valid else "platinum", **{extra: other})
    message["context"] = {"traits": {"email": email, extra: other}, "ip": "192.0.2.44"}
    (env,), _ = collect(collector, message)
    text = orjson.dumps(env).decode()
    assert "RAW" not in text
    assert "192.0.2.44" not in text
    if not valid:  # quarantined: the violation names the bad plan, never a personal value
        assert "platinum" in (env["violations"] or "")


_PROPERTY_COLLECTOR: dict[str, Collector] = {}


BOOKING = """\
name: appointment_booked
description: A patient books an appointment.
owner: care
purpose: analytics
version: 1
retention: 400d
properties:
  clinic_id: {type: string, pii: none}
  guardian:
    type: object
    pii: none
    properties:
      email: {type: string, pii: personal}
      relation: {type: string, pii: none}
  attendees:
    type: array
    pii: none
    items:
      type: object
      properties:
        note: {type: string, pii: sensitive}
  tags:
    type: array
    pii: none
    items: {type: string, pii: personal}
"""


@pytest.mark.parametrize(("properties", "expected"), [
    # flattened: the guardian's email where the object is declared
    ({"guardian": "ann@example.com"}, {"guardian": pseudonymise("ann@example.com", SECRET)}),
    ({"guardian": ["ann@example.com"]},
     {"guardian": pseudonymise(["ann@example.com"], SECRET)}),
    # the items are objects whose note is sensitive: a plain item is dropped with it
    ({"attendees": ["rare-condition-q1"]}, {"attendees": []}),
    ({"attendees": "rare-condition-q1"}, {}),
    # personal items: one sent alone, or in an object
    ({"tags": "vip-ann@example.com"}, {"tags": pseudonymise("vip-ann@example.com", SECRET)}),
    ({"tags": {"first": "vip-ann@example.com"}},
     {"tags": pseudonymise({"first": "vip-ann@example.com"}, SECRET)}),
])
def test_a_value_not_shaped_as_declared_is_treated_as_what_it_should_hold(
        make_workspace: Callable[..., Workspace], properties: dict[str, Any],
        expected: dict[str, Any]) -> None:
    """A plain value (or an array) sent where the catalog declares an object or an array
    of personal or sensitive values is quarantined; it was kept raw there, since the
    object's own class is ``none`` and the names inside it were never looked at. It is
    treated as the strictest class declared inside treats values now."""
    ws = make_workspace({"appointment_booked.yaml": BOOKING})
    ws.data_dir.mkdir(exist_ok=True)
    (ws.data_dir / "secret.key").write_bytes(SECRET)
    collector = Collector(ws, Catalog.load(ws.events_dir))
    (env,), _ = collect(collector, {"type": "track", "event": "appointment_booked",
                                    "userId": "u1", "messageId": "m1",
                                    "properties": {"clinic_id": "C1", **properties}})
    assert env["violations"] is not None
    text = orjson.dumps(env).decode()
    assert "ann@example.com" not in text
    assert "rare-condition-q1" not in text
    assert orjson.loads(env["properties"] or "") == {"clinic_id": "C1", **expected}


def test_a_hashed_user_id_is_hashed_where_the_traits_repeat_it(
        make_collector: Callable[..., Collector]) -> None:
    """analytics-android sends the user's ids in the traits of every call: with
    ``user_id = "hash"`` the raw id was stored in ``context.traits`` (and the traits
    column) of each event, beside its hash in ``user_id``."""
    collector = make_collector('[privacy]\nuser_id = "hash"\n')
    traits = {"userId": "user-4711", "anonymousId": "anon-1", "id": "user-4711",
              "plan": "pro"}
    calls = [signup(plan="pro"), {"type": "identify", "traits": {"plan": "pro"}},
             {"type": "screen", "name": "Home"}, {"type": "alias", "previousId": "anon-1"},
             {"type": "group", "groupId": "g1", "traits": {"owner": "user-4711"}}]
    envelopes, _ = collect(collector, *[
        {**call, "userId": "user-4711", "anonymousId": "anon-1", "messageId": f"m{i}",
         "context": {"traits": traits}} for i, call in enumerate(calls)])
    hashed = pseudonymise("user-4711", SECRET)
    for env in envelopes:
        assert "user-4711" not in orjson.dumps(env).decode(), env["type"]
        assert env["user_id"] == hashed
        assert orjson.loads(env["context"] or "")["traits"] == {
            "userId": hashed, "anonymousId": "anon-1", "id": hashed, "plan": "pro"}
    assert orjson.loads(envelopes[0]["traits"] or "")["userId"] == hashed
    assert orjson.loads(envelopes[4]["traits"] or "") == {"owner": hashed}
