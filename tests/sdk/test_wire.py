"""The wire format, pure: messages, batch bodies, splitting, and the retry rules."""

from __future__ import annotations

import base64
import gzip
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nerve import __version__
from nerve.catalog import Catalog
from nerve.collector import Collector, RequestError
from nerve.collector._map import MAX_ID_CHARS as COLLECTOR_MAX_ID_CHARS
from nerve.collector._map import MAX_STORED_DEPTH
from nerve.sdk import InvalidMessageError
from nerve.sdk._message import (
    MAX_BATCH_BYTES,
    MAX_DEPTH,
    MAX_ID_CHARS,
    MAX_MESSAGE_BYTES,
    batch_body,
    build_message,
    encode_message,
    iso_timestamp,
    split_batch,
)
from nerve.sdk._retry import MAX_RETRY_AFTER, RetryPolicy, is_retryable_status, parse_retry_after
from nerve.workspace import Workspace

# ----------------------------------------------------------------------------- messages


def test_track_message_speaks_the_segment_spec() -> None:
    when = datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    message = build_message("track", event="Order Completed", properties={"revenue": 9.99},
                            user_id="u1", timestamp=when, context={"ip": "1.2.3.4"},
                            required=("event",))
    assert message["type"] == "track"
    assert message["event"] == "Order Completed"
    assert message["userId"] == "u1"
    assert "anonymousId" not in message
    assert message["properties"] == {"revenue": 9.99}
    assert message["timestamp"] == "2024-01-02T03:04:05.678000+00:00"
    assert message["context"] == {"ip": "1.2.3.4",
                                  "library": {"name": "nerve-python", "version": __version__}}
    assert uuid.UUID(message["messageId"]).version == 4


def test_every_type_uses_camel_case_keys() -> None:
    page = build_message("page", name="Home", category="Docs", properties={}, anonymous_id="a")
    assert (page["name"], page["category"], page["anonymousId"]) == ("Home", "Docs", "a")
    group = build_message("group", groupId="g1", traits={"name": "ACME"}, user_id="u1",
                          required=("groupId",))
    assert (group["groupId"], group["traits"]) == ("g1", {"name": "ACME"})
    alias = build_message("alias", previousId="anon-1", user_id="u1", required=("previousId",))
    assert (alias["previousId"], alias["userId"]) == ("anon-1", "u1")


def test_timestamps_always_carry_a_time_zone() -> None:
    naive = datetime(2024, 1, 2, 3, 4, 5)  # noqa: DTZ001 - naive on purpose: taken as UTC
    assert iso_timestamp(naive) == "2024-01-02T03:04:05.000000+00:00"
    plus2 = timezone(timedelta(hours=2))
    assert iso_timestamp(datetime(2024, 1, 2, 5, tzinfo=plus2)).endswith("+02:00")
    assert iso_timestamp("2024-01-02T03:04:05Z") == "2024-01-02T03:04:05.000000+00:00"
    assert iso_timestamp(date(2024, 1, 2)) == "2024-01-02T00:00:00.000000+00:00"
    now = datetime.fromisoformat(iso_timestamp(None))
    assert now.tzinfo is not None
    assert abs((datetime.now(UTC) - now).total_seconds()) < 60


def test_client_context_is_merged_and_the_library_always_ours() -> None:
    message = build_message("track", event="e", user_id="u", default_context={"app": {"v": 1},
                            "locale": "de"}, context={"locale": "fr", "library": "spoof"})
    assert message["context"]["app"] == {"v": 1}
    assert message["context"]["locale"] == "fr"
    assert message["context"]["library"]["name"] == "nerve-python"


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"event": "e"}, "user_id or anonymous_id is required"),
        ({"event": "", "user_id": "u"}, "event is required"),
        ({"event": "e", "user_id": "u", "properties": [1, 2]}, "properties: expected a dict"),
        ({"event": "e", "user_id": "u", "timestamp": "yesterday"}, "timestamp: not ISO-8601"),
        ({"event": "e", "user_id": 1.5}, "user_id: expected a string"),
        ({"event": 7.5, "user_id": "u"}, "track.event: expected a string"),
    ],
)
def test_bad_calls_name_the_field(kwargs: dict[str, Any], says: str) -> None:
    with pytest.raises(InvalidMessageError, match=says) as raised:
        build_message("track", required=("event",), **kwargs)
    assert str(raised.value).startswith("track")  # every error names the call first


