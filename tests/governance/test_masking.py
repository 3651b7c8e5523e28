"""Readers see personal values masked; admins see the warehouse as stored.

A real ``nerve serve --workers 2`` stores events whose personal values the workspace
keeps (``handling: keep``, an allowed sensitive value, user ids, device ids, IPs). Every
read API answers a reader with none of those raw values in its bytes, while non-personal
control values come through and the figures (distinct users, funnels) equal the admin's.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import duckdb
import httpx
import orjson
import pytest
from tests.server.serverkit import basic, write_key
from typer.testing import CliRunner

from nerve.audit import read_records
from nerve.catalog import Catalog
from nerve.cli import app
from nerve.erasure import forget
from nerve.errors import QueryError
from nerve.pipeline import PrivacyPolicy
from nerve.quality import run_and_record
from nerve.warehouse import MaskedWarehouse, Warehouse
from nerve.warehouse._masking import (
    KEY_TABLE,
    OPEN_TABLES,
    _violations,
    check_reader_query,
    mask_key,
)
from nerve.workspace import Workspace

SIGNUP = """\
name: signup
description: Someone signs up.
owner: growth
purpose: analytics
version: 1
properties:
  plan: {type: string, pii: none}
  phone: {type: string, pii: personal, handling: keep, pattern: "^[+][0-9-]+$"}
  diagnosis: {type: string, pii: sensitive}
  birth_year: {type: integer, pii: personal, handling: keep}
  address:
    type: object
    pii: none
    properties:
      street: {type: string, pii: personal, handling: keep}
      city: {type: string, pii: none}
"""

PURCHASE = """\
name: purchase
description: An order.
owner: commerce
purpose: analytics
version: 1
properties:
  amount: {type: number, pii: none}
"""

IDENTIFY = """\
name: identify
type: identify
description: Who the user is.
owner: growth
purpose: analytics
version: 1
properties:
  email: {type: string, pii: personal, handling: keep}
  plan: {type: string, pii: none}
"""

TOML = """
[privacy]
allow_sensitive = ["signup.diagnosis"]

[[readers]]
name = "ana"
token_env = "NERVE_TEST_TOKEN_ANA"

