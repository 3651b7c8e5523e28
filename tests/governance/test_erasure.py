"""Forgetting users and enforcing retention, on a real DuckDB warehouse and a real log.

Rows reach the warehouse as in production: written to the event log by a ``LogWriter``,
then loaded by the workspace's ``Loader``. Some are left in the log, unloaded, when the
forget starts: they must be deleted too.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from tests.log.conftest import envelope

from nerve.catalog import Catalog
from nerve.envelope import to_record_batch
from nerve.erasure import RetentionJob, compact, expire, expire_rows, forget, forget_users
from nerve.erasure._erase import ALIAS_HOPS
from nerve.errors import PayloadError
from nerve.loader import Loader
from nerve.log import LogWriter, list_segments, read_segment
from nerve.pipeline import PrivacyPolicy, pseudonymise
from nerve.server._commit import seal_old_segments
from nerve.warehouse import Warehouse
from nerve.workspace import Workspace

ORDER = """\
name: order_completed
description: An order.
owner: commerce
purpose: analytics
version: 1
retention: 30d
properties:
  order_id: {type: string, pii: none}
"""

IDENTIFY = """\
name: identify
type: identify
description: Who the user is.
owner: growth
purpose: analytics
version: 1
retention: forever
properties:
  plan: {type: string, pii: none}
