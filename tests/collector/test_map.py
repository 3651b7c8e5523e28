"""Segment messages to envelopes: fields, traits, page names, clock skew, refusals."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from nerve.catalog import Catalog
from nerve.collector import Collector, RequestError, parse_timestamp
from nerve.collector._map import MAX_ID_CHARS, MAX_STORED_DEPTH
from nerve.envelope import Envelope
from nerve.workspace import Workspace

T0 = "2026-11-28T10:00:00.000Z"
T0_US = parse_timestamp(T0)
assert T0_US is not None


def one(collector: Collector, message: dict[str, Any], *, endpoint: str = "batch",
        received_at: int = 0, **top: Any) -> Envelope:
    body = {"batch": [message], **top} if endpoint in ("batch", "b") else message
    result = collector.collect(orjson.dumps(body), endpoint=endpoint,
                               authorization=None if "writeKey" in top else _basic(),
                               received_at=received_at or T0_US + 5_000_000)
    [envelope] = result.envelopes
    return envelope


def _basic(key: str = "WRITEKEY123") -> str:
    import base64

    return "Basic " + base64.b64encode(f"{key}:".encode()).decode()


def track(**fields: Any) -> dict[str, Any]:
    return {"type": "track", "event": "order_completed", "userId": "u1", "messageId": "m1",
            "properties": {"order_id": "o1", "revenue": 5}, "timestamp": T0, **fields}


def test_snake_case_fields_and_json_columns(collector: Collector) -> None:
    env = one(collector, track(anonymousId="a1", context={"ip": "1.2.3.4",
                                                          "library": {"name": "x"}},
                               integrations={"All": False}, _metadata={"x": 1}))
    assert env["message_id"] == "m1"
    assert env["type"] == "track"
    assert env["event"] == "order_completed"
    assert env["user_id"] == "u1"
    assert env["anonymous_id"] == "a1"
    assert orjson.loads(env["properties"] or "") == {"order_id": "o1", "revenue": 5}
    # the IP is truncated to its /24 by default (docs/privacy.md)
    assert orjson.loads(env["context"] or "") == {"ip": "1.2.3.0", "library": {"name": "x"}}
    assert env["source"] == "server"
    assert env["historical"] is False
    assert env["violations"] is None
    assert env["schema_version"] == "2.0.0"


def test_clock_skew_is_corrected_from_sent_at_and_raw_values_kept(
        collector: Collector) -> None:
    # the device clock is an hour behind: it stamped the event 2 s before sending it
    message = track(timestamp="2026-11-28T09:00:00Z", sentAt="2026-11-28T09:00:02Z")
    received = T0_US + 10_000_000
    env = one(collector, message, received_at=received)
    assert env["timestamp"] == received - 2_000_000
    assert env["original_timestamp"] == parse_timestamp("2026-11-28T09:00:00Z")
    assert env["sent_at"] == parse_timestamp("2026-11-28T09:00:02Z")
    assert env["received_at"] == received


def test_batch_level_sent_at_applies_and_a_message_sent_at_wins(collector: Collector) -> None:
    received = T0_US + 60_000_000
    env = one(collector, track(), received_at=received, sentAt="2026-11-28T10:00:03Z")
    assert env["timestamp"] == received - 3_000_000
    env = one(collector, track(sentAt="2026-11-28T10:00:01Z"), received_at=received,
              sentAt="2026-11-28T10:00:03Z")
    assert env["timestamp"] == received - 1_000_000


def test_missing_timestamp_is_received_at_and_missing_sent_at_keeps_client_time(
        collector: Collector) -> None:
    message = track()
    del message["timestamp"]
    env = one(collector, message, received_at=T0_US + 7)
    assert env["timestamp"] == T0_US + 7
    assert env["original_timestamp"] is None
    env = one(collector, track(), received_at=T0_US + 99_000_000)
    assert env["timestamp"] == T0_US
    assert env["sent_at"] is None


def test_rudderstack_original_timestamp_stands_in_for_a_missing_timestamp(
        collector: Collector) -> None:
    """RudderStack's SDKs send the device's time as originalTimestamp, and no timestamp."""
    message = track(originalTimestamp="2026-11-28T09:00:00Z", sentAt="2026-11-28T09:00:02Z")
    del message["timestamp"]
    received = T0_US + 10_000_000
    env = one(collector, message, received_at=received)
    assert env["original_timestamp"] == parse_timestamp("2026-11-28T09:00:00Z")
    assert env["timestamp"] == received - 2_000_000  # corrected like a timestamp
    assert env["violations"] is None
    # a message's own timestamp wins
    env = one(collector, track(originalTimestamp="2020-01-01T00:00:00Z"), received_at=received)
    assert env["original_timestamp"] == T0_US
    # an unreadable one quarantines under its own name, at the receive time
    message["originalTimestamp"] = "last tuesday"
    env = one(collector, message, received_at=received)
    assert env["timestamp"] == received
    [violation] = orjson.loads(env["violations"] or "")
    assert (violation["rule"], violation["path"]) == ("invalid_timestamp",
                                                      "$.originalTimestamp")


def test_a_batch_level_context_applies_to_every_message(collector: Collector) -> None:
    """Segment's batch may carry one context for all its messages; a message's keys win."""
    shared = {"locale": "nl-NL", "app": {"name": "Lingo"}}
    env = one(collector, track(context={"locale": "de-DE"}), context=shared)
    assert orjson.loads(env["context"] or "") == {"locale": "de-DE", "app": {"name": "Lingo"}}
    env = one(collector, track(), context=shared)
    assert orjson.loads(env["context"] or "") == shared
    # its consent is enforced like a message's own: granting nothing stores nothing
    body = {"batch": [track(), track(messageId="m2")],
            "context": {"consent": {"categoryPreferences": {"Analytics": False}}}}
    result = collector.collect(orjson.dumps(body), endpoint="batch", authorization=_basic(),
                               received_at=T0_US)
    assert result.envelopes == []
    with pytest.raises(RequestError, match="context: must be an object"):
        collector.collect(orjson.dumps({"batch": [track()], "context": "nl"}), endpoint="batch",
                          authorization=_basic(), received_at=T0_US)


def test_a_message_object_of_another_json_type_is_named_in_json_words(
        collector: Collector) -> None:
    """The refusal said `got list` and `got str`, Python's names, to a client that sent an
    array and a string."""
    for value, kind in (([1, 2], "an array"), ("x", "a string"), (3, "a number")):
        with pytest.raises(RequestError, match=f"batch\\[0\\].properties: must be an object, "
                                               f"got {kind}$"):
            collector.collect(orjson.dumps({"batch": [track(properties=value)]}),
                              endpoint="batch", authorization=_basic(), received_at=T0_US)
    with pytest.raises(RequestError, match=r"batch\[0\]\.userId: must be a string, got a boolean$"):
        collector.collect(orjson.dumps({"batch": [track(userId=True)]}), endpoint="batch",
                          authorization=_basic(), received_at=T0_US)
    env = one(collector, track(timestamp=1733000000), received_at=T0_US)
    [violation] = orjson.loads(env["violations"] or "")
    assert violation["message"].endswith("(expected an ISO 8601 string, got a number)")


def test_timestamp_forms() -> None:
    assert parse_timestamp("2026-11-28T10:00:00+02:00") == parse_timestamp(
        "2026-11-28T08:00:00Z")
    assert parse_timestamp("2026-11-28T10:00:00") == parse_timestamp("2026-11-28T10:00:00Z")
    assert parse_timestamp("2026-11-28T10:00:00.123456Z") == T0_US + 123_456
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_timestamp(1764324000)


def test_an_unparseable_timestamp_quarantines_instead_of_dropping(collector: Collector) -> None:
    env = one(collector, track(timestamp="yesterday at noon"), received_at=T0_US)
    assert env["timestamp"] == T0_US
    assert env["original_timestamp"] is None
    [violation] = orjson.loads(env["violations"] or "")
    assert violation["rule"] == "invalid_timestamp"
    assert violation["path"] == "$.timestamp"


@pytest.mark.parametrize(("fields", "paths"), [
    ({"timestamp": "0001-01-01T00:00:00Z"}, ["$.timestamp"]),
    ({"timestamp": "9999-12-31T23:59:59Z"}, ["$.timestamp"]),
    ({"timestamp": "0001-01-01T00:00:00Z", "sentAt": "9999-12-31T00:00:00Z"},
     ["$.timestamp", "$.sentAt"]),
    # each is a possible time, but the clock-skew correction lands before 1970
    ({"timestamp": "1971-01-01T00:00:00Z", "sentAt": "2099-01-01T00:00:00Z"},
     ["$.timestamp"]),
])
def test_a_time_outside_1970_to_2099_quarantines_at_the_receive_time(
        collector: Collector, fields: dict[str, Any], paths: list[str]) -> None:
    """A year the correction pushed out of Python's range made the row unreadable."""
    env = one(collector, track(**fields), received_at=T0_US)
    assert env["timestamp"] == T0_US
    violations = orjson.loads(env["violations"] or "")
    assert [v["path"] for v in violations] == paths
    assert {v["rule"] for v in violations} == {"invalid_timestamp"}


