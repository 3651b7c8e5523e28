"""What a reader reads of ``check_results`` and of the warehouse's engine.

Rows written before nerve withheld personal values in check results quote them (a kept
diagnosis that disappeared, a country read from a personal trait): a reader's view of
the table withholds those rows' messages and values. A query before any check ran says
so, and a reader's query never makes DuckDB download or load an extension.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from nerve.catalog import Catalog
from nerve.errors import QueryError
from nerve.quality import CheckResult, Status
from nerve.quality._history import record_results
from nerve.warehouse import MaskedWarehouse, Warehouse
from nerve.workspace import Workspace

APPOINTMENT = """\
name: appointment_booked
description: A patient books an appointment.
owner: care
purpose: analytics
version: 1
properties:
  diagnosis: {type: string, pii: sensitive, enum: [raw-hypertension, raw-asthma]}
  clinic: {type: string, pii: none, enum: [north, south]}
"""

IDENTIFY = """\
name: identify
type: identify
description: Who the user is.
owner: growth
purpose: analytics
version: 1
properties:
  country: {type: string, pii: personal, handling: keep}
"""

AT = datetime(2026, 11, 28, tzinfo=UTC)
#: rows as the checks wrote them before they withheld personal values
OLD_ROWS = [
    ("disappeared_values", "appointment_booked",
     {"property": "properties.diagnosis", "value": "raw-hypertension"},
     "appointment_booked.diagnosis = 'raw-hypertension' has disappeared: none in the last 24h"),
    ("disappeared_values", "appointment_booked",
     {"property": "properties.clinic", "value": "south"},
     "appointment_booked.clinic = 'south' has disappeared: none in the last 24h"),
    ("volume", "appointment_booked", {"country": "RawLand"},
     "appointment_booked with country = RawLand: 3 events, about 40 expected"),
    ("volume", "appointment_booked", {"platform": "ios"},
     "appointment_booked with platform = ios: 3 events, about 40 expected"),
]


def _store_old_rows(warehouse: Warehouse) -> None:
    record_results(warehouse.ibis(), [])  # makes the table, as the first run does
    cursor = warehouse.cursor()
    for check, event, dims, message in OLD_ROWS:
        cursor.execute(
            "INSERT INTO check_results (run_id, \"at\", \"check\", name, status, event, "
            "dimensions, message, details) VALUES ('r1', ?, ?, ?, 'warn', ?, ?, ?, '{}')",
            [AT, check, CheckResult(check=check, status=Status.warn, message=message,
                                    event=event, dimensions=dims).name,
             event, json.dumps(dims), message])


def test_a_reader_reads_no_personal_value_older_check_results_quote(
        make_workspace: Callable[..., Workspace], events_table: Any) -> None:
    ws = make_workspace({"appointment_booked.yaml": APPOINTMENT, "identify.yaml": IDENTIFY})
    catalog = Catalog.load(ws.events_dir)
    with Warehouse.for_workspace(ws) as warehouse:
        _store_old_rows(warehouse)
        cursor = warehouse.cursor()
        cursor.register("rows", events_table([{
            "event": "appointment_booked", "user_id": "u1", "timestamp": AT,
            "context": {"traits": {"country": "RawLand"}}}]))
        cursor.execute("INSERT INTO events SELECT * FROM rows")
        masked = MaskedWarehouse(warehouse, catalog, b"k" * 16)
        rows = masked.query("SELECT * FROM check_results ORDER BY message").to_pylist()
        text = json.dumps(rows, default=str)
        assert "raw-hypertension" not in text
        assert "RawLand" not in text
        # values a reader may see stay as stored
        assert "'south' has disappeared" in text
        assert "platform = ios" in text
        by_dims = {tuple(json.loads(r["dimensions"])): r for r in rows}
        assert json.loads(by_dims[("property",)]["dimensions"]) == {
            "property": "properties.diagnosis"}
        country = json.loads(by_dims[("country",)]["dimensions"])["country"]
        # the mask a reader's events view gives the same trait: a breakdown matches it
        (trait_mask,), = masked.query(
            "SELECT context->>'$.traits.country' AS c FROM events").to_pylist()[0].values(),
        assert country.startswith("m:")
        assert country == trait_mask
        assert all(r["status"] == "warn" for r in rows)
        # a result's name lists its dimensions as the view gives them
        assert {r["name"] for r in rows} == {
            "disappeared_values:appointment_booked:property=properties.diagnosis",
            "disappeared_values:appointment_booked:property=properties.clinic:value=south",
            f"volume:appointment_booked:country={country}",
            "volume:appointment_booked:platform=ios"}
        # the admin reads the rows as stored
        admin = json.dumps(warehouse.query("SELECT * FROM check_results").to_pylist(),
                           default=str)
        assert "raw-hypertension" in admin
        assert "RawLand" in admin


def test_a_query_on_check_results_before_any_check_ran_says_so(
        make_workspace: Callable[..., Workspace]) -> None:
    ws = make_workspace({"appointment_booked.yaml": APPOINTMENT})
    with Warehouse.for_workspace(ws) as warehouse:
        masked = MaskedWarehouse(warehouse, Catalog.load(ws.events_dir), b"k" * 16)
        for reads in (masked, warehouse):
            with pytest.raises(QueryError, match=r"no checks have run yet \(nerve check\)"):
                reads.query("SELECT count(*) FROM Check_Results")
        # other missing tables keep DuckDB's message
        with pytest.raises(QueryError, match="evnts does not exist"):
            warehouse.query("SELECT * FROM evnts")


def test_a_readers_query_never_installs_or_loads_an_extension(
        make_workspace: Callable[..., Workspace]) -> None:
    ws = make_workspace({"appointment_booked.yaml": APPOINTMENT})
    with Warehouse.for_workspace(ws) as warehouse:
        masked = MaskedWarehouse(warehouse, Catalog.load(ws.events_dir), b"k" * 16)
        with pytest.raises(QueryError) as refused:
            masked.query("SELECT sql_auto_complete('x')")
        assert "download" not in str(refused.value).lower()
        loaded = {name for (name,) in warehouse.cursor().execute(
            "SELECT extension_name FROM duckdb_extensions() WHERE loaded").fetchall()}
        assert "autocomplete" not in loaded
        # what nerve itself uses is built in: JSON, time zones
        answer = masked.query(
            "SELECT json_extract_string('{\"a\": \"b\"}', '$.a') AS a, "
            "strftime(TIMESTAMPTZ '2026-11-28 23:30:00+00' AT TIME ZONE 'Europe/Berlin', "
            "'%d') AS day").to_pylist()
        assert answer == [{"a": "b", "day": "29"}]
