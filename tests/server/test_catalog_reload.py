"""A running ``nerve serve`` (one process, or ``--workers 2``) follows edits of events/:
a new event is accepted and gets its typed view, a broken file keeps the last good
catalog in use and is reported, and a changed PII class protects the next events.

Every wait polls for a state the server reports (its log lines, ``/v1/status``, the
warehouse) within a generous bound; nothing asserts how fast it is.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from serverkit import EVENTS, HTTP, basic, order, write_key
from test_server_crash import worker_pids

from nerve.workspace import Workspace

#: seconds any single wait may take before the test fails (a loaded CI machine is slow)
BOUND = 60.0
#: look at events/ often: the tests wait for the reload, not for the poll interval
FAST_RELOAD = "[catalog]\nreload_seconds = 0.2\n"
#: what each process logs when the edited catalog does not load
NOT_LOADED = "the catalog did not load; still serving with the previous one until events/ is fixed"

SONG_SKIPPED = """\
name: song_skipped
description: A listener skips the song that is playing.
owner: player
purpose: analytics
version: 1
retention: 400d
properties:
  song_id: {type: string, required: true, pii: none}
  position_ms: {type: integer, minimum: 0, pii: none}
"""


def _admin(ws: Workspace) -> dict[str, str]:
    info = orjson.loads((ws.data_dir / "server.json").read_bytes())
    return {"Authorization": f"Bearer {info['admin_token']}"}


def _sql(url: str, ws: Workspace, query: str, *, masked: bool = False) -> list[dict[str, Any]]:
    headers = _admin(ws) | ({"x-nerve-view": "masked"} if masked else {})
    answer = HTTP.post(url + "/v1/admin/sql", headers=headers, json={"query": query},
                       timeout=30)
    assert answer.status_code == 200, answer.text
    rows: list[dict[str, Any]] = answer.json()["rows"]
    return rows


def _wait(what: str, done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + BOUND
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _processes(workers: int) -> set[str]:
    return {"main"} | {f"worker {i}" for i in range(1, workers + 1) if workers > 1}


def _logged(server: Any, message: str, since: int) -> set[str]:
    """The processes that logged ``message`` after byte ``since`` of the server's log."""
    found = set()
    for line in server.output().encode()[since:].splitlines():
        if line.startswith(b"{") and b'"message":"' + message.encode() + b'"' in line:
            found.add(orjson.loads(line)["role"])
    return found


def _wait_logged(server: Any, message: str, since: int, workers: int) -> None:
    expected = _processes(workers)
    _wait(f"{message!r} from {sorted(expected)}",
          lambda: _logged(server, message, since) >= expected)


def _send(url: str, ws: Workspace, messages: list[dict[str, Any]]) -> None:
    """One message per request, each on a new connection: with workers, the kernel
    spreads connections over them, so every process's catalog is exercised."""
    for message in messages:
        answer = HTTP.post(url + "/v1/batch", json={"batch": [message]},
                           headers=basic(write_key(ws)), timeout=30)
        assert answer.status_code == 200, answer.text


def _landed(url: str, ws: Workspace, ids: list[str]) -> tuple[int, int]:
    """(rows in events, rows in quarantine) among ``ids``, once all are loaded."""
    listed = ", ".join(f"'{i}'" for i in ids)
    counts: dict[str, int] = {}

    def loaded() -> bool:
        row = _sql(url, ws, f"SELECT (SELECT count(*) FROM events WHERE message_id IN "
                            f"({listed})) AS ok, (SELECT count(*) FROM quarantine WHERE "
                            f"message_id IN ({listed})) AS bad")[0]
        counts.update(row)
        return row["ok"] + row["bad"] >= len(ids)

    _wait(f"{len(ids)} messages loaded", loaded)
    return counts["ok"], counts["bad"]


def _skip(i: int, prefix: str) -> dict[str, Any]:
    return {"type": "track", "event": "song_skipped", "userId": f"u{i}",
            "messageId": f"{prefix}-{i}", "timestamp": "2026-11-28T10:00:00Z",
            "properties": {"song_id": f"s{i}", "position_ms": 1000 * i}}