[[readers]]
name = "sam"
token_env = "NERVE_TEST_TOKEN_SAM"
personal = "visible"
"""
ANA, SAM = "ana-" + "a" * 28, "sam-" + "s" * 28

USER, DEVICE_USER = "user-4711-raw", "anon-device-raw-88"
PHONE, BAD_PHONE = "+49-30-5550123", "call me maybe 555"
STREET, EMAIL, DIAGNOSIS = "Raw Street 17", "zelda.raw@example.org", "raw-diagnosis-q17"
IP, DEVICE_ID, AD_ID = "203.0.113.77", "device-id-raw-5c1", "advertising-id-raw-9d2"
BIRTH_YEAR = 1873
DEVICE_NAME, LATITUDE = "Zelda Raw's iPhone", 38.72231
RESET_EMAIL, TOKEN, REFERRER_ID = "reset.person@example.com", "tok-raw-7e1", "ref-raw-3c9"
DEEP_LINK_TOKEN, OPENED_BY_TOKEN = "deep-link-raw-6f4", "opened-by-raw-2a8"
PAGE = {"url": f"https://shop.example/reset?email={RESET_EMAIL}#token={TOKEN}",
        "path": "/reset", "search": f"?email={RESET_EMAIL}",
        "referrer": f"https://mail.example/open?id={REFERRER_ID}"}
RAW = ["Zelda Raw", str(LATITUDE), RESET_EMAIL, TOKEN, REFERRER_ID, DEEP_LINK_TOKEN, USER,
       DEVICE_USER, OPENED_BY_TOKEN,
       PHONE, BAD_PHONE, STREET, EMAIL, DIAGNOSIS, "203.0.113", DEVICE_ID, AD_ID,
       str(BIRTH_YEAR)]
CONTROL = ["plus", "Lisbon", '"https://shop.example/reset"', '"https://mail.example/open"']


def _holds(answer: bytes, value: str) -> bool:
    """Whether ``value`` is in ``answer``; a number only as a number of its own, not as
    digits inside another (a timestamp's microseconds, a hash's hex digits)."""
    if not value.isdigit():
        return value.encode() in answer
    return re.search(rb"(?<![0-9A-Za-z])" + value.encode() + rb"(?![0-9A-Za-z])",
                     answer) is not None


def _batch() -> list[dict[str, Any]]:
    context = {"ip": IP, "device": {"id": DEVICE_ID, "advertisingId": AD_ID, "model": "X1",
                                    "name": DEVICE_NAME},
               "location": {"city": "Lisbon", "latitude": LATITUDE, "longitude": -9.13931},
               "traits": {"email": EMAIL, "plan": "plus"}}
    common = {"userId": USER, "anonymousId": DEVICE_USER, "context": context,
              "timestamp": "2026-11-28T10:00:00Z"}
    users = [{"type": "track", "event": "signup", "messageId": f"s{i}", "userId": f"u{i}",
              "timestamp": "2026-11-28T09:00:00Z", "properties": {"plan": "free"}}
             for i in range(4)]
    return [
        {"type": "track", "event": "signup", "messageId": "s-raw", **common,
         "properties": {"plan": "plus", "phone": PHONE, "diagnosis": DIAGNOSIS,
                        "birth_year": BIRTH_YEAR,
                        "address": {"street": STREET, "city": "Lisbon"}}},
        {"type": "identify", "messageId": "i-raw", **common,
         "traits": {"email": EMAIL, "plan": "plus"}},
        {"type": "track", "event": "purchase", "messageId": "p-raw", **common,
         "timestamp": "2026-11-28T11:00:00Z", "properties": {"amount": 30}},
        # breaks the phone's pattern: the quarantine's violation message quotes it
        {"type": "track", "event": "signup", "messageId": "q-raw", **common,
         "properties": {"plan": "plus", "phone": BAD_PHONE}},
        # a page's address: its query string and fragment are cut for readers
        {"type": "page", "name": "Reset", "messageId": "pg-raw", "anonymousId": DEVICE_USER,
         "timestamp": "2026-11-28T08:00:00Z", "properties": dict(PAGE),
         "context": {"page": dict(PAGE)}},
        # a screen's deep link, the same
        {"type": "screen", "name": "Reset", "messageId": "sc-raw", "anonymousId": DEVICE_USER,
         "timestamp": "2026-11-28T08:30:00Z",
         "properties": {"url": f"shop://reset?token={DEEP_LINK_TOKEN}"},
         # the link that opened the app (Segment's context.referrer), the same
         "context": {"referrer": {"type": "link",
                                  "link": f"shop://reset?token={OPENED_BY_TOKEN}",
                                  "url": f"https://mail.example/go?t={OPENED_BY_TOKEN}"}}},
        *users,
        {"type": "track", "event": "purchase", "messageId": "p1", "userId": "u1",
         "timestamp": "2026-11-28T10:00:00Z", "properties": {"amount": 5}},
    ]


@pytest.fixture
def served(make_workspace: Callable[..., Workspace], serve: Callable[..., Any],
           monkeypatch: pytest.MonkeyPatch) -> tuple[Workspace, Any]:
    monkeypatch.setenv("NERVE_TEST_TOKEN_ANA", ANA)
    monkeypatch.setenv("NERVE_TEST_TOKEN_SAM", SAM)
    ws = make_workspace({"signup.yaml": SIGNUP, "purchase.yaml": PURCHASE,
                         "identify.yaml": IDENTIFY}, extra_toml=TOML)
    server = serve(ws, "--workers", "2")
    answer = httpx.post(server.url + "/v1/batch", json={"batch": _batch()},
                        headers=basic(write_key(ws)), timeout=30)
    assert answer.status_code == 200, answer.text
    admin = _token(ws)
    deadline = time.monotonic() + 60
    while _post(server, admin, "/v1/admin/sql", {"query": (
            "SELECT (SELECT count(*) FROM events) + (SELECT count(*) FROM quarantine) AS n"
    )}).json()["rows"] != [{"n": len(_batch())}]:
        assert time.monotonic() < deadline, "the events were not loaded within 60 s"
        time.sleep(0.2)
    return ws, server


def _token(ws: Workspace) -> str:
    token: str = orjson.loads((ws.data_dir / "server.json").read_bytes())["admin_token"]
    return token


def _post(server: Any, token: str, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(server.url + path, json=body, timeout=60,
                      headers={"Authorization": f"Bearer {token}"})


def test_a_reader_sees_no_raw_personal_value_and_the_admin_sees_them_all(
        served: tuple[Workspace, Any]) -> None:
    ws, server = served
    admin = _token(ws)
    queries = ["SELECT * FROM events", "SELECT * FROM quarantine",
               "SELECT * FROM evt_signup", "SELECT * FROM evt_purchase",
               "SELECT * FROM evt_identify"]
    as_admin = b"".join(_post(server, admin, "/v1/admin/sql", {"query": q}).content
                        for q in queries)
    as_reader = b"".join(_post(server, ANA, "/v1/admin/sql", {"query": q}).content
                         for q in queries)
    # the admin's answers hold every raw value: the search below can see them
    assert [v for v in RAW if not _holds(as_admin, v)] == []
    assert [v for v in RAW if _holds(as_reader, v)] == []
    assert [v for v in CONTROL if v.encode() not in as_reader] == []
    assert b'"model":"X1"' in as_reader  # the rest of the context is as stored
    (traits,) = _post(server, ANA, "/v1/admin/sql", {
        "query": "SELECT email, plan FROM evt_identify"}).json()["rows"]
    assert traits["email"].startswith("m:")
    assert traits["plan"] == "plus"

    rows = _post(server, ANA, "/v1/admin/sql", {"query": (
        "SELECT user_id, anonymous_id, properties, context FROM events "
        "WHERE message_id = 's-raw'")}).json()["rows"]
    (row,) = rows
    assert row["user_id"].startswith("m:")
    assert row["anonymous_id"].startswith("m:")
    assert row["properties"]["phone"].startswith("m:")
    assert row["properties"]["address"]["street"].startswith("m:")
    assert row["properties"]["address"]["city"] == "Lisbon"
    assert "birth_year" not in row["properties"]  # not a text: removed, not hashed
    assert row["context"]["ip"].startswith("m:")
    assert row["context"]["device"]["id"].startswith("m:")
    assert row["context"]["traits"]["email"].startswith("m:")
    assert row["context"]["traits"]["plan"] == "plus"
    (violation,) = _post(server, ANA, "/v1/admin/sql", {"query": (
        "SELECT violations FROM quarantine")}).json()["rows"][0]["violations"]
    assert violation["path"] == "$.properties.phone"
    # what the rule expects is the catalog's, not the value: the reader sees it
    assert violation["message"] == ('$.properties.phone: breaks the pattern rule, expected '
                                    'to match "^[+][0-9-]+$" (value withheld: personal data)')
    # the catalog's file and line are not personal: they stay, the file as the workspace
    # names it (the admin sees the server's absolute path, which a reader used to)
    (stored,) = _post(server, admin, "/v1/admin/sql", {"query": (
        "SELECT violations FROM quarantine")}).json()["rows"][0]["violations"]
    assert stored["file"] == str(ws.events_dir / "signup.yaml")
    assert isinstance(stored["line"], int)
    assert (violation["rule"], violation["file"], violation["line"]) == (
        stored["rule"], "events/signup.yaml", stored["line"])
    assert str(ws.root).encode() not in as_reader


def test_a_reader_learns_no_server_path_from_the_status(
        served: tuple[Workspace, Any]) -> None:
    """The catalog's problems name their files relative to the workspace for a reader."""
    ws, server = served
    path = ws.events_dir / "purchase.yaml"
    path.write_text(PURCHASE.replace("type: number", "type: nmber"), encoding="utf-8")
    deadline = time.monotonic() + 60
    while not httpx.get(server.url + "/v1/status", headers={
            "Authorization": f"Bearer {_token(ws)}"}).json()["catalog"]["problems"]:
        assert time.monotonic() < deadline, "the broken catalog was not noticed in 60 s"
        time.sleep(0.2)
    status = httpx.get(server.url + "/v1/status", headers={"Authorization": f"Bearer {ANA}"})
    assert status.status_code == 200, status.text
    [problem] = status.json()["catalog"]["problems"]
    assert problem.startswith("events/purchase.yaml:"), problem
    assert "nmber" in problem
    assert str(ws.root) not in status.text


