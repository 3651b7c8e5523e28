"""The CLI conventions every command keeps: workspace option, formats, exit codes."""

import csv
import io
import json
from pathlib import Path

import typer.main
from rich.console import Console
from typer.testing import CliRunner

from nerve.cli import ExitCode, app
from nerve.cli._common import Format, emit

runner = CliRunner()

EVENT = """\
name: signup
description: A visitor creates an account.
owner: growth
purpose: analytics
retention: 400d
properties:
  plan: {type: string, enum: [free, pro], pii: none}
"""


def test_init_then_list_as_json_and_csv(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    result = runner.invoke(app, ["init", str(ws)])
    assert result.exit_code == ExitCode.OK, result.output
    (ws / "events" / "signup.yaml").write_text(EVENT)
    result = runner.invoke(app, ["--workspace", str(ws), "catalog", "list", "--format", "json"])
    assert result.exit_code == ExitCode.OK
    rows = json.loads(result.stdout)
    assert rows == [{"event": "signup", "type": "track", "version": "1.0.0", "status": "active",
                     "owner": "growth", "retention": "400d", "properties": 1}]
    result = runner.invoke(app, ["-w", str(ws), "catalog", "list", "-f", "csv"])
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert rows[0]["event"] == "signup"


def test_invalid_catalog_exit_code_and_location(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    runner.invoke(app, ["init", str(ws)])
    (ws / "events" / "signup.yaml").write_text(EVENT.replace("type: string", "type: text"))
    result = runner.invoke(app, ["-w", str(ws), "catalog", "list"])
    assert result.exit_code == ExitCode.INVALID
    assert "signup.yaml:7: signup.plan.type: expected one of" in result.stderr


def test_missing_workspace_is_invalid_not_a_traceback(tmp_path: Path) -> None:
    result = runner.invoke(app, ["-w", str(tmp_path), "catalog", "list"])
    assert result.exit_code == ExitCode.INVALID
    assert "nerve init" in result.stderr
    assert "Traceback" not in result.output


def test_usage_error_exit_code() -> None:
    result = runner.invoke(app, ["catalog", "list", "--format", "xml"])
    assert result.exit_code == ExitCode.USAGE


def test_brackets_in_errors_and_results_are_printed_as_they_are(tmp_path: Path) -> None:
    # Rich reads "[collector]" as a style tag: an error naming nerve.toml's section lost
    # its section, and a value like "[red]" in a result lost itself
    ws = tmp_path / "ws"
    runner.invoke(app, ["init", str(ws)])
    toml = ws / "nerve.toml"
    good = toml.read_text()
    toml.write_text(good.replace("max_batch_events = 2500", 'max_batch_events = "many"'))
    result = runner.invoke(app, ["-w", str(ws), "catalog", "list"])
    assert result.exit_code == ExitCode.INVALID
    assert "[collector]" in result.stderr, result.stderr
    toml.write_text(good)
    result = runner.invoke(app, ["-w", str(ws), "sql",
                                 "SELECT '[red]alert[/red] [collector] [[sources]]' AS v"])
    assert result.exit_code == ExitCode.OK, result.output
    assert "[red]alert[/red] [collector] [[sources]]" in result.stdout, result.stdout


def test_narrow_tables_wrap_values_instead_of_cutting_them(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    runner.invoke(app, ["init", str(ws)])
    sql = ("SELECT 'events/a_rather_long_event_file_name.yaml:12' AS where_it_is, "
           "0.741627 AS conversion, 'product_viewed_on_the_home_page' AS step, "
           "'checkout_started_from_the_cart' AS next_step")
    result = runner.invoke(app, ["-w", str(ws), "sql", sql], env={"COLUMNS": "60"})
    assert result.exit_code == ExitCode.OK, result.output
    assert "…" not in result.stdout, result.stdout  # Rich's mark of a cut value


def test_help_names_every_table_nerve_sql_can_read_and_reads_as_english() -> None:
    def text(*args: str) -> str:  # the words, without the panel's borders and wrapping
        return " ".join(runner.invoke(app, list(args)).stdout.replace("│", " ").split())

    sql = text("sql", "--help")
    for table in ("events", "quarantine", "loads", "log_offsets", "erasures",
                  "check_results", "evt_<event>"):
        assert table in sql
    assert "sequential (other events may come between steps)" in text("funnel", "--help")


def test_a_title_wider_than_its_table_is_printed_whole_above_it() -> None:
    """`nerve metrics query orders --since yesterday` printed its 70-character title
    folded into a 17-character column, five lines high."""
    out = Console(file=io.StringIO(), width=80)
    title = "orders from 2026-11-28T00:00 to 2026-11-29T23:00 (UTC, end excluded)"
    emit([{"orders": 232}], Format.table, title=title, out=out)
    printed = out.file.getvalue()
    assert title in printed.splitlines(), printed
    assert "232" in printed


def test_flags_in_every_help_show_no_value_placeholder() -> None:
    """A flag takes no value, so its help row names none (typer 0.29 printed `<bool>`)."""
    def commands(group: object, path: list[str]) -> list[list[str]]:
        found = [path]
        for name, sub in getattr(group, "commands", {}).items():
            found += commands(sub, [*path, name])
        return found

    for path in commands(typer.main.get_command(app), []):
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == ExitCode.OK, (path, result.output)
        assert "<bool>" not in result.stdout, (path, result.stdout)


def test_booleans_read_the_same_in_csv_and_json(tmp_path: Path) -> None:
    """CSV printed Python's True/False where JSON says true/false."""
    ws = tmp_path / "ws"
    runner.invoke(app, ["init", str(ws)])
    query = "SELECT true AS yes, false AS no, NULL::BOOLEAN AS unknown"
    csv_out = runner.invoke(app, ["-w", str(ws), "sql", "--format", "csv", query])
    assert csv_out.exit_code == ExitCode.OK, csv_out.output
    assert list(csv.DictReader(io.StringIO(csv_out.stdout))) == [
        {"yes": "true", "no": "false", "unknown": ""}]
    json_out = runner.invoke(app, ["-w", str(ws), "sql", "--format", "json", query])
    assert json.loads(json_out.stdout) == [{"yes": True, "no": False, "unknown": None}]


def test_the_commands_of_a_first_day_show_an_example() -> None:
    """README: every command explains itself with --help. The ones a newcomer runs on
    the first day (README, docs/workspace.md, docs/catalog.md) each show an example."""
    first_day = [["init"], ["serve"], ["status"], ["console"], ["sql"], ["demo"], ["check"],
                 ["catalog", "list"], ["catalog", "lint"], ["catalog", "docs"],
                 ["quarantine", "list"], ["metrics", "query"], ["funnel"],
                 ["experiment", "analyze"], ["anomalies"], ["explain"], ["ask"]]
    for command in first_day:
        result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, command
        assert "Example: nerve " + command[0] in result.stdout, command


def test_every_command_shows_an_example() -> None:
    """Not only the first day's: forget, expire, audit, catalog diff, metrics show,
    experiment plan... each shows how it is typed."""
    def commands(command: object, path: list[str]) -> list[list[str]]:
        subs = getattr(command, "commands", None)
        if subs is None:
            return [path]
        return [found for name, sub in subs.items() for found in commands(sub, [*path, name])]

    for path in commands(typer.main.get_command(app), []):
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, path
        assert "Example: nerve " + " ".join(path) in result.stdout, path


def test_init_inside_a_workspace_names_it_and_creates_nothing(tmp_path: Path) -> None:
    """Commands read the workspace of the folder they run in: one made inside another
    (or in its events/ folder) is a second catalog and warehouse, not a part of it."""
    outer = tmp_path / "shop"
    assert runner.invoke(app, ["init", str(outer)]).exit_code == ExitCode.OK
    for inner in (outer / "analytics", outer / "events" / "web"):
        result = runner.invoke(app, ["init", str(inner)])
        assert result.exit_code == ExitCode.INVALID, result.output
        assert str(outer / "nerve.toml") in result.output
        assert "--nested" in result.output
        assert not (inner / "nerve.toml").exists()
    result = runner.invoke(app, ["init", str(outer / "analytics"), "--nested"])
    assert result.exit_code == ExitCode.OK, result.output
    assert (outer / "analytics" / "nerve.toml").is_file()