"""

NOW = datetime(2026, 11, 28, 12, tzinfo=UTC)


def micros(at: datetime) -> int:
    return int(at.timestamp() * 1_000_000)


def row(user: str | None, anonymous: str | None = None, *, event: str = "order_completed",
        type_: str = "track", age_days: float = 1, **fields: Any) -> dict[str, Any]:
    at = micros(NOW - timedelta(days=age_days))
    return envelope(0, user_id=user, anonymous_id=anonymous, event=event, type=type_,
                    timestamp=at, original_timestamp=at, sent_at=at,
                    received_at=micros(datetime.now(UTC)), **fields)


@pytest.fixture
def workspace(make_workspace: Callable[..., Workspace]) -> Workspace:
    return make_workspace({"order_completed.yaml": ORDER, "identify.yaml": IDENTIFY})


@pytest.fixture
def warehouse(workspace: Workspace) -> Iterator[Warehouse]:
    wh = Warehouse.for_workspace(workspace)
    yield wh
    wh.close()


@pytest.fixture
def loader(workspace: Workspace, warehouse: Warehouse) -> Loader:
    return Loader.for_workspace(workspace, warehouse)


def write(workspace: Workspace, rows: list[dict[str, Any]], writer: str = "w1") -> None:
    with LogWriter(workspace.log_dir, writer) as log:
        log.append(to_record_batch(rows))  # type: ignore[arg-type]


def count(warehouse: Warehouse, table: str, where: str = "true") -> int:
    return int(warehouse.query(f"SELECT count(*) AS n FROM {table} WHERE {where}")
               .to_pylist()[0]["n"])


def test_forget_deletes_a_users_rows_and_their_devices_including_rows_still_in_the_log(
        workspace: Workspace, warehouse: Warehouse, loader: Loader) -> None:
    write(workspace, [
        row(None, "dev-1"),                       # before signing in, on their phone
        row("ann", "dev-1"), row("ann", "dev-2"),
        row("bob", "dev-9"), row(None, "dev-8"),
        row("ann", "dev-1", violations='[{"rule":"x"}]'),   # quarantined
        row("bob", violations='[{"rule":"x"}]'),
        row("ann-2", type_="alias", event=None, previous_id="ann"),  # her new id
    ])
    loader.load_once()
    write(workspace, [row("ann", "dev-1"), row("bob", "dev-9")], writer="w2")  # not loaded
    assert count(warehouse, "events", "user_id = 'ann'") == 2

    erasure = forget_users(workspace, loader, user_ids=["ann"])

    # the log's rows were loaded first, then deleted with the rest
    assert count(warehouse, "events", "user_id = 'ann' OR anonymous_id IN ('dev-1', "
                 "'dev-2') OR previous_id = 'ann'") == 0
    assert count(warehouse, "quarantine", "user_id = 'ann'") == 0
    assert erasure.rows == {"events": 5, "quarantine": 1}
    assert erasure.detail == {"user_ids": 1, "anonymous_ids": 0, "linked_anonymous_ids": 2,
                              "aliased_ids": 1, "ids_not_found": 0}  # ann-2, her new id
    # everyone else is untouched
    assert count(warehouse, "events", "user_id = 'bob'") == 2
    assert count(warehouse, "events", "anonymous_id = 'dev-8'") == 1
    assert count(warehouse, "quarantine", "user_id = 'bob'") == 1
    loader.load_once()  # nothing of hers comes back from the log
    assert count(warehouse, "events", "user_id = 'ann'") == 0
    # the ledger has counts, and no id of the forgotten user
    (ledger,) = warehouse.query("SELECT * FROM erasures").to_pylist()
    assert (ledger["kind"], ledger["events"], ledger["quarantine"]) == ("forget", 5, 1)
    assert "ann" not in str(ledger)
    assert "dev-1" not in str(ledger)


def test_forget_by_anonymous_id_alone(workspace: Workspace, warehouse: Warehouse,
                                      loader: Loader, caplog: pytest.LogCaptureFixture) -> None:
    write(workspace, [row(None, "dev-1"), row("ann", "dev-1"), row("ann", "dev-2")])
    caplog.set_level(logging.INFO, logger="nerve.erasure")
    erasure = forget_users(workspace, loader, anonymous_ids=["dev-1"])
    assert erasure.rows["events"] == 2
    # the log line reads as a sentence (no Python dict), and names counts, never ids
    [logged] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("forgot")]
    assert logged.endswith("deleted 2 rows from events, 0 from the quarantine")
    assert "dev-1" not in logged
    # the device's rows go; the user's rows from another device stay
    assert count(warehouse, "events") == 1
    assert count(warehouse, "events", "anonymous_id = 'dev-2'") == 1


def test_forget_finds_hashed_user_ids_from_the_ids_the_product_sent(
        make_workspace: Callable[..., Workspace]) -> None:
    ws = make_workspace({"order_completed.yaml": ORDER},
                        extra_toml='[privacy]\nuser_id = "hash"\n')
    hashed = pseudonymise("ann", ws.secret())
    write(ws, [row(hashed), row(hashed), row(pseudonymise("bob", ws.secret()))])
    with Warehouse.for_workspace(ws) as wh:
        erasure = forget_users(ws, Loader.for_workspace(ws, wh), user_ids=["ann"])
        assert erasure.rows["events"] == 2
        assert count(wh, "events") == 1


def identify(user: str, anonymous: str | None = None) -> dict[str, Any]:
    return row(user, anonymous, type_="identify", event=None)


def alias(user: str, previous: str) -> dict[str, Any]:
    return row(user, type_="alias", event=None, previous_id=previous)


def ids_left(warehouse: Warehouse) -> list[tuple[str | None, str | None, str | None]]:
    return sorted(((r["user_id"], r["anonymous_id"], r["previous_id"]) for table in (
        "events", "quarantine") for r in warehouse.query(
        f"SELECT user_id, anonymous_id, previous_id FROM {table}").to_pylist()), key=str)


def test_a_shared_devices_other_users_keep_their_rows(
        workspace: Workspace, warehouse: Warehouse, loader: Loader) -> None:
    tablet = "anon-family-tablet-77"
    write(workspace, [
        row(None, tablet),                                   # before anyone signed in
        identify("mum-7001", tablet), row("mum-7001", tablet),
        identify("dad-7002", tablet), row("dad-7002", tablet),
        row("dad-7002", "anon-dad-phone"),
        alias("dad-7002", tablet),                           # he merged the tablet, too
        row("dad-7002", tablet, violations='[{"rule":"x"}]'),
    ])
    preview = forget_users(workspace, loader, user_ids=["mum-7001"], dry_run=True)
    erasure = forget_users(workspace, loader, user_ids=["mum-7001"])

    assert preview.rows == erasure.rows == {"events": 3, "quarantine": 0}
    assert erasure.detail["linked_anonymous_ids"] == 1
    assert ids_left(warehouse) == sorted([
        ("dad-7002", tablet, None), ("dad-7002", tablet, None), ("dad-7002", tablet, None),
        ("dad-7002", "anon-dad-phone", None), ("dad-7002", None, tablet)], key=str)


def test_forget_follows_alias_calls_to_the_ids_merged_into_the_user(
        workspace: Workspace, warehouse: Warehouse, loader: Loader) -> None:
    device, old, older = "anon-dev-5005-B", "old-login-5005", "older-login-5005"
    write(workspace, [
        row(None, device), row(None, device, violations='[{"rule":"x"}]'),
        row(old, "anon-dev-5005-C"), row(None, "anon-dev-5005-C"),
        row(older),
        row("patient-5005", "anon-dev-5005-D"),
        alias("patient-5005", device), alias("patient-5005", old),
        alias(old, older),                                   # merged before: followed too
        alias(older, "patient-5005"),                        # a loop ends
        row("other-6006", device),                           # someone else on that device
    ])
    preview = forget_users(workspace, loader, user_ids=["patient-5005"], dry_run=True)
    erasure = forget_users(workspace, loader, user_ids=["patient-5005"])

    assert preview.rows == erasure.rows == {"events": 9, "quarantine": 1}
    assert erasure.detail == {"user_ids": 1, "anonymous_ids": 0, "linked_anonymous_ids": 2,
                              "aliased_ids": 3, "ids_not_found": 0}
    assert ids_left(warehouse) == [("other-6006", device, None)]


def test_forget_counts_the_ids_it_found_on_no_row(
        workspace: Workspace, warehouse: Warehouse, loader: Loader) -> None:
    """`nerve forget --user-id pat-07` for pat-007 said "deleted: 0 events" and nothing
    else: a misspelt id looked like a user without data."""
    ws = workspace
    write(ws, [row("ann", "dev-1"), row(pseudonymise("bob", ws.secret())),
               alias("cy-new", "cy-old"), row(None, "dev-9", violations='[{"rule":"x"}]')])
    # found: as sent, as its keyed hash, only as an alias's previous id, a device only
    # in the quarantine; not found: a typo of each kind
    erasure = forget_users(ws, loader, user_ids=["ann", "bob", "cy-old", "Ann", "bob "],
                           anonymous_ids=["dev-9", "dev-l"], dry_run=True)
    assert erasure.detail["ids_not_found"] == 3
    assert forget_users(ws, loader, user_ids=["ann"]).detail["ids_not_found"] == 0
    assert forget_users(ws, loader, user_ids=["ann"]).detail["ids_not_found"] == 1


def test_forgetting_an_old_login_reaches_the_id_it_was_aliased_to(
        workspace: Workspace, warehouse: Warehouse, loader: Loader) -> None:
    """A person who asks with the login they remember: the alias from it to their new id
    says both are them. Their new id's rows went nowhere before."""
    write(workspace, [
        row("jo-old", "anon-jo-1"), row(None, "anon-jo-1"),
        alias("jo-new", "jo-old"),                           # the login changed
        row("jo-new", "anon-jo-2"), row("jo-new", "anon-jo-2", violations='[{"rule":"x"}]'),
        row(None, "anon-jo-2"),
        alias("jo-new", "anon-jo-3"), row(None, "anon-jo-3"),  # a device merged later
        alias("jo-newest", "jo-new"), row("jo-newest"),        # and changed again
        row("kim", "anon-jo-2"), alias("kim", "anon-kim"),     # someone else, same device
    ])
    preview = forget_users(workspace, loader, user_ids=["jo-old"], dry_run=True)
    erasure = forget_users(workspace, loader, user_ids=["jo-old"])
    assert preview.rows == erasure.rows == {"events": 9, "quarantine": 1}
    assert erasure.detail["aliased_ids"] == 3  # jo-new, jo-newest, anon-jo-3
    assert ids_left(warehouse) == [("kim", "anon-jo-2", None), ("kim", None, "anon-kim")]


