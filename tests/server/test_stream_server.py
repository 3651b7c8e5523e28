"""``nerve serve`` on a NATS JetStream log, with a real nats-server: stateless
``--collect-only`` replicas and the loading server feed one warehouse exactly once, through
a crash of the loading server and an outage of NATS itself."""

from __future__ import annotations

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
from serverkit import EVENTS, HTTP, Senders, basic, order, rows, write_key

from nerve.cli._common import Format
from nerve.cli._serve import _status_rows
from nerve.server.api.console import offline_status
from nerve.workspace import Workspace


@pytest.fixture
def nats_shop(make_workspace: Callable[..., Workspace], nats_server: Any,
              monkeypatch: pytest.MonkeyPatch) -> Workspace:
    # every replica hashes with the same key as the loading server
    monkeypatch.setenv("NERVE_SECRET", "a-secret-shared-by-every-collector")
    return make_workspace(EVENTS, extra_toml=f'[log]\nurl = "{nats_server.url}"\n')


def replica(ws: Workspace, tmp_path: Path, name: str) -> Workspace:
    """Another machine's checkout of the same workspace: nerve.toml and the catalog."""
    root = tmp_path / name
    root.mkdir()
    shutil.copy(ws.root / "nerve.toml", root / "nerve.toml")
    shutil.copytree(ws.events_dir, root / "events")
    return Workspace.load(root)


def send_with_sdk(url: str, key: str, prefix: str, n: int) -> list[str]:
    """``n`` events through the real analytics-python client; their message ids."""
    import segment.analytics as analytics

    errors: list[Any] = []
    client = analytics.Client(key, host=url, max_retries=0,
                              on_error=lambda error, batch: errors.append(error))
    ids = []
    for i in range(n):
        _, message = client.track(f"u{i % 9}", "order_completed",
                                  {"order_id": f"{prefix}{i}", "revenue": i},
                                  message_id=f"{prefix}-{i}")
        ids.append(message["messageId"])
    client.flush()
    client.shutdown()
    assert not errors
    return ids


def test_collectors_on_three_machines_feed_one_warehouse_exactly_once(
        nats_shop: Workspace, tmp_path: Path, serve: Callable[..., Any]) -> None:
    key = write_key(nats_shop)
    loading = serve(nats_shop, "--workers", "2")
    one = serve(replica(nats_shop, tmp_path, "replica-1"), "--collect-only")
    two = serve(replica(nats_shop, tmp_path, "replica-2"), "--collect-only", "--workers", "2")

    sent = []
    for server, prefix in ((loading, "l"), (one, "a"), (two, "b")):
        sent += send_with_sdk(server.url, key, prefix, 120)
    body = orjson.dumps({"batch": [order(i, "batch") for i in range(300)]})
    assert HTTP.post(two.url + "/v1/batch", content=body,
                     headers=basic(key)).status_code == 200
    sent += [f"batch-{i}" for i in range(300)]

    health = HTTP.get(one.url + "/health").json()
    assert health["status"] == "ok"
    refused = HTTP.post(one.url + "/v1/admin/sql", json={"sql": "SELECT 1"})
    assert refused.status_code == 404
    assert refused.json()["code"] == "collect_only"
    for server in (one, two):  # what a browser's analytics.js fetches first (cdnURL)
        settings = HTTP.get(f"{server.url}/v1/projects/{key}/settings").json()
        assert settings["integrations"]["Segment.io"]["apiHost"] == f"127.0.0.1:{server.port}/v1"
    assert not (one.workspace.data_dir / "server.json").exists()
    metrics = HTTP.get(loading.url + "/metrics").text  # the stream's unloaded bytes
    assert "nerve_log_backlog_bytes" in metrics
    accepted = [line for line in HTTP.get(two.url + "/metrics").text.splitlines()
                if line.startswith("nerve_events_accepted_total")]
    assert sum(float(line.rsplit(" ", 1)[1]) for line in accepted) == 420  # both workers

    for server in (one, two):  # replicas stop first: they have nothing to drain
        assert server.stop() == 0
    assert loading.stop() == 0
    ids = [r["message_id"] for r in rows(nats_shop, "SELECT message_id FROM events")]
    assert sorted(ids) == sorted(sent)  # each once, none lost, nothing else
    ledger = rows(nats_shop, 'SELECT writer, segment FROM loads GROUP BY ALL')
    assert ledger == [{"writer": "jetstream", "segment": "NERVE_EVENTS"}]


