"""Typed views show every version's rows as they were validated: collected, logged and
loaded into a real DuckDB warehouse, then read through ``evt_<event>``."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import duckdb
import orjson
import pytest

from nerve.catalog import Catalog
from nerve.collector import Collector
from nerve.loader import Loader
from nerve.log import LogWriter
from nerve.warehouse import Warehouse
from nerve.workspace import Workspace

V1 = """name: song_played
version: 1.0.0
properties:
  duration_ms: {type: number, required: true}
  genre: {type: string}
  rating: {type: integer}
"""
V2 = """name: song_played
version: 2.0.0
properties:
  duration_ms: {type: integer, required: true}
  rating: {type: integer}
  album: {type: string}
"""


def _load(ws: Workspace, messages: list[dict[str, Any]]) -> Warehouse:
    catalog = Catalog.load(ws.events_dir)
    collected = Collector(ws, catalog).collect(
        orjson.dumps({"batch": messages}), endpoint="batch",
        authorization=_basic(ws.config.sources[0].write_key))
    assert collected.quarantined == 0
    with LogWriter(ws.log_dir, "test") as log:
        log.append(collected.record_batch())
        log.sync()
    warehouse = Warehouse.for_workspace(ws)
    Loader(ws.log_dir, warehouse).load_once()
    warehouse.refresh_views(catalog)
    return warehouse


def _basic(key: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:".encode()).decode()


def _song(message_id: str, version: str | None, **properties: Any) -> dict[str, Any]:
    context = {"event_version": version} if version else {}
    return {"type": "track", "event": "song_played", "userId": "u1",
            "messageId": message_id, "properties": properties, "context": context}


def test_a_view_reads_older_versions_values_as_they_were_validated(
        make_workspace: Callable[..., Workspace]) -> None:
    ws = make_workspace({"song_played.yaml": V2, "versions/song_played.v1.yaml": V1})
    warehouse = _load(ws, [
        _song("m1", "1.0.0", duration_ms=12.5, genre="jazz", rating=4),
        _song("m2", None, duration_ms=12, rating=5, album="Kind of Blue"),
    ])
    rows = warehouse.query(
        "SELECT v.schema_version, v.duration_ms, v.rating, v.album, v.genre, "
        "json_extract(e.properties, '$.duration_ms')::VARCHAR AS raw "
        "FROM evt_song_played v JOIN events e USING (message_id) "
        "ORDER BY v.message_id").to_pylist()
    # v1's 12.5 reads 12.5, not 13; v1's genre, which v2 dropped, is a column too
    assert rows == [
        {"schema_version": "1.0.0", "duration_ms": 12.5, "rating": 4, "album": None,
         "genre": "jazz", "raw": "12.5"},
        {"schema_version": "2.0.0", "duration_ms": 12.0, "rating": 5,
         "album": "Kind of Blue", "genre": None, "raw": "12"},
    ]
    types = {r["column_name"]: r["data_type"] for r in warehouse.query(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = 'evt_song_played'").to_pylist()}
    # the versions disagree on duration_ms (number, integer): DOUBLE holds both
    assert types["duration_ms"] == "DOUBLE"
    assert types["rating"] == "BIGINT"  # they agree: the type of both
    warehouse.close()


def test_an_integer_column_reads_a_fraction_as_null(
        make_workspace: Callable[..., Workspace]) -> None:
    """A fraction in an integer column (sent before the property was declared one, or by
    an event allowing any property) is not a whole number: NULL, as the docs say, not
    rounded."""
    ws = make_workspace({"song_played.yaml": V2})
    warehouse = _load(ws, [_song("m1", None, duration_ms=7, rating=3)])
    warehouse.cursor().execute(
        "INSERT INTO events BY NAME SELECT * REPLACE ('m2' AS message_id, "
        "json_object('duration_ms', 12.5, 'rating', 4.0) AS properties) FROM events")
    rows = warehouse.query("SELECT message_id, duration_ms, rating FROM evt_song_played "
                           "ORDER BY 1").to_pylist()
    assert rows == [{"message_id": "m1", "duration_ms": 7, "rating": 3},
                    {"message_id": "m2", "duration_ms": None, "rating": 4}]
    warehouse.close()


RIDE = """name: ride_started
version: 1.0.0
properties:
  start_lat: {type: number, pii: personal}
  battery_pct: {type: integer, pii: personal, handling: keep}
  rider_age: {type: integer, pii: pseudonymous}