def test_a_chain_of_aliases_is_followed_up_to_a_bound(
        workspace: Workspace, warehouse: Warehouse, loader: Loader) -> None:
    chain = [f"login-{i}" for i in range(ALIAS_HOPS + 2)]
    write(workspace, [alias(new, old) for new, old in itertools.pairwise(chain)])
    with pytest.raises(PayloadError, match=f"more than {ALIAS_HOPS} merges"):
        forget_users(workspace, loader, user_ids=[chain[0]])
    assert count(warehouse, "events") == ALIAS_HOPS + 1  # nothing deleted
    assert forget_users(workspace, loader, user_ids=[chain[1]]).rows["events"] == ALIAS_HOPS + 1


@pytest.mark.parametrize(("before", "after"), [("keep", "hash"), ("hash", "keep")])
def test_forget_finds_ids_stored_under_an_earlier_user_id_policy(
        make_workspace: Callable[..., Workspace], before: str, after: str) -> None:
    ws = make_workspace({"order_completed.yaml": ORDER})
    policies = {"keep": lambda i: i, "hash": lambda i: pseudonymise(i, ws.secret())}
    stored, now = policies[before], policies[after]
    write(ws, [row(stored("ann"), "dev-1"), row(None, "dev-1"),
               row(stored("ann"), violations='[{"rule":"x"}]'),
               alias(stored("ann"), stored("ann-old")), row(stored("ann-old")),
               row(stored("ann-older")), row(None, "dev-2"),    # aliased after the switch
               row(stored("bob"))])
    toml = ws.root / "nerve.toml"
    toml.write_text(toml.read_text() + f'\n[privacy]\nuser_id = "{after}"\n')
    ws = Workspace.load(ws.root)
    # anonymous ids are never hashed: under "hash", only the alias names dev-2's hash
    write(ws, [row(now("ann")), alias(now("ann"), now("ann-older")),
               alias(now("ann"), now("dev-2"))], writer="w2")
    with Warehouse.for_workspace(ws) as wh:
        loader = Loader.for_workspace(ws, wh)
        preview = forget_users(ws, loader, user_ids=["ann"], dry_run=True)
        erasure = forget_users(ws, loader, user_ids=["ann"])
        assert preview.rows == erasure.rows == {"events": 9, "quarantine": 1}
        assert ids_left(wh) == [(stored("bob"), None, None)]