@pytest.mark.parametrize(
    ("kind", "kwargs", "says"),
    [
        ("track", {"event": "e", "properties": [1, 2]},
         "track: properties: expected a dict, got list"),
        ("identify", {"traits": "gold"}, "identify: traits: expected a dict, got str"),
        ("track", {"event": "e", "context": 3}, "track: context: expected a dict, got int"),
        ("track", {"event": "e", "timestamp": "yesterday"},
         "track: timestamp: not ISO-8601: 'yesterday'"),
        ("page", {"message_id": 1.5}, "page: message_id: expected a string, got float"),
        # the Python argument, not the wire's camelCase key
        ("group", {"groupId": ""}, "group: group_id is required"),
        ("group", {"groupId": 2.5}, "group.group_id: expected a string, got float"),
        ("alias", {"previousId": None}, "alias: previous_id is required"),
    ],
)
def test_errors_name_the_call_and_the_argument_as_the_caller_wrote_them(
        kind: str, kwargs: dict[str, Any], says: str) -> None:
    required = {"track": ("event",), "group": ("groupId",), "alias": ("previousId",)}
    with pytest.raises(InvalidMessageError) as raised:
        build_message(kind, user_id="u", required=required.get(kind, ()), **kwargs)
    assert str(raised.value) == says


def test_ids_may_be_numbers_and_are_sent_as_strings() -> None:
    assert build_message("identify", user_id=42)["userId"] == "42"


def test_unserializable_and_oversize_messages_are_refused() -> None:
    with pytest.raises(InvalidMessageError,
                       match=r"not JSON-serializable at \$\.properties\.f: .*object"):
        encode_message(build_message("track", event="e", user_id="u",
                                     properties={"f": object()}))
    # the path names the value to fix, deep in a payload too (an int beyond 64 bits)
    with pytest.raises(InvalidMessageError,
                       match=r"at \$\.properties\.cart\.lines\[1\]\.qty: Integer"):
        encode_message(build_message("track", event="e", user_id="u", properties={
            "ok": 1, "cart": {"lines": [{"qty": 1}, {"qty": 2**70}]}}))
    big = build_message("track", event="e", user_id="u", properties={"x": "a" * MAX_MESSAGE_BYTES})
    with pytest.raises(InvalidMessageError, match="over the 32768-byte limit"):
        encode_message(big)


def _nested(depth: int) -> dict[str, Any]:
    """``properties`` whose JSON nests ``depth`` levels (the properties object included)."""
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


@pytest.mark.parametrize("depth", [*range(236, 246), 250])
def test_what_the_sdk_accepts_the_collector_stores(
        make_workspace: Callable[..., Workspace], depth: int) -> None:
    """A message the collector refuses as too_deep would take its whole batch with it."""
    workspace = make_workspace()
    collector = Collector(workspace, Catalog.load(workspace.events_dir))
    key = workspace.config.sources[0].write_key
    auth = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    message = build_message("track", event="e", user_id="u", properties=_nested(depth))
    body = orjson.dumps({"batch": [message]})
    try:
        collected = collector.collect(body, endpoint="batch", authorization=auth)
    except RequestError:
        with pytest.raises(InvalidMessageError, match=f"properties nests {depth} levels"):
            encode_message(message)
    else:
        assert len(collected.envelopes) == 1
        assert orjson.loads(encode_message(message)) == message


def test_the_sdk_depth_limit_is_the_collectors() -> None:
    assert MAX_DEPTH == MAX_STORED_DEPTH


def test_the_sdk_id_limit_is_the_collectors() -> None:
    assert MAX_ID_CHARS == COLLECTOR_MAX_ID_CHARS