def test_collectors_keep_acknowledging_while_the_loading_server_is_dead(
        nats_shop: Workspace, tmp_path: Path, serve: Callable[..., Any]) -> None:
    auth = basic(write_key(nats_shop))
    loading = serve(nats_shop, "--workers", "2")
    collector = serve(replica(nats_shop, tmp_path, "replica"), "--collect-only")
    to_loading = Senders(loading.url, auth, "l", until_acked=2000)
    to_collector = Senders(collector.url, auth, "c", until_acked=2000)
    loading.kill()  # SIGKILL mid-load: workers die with it
    acked_before, failed = to_loading.stop()
    seen = len(to_collector.acked)
    deadline = time.monotonic() + 20
    while len(to_collector.acked) < seen + 2000 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(to_collector.acked) >= seen + 2000, "the collector stopped with the loader"
    acked_collector, failed_collector = to_collector.stop()

    restarted = serve(nats_shop, "--workers", "2")
    with httpx.Client(base_url=restarted.url, headers=auth) as http:
        for body in failed + failed_collector:  # what clients never saw acknowledged
            assert http.post("/v1/batch", content=body).status_code == 200
    assert collector.stop() == 0
    assert restarted.stop() == 0

    ids = [r["message_id"] for r in rows(nats_shop, "SELECT message_id FROM events")]
    assert len(ids) == len(set(ids)), "a message_id was loaded twice"
    missing = set(acked_before + acked_collector) - set(ids)
    assert not missing, f"{len(missing)} acknowledged events lost, e.g. {sorted(missing)[:3]}"


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_while_nats_is_down_ingest_answers_503_and_resumes_after(
        nats_shop: Workspace, nats_server: Any, serve: Callable[..., Any], how: str) -> None:
    auth = basic(write_key(nats_shop))
    server = serve(nats_shop)
    acked: list[str] = []
    sent: list[str] = []

    def post(prefix: str) -> httpx.Response:
        ids = [f"{prefix}-{i}" for i in range(50)]
        sent.extend(ids)
        answer = HTTP.post(server.url + "/v1/batch", headers=auth, timeout=30,
                           content=orjson.dumps({"batch": [order(i, prefix)
                                                            for i in range(50)]}))
        if answer.status_code == 200:
            acked.extend(ids)
        return answer

    assert post("before").status_code == 200
    getattr(nats_server, how)()  # a SIGKILL right after the 200: nats-server synced nothing
    time.sleep(0.5)  # the client sees the connection go
    started = time.monotonic()
    down = post("down")
    assert down.status_code == 503, down.text
    assert time.monotonic() - started < 2  # at once, not after ack_timeout_seconds (5 s)
    assert int(down.headers["retry-after"]) > 0
    assert down.json()["code"] == "unavailable"
    assert "unreachable" in down.json()["message"]
    assert HTTP.get(server.url + "/health").status_code == 200  # alive, answering
    # not ready: a load balancer sends the traffic elsewhere meanwhile
    unready = HTTP.get(server.url + "/ready")
    assert unready.status_code == 503
    assert unready.json()["code"] == "unavailable"
    assert int(unready.headers["retry-after"]) > 0

    nats_server.start()  # same port, same store: what it acknowledged is still there
    deadline = time.monotonic() + 30
    while post("after").status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert "after-0" in acked
    assert HTTP.get(server.url + "/ready").json() == {"status": "ready"}
    assert server.stop() == 0
    ids = [r["message_id"] for r in rows(nats_shop, "SELECT message_id FROM events")]
    assert len(ids) == len(set(ids))
    assert "before-49" in ids
    assert set(acked) <= set(ids) <= set(sent)


def test_the_backlog_503_names_the_stream_its_bound_and_its_bytes(
        nats_shop: Workspace, tmp_path: Path, serve: Callable[..., Any]) -> None:
    """Over a real nerve serve: the 503 had ``details: null``. A lone collector, nothing
    loading the stream, a bound of 1 byte: the first batch is taken, then refused."""
    ws = replica(nats_shop, tmp_path, "bounded")
    toml = ws.root / "nerve.toml"
    toml.write_text(toml.read_text().replace("[collector]\n",
                                             "[collector]\nmax_backlog_bytes = 1\n"))
    server = serve(Workspace.load(ws.root), "--collect-only")
    auth = basic(write_key(ws))
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.post("/v1/batch", json={"batch": [order(1)]},
                           headers=auth).status_code == 200
        deadline = time.monotonic() + 15
        while (answer := client.post("/v1/batch", json={"batch": [order(2)]},
                                     headers=auth)).status_code == 200:
            assert time.monotonic() < deadline, "never refused past max_backlog_bytes"
            time.sleep(0.2)
    assert answer.status_code == 503
    error = answer.json()
    assert error["code"] == "overloaded"
    details = error["details"]
    assert (details["log"], details["stream"], details["max_backlog_bytes"]) == (
        "jetstream", "NERVE_EVENTS", 1)
    assert details["backlog_bytes"] > 1
    assert server.stop() == 0