"""


def test_a_hashed_number_reads_as_its_pseudonym_not_null(
        make_workspace: Callable[..., Workspace]) -> None:
    """A personal number is stored as its pseudonym (``h:...`` text) by the default
    policy: its column shows what the events table holds, where a DOUBLE column read
    NULL on every row. A number kept as sent keeps its type."""
    ws = make_workspace({"ride_started.yaml": RIDE})
    warehouse = _load(ws, [{"type": "track", "event": "ride_started", "userId": "u1",
                            "messageId": "m1", "properties": {
                                "start_lat": 52.52, "battery_pct": 80, "rider_age": 31}}])
    row = warehouse.query(
        "SELECT v.start_lat, v.battery_pct, v.rider_age, "
        "json_extract_string(e.properties, '$.start_lat') AS raw_lat, "
        "json_extract_string(e.properties, '$.rider_age') AS raw_age "
        "FROM evt_ride_started v JOIN events e USING (message_id)").to_pylist()[0]
    assert row["raw_lat"].startswith("h:")
    assert row["raw_age"].startswith("h:")
    assert row["start_lat"] == row["raw_lat"]
    assert row["rider_age"] == row["raw_age"]
    assert row["battery_pct"] == 80
    types = {r["column_name"]: r["data_type"] for r in warehouse.query(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = 'evt_ride_started'").to_pylist()}
    assert types["battery_pct"] == "BIGINT"
    warehouse.close()


PURCHASE = """name: item_purchased
version: 1.0.0
properties:
  price: {type: number, required: true}
"""


def test_a_number_column_keeps_every_value_and_the_documented_sum_is_exact(
        make_workspace: Callable[..., Workspace]) -> None:
    """A ``number`` column is DOUBLE, the one DuckDB type that reads every number the
    collector accepts (1e300 and 1e-300 alike): no DECIMAL holds them all. A plain
    ``sum`` of doubles gathers binary rounding (100 x 19.99 = 1999.0000000000007); the
    exact way docs/catalog.md gives, a cast to DECIMAL with the values' decimals, gives
    the sum of what was sent, and fails loudly rather than drop a value it cannot hold."""
    ws = make_workspace({"item_purchased.yaml": PURCHASE})
    messages = [{"type": "track", "event": "item_purchased", "userId": "u1",
                 "messageId": f"m{i:03}", "properties": {"price": 19.99}}
                for i in range(100)]
    messages += [{"type": "track", "event": "item_purchased", "userId": "u1",
                  "messageId": m, "properties": {"price": p}}
                 for m, p in (("big", 1e300), ("tiny", 1e-300))]
    warehouse = _load(ws, messages)
    prices = dict(warehouse.cursor().execute(
        "SELECT message_id, price FROM evt_item_purchased "
        "WHERE message_id IN ('big', 'tiny', 'm000')").fetchall())
    assert prices == {"big": 1e300, "tiny": 1e-300, "m000": 19.99}
    cents = "FROM evt_item_purchased WHERE message_id LIKE 'm%'"
    plain = warehouse.cursor().execute(f"SELECT sum(price) {cents}").fetchone()
    assert plain is not None
    assert plain[0] != 1999  # what a plain sum of doubles reads
    exact = warehouse.cursor().execute(
        f"SELECT sum(price::DECIMAL(38, 2))::VARCHAR {cents}").fetchone()
    assert exact == ("1999.00",)
    rounded = warehouse.cursor().execute(f"SELECT round(sum(price), 2) {cents}").fetchone()
    assert rounded == (1999.0,)
    with pytest.raises(duckdb.ConversionException, match=r"DECIMAL\(38,2\)"):
        warehouse.cursor().execute("SELECT sum(price::DECIMAL(38, 2)) FROM evt_item_purchased")
    warehouse.close()
