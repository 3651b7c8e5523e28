"""Typed per-event views on a real DuckDB, over rows shaped like the warehouse's events."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from nerve.catalog import Catalog, EventSpec, PropertySpec, Version
from nerve.warehouse._typed_views import refresh_typed_views, typed_view_sql

FIXTURE = Path(__file__).parent / "fixtures" / "shop" / "events"
T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


def _con(events_table: Callable[[list[dict[str, Any]]], Any]) -> duckdb.DuckDBPyConnection:
    table = events_table([
        {"event": "add_to_cart", "user_id": "u1", "timestamp": T0,
         "properties": {"quantity": 2, "product_id": "p1", "price": 9.5, "currency": "EUR"}},
        {"event": "add_to_cart", "user_id": "u2", "timestamp": T0,
         "properties": {"quantity": "lots", "product_id": "p2"}},
        {"event": "order_completed", "user_id": "u1", "timestamp": T0,
         "properties": {"order_id": "o-1", "revenue": 19, "express": True,
                        "placed_at": "2026-03-01T12:00:00Z",
                        "shipping": {"country": "FR"}}},
        {"type": "identify", "user_id": "u1", "timestamp": T0, "traits": {"email": "x"}},
    ])
    con = duckdb.connect()
    con.register("incoming", table)
    con.execute("CREATE TABLE events AS SELECT * EXCLUDE (properties, traits, context), "
                "properties::JSON AS properties, traits::JSON AS traits, "
                "context::JSON AS context FROM incoming")
    con.unregister("incoming")
    return con


def test_views_have_typed_property_columns(
        events_table: Callable[[list[dict[str, Any]]], Any]) -> None:
    con = _con(events_table)
    names = refresh_typed_views(con, Catalog.load(FIXTURE))
    assert names == ["evt_add_to_cart", "evt_identify", "evt_order_completed",
                     "evt_products_searched"]
    types = dict(con.execute("SELECT column_name, data_type FROM information_schema.columns "
                             "WHERE table_name = 'evt_order_completed'").fetchall())
    assert types["revenue"] == "DOUBLE"
    assert types["express"] == "BOOLEAN"
    assert types["placed_at"] == "TIMESTAMP WITH TIME ZONE"
    assert types["shipping"] == "JSON"
    assert types["message_id"] == "VARCHAR"
    rows = con.execute("SELECT user_id, quantity, price, currency FROM evt_add_to_cart "
                       "ORDER BY user_id").fetchall()
    # a value of the wrong type reads as NULL instead of failing the query
    assert rows == [("u1", 2, 9.5, "EUR"), ("u2", None, None, None)]
    order = con.execute("SELECT revenue, express, placed_at, shipping->>'country' "
                        "FROM evt_order_completed").fetchone()
    assert order == (19.0, True, T0, "FR")
    # the identify call's traits, typed as identify.yaml declares them (no track rows)
    assert con.execute("SELECT user_id, email, age_group FROM evt_identify").fetchall() == \
        [("u1", "x", None)]


def test_refresh_follows_catalog_changes(
        events_table: Callable[[list[dict[str, Any]]], Any]) -> None:
    con = _con(events_table)
    refresh_typed_views(con, Catalog.load(FIXTURE))
    smaller = Catalog.from_specs([EventSpec("add_to_cart", Version(3), properties=(
        PropertySpec("quantity", "number"), PropertySpec("timestamp", "string")))])
    assert refresh_typed_views(con, smaller) == ["evt_add_to_cart"]
    views = {r[0] for r in con.execute(
        "SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
    assert views == {"evt_add_to_cart"}
    columns = [r[0] for r in con.execute("DESCRIBE evt_add_to_cart").fetchall()]
    # a property named like an envelope column gets a prefix instead of a clash
    assert columns[-2:] == ["quantity", "prop_timestamp"]
    assert con.execute("SELECT sum(quantity) FROM evt_add_to_cart").fetchone() == (2.0,)


def test_view_sql_quotes_odd_names() -> None:
    spec = EventSpec("Order Completed", Version(1), properties=(
        PropertySpec("it's.here", "integer"),))
    sql = typed_view_sql(spec)
    assert '"evt_order_completed"' in sql
    assert "event = 'Order Completed'" in sql
    con = duckdb.connect()
    con.execute("CREATE TABLE events (message_id VARCHAR, type VARCHAR, event VARCHAR, "
                "user_id VARCHAR, anonymous_id VARCHAR, timestamp TIMESTAMPTZ, "
                "original_timestamp TIMESTAMPTZ, sent_at TIMESTAMPTZ, "
                "received_at TIMESTAMPTZ, source VARCHAR, historical BOOLEAN, "
                "schema_version VARCHAR, context JSON, properties JSON)")
    con.execute("INSERT INTO events (type, event, properties) VALUES "
                "('track', 'Order Completed', '{\"it''s.here\": 7}')")
    con.execute(sql)
    assert con.execute('SELECT "it\'s.here" FROM evt_order_completed').fetchone() == (7,)


def test_group_calls_get_a_view_of_their_traits(
        events_table: Callable[[list[dict[str, Any]]], Any]) -> None:
    table = events_table([
        {"type": "group", "event": None, "user_id": "u1", "group_id": "acme",
         "timestamp": T0, "traits": {"seats": "12", "plan": "team"}},
        {"type": "identify", "event": None, "user_id": "u1", "timestamp": T0,
         "traits": {"seats": 99}},
        {"event": "add_to_cart", "user_id": "u1", "timestamp": T0, "properties": {}},
    ])
    con = duckdb.connect()
    con.register("incoming", table)
    con.execute("CREATE TABLE events AS SELECT * EXCLUDE (properties, traits, context), "
                "properties::JSON AS properties, traits::JSON AS traits, "
                "context::JSON AS context FROM incoming")
    group = EventSpec("group", Version(1), type="group", properties=(
        PropertySpec("seats", "integer"), PropertySpec("plan", "string")))
    # no identify entry in this catalog: no evt_identify, however many identify rows
    assert refresh_typed_views(con, Catalog.from_specs([group])) == ["evt_group"]
    assert con.execute("SELECT user_id, seats, plan FROM evt_group").fetchall() == [
        ("u1", 12, "team")]
