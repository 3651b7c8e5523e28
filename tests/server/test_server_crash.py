"""A crash (SIGKILL) while clients send and the loader loads loses no acknowledged event,
and duplicates none, once the server restarts and clients resend what was not acknowledged."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest
from serverkit import Senders, basic, order, rows, write_key

from nerve.workspace import Workspace


@pytest.mark.parametrize("workers", [1, 2])
def test_sigkill_mid_load_then_restart_keeps_every_acked_event_exactly_once(
        shop: Workspace, serve: Callable[..., Any], workers: int) -> None:
    auth = basic(write_key(shop))
    server = serve(shop, "--workers", str(workers))
    load = Senders(server.url, auth, "c", until_acked=3000)  # the loader is busy by now
    server.kill()  # SIGKILL: no flush, no drain, no goodbye (workers die with it)
    acked, failed = load.stop()
    assert len(acked) >= 3000, server.output()

    restarted = serve(shop, "--workers", str(workers))  # the port and log folders are free
    with httpx.Client(base_url=restarted.url, headers=auth) as http:
        for body in failed:  # what the clients never saw acknowledged, sent again
            assert http.post("/v1/batch", content=body).status_code == 200
    assert restarted.stop() == 0

    loaded = rows(shop, "SELECT message_id FROM events")
    ids = [r["message_id"] for r in loaded]
    assert len(ids) == len(set(ids)), "a message_id was loaded twice"
    missing = set(acked) - set(ids)
    assert not missing, f"{len(missing)} acknowledged events lost, e.g. {sorted(missing)[:3]}"
    resent = {m["messageId"] for body in failed for m in orjson.loads(body)["batch"]}
    assert resent <= set(ids)
    assert set(ids) == set(acked) | resent  # and nothing that nobody sent


def _json_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("{")]


def worker_pids(shop: Workspace) -> set[int]:
    found = subprocess.run(["pgrep", "-f", f"_worker_main .* {shop.root} "],
                           capture_output=True, text=True, check=False)
    return {int(pid) for pid in found.stdout.split()}


def test_a_killed_worker_is_replaced_and_no_acked_event_is_lost(
        shop: Workspace, serve: Callable[..., Any]) -> None:
    auth = basic(write_key(shop))
    server = serve(shop, "--workers", "2")
    load = Senders(server.url, auth, "w", until_acked=2000)
    before = worker_pids(shop)
    assert len(before) == 2
    victim = min(before)
    os.kill(victim, signal.SIGKILL)  # an OOM kill, say: mid-request, nothing flushed
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        now = worker_pids(shop)
        if len(now) == 2 and victim not in now:
            break
        time.sleep(0.1)
    assert len(now) == 2, server.output()  # a new worker took the dead one's place
    assert victim not in now
    acked, failed = load.stop()
    # a new worker may still be importing when its socket takes the first connection:
    # under load that wait passed httpx's default 5 s (SDKs wait 10-30 s)
    with httpx.Client(base_url=server.url, headers=auth, timeout=60) as http:
        for body in failed:  # what a client saw cut off, sent again
            assert http.post("/v1/batch", content=body).status_code == 200
        for n in range(10):  # fresh connections reach both workers again
            body = orjson.dumps({"batch": [order(i, f"after-{n}") for i in range(10)]})
            assert httpx.post(server.url + "/v1/batch", content=body, headers=auth,
                              timeout=60).status_code == 200
            acked.extend(f"after-{n}-{i}" for i in range(10))
    assert server.stop() == 0
    # the line is the main process's, and names the dead worker (its pid was written
    # over the "pid" every line has, so the main process seemed to be the one that died)
    [died] = [line for line in map(orjson.loads, _json_lines(server.output()))
              if line["message"] == "a worker process died; starting another"]
    assert server.process is not None
    assert (died["pid"], died["worker_pid"], died["exit"]) == (
        server.process.pid, victim, -signal.SIGKILL)

    ids = [r["message_id"] for r in rows(shop, "SELECT message_id FROM events")]
    assert len(ids) == len(set(ids)), "a message_id was loaded twice"
    missing = set(acked) - set(ids)
    assert not missing, f"{len(missing)} acknowledged events lost, e.g. {sorted(missing)[:3]}"