def test_a_dry_run_counts_and_deletes_nothing(workspace: Workspace, warehouse: Warehouse,
                                              loader: Loader) -> None:
    write(workspace, [row("ann"), row("ann"), row("bob")])
    erasure = forget_users(workspace, loader, user_ids=["ann"], dry_run=True)
    assert erasure.dry_run
    assert erasure.rows == {"events": 2, "quarantine": 0}
    assert count(warehouse, "events") == 3
    assert count(warehouse, "erasures") == 0


@pytest.mark.parametrize(("users", "anonymous"), [([], []), ([""], []), ([7], []),
                                                   ([], [None])])
def test_forget_refuses_missing_or_malformed_ids(warehouse: Warehouse, users: list[Any],
                                                 anonymous: list[Any]) -> None:
    with pytest.raises(PayloadError):
        forget(warehouse.cursor(), PrivacyPolicy(secret=b"k"), user_ids=users,
               anonymous_ids=anonymous)


def expiring_rows() -> list[dict[str, Any]]:
    return [
        row("a", age_days=40), row("b", age_days=10),               # retention 30d
        row("c", type_="identify", event=None, age_days=900),       # forever
        row("d", age_days=45, violations='[{"rule":"x"}]'),         # quarantined, 30d
        row("e", event="Wishlist Opened", age_days=400,             # not in the catalog
            violations='[{"rule":"unknown_event"}]'),
    ]


def test_expire_deletes_rows_past_their_events_retention(
        workspace: Workspace, warehouse: Warehouse, loader: Loader) -> None:
    write(workspace, expiring_rows())
    loader.load_once()
    catalog = Catalog.load(workspace.events_dir)

    preview = expire(warehouse.cursor(), catalog, now=NOW, dry_run=True)
    assert preview.rows == {"events": 1, "quarantine": 1}
    assert count(warehouse, "events") + count(warehouse, "quarantine") == 5

    erasure = expire(warehouse.cursor(), catalog, now=NOW)
    assert erasure.detail == {"order_completed": {"retention_days": 30, "events": 1,
                                                  "quarantine": 1}}
    left = {r["user_id"] for r in warehouse.query(
        "SELECT user_id FROM events UNION ALL SELECT user_id FROM quarantine").to_pylist()}
    assert left == {"b", "c", "e"}  # uncataloged rows are kept unless the workspace says

    again = expire(warehouse.cursor(), catalog, now=NOW, uncataloged_days=365)
    assert again.rows == {"events": 0, "quarantine": 1}
    assert count(warehouse, "quarantine") == 0
    assert [r["kind"] for r in warehouse.query(
        "SELECT kind FROM erasures ORDER BY erased_at").to_pylist()] == ["expire", "expire"]


