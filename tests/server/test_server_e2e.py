"""End to end: the real `nerve serve`, real Segment SDKs, rows read back from the warehouse."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import segment.analytics as segment
from serverkit import HTTP, basic, order, rows, write_key

from nerve.server._workers import worker_cpus
from nerve.workspace import Workspace

NODE_DIR = Path(__file__).parents[1] / "node"


def send_with_python_sdk(url: str, key: str, prefix: str, count: int) -> list[Any]:
    """Send with segment-analytics-python as an app would; return the delivery errors."""
    errors: list[Any] = []
    client = segment.Client(key, host=url, sync_mode=False, gzip=True, upload_size=50,
                            on_error=lambda error, batch: errors.append(error), max_retries=3)
    for i in range(count):
        client.track(user_id=f"py-user-{i % 7}", event="order_completed",
                     properties={"order_id": f"o-{i}", "revenue": i + 0.25, "currency": "USD"},
                     context={"app": {"version": "2.4.0"}}, message_id=f"{prefix}-track-{i}")
    client.track(user_id="py-user-x", event="order_completed",
                 properties={"revenue": "free"}, message_id=f"{prefix}-invalid")
    client.track(anonymous_id="anon-py", event="Unplanned Thing",
                 message_id=f"{prefix}-unknown")
    client.identify(user_id="py-user-1", traits={"plan": "pro"},
                    message_id=f"{prefix}-identify")
    client.page(user_id="py-user-1", category="Docs", name="Pricing",
                properties={"path": "/pricing"}, message_id=f"{prefix}-page")
    client.screen(anonymous_id="anon-py", name="Home", message_id=f"{prefix}-screen")
    client.group(user_id="py-user-1", group_id="acme", traits={"name": "ACME"},
                 message_id=f"{prefix}-group")
    client.alias(previous_id="anon-py", user_id="py-user-1", message_id=f"{prefix}-alias")
    client.flush()
    client.shutdown()
    return errors


def check_landed(ws: Workspace, prefix: str, count: int) -> None:
    """What a client sent is in the warehouse, each message once, in the right table."""
    events = rows(ws, f"SELECT message_id, type, event, name, user_id, anonymous_id, "
                      f"group_id, previous_id, properties, traits, source, schema_version "
                      f"FROM events WHERE message_id LIKE '{prefix}-%' ORDER BY message_id")
    by_id = {r["message_id"]: r for r in events}
    assert len(by_id) == len(events) == count + 5  # tracks + the five other calls
    first = by_id[f"{prefix}-track-0"]
    assert first["type"] == "track"
    assert first["event"] == "order_completed"
    assert first["schema_version"] == "1.0.0"
    assert first["source"] == "server"
    assert first["properties"]["order_id"] == "o-0"
    assert by_id[f"{prefix}-identify"]["traits"] == {"plan": "pro"}
    page = by_id[f"{prefix}-page"]
    assert page["name"] == "Pricing"
    assert page["properties"]["category"] == "Docs"
    assert by_id[f"{prefix}-screen"]["name"] == "Home"
    assert by_id[f"{prefix}-screen"]["anonymous_id"].startswith("anon-")
    assert by_id[f"{prefix}-group"]["group_id"] == "acme"
    assert by_id[f"{prefix}-alias"]["previous_id"].startswith("anon-")
    quarantined = rows(ws, f"SELECT message_id, event, violations FROM quarantine "
                           f"WHERE message_id LIKE '{prefix}-%' ORDER BY message_id")
    assert [q["message_id"] for q in quarantined] == [f"{prefix}-invalid", f"{prefix}-unknown"]
    invalid, unknown = quarantined
    assert {v["rule"] for v in invalid["violations"]} == {"required", "type"}
    assert unknown["event"] == "Unplanned Thing"
    assert [v["rule"] for v in unknown["violations"]] == ["unknown_event"]


def test_python_sdk_events_land_once_and_invalid_ones_in_quarantine(
        shop: Workspace, serve: Callable[..., Any]) -> None:
    server = serve(shop)
    errors = send_with_python_sdk(server.url, write_key(shop), "py", 120)
    assert errors == []
    assert server.stop() == 0
    assert not (shop.data_dir / "server.json").exists()
    check_landed(shop, "py", 120)


@pytest.mark.node
def test_node_sdk_events_land_once_and_invalid_ones_in_quarantine(
        shop: Workspace, serve: Callable[..., Any]) -> None:
    node = shutil.which("node")
    if node is None or not (NODE_DIR / "node_modules" / "@segment" / "analytics-node").is_dir():
        pytest.skip("needs Node.js and `npm install` in tests/node (.ci/run does it)")
    server = serve(shop)
    result = subprocess.run(
        [node, str(NODE_DIR / "send_segment_node.mjs"), server.url, write_key(shop), "nd",
         "40"], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert orjson.loads(result.stdout) == {"sent": 47}
    assert server.stop() == 0
    check_landed(shop, "nd", 40)


@pytest.mark.node
def test_rudderstack_node_sdk_events_land_once_and_invalid_ones_in_quarantine(
        shop: Workspace, serve: Callable[..., Any]) -> None:
    """RudderStack's Node SDK with its defaults: gzipped batches that axios labels
    ``application/x-www-form-urlencoded``; each was refused with 415 and dropped."""
    node = shutil.which("node")
    sdk = NODE_DIR / "node_modules" / "@rudderstack" / "rudder-sdk-node"
    if node is None or not sdk.is_dir():
        pytest.skip("needs Node.js and `npm install` in tests/node (.ci/run does it)")
    server = serve(shop)
    result = subprocess.run(
        [node, str(NODE_DIR / "send_rudder_node.mjs"), server.url, write_key(shop), "rn",
         "40"], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert orjson.loads(result.stdout) == {"sent": 47}
    assert server.stop() == 0
    check_landed(shop, "rn", 40)
    sent = rows(shop, "SELECT original_timestamp, sent_at, context FROM events "
                      "WHERE message_id = 'rn-track-0'")[0]
    # the SDK's own times (it sends originalTimestamp, no timestamp) and its name are kept
    assert sent["original_timestamp"] is not None
    assert sent["sent_at"] is not None
    assert sent["context"]["library"]["name"] == "analytics-node"


def test_a_resent_batch_lands_once(shop: Workspace, serve: Callable[..., Any]) -> None:
    server = serve(shop)
    batch = orjson.dumps({"batch": [order(i, "dup") for i in range(30)]})
    with httpx.Client(base_url=server.url, headers=basic(write_key(shop))) as http:
        for retry in range(3):  # what a client does when it never saw the first 200
            response = http.post("/v1/batch", content=batch,
                                 headers={"X-Retry-Count": str(retry)})
            assert response.status_code == 200
    assert server.stop() == 0
    [count] = rows(shop, "SELECT count(*) AS n, count(DISTINCT message_id) AS d FROM events")
    assert count == {"n": 30, "d": 30}


def test_admin_sql_reads_the_warehouse_while_serving(shop: Workspace,
                                                     serve: Callable[..., Any]) -> None:
    server = serve(shop)
    info = orjson.loads((shop.data_dir / "server.json").read_bytes())
    assert set(info) == {"url", "pid", "admin_token"}
    assert info["url"] == server.url
    assert info["pid"] == server.process.pid
    assert (shop.data_dir / "server.json").stat().st_mode & 0o777 == 0o600
    with httpx.Client(base_url=server.url) as http:
        sent = http.post("/v1/batch", content=orjson.dumps({"batch": [order(1, "sql")]}),
                         headers=basic(write_key(shop)))
        assert sent.status_code == 200
        admin = {"Authorization": f"Bearer {info['admin_token']}"}
        query = {"sql": "SELECT message_id, properties FROM events WHERE message_id = 'sql-1'"}
        for _ in range(100):  # the loader thread drains the log every fraction of a second
            answer = http.post("/v1/admin/sql", json=query, headers=admin)
            assert answer.status_code == 200, answer.text
            if answer.json()["rows"]:
                break
            time.sleep(0.1)
        assert answer.json() == {"columns": ["message_id", "properties"],
                                 "rows": [{"message_id": "sql-1",
                                           "properties": {"order_id": "o1", "revenue": 1,
                                                          "currency": "EUR"}}]}
        wrong = http.post("/v1/admin/sql", json=query, headers={"Authorization": "Bearer x"})
        assert wrong.status_code == 401


def thread_policies(pid: int) -> set[int]:
    """The scheduling policies of a process's threads (Linux /proc)."""
    policies = set()
    for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
        with contextlib.suppress(OSError):  # a thread that just ended
            fields = stat.read_text().rsplit(")", 1)[1].split()
            policies.add(int(fields[38]))  # field 41 of stat; the split starts at field 3
    return policies


