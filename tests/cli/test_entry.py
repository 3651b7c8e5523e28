"""The ``nerve`` command's entry point (nerve._entry)."""

from __future__ import annotations

import importlib.abc
import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import nerve
from nerve._entry import main
from nerve.workspace import init_workspace


class _CtrlCOnImport(importlib.abc.MetaPathFinder):
    """Raises KeyboardInterrupt when ``nerve.cli`` is imported, as Ctrl-C there would."""

    def find_spec(self, name: str, path: Any, target: ModuleType | None = None) -> None:
        if name == "nerve.cli":
            raise KeyboardInterrupt


def test_ctrl_c_while_the_command_line_loads_aborts_without_a_traceback(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delitem(sys.modules, "nerve.cli", raising=False)
    monkeypatch.setattr(sys, "meta_path", [_CtrlCOnImport(), *sys.meta_path])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 1
    assert capsys.readouterr().err.strip() == "Aborted!"


def test_the_installed_command_starts_through_the_entry_point() -> None:
    (script,) = entry_points(group="console_scripts", name="nerve")
    assert script.value == "nerve._entry:main"


def test_ctrl_c_during_a_command_aborts_as_while_it_loads(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Typer >= 0.2x turns a KeyboardInterrupt in a command into a silent exit 130; nerve
    keeps the documented `Aborted!` and exit 1 (docs/cli.md) wherever Ctrl-C lands."""
    from typer.testing import CliRunner

    from nerve.cli import ExitCode, _sql, app

    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    runner = CliRunner()
    assert runner.invoke(app, ["init", str(tmp_path / "ws")]).exit_code == ExitCode.OK
    monkeypatch.setattr(_sql, "run_sql", interrupted)
    result = runner.invoke(app, ["-w", str(tmp_path / "ws"), "sql", "SELECT 1"])
    assert result.exit_code == ExitCode.FAILED == 1
    assert result.stderr.strip() == "Aborted!"
    assert "Traceback" not in result.output


@pytest.mark.parametrize("args", [["catalog", "lint", "--workspace", "shop"],
                                  ["catalog", "lint", "-w", "shop"],
                                  ["metrics", "query", "orders", "--workspace=shop"]])
def test_workspace_after_the_command_says_where_it_goes(
        args: list[str], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`nerve catalog lint --workspace shop` is an easy slip; Click's `No such option:
    --workspace` left the user to guess that the option is global."""
    from nerve.cli import ExitCode

    monkeypatch.setattr(sys, "argv", ["nerve", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == ExitCode.USAGE
    command = " ".join(a for a in args if not a.startswith(("-", "shop")))
    assert (f"--workspace goes before the command: nerve --workspace shop {command}"
            in capsys.readouterr().err)


def test_no_workspace_hint_for_other_usage_errors(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "argv", ["nerve", "--workspace", "shop", "catalog", "lint",
                                      "--bogus"])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    assert "goes before the command" not in capsys.readouterr().err


_HEAVY = ("scipy", "pandas", "ibis", "duckdb", "pyarrow", "sqlglot", "statsmodels")


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["check", "--help"],
                                  ["metrics", "query", "--help"], ["demo", "--help"],
                                  ["catalog", "lint"]])
def test_commands_that_read_no_data_start_without_the_analysis_libraries(
        args: list[str], tmp_path: Path) -> None:
    """SciPy, pandas, Ibis and DuckDB took ~2-4 s to import before every command, even
    `nerve --version`; a command now imports them when it reads data."""
    init_workspace(tmp_path / "ws")
    script = ("import sys\nfrom nerve._entry import main\n"
              f"sys.argv = ['nerve', '-w', {str(tmp_path / 'ws')!r}, *{args!r}]\n"
              "try:\n    main()\nexcept SystemExit as exc:\n    code = exc.code\n"
              f"print('loaded', [m for m in {_HEAVY!r} if m in sys.modules], code)\n")
    source = str(Path(nerve.__file__).parents[1])  # the nerve under test, installed or not
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": source}, timeout=120, check=False)
    # a fresh workspace's catalog has no events: lint warns (exit 3)
    codes = ("3",) if args == ["catalog", "lint"] else ("0", "None")
    assert done.stdout.splitlines()[-1] in [f"loaded [] {c}" for c in codes], (
        done.stdout[-2000:], done.stderr[-2000:])


def test_init_piped_never_splits_a_command_or_a_path(tmp_path: Path) -> None:
    """Piped (a CI log, no terminal, no $COLUMNS) Rich wrapped text at 80 columns:
    the hint read "`nerve" / "serve`" and a long workspace path came in two pieces.
    Lines are printed whole there; and each hint line fits 80 columns, so a terminal
    that wraps them does not split a command either."""
    folder = tmp_path / "a_folder_with_a_long_name_as_ci_runners_have" / "shop"
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    done = subprocess.run([sys.executable, "-m", "nerve", "init", str(folder)],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert f"Created workspace shop in {folder}" in lines, done.stdout
    assert all(line.count("`") % 2 == 0 for line in lines), done.stdout
    hint = lines[lines.index(f"Created workspace shop in {folder}") + 4:]
    assert any("`nerve serve`" in line for line in hint), done.stdout
    assert all(len(line) <= 80 for line in hint), done.stdout