def test_a_reader_may_be_let_see_personal_values_and_stays_a_reader(
        served: tuple[Workspace, Any]) -> None:
    ws, server = served
    query = {"query": "SELECT user_id FROM events WHERE message_id = 's-raw'"}
    assert _post(server, SAM, "/v1/admin/sql", query).json()["rows"] == [{"user_id": USER}]
    assert _post(server, SAM, "/v1/admin/forget", {"user_ids": [USER]}).status_code == 403
    assert [(r["action"], r["masked"]) for r in read_records(ws) if r["who"] == "sam"] == [
        ("/v1/admin/sql", False), ("/v1/admin/forget", False)]
    # the refused forget (403) read nothing: it is not among the reads as stored
    listed = CliRunner().invoke(app, ["--workspace", str(ws.root), "audit", "--unmasked",
                                      "--who", "sam", "--format", "json"])
    assert listed.exit_code == 0, listed.output
    assert [(r["action"], r["status"]) for r in json.loads(listed.stdout)] == [
        ("/v1/admin/sql", 200)]


def test_an_admin_may_ask_for_the_readers_view(served: tuple[Workspace, Any]) -> None:
    """``nerve mcp`` does, for the agents it serves."""
    ws, server = served
    query = {"query": "SELECT user_id, birth_year FROM evt_signup WHERE user_id IS NOT NULL "
                      "ORDER BY birth_year NULLS LAST LIMIT 1"}
    plain = _post(server, _token(ws), "/v1/admin/sql", query).json()["rows"]
    assert plain == [{"user_id": USER, "birth_year": BIRTH_YEAR}]
    masked = httpx.post(server.url + "/v1/admin/sql", json=query, timeout=60, headers={
        "Authorization": f"Bearer {_token(ws)}", "X-Nerve-View": "masked"}).json()["rows"]
    assert masked[0]["user_id"].startswith("m:")
    assert masked[0]["birth_year"] is None
    assert _post(server, ANA, "/v1/admin/sql", query).status_code == 200
    # the audit log says who read personal values as stored
    records = [(r["who"], r["masked"]) for r in read_records(ws)
               if r["request"] == query]
    assert records == [("admin", False), ("admin", True), ("ana", True)]
    listed = CliRunner().invoke(app, ["--workspace", str(ws.root), "audit", "--unmasked",
                                      "--action", "sql", "--format", "json"])
    assert listed.exit_code == 0, listed.output
    assert {(r["who"], r["masked"]) for r in json.loads(listed.stdout)} == {("admin", False)}