@pytest.mark.parametrize(
    ("kind", "kwargs", "says"),
    [
        ("track", {"event": "e" * 1025}, "track: event: 1025 characters"),
        ("track", {"event": "e", "user_id": "u" * 2000}, "track: user_id: 2000 characters"),
        ("page", {"name": "n" * 1025}, "page: name: 1025 characters"),
        ("group", {"groupId": "g" * 1025}, "group: group_id: 1025 characters"),
        ("identify", {"anonymous_id": "a" * 1025}, "identify: anonymous_id: 1025 characters"),
        ("identify", {"message_id": "m" * 1025}, "identify: message_id: 1025 characters"),
    ],
)
def test_an_id_or_name_the_collector_would_refuse_the_batch_for_refuses_the_call(
        make_workspace: Callable[..., Workspace], kind: str, kwargs: dict[str, Any],
        says: str) -> None:
    # the collector answers 400 invalid_field for the whole batch: one such call would
    # make the SDK drop every other event sent with it
    kwargs.setdefault("user_id", "u")
    with pytest.raises(InvalidMessageError, match=f"^{says}, over the collector's limit"):
        build_message(kind, **kwargs)
    workspace = make_workspace()
    collector = Collector(workspace, Catalog.load(workspace.events_dir))
    key = workspace.config.sources[0].write_key
    auth = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    at_limit = {k: v[:MAX_ID_CHARS] for k, v in kwargs.items()}
    fits = build_message(kind, **at_limit)
    too_long = {**fits, **{
        {"user_id": "userId", "anonymous_id": "anonymousId", "message_id": "messageId"}
        .get(k, k): v for k, v in kwargs.items()}}
    good = build_message("track", event="e", user_id="u")
    collected = collector.collect(orjson.dumps({"batch": [good, fits]}), endpoint="batch",
                                  authorization=auth)
    assert len(collected.envelopes) == 2
    with pytest.raises(RequestError, match="characters, more than the 1024"):
        collector.collect(orjson.dumps({"batch": [good, too_long]}), endpoint="batch",
                          authorization=auth)


def test_python_values_become_json() -> None:
    message = build_message("track", event="e", user_id="u", properties={
        "price": Decimal("12.50"), "tags": {"a"}, "at": datetime(2024, 1, 2, tzinfo=UTC),
        "day": date(2024, 1, 2), "id": uuid.UUID(int=1), 3: "int key"})
    decoded = orjson.loads(encode_message(message))["properties"]
    assert decoded == {"price": 12.5, "tags": ["a"], "at": "2024-01-02T00:00:00+00:00",
                       "day": "2024-01-02", "id": str(uuid.UUID(int=1)), "3": "int key"}


class _Moment(datetime):
    """A datetime subclass, as pandas.Timestamp and pendulum's DateTime are."""


class _Day(date):
    """A date subclass, as pendulum's Date is."""


def test_numpy_values_and_datetime_subclasses_become_json() -> None:
    # what a pandas row or a numpy computation hands over: refused before, dropping the call
    message = build_message("track", event="e", user_id="u", properties={
        "xp": np.float64(1.5), "level": np.int64(7), "qty": np.int32(2), "ok": np.bool_(True),
        "scores": np.array([1, 2]), "at": _Moment(2024, 1, 2, 3, 4, 5),
        "day": _Day(2024, 1, 2),
        "tz": _Moment(2024, 1, 2, 12, tzinfo=timezone(timedelta(hours=9)))})
    decoded = orjson.loads(encode_message(message))["properties"]
    assert decoded == {"xp": 1.5, "level": 7, "qty": 2, "ok": True, "scores": [1, 2],
                       "at": "2024-01-02T03:04:05.000000+00:00", "day": "2024-01-02",
                       "tz": "2024-01-02T12:00:00.000000+09:00"}


class _NotATime(datetime):
    """A datetime subclass that is no point in time, as pandas.NaT."""

    def isoformat(self, sep: str = "T", timespec: str = "auto") -> str:
        return "NaT"