@pytest.mark.parametrize("workers", [1, 2])
def test_a_new_event_file_is_accepted_and_gets_its_typed_view(
        make_workspace: Callable[..., Workspace], serve: Callable[..., Any],
        workers: int) -> None:
    ws = make_workspace(EVENTS, extra_toml=FAST_RELOAD)
    server = serve(ws, "--workers", str(workers))
    _send(server.url, ws, [_skip(0, "before")])
    assert _landed(server.url, ws, ["before-0"]) == (0, 1)  # not cataloged yet

    mark = len(server.output().encode())
    (ws.events_dir / "song_skipped.yaml").write_text(SONG_SKIPPED, encoding="utf-8")
    _wait_logged(server, "catalog reloaded", mark, workers)

    sent = [_skip(i, "after") for i in range(12)]
    _send(server.url, ws, sent)
    assert _landed(server.url, ws, [m["messageId"] for m in sent]) == (12, 0)
    _wait("the typed view evt_song_skipped", lambda: _sql(
        server.url, ws, "SELECT count(*) AS n FROM duckdb_views() "
                        "WHERE view_name = 'evt_song_skipped'")[0]["n"] == 1)
    rows = _sql(server.url, ws, "SELECT song_id, position_ms FROM evt_song_skipped "
                                "ORDER BY position_ms")
    assert rows == [{"song_id": f"s{i}", "position_ms": 1000 * i} for i in range(12)]
    status = HTTP.get(server.url + "/v1/status", headers=_admin(ws)).json()
    assert status["catalog"]["events"] == 3
    assert status["catalog"]["problems"] == []


@pytest.mark.parametrize("workers", [1, 2])
def test_a_broken_file_keeps_the_last_good_catalog_and_is_reported(
        make_workspace: Callable[..., Workspace], serve: Callable[..., Any],
        workers: int) -> None:
    ws = make_workspace(EVENTS, extra_toml=FAST_RELOAD)
    server = serve(ws, "--workers", str(workers))
    path: Path = ws.events_dir / "order_completed.yaml"
    good = path.read_text(encoding="utf-8")

    mark = len(server.output().encode())
    # a typo in a field, and a new event whose file is fine: nothing of the edit applies
    path.write_text(good.replace("revenue: {type: number", "revenue: {type: nmber"),
                    encoding="utf-8")
    (ws.events_dir / "song_skipped.yaml").write_text(SONG_SKIPPED, encoding="utf-8")
    _wait_logged(server, NOT_LOADED, mark, workers)

    status = HTTP.get(server.url + "/v1/status", headers=_admin(ws)).json()
    [problem] = status["catalog"]["problems"]
    assert f"{path}:9:" in problem
    assert "order_completed.revenue.type" in problem
    assert "'nmber'" in problem
    assert status["catalog"]["events"] == 2  # still the one the server started with
    # the old catalog still judges: a valid order is accepted, a bad one quarantined,
    # and the new event, whose file is fine, waits for the whole catalog to load
    _send(server.url, ws, [order(1, "ok"), order(2, "bad", properties={"revenue": "x"}),
                           _skip(3, "skip")])
    assert _landed(server.url, ws, ["ok-1"]) == (1, 0)
    assert _landed(server.url, ws, ["bad-2"]) == (0, 1)
    assert _landed(server.url, ws, ["skip-3"]) == (0, 1)

    mark = len(server.output().encode())
    path.write_text(good, encoding="utf-8")  # fixed: the next change is tried again
    _wait_logged(server, "catalog reloaded", mark, workers)
    status = HTTP.get(server.url + "/v1/status", headers=_admin(ws)).json()
    assert status["catalog"]["problems"] == []
    assert status["catalog"]["events"] == 3
    _send(server.url, ws, [_skip(4, "skip")])
    assert _landed(server.url, ws, ["skip-4"]) == (1, 0)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_changed_pii_class_protects_the_next_events(
        make_workspace: Callable[..., Workspace], serve: Callable[..., Any],
        workers: int) -> None:
    ws = make_workspace(EVENTS, extra_toml=FAST_RELOAD)
    server = serve(ws, "--workers", str(workers))
    _send(server.url, ws, [order(1, "old")])
    _landed(server.url, ws, ["old-1"])

    mark = len(server.output().encode())
    path = ws.events_dir / "order_completed.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace(
        "order_id: {type: string, required: true, pii: none}",
        "order_id: {type: string, required: true, pii: personal}"), encoding="utf-8")
    _wait_logged(server, "catalog reloaded", mark, workers)

    sent = [order(i, "new") for i in range(8)]
    _send(server.url, ws, sent)
    _landed(server.url, ws, [m["messageId"] for m in sent])
    stored = {r["message_id"]: r["order_id"] for r in _sql(
        server.url, ws, "SELECT message_id, properties->>'order_id' AS order_id FROM events")}
    assert stored["old-1"] == "o1"  # taken under the old rules, kept as it was
    for i in range(8):  # personal now: hashed before it was written ([privacy] personal)
        assert stored[f"new-{i}"].startswith("h:"), stored
    # the readers' view masks the property from now on, old rows included
    masked = _sql(server.url, ws, "SELECT properties->>'order_id' AS order_id FROM events",
                  masked=True)
    assert len(masked) == 9
    assert all(r["order_id"].startswith("m:") for r in masked), masked