def test_masked_values_are_consistent_so_figures_equal_the_admins(
        served: tuple[Workspace, Any]) -> None:
    ws, server = served
    admin = _token(ws)
    count = {"query": "SELECT count(DISTINCT user_id) AS users, "
                      "count(DISTINCT anonymous_id) AS devices FROM events"}
    assert (_post(server, ANA, "/v1/admin/sql", count).json()
            == _post(server, admin, "/v1/admin/sql", count).json())
    # one user's rows carry one mask, in every table and view
    same = {"query": "SELECT count(DISTINCT user_id) AS n FROM (SELECT user_id FROM events "
                     "WHERE message_id LIKE '%raw' UNION ALL SELECT user_id FROM quarantine "
                     "UNION ALL SELECT user_id FROM evt_purchase WHERE amount = 30)"}
    assert _post(server, ANA, "/v1/admin/sql", same).json()["rows"] == [{"n": 1}]

    funnel = {"steps": ["signup", "purchase"], "window": "7d", "since": "2026-11-01",
              "until": "2026-12-01", "users": {"step": 2}}
    mine = _post(server, ANA, "/v1/funnels", funnel).json()
    theirs = _post(server, admin, "/v1/funnels", funnel).json()
    assert mine["rows"] == theirs["rows"]
    assert theirs["users"] == ["u1", USER]
    assert len(mine["users"]) == 2
    assert all(user.startswith("m:") for user in mine["users"])


