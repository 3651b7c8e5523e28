"""Warehouse: tables, Ibis reads, read-only queries, JSON results, the file lock."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from nerve.errors import QueryError, TransientError, WorkspaceError
from nerve.warehouse import EVENT_COLUMNS, Warehouse, check_read_only, result_json
from nerve.workspace import Workspace, init_workspace


def test_open_creates_the_tables(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "wh.duckdb"
    with Warehouse.open(f"duckdb://{path}") as wh:
        tables = wh.query("SELECT table_name FROM information_schema.tables ORDER BY 1")
        assert {"events", "quarantine", "loads", "log_offsets"} <= set(
            tables.column(0).to_pylist())
        assert tuple(wh.table("events").columns) == (*EVENT_COLUMNS, "loaded_at")
        assert "violations" in wh.table("quarantine").columns
        assert "quarantined_at" in wh.table("quarantine").columns
    assert path.exists()


def test_in_memory_and_workspace_urls(tmp_path: Path) -> None:
    with Warehouse.open("duckdb://:memory:") as wh:
        assert wh.path is None
        assert wh.table("events").count().execute() == 0
    ws = init_workspace(tmp_path / "ws")
    with Warehouse.for_workspace(ws) as wh:
        assert wh.path == ws.root / ".nerve" / "warehouse.duckdb"


@pytest.mark.parametrize("url", ["postgres://x/y", "duckdb://relative/file.duckdb"])
def test_unsupported_urls_are_refused_clearly(url: str) -> None:
    with pytest.raises(WorkspaceError, match="warehouse"):
        Warehouse.open(url)



def test_a_warehouse_url_s_password_is_never_printed(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError) as opened:
        Warehouse.open("postgres://bob:s3cret@db:5432/shop")
    ws = init_workspace(tmp_path / "ws")
    toml = ws.root / "nerve.toml"
    toml.write_text(toml.read_text().replace('url = "duckdb://.nerve/warehouse.duckdb"',
                                             'url = "postgres://bob:s3cret@db:5432/shop"'))
    with pytest.raises(WorkspaceError) as configured:
        Warehouse.for_workspace(Workspace.load(ws.root))
    for raised in (opened, configured):
        assert "s3cret" not in str(raised.value)
        assert "postgres://bob:***@db:5432/shop" in str(raised.value)
    [line] = [n for n, text in enumerate(toml.read_text().splitlines(), 1)
              if text.startswith('url = "postgres://')]
    assert f"nerve.toml:{line}: [warehouse] url" in str(configured.value)

@pytest.mark.parametrize("url", ["postgres://bob:s3cret@127.0.0.1:9/shop",
                                 ".nerve/warehouse.duckdb"])
@pytest.mark.parametrize("command", [["check"], ["compact"], ["sql", "SELECT 1"]])
def test_every_command_refuses_another_engine_s_url_naming_the_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str, command: list[str]) -> None:
    from typer.testing import CliRunner

    from nerve.cli import app

    ws = init_workspace(tmp_path / "ws")
    toml = ws.root / "nerve.toml"
    toml.write_text(toml.read_text().replace('url = "duckdb://.nerve/warehouse.duckdb"',
                                             f'url = "{url}"'))
    [line] = [n for n, text in enumerate(toml.read_text().splitlines(), 1)
              if text.startswith(f'url = "{url}"')]
    (ws.root / ".nerve").mkdir(exist_ok=True)
    monkeypatch.chdir(ws.root)  # where a bare path would be taken from
    result = CliRunner().invoke(app, ["--workspace", str(ws.root), *command])
    assert result.exit_code != 0
    assert f"nerve.toml:{line}: [warehouse] url" in result.output
    assert "nerve loads events into DuckDB" in result.output
    assert "s3cret" not in result.output
    assert "Traceback" not in result.output
    # a path without duckdb:// is not opened as a new, empty DuckDB file either
    assert not (ws.root / ".nerve" / "warehouse.duckdb").exists()


@pytest.mark.parametrize("url", ["duckdb://", "duckdb://:memory:"])
def test_a_warehouse_in_memory_is_refused_naming_the_line(tmp_path: Path, url: str) -> None:
    # the loader deletes the log as it loads it: `nerve serve` on a warehouse in memory
    # acknowledged events and lost every one of them when it stopped
    from typer.testing import CliRunner

    from nerve.cli import app

    ws = init_workspace(tmp_path / "ws")
    toml = ws.root / "nerve.toml"
    toml.write_text(toml.read_text().replace('url = "duckdb://.nerve/warehouse.duckdb"',
                                             f'url = "{url}"'))
    [line] = [n for n, text in enumerate(toml.read_text().splitlines(), 1)
              if text.startswith(f'url = "{url}"')]
    served = subprocess.run(
        [sys.executable, "-m", "nerve", "--workspace", str(ws.root), "serve", "--port", "0"],
        capture_output=True, text=True, timeout=120, check=False)
    for command in (["sql", "SELECT count(*) FROM events"], ["check"]):
        result = CliRunner().invoke(app, ["--workspace", str(ws.root), *command])
        assert result.exit_code != 0, result.output
        assert f"nerve.toml:{line}: [warehouse] url" in result.output
        assert "in memory" in result.output
    assert served.returncode != 0
    assert f"nerve.toml:{line}: [warehouse] url" in served.stderr + served.stdout
    assert "Traceback" not in served.stderr


@pytest.mark.parametrize("suffix", ["?threads=1", "#main"])
def test_a_warehouse_url_with_a_query_string_is_refused_naming_the_line(
        tmp_path: Path, suffix: str) -> None:
    # the rest of a duckdb:// URL is the file's path: "?threads=1" was taken into the
    # file's name, and the setting was silently lost
    from typer.testing import CliRunner

    from nerve.cli import app

    ws = init_workspace(tmp_path / "ws")
    url = f"duckdb://{tmp_path / 'volume' / 'warehouse.duckdb'}{suffix}"
    toml = ws.root / "nerve.toml"
    toml.write_text(toml.read_text().replace('url = "duckdb://.nerve/warehouse.duckdb"',
                                             f'url = "{url}"'))
    [line] = [n for n, text in enumerate(toml.read_text().splitlines(), 1)
              if text.startswith(f'url = "{url}"')]
    for command in (["sql", "SELECT 1"], ["status"], ["check"], ["expire"]):
        result = CliRunner().invoke(app, ["--workspace", str(ws.root), *command])
        assert result.exit_code != 0, result.output
        said = " ".join(result.output.split())
        assert f"nerve.toml:{line}: [warehouse] url" in said
        assert "[warehouse] threads" in said
    assert not (tmp_path / "volume").exists()


def test_reading_a_missing_warehouse_named_outside_the_workspace_creates_nothing(
        tmp_path: Path) -> None:
    # [warehouse] url on another volume (docs/operations.md), misspelt or not mounted:
    # `nerve sql` made an empty warehouse there and answered 0 events
    from typer.testing import CliRunner

    from nerve.cli import app

    ws = init_workspace(tmp_path / "ws")
    elsewhere = tmp_path / "volume" / "nerve" / "warehouse.duckdb"
    toml = ws.root / "nerve.toml"
    toml.write_text(toml.read_text().replace('url = "duckdb://.nerve/warehouse.duckdb"',
                                             f'url = "duckdb://{elsewhere}"'))
    [line] = [n for n, text in enumerate(toml.read_text().splitlines(), 1)
              if text.startswith(f'url = "duckdb://{elsewhere}"')]
    # dry runs create nothing either, and `nerve check` names the line as the others do
    for command in (["sql", "SELECT count(*) FROM events"], ["status"],
                    ["quarantine", "replay", "--dry-run"], ["forget", "-u", "x", "--dry-run"],
                    ["expire", "--dry-run"], ["check"]):
        result = CliRunner().invoke(app, ["--workspace", str(ws.root), *command])
        assert result.exit_code != 0, result.output
        assert "no warehouse yet" in result.output
        assert f"nerve.toml:{line} ([warehouse] url)" in " ".join(result.output.split())
    assert not (tmp_path / "volume").exists()
    # a fresh workspace's own warehouse is still made empty for a first look
    toml.write_text(toml.read_text().replace(f'url = "duckdb://{elsewhere}"',
                                             'url = "duckdb://.nerve/warehouse.duckdb"'))
    result = CliRunner().invoke(app, ["--workspace", str(ws.root), "sql",
                                      "SELECT count(*) AS n FROM events", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert '"n": 0' in result.output


def test_catalog_docs_shows_why_it_skipped_the_volumes_whole(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from nerve.cli import app

    ws = init_workspace(tmp_path / "ws")
    toml = ws.root / "nerve.toml"
    toml.write_text(toml.read_text().replace('url = "duckdb://.nerve/warehouse.duckdb"',
                                             'url = "postgres://db/shop"'))
    result = CliRunner().invoke(app, ["--workspace", str(ws.root), "catalog", "docs",
                                      "--out", str(tmp_path / "site")])
    assert result.exit_code == 0, result.output
    # "[warehouse]" was taken for console markup and vanished from the note
    assert "volumes skipped" in result.output
    assert "[warehouse] url" in " ".join(result.output.split())


def test_read_only_open_of_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match="no warehouse yet"):
        Warehouse.open(f"duckdb://{tmp_path / 'none.duckdb'}", read_only=True)


def test_new_envelope_columns_are_added_to_old_tables(tmp_path: Path) -> None:
    url = f"duckdb://{tmp_path / 'wh.duckdb'}"
    with Warehouse.open(url) as wh:
        wh.cursor().execute("ALTER TABLE events DROP COLUMN schema_version")
    with Warehouse.open(url) as wh:
        assert "schema_version" in wh.table("events").columns


@pytest.mark.parametrize("sql", [
    "SELECT 1",
    "select event, count(*) from events group by 1;",
    "WITH x AS (SELECT 1 AS a) SELECT a FROM x",
    "FROM events",
    "SELECT 1 UNION ALL SELECT 2",
    "DESCRIBE events",
    "SUMMARIZE events",
    "SELECT properties->>'$.price' FROM events",
])
def test_read_queries_pass_the_check(sql: str) -> None:
    check_read_only(sql)


@pytest.mark.parametrize(("sql", "why"), [
    ("INSERT INTO events SELECT * FROM events", "got INSERT"),
    ("DROP TABLE events", "got DROP"),
    ("ATTACH '/tmp/other.duckdb' AS o", "got ATTACH"),
    ("DELETE FROM events", "got DELETE"),
    ("UPDATE events SET event = 'x'", "got UPDATE"),
    ("CREATE TABLE x AS SELECT 1", "got CREATE"),
    ("COPY events TO '/tmp/x.csv'", "got COPY"),
    ("SELECT 1; DROP TABLE events", "2 statements"),
    ("SET threads = 1", "got SET"),
    ("PRAGMA database_list", "got PRAGMA"),
    ("INSTALL httpfs", "got INSTALL"),
    ("LOAD httpfs", "got COMMAND"),
    ("CHECKPOINT", "got"),
    ("SELECT * FROM read_csv('/etc/passwd')", "read_csv"),
    ("SELECT * FROM '/etc/passwd'", "looks like a file"),
    ("SELECT * FROM 'data.parquet'", "looks like a file"),
    ("SELECT * FROM glob('/*')", "glob"),
    ("SELECT read_text('/etc/hostname')", "read_text"),
    ("WITH x AS (INSERT INTO loads DEFAULT VALUES RETURNING *) SELECT * FROM x", "INSERT"),
    ("", "empty"),
])
def test_anything_else_is_refused_with_a_clear_message(sql: str, why: str) -> None:
    with pytest.raises(QueryError, match=r"refused|empty") as info:
        check_read_only(sql)
    assert why in str(info.value)


def test_a_syntax_error_names_where_in_plain_text() -> None:
    # sqlglot underlines the token with terminal escapes, which pipes and JSON show raw
    with pytest.raises(QueryError) as info:
        check_read_only("SELECT event FROM events WHERE (x")
    message = str(info.value)
    assert "\x1b" not in message
    assert message.startswith("cannot parse the query: Expecting ) at line 1, column 33")


def test_query_refuses_and_reports_engine_errors(tmp_path: Path) -> None:
    with Warehouse.open(f"duckdb://{tmp_path / 'wh.duckdb'}") as wh:
        with pytest.raises(QueryError, match="got DROP"):
            wh.query("DROP TABLE events")
        with pytest.raises(QueryError, match="nope"):
            wh.query("SELECT * FROM nope")
        assert wh.table("events").count().execute() == 0



@pytest.mark.parametrize(("sql", "hint"), [
    ("SELECT evnt FROM events", 'Candidate bindings: "event"'),
    ("SELECT * FROM evnts", 'Did you mean "events"?'),
])
def test_an_engine_error_keeps_duckdbs_hint_on_one_line(
        tmp_path: Path, sql: str, hint: str) -> None:
    # the hint is the fix; the quoted query and its caret stay out of a one-line message
    with Warehouse.open(f"duckdb://{tmp_path / 'wh.duckdb'}") as wh, \
            pytest.raises(QueryError) as info:
        wh.query(sql)
    message = str(info.value)
    assert hint in message
    assert "\n" not in message
    assert "LINE 1" not in message


def test_result_json_is_json_safe_and_parses_json_columns(tmp_path: Path) -> None:
    with Warehouse.open(f"duckdb://{tmp_path / 'wh.duckdb'}") as wh:
        table = wh.query("""
            SELECT TIMESTAMPTZ '2026-01-02 03:04:05+00' AS at, 1.5::DECIMAL(4,2) AS d,
                   '{"a": [1, 2]}'::JSON AS j, 'text' AS s, NULL AS n, 'nan'::DOUBLE AS f,
                   DATE '2026-01-02' AS day
        """)
    body = result_json(table)
    assert body == {
        "columns": ["at", "d", "j", "s", "n", "f", "day"],
        "rows": [{"at": "2026-01-02T03:04:05+00:00", "d": 1.5, "j": {"a": [1, 2]}, "s": "text",
                  "n": None, "f": None, "day": "2026-01-02"}],
    }
    plain = pa.table({"x": [Decimal("2.5")], "t": [datetime(2026, 1, 1, tzinfo=UTC)]})
    assert result_json(plain)["rows"] == [{"x": 2.5, "t": "2026-01-01T00:00:00+00:00"}]


def test_result_json_gives_a_time_python_cannot_hold_as_text(tmp_path: Path) -> None:
    """A row stored with a year before 1 must not make every query that returns it fail."""
    with Warehouse.open(f"duckdb://{tmp_path / 'wh.duckdb'}") as wh:
        table = wh.query("SELECT TIMESTAMPTZ '0001-01-01 00:00:00+00' - INTERVAL 10 YEAR AS t,"
                         " '{\"a\": 1}'::JSON AS j")
    # 10 BC is -9 in ISO 8601 years (there is a year 0)
    assert result_json(table)["rows"] == [{"t": "-0009-01-01 00:00:00.000000Z",
                                           "j": {"a": 1}}]


def test_threads_read_through_their_own_ibis_backends(tmp_path: Path) -> None:
    with Warehouse.open(f"duckdb://{tmp_path / 'wh.duckdb'}") as wh:
        results: list[int] = []
        backends: list[object] = []

        def read() -> None:
            backends.append(wh.ibis())
            results.append(int(wh.table("events").count().execute()))
            results.append(int(wh.query("SELECT 41 + 1").column(0)[0].as_py()))

        threads = [threading.Thread(target=read) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results) == [0, 0, 0, 0, 42, 42, 42, 42]
        assert len({id(b) for b in backends}) == 4


def test_a_file_held_by_another_process_is_a_transient_error(tmp_path: Path) -> None:
    path = tmp_path / "wh.duckdb"
    Warehouse.open(f"duckdb://{path}").close()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1]); "
         "print('held', flush=True); sys.stdin.read()", str(path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == b"held\n"
        with pytest.raises(TransientError, match=f"locked by process {holder.pid}"):
            Warehouse.open(f"duckdb://{path}", read_only=True)
    finally:
        holder.communicate(b"")


def test_public_names_are_pinned() -> None:
    import nerve.loader
    import nerve.log
    import nerve.warehouse

    assert sorted(nerve.log.__all__) == [
        "DEFAULT_MAX_BACKLOG", "LogClosedError", "LogWriter", "Segment", "SegmentRead",
        "StreamLink", "StreamReader", "StreamSettings", "StreamWriter", "TALLY_TYPE", "Tail",
        "Tally", "abandoned", "acknowledge", "backlog_bytes", "list_segments", "max_backlog",
        "merge_tallies", "open_log", "read_segment", "recover_segment", "salvage_sealed",
        "set_aside", "set_aside_files", "split_tallies", "tally_row", "write_problem",
        "writer_ids"]
    assert sorted(nerve.loader.__all__) == ["DEFAULT_DEDUP_WINDOW", "LoadStats", "Loader",
                                           "Pace", "StreamLoader", "parse_window"]
    assert sorted(nerve.warehouse.__all__) == [
        "DATA_ERRORS", "EVENT_COLUMNS", "JSON_COLUMNS", "MaskedWarehouse", "QUARANTINE_COLUMNS",
        "TABLES", "Warehouse", "analysis_events", "check_read_only", "one_of", "result_json",
        "stitch_identities"]
    for module in (nerve.log, nerve.loader, nerve.warehouse):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"


def test_repeated_column_names_stay_apart() -> None:
    with Warehouse.open("duckdb://:memory:") as wh:
        body = result_json(wh.query("SELECT '[1]' AS a, 2 AS a, '{}'::JSON AS a"))
    assert body == {"columns": ["a", "a_2", "a_3"], "rows": [{"a": "[1]", "a_2": 2, "a_3": {}}]}


def test_threads_come_from_nerve_toml(make_workspace: Any) -> None:
    ws = make_workspace(extra_toml="")
    text = (ws.root / "nerve.toml").read_text().replace(
        "[warehouse]\n", "[warehouse]\nthreads = 1\n")
    (ws.root / "nerve.toml").write_text(text)
    from nerve.workspace import Workspace

    with Warehouse.for_workspace(Workspace.load(ws.root)) as wh:
        assert wh.query("SELECT current_setting('threads') AS t").to_pylist() == [{"t": 1}]
    (ws.root / "nerve.toml").write_text(text.replace("threads = 1", "threads = 0"))
    with pytest.raises(WorkspaceError, match=r"\[warehouse\] threads"):
        Warehouse.for_workspace(Workspace.load(ws.root))
