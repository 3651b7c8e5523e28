"""The audit log of reads: through a real ``nerve serve`` (two workers forwarding to the
main process) and by commands reading the warehouse file themselves."""

from __future__ import annotations

import getpass
import shutil
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest
from tests.governance.test_erasure import ORDER, row, write
from tests.governance.test_erasure_cli import nerve
from tests.server.serverkit import basic, write_key

from nerve.audit import MAX_REQUEST_BYTES, audit_dir, read_records, record
from nerve.catalog import Catalog
from nerve.erasure import expire_rows
from nerve.loader import Loader
from nerve.warehouse import Warehouse
from nerve.workspace import Workspace


def audit_bytes(ws: Workspace) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(audit_dir(ws).glob("*.jsonl")))


def test_every_read_api_call_is_recorded_with_who_from_where_and_what(
        make_workspace: Callable[..., Workspace], serve: Callable[..., Any]) -> None:
    ws = make_workspace({"order_completed.yaml": ORDER})
    server = serve(ws, "--workers", "2")
    token = orjson.loads((ws.data_dir / "server.json").read_bytes())["admin_token"]
    admin = {"Authorization": f"Bearer {token}"}
    sql = server.url + "/v1/admin/sql"
    ingest = httpx.post(server.url + "/v1/track", headers=basic(write_key(ws)), json={
        "type": "track", "event": "order_completed", "userId": "ann", "properties": {}})
    assert ingest.status_code == 200
    assert httpx.get(server.url + "/health").status_code == 200
    # a forged client address is replaced by the worker that forwards the request
    answer = httpx.post(sql, json={"query": "SELECT 42 AS n"},
                        headers={**admin, "X-Nerve-Client": "6.6.6.6"})
    assert answer.status_code == 200
    assert httpx.post(sql, json={"query": "SELECT 1"}).status_code == 401
    assert httpx.post(sql, json={"query": "SELECT 1"},
                      headers={"Authorization": "Bearer guess"}).status_code == 401
    # what a query reads is in its record whatever comes before it: a long comment
    # used to push it past the record's cut at 8 KB (a 1 MiB one, past the parser's
    # limit, left only the size)
    hidden = "/*" + "y" * 9000 + "*/ SELECT 'the-hidden-part' AS n"
    assert httpx.post(sql, json={"query": hidden}, headers=admin).status_code == 200
    huge = "/*" + "y" * MAX_REQUEST_BYTES + "*/ SELECT 'the-huge-part' AS n"
    refused = httpx.post(sql, json={"query": huge}, headers=admin)
    assert refused.status_code == 413, refused.text
    assert "the-huge-part" not in refused.text
    done = nerve(ws, "forget", "--user-id", "ann-the-forgotten")
    assert done.exit_code == 0, done.stderr
    # refused forgets: their ids were recorded as sent (one id instead of a list, a
    # misspelt field)
    for body in ({"user_ids": "ann-single", "dry_run": True}, {"users": ["ann-misspelt"]}):
        assert httpx.post(server.url + "/v1/admin/forget", json=body,
                          headers=admin).status_code == 400
    # an SDK fetching experiment definitions with its write key
    assert httpx.get(server.url + "/v1/experiments",
                     headers=basic(write_key(ws))).status_code == 200

    records = read_records(ws)
    # ingest and /health are not reads of the warehouse
    assert [r["action"] for r in records] == (["/v1/admin/sql"] * 5
                                              + ["/v1/admin/forget"] * 3 + ["/v1/experiments"])
    first, anonymous, guessed, long, too_long, forget, single, misspelt, sdk = records
    assert sdk["who"] == "source server"
    assert first["via"] == "http"
    assert first["who"] == "admin"
    assert first["client"] == "127.0.0.1"
    assert first["request"] == {"query": "SELECT 42 AS n"}
    assert first["status"] == 200
    assert first["ms"] >= 0
    assert (anonymous["who"], anonymous["status"]) == ("anonymous", 401)
    assert (guessed["who"], guessed["status"]) == ("invalid token", 401)
    assert long["request"] == {"query": hidden}
    assert too_long["status"] == 413
    assert too_long["request"]["bytes"] > MAX_REQUEST_BYTES
    # the forget is recorded, but not whom it forgot
    assert forget["request"] == {"user_ids": 1, "anonymous_ids": 0, "dry_run": False}
    assert single["request"] == {"user_ids": "withheld", "dry_run": True}
    assert misspelt["request"] == {"other_fields": 1}
    for name in (b"ann-the-forgotten", b"ann-single", b"ann-misspelt"):
        assert name not in audit_bytes(ws)
    assert b"6.6.6.6" not in audit_bytes(ws)
    # a refused attempt read nothing: it is no read of personal values as stored
    shown = nerve(ws, "audit", "--unmasked", "--action", "sql", "--format", "json")
    assert shown.exit_code == 0, shown.stderr
    assert [(r["who"], r["status"]) for r in orjson.loads(shown.stdout)] == [
        ("admin", 200), ("admin", 200)]


