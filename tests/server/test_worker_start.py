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
from pathlib import Path
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



def test_a_worker_dead_before_it_gets_its_settings_names_how_it_ended(
        shop: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Handing the settings over to a worker that had already died raised BrokenPipeError
    from the pipe's close (small settings wait in its buffer until then): the start failed
    with a traceback instead of the worker's exit reason."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(hook), *sys.path]))

    class DeadOnArrival(subprocess.Popen[bytes]):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.wait()  # dead before the server writes to it

    monkeypatch.setattr(subprocess, "Popen", DeadOnArrival)
    with socket.create_server(("127.0.0.1", 0)) as sock, \
            pytest.raises(InternalError) as raised:
        spawn_workers(shop, [sock], [1], "http://127.0.0.1:9", "test", timeout=60)
    assert "exited while starting (killed by SIGKILL)" in str(raised.value)

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


def test_a_start_that_fails_on_its_workers_stops_the_loader_and_closes_the_warehouse(
        shop: Workspace, tmp_path: Path) -> None:
    """Ctrl-C while `nerve serve --workers 2` started reached the workers (they share the
    terminal's process group) and failed the start; the main process then exited with
    its loader thread still running, sometimes inside DuckDB: C++ aborted it (SIGABRT,
    "terminate called without an active exception"), the warehouse left unclosed."""
    hook = tmp_path / "hook"
    hook.mkdir()
    # in the worker processes only (the main process sets the variable before it starts
    # them): die while starting, as a worker that Ctrl-C reached did
    (hook / "sitecustomize.py").write_text(
        "import os, signal\n"
        "if os.environ.get('NERVE_SERVE_PROCESSES'):\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n")
    env = {key: value for key, value in os.environ.items() if key != "NERVE_SERVE_PROCESSES"}
    env["PYTHONPATH"] = os.pathsep.join([str(hook), *sys.path])
    done = subprocess.run(
        [sys.executable, "-m", "nerve", "--workspace", str(shop.root), "serve", "--port", "0",
         "--workers", "2"], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert "exited while starting (killed by SIGKILL)" in done.stderr
    assert done.returncode == 3, done.stderr  # an internal error, not a signal
    assert "terminate called" not in done.stderr
    # the loader stopped and the warehouse was closed (checkpointed) before the exit
    assert not (shop.data_dir / "warehouse.duckdb.wal").exists()
    assert not (shop.data_dir / "server.json").exists()


def test_ctrl_c_while_the_workers_start_stops_the_server_cleanly(shop: Workspace) -> None:
    """A terminal's Ctrl-C signals its foreground process group. It reached the workers
    as they started, and the start failed with their tracebacks (exit 3, or an abort)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "nerve", "--workspace", str(shop.root), "serve", "--port", "0",
         "--workers", "2"], start_new_session=True,  # a group of its own, as in a terminal
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not worker_pids(shop):  # the workers are starting
            assert time.monotonic() < deadline
            assert process.poll() is None
            time.sleep(0.02)
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C
        output, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output.decode(errors="replace")
    assert b"Traceback" not in output
    assert b'"message":"stopped"' in output
    assert not worker_pids(shop)


def test_workers_take_events_and_forward_reads_without_loading_the_warehouse(
        shop: Workspace, serve: Callable[..., Any]) -> None:
    """A worker imported the read APIs' DuckDB and Ibis it never uses: a restarted worker
    took twice as long to import nerve before it took connections, and each one was
    ~55 MB larger."""
    server = serve(shop, "--workers", "2")
    auth = basic(write_key(shop))
    info = orjson.loads((shop.data_dir / "server.json").read_bytes())
    admin = {"Authorization": f"Bearer {info['admin_token']}"}
    for n in range(12):  # fresh connections: both workers
        body = orjson.dumps({"batch": [order(n, "lean")]})
        assert httpx.post(server.url + "/v1/batch", content=body,
                          headers=auth).status_code == 200
        status = httpx.get(server.url + "/v1/status", headers=admin)  # forwarded
        assert status.status_code == 200, status.text
        assert httpx.get(server.url + "/metrics").status_code == 200
    pids = worker_pids(shop)
    assert len(pids) == 2
    for pid in pids:
        libraries = Path(f"/proc/{pid}/maps").read_text()
        assert "pyarrow" in libraries  # the log's frames: what a worker does load
        assert "duckdb" not in libraries, pid
    assert server.stop() == 0
    assert len(rows(shop, "SELECT message_id FROM events")) == 12
