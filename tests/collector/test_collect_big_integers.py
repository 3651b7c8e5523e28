"""Whole numbers beyond 64 bits, as JSON integers (docs/storage.md, "Numbers").

The collector's JSON parser reads an integer beyond unsigned 64 bits as the nearest
float, and the warehouse's integer is 64 bits: a declared ``integer`` outside that range
is quarantined naming the field and the range, where it used to be stored (as a float,
or a number the typed view read as NULL) without a word.
"""

from __future__ import annotations

import base64
from collections.abc import Callable

import orjson
import pytest

from nerve.catalog import Catalog
from nerve.collector import Collector, RequestError
from nerve.workspace import Workspace

BOUGHT = """\
name: plan_bought
description: A listener buys a premium plan.
owner: payments
purpose: analytics
version: 1
retention: 400d
properties:
  seats: {type: integer, pii: none}
  ledger: {type: object, pii: none, properties: {entry: {type: integer, pii: none}}}
"""

LOW, HIGH = -(2**63), 2**63 - 1


def collect(ws: Workspace, body: bytes) -> list[dict[str, object]]:
    collector = Collector(ws, Catalog.load(ws.events_dir))
    key = ws.config.sources[0].write_key
    auth = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    return [dict(e) for e in collector.collect(body, endpoint="batch",
                                               authorization=auth).envelopes]


def message(i: int, properties: str, event: str = "plan_bought") -> str:
    # JSON text: a Python int beyond 64 bits cannot go through orjson.dumps, and SDKs
    # (analytics-python's json.dumps) write such integers digit for digit
    return (f'{{"type": "track", "event": "{event}", "userId": "u1", "messageId": "m{i}", '
            f'"properties": {properties}}}')


def test_a_declared_integer_beyond_64_bits_is_quarantined_naming_field_and_range(
        make_workspace: Callable[..., Workspace]) -> None:
    ws = make_workspace({"plan_bought.yaml": BOUGHT})
    sent = [f'{{"seats": {2**70}}}', f'{{"seats": {-(2**64)}}}', f'{{"seats": {2**63}}}',
            f'{{"seats": {LOW - 1}}}', f'{{"ledger": {{"entry": {2**70 + 1}}}}}',
            f'{{"seats": {HIGH}, "ledger": {{"entry": {LOW}}}}}', '{"seats": 3}']
    body = ('{"batch": [' + ", ".join(message(i, p) for i, p in enumerate(sent))
            + "]}").encode()
    envelopes = collect(ws, body)  # one bad value costs its own event, not the batch
    assert len(envelopes) == len(sent)
    refused = {e["message_id"]: orjson.loads(str(e["violations"]))
               for e in envelopes if e["violations"]}
    assert set(refused) == {"m0", "m1", "m2", "m3", "m4"}
    for found in refused.values():
        (violation,) = found
        assert violation["path"] in ("$.properties.seats", "$.properties.ledger.entry")
        field = violation["path"].removeprefix("$.properties.")
        assert violation["message"].startswith(f"plan_bought.{field}: ")
        assert f"({LOW} to {HIGH})" in violation["message"]
    kept = {e["message_id"]: orjson.loads(str(e["properties"]))
            for e in envelopes if not e["violations"]}
    assert kept == {"m5": {"seats": HIGH, "ledger": {"entry": LOW}}, "m6": {"seats": 3}}


def test_a_declared_bound_inside_the_range_keeps_its_own_message(
        make_workspace: Callable[..., Workspace]) -> None:
    ws = make_workspace({"plan_bought.yaml": BOUGHT.replace(
        "seats: {type: integer,", "seats: {type: integer, maximum: 50,")})
    (envelope,) = collect(ws, ('{"batch": [' + message(0, '{"seats": 51}') + "]}").encode())
    (violation,) = orjson.loads(str(envelope["violations"]))
    assert violation["rule"] == "maximum"
    assert "50" in violation["message"]
    assert "64-bit" not in violation["message"]


def test_an_undeclared_integer_is_exact_within_64_bits_and_a_float_beyond(
        make_workspace: Callable[..., Workspace]) -> None:
    """What docs/storage.md says an uncataloged value becomes: the digits of an integer
    from -2**63 to 2**64 - 1, the nearest float beyond (the parser's reading)."""
    ws = make_workspace({"plan_bought.yaml": BOUGHT})
    within = {"low": LOW, "u64": 2**64 - 1}
    beyond = {"big": 2**70 + 1, "neg": -(2**64) - 1}
    text = "{" + ", ".join(f'"{k}": {v}' for k, v in {**within, **beyond}.items()) + "}"
    (envelope,) = collect(ws, ('{"batch": [' + message(0, text, "unplanned") + "]}").encode())
    stored = orjson.loads(str(envelope["properties"]))
    assert {k: stored[k] for k in within} == within
    for name, value in beyond.items():
        assert isinstance(stored[name], float)
        assert stored[name] == float(value)


