"""Property-based tests: whatever a client sends, the collector answers with envelopes or
a clear refusal, never a crash; and the clock-skew correction keeps the client's offsets."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nerve.collector import Collector, RequestError, parse_timestamp
from nerve.errors import AuthError
from nerve.workspace import Workspace

AUTH = "Basic " + base64.b64encode(b"WRITEKEY123:").decode()

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12,
)
message_keys = st.sampled_from(["type", "event", "userId", "anonymousId", "groupId",
                                "previousId", "messageId", "timestamp", "sentAt", "context",
                                "properties", "traits", "name", "category", "integrations"])
messages = st.dictionaries(message_keys, json_values | st.sampled_from(
    ["track", "identify", "page", "screen", "group", "alias", "2026-11-28T10:00:00Z"]),
    max_size=10)


@pytest.fixture(scope="module")
def module_collector(tmp_path_factory: pytest.TempPathFactory) -> Collector:
    from nerve.catalog import Catalog

    root = tmp_path_factory.mktemp("props")
    (root / "nerve.toml").write_text('[project]\nname = "p"\n[[sources]]\nname = "s"\n'
                                     'write_key = "WRITEKEY123"\n')
    (root / "events").mkdir()
    ws = Workspace.load(root)
    return Collector(ws, Catalog.load(ws.events_dir))


@settings(max_examples=300, deadline=None)
@given(batch=st.lists(messages, max_size=5), top=st.dictionaries(st.text(max_size=6),
                                                                  json_values, max_size=3))
def test_any_body_gets_envelopes_or_a_clear_refusal(module_collector: Collector,
                                                    batch: list[dict[str, Any]],
                                                    top: dict[str, Any]) -> None:
    body = orjson.dumps({**top, "batch": batch})
    refusal: RequestError | AuthError | None = None
    try:
        result = module_collector.collect(body, endpoint="batch", authorization=AUTH)
    except (RequestError, AuthError) as exc:
        refusal = exc
    if refusal is not None:
        assert 400 <= refusal.status < 500
        assert str(refusal)
        return
    assert len(result.rows) == len(batch)
    result.record_batch()  # every accepted envelope fits the Arrow schema


@settings(max_examples=200, deadline=None)
@given(
    # hypothesis takes naive bounds and attaches the time zone itself
    event_time=st.datetimes(min_value=datetime(2000, 1, 1),  # noqa: DTZ001
                            max_value=datetime(2090, 1, 1),  # noqa: DTZ001
                            timezones=st.just(UTC)),
    send_delay=st.integers(0, 10**12),
    skew=st.integers(-(10**12), 10**12),
)
def test_skew_correction_keeps_the_clients_offsets(module_collector: Collector,
                                                   event_time: datetime, send_delay: int,
                                                   skew: int) -> None:
    sent = event_time + timedelta(microseconds=send_delay)
    received = parse_timestamp(sent.isoformat())
    assert received is not None
    received += skew  # the device clock is off by `skew` microseconds
    message = {"type": "track", "event": "e", "userId": "u", "messageId": "m",
               "timestamp": event_time.isoformat(), "sentAt": sent.isoformat()}
    [row] = module_collector.collect(orjson.dumps({"batch": [message]}), endpoint="batch",
                                     authorization=AUTH, received_at=received).envelopes
    assert row["received_at"] - row["timestamp"] == row["sent_at"] - row["original_timestamp"]
    assert row["received_at"] - row["timestamp"] == send_delay
