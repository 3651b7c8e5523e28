"""Envelope batches for the log tests."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pytest

from nerve.envelope import Envelope, to_record_batch

T0 = 1_790_000_000_000_000  # 2026-09-21, microseconds


def envelope(i: int = 0, **overrides: Any) -> Envelope:
    row: dict[str, Any] = {
        "message_id": str(uuid.uuid4()), "type": "track", "event": "product_viewed",
        "name": None, "user_id": f"u{i}", "anonymous_id": None, "group_id": None,
        "previous_id": None, "timestamp": T0 + i, "original_timestamp": T0 + i,
        "sent_at": T0 + i, "received_at": T0 + i, "properties": f'{{"i": {i}}}',
        "traits": None, "context": '{"library": {"name": "test"}}', "source": "web",
        "historical": False, "schema_version": "1", "violations": None,
    }
    row.update(overrides)
    return row  # type: ignore[return-value]


@pytest.fixture
def make_batch() -> Callable[..., pa.RecordBatch]:
    """``make_batch(n, start=0)``: a batch of ``n`` valid envelopes."""

    def make(n: int, start: int = 0, **overrides: Any) -> pa.RecordBatch:
        return to_record_batch([envelope(start + i, **overrides) for i in range(n)])

    return make


@pytest.fixture
def make_envelope() -> Callable[..., Envelope]:
    """``make_envelope(i, **overrides)``: one valid envelope."""
    return envelope
