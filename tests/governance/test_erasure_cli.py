"""``nerve forget`` and ``nerve expire`` as a user runs them: through a running ``nerve
serve`` (two workers, real HTTP), and on the workspace's files when no server runs."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
from click.testing import Result
from tests.conftest import run_nerve
from tests.governance.test_erasure import IDENTIFY, ORDER, row, write
from tests.server.serverkit import basic, rows, searchable, write_key

from nerve.audit import read_records
from nerve.erasure import retention_enforced
from nerve.workspace import Workspace


def nerve(ws: Workspace, *args: str) -> Result:
    return run_nerve(ws.root, *args)


def order(i: int, user: str, anonymous: str) -> dict[str, Any]:
    return {"type": "track", "event": "order_completed", "userId": user,
            "anonymousId": anonymous, "messageId": f"m-{user}-{i}",
            "properties": {"order_id": f"o{i}"}}


def test_forget_through_a_running_server_deletes_what_was_just_acknowledged(
        make_workspace: Callable[..., Workspace], serve: Callable[..., Any]) -> None:
    ws = make_workspace({"order_completed.yaml": ORDER, "identify.yaml": IDENTIFY})
    server = serve(ws, "--workers", "2")
    batch = [order(i, user, f"dev-{user}") for user in ("ann", "bob") for i in range(30)]
    answer = httpx.post(f"{server.url}/v1/batch", json={"batch": batch},
                        headers=basic(write_key(ws)), timeout=30)
    assert answer.status_code == 200
    # at once: the events are in the log, maybe not yet in the warehouse

    # a misspelt dry_run was ignored, and bob's rows deleted for real
    token = orjson.loads((ws.data_dir / "server.json").read_bytes())["admin_token"]
    for path, body in (("forget", {"user_ids": ["bob"], "dryRun": True}),
                       ("expire", {"dry-run": True})):
        typo = httpx.post(f"{server.url}/v1/admin/{path}", json=body, timeout=30,
                          headers={"Authorization": f"Bearer {token}"})
        assert typo.status_code == 400, typo.text
        assert typo.json()["code"] == "invalid_field"
        assert "unknown field(s) d" in typo.json()["message"]
        assert "dry_run" in typo.json()["message"]

    done = nerve(ws, "forget", "--user-id", "ann", "--format", "json")
    assert done.exit_code == 0, done.stderr
    erasure = orjson.loads(done.stdout)
    assert (erasure["kind"], erasure["rows"]["events"]) == ("forget", 30)
    # the copies in the log's open segments outlive the command while the server runs
    assert "stop the server for them to go now" in done.stderr

    preview = nerve(ws, "expire", "--dry-run", "--format", "json")
    assert preview.exit_code == 0, preview.stderr
    assert orjson.loads(preview.stdout)["dry_run"] is True
    refused = nerve(ws, "compact")  # the server holds the file
    assert refused.exit_code == 5
    assert "stop it" in refused.stderr
    assert server.stop() == 0
    compacted = nerve(ws, "compact")
    assert compacted.exit_code == 0, compacted.stderr
    assert "compacted" in compacted.stdout
    assert [r["via"] for r in read_records(ws) if r["action"] == "nerve compact"] == ["local"]
    left = rows(ws, "SELECT user_id, count(*) AS n FROM events GROUP BY user_id")
    assert left == [{"user_id": "bob", "n": 30}]
    assert rows(ws, "SELECT kind, events FROM erasures") == [{"kind": "forget", "events": 30}]


def visit(user: str, visit: int) -> list[dict[str, Any]]:
    """A patient's visit: on the family's tablet before signing in, then signed in, and
    from her old login, merged into her account by an alias."""
    tablet = "anon-tablet-3003"
    return [
        {"type": "track", "event": "order_completed", "anonymousId": tablet,
         "messageId": f"m-{user}-{visit}-a", "properties": {"order_id": "o1"}},
        {"type": "identify", "userId": user, "anonymousId": tablet,
         "messageId": f"m-{user}-{visit}-i", "traits": {"plan": "basic"}},
        {"type": "track", "event": "order_completed", "userId": user, "anonymousId": tablet,
         "messageId": f"m-{user}-{visit}-o", "properties": {"order_id": "o2"}},
        {"type": "track", "event": "order_completed", "userId": f"old-login-{user}",
         "messageId": f"m-{user}-{visit}-l", "properties": {"order_id": "o3"}},
        {"type": "alias", "previousId": f"old-login-{user}", "userId": user,
         "messageId": f"m-{user}-{visit}-x"},
        # her father, signed in on the same tablet: he stays
        {"type": "track", "event": "order_completed", "userId": "keeper-7002",
         "anonymousId": tablet, "messageId": f"m-keeper-{visit}",
         "properties": {"order_id": "o4"}},
    ]


def holders(ws: Workspace, value: str) -> list[str]:
    """The files under the workspace holding ``value``, log frames decompressed."""
    return [str(p.relative_to(ws.root)) for p in ws.root.rglob("*")
            if p.is_file() and value.encode() in searchable(p)]


def test_a_forgotten_user_is_in_no_file_of_the_workspace_with_the_server_stopped(
        make_workspace: Callable[..., Workspace], serve: Callable[..., Any]) -> None:
    ws = make_workspace({"order_completed.yaml": ORDER, "identify.yaml": IDENTIFY})
    forgotten = ("patient-3003", "old-login-patient-3003")
    for visit_number, stop in enumerate(("clean", "kill")):
        server = serve(ws, "--workers", "2")
        answer = httpx.post(f"{server.url}/v1/batch", headers=basic(write_key(ws)),
                            json={"batch": visit("patient-3003", visit_number)}, timeout=30)
        assert answer.status_code == 200, answer.text
        if stop == "clean":
            assert server.stop() == 0
            # the final drain loaded the log, and deleted the segments its writers left
            assert [p.name for p in ws.log_dir.rglob("*") if ".seg" in p.name] == []
        else:
            server.kill()  # a crash: the workers' segments stay, with her events
            assert all(holders(ws, value) for value in forgotten)

    done = nerve(ws, "forget", "--user-id", "patient-3003", "--format", "json")
    assert done.exit_code == 0, done.stderr
    erasure = orjson.loads(done.stdout)
    assert erasure["rows"] == {"events": 10, "quarantine": 0}
    assert (erasure["detail"]["aliased_ids"], erasure["detail"]["linked_anonymous_ids"]) \
        == (1, 1)
    compacted = nerve(ws, "compact")
    assert compacted.exit_code == 0, compacted.stderr

    for value in forgotten:
        assert holders(ws, value) == [], value
    left = rows(ws, "SELECT user_id, anonymous_id FROM events UNION ALL "
                    "SELECT user_id, anonymous_id FROM quarantine")
    assert left == [{"user_id": "keeper-7002", "anonymous_id": "anon-tablet-3003"}] * 2


def test_without_a_server_forget_drains_the_log_itself(
        make_workspace: Callable[..., Workspace]) -> None:
    ws = make_workspace({"order_completed.yaml": ORDER})
    write(ws, [row("ann", "dev-a"), row("ann"), row("bob")])  # in the log only, never loaded

    preview = nerve(ws, "forget", "-u", "ann", "--dry-run")
    assert preview.exit_code == 0, preview.stderr
    assert "would delete: 2 events, 0 quarantined rows" in preview.stdout
    assert "linked: 0 ids merged into them by alias, 1 devices found on" in preview.stdout
    done = nerve(ws, "forget", "-u", "ann")
    assert done.exit_code == 0, done.stderr
    assert "deleted: 2 events" in done.stdout
    assert "open segments" not in done.stderr  # no server: the log was drained and emptied
    assert rows(ws, "SELECT user_id FROM events") == [{"user_id": "bob"}]
    assert nerve(ws, "quarantine", "replay", "--dry-run").exit_code == 0
    assert [r["request"] for r in read_records(ws)
            if r["action"] == "nerve quarantine replay"] == [{"event": None, "dry_run": True}]


def test_expire_prints_what_it_deleted_by_event(
        make_workspace: Callable[..., Workspace]) -> None:
    ws = make_workspace({"order_completed.yaml": ORDER})
    write(ws, [row("a", age_days=400), row("b", age_days=1)])  # in the log: loaded first
    done = nerve(ws, "expire")
    assert done.exit_code == 0, done.stderr
    assert "order_completed" in done.stdout
    assert "deleted: 1 events" in done.stdout
    assert rows(ws, "SELECT user_id FROM events") == [{"user_id": "b"}]


def test_forget_needs_someone_to_forget(make_workspace: Callable[..., Workspace]) -> None:
    ws = make_workspace({})
    done = nerve(ws, "forget")
    assert done.exit_code == 4
    assert "--user-id" in done.stderr
    assert "[privacy]" in nerve(ws, "forget", "--help").stdout  # not eaten as markup


def thread_names(pid: int) -> set[str]:
    """The OS names of a process's threads (nerve's background threads name theirs)."""
    names = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):  # a thread that just ended
            names.add((task / "comm").read_text().strip())
    return names


def test_the_daily_retention_job_can_be_turned_off(
        make_workspace: Callable[..., Workspace], serve: Callable[..., Any]) -> None:
    on = make_workspace({"order_completed.yaml": ORDER})
    off = make_workspace({"order_completed.yaml": ORDER},
                         extra_toml="[privacy]\nenforce_retention = false\n")
    assert retention_enforced(on)
    assert not retention_enforced(off)
    threads = {}
    for label, ws in (("on", on), ("off", off)):
        server = serve(ws, "--workers", "2")
        pid = orjson.loads((ws.data_dir / "server.json").read_bytes())["pid"]
        deadline = time.monotonic() + 10  # each thread names itself once it runs
        while time.monotonic() < deadline and not {"nerve-loader", "nerve-checks",
                                                    "nerve-live"} <= thread_names(pid):
            time.sleep(0.05)
        if label == "on":
            while time.monotonic() < deadline and "nerve-retention" not in thread_names(pid):
                time.sleep(0.05)
        else:
            time.sleep(1.0)  # time enough for a retention thread, had one started
        threads[label] = thread_names(pid)
        server.stop()
    assert "nerve-retention" in threads["on"]
    assert "nerve-retention" not in threads["off"]
    assert "nerve-loader" in threads["off"]


def test_expire_names_the_file_and_line_of_a_bad_retention(
        make_workspace: Callable[..., Workspace]) -> None:
    ws = make_workspace({"order_completed.yaml": ORDER})
    with (ws.root / "nerve.toml").open("a") as toml:
        toml.write('\n[privacy]\nuncataloged_retention = "2 weeks"\n')
    line = (ws.root / "nerve.toml").read_text().splitlines().index(
        'uncataloged_retention = "2 weeks"') + 1
    done = nerve(ws, "expire")
    assert done.exit_code == 4
    assert done.stderr.startswith(f"error: {ws.root / 'nerve.toml'}:{line}: [privacy] "
                                  "uncataloged_retention: expected a retention like 400d")


def test_status_shows_the_last_retention_run(make_workspace: Callable[..., Workspace]) -> None:
    ws = make_workspace({"order_completed.yaml": ORDER})
    write(ws, [row("a", age_days=400), row("b", age_days=1)])
    before = orjson.loads(nerve(ws, "status", "--format", "json").stdout)["retention"]
    assert (before["enforced"], before["last_run"], before["failing"]) == (True, None, None)
    nerve(ws, "forget", "-u", "nobody")  # loads the log (and deletes nothing)
    assert nerve(ws, "expire").exit_code == 0
    status = nerve(ws, "status", "--format", "json")
    assert status.exit_code == 0, status.stderr
    after = orjson.loads(status.stdout)["retention"]
    assert after["last_run"] is not None
    assert after["deleted"] == {"events": 1, "quarantine": 0}


def test_a_users_file_skips_comments_and_blank_lines(
        make_workspace: Callable[..., Workspace], tmp_path: Path) -> None:
    """A `# comment` line was forgotten as a user id."""
    ws = make_workspace({"order_completed.yaml": ORDER})
    ids = tmp_path / "requests.txt"
    ids.write_text("# erasure requests of 2026-11\n\nann\n   # bob asked, then withdrew\nbob\n")
    done = nerve(ws, "forget", "--users-file", str(ids), "--dry-run", "--format", "json")
    assert done.exit_code == 0, done.stderr
    assert orjson.loads(done.stdout)["detail"]["user_ids"] == 2


def test_forget_says_when_an_id_is_on_no_row(
        make_workspace: Callable[..., Workspace]) -> None:
    """A misspelt id deleted nothing, and the answer read like a user without data."""
    ws = make_workspace({"order_completed.yaml": ORDER})
    done = nerve(ws, "forget", "--user-id", "pat-07", "--user-id", "pat-08")
    assert done.exit_code == 0, done.stderr
    assert "deleted: 0 events" in done.stdout
    assert "note: 2 of the 2 ids given are on no row" in " ".join(done.stderr.split())
    assert orjson.loads(nerve(ws, "forget", "-u", "pat-07", "--format", "json").stdout)[
        "detail"]["ids_not_found"] == 1


def test_a_command_through_a_server_started_before_an_edit_of_nerve_toml_says_so(
        make_workspace: Callable[..., Workspace], serve: Callable[..., Any]) -> None:
    """`uncataloged_retention = "90d"` added while the server ran: `nerve expire` went
    through the server, which applies the nerve.toml it started with, and answered 0 rows
    with nothing saying why; without the server it deleted them."""
    ws = make_workspace({"order_completed.yaml": ORDER})
    serve(ws)
    before = nerve(ws, "expire", "--dry-run", "--format", "json")
    assert before.exit_code == 0, before.stderr
    assert "nerve.toml changed" not in before.stderr
    time.sleep(0.05)  # a later modification time than server.json's
    with (ws.root / "nerve.toml").open("a", encoding="utf-8") as f:
        f.write('\n[privacy]\nuncataloged_retention = "90d"\n')
    after = nerve(ws, "expire", "--dry-run", "--format", "json")
    assert after.exit_code == 0, after.stderr
    assert orjson.loads(after.stdout)["dry_run"] is True  # stdout stays JSON only
    assert "nerve.toml changed after nerve serve" in after.stderr
    assert "restart it" in after.stderr


def test_forget_names_the_files_the_log_set_aside(
        make_workspace: Callable[..., Workspace]) -> None:
    """A damaged segment set aside (``.corrupt``) still holds the events after the damage,
    which were never loaded: forget cannot reach them, and said nothing of it."""
    ws = make_workspace({"order_completed.yaml": ORDER})
    write(ws, [row("bob")])
    clean = nerve(ws, "forget", "-u", "ann")
    assert clean.exit_code == 0, clean.stderr
    assert "set aside" not in clean.stderr
    write(ws, [row("ann", "dev-a")], writer="w2")
    segment, = (ws.log_dir / "w2").glob("*.seg")
    segment.rename(segment.with_name(segment.name + ".corrupt"))  # as the loader does
    done = nerve(ws, "forget", "-u", "ann")
    assert done.exit_code == 0, done.stderr
    note = " ".join(done.stderr.split())
    kept = f".nerve/log/w2/{segment.name}.corrupt"
    assert f"note: the log keeps 1 file set aside for an operator ({kept})" in note
    assert "may still hold these users' events" in note
    assert "set aside" not in nerve(ws, "forget", "-u", "ann", "--dry-run").stderr
