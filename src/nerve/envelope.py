"""The envelope: one canonical record for every event, whatever protocol brought it.

The collector turns requests into envelopes (plain dicts typed by ``Envelope``, cheap to
build on the hot path), batches them into Arrow record batches with ``ENVELOPE_SCHEMA``,
and hands those to the event log. The loader writes them to the warehouse unchanged:
the ``events`` table when ``violations`` is null, the ``quarantine`` table otherwise.

Field names follow the Segment spec in snake_case. Timestamps are integers, microseconds
since the Unix epoch in UTC (``timestamp`` is clock-skew corrected, the raw client values
are kept). ``properties``, ``traits`` and ``context`` are JSON text.
"""

from __future__ import annotations

from typing import TypedDict

import pyarrow as pa

__all__ = ["ENVELOPE_FIELDS", "ENVELOPE_SCHEMA", "Envelope", "to_record_batch"]

_TS = pa.timestamp("us", tz="UTC")

ENVELOPE_SCHEMA = pa.schema(
    [
        pa.field("message_id", pa.string(), nullable=False),
        pa.field("type", pa.string(), nullable=False),  # track|identify|page|screen|group|alias
        pa.field("event", pa.string()),  # track: the event name
        pa.field("name", pa.string()),  # page/screen: the page or screen name
        pa.field("user_id", pa.string()),
        pa.field("anonymous_id", pa.string()),
        pa.field("group_id", pa.string()),
        pa.field("previous_id", pa.string()),
        pa.field("timestamp", _TS, nullable=False),  # corrected for client clock skew
        pa.field("original_timestamp", _TS),  # as the client said
        pa.field("sent_at", _TS),  # as the client said
        pa.field("received_at", _TS, nullable=False),  # by the collector's clock
        pa.field("properties", pa.string()),  # JSON object
        pa.field("traits", pa.string()),  # JSON object (identify/group, or context.traits)
        pa.field("context", pa.string()),  # JSON object: library, app, device, os, page, ...
        pa.field("source", pa.string(), nullable=False),  # the [[sources]] name of the key
        pa.field("historical", pa.bool_(), nullable=False),  # a backfill, not live traffic
        pa.field("schema_version", pa.string()),  # catalog version that validated it
        pa.field("violations", pa.string()),  # null when valid, else a JSON list
    ]
)

ENVELOPE_FIELDS = tuple(ENVELOPE_SCHEMA.names)


class Envelope(TypedDict):
    message_id: str
    type: str
    event: str | None
    name: str | None
    user_id: str | None
    anonymous_id: str | None
    group_id: str | None
    previous_id: str | None
    timestamp: int
    original_timestamp: int | None
    sent_at: int | None
    received_at: int
    properties: str | None
    traits: str | None
    context: str | None
    source: str
    historical: bool
    schema_version: str | None
    violations: str | None


def to_record_batch(envelopes: list[Envelope]) -> pa.RecordBatch:
    """Columnar form of a list of envelopes, in ``ENVELOPE_SCHEMA``."""
    columns = [
        pa.array([e[name] for e in envelopes], type=field.type)  # type: ignore[literal-required]
        for name, field in zip(ENVELOPE_FIELDS, ENVELOPE_SCHEMA, strict=True)
    ]
    return pa.RecordBatch.from_arrays(columns, schema=ENVELOPE_SCHEMA)
