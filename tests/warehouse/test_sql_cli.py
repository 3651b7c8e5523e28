"""`nerve sql`: read-only queries, output formats, the lock, and going through the server."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from nerve.cli import ExitCode, app
from nerve.loader import Loader
from nerve.log import LogWriter
from nerve.warehouse import Warehouse
from nerve.workspace import Workspace

runner = CliRunner()


def sql(ws: Workspace, query: str, *args: str) -> Any:
    return runner.invoke(app, ["--workspace", str(ws.root), "sql", query, *args])


def load_some(ws: Workspace, make_batch: Callable[..., Any], n: int = 3) -> None:
    with LogWriter(ws.log_dir) as writer:
        writer.append(make_batch(n))
        writer.sync()
    with Warehouse.for_workspace(ws) as wh:
        Loader(ws.log_dir, wh).load_once()


@pytest.fixture
def make_batch() -> Callable[..., Any]:
    from nerve.envelope import to_record_batch

    def make(n: int) -> Any:
        return to_record_batch([{
            "message_id": f"m{i}", "type": "track", "event": "signup", "name": None,
            "user_id": f"u{i}", "anonymous_id": None, "group_id": None, "previous_id": None,
            "timestamp": 1_790_000_000_000_001 + i, "original_timestamp": None,
            "sent_at": None, "received_at": 1_790_000_000_000_000 + i,
            "properties": f'{{"plan": "pro", "seats": {i}}}', "traits": None,
            "context": None, "source": "web", "historical": False, "schema_version": "1.0.0",
            "violations": None} for i in range(n)])

    return make


def test_a_fresh_workspace_has_empty_tables(make_workspace: Callable[..., Workspace]) -> None:
    ws = make_workspace()
    result = sql(ws, "SELECT count(*) AS n FROM events", "--format", "json")
    assert result.exit_code == ExitCode.OK, result.output
    assert json.loads(result.stdout) == [{"n": 0}]


def test_formats(make_workspace: Callable[..., Workspace], make_batch: Callable[..., Any]) -> None:
    ws = make_workspace()
    load_some(ws, make_batch)
    query = ("SELECT user_id, properties, timestamp FROM events "
             "WHERE properties->>'$.plan' = 'pro' ORDER BY user_id")
    rows = json.loads(sql(ws, query, "--format", "json").stdout)
    assert rows == [
        {"user_id": f"u{i}", "properties": {"plan": "pro", "seats": i},
         "timestamp": f"2026-09-21T14:13:20.00000{i + 1}+00:00"} for i in range(3)
    ]
    result = sql(ws, query, "-f", "csv")
    assert [r["user_id"] for r in csv.DictReader(io.StringIO(result.stdout))] == ["u0", "u1", "u2"]
    result = sql(ws, query)
    assert result.exit_code == ExitCode.OK
    assert "u2" in result.stdout
    # no rows still names the columns
    result = sql(ws, "SELECT user_id FROM events WHERE false", "-f", "csv")
    assert result.stdout.strip() == "user_id"


def test_csv_keeps_every_digit_and_the_table_keeps_cents(
        make_workspace: Callable[..., Workspace]) -> None:
    """CSV is for scripts: 1234567.89 must not come out as 1.23457e+06."""
    ws = make_workspace()
    query = ("SELECT 1234567.89::DOUBLE AS money, 1234567.89::DECIMAL(12, 2) AS exact, "
             "0.1::DOUBLE + 0.2::DOUBLE AS sum, 0.000123456789::DOUBLE AS small")
    [row] = list(csv.DictReader(io.StringIO(sql(ws, query, "-f", "csv").stdout)))
    assert {k: float(v) for k, v in row.items()} == {
        "money": 1234567.89, "exact": 1234567.89, "sum": 0.1 + 0.2, "small": 0.000123456789}
    table = sql(ws, query).stdout
    assert "1234567.89" in table
    assert "e+06" not in table


_INTERVALS = {  # DuckDB literal: its ISO 8601 duration (each part signed, as PostgreSQL)
    "INTERVAL 3 DAY": "P3D",
    "INTERVAL '14 months 2 hours 3.5 seconds'": "P1Y2MT2H3.5S",
    "-INTERVAL 90 MINUTE": "PT-1H-30M",
    "INTERVAL 1 DAY - INTERVAL 1 HOUR": "P1DT-1H",
    "INTERVAL 0 SECOND": "PT0S",
}


def test_intervals_read_as_durations(make_workspace: Callable[..., Workspace]) -> None:
    """An INTERVAL came out as a raw triple ([0, 3, 0]): ISO 8601 in json and csv, and
    the table as DuckDB itself writes it."""
    ws = make_workspace()
    names = [f"i{n}" for n in range(len(_INTERVALS))]
    query = "SELECT " + ", ".join(
        f"{literal} AS {name}, CAST({literal} AS VARCHAR) AS {name}_text"
        for name, literal in zip(names, _INTERVALS, strict=True))
    [row] = json.loads(sql(ws, query, "--format", "json").stdout)
    assert [row[name] for name in names] == list(_INTERVALS.values())
    [row] = list(csv.DictReader(io.StringIO(sql(ws, query, "-f", "csv").stdout)))
    assert [row[name] for name in names] == list(_INTERVALS.values())
    for name in names:
        result = sql(ws, f"SELECT {name}, {name}_text FROM ({query})", "-f", "table")
        [cells] = [line.strip("│ ").split(" │ ") for line in result.stdout.splitlines()
                   if line.startswith("│")]
        assert cells[0].strip() == cells[1].strip()
    # a string that looks like a duration stays as it is
    assert "P3D" in sql(ws, "SELECT 'P3D' AS s").stdout


@pytest.mark.parametrize(("query", "expected"), [
    ("INSERT INTO events SELECT * FROM events", "got INSERT"),
    ("DROP TABLE events", "got DROP"),
    ("ATTACH '/tmp/x.duckdb' AS x", "got ATTACH"),
    ("SELECT * FROM read_csv('/etc/passwd')", "read_csv"),
])
def test_writes_are_refused_with_a_clear_message(make_workspace: Callable[..., Workspace],
                                                 query: str, expected: str) -> None:
    ws = make_workspace()
    result = sql(ws, query)
    assert result.exit_code == ExitCode.INVALID
    assert "refused" in result.stderr
    assert expected in result.stderr
    assert sql(ws, "SELECT count(*) AS n FROM events", "-f", "json").exit_code == ExitCode.OK


def test_an_unknown_table_is_a_user_error(make_workspace: Callable[..., Workspace]) -> None:
    result = sql(make_workspace(), "SELECT * FROM nope")
    assert result.exit_code == ExitCode.INVALID
    assert "nope" in result.stderr


def test_a_locked_file_without_a_server_is_unavailable(
    make_workspace: Callable[..., Workspace]
) -> None:
    ws = make_workspace()
    Warehouse.for_workspace(ws).close()
    path = ws.data_dir / "warehouse.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1]); "
         "print('held', flush=True); sys.stdin.read()", str(path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == b"held\n"
        result = sql(ws, "SELECT 1")
        assert result.exit_code == ExitCode.UNAVAILABLE
        assert f"locked by process {holder.pid}" in result.stderr
    finally:
        holder.communicate(b"")


#: a stand-in for a ``nerve serve`` that starts: it holds the warehouse (its command line
#: says ``nerve serve``), answers the SQL API with 7, and names itself in server.json
#: only when told to (a real one does so a moment after it opened the warehouse)
STARTING_SERVER = """
import duckdb, http.server, json, os, sys, threading
connection = duckdb.connect(sys.argv[1])
class Answer(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        body = os.environ.get("ANSWER", json.dumps(
            {"columns": ["x"], "rows": [{"x": 7}], "results": []})).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        self.headers["Content-Length"] = "0"
        self.do_POST()
http_server = http.server.HTTPServer(("127.0.0.1", 0), Answer)
threading.Thread(target=http_server.serve_forever, daemon=True).start()
print("held", flush=True)
sys.stdin.readline()
url = "http://127.0.0.1:%d" % http_server.server_address[1]
with open(sys.argv[2], "w") as f:
    json.dump({"url": url, "pid": os.getpid(), "admin_token": "t"}, f)
sys.stdin.read()
"""


def _while_a_server_starts(ws: Workspace, *args: str, answer: str | None = None) -> Any:
    """``nerve <args>`` run while a nerve serve holds the warehouse and has not yet named
    itself; it names itself once the command has met the lock, and answers every POST
    with ``answer`` (JSON text; by default one row, x = 7)."""
    from nerve.audit import read_records

    Warehouse.for_workspace(ws).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", STARTING_SERVER, str(ws.data_dir / "warehouse.duckdb"),
         str(ws.data_dir / "server.json"), "nerve", "serve"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        env={**os.environ, **({"ANSWER": answer} if answer else {})})
    try:
        assert holder.stdout is not None
        assert holder.stdin is not None
        assert holder.stdout.readline() == b"held\n"
        results: list[Any] = []
        asking = threading.Thread(target=lambda: results.append(
            runner.invoke(app, ["--workspace", str(ws.root), *args])))
        asking.start()
        # the command met the lock (its own read, recorded as failed) before the server
        # named itself
        while asking.is_alive() and not read_records(ws):
            time.sleep(0.05)
        holder.stdin.write(b"go\n")
        holder.stdin.flush()
        asking.join()
        return results[0]
    finally:
        holder.communicate(b"")


def test_sql_waits_for_a_starting_server_that_holds_the_warehouse(
        make_workspace: Callable[..., Workspace]) -> None:
    """`nerve sql` right after `nerve serve` started failed with "the warehouse is locked
    by process N": the server opens the warehouse before it writes server.json. When the
    lock's holder is a nerve serve, the command waits for it to name itself."""
    result = _while_a_server_starts(make_workspace(), "sql", "SELECT 1 AS x", "-f", "json")
    assert result.exit_code == ExitCode.OK, result.output
    assert json.loads(result.stdout) == [{"x": 7}]  # the server's answer


def test_check_waits_for_a_starting_server_that_holds_the_warehouse(
        make_workspace: Callable[..., Workspace]) -> None:
    result = _while_a_server_starts(make_workspace(), "check")
    assert "running the checks in the server at" in result.stderr, result.output
    assert "locked" not in result.output



def test_a_replay_dry_run_waits_for_a_starting_server_that_holds_the_warehouse(
        make_workspace: Callable[..., Workspace]) -> None:
    quarantined = {"message_id": "m1", "type": "track", "event": "signup", "properties": "{}",
                   "traits": None, "context": "{}", "violations": json.dumps(
                       [{"path": "$.event", "rule": "unknown_event", "message": "unknown"}])}
    result = _while_a_server_starts(make_workspace(), "quarantine", "replay", "--dry-run",
                                    "-f", "json", answer=json.dumps({"rows": [quarantined]}))
    assert "locked" not in result.output
    # the server's one quarantined row, judged: still failing (an unknown event)
    report, = json.loads(result.stdout)
    assert (report["judged"], report["still_failing"]) == (1, 1)
    assert result.exit_code == ExitCode.WARN


def test_metrics_readiness_waits_for_a_starting_server_that_holds_the_warehouse(
        make_workspace: Callable[..., Workspace]) -> None:
    # the server's health of a metric's event: the command shows it, not "no data"
    served = {"metric": "signups", "status": "ready", "requirements": [
        {"event": "signup", "field": None, "in_catalog": True, "problem": None}],
        "health": {"signup": {"status": "warn", "detail": "from the server"}}}
    result = _while_a_server_starts(make_workspace(), "metrics", "readiness", "-f", "json",
                                    answer=json.dumps([served]))
    assert "locked" not in result.output
    (found,) = json.loads(result.stdout)
    assert found["health"]["signup"] == {"status": "warn", "detail": "from the server"}


def test_a_stale_server_file_is_ignored(make_workspace: Callable[..., Workspace]) -> None:
    ws = make_workspace()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (ws.data_dir / "server.json").write_text(json.dumps(
        {"url": "http://127.0.0.1:9", "pid": dead.pid, "admin_token": "x"}))
    result = sql(ws, "SELECT 42 AS answer", "-f", "json")
    assert result.exit_code == ExitCode.OK, result.output
    assert json.loads(result.stdout) == [{"answer": 42}]


def test_through_a_running_server(make_workspace: Callable[..., Workspace],
                                  serve: Callable[..., Any]) -> None:
    ws = make_workspace()
    server = serve(ws)
    info = json.loads((ws.data_dir / "server.json").read_text())
    assert info["pid"] == server.process.pid
    key = ws.config.sources[0].write_key
    response = httpx.post(f"{server.url}/v1/batch", auth=(key, ""), json={"batch": [
        {"type": "track", "event": "signup", "userId": "u1", "messageId": "m-1"}]})
    assert response.status_code == 200
    # the server holds the file: a direct open would fail, so this went through it
    with pytest.raises(Exception, match="lock"):
        Warehouse.for_workspace(ws, read_only=True)
    rows: list[dict[str, Any]] = []
    for _ in range(100):  # the server's loader runs every 0.25 s
        # an event not in the (empty) catalog: quarantined, not dropped
        result = sql(ws, "SELECT message_id, event FROM quarantine", "-f", "json")
        assert result.exit_code == ExitCode.OK, result.output
        rows = json.loads(result.stdout)
        if rows:
            break
        time.sleep(0.1)
    assert rows == [{"message_id": "m-1", "event": "signup"}]
    result = sql(ws, "DROP TABLE events")
    assert result.exit_code == ExitCode.INVALID
    assert "got DROP" in result.stderr


def test_a_wrong_admin_token_is_reported(make_workspace: Callable[..., Workspace],
                                         serve: Callable[..., Any]) -> None:
    ws = make_workspace()
    serve(ws)
    path = ws.data_dir / "server.json"
    info = json.loads(path.read_text())
    path.write_text(json.dumps({**info, "admin_token": "wrong"}))
    os.chmod(path, 0o600)
    result = sql(ws, "SELECT 1")
    assert result.exit_code == ExitCode.INVALID
    assert "admin token" in result.stderr


SIGNUP = """\
name: signup
description: A visitor creates an account.
owner: growth
purpose: analytics
retention: 400d
properties:
  plan: {type: string, enum: [free, pro], pii: none}
  seats: {type: integer, pii: none}
"""


def test_typed_views_read_properties_as_columns(make_workspace: Callable[..., Workspace],
                                                make_batch: Callable[..., Any]) -> None:
    from nerve.catalog import Catalog

    ws = make_workspace({"signup.yaml": SIGNUP})
    load_some(ws, make_batch)
    with Warehouse.for_workspace(ws) as wh:
        assert wh.refresh_views(Catalog.load(ws.events_dir)) == ["evt_signup"]
    rows = json.loads(sql(ws, "SELECT user_id, plan, seats FROM evt_signup ORDER BY seats",
                          "-f", "json").stdout)
    assert rows == [{"user_id": f"u{i}", "plan": "pro", "seats": i} for i in range(3)]


def test_the_query_can_come_from_a_file_or_stdin(
    make_workspace: Callable[..., Workspace], tmp_path: Path
) -> None:
    ws = make_workspace()
    query = tmp_path / "q.sql"
    query.write_text("-- how many?\nSELECT count(*) AS n FROM events;\n")
    result = runner.invoke(app, ["-w", str(ws.root), "sql", "--file", str(query), "-f", "json"])
    assert json.loads(result.stdout) == [{"n": 0}]
    result = runner.invoke(app, ["-w", str(ws.root), "sql", "--file", "-", "-f", "json"],
                           input="SELECT 7 AS n")
    assert json.loads(result.stdout) == [{"n": 7}]
    result = runner.invoke(app, ["-w", str(ws.root), "sql"])
    assert result.exit_code == ExitCode.INVALID
    assert "give a query" in result.stderr


def test_the_table_shows_null_apart_from_an_empty_string(
        make_workspace: Callable[..., Workspace]) -> None:
    ws = make_workspace()
    result = runner.invoke(app, ["--workspace", str(ws.root), "sql",
                                 "SELECT NULL AS event, '' AS empty, 3 AS n"],
                           env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    row = next(line for line in result.stdout.splitlines() if "3" in line)
    assert [cell.strip() for cell in row.strip("│ \n").split("│")] == ["NULL", "", "3"]
    as_json = sql(ws, "SELECT NULL AS event", "--format", "json")
    assert json.loads(as_json.stdout) == [{"event": None}]