def test_json_too_deep_to_read_back_is_refused_as_too_deep(collector: Collector) -> None:
    """orjson writes 254 levels: a column nested 250 deep is stored, but every answer that
    returns its row (a list of rows, a row, the column) would fail."""
    deep: Any = {}
    for _ in range(MAX_STORED_DEPTH):  # the properties object itself is one level more
        deep = {"a": deep}
    with pytest.raises(RequestError) as refused:
        one(collector, track(properties={"order_id": "o1", "revenue": 5, "d": deep}))
    assert (refused.value.status, refused.value.code) == (400, "too_deep")
    assert "JSON nested more than 240 levels deep cannot be stored" in str(refused.value)
    # deeper than orjson writes at all (so sent as text): the same limit is named, not
    # orjson's 254
    message = orjson.dumps(track(properties={"order_id": "o1", "revenue": 5, "d": 0}))
    deeper = message.replace(b'"d":0', b'"d":' + b'{"a":' * 300 + b"0" + b"}" * 300)
    with pytest.raises(RequestError, match="JSON nested more than 240 levels deep "
                                           "cannot be stored"):
        collector.collect(b'{"batch":[' + deeper + b"]}", endpoint="batch",
                          authorization=_basic(), received_at=T0_US)
    fine: Any = {}
    for _ in range(MAX_STORED_DEPTH - 2):
        fine = {"a": fine}
    env = one(collector, track(properties={"order_id": "o1", "revenue": 5, "d": fine,
                                           "brackets": "[" * 300}))
    assert env["properties"] is not None