def background_policies(pid: int) -> dict[str, int]:
    """The scheduling policy of each of a process's threads named ``nerve-*`` in the OS."""
    policies = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):  # a thread that just ended
            name = (task / "comm").read_text().strip()
            if name.startswith("nerve-"):
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
                policies[name] = int(fields[38])
    return policies


def test_worker_processes_share_the_port_and_forward_read_apis(
        shop: Workspace, serve: Callable[..., Any]) -> None:
    server = serve(shop, "--workers", "3")
    info = orjson.loads((shop.data_dir / "server.json").read_bytes())
    admin = {"Authorization": f"Bearer {info['admin_token']}"}
    auth = basic(write_key(shop))
    for n in range(20):  # a fresh connection each time: the kernel spreads them over processes
        body = orjson.dumps({"batch": [order(i, f"wk{n}") for i in range(10)]})
        assert HTTP.post(server.url + "/v1/batch", content=body, headers=auth).status_code == 200
        # read APIs answer the same whichever process accepted the connection
        answer = HTTP.post(server.url + "/v1/admin/sql", json={"query": "SELECT 1 AS one"},
                           headers=admin)
        assert answer.json() == {"columns": ["one"], "rows": [{"one": 1}]}
        missing = HTTP.get(server.url + "/v1/nothing")
        assert missing.status_code == 404
        assert missing.json()["code"] == "not_found"
    # the main process's background threads (the loader, the live anomaly monitor, the
    # scheduled checks and the retention job) yield the CPU to the workers; the workers
    # run as usual
    assert background_policies(info["pid"]) == {"nerve-loader": os.SCHED_IDLE,
                                                 "nerve-live": os.SCHED_IDLE,
                                                 "nerve-checks": os.SCHED_IDLE,
                                                 "nerve-retention": os.SCHED_IDLE}
    workers = subprocess.run(["pgrep", "-f", f"_worker_main .* {shop.root} "],
                             capture_output=True, text=True, check=False).stdout.split()
    assert len(workers) == 3
    assert all(thread_policies(int(pid)) == {os.SCHED_OTHER} for pid in workers)
    assert server.stop() == 0
    [count] = rows(shop, "SELECT count(*) AS n, count(DISTINCT message_id) AS d FROM events")
    assert count == {"n": 200, "d": 200}
    # only the workers take events: every loaded row came from a worker's log
    writers = {r["writer"] for r in rows(shop, "SELECT writer FROM loads WHERE loaded > 0")}
    assert writers
    assert all(w.startswith("collector-") for w in writers), writers
    leftovers = subprocess.run(["pgrep", "-f", f"_worker_main .* {shop.root} "],
                               capture_output=True, text=True, check=False)
    assert leftovers.stdout == "", "a worker process outlived nerve serve"