@pytest.mark.parametrize(("query", "problem"), [
    ("SELECT * FROM main.events", "without a schema"),
    ('SELECT * FROM "memory".main.events', "without a schema"),
    ("SELECT * FROM information_schema.views", "without a schema"),
    ("SELECT sql FROM duckdb_views()", "table functions"),
    ("SELECT * FROM sqlite_master", "not 'sqlite_master'"),
    ("SELECT * FROM duckdb_settings()", "table functions"),
    ("SELECT * FROM read_csv('/etc/passwd')", "reads files"),
    # temp_directory is the warehouse's absolute path with .tmp: no server path for readers
    ("SELECT current_setting('temp_directory') AS t", "server's settings"),
    ("SELECT CURRENT_SETTING('secret_directory') AS s FROM events", "server's settings"),
    # a bound plan holds the views' expressions, and so the masking key
    ("SELECT json_serialize_plan('SELECT user_id FROM events') AS p", "views' text"),
    ("SELECT 'SELECT 1 FROM events'.JSON_SERIALIZE_PLAN() AS p", "views' text"),
    ("SELECT pg_get_viewdef(i) FROM range(100000) AS t(i)", "views' text"),
    # a CTE's name is the CTE only where DuckDB resolves it so: elsewhere the same name
    # reads the catalog (DuckDB's duckdb_views holds the masking key in the views' text)
    ("SELECT * FROM (WITH duckdb_views AS (SELECT 1) SELECT 1) AS t, duckdb_views",
     "not 'duckdb_views'"),
    ("SELECT (WITH duckdb_views AS (SELECT 1) SELECT 1), (SELECT max(sql) FROM duckdb_views)",
     "not 'duckdb_views'"),
    ("WITH duckdb_views AS (SELECT * FROM duckdb_views) SELECT * FROM duckdb_views",
     "not 'duckdb_views'"),
    ("WITH a AS (SELECT * FROM duckdb_views), duckdb_views AS (SELECT 1) SELECT * FROM a",
     "not 'duckdb_views'"),
    ("SELECT * FROM events UNION ALL (WITH x AS (SELECT 1) SELECT * FROM events), x",
     "not 'x'"),
])
def test_a_readers_query_may_name_only_the_masked_views_and_open_tables(
        query: str, problem: str) -> None:
    with pytest.raises(QueryError, match=problem):
        check_reader_query(query, {"events", "quarantine", "evt_signup"})


@pytest.mark.parametrize("query", [
    "WITH mine AS (SELECT * FROM events) SELECT count(*) FROM mine",
    "SELECT * FROM evt_signup, range(3)",
    "SELECT x FROM unnest([1, 2]) AS t(x)",
    "DESCRIBE events",
    "SUMMARIZE quarantine",
    "PIVOT events ON event USING count(*)",
    "WITH a AS (SELECT * FROM events), b AS (SELECT * FROM a) SELECT * FROM b, a",
    "WITH a AS (SELECT 1 AS n) SELECT * FROM (WITH b AS (SELECT * FROM a) SELECT * FROM b)",
    "WITH a AS (SELECT 1 AS n) SELECT (SELECT max(n) FROM a) UNION SELECT n FROM a",
    "WITH RECURSIVE r AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM r WHERE n < 3) FROM r",
])
def test_a_readers_usual_queries_pass(query: str) -> None:
    check_reader_query(query, {"events", "quarantine", "evt_signup"})


def test_the_refusals_reach_a_reader_over_http(served: tuple[Workspace, Any]) -> None:
    ws, server = served
    for query in ("SELECT sql FROM duckdb_views()", "SELECT * FROM main.events",
                  "SELECT sql FROM (WITH duckdb_views AS (SELECT 1) SELECT 1) AS t, "
                  "duckdb_views"):
        answer = _post(server, ANA, "/v1/admin/sql", {"query": query})
        assert answer.status_code == 400, answer.text
        assert "refused" in answer.json()["message"]
        # the admin may
        assert _post(server, _token(ws), "/v1/admin/sql", {"query": query}).status_code == 200


