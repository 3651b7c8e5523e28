"""Builders for the quality suite: quarantine and loads tables, a small catalog, a clock."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import orjson
import pyarrow as pa
import pytest
from tests.conftest import _ENGINES, Engine

from nerve.catalog import Catalog, EventSpec, PropertySpec, Version
from nerve.envelope import ENVELOPE_SCHEMA
from nerve.quality import Inputs

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
TS = pa.timestamp("us", tz="UTC")


def ago(**delta: float) -> datetime:
    return NOW - timedelta(**delta)


_DEFAULTS: dict[str, Any] = {
    "type": "track", "event": None, "name": None, "user_id": None, "anonymous_id": None,
    "group_id": None, "previous_id": None, "original_timestamp": None, "sent_at": None,
    "properties": None, "traits": None, "context": None, "source": "web",
    "historical": False, "schema_version": None,
}


@pytest.fixture(scope="session", params=["duckdb", "postgres"])
def engine(request: pytest.FixtureRequest) -> Engine:
    """DuckDB and PostgreSQL. The checks are plain Ibis and ran on Spark too while they
    were written, but a Spark session costs a minute of this 2-core machine."""
    return Engine(request.param, _ENGINES[request.param]())


@pytest.fixture
def quarantine_table() -> Callable[[list[dict[str, Any]]], pa.Table]:
    """Rows shaped like the warehouse's ``quarantine`` table; ``violations`` a list of dicts."""
    schema = pa.schema([*ENVELOPE_SCHEMA, pa.field("quarantined_at", TS)])

    def build(rows: list[dict[str, Any]]) -> pa.Table:
        full = []
        for row in rows:
            item = {**_DEFAULTS, **row}
            item.setdefault("message_id", str(uuid.uuid4()))
            item.setdefault("received_at", item["timestamp"])
            item.setdefault("quarantined_at", item["received_at"])
            item["violations"] = orjson.dumps(item.get("violations") or []).decode()
            for key in ("properties", "traits", "context"):
                if isinstance(item[key], dict):
                    item[key] = orjson.dumps(item[key]).decode()
            full.append({name: item[name] for name in schema.names})
        return pa.Table.from_pylist(full, schema=schema)

    return build


LOADS_SCHEMA = pa.schema([
    pa.field("at", TS), pa.field("writer", pa.string()), pa.field("segment", pa.string()),
    pa.field("start_offset", pa.int64()), pa.field("offset", pa.int64()),
    pa.field("rows_in", pa.int64()), pa.field("loaded", pa.int64()),
    pa.field("duplicates", pa.int64()), pa.field("quarantined", pa.int64()),
    pa.field("duplicate_sources", pa.string()), pa.field("withheld", pa.string()),
])


def loads_table(rows: list[dict[str, Any]]) -> pa.Table:
    full = [{"writer": "w0", "segment": "s0", "start_offset": 0, "offset": 1, "loaded": 0,
             "quarantined": 0, **row} for row in rows]
    return pa.Table.from_pylist(full, schema=LOADS_SCHEMA)


@pytest.fixture
def inputs(engine: Any, events_table: Any, quarantine_table: Any
           ) -> Callable[..., Inputs]:
    """Load hand-made rows on the engine: ``inputs(events, quarantine=..., loads=...)``."""
    counter = iter(range(10_000))

    def make(events: list[dict[str, Any]], quarantine: list[dict[str, Any]] | None = None,
             loads: list[dict[str, Any]] | None = None) -> Inputs:
        tag = f"{next(counter)}_{uuid.uuid4().hex[:6]}"
        e = engine.load(f"q_events_{tag}", events_table(events))
        q = (engine.load(f"q_quarantine_{tag}", quarantine_table(quarantine))
             if quarantine is not None else None)
        lo = engine.load(f"q_loads_{tag}", loads_table(loads)) if loads is not None else None
        return Inputs(events=e, quarantine=q, loads=lo)

    return make


def spec(name: str, *props: PropertySpec, status: str = "active") -> EventSpec:
    return EventSpec(name=name, version=Version(1), properties=props, status=status)


def catalog(*specs: EventSpec) -> Catalog:
    return Catalog.from_specs(list(specs))


def prop(name: str, type_: str = "string", *, required: bool = False,
         enum: tuple[Any, ...] | None = None) -> PropertySpec:
    return PropertySpec(name=name, type=type_, required=required, enum=enum)  # type: ignore[arg-type]


class _Receiver(BaseHTTPRequestHandler):
    received: list[dict[str, Any]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append({"type": self.headers["Content-Type"], "body": json.loads(body)})
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:  # keep pytest output clean
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A real HTTP server on a free loopback port that records the POSTs it gets."""
    received: list[dict[str, Any]] = []
    handler = type("Handler", (_Receiver,), {"received": received})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", received
    server.shutdown()
    server.server_close()