@pytest.mark.parametrize(("type_", "field", "depth"), [
    (type_, field, depth) for depth in (MAX_STORED_DEPTH + 5, 300)
    for type_, field in [("track", "context"), ("track", "properties"),
                         ("identify", "traits"), ("identify", "context")]
] + [("track", "integrations", 300)])
def test_json_too_deep_names_the_field_that_is(
        collector: Collector, type_: str, field: str, depth: int) -> None:
    """Refused as ``batch[0].$``: the client could not tell which field to flatten. Both
    the stored-depth check (245) and the encoder's limit (300) name it, and a field that
    is not stored but trips the encoder (hashing the message for its id) is named too."""
    message = {"type": type_, "userId": "u1", "timestamp": T0, "event": "order_completed",
               field: {"d": 0}}
    text = orjson.dumps({"batch": [message]}).replace(
        b'"d":0', b'"d":' + b'{"a":' * depth + b"0" + b"}" * depth)
    with pytest.raises(RequestError) as refused:
        collector.collect(text, endpoint="batch", authorization=_basic(), received_at=T0_US)
    assert (refused.value.code, refused.value.details) == (
        "too_deep", {"index": 0, "field": field})
    assert str(refused.value).startswith(f"batch[0].{field}: JSON nested more than 240")


def test_identify_traits_merge_context_traits_with_the_calls_own_winning(
        collector: Collector) -> None:
    env = one(collector, {"type": "identify", "userId": "u1", "traits": {"plan": "pro"},
                          "context": {"traits": {"plan": "free", "email": "a@b.c"}}})
    traits = orjson.loads(env["traits"] or "")
    assert traits["plan"] == "pro"
    assert traits["email"].startswith("h:")  # uncataloged, named like personal data
    assert env["properties"] is None



GROUP = """\
name: group
type: group
description: The account or household a user belongs to.
owner: growth
purpose: analytics
version: 1
retention: 400d
properties:
  name: {type: string, pii: none}
  seats: {type: integer, pii: none}
"""