def test_uncataloged_retention_comes_from_nerve_toml(
        make_workspace: Callable[..., Workspace]) -> None:
    ws = make_workspace({"order_completed.yaml": ORDER},
                        extra_toml='[privacy]\nuncataloged_retention = "10d"\n')
    write(ws, expiring_rows())
    with Warehouse.for_workspace(ws) as wh:
        loader = Loader.for_workspace(ws, wh)
        loader.load_once()
        erasure = expire_rows(ws, Catalog.load(ws.events_dir), loader)
        assert erasure.detail["(uncataloged)"]["quarantine"] == 1


REFUND = ORDER.replace("order_completed", "refund_issued").replace("An order.", "A refund.")


def test_rows_of_an_event_removed_from_the_catalog_follow_uncataloged_retention(
        make_workspace: Callable[..., Workspace]) -> None:
    """The retention rules walked only the events still in the catalog: once an event's
    file was deleted, its rows (in events, not the quarantine) were kept for good."""
    ws = make_workspace({"order_completed.yaml": ORDER, "identify.yaml": IDENTIFY,
                         "refund_issued.yaml": REFUND})
    (ws.events_dir / "versions").mkdir()
    write(ws, [row("a", age_days=100), row("b", age_days=10),
               row("c", type_="identify", event=None, age_days=100, schema_version="1.0.0"),
               row("d", type_="alias", event=None, age_days=100, schema_version=None),
               row("e", event="refund_issued", age_days=40)])
    with Warehouse.for_workspace(ws) as wh:
        Loader.for_workspace(ws, wh).load_once()
        (ws.events_dir / "order_completed.yaml").unlink()
        (ws.events_dir / "identify.yaml").unlink()
        # retired, with its last version kept: the catalog still has it, and its retention
        (ws.events_dir / "refund_issued.yaml").rename(
            ws.events_dir / "versions" / "refund_issued.v1.yaml")
        catalog = Catalog.load(ws.events_dir)
        assert catalog.names() == ["refund_issued"]

        kept = expire(wh.cursor(), catalog, now=NOW)  # uncataloged_retention: forever
        assert kept.rows == {"events": 1, "quarantine": 0}
        erasure = expire(wh.cursor(), catalog, now=NOW, uncataloged_days=90)
        assert erasure.detail == {"(uncataloged)": {"retention_days": 90, "events": 2,
                                                    "quarantine": 0}}
        # the recent order stays; an alias was never the catalog's to expire
        assert {r["user_id"] for r in wh.query("SELECT user_id FROM events").to_pylist()} \
            == {"b", "d"}


def test_a_failed_retention_run_is_kept_for_the_status_until_a_run_succeeds(
        make_workspace: Callable[..., Workspace]) -> None:
    ws = make_workspace({"order_completed.yaml": ORDER},
                        extra_toml='[privacy]\naudit_retention = "30d"\n')
    stuck = ws.data_dir / "audit" / "reads-2020-01-01.jsonl"
    stuck.mkdir(parents=True)  # an old audit "file" the job cannot delete
    with Warehouse.for_workspace(ws) as wh:
        state = SimpleNamespace(workspace=ws, catalog=Catalog.load(ws.events_dir),
                                loader=Loader.for_workspace(ws, wh))
        job = RetentionJob(state, every=timedelta(seconds=0.1), first_delay=timedelta(0))
        job.start()
        try:
            deadline = time.monotonic() + 10
            while job.last_error is None and time.monotonic() < deadline:
                time.sleep(0.02)
            assert job.last_error is not None
            assert "Is a directory" in job.last_error
            assert job.failed_at is not None
            stuck.rmdir()
            while job.last_error is not None and time.monotonic() < deadline:
                time.sleep(0.02)
            assert (job.last_error, job.failed_at) == (None, None)
        finally:
            job.stop()


def test_the_erasures_table_exists_before_the_first_erasure(warehouse: Warehouse) -> None:
    assert warehouse.query("SELECT * FROM erasures").num_rows == 0


def test_expire_drains_the_log_first(workspace: Workspace, warehouse: Warehouse,
                                     loader: Loader) -> None:
    write(workspace, expiring_rows())  # in the log only, its writer gone
    erasure = expire_rows(workspace, Catalog.load(workspace.events_dir), loader)
    assert erasure.rows == {"events": 1, "quarantine": 1}
    assert count(warehouse, "events") + count(warehouse, "quarantine") == 3
    assert list_segments(workspace.log_dir, "w1") == []  # loaded, then deleted