def test_every_table_nerve_creates_is_masked_or_holds_no_personal_data(
        make_workspace: Callable[..., Workspace]) -> None:
    ws = make_workspace({"signup.yaml": SIGNUP, "identify.yaml": IDENTIFY})
    catalog = Catalog.load(ws.events_dir)
    with Warehouse.for_workspace(ws) as warehouse:
        forget(warehouse.cursor(), PrivacyPolicy(secret=b"k"), user_ids=["nobody"])
        run_and_record(warehouse, ws, catalog)
        tables = {name for (name,) in warehouse.cursor().execute(
            "SELECT table_name FROM duckdb_tables() WHERE NOT temporary").fetchall()}
        masked = MaskedWarehouse(warehouse, catalog, b"secret")
        assert tables - {"events", "quarantine"} <= set(OPEN_TABLES)
        assert tables | {"evt_signup"} <= masked.tables
        cursor = masked.cursor(["evt_signup"])
        temp = {name for (name,) in cursor.execute(
            "SELECT view_name FROM duckdb_views() WHERE temporary AND NOT internal").fetchall()}
        # check_results too: its older rows may quote personal values
        assert temp == {"events", "quarantine", "check_results", "evt_signup"}
        # the key is derived from the secret, never the secret itself
        assert all(b"secret" not in (sql or "").encode() for (sql,) in cursor.execute(
            "SELECT sql FROM duckdb_views() WHERE temporary").fetchall())


def test_a_reader_cannot_reach_the_views_text_through_a_cte_out_of_scope(
        make_workspace: Callable[..., Workspace]) -> None:
    """A CTE named ``duckdb_views`` in one subquery does not make ``duckdb_views`` in
    another a CTE: DuckDB reads its own view there, the views' text (which held the
    masking key until it moved to a table)."""
    ws = make_workspace({"signup.yaml": SIGNUP})
    catalog = Catalog.load(ws.events_dir)
    query = ("SELECT max(sql) AS text FROM (WITH duckdb_views AS (SELECT 1) SELECT 1) AS t, "
             "duckdb_views WHERE view_name = 'events'")
    with Warehouse.for_workspace(ws) as warehouse:
        masked = MaskedWarehouse(warehouse, catalog, b"secret")
        # what the query would give, run on the reader's connection without the check
        text = masked.cursor().execute(query).fetchone()[0]  # type: ignore[index]
        assert "sha256" in text
        assert mask_key(b"secret") not in text
        with pytest.raises(QueryError, match="not 'duckdb_views'"):
            masked.query(query)


def _insert_a_signup(warehouse: Warehouse, events_table: Any) -> None:
    """One signup of USER with a personal phone, straight into ``events``."""
    cursor = warehouse.cursor()
    cursor.register("rows", events_table([{
        "event": "signup", "user_id": USER, "timestamp": datetime(2026, 11, 28, tzinfo=UTC),
        "properties": {"phone": PHONE, "plan": "plus"}}]))
    cursor.execute("INSERT INTO events SELECT * FROM rows")


def test_no_text_a_reader_could_reach_holds_the_masking_key(
        make_workspace: Callable[..., Workspace], events_table: Any) -> None:
    """The key is data in a temp table the views join, not a literal in their text: a
    reader found two DuckDB functions that show the views' text (``pg_get_viewdef``, a
    bound plan), and with the key hashed guessed values to match masked rows. Those two
    are refused too; whatever a third would show holds no key."""
    ws = make_workspace({"signup.yaml": SIGNUP, "identify.yaml": IDENTIFY})
    catalog = Catalog.load(ws.events_dir)
    key = mask_key(b"secret")
    with Warehouse.for_workspace(ws) as warehouse:
        _insert_a_signup(warehouse, events_table)
        run_and_record(warehouse, ws, catalog)
        masked = MaskedWarehouse(warehouse, catalog, b"secret")
        reader = masked.cursor(["evt_signup"])
        views = dict(reader.execute("SELECT view_name, sql FROM duckdb_views() "
                                    "WHERE temporary AND NOT internal").fetchall())
        assert set(views) == {"events", "quarantine", "check_results", "evt_signup"}
        assert "sha256" in views["events"]  # the masks are in the text, their key is not
        assert [name for name, sql in views.items() if key in sql] == []
        for table in ("events", "quarantine", "check_results", "evt_signup"):
            (plan,) = reader.execute("SELECT json_serialize_plan(?)::VARCHAR",
                                     [f"SELECT * FROM {table}"]).fetchone()  # type: ignore[misc]
            assert key not in plan, table
        # and the masks are still keyed: the mask of the user id with this key
        (user_id,) = reader.execute("SELECT user_id FROM events").fetchone()  # type: ignore[misc]
        assert user_id == "m:" + hashlib.sha256((key + USER).encode()).hexdigest()[:32]