def test_a_group_call_keeps_its_own_traits_apart_from_the_user_s(
        workspace: Workspace) -> None:
    """Mobile SDKs and trait plugins put the user's traits in ``context.traits`` on every
    call; on a group call they were merged into the group's traits, which then broke
    group.yaml (quarantined: 'age_group', 'country' were unexpected)."""
    (workspace.events_dir / "group.yaml").write_text(GROUP)
    collector = Collector(workspace, Catalog.load(workspace.events_dir))
    env = one(collector, {"type": "group", "userId": "u1", "groupId": "fam-77",
                          "traits": {"name": "Garcia family", "seats": 4},
                          "context": {"traits": {"age_group": "25-34", "country": "DE"}}})
    assert orjson.loads(env["traits"] or "") == {"name": "Garcia family", "seats": 4}
    assert env["violations"] is None
    # the user's traits stay where the SDK put them
    assert orjson.loads(env["context"] or "")["traits"] == {"age_group": "25-34",
                                                              "country": "DE"}

def test_track_takes_traits_from_context(collector: Collector) -> None:
    env = one(collector, track(context={"traits": {"age_group": "65+"}}))
    assert orjson.loads(env["traits"] or "") == {"age_group": "65+"}
    assert orjson.loads(env["context"] or "")["traits"] == {"age_group": "65+"}


@pytest.mark.parametrize("kind", ["page", "screen"])
def test_page_and_screen_name_and_category(collector: Collector, kind: str) -> None:
    env = one(collector, {"type": kind, "anonymousId": "a", "name": "Pricing",
                          "category": "Docs", "properties": {"path": "/pricing"}})
    assert env["name"] == "Pricing"
    assert env["event"] is None
    assert orjson.loads(env["properties"] or "") == {"path": "/pricing", "category": "Docs"}


def test_group_and_alias_ids(collector: Collector) -> None:
    group = one(collector, {"type": "group", "userId": "u", "groupId": 42,
                            "traits": {"name": "ACME"}})
    assert group["group_id"] == "42"  # numeric ids are coerced to strings, as Segment does
    alias = one(collector, {"type": "alias", "userId": "u2", "previousId": "anon-1"})
    assert alias["previous_id"] == "anon-1"
    assert alias["traits"] is None


def test_single_call_endpoints_take_the_type_from_the_path(collector: Collector) -> None:
    message = track()
    del message["type"]
    for endpoint in ("track", "t"):
        env = one(collector, message, endpoint=endpoint)
        assert env["type"] == "track"
        assert env["event"] == "order_completed"
    env = one(collector, {"userId": "u", "traits": {}}, endpoint="i")
    assert env["type"] == "identify"


def test_a_message_without_message_id_gets_a_stable_derived_one(collector: Collector) -> None:
    message = track()
    del message["messageId"]
    first = one(collector, {**message, "sentAt": "2026-11-28T10:00:01Z"})
    retry = one(collector, {**message, "sentAt": "2026-11-28T10:00:09Z"})
    assert first["message_id"] == retry["message_id"]
    assert first["message_id"].startswith("nerve-")
    other = one(collector, {**message, "event": "something_else"})
    assert other["message_id"] != first["message_id"]


def test_historical_import_flag_and_import_sources(collector: Collector) -> None:
    assert one(collector, track(), historical_import=True)["historical"] is True
    assert one(collector, track())["historical"] is False
    env = one(collector, track(), writeKey="IMPORTKEY99")
    assert env["historical"] is True
    assert env["source"] == "backfill"


@pytest.mark.parametrize(("message", "field", "code"), [
    ({"type": "track", "event": "x"}, "userId", "missing_field"),
    ({"type": "track", "userId": None, "anonymousId": "", "event": "x"}, "userId",
     "missing_field"),
    ({"type": "track", "userId": "u"}, "event", "missing_field"),
    ({"type": "track", "userId": "u", "event": 7}, "event", "invalid_field"),
    ({"type": "group", "userId": "u"}, "groupId", "missing_field"),
    ({"type": "alias", "userId": "u"}, "previousId", "missing_field"),
    ({"userId": "u"}, "type", "missing_field"),
    ({"type": "purchase", "userId": "u"}, "type", "invalid_field"),
    ({"type": ["track"], "userId": "u"}, "type", "invalid_field"),  # found by hypothesis
    ({"type": "track", "userId": {"id": 1}, "event": "x"}, "userId", "invalid_field"),
    ({"type": "track", "userId": "u", "event": "x", "properties": [1]}, "properties",
     "invalid_field"),
])
def test_spec_required_fields_refuse_the_request_naming_field_and_index(
        collector: Collector, message: dict[str, Any], field: str, code: str) -> None:
    body = {"batch": [track(), message]}
    with pytest.raises(RequestError) as info:
        collector.collect(orjson.dumps(body), endpoint="batch", authorization=_basic())
    error = info.value
    assert error.status == 400
    assert error.code == code
    assert error.details == {"index": 1, "field": field}
    assert f"batch[1].{field}" in str(error)