def tcp_sockets(pids: list[int], port: int) -> dict[int, dict[str, set[int]]]:
    """Per process, the inodes of its IPv4 TCP sockets on local ``port``: listening
    (``"listen"``) and accepted connections (``"established"``), from Linux /proc."""
    states = {"0A": "listen", "01": "established"}
    by_inode: dict[int, str] = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] in states:
            by_inode[int(fields[9])] = states[fields[3]]
    found: dict[int, dict[str, set[int]]] = {}
    for pid in pids:
        found[pid] = {"listen": set(), "established": set()}
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):  # an fd closed meanwhile
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inode = int(target[8:-1])
                    if inode in by_inode:
                        found[pid][by_inode[inode]].add(inode)
    return found


def test_workers_each_accept_on_a_socket_of_their_own_and_share_connections_evenly(
        shop: Workspace, serve: Callable[..., Any]) -> None:
    server = serve(shop, "--workers", "2")
    workers = [int(p) for p in subprocess.run(
        ["pgrep", "-f", f"_worker_main .* {shop.root} "], capture_output=True, text=True,
        check=False).stdout.split()]
    assert len(workers) == 2
    auth = basic(write_key(shop))
    clients = [httpx.Client(base_url=server.url, headers=auth) for _ in range(64)]
    try:
        for n, client in enumerate(clients):  # keep-alive: each stays with one worker
            body = orjson.dumps({"batch": [order(n, "spread")]})
            assert client.post("/v1/batch", content=body).status_code == 200
        held = tcp_sockets(workers, server.port)
    finally:
        for client in clients:
            client.close()
    # one SO_REUSEPORT socket per worker: the kernel hashes each connection to one of them.
    # With one shared socket, the worker that woke first took most connections (~2:1)
    listening = [held[pid]["listen"] for pid in workers]
    assert all(len(each) == 1 for each in listening), held
    assert listening[0] != listening[1]
    # each worker has its share (a split worse than 16/48 has odds of ~1 in 40,000)
    connections = sorted(len(held[pid]["established"]) for pid in workers)
    assert sum(connections) == 64, held
    assert connections[0] >= 16, connections
    assert server.stop() == 0
    [count] = rows(shop, "SELECT count(*) AS n FROM events WHERE message_id LIKE 'spread%'")
    assert count == {"n": 64}


