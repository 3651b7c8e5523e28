"""A worker process that dies while starting fails ``nerve serve``'s start with its reason;
one restarted after a crash keeps the server's settings."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest
from serverkit import basic, order, rows, write_key
from test_server_crash import worker_pids

from nerve.errors import InternalError
from nerve.server._workers import _exit_reason, spawn_workers
from nerve.workspace import Workspace


def test_a_worker_that_cannot_load_the_catalog_names_its_exit_code(shop: Workspace) -> None:
    events = shop.events_dir / "order_completed.yaml"
    events.write_text(events.read_text() + "\n  bad: [\n")  # and no catalog handed over
    with socket.create_server(("127.0.0.1", 0)) as sock, \
            pytest.raises(InternalError) as raised:
        spawn_workers(shop, [sock], [1], "http://127.0.0.1:9", "test", timeout=60)
    assert "exited while starting (exit code 1)" in str(raised.value)


def test_a_restarted_worker_keeps_the_settings_the_server_started_with(
        shop: Workspace, serve: Callable[..., Any]) -> None:
    server = serve(shop, "--workers", "2")
    toml = shop.root / "nerve.toml"  # edited while serving: applies at the next start
    toml.write_text(toml.read_text() + '\n[privacy]\nuser_id = "hash"\n')
    before = worker_pids(shop)
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while len(now := worker_pids(shop)) != 2 or victim in now:
        assert time.monotonic() < deadline, server.output()
        time.sleep(0.1)
    auth = basic(write_key(shop))
    for n in range(12):  # fresh connections: both workers, the new one included
        body = orjson.dumps({"batch": [order(n, "after")]})
        assert httpx.post(server.url + "/v1/batch", content=body,
                          headers=auth).status_code == 200
    assert server.stop() == 0
    users = {r["user_id"] for r in rows(shop, "SELECT user_id FROM events")}
    assert users == {order(n, "after")["userId"] for n in range(12)}  # none hashed


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