def test_a_datetime_that_is_no_time_is_null_in_properties_and_refused_as_timestamp() -> None:
    missing = _NotATime(2024, 1, 2)
    message = build_message("track", event="e", user_id="u", properties={"at": missing})
    assert orjson.loads(encode_message(message))["properties"] == {"at": None}
    with pytest.raises(InvalidMessageError, match="track: timestamp: not a point in time: 'NaT'"):
        build_message("track", event="e", user_id="u", timestamp=missing)


# ----------------------------------------------------------------------------- bodies


def test_batch_body_has_sent_at_and_the_historical_flag_only_when_asked() -> None:
    lines = [b'{"a":1}', b'{"b":2}']
    live = orjson.loads(batch_body(lines, sent_at=datetime(2024, 1, 2, tzinfo=UTC)))
    assert live == {"batch": [{"a": 1}, {"b": 2}], "sentAt": "2024-01-02T00:00:00.000000+00:00"}
    past = orjson.loads(batch_body(lines, historical=True))
    assert past["historical_import"] is True
    assert datetime.fromisoformat(past["sentAt"]).tzinfo is not None


def test_split_respects_count_and_bytes() -> None:
    assert [len(b) for b in split_batch([b"{}"] * 250, max_items=100)] == [100, 100, 50]
    item = b'{"x":"' + b"a" * 30_000 + b'"}'
    batches = split_batch([item] * 40, max_items=100)
    assert len(batches) > 1
    for batch in batches:
        assert len(batch_body(batch, historical=True)) <= MAX_BATCH_BYTES
    assert sum(len(b) for b in batches) == 40


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=30,
)


@settings(max_examples=100, deadline=None)
@given(properties=st.dictionaries(st.text(max_size=20), json_values, max_size=10))
def test_any_properties_round_trip_through_the_wire(properties: dict[str, Any]) -> None:
    message = build_message("track", event="e", properties=properties, user_id="u")
    body = gzip.decompress(gzip.compress(batch_body([encode_message(message)])))
    (received,) = orjson.loads(body)["batch"]
    assert received["properties"] == properties
    assert received == orjson.loads(orjson.dumps(message))


# ----------------------------------------------------------------------------- retry rules


@pytest.mark.parametrize(
    ("status", "retry"),
    [(400, False), (401, False), (403, False), (404, False), (408, True), (413, False),
     (422, False), (429, True), (500, True), (501, False), (502, True), (503, True),
     (504, True), (505, False), (511, True), (599, True)],
)
def test_which_statuses_are_retried(status: int, retry: bool) -> None:
    assert is_retryable_status(status) is retry


def test_retry_after_in_seconds_or_an_http_date() -> None:
    now = datetime(2026, 11, 28, 7, 0, 0, tzinfo=UTC)
    assert parse_retry_after("3", now=now) == 3.0
    assert parse_retry_after(" 1.5 ", now=now) == 1.5
    assert parse_retry_after("Sat, 28 Nov 2026 07:00:07 GMT", now=now) == 7.0
    assert parse_retry_after("Sat, 28 Nov 2026 06:00:00 GMT", now=now) == 0.0  # in the past
    assert parse_retry_after("-4", now=now) == 0.0
    assert parse_retry_after("86400", now=now) == MAX_RETRY_AFTER
    for junk in (None, "", "soon", "nan", "inf"):
        assert parse_retry_after(junk, now=now) is None


def test_backoff_is_exponential_with_full_jitter_and_retry_after_a_floor() -> None:
    import random

    policy = RetryPolicy(max_retries=10, backoff_base=0.5, backoff_max=10.0)
    rng = random.Random(7)
    for retry, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (5, 8.0), (6, 10.0), (9, 10.0)]:
        delays = [policy.delay(retry, None, rng) for _ in range(300)]
        assert all(0.0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8  # full jitter spreads over the whole range
        assert min(delays) < ceiling * 0.2
    assert all(policy.delay(1, 4.0, rng) >= 4.0 for _ in range(50))
