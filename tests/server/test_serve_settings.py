"""``nerve serve`` refuses a workspace it cannot run as configured before it starts, with
one line naming the file, line and setting (exit 4), and says a busy port is busy (exit
5); it keeps ``.nerve/`` to its own user."""

from __future__ import annotations

import socket
import stat
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from serverkit import EVENTS

from nerve.workspace import Workspace

APPOINTMENT = """\
name: appointment_booked
description: A patient books an appointment with a clinic.
owner: care
purpose: analytics
trigger: The patient confirms the booking form.
version: 1
retention: 30d
properties:
  clinic_id: {type: string, description: The clinic booked., pii: none}
  diagnosis: {type: string, description: What the patient reports., pii: sensitive, handling: drop}
"""


def nerve(ws: Workspace, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nerve", "--workspace", str(ws.root), *args],
                          capture_output=True, text=True, timeout=120, check=False)


def add(ws: Workspace, toml: str, file: str = "nerve.toml") -> None:
    """Append to a file of a loaded workspace (make_workspace would refuse it at once)."""
    with (ws.root / file).open("a") as f:
        f.write(toml)


def line_of(ws: Workspace, text: str) -> int:
    return (ws.root / "nerve.toml").read_text().splitlines().index(text) + 1


@pytest.mark.parametrize(("toml", "message"), [
    ('[privacy]\nenforce_retention = "yes"\n',
     "[privacy] enforce_retention: expected true or false, got 'yes'"),
    ('[checks]\nevery = "weekly"\n',
     "[checks] every: expected a duration like 30s, 5m, 1h, 7d, got 'weekly'"),
])
def test_a_setting_read_once_serving_stops_the_start_with_one_line(
        make_workspace: Callable[..., Workspace], toml: str, message: str) -> None:
    """These were read in the server's lifespan: a traceback, and exit 3 (WARN)."""
    ws = make_workspace(EVENTS)
    add(ws, "\n" + toml)
    done = nerve(ws, "serve", "--port", "0")
    assert done.returncode == 4, done.stderr
    line = line_of(ws, toml.splitlines()[1])
    assert done.stderr.strip() == f"error: {ws.root / 'nerve.toml'}:{line}: {message}"


def test_a_checks_yaml_the_scheduler_cannot_read_stops_the_start(
        make_workspace: Callable[..., Workspace]) -> None:
    ws = make_workspace(EVENTS)
    (ws.root / "checks.yaml").write_text("events:\n  order_complete:\n    volume: {}\n")
    done = nerve(ws, "serve", "--port", "0")
    assert done.returncode == 4, done.stderr
    assert "Traceback" not in done.stderr
    assert f"{ws.root / 'checks.yaml'}:2: events.order_complete" in done.stderr


def test_an_allow_sensitive_entry_that_names_nothing_is_refused(
        make_workspace: Callable[..., Workspace]) -> None:
    """A typo was accepted, and the diagnosis it meant to keep dropped without a word."""
    ws = make_workspace({"appointment_booked.yaml": APPOINTMENT})
    add(ws, '\n[privacy]\nallow_sensitive = ["appointment_booked.diagnosys"]\n')
    line = line_of(ws, 'allow_sensitive = ["appointment_booked.diagnosys"]')
    done = nerve(ws, "serve", "--port", "0")
    assert done.returncode == 4, done.stderr
    assert done.stderr.strip() == (
        f"error: {ws.root / 'nerve.toml'}:{line}: [privacy] allow_sensitive: "
        "'appointment_booked.diagnosys': appointment_booked has no property 'diagnosys'; "
        "did you mean 'appointment_booked.diagnosis'?")

    linted = nerve(ws, "catalog", "lint", "--format", "json")
    assert linted.returncode == 1, linted.stdout + linted.stderr
    [finding] = orjson.loads(linted.stdout)
    assert (finding["rule"], finding["severity"], finding["file"], finding["line"]) == (
        "load", "error", "nerve.toml", line)
    assert finding["message"].endswith("did you mean 'appointment_booked.diagnosis'?")


def test_a_port_in_use_is_unavailable_not_invalid(
        make_workspace: Callable[..., Workspace]) -> None:
    ws = make_workspace(EVENTS)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        done = nerve(ws, "serve", "--port", str(taken.getsockname()[1]))
    assert done.returncode == 5, done.stderr
    assert "Address already in use" in done.stderr


def test_serve_makes_an_open_data_folder_private_and_says_so(
        make_workspace: Callable[..., Workspace], serve: Callable[..., Any]) -> None:
    """With umask 022 the folder was 0755: the warehouse and the log readable by anyone."""
    ws = make_workspace(EVENTS)
    ws.data_dir.chmod(0o755)
    server = serve(ws)
    assert stat.S_IMODE(ws.data_dir.stat().st_mode) == 0o700
    assert "was open to other users (mode 755)" in server.output()
