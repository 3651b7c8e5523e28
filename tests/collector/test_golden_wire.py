"""Golden tests: every request captured from a real Segment SDK maps to the expected envelopes.

The inputs are tests/collector/wire/*.jsonl (method, path, headers, JSON body as
each client sent it). Each request is replayed through ``Collector.collect`` with its
capture time as ``received_at``; the envelopes must equal tests/collector/golden/<file>.json.
Regenerate after an intended mapping change with ``NERVE_REGEN_GOLDEN=1`` and review the diff.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Any

import orjson
import pytest

from nerve.collector import Collector
from nerve.envelope import ENVELOPE_FIELDS, to_record_batch
from nerve.pipeline import pseudonymise

HERE = Path(__file__).parent
GOLDEN = HERE / "golden"
SECRET = b"golden-test-secret"  # tests/collector/conftest.py
CAPTURES = sorted((HERE / "wire").glob("*.jsonl"))


def replay(collector: Collector, capture: dict[str, Any]) -> list[dict[str, Any]]:
    headers = {k.lower(): v for k, v in capture["headers"].items()}
    body = orjson.dumps(capture["json"])
    if headers.get("content-encoding") == "gzip":
        body = gzip.compress(body)
    collected = collector.collect(
        body, endpoint=capture["path"].rsplit("/", 1)[-1],
        authorization=headers.get("authorization"),
        content_encoding=headers.get("content-encoding"),
        received_at=round(capture["t"] * 1_000_000))
    # the hot path's columnar batch is exactly the envelope module's own conversion
    assert collected.record_batch().equals(to_record_batch(collected.envelopes))
    return [dict(e) for e in collected.envelopes]


def test_there_are_captures() -> None:
    assert len(CAPTURES) >= 3, "no wire captures in tests/collector/wire"


@pytest.mark.parametrize("path", CAPTURES, ids=[p.stem for p in CAPTURES])
def test_every_captured_request_maps_to_golden_envelopes(collector: Collector,
                                                         path: Path) -> None:
    lines = path.read_text().splitlines()
    actual = []
    for number, line in enumerate(lines, 1):
        capture = orjson.loads(line)
        envelopes = replay(collector, capture)
        assert envelopes, f"{path.name}:{number}: no envelopes"
        for envelope in envelopes:
            assert tuple(envelope) == ENVELOPE_FIELDS
        actual.append({"line": number, "path": capture["path"], "envelopes": envelopes})
    golden = GOLDEN / f"{path.stem}.json"
    if os.environ.get("NERVE_REGEN_GOLDEN"):
        golden.write_bytes(orjson.dumps(actual, option=orjson.OPT_INDENT_2) + b"\n")
    expected = orjson.loads(golden.read_bytes())
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected, strict=True):
        assert got == want, f"{path.name}:{got['line']} differs from {golden.name}"


def test_golden_files_show_the_quirks_handled() -> None:
    """Spot checks on the golden output, so a regenerated file cannot silently go wrong."""
    python = orjson.loads((GOLDEN / "segment-analytics-python-2.4.0.json").read_bytes())
    first = python[0]["envelopes"]
    identify, track, page, screen, group, alias, anon = first
    # anonymousId: null is accepted and stored as null; ids in snake_case
    assert identify["anonymous_id"] is None
    assert identify["user_id"] == "user-1"
    # an uncataloged trait named like personal data is stored only as its keyed hash
    assert orjson.loads(identify["traits"]) == {"email": pseudonymise("a@b.c", SECRET),
                                                "plan": "pro"}
    # a track with an old timestamp: corrected for skew against sentAt, raw values kept
    assert track["original_timestamp"] == 1704164645000000  # 2024-01-02T03:04:05Z
    assert track["sent_at"] - track["original_timestamp"] == (
        track["received_at"] - track["timestamp"])
    # cataloged under its Segment-style name with a space: validated, not quarantined
    assert track["schema_version"] == "1.0.0"
    assert track["violations"] is None
    assert orjson.loads(anon["violations"])[0]["rule"] == "unknown_event"
    assert page["name"] == "Install"
    assert orjson.loads(page["properties"])["category"] == "Docs"
    assert screen["name"] == "Home"
    assert group["group_id"] == "group-9"
    assert alias["previous_id"] == "user-1"
    assert anon["user_id"] is None
    assert anon["anonymous_id"] == "anon-7"
    # integrations, _metadata and writeKey are not stored anywhere
    for envelope in first:
        assert "integrations" not in (envelope["context"] or "")
        assert envelope["source"] == "server"
    node = orjson.loads((GOLDEN / "segment-analytics-node-3.1.0.json").read_bytes())
    assert all("_metadata" not in (e["context"] or "") for r in node for e in r["envelopes"])
    browser = orjson.loads((GOLDEN / "segment-analytics-next-1.84.3.json").read_bytes())
    assert [r["path"] for r in browser] == ["/v1/i", "/v1/t", "/v1/p", "/v1/b"]
    assert all(e["source"] == "browser" for r in browser for e in r["envelopes"])
