"""A worker process that dies while starting fails ``nerve serve``'s start with its reason."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys

import pytest

from nerve.errors import InternalError
from nerve.server._workers import _exit_reason, spawn_workers
from nerve.workspace import Workspace


def test_a_worker_that_cannot_load_the_workspace_names_its_exit_code(shop: Workspace) -> None:
    toml = shop.root / "nerve.toml"
    toml.write_text(toml.read_text() + "\n[broken\n")  # the worker loads it again: it fails
    with socket.create_server(("127.0.0.1", 0)) as sock, \
            pytest.raises(InternalError) as raised:
        spawn_workers(shop, [sock], [1], "http://127.0.0.1:9", "test", timeout=60)
    assert "exited while starting (exit code 1)" in str(raised.value)


@pytest.mark.parametrize(("code", "reason"), [
    ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", "killed by SIGKILL"),
    ("raise SystemExit(3)", "exit code 3"),
])
def test_the_exit_reason_is_the_code_or_the_signal(code: str, reason: str) -> None:
    worker = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert worker.stdout is not None
    assert worker.stdout.read() == b""  # as spawn_workers sees it: the output closed
    worker.stdout.close()
    assert _exit_reason(worker) == reason


def test_a_worker_that_closed_its_output_but_runs_on_is_said_to() -> None:
    code = "import os, time; os.close(1); time.sleep(30)"
    worker = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        assert worker.stdout is not None
        assert worker.stdout.read() == b""
        worker.stdout.close()
        assert _exit_reason(worker, wait=0.5) == "still running, with its output closed"
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