def test_the_retention_job_runs_on_its_schedule(workspace: Workspace, warehouse: Warehouse,
                                                loader: Loader) -> None:
    old = row("a", age_days=400)
    write(workspace, [old, row("b")])
    loader.load_once()
    state = SimpleNamespace(workspace=workspace, catalog=Catalog.load(workspace.events_dir),
                            loader=loader)
    job = RetentionJob(state, every=timedelta(seconds=0.2), first_delay=timedelta(0)).start()
    try:
        deadline = time.monotonic() + 10
        while job.last is None and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        job.stop()
    assert job.last is not None
    assert job.last.rows["events"] == 1
    assert count(warehouse, "events") == 1


def test_an_old_segment_rolls_so_its_loaded_rows_leave_the_log(
        workspace: Workspace, loader: Loader) -> None:
    log = LogWriter(workspace.log_dir, "w1", max_age=0.2)
    try:
        log.append(to_record_batch([row("ann")]))  # type: ignore[list-item]
        log.sync()
        loader.load_once()  # loaded, but the segment is still the writer's: it stays
        assert len(list_segments(workspace.log_dir, "w1")) == 1
        time.sleep(0.3)
        log.append(to_record_batch([row("bob")]))  # type: ignore[list-item]
        log.sync()
        assert len(list_segments(workspace.log_dir, "w1")) == 2
        loader.load_once()  # the sealed segment is loaded, then deleted
        assert len(list_segments(workspace.log_dir, "w1")) == 1
    finally:
        log.close()


def test_an_idle_servers_segment_is_sealed_so_its_loaded_rows_leave_the_log(
        workspace: Workspace, loader: Loader) -> None:
    log = LogWriter(workspace.log_dir, "w1", max_age=0.1)
    state = SimpleNamespace(log=log)

    async def idle_for_a_while() -> None:
        task = asyncio.create_task(seal_old_segments(state, every=0.05))
        await asyncio.sleep(0.5)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    try:
        log.append(to_record_batch([row("ann")]))  # type: ignore[list-item]
        log.sync()
        asyncio.run(idle_for_a_while())  # nothing more is appended
        loader.load_once()
        (left,) = list_segments(workspace.log_dir, "w1")
        assert read_segment(left.path).batches == []
        assert count(loader.warehouse, "events", "user_id = 'ann'") == 1
    finally:
        log.close()


def test_compact_takes_the_bytes_of_deleted_rows_out_of_the_file(
        workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    # DuckDB compresses strings, which would hide them from a byte search: store them as
    # they are, in the warehouse and in the compacted copy, so the search sees the data
    import duckdb

    connect = duckdb.connect
    monkeypatch.setattr(duckdb, "connect", functools.partial(
        connect, config={"force_compression": "uncompressed"}))
    forgotten, kept = b"FORGOTTEN-4f1d-ann-private", b"KEPT-77c2-bob-control"
    write(workspace, [row("ann", properties=f'{{"note": "{forgotten.decode()}"}}'),
                      row("bob", properties=f'{{"note": "{kept.decode()}"}}')])
    path = Warehouse.file_of(workspace.warehouse_url)
    assert path is not None
    with Warehouse.for_workspace(workspace) as wh:
        loader = Loader.for_workspace(workspace, wh)
        loader.load_once()
        wh.cursor().execute("CHECKPOINT")
        assert forgotten in path.read_bytes()
        forget_users(workspace, loader, user_ids=["ann"])
    assert forgotten in path.read_bytes()  # deleted, yet its bytes are still in the file

    before, after = compact(path)

    data = path.read_bytes()
    assert forgotten not in data
    assert kept in data
    assert after == len(data)
    assert before > 0
    with Warehouse.for_workspace(workspace, read_only=True) as wh:
        assert wh.query("SELECT user_id FROM events").to_pylist() == [{"user_id": "bob"}]
        assert count(wh, "erasures") == 1
    assert not path.with_name(path.name + ".compact").exists()


def test_a_forgotten_event_sent_again_is_stored_again(
        workspace: Workspace, warehouse: Warehouse, loader: Loader) -> None:
    sent = row("ann", message_id="m-resent")
    write(workspace, [sent])
    loader.load_once()
    forget_users(workspace, loader, user_ids=["ann"])
    write(workspace, [sent], writer="w2")  # the client retries it later
    loader.load_once()
    assert count(warehouse, "events", "message_id = 'm-resent'") == 1