def test_a_read_the_audit_log_cannot_record_is_not_answered(
        make_workspace: Callable[..., Workspace], serve: Callable[..., Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A reader's read used to be answered, its rows and all, when its record could not be
    written (a full disk): the log said so, the audit log had no trace of it."""
    token = "ana-" + "a" * 28
    monkeypatch.setenv("NERVE_TEST_TOKEN_ANA", token)
    ws = make_workspace({"order_completed.yaml": ORDER}, extra_toml=(
        '[[readers]]\nname = "ana"\ntoken_env = "NERVE_TEST_TOKEN_ANA"\n'))
    server = serve(ws)
    sql, reader = server.url + "/v1/admin/sql", {"Authorization": f"Bearer {token}"}
    query = {"query": "SELECT 'the-answer' AS n"}
    assert httpx.post(sql, json=query, headers=reader).status_code == 200
    folder = audit_dir(ws)
    shutil.rmtree(folder)
    folder.write_bytes(b"")  # a file where the folder was: no record can be written
    refused = httpx.post(sql, json=query, headers=reader)
    assert refused.status_code == 503, refused.text
    assert refused.json()["code"] == "audit_unavailable"
    assert "the-answer" not in refused.text
    folder.unlink()
    again = httpx.post(sql, json=query, headers=reader)
    assert again.status_code == 200, again.text
    assert again.json()["rows"] == [{"n": "the-answer"}]
    assert [(r["who"], r["status"]) for r in read_records(ws)] == [("ana", 200)]


def test_commands_reading_the_file_themselves_are_recorded(
        make_workspace: Callable[..., Workspace]) -> None:
    ws = make_workspace({"order_completed.yaml": ORDER})
    write(ws, [row("ann")])
    assert nerve(ws, "forget", "-u", "nobody").exit_code == 0  # creates the warehouse
    assert nerve(ws, "sql", "SELECT count(*) AS n FROM events").exit_code == 0
    assert nerve(ws, "sql", "SELECT nope FROM events").exit_code == 4
    assert nerve(ws, "status").exit_code == 0

    records = read_records(ws)
    assert [(r["via"], r["action"], r["status"]) for r in records] == [
        ("local", "/v1/admin/forget", "ok"),
        ("local", "/v1/admin/sql", "ok"),
        ("local", "/v1/admin/sql", "QueryError"),
        ("local", "/v1/status", "ok")]
    assert {r["who"] for r in records} == {getpass.getuser()}
    assert records[1]["request"] == {"query": "SELECT count(*) AS n FROM events"}

    shown = nerve(ws, "audit", "--action", "sql", "--format", "json")
    assert shown.exit_code == 0, shown.stderr
    assert [r["status"] for r in orjson.loads(shown.stdout)] == ["ok", "QueryError"]
    assert orjson.loads(nerve(ws, "audit", "--who", "someone-else", "-f", "json").stdout) == []


def test_a_torn_line_is_skipped_and_the_rest_read(
        make_workspace: Callable[..., Workspace]) -> None:
    ws = make_workspace({})
    record(ws, via="local", who="a", action="/v1/x", request=None, status="ok", seconds=0.1)
    path = next(audit_dir(ws).glob("*.jsonl"))
    with path.open("ab") as f:
        f.write(b'{"at": "2026-')  # a crash mid-write
    record(ws, via="local", who="b", action="/v1/y", request=b'{"q": 1}', status="ok",
           seconds=0.1)
    assert [(r["who"], r["request"]) for r in read_records(ws)] == [("a", None),
                                                                    ("b", {"q": 1})]


def test_a_reader_name_nobody_read_as_is_named_with_those_who_did(
        make_workspace: Callable[..., Workspace]) -> None:
    """``--who anna`` for the reader ``ana`` printed an empty table: an auditor read it as
    "she read nothing"."""
    ws = make_workspace({})
    for who in ("ana", "ops-bot"):
        record(ws, via="http", who=who, action="/v1/admin/sql", request=b'{"query": "x"}',
               status=200, seconds=0.1)
    shown = nerve(ws, "audit", "--who", "anna", "--format", "json")
    assert shown.exit_code == 0, shown.stderr
    assert orjson.loads(shown.stdout) == []  # stdout stays JSON
    note = " ".join(shown.stderr.split())
    assert "note: nobody named 'anna' read the warehouse since" in note
    assert "(did you mean ana?); those who did: ana, ops-bot" in note
    found = nerve(ws, "audit", "--who", "ana", "--action", "forget")
    assert "nobody named" not in found.stderr  # ana did read: only not that


def test_the_audit_log_follows_its_own_retention(
        make_workspace: Callable[..., Workspace]) -> None:
    ws = make_workspace({}, extra_toml='[privacy]\naudit_retention = "30d"\n')
    record(ws, via="local", who="a", action="/v1/x", request=None, status="ok", seconds=0.1)
    folder = audit_dir(ws)
    old = folder / "reads-2025-01-01.jsonl"
    old.write_bytes(next(folder.glob("*.jsonl")).read_bytes())
    with Warehouse.for_workspace(ws) as wh:
        loader = Loader.for_workspace(ws, wh)
        catalog = Catalog.load(ws.events_dir)
        assert expire_rows(ws, catalog, loader, dry_run=True).audit_files == 1
        assert old.exists()
        assert expire_rows(ws, catalog, loader).audit_files == 1
    assert not old.exists()
    assert len(read_records(ws)) == 1  # today's file stays

    kept = make_workspace({})  # no audit_retention: the log is kept
    record(kept, via="local", who="a", action="/v1/x", request=None, status="ok",
           seconds=0.1)
    (audit_dir(kept) / "reads-2020-01-01.jsonl").write_bytes(b"")
    with Warehouse.for_workspace(kept) as wh:
        erasure = expire_rows(kept, Catalog.load(kept.events_dir),
                              Loader.for_workspace(kept, wh))
    assert erasure.audit_files == 0
    assert (audit_dir(kept) / "reads-2020-01-01.jsonl").exists()


def test_an_mcp_tool_call_refused_before_a_tool_ran_is_no_unmasked_read(
        make_workspace: Callable[..., Workspace]) -> None:
    """``nerve mcp`` records a tool call the SDK refused (unknown tool, arguments that do
    not fit): it read nothing, so ``--unmasked`` leaves it out, and plain ``nerve audit``
    lists it."""
    ws = make_workspace({})
    for status in ("ok", "unknown_tool", "invalid_arguments"):
        record(ws, via="local", who="kim", action="/v1/ask/tool",
               request={"tool": "list_events", "args": {}}, status=status, seconds=0.0)
    for flags, expected in ((("--unmasked",), ["ok"]),
                            ((), ["ok", "unknown_tool", "invalid_arguments"])):
        shown = nerve(ws, "audit", *flags, "--format", "json")
        assert shown.exit_code == 0, shown.stderr
        assert [r["status"] for r in orjson.loads(shown.stdout)] == expected
