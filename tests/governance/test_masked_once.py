"""``MaskedWarehouse.masked_once``: a question's queries read ``events`` from a TEMP table
the reader's view filled once, instead of masking every row again in each query.

The table must hold what the view gives (no raw value, the same rows and types), be
dropped at the end of the block, and leave the view as it was, so a later read sees
newer loads.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from tests.governance.test_masking import (
    EMAIL,
    IDENTIFY,
    IP,
    PHONE,
    SIGNUP,
    STREET,
    USER,
    _holds,
)

from nerve.catalog import Catalog
from nerve.warehouse import MaskedWarehouse, Warehouse
from nerve.warehouse._masking import KEY_TABLE, MASKED_ONCE
from nerve.workspace import Workspace

#: a property of an event the catalog does not describe: masked by the view's Python
#: function (``_undeclared``), not its SQL
NOTE = "raw-note-of-an-uncataloged-event-41"
RAW = [USER, PHONE, STREET, EMAIL, IP, NOTE]


def _rows(user: str = USER) -> list[dict[str, Any]]:
    at = datetime(2026, 11, 28, 10, tzinfo=UTC)
    context = {"ip": IP, "traits": {"email": EMAIL, "plan": "plus"}, "os": {"name": "iOS"}}
    return [
        {"event": "signup", "user_id": user, "timestamp": at, "context": context,
         "properties": {"plan": "plus", "phone": PHONE,
                        "address": {"street": STREET, "city": "Lisbon"}}},
        {"type": "identify", "event": None, "user_id": user, "timestamp": at,
         "context": context, "traits": {"email": EMAIL, "plan": "plus"}},
        {"event": "feedback", "user_id": user, "timestamp": at, "context": context,
         "properties": {"note": NOTE}},
    ]


def _read(masked: MaskedWarehouse, name: str = "events") -> list[dict[str, Any]]:
    rows = masked.table(name).to_pyarrow().to_pylist()
    return sorted(rows, key=lambda row: row["message_id"])


def _temporary_tables(masked: MaskedWarehouse) -> dict[str, bytes]:
    """Each TEMP table of the thread's connection but the masking key's -> its every
    value, as text."""
    cursor = masked._local.cursor
    names = [n for (n,) in cursor.execute(
        "SELECT table_name FROM duckdb_tables() WHERE temporary").fetchall() if n != KEY_TABLE]
    return {name: repr(cursor.execute(f"SELECT * FROM temp.main.{name}").fetchall()).encode()
            for name in names}


@pytest.fixture
def warehouse(make_workspace: Callable[..., Workspace], events_table: Any
              ) -> Any:
    ws = make_workspace({"signup.yaml": SIGNUP, "identify.yaml": IDENTIFY})
    catalog = Catalog.load(ws.events_dir)
    with Warehouse.for_workspace(ws) as warehouse:
        cursor = warehouse.cursor()
        cursor.register("rows", events_table(_rows()))
        cursor.execute("INSERT INTO events SELECT * FROM rows")
        warehouse.refresh_views(catalog)
        yield warehouse, MaskedWarehouse(warehouse, catalog, b"k" * 16)


def test_events_masked_once_are_the_views_rows_and_hold_no_raw_value(
        warehouse: tuple[Warehouse, MaskedWarehouse], events_table: Any) -> None:
    admin, masked = warehouse
    stored = repr(admin.cursor().execute("SELECT * FROM events").fetchall()).encode()
    assert [v for v in RAW if not _holds(stored, v)] == []  # the search below sees them
    per_query, schema = _read(masked), masked.table("events").schema()
    signups = _read(masked, "evt_signup")
    assert _temporary_tables(masked) == {}
    with masked.masked_once():
        tables = _temporary_tables(masked)
        assert list(tables) == [MASKED_ONCE]
        assert [v for v in RAW if _holds(tables[MASKED_ONCE], v)] == []
        once = _read(masked)
        assert once == per_query
        assert masked.table("events").schema() == schema
        assert repr(once).count("m:") > len(RAW)  # masks, not raw values, not nothing
        # a typed view reads the masked copy too
        assert _read(masked, "evt_signup") == signups
        assert signups[0]["phone"].startswith("m:")
        read = repr(_read(masked, "evt_signup")).encode()
        assert [v for v in RAW if _holds(read, v)] == []
    # dropped, and the view is back: a row loaded since is read, masked
    assert _temporary_tables(masked) == {}
    cursor = admin.cursor()
    cursor.register("later", events_table(_rows("user-loaded-later-raw")))
    cursor.execute("INSERT INTO events SELECT * FROM later")
    after = _read(masked)
    assert len(after) == 2 * len(per_query)
    assert "user-loaded-later-raw" not in repr(after)


def test_a_warehouse_beyond_the_bound_is_masked_by_each_query(
        warehouse: tuple[Warehouse, MaskedWarehouse]) -> None:
    _, masked = warehouse
    per_query = _read(masked)
    masked.masked_once_max_rows = len(per_query) - 1
    with masked.masked_once():
        assert _temporary_tables(masked) == {}
        assert _read(masked) == per_query