@pytest.mark.parametrize("query", [
    "SELECT json_serialize_plan('SELECT user_id FROM events')::VARCHAR AS text",
    "SELECT max(pg_get_viewdef(i)) AS text FROM range(10000000) AS t(i) "
    "WHERE pg_get_viewdef(i) LIKE '%sha256%'",
    f"SELECT * FROM {KEY_TABLE}",
])
def test_a_reader_may_not_read_the_views_text_or_the_key(
        make_workspace: Callable[..., Workspace], query: str) -> None:
    ws = make_workspace({"signup.yaml": SIGNUP})
    catalog = Catalog.load(ws.events_dir)
    with Warehouse.for_workspace(ws) as warehouse:
        masked = MaskedWarehouse(warehouse, catalog, b"secret")
        with pytest.raises(QueryError, match="refused"):
            masked.query(query)


def test_a_masked_cursor_reads_a_read_only_warehouse(
        make_workspace: Callable[..., Workspace]) -> None:
    """``nerve sql`` opens the file read-only when no server runs: temporary views still
    work there (they live in the connection, not the file)."""
    ws = make_workspace({"signup.yaml": SIGNUP})
    Warehouse.for_workspace(ws).close()
    with Warehouse.for_workspace(ws, read_only=True) as warehouse:
        masked = MaskedWarehouse(warehouse, Catalog.load(ws.events_dir), b"k" * 16)
        assert masked.query("SELECT count(*) AS n FROM evt_signup").to_pylist() == [{"n": 0}]
        # through Ibis, a typed view is made on first use
        assert masked.table("evt_signup").count().execute() == 0
        with pytest.raises(duckdb.Error):
            warehouse.cursor().execute("CREATE TABLE t (a INT)")


def test_a_typed_view_read_without_its_masked_copy_still_reads_masked_events(
        make_workspace: Callable[..., Workspace], events_table: Any) -> None:
    """A masked cursor makes the typed views it is asked for; any other ``evt_`` name is
    the workspace's own view, whose ``events`` DuckDB binds in the reading connection,
    where the masked view shadows the table. Should a DuckDB release bind it otherwise,
    this test fails before a reader could see a raw value."""
    ws = make_workspace({"signup.yaml": SIGNUP})
    catalog = Catalog.load(ws.events_dir)
    with Warehouse.for_workspace(ws) as warehouse:
        _insert_a_signup(warehouse, events_table)
        warehouse.refresh_views(catalog)
        masked = MaskedWarehouse(warehouse, catalog, b"k" * 16).cursor()
        temp = {n for (n,) in masked.execute(
            "SELECT view_name FROM duckdb_views() WHERE temporary AND NOT internal").fetchall()}
        assert temp == {"events", "quarantine"}
        (user, phone, plan), = masked.execute(
            "SELECT user_id, phone, plan FROM evt_signup").fetchall()
        assert (user[:2], phone[:2], plan) == ("m:", "m:", "plus")


def test_the_segment_specs_personal_traits_are_masked_unless_the_catalog_says_otherwise(
        make_workspace: Callable[..., Workspace], events_table: Any) -> None:
    """A workspace without an identify entry still keeps ``name`` or ``email`` traits
    (unplanned identify calls are quarantined, not dropped): readers see them masked.
    Without an identify entry no trait is declared: the call's own ``plan`` is masked
    too (undeclared values are, docs/privacy.md)."""
    ws = make_workspace({"signup.yaml": SIGNUP})
    traits = {"name": "Zelda Rawname", "firstName": "Zelda", "plan": "plus"}
    with Warehouse.for_workspace(ws) as warehouse:
        cursor = warehouse.cursor()
        cursor.register("rows", events_table([{
            "type": "identify", "event": None, "user_id": USER, "traits": traits,
            "context": {"traits": traits}, "timestamp": datetime(2026, 11, 28, tzinfo=UTC)}]))
        cursor.execute("INSERT INTO events SELECT * FROM rows")
        masked = MaskedWarehouse(warehouse, Catalog.load(ws.events_dir), b"k" * 16)
        (row,) = masked.query("SELECT traits, context FROM events").to_pylist()
    for seen in (json.loads(row["traits"]), json.loads(row["context"])["traits"]):
        assert seen["name"].startswith("m:")
        assert seen["firstName"].startswith("m:")
    assert json.loads(row["traits"])["plan"].startswith("m:")