def test_a_worker_restarted_while_events_does_not_load_serves_the_last_good_catalog(
        make_workspace: Callable[..., Workspace], serve: Callable[..., Any]) -> None:
    ws = make_workspace(EVENTS, extra_toml=FAST_RELOAD)
    server = serve(ws, "--workers", "2")
    path: Path = ws.events_dir / "order_completed.yaml"
    mark = len(server.output().encode())
    path.write_text(path.read_text(encoding="utf-8").replace(
        "revenue: {type: number", "revenue: {type: nmber"), encoding="utf-8")
    _wait_logged(server, NOT_LOADED, mark, 2)

    before = worker_pids(ws)
    victim = min(before)
    os.kill(victim, signal.SIGKILL)  # a crash, while events/ does not load
    _wait("a worker in the killed one's place", lambda: len(now := worker_pids(ws)) == 2
          and victim not in now)
    fallback = "events/ does not load; this worker starts with the catalog the server is " \
        "serving with"
    _wait("the new worker's warning", lambda: len(_logged(server, fallback, mark)) == 1)
    serving = worker_pids(ws)
    time.sleep(2)  # a worker that could not start would have been replaced again by now
    assert worker_pids(ws) == serving, server.output()

    # fresh connections reach both workers: both judge by the last good catalog
    _send(server.url, ws, [order(i, "ok") for i in range(12)])
    _send(server.url, ws, [order(12 + i, "bad", properties={"revenue": "x"})
                           for i in range(12)])
    assert _landed(server.url, ws, [f"ok-{i}" for i in range(12)]) == (12, 0)
    assert _landed(server.url, ws, [f"bad-{12 + i}" for i in range(12)]) == (0, 12)


def test_an_edit_that_strands_an_allow_sensitive_entry_is_logged(
        make_workspace: Callable[..., Workspace], serve: Callable[..., Any]) -> None:
    """A sensitive property renamed while serving: the entry that kept it names nothing,
    and the renamed property is dropped. The reload applies the edit and says so."""
    ws = make_workspace({**EVENTS, "song_skipped.yaml": SONG_SKIPPED.replace(
        "pii: none}\n  position", "pii: sensitive, handling: drop}\n  position")},
        extra_toml=FAST_RELOAD + '[privacy]\nallow_sensitive = ["song_skipped.song_id"]\n')
    server = serve(ws)
    mark = len(server.output().encode())
    path = ws.events_dir / "song_skipped.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("song_id:", "track_id:"),
                    encoding="utf-8")
    _wait_logged(server, "catalog reloaded", mark, 1)
    warning = "[privacy] allow_sensitive names no sensitive property of the edited catalog"
    _wait("the allow_sensitive warning", lambda: any(
        warning in line and "song_skipped.song_id" in line
        for line in server.output().encode()[mark:].decode().splitlines()))