def test_a_non_finite_number_costs_its_own_event_not_the_batch(
        make_workspace: Callable[..., Workspace]) -> None:
    """analytics-python writes ``float("nan")`` as ``NaN`` (Python's json.dumps), which is
    not JSON: the whole batch was refused with a 400, which SDKs do not retry."""
    ws = make_workspace({"plan_bought.yaml": BOUGHT.replace(
        "  seats:", "  price: {type: number, pii: none}\n  seats:")})
    sent = ['{"price": NaN}', '{"price": 4.5, "seats": 2}', '{"price": -Infinity}',
            f'{{"seats": {2**70}}}']
    body = ('{"batch": [' + ", ".join(message(i, p) for i, p in enumerate(sent))
            + "]}").encode()
    envelopes = collect(ws, body)
    assert [e["message_id"] for e in envelopes] == ["m0", "m1", "m2", "m3"]
    assert orjson.loads(str(envelopes[1]["properties"])) == {"price": 4.5, "seats": 2}
    assert envelopes[1]["violations"] is None
    for i, text in ((0, "NaN"), (2, "-Infinity")):
        (violation,) = orjson.loads(str(envelopes[i]["violations"]))
        assert violation["path"] == "$.properties.price"
        assert f'"{text}" is not of type "number"' in violation["message"]
    # an integer beyond 64 bits is read as the usual parse reads it, and refused as such
    (violation,) = orjson.loads(str(envelopes[3]["violations"]))
    assert "64-bit integer range" in violation["message"]


def test_a_number_past_a_float_s_range_is_a_400_after_a_nan_too(
        make_workspace: Callable[..., Workspace]) -> None:
    """A body with a ``NaN`` takes the lenient parse: there ``1e400`` was read as infinity
    and stored as null without a word, and a 400-digit integer raised OverflowError, a
    500 `internal`. Both are the 400 `invalid_json` they are without the NaN."""
    ws = make_workspace({"plan_bought.yaml": BOUGHT.replace(
        "  seats:", "  price: {type: number, pii: none}\n  seats:")})
    for beyond in ("1e400", "9" * 400):
        body = ('{"batch": [' + message(0, '{"price": NaN}') + ", "
                + message(1, f'{{"price": {beyond}}}') + "]}").encode()
        with pytest.raises(RequestError) as info:
            collect(ws, body)
        assert info.value.code == "invalid_json", beyond


def test_a_lone_surrogate_escape_is_read_as_the_replacement_character(
        make_workspace: Callable[..., Workspace]) -> None:
    """A browser's ``JSON.stringify`` writes half of an emoji cut by ``slice()`` as
    ``"\\ud83d"``: valid JSON, refused by orjson, and the 400 lost the whole batch.
    It is U+FFFD, as Segment's API reads it; a pair, or a NaN beside it, as ever."""
    ws = make_workspace({"plan_bought.yaml": BOUGHT.replace(
        "  seats:", "  price: {type: number, pii: none}\n"
                    "  plan: {type: string, pii: none}\n  seats:")})
    sent = ['{"plan": "Family \\ud83d"}', '{"plan": "\\ud83d\\ude00 \\udc00"}',
            '{"price": NaN, "plan": "x"}', '{"seats": 2}']
    body = ('{"batch": [' + ", ".join(message(i, p) for i, p in enumerate(sent))
            + "]}").encode()
    envelopes = collect(ws, body)
    assert [e["message_id"] for e in envelopes] == ["m0", "m1", "m2", "m3"]
    stored = [orjson.loads(str(e["properties"])) for e in envelopes]
    assert stored[0] == {"plan": "Family \ufffd"}
    assert stored[1] == {"plan": "\U0001f600 \ufffd"}
    assert stored[2] == {"price": "NaN", "plan": "x"}
    assert stored[3] == {"seats": 2}
    assert [e["violations"] is None for e in envelopes] == [True, True, False, True]


def test_a_numeric_message_id_keeps_its_digits_within_64_bits_and_a_hash_beyond(
        make_workspace: Callable[..., Workspace]) -> None:
    """docs/collector.md: ``messageId`` as an integer is its digits up to 2**64 - 1; a
    larger one reads as a float and gets the message's stable hash (a resend of it still
    dedupes)."""
    ws = make_workspace({"plan_bought.yaml": BOUGHT})

    def sent(message_id: int) -> str:
        return ('{"batch": [{"type": "track", "event": "plan_bought", "userId": "u1", '
                f'"messageId": {message_id}, "properties": {{"seats": 1}}}}]}}')

    (within,) = collect(ws, sent(2**64 - 1).encode())
    assert within["message_id"] == str(2**64 - 1)
    (beyond,) = collect(ws, sent(2**64).encode())
    (again,) = collect(ws, sent(2**64).encode())
    assert beyond["message_id"] != str(2**64)
    assert beyond["message_id"] == again["message_id"]


def test_a_number_beyond_a_floats_range_refuses_the_request_naming_its_position(
        make_workspace: Callable[..., Workspace]) -> None:
    """docs/storage.md, "Numbers": 1e400, or an integer past ~1.8e308, cannot be read."""
    ws = make_workspace({"plan_bought.yaml": BOUGHT})
    for number in ("1e400", "9" * 309):
        body = '{"batch": [' + message(0, f'{{"seats": {number}}}') + "]}"
        with pytest.raises(RequestError) as refused:
            collect(ws, body.encode())
        assert refused.value.code == "invalid_json"
        assert refused.value.details["position"] == body.index(number)
