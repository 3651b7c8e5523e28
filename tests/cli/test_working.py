"""Commands that read a month of events for a minute say so while they work, on a
terminal only: `nerve ask` on the demo's month took minutes with nothing on the screen."""

import io
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from nerve.cli import ExitCode, _common, app

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


def _workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    assert runner.invoke(app, ["init", str(ws)]).exit_code == ExitCode.OK
    (ws / "events" / "signup.yaml").write_text(EVENT)
    return ws


@pytest.mark.parametrize(("command", "shown"), [
    (["ask", "how many signups yesterday?", "--no-llm"], "answering"),
    (["check"], "running the checks"),
    (["anomalies", "signup"], "judging signup"),
])
def test_a_terminal_sees_what_the_command_is_doing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   command: list[str], shown: str) -> None:
    ws = _workspace(tmp_path)
    if command[0] == "check":  # check reads an existing warehouse only
        runner.invoke(app, ["-w", str(ws), "sql", "SELECT 1"])
    screen = io.StringIO()
    monkeypatch.setattr(_common, "err_console", Console(file=screen, force_terminal=True))
    runner.invoke(app, ["-w", str(ws), *command])
    assert shown in screen.getvalue()


def test_a_pipe_sees_nothing_of_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = _workspace(tmp_path)
    piped = io.StringIO()
    monkeypatch.setattr(_common, "err_console", Console(file=piped, force_terminal=False))
    result = runner.invoke(app, ["-w", str(ws), "ask", "how many signups yesterday?",
                                 "--no-llm", "--format", "json"])
    assert result.stdout.lstrip().startswith("{")
    assert piped.getvalue() == ""
