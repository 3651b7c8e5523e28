"""Validation against the catalog: fast path, quarantine, versions, unvalidated calls."""

from __future__ import annotations

import base64
from typing import Any

import orjson

from nerve.catalog import Catalog
from nerve.collector import Collector
from nerve.workspace import Workspace

AUTH = "Basic " + base64.b64encode(b"WRITEKEY123:").decode()


def collect(collector: Collector, *messages: dict[str, Any]) -> list[dict[str, Any]]:
    result = collector.collect(orjson.dumps({"batch": list(messages)}), endpoint="batch",
                               authorization=AUTH)
    return [dict(e) for e in result.envelopes]


def order(properties: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"type": "track", "event": "order_completed", "userId": "u",
            "properties": properties, **fields}


def violations(envelope: dict[str, Any]) -> list[dict[str, Any]]:
    return orjson.loads(envelope["violations"]) if envelope["violations"] else []


def test_valid_invalid_and_unknown_events_are_all_kept(collector: Collector) -> None:
    good, bad, unknown = collect(
        collector,
        order({"order_id": "o1", "revenue": 10.5, "currency": "EUR"}),
        order({"revenue": -1, "currency": "euro"}),
        {"type": "track", "event": "Order Complete", "userId": "u"},
    )
    assert good["violations"] is None
    assert good["schema_version"] == "2.0.0"
    rules = {(v["path"], v["rule"]) for v in violations(bad)}
    assert ("$.properties", "required") in rules  # order_id
    assert ("$.properties.revenue", "minimum") in rules
    assert ("$.properties.currency", "pattern") in rules
    assert bad["schema_version"] == "2.0.0"
    assert all(v["file"] and v["file"].endswith("order_completed.yaml") for v in violations(bad))
    [unknown_violation] = violations(unknown)
    assert unknown_violation["rule"] == "unknown_event"
    assert unknown_violation["path"] == "$.event"
    assert "Order Complete" in unknown_violation["message"]
    assert unknown["schema_version"] is None


def test_declared_version_is_used_else_the_latest(collector: Collector) -> None:
    v1_payload = {"revenue": 3}  # valid for version 1, missing order_id for version 2
    latest, major, exact, unknown = collect(
        collector,
        order(v1_payload),
        order(v1_payload, context={"event_version": "1"}),
        order(v1_payload, context={"event_version": "1.0.0"}),
        order(v1_payload, context={"event_version": 7}),
    )
    assert latest["schema_version"] == "2.0.0"
    assert violations(latest)
    assert major["schema_version"] == "1.0.0"
    assert major["violations"] is None
    assert exact["schema_version"] == "1.0.0"
    assert exact["violations"] is None
    [problem] = violations(unknown)
    assert problem["rule"] == "unknown_version"
    assert "1.0.0, 2.0.0" in problem["message"]



def test_an_absurdly_long_event_version_is_named_not_pythons_limit(collector: Collector) -> None:
    """A 5000-digit context.event_version quarantined its event with Python's own advice
    ("use sys.set_int_max_str_digits() to increase the limit") as the message."""
    [envelope] = collect(collector, order({"order_id": "o1", "revenue": 1.0},
                                          context={"event_version": "9" * 5000}))
    [problem] = violations(envelope)
    assert problem["rule"] == "invalid_version"
    assert "expected a version like 1 or 1.2.0" in problem["message"]
    assert "sys." not in problem["message"]
    assert "(5000 characters)" in problem["message"]
    assert len(problem["message"]) < 200

def test_calls_with_a_catalog_entry_are_validated_others_are_not(collector: Collector) -> None:
    good, bad, page, alias = collect(
        collector,
        {"type": "identify", "userId": "u", "traits": {"plan": "pro"}},
        {"type": "identify", "userId": "u", "traits": {"plan": "platinum"}},
        {"type": "page", "userId": "u", "name": "Home", "properties": {"anything": 1}},
        {"type": "alias", "userId": "u", "previousId": "a"},
    )
    assert good["violations"] is None
    assert good["schema_version"] == "1.0.0"
    assert [v["rule"] for v in violations(bad)] == ["enum"]
    assert violations(bad)[0]["path"] == "$.traits.plan"
    assert page["violations"] is None
    assert page["schema_version"] is None
    assert alias["violations"] is None
    assert alias["schema_version"] is None


def test_a_bad_timestamp_and_bad_properties_report_together(collector: Collector) -> None:
    [envelope] = collect(collector, order({"revenue": "ten"}, timestamp="soon"))
    rules = [v["rule"] for v in violations(envelope)]
    assert rules[0] == "invalid_timestamp"
    assert "type" in rules


def test_a_version_bumped_within_its_major_judges_events_declaring_the_one_before(
        workspace: Workspace) -> None:
    # code generated for 2.0.0 keeps declaring it after a minor bump to 2.1.0 (and after
    # the patch that deprecates an event): 2.1.0 accepts what 2.0.0 did, so they land
    live = workspace.events_dir / "order_completed.yaml"
    live.write_text(live.read_text().replace("version: 2", "version: 2.1.0")
                    + "  coupon: {type: string, pii: none}\n")
    collector = Collector(workspace, Catalog.load(workspace.events_dir))
    payload = {"order_id": "o1", "revenue": 10.5}
    older, exact, newer, other_major = collect(
        collector,
        order(payload, context={"event_version": "2.0.0"}),
        order(payload, context={"event_version": "1.0.0"}),
        order(payload, context={"event_version": "2.2.0"}),
        order(payload, context={"event_version": "3.0.0"}),
    )
    assert older["schema_version"] == "2.1.0"
    assert older["violations"] is None
    assert exact["schema_version"] == "1.0.0"  # a version still in the catalog is itself
    for unknown in (newer, other_major):  # newer than the catalog, or a major it lacks
        [problem] = violations(unknown)
        assert problem["rule"] == "unknown_version"
        assert "known: 1.0.0, 2.1.0" in problem["message"]