def cpus_allowed(pid: int) -> set[str]:
    """The CPU lists the threads of a process may run on (Linux /proc)."""
    found = set()
    for status in Path(f"/proc/{pid}/task").glob("*/status"):
        with contextlib.suppress(OSError):  # a thread that just ended
            for line in status.read_text().splitlines():
                if line.startswith("Cpus_allowed_list:"):
                    found.add(line.split(":", 1)[1].strip())
    return found


def test_pinned_workers_each_keep_one_cpu(shop: Workspace, serve: Callable[..., Any]) -> None:
    server = serve(shop, "--workers", "2", "--pin-workers")
    info = orjson.loads((shop.data_dir / "server.json").read_bytes())
    auth = basic(write_key(shop))
    for n in range(10):
        body = orjson.dumps({"batch": [order(i, f"pin{n}") for i in range(10)]})
        assert HTTP.post(server.url + "/v1/batch", content=body, headers=auth).status_code == 200
    workers = [int(p) for p in subprocess.run(
        ["pgrep", "-f", f"_worker_main .* {shop.root} "], capture_output=True, text=True,
        check=False).stdout.split()]
    # every thread of a worker on its one CPU: worker i on the i-th allowed CPU
    pinned = [cpus_allowed(pid) for pid in workers]
    assert all(len(threads) == 1 for threads in pinned), pinned
    assert sorted(threads.pop() for threads in pinned) == sorted(map(str, worker_cpus(2)))
    # the main process (the loader) is not pinned: it runs on what the workers leave
    assert cpus_allowed(info["pid"]) == cpus_allowed(os.getpid())
    assert server.stop() == 0
    [count] = rows(shop, "SELECT count(*) AS n FROM events WHERE message_id LIKE 'pin%'")
    assert count == {"n": 100}


def test_pin_workers_needs_worker_processes(shop: Workspace) -> None:
    done = subprocess.run([sys.executable, "-m", "nerve", "--workspace", str(shop.root),
                           "serve", "--port", "0", "--pin-workers"],
                          capture_output=True, text=True, timeout=120, check=False)
    said = " ".join(done.stderr.split())
    assert done.returncode == 4, said  # ExitCode.INVALID
    assert "--pin-workers" in said
    assert "--workers 2 or more" in said


def test_worker_cpus_take_the_allowed_cpus_in_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {5, 2})
    assert worker_cpus(3) == [2, 5, 2]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_second_server_is_refused_with_a_clear_message(
        shop: Workspace, make_workspace: Callable[..., Workspace],
        serve: Callable[..., Any], workers: str) -> None:
    # with --workers, the port is held by a group of SO_REUSEPORT sockets, which another
    # group of the same user could join: a second server must be refused all the same
    server = serve(shop, "--workers", workers)
    nerve = [sys.executable, "-m", "nerve", "serve", "--port", str(server.port),
             "--workers", "2"]
    same = subprocess.run([*nerve[:3], "--workspace", str(shop.root), *nerve[3:]],
                          capture_output=True, text=True, timeout=120, check=False)
    said = " ".join(same.stderr.split())  # Rich wraps long lines
    assert same.returncode == 5, said  # ExitCode.UNAVAILABLE
    assert "already running" in said
    other = make_workspace()
    taken = subprocess.run([*nerve[:3], "--workspace", str(other.root), *nerve[3:]],
                           capture_output=True, text=True, timeout=120, check=False)
    said = " ".join(taken.stderr.split())
    assert taken.returncode == 5, said  # ExitCode.UNAVAILABLE: the port is busy
    assert f"cannot listen on 127.0.0.1:{server.port}" in said