#: far longer than an id or a name may be, and far shorter than a request may be
HUGE = "x" * 450_000


@pytest.mark.parametrize(("message", "field"), [
    (track(userId=HUGE), "userId"),
    (track(anonymousId=HUGE), "anonymousId"),
    (track(messageId=HUGE), "messageId"),
    (track(event=HUGE), "event"),
    ({"type": "page", "userId": "u", "name": HUGE}, "name"),
    ({"type": "screen", "anonymousId": "a", "name": HUGE}, "name"),
    ({"type": "group", "userId": "u", "groupId": HUGE}, "groupId"),
    ({"type": "alias", "userId": "u", "previousId": HUGE}, "previousId"),
])
def test_an_id_or_name_longer_than_the_limit_is_refused_naming_it(
        collector: Collector, message: dict[str, Any], field: str) -> None:
    """max_event_bytes bounds the JSON columns; these were bounded by the request only, so
    a 450 KB user id was stored."""
    body = {"batch": [track(), message]}
    with pytest.raises(RequestError) as info:
        collector.collect(orjson.dumps(body), endpoint="batch", authorization=_basic())
    error = info.value
    assert error.status == 400
    assert error.code == "invalid_field"
    assert error.details == {"index": 1, "field": field}
    assert f"batch[1].{field}: 450000 characters" in str(error)
    assert HUGE[:200] not in str(error)  # the value is not quoted back


def test_ids_and_names_at_the_limit_are_kept(collector: Collector) -> None:
    longest = "i" * MAX_ID_CHARS
    env = one(collector, track(userId=longest, anonymousId=longest, messageId=longest))
    assert env["user_id"] == env["anonymous_id"] == env["message_id"] == longest


def test_a_long_unparseable_timestamp_is_quoted_cut_short(collector: Collector) -> None:
    """A 450 KB timestamp put 900 KB of violations in the quarantine (quoted twice)."""
    env = one(collector, track(timestamp=HUGE, sentAt="2026-11-28T10:00:00Z"),
              received_at=T0_US)
    [violation] = orjson.loads(env["violations"] or "")
    assert violation["rule"] == "invalid_timestamp"
    assert violation["message"].startswith("timestamp: 'xxx")
    assert len(violation["message"]) < 300


def test_an_identify_s_traits_lose_the_ids_analytics_android_copies_into_them(
        collector: Collector) -> None:
    """analytics-android (and its forks: Hightouch's events-sdk-android) keeps the user's
    anonymousId and userId among the traits it sends with every identify, in ``traits``
    and ``context.traits``. They are the message's own ids again: merged into the traits,
    they broke identify.yaml, and every identify from the app was quarantined
    ('anonymousId' was unexpected). The workspace's identify.yaml declares email and plan."""
    ids = {"anonymousId": "5f1c0e2a-a-1", "userId": "u-41"}
    env = one(collector, {"type": "identify", **ids, "messageId": "m-and-1",
                          "traits": {**ids, "email": "ana@example.com", "plan": "pro"},
                          "context": {"traits": {**ids, "email": "ana@example.com",
                                                 "plan": "pro"},
                                      "library": {"name": "analytics-android",
                                                  "version": "4.11.3"}}})
    assert env["violations"] is None
    traits = orjson.loads(env["traits"] or "")
    assert set(traits) == {"email", "plan"}
    assert traits["plan"] == "pro"
    assert traits["email"].startswith("h:")
    assert (env["anonymous_id"], env["user_id"]) == ("5f1c0e2a-a-1", "u-41")
    # the context keeps what the SDK sent (its email hashed)
    assert orjson.loads(env["context"] or "")["traits"]["anonymousId"] == "5f1c0e2a-a-1"

    # an id among the traits that is not the message's own is the app's: it stays
    other = one(collector, {"type": "identify", "userId": "u-41", "messageId": "m-and-2",
                            "traits": {"userId": "legacy-7", "plan": "pro"}})
    assert orjson.loads(other["traits"] or "")["userId"] == "legacy-7"
    assert other["violations"] is not None
