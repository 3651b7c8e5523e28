"""A stop with ``--workers`` lets go of the port before the final drain.

The main process holds a copy of each worker's listening socket (so that a restarted
worker finds the connections that waited for it). It kept them through the final drain,
which takes as long as the log's backlog takes to load (minutes for a large one): the
kernel went on accepting connections for nobody, each client waited out its timeout, and
then got a reset, not knowing whether its batch was taken. A refused connection, at once,
is what an SDK retries cleanly (against the next server, or this one restarted).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from serverkit import EVENTS

from nerve.workspace import Workspace

# The final drain held until a file appears: it stands in for a long backlog's load, which
# this test cannot make last a known time. Everything else is the real `nerve serve`.
SERVE_WITH_A_SLOW_DRAIN = """\
import pathlib, sys, time
import nerve.server._run as run

real_drain = run._drain

def slow_drain(state):
    while not pathlib.Path(sys.argv[1]).exists():
        time.sleep(0.05)
    real_drain(state)

run._drain = slow_drain
from nerve.cli import app
app(["--workspace", sys.argv[2], "serve", "--host", "127.0.0.1", "--port", sys.argv[3],
     "--workers", "2"], prog_name="nerve")
"""


def _wait_for(log: Path, text: bytes, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in log.read_bytes():
            return
        if process.poll() is not None:
            pytest.fail(f"nerve serve exited {process.returncode}:\n{log.read_text()}")
        time.sleep(0.05)
    pytest.fail(f"no {text!r} in the log within {timeout} s:\n{log.read_text()}")


def test_the_port_refuses_connections_while_the_log_drains(
        make_workspace: Callable[..., Workspace], tmp_path: Path) -> None:
    ws = make_workspace(EVENTS)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    release = tmp_path / "release-the-drain"
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", SERVE_WITH_A_SLOW_DRAIN, str(release), str(ws.root),
             str(port)], stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_for(log, b'"message":"serving"', process, timeout=90)
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).status_code == 200
        os.kill(process.pid, signal.SIGTERM)
        _wait_for(log, b"stopping: draining the log into the warehouse", process, timeout=60)
        assert process.poll() is None  # still draining: the window this test is about
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        release.touch()
        assert process.wait(timeout=60) == 0, log.read_text()
    finally:
        release.touch()
        if process.poll() is None:
            process.kill()
            process.wait()