def test_collect_only_without_a_shared_log_is_refused(
        make_workspace: Callable[..., Workspace]) -> None:
    ws = make_workspace(EVENTS)
    done = subprocess.run([sys.executable, "-m", "nerve", "--workspace", str(ws.root),
                           "serve", "--collect-only", "--port", "0"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0
    assert "--collect-only needs a log that another server loads" in done.stderr
    assert "[log]" in done.stderr


def test_a_second_loading_server_on_the_same_stream_is_refused(
        nats_shop: Workspace, make_workspace: Callable[..., Workspace], nats_server: Any,
        serve: Callable[..., Any]) -> None:
    serve(nats_shop)
    other = make_workspace(EVENTS, extra_toml=f'[log]\nurl = "{nats_server.url}"\n')
    done = subprocess.run([sys.executable, "-m", "nerve", "--workspace", str(other.root),
                           "serve", "--port", "0"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0
    assert "stream 'NERVE_EVENTS' is loaded by another nerve serve" in done.stderr
    assert str(nats_shop.root) in done.stderr  # the holder's warehouse is named
    # refused, it leaves no empty warehouse behind (nerve status then showed 0 events)
    assert other.warehouse_file is not None
    assert not other.warehouse_file.exists()
    assert not other.warehouse_file.with_name(other.warehouse_file.name + ".wal").exists()


def test_a_server_with_another_secret_than_the_stream_is_refused(
        nats_shop: Workspace, tmp_path: Path, serve: Callable[..., Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A collector started without the shared NERVE_SECRET (its own .nerve/secret.key)
    pseudonymised under another key: one user's id, email or note got a second hash in
    the warehouse, silently. So did the loading server restarted without it."""
    loading = serve(nats_shop)
    ok = serve(replica(nats_shop, tmp_path, "same-key"), "--collect-only")
    assert ok.process is not None
    key = write_key(nats_shop)
    assert HTTP.post(ok.url + "/v1/batch", json={"batch": [order(1, "k")]},
                     headers=basic(key)).status_code == 200

    def start(ws: Workspace, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "nerve", "--workspace", str(ws.root),
                               "serve", "--port", "0", *args],
                              capture_output=True, text=True, timeout=60, check=False)

    monkeypatch.delenv("NERVE_SECRET")  # this checkout's own .nerve/secret.key, then another
    other = replica(nats_shop, tmp_path, "own-key")
    for env in (None, "a-secret-nobody-else-has"):
        if env is not None:
            monkeypatch.setenv("NERVE_SECRET", env)
        done = start(other, "--collect-only")
        assert done.returncode != 0
        assert "not the key the stream 'NERVE_EVENTS' is pseudonymised with" in done.stderr
        assert "NERVE_SECRET" in done.stderr
        assert "a-secret" not in done.stderr  # neither key is shown
    assert loading.stop() == 0
    done = start(nats_shop)  # the loading server itself, with the wrong key
    assert done.returncode != 0
    assert "not the key the stream 'NERVE_EVENTS' is pseudonymised with" in done.stderr
    monkeypatch.setenv("NERVE_SECRET", "a-secret-shared-by-every-collector")
    assert serve(nats_shop).process is not None  # the right key: it starts


def test_forget_through_a_server_on_nats_says_nothing_of_a_local_log(
        nats_shop: Workspace, serve: Callable[..., Any]) -> None:
    server = serve(nats_shop)
    send_with_sdk(server.url, write_key(nats_shop), "f", 18)
    done = subprocess.run([sys.executable, "-m", "nerve", "--workspace", str(nats_shop.root),
                           "forget", "--user-id", "u1", "--format", "json"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert orjson.loads(done.stdout)["rows"]["events"] == 2  # f-1 and f-10 (u1 of u0..u8)
    # the stream's loaded messages are purged: no copy waits in a .nerve/log (there is none)
    assert ".nerve/log" not in done.stderr
    assert not (nats_shop.data_dir / "log").exists()
    assert server.stop() == 0


def test_status_on_a_collect_only_machine_says_the_warehouse_is_elsewhere(
        nats_shop: Workspace, tmp_path: Path, serve: Callable[..., Any]) -> None:
    # a machine of collectors: no warehouse file. nerve status made an empty one and
    # showed 0 events, said no server ran, and counted nothing the collector took
    machine = replica(nats_shop, tmp_path, "collectors")
    collector = serve(machine, "--collect-only")
    body = orjson.dumps({"batch": [order(i, "status") for i in range(30)]})
    assert HTTP.post(collector.url + "/v1/batch", content=body,
                     headers=basic(write_key(machine))).status_code == 200
    status = offline_status(machine)
    assert status["warehouse"] is None
    assert machine.warehouse_file is not None
    assert not machine.warehouse_file.exists()
    shown = {r["what"]: r["value"] for r in _status_rows(status, Format.table)}
    assert "events in the warehouse" not in shown
    assert "not on this machine" in shown["warehouse"]
    assert "--collect-only" in shown["warehouse"]
    assert collector.process is not None
    assert f"--collect-only runs here (pid {collector.process.pid}" in shown["server"]
    assert shown["accepted since the collectors started"] == "30"
    assert collector.stop() == 0


@pytest.mark.parametrize("args", [[], ["--collect-only"]])
def test_serve_without_nats_exits_5_naming_the_url_and_leaves_no_warehouse(
        make_workspace: Callable[..., Workspace], nats_server: Any, args: list[str]) -> None:
    """NATS out of reach is an outage to wait out (5, UNAVAILABLE), not a mistake in the
    input (4, INVALID): a supervisor or a script tells them apart by the code."""
    url = f"nats://nerve:hunter2@127.0.0.1:{nats_server.port}"
    ws = make_workspace(EVENTS, extra_toml=f'[log]\nurl = "{url}"\n')
    nats_server.stop()
    done = subprocess.run([sys.executable, "-m", "nerve", "--workspace", str(ws.root),
                           "serve", "--port", "0", *args],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 5, done.stderr
    assert f"cannot reach NATS at nats://127.0.0.1:{nats_server.port}" in done.stderr
    assert "hunter2" not in done.stderr
    assert "Traceback" not in done.stderr
    assert ws.warehouse_file is not None
    assert not ws.warehouse_file.exists()


def test_status_on_a_collect_only_machine_while_nats_is_down_says_so(
        nats_shop: Workspace, nats_server: Any, tmp_path: Path,
        serve: Callable[..., Any]) -> None:
    from tests.conftest import run_nerve

    machine = replica(nats_shop, tmp_path, "collectors")
    collector = serve(machine, "--collect-only")
    body = orjson.dumps({"batch": [order(i, "down") for i in range(5)]})
    assert HTTP.post(collector.url + "/v1/batch", content=body,
                     headers=basic(write_key(machine))).status_code == 200
    nats_server.stop()
    shown = run_nerve(machine.root, "status", "--format", "json")
    assert shown.exit_code == 0, shown.stderr
    status = orjson.loads(shown.stdout)
    assert status["warehouse"] is None
    assert status["log"]["backlog_bytes"] is None
    assert f"cannot reach NATS at {nats_server.url}" in status["log"]["unreachable"]
    assert status["collector"]["accepted"] == 5
    table = run_nerve(machine.root, "status")
    assert table.exit_code == 0, table.stderr
    assert "cannot reach NATS" in table.stdout
    assert "not on this machine" in table.stdout
    assert machine.warehouse_file is not None
    assert not machine.warehouse_file.exists()


def test_forget_without_nats_exits_5_and_leaves_no_warehouse(
        make_workspace: Callable[..., Workspace], nats_server: Any) -> None:
    # a fresh workspace on a stream whose NATS is down: forget made an empty warehouse
    # file before finding the log out of reach, and the next nerve status showed 0 events
    ws = make_workspace(EVENTS, extra_toml=f'[log]\nurl = "{nats_server.url}"\n')
    nats_server.stop()
    done = subprocess.run([sys.executable, "-m", "nerve", "--workspace", str(ws.root),
                           "forget", "--user-id", "u1"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 5, done.stderr
    assert f"cannot reach NATS at {nats_server.url}" in done.stderr
    assert "Traceback" not in done.stderr
    assert ws.warehouse_file is not None
    assert not ws.warehouse_file.exists()
    assert not ws.warehouse_file.with_name(ws.warehouse_file.name + ".wal").exists()