APPOINTMENT = """\
name: appointment_booked
description: A member books a consultation.
owner: care
purpose: functional
version: 1
properties:
  clinic_id: {type: string, pii: none}
  attendees:
    type: array
    pii: none
    items:
      type: object
      properties:
        phone: {type: string, pii: personal, handling: keep}
        relation: {type: string, pii: none}
  emergency_contacts:
    type: array
    pii: none
    items: {type: string, pii: personal, handling: keep}
  ages:
    type: array
    pii: none
    items: {type: integer, pii: personal, handling: keep}
"""


def test_personal_values_inside_array_items_are_masked(
        make_workspace: Callable[..., Workspace], events_table: Any) -> None:
    """Kept personal values in an array's items (an object item's property, or the items
    themselves) reached readers as stored: only objects were looked into."""
    ws = make_workspace({"appointment_booked.yaml": APPOINTMENT})
    catalog = Catalog.load(ws.events_dir)
    props = {"clinic_id": "CL-9",
             "attendees": [{"phone": "+33611112222", "relation": "friend"}, "not an object"],
             "emergency_contacts": ["+33699998888", "+33677776666"], "ages": [1873]}
    with Warehouse.for_workspace(ws) as warehouse:
        cursor = warehouse.cursor()
        cursor.register("rows", events_table([{
            "event": "appointment_booked", "user_id": USER, "properties": props,
            "timestamp": datetime(2026, 11, 28, tzinfo=UTC)}]))
        cursor.execute("INSERT INTO events SELECT * FROM rows")
        cursor.execute("""INSERT INTO quarantine SELECT *
            EXCLUDE (loaded_at), '[{"path": "$.properties.attendees[0].phone", "rule": "pattern",
            "message": "''+33611112222'' does not match"}]', loaded_at FROM rows""")
        warehouse.refresh_views(catalog)
        masked = MaskedWarehouse(warehouse, catalog, b"k" * 16)
        answers = [json.dumps(masked.query(f"SELECT * FROM {table}").to_pylist(), default=str)
                   for table in ("events", "quarantine", "evt_appointment_booked")]
        (row,) = masked.query("SELECT properties FROM events").to_pylist()
    for answer in answers:
        for raw in ("+33611112222", "+33699998888", "+33677776666", "1873"):
            assert raw not in answer
        assert "friend" in answer
        assert "CL-9" in answer
    seen = json.loads(row["properties"])
    (attendee, other) = seen["attendees"]
    assert attendee["phone"].startswith("m:")
    assert attendee["relation"] == "friend"
    assert other == "not an object"
    assert [c[:2] for c in seen["emergency_contacts"]] == ["m:", "m:"]
    assert "ages" not in seen  # personal numbers are removed, as a typed read gives NULL


def test_a_withheld_message_says_what_the_rule_expects_unless_that_quotes_the_value(
) -> None:
    def reader_sees(value: str, message: str) -> str:
        violation = {"path": "$.properties.size", "rule": "enum", "message": message,
                     "file": None, "line": None}
        masked = _violations([r"\$\.properties\.size"])
        row = duckdb.connect().execute(
            f"SELECT {masked} FROM (SELECT "
            "CAST(? AS JSON) AS violations, CAST(? AS JSON) AS properties, "
            "NULL::JSON AS traits, NULL::JSON AS context, NULL AS user_id, "
            "NULL AS anonymous_id, NULL AS previous_id)",
            [json.dumps([violation]), json.dumps({"size": value})]).fetchone()
        assert row is not None
        return str(json.loads(row[0])[0]["message"])

    assert reader_sees("huge", "'huge' is not one of ['small', 'large']") == (
        "$.properties.size: breaks the enum rule, expected one of ['small', 'large'] "
        "(value withheld: personal data)")
    # the catalog's side would give the value away ("arg" is in "large"): left out
    assert reader_sees("arg", "'arg' is not one of ['small', 'large']") == (
        "$.properties.size: breaks the enum rule (value withheld: personal data)")
