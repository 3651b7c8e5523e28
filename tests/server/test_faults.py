"""Faults under load: a full disk, and SIGTERM in the middle of a stream of requests.

After each, every acknowledged event is in the warehouse exactly once. (SIGKILL under
load: test_server_crash.py; a corrupted log tail: tests/log.)
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from serverkit import EVENTS, basic, order, rows, write_key

from nerve.cli._common import Format
from nerve.cli._serve import _status_rows
from nerve.workspace import Workspace


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Callable[[Path], Path]]:
    """Mount a small tmpfs (2 MiB unless told) on a folder (root only); unmounted at
    teardown."""
    mounted: list[Path] = []

    def mount(folder: Path, size: str = "2m") -> Path:
        if os.geteuid() != 0 or shutil.which("mount") is None:
            pytest.skip("mounting a small tmpfs needs root: cannot simulate a full disk")
        folder.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                              capture_output=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"mount -t tmpfs is not permitted here: {done.stderr.decode()[:200]}")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _batch(n: int, size: int = 40) -> list[dict[str, Any]]:
    return [order(n * 1000 + i, prefix=f"b{n}", context={"pad": "x" * 200})
            for i in range(size)]


def _loaded(ws: Workspace) -> list[str]:
    return [r["message_id"] for r in rows(ws, "SELECT message_id FROM events")]


def test_full_disk_answers_503_and_loses_or_doubles_nothing_acknowledged(
        make_workspace: Callable[..., Workspace], serve: Callable[..., Any],
        small_disk: Callable[[Path], Path]) -> None:
    ws = make_workspace(EVENTS)
    log_dir = small_disk(ws.data_dir / "log")
    filler = log_dir / "filler"
    free = shutil.disk_usage(log_dir).free
    filler.write_bytes(b"\0" * (free - 96 * 1024))  # leave room for a few batches only
    server = serve(ws)
    auth = basic(write_key(ws))
    acked: set[str] = set()
    refused: list[int] = []
    statuses: set[int] = set()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for n in range(60):
            answer = client.post("/v1/batch", json={"batch": _batch(n)}, headers=auth)
            statuses.add(answer.status_code)
            if answer.status_code == 200:
                acked.update(m["messageId"] for m in _batch(n))
            else:
                assert answer.status_code == 503, answer.text
                assert answer.headers["Retry-After"]
                refused.append(n)
        assert refused, "the disk never filled"
        # nerve status says why, where the server's own log is not at hand
        admin = orjson.loads((ws.data_dir / "server.json").read_bytes())["admin_token"]
        status = client.get("/v1/status", headers={"Authorization": f"Bearer {admin}"})
        assert "is full" in status.json()["log"]["write_problem"], status.text
        shown = {r["what"]: r["value"] for r in _status_rows(status.json(), Format.table)}
        assert shown["local log"].startswith("cannot be written: the disk of ")
        filler.unlink()  # space returns
        status = client.get("/v1/status", headers={"Authorization": f"Bearer {admin}"})
        assert status.json()["log"]["write_problem"] is None, status.text
        # the SDK retries what was refused; everything goes through now
        for n in refused:
            answer = client.post("/v1/batch", json={"batch": _batch(n)}, headers=auth)
            assert answer.status_code == 200, answer.text
            acked.update(m["messageId"] for m in _batch(n))
    assert 500 not in statuses
    assert server.stop() == 0
    loaded = _loaded(ws)
    assert len(loaded) == len(set(loaded)), "an event was loaded twice"
    assert set(loaded) == acked
    # each refused request's new segment went with its failure: none was left empty for
    # the loader to set aside as corrupt
    assert sorted(p.name for p in log_dir.rglob("*.corrupt")) == []
    # the operator sees why, in the JSON log on stderr
    logged = [orjson.loads(line) for line in server.log.read_text().splitlines()
              if line.startswith("{")]
    assert any(e["level"] == "error" and e.get("errno") == errno.ENOSPC for e in logged)


def test_sigterm_during_a_stream_drains_and_every_200_is_loaded(
        make_workspace: Callable[..., Workspace], serve: Callable[..., Any]) -> None:
    ws = make_workspace(EVENTS)
    server = serve(ws, "--workers", "2")
    auth = basic(write_key(ws))
    acked: set[str] = set()
    lock = threading.Lock()
    some_acked = threading.Event()

    def stream(thread: int) -> None:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for n in range(thread * 10_000, thread * 10_000 + 2000):
                try:
                    answer = client.post("/v1/batch", json={"batch": _batch(n, 20)},
                                         headers=auth)
                except httpx.HTTPError:
                    return  # the server has stopped accepting
                if answer.status_code == 200:
                    with lock:
                        acked.update(m["messageId"] for m in _batch(n, 20))
                    some_acked.set()
                else:
                    assert answer.status_code == 503, answer.text

    threads = [threading.Thread(target=stream, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    assert some_acked.wait(60)
    assert server.stop() == 0  # SIGTERM while the streams run
    for thread in threads:
        thread.join(60)
    assert acked
    loaded = _loaded(ws)
    assert len(loaded) == len(set(loaded))
    assert acked <= set(loaded)


def test_sigterm_log_says_the_drain_starts_after_the_workers_stopped(
        make_workspace: Callable[..., Workspace], serve: Callable[..., Any]) -> None:
    """The main process said "in-flight requests are done; draining the log" at once,
    while its workers were still finishing theirs (a slow body held one 30 s)."""
    ws = make_workspace(EVENTS)
    server = serve(ws, "--workers", "2")
    assert server.stop() == 0
    lines = [orjson.loads(line) for line in server.output().splitlines()
             if line.startswith("{")]
    main = server.process.pid
    messages = [(line["pid"], line["message"]) for line in lines]
    assert (main, "stopping: the worker processes finish their requests") in messages
    drain = messages.index((main, "stopping: draining the log into the warehouse"))
    finished = [i for i, (pid, message) in enumerate(messages)
                if pid != main and message.startswith("Finished server process")]
    assert len(finished) == 2
    assert max(finished) < drain


def test_full_disk_makes_ready_503_logs_once_and_ready_recovers_without_traffic(
        make_workspace: Callable[..., Workspace], serve: Callable[..., Any],
        small_disk: Callable[[Path], Path]) -> None:
    ws = make_workspace(EVENTS)
    log_dir = small_disk(ws.data_dir / "log")
    filler = log_dir / "filler"
    server = serve(ws)
    filler.write_bytes(b"\0" * shutil.disk_usage(log_dir).free)  # the disk is full
    auth = basic(write_key(ws))
    with httpx.Client(base_url=server.url, timeout=30) as client:
        statuses = [client.post("/v1/batch", json={"batch": _batch(n)}, headers=auth).status_code
                    for n in range(20)]
        assert set(statuses) == {503}
        # a load balancer must take this collector out: it refuses every event
        ready = client.get("/ready")
        assert ready.status_code == 503, ready.text
        assert ready.json()["code"] == "unavailable"
        assert "could not be written" in ready.json()["message"]
        assert ready.headers["Retry-After"]
        filler.unlink()  # space returns
        # ...and put it back without sending it an event first
        assert client.get("/ready").status_code == 200
        answer = client.post("/v1/batch", json={"batch": _batch(99)}, headers=auth)
        assert answer.status_code == 200, answer.text
    assert server.stop() == 0
    assert set(_loaded(ws)) == {m["messageId"] for m in _batch(99)}
    logged = [orjson.loads(line) for line in server.log.read_text().splitlines()
              if line.startswith("{")]
    errors = [e for e in logged if e.get("errno") == errno.ENOSPC]
    # said when the failures began, not once per refused request (20 here)
    assert 1 <= len(errors) < len(statuses)
    assert any(e["message"] == "the event log is writable again: taking events"
               for e in logged)


def test_a_full_disk_under_the_metrics_files_does_not_kill_the_server(
        make_workspace: Callable[..., Workspace], serve: Callable[..., Any],
        small_disk: Callable[..., Path]) -> None:
    # prometheus-client writes its files through mmap: a page the disk cannot back was
    # SIGBUS, and the first counter of a process on a full disk killed it
    ws = make_workspace(EVENTS)
    folder = small_disk(ws.data_dir / "prometheus", "4m")
    server = serve(ws)
    (folder / "filler").write_bytes(b"\0" * shutil.disk_usage(folder).free)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        answer = client.post("/v1/batch", json={"batch": _batch(1)}, headers=basic(write_key(ws)))
        assert answer.status_code == 200, answer.text
        assert client.get("/health").status_code == 200
        assert "nerve_events_accepted_total" in client.get("/metrics").text
    assert server.stop() == 0
    assert set(_loaded(ws)) == {m["messageId"] for m in _batch(1)}


def test_ingest_stops_while_the_warehouse_disk_lacks_room_to_load_the_log(
        make_workspace: Callable[..., Workspace], serve: Callable[..., Any],
        small_disk: Callable[..., Path]) -> None:
    # the log and the warehouse on one small disk: ingest used to fill the room the
    # warehouse needed, and the loader then failed every commit while /ready said ready
    ws = make_workspace(EVENTS)
    data = small_disk(ws.data_dir, "40m")
    server = serve(ws)
    filler = data / "filler"
    filler.write_bytes(b"\0" * (shutil.disk_usage(data).free - 8 * 1024 * 1024))
    auth = basic(write_key(ws))
    with httpx.Client(base_url=server.url, timeout=30) as client:
        ready = _wait_for(lambda: client.get("/ready"), lambda r: r.status_code == 503)
        assert "too little room" in ready.json()["message"], ready.text
        answer = client.post("/v1/batch", json={"batch": _batch(1)}, headers=auth)
        assert answer.status_code == 503, answer.text
        assert answer.headers["Retry-After"]
        details = answer.json()["details"]
        assert details["warehouse_free_bytes"] < details["warehouse_needs_bytes"]
        assert "nerve_warehouse_short_of_room 1.0" in client.get("/metrics").text
        admin = orjson.loads((ws.data_dir / "server.json").read_bytes())["admin_token"]
        status = client.get("/v1/status", headers={"Authorization": f"Bearer {admin}"})
        shown = {r["what"]: r["value"] for r in _status_rows(status.json(), Format.table)}
        assert "move the warehouse" in shown["warehouse disk"], shown
        filler.unlink()  # room returns: taking events again, without a restart
        _wait_for(lambda: client.get("/ready"), lambda r: r.status_code == 200)
        answer = client.post("/v1/batch", json={"batch": _batch(2)}, headers=auth)
        assert answer.status_code == 200, answer.text
    assert server.stop() == 0
    assert set(_loaded(ws)) == {m["messageId"] for m in _batch(2)}
    logged = [orjson.loads(line) for line in server.log.read_text().splitlines()
              if line.startswith("{")]
    warned = [e for e in logged if e["level"] == "warning" and "too little room" in e["message"]]
    assert len(warned) == 1
    assert "[warehouse] url" in warned[0]["message"]
    assert any(e["message"] == "the warehouse's disk has room again: taking events"
               for e in logged)


def _wait_for(get: Callable[[], httpx.Response], done: Callable[[httpx.Response], bool],
              seconds: float = 10) -> httpx.Response:
    """``get()`` until ``done`` says so (the backlog watcher looks twice a second)."""
    for _ in range(int(seconds * 10)):
        answer = get()
        if done(answer):
            return answer
        time.sleep(0.1)
    raise AssertionError(f"never came: {answer.status_code} {answer.text}")


def test_short_of_room_the_server_checkpoints_the_warehouse_and_takes_events_again(
        make_workspace: Callable[..., Workspace], serve: Callable[..., Any],
        small_disk: Callable[..., Path]) -> None:
    # DuckDB keeps loaded rows in its WAL, uncompressed, until 256 MB: on a small disk the
    # WAL alone made the room short, and ingest stayed refused until a restart
    ws = make_workspace(EVENTS)
    data = small_disk(ws.data_dir, "48m")
    server = serve(ws)
    (data / "filler").write_bytes(b"\0" * (shutil.disk_usage(data).free - 28 * 1024 * 1024))
    auth = basic(write_key(ws))
    acked: set[str] = set()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for n in range(400):
            batch = _batch(n, 200)
            answer = client.post("/v1/batch", json={"batch": batch}, headers=auth)
            if answer.status_code != 200:
                assert "too little room" in answer.json()["message"], answer.text
                break
            acked.update(m["messageId"] for m in batch)
        else:
            pytest.fail("the warehouse's disk never ran short of room")
        # nothing is sent meanwhile: the checkpoint alone makes the room
        _wait_for(lambda: client.get("/ready"), lambda r: r.status_code == 200, seconds=60)
        answer = client.post("/v1/batch", json={"batch": _batch(999)}, headers=auth)
        assert answer.status_code == 200, answer.text
        acked.update(m["messageId"] for m in _batch(999))
    assert server.stop() == 0
    loaded = _loaded(ws)
    assert len(loaded) == len(set(loaded))
    assert set(loaded) == acked
    logged = [orjson.loads(line) for line in server.log.read_text().splitlines()
              if line.startswith("{")]
    checkpoints = [e for e in logged if "checkpointed" in e["message"]]
    assert checkpoints
    assert checkpoints[0]["wal_bytes_after"] < checkpoints[0]["wal_bytes_before"]
    assert not [e for e in logged if e["logger"] == "nerve.loader" and e["level"] == "error"]
