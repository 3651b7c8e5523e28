"""Quarantine replay on a real DuckDB warehouse, and the list/show/replay commands."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from nerve.catalog import Catalog
from nerve.cli import app
from nerve.envelope import ENVELOPE_SCHEMA
from nerve.pipeline import pseudonymise
from nerve.quarantine import judge_rows, replay
from nerve.warehouse import Warehouse
from nerve.workspace import Workspace

CART_V1 = """\
name: add_to_cart
description: A shopper adds a product to the cart.
owner: growth
purpose: analytics
version: 1
retention: 400d
properties:
  quantity: {type: integer, required: true, minimum: 1, pii: none}
"""
# v2 accepts a coupon; v1 events that sent one were quarantined
CART_V2 = CART_V1.replace("version: 1", "version: 2") + \
    "  coupon: {type: string, pii: none}\n"

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


def _row(message_id: str, properties: dict[str, Any], *, event: str = "add_to_cart",
         version: str | None = None, violations: list[dict[str, Any]] | None = None
         ) -> dict[str, Any]:
    context = {"event_version": version} if version else {}
    return {"message_id": message_id, "type": "track", "event": event, "name": None,
            "user_id": "u1", "anonymous_id": None, "group_id": None, "previous_id": None,
            "timestamp": NOW, "original_timestamp": NOW, "sent_at": NOW, "received_at": NOW,
            "properties": orjson.dumps(properties).decode(), "traits": None,
            "context": orjson.dumps(context).decode(), "source": "web", "historical": False,
            "schema_version": None,
            "violations": orjson.dumps(violations or [{"path": "$.properties", "rule": "x",
                                                       "message": "was invalid"}]).decode(),
            "quarantined_at": NOW}


def _quarantine(wh: Warehouse, rows: list[dict[str, Any]]) -> None:
    schema = pa.schema([*ENVELOPE_SCHEMA, pa.field("quarantined_at", pa.timestamp("us", "UTC"))])
    cursor = wh.cursor()
    cursor.register("incoming", pa.Table.from_pylist(rows, schema=schema))
    cursor.execute("INSERT INTO quarantine BY NAME SELECT * FROM incoming")
    cursor.unregister("incoming")


def _ids(wh: Warehouse, table: str) -> list[str]:
    return sorted(r["message_id"] for r in
                  wh.query(f"SELECT message_id FROM {table}").to_pylist())


@pytest.fixture
def ws(make_workspace: Callable[..., Workspace]) -> Workspace:
    return make_workspace({"add_to_cart.yaml": CART_V2,
                           "versions/add_to_cart.v1.yaml": CART_V1})


def _seed(ws: Workspace) -> None:
    with Warehouse.for_workspace(ws) as wh:
        _quarantine(wh, [
            _row("m1", {"quantity": 2, "coupon": "X"}),              # passes v2 (latest)
            _row("m2", {"quantity": 0}),                             # still fails: minimum
            _row("m3", {"quantity": 1}, event="unplanned_event"),    # not in the catalog
            _row("m4", {"quantity": 1, "coupon": "Y"}, version="1"),  # declares v1: fails
            _row("m5", {"quantity": 3}, version="1.0.0"),            # passes v1
            _row("m5", {"quantity": 3}, version="1.0.0"),            # a retried duplicate
        ])


def test_judge_rows_uses_the_declared_version_like_the_collector(ws: Workspace) -> None:
    catalog = Catalog.load(ws.events_dir)
    rows = [_row("a", {"quantity": 1, "coupon": "c"}, version="1"),
            _row("b", {"quantity": 1, "coupon": "c"}),
            _row("c", {"quantity": 1}, violations=[{"path": "$.timestamp", "rule": "format",
                                                    "message": "bad timestamp"}])]
    decisions = {d.message_id: d for d in judge_rows(catalog, rows)}
    assert not decisions["a"].ok
    assert decisions["a"].violations[0]["rule"] == "additional_properties"
    assert (decisions["b"].ok, decisions["b"].schema_version) == (True, "2.0.0")
    # a problem outside the catalog's reach is kept, so the event stays quarantined
    assert not decisions["c"].ok
    assert decisions["c"].violations == [{"path": "$.timestamp", "rule": "format",
                                          "message": "bad timestamp"}]



def test_an_event_cut_to_size_by_the_collector_stays_quarantined(
        make_workspace: Callable[..., Workspace]) -> None:
    """The collector quarantines an event over max_event_bytes without its properties;
    judged again, its empty properties pass a catalog without required ones, but what
    was left out is gone: it must not load as a valid event."""
    from nerve.collector import Collector

    optional = CART_V1.replace("required: true", "required: false")
    toml = make_workspace({"add_to_cart.yaml": optional}).root / "nerve.toml"
    toml.write_text(toml.read_text().replace("max_event_bytes = 32768", "max_event_bytes = 300"))
    ws = Workspace.load(toml.parent)
    catalog = Catalog.load(ws.events_dir)
    body = orjson.dumps({"batch": [{"type": "track", "event": "add_to_cart", "userId": "u",
                                    "messageId": "big", "properties": {"note": "n" * 400}}]})
    key = ws.config.sources[0].write_key
    auth = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    [envelope] = Collector(ws, catalog).collect(body, endpoint="batch",
                                                authorization=auth).envelopes
    assert envelope["properties"] is None
    [decision] = judge_rows(catalog, [envelope])
    assert not decision.ok
    assert [v["rule"] for v in decision.violations] == ["event_too_large"]


SIGNUP = """\
name: signup
description: A visitor creates an account.
owner: growth
purpose: analytics
version: 1
retention: 400d
properties:
  email: {type: string, format: email, required: true, pii: pseudonymous}
  age: {type: integer, pii: pseudonymous}
  plan: {type: string, pii: none}
"""


def test_pseudonymised_values_keep_the_verdict_on_their_raw_value(
        make_workspace: Callable[..., Workspace]) -> None:
    # the collector hashed email and age after judging their raw values; the hash itself
    # is neither an email nor an integer, and must not be judged as if it were the value
    ws = make_workspace({"signup.yaml": SIGNUP})
    catalog = Catalog.load(ws.events_dir)
    mail, age = "h:" + "ab" * 16, "h:" + "cd" * 16
    unknown = {"path": "$.properties.coupon", "rule": "additional_properties",
               "message": "signup.coupon is not in the catalog"}
    bad_raw = {"path": "$.properties.email", "rule": "format",
               "message": 'signup.email: "not-an-email" is not a "email"'}
    rows = [_row("fixed", {"email": mail, "age": age, "plan": "pro"}, event="signup",
                 violations=[unknown]),
            _row("raw-was-bad", {"email": mail, "plan": "pro"}, event="signup",
                 violations=[bad_raw]),
            _row("plain-is-judged", {"email": "not-an-email"}, event="signup",
                 violations=[unknown])]
    decisions = {d.message_id: d for d in judge_rows(catalog, rows)}
    assert decisions["fixed"].ok, decisions["fixed"].violations
    assert not decisions["raw-was-bad"].ok
    [kept] = decisions["raw-was-bad"].violations
    assert (kept["path"], kept["rule"]) == ("$.properties.email", "format")
    assert "pseudonymised" in kept["message"]
    assert [v["rule"] for v in decisions["plain-is-judged"].violations] == ["format"]


def test_replay_moves_passing_events_once_in_one_transaction(ws: Workspace) -> None:
    _seed(ws)
    catalog = Catalog.load(ws.events_dir)
    with Warehouse.for_workspace(ws) as wh:
        report = replay(wh, catalog, policy=None)
        assert (report.judged, report.loaded, report.duplicates, report.still_failing) == (
            6, 2, 0, 3)
        assert _ids(wh, "events") == ["m1", "m5"]
        assert _ids(wh, "quarantine") == ["m2", "m3", "m4"]
        versions = {r["message_id"]: r["schema_version"] for r in wh.query(
            "SELECT message_id, schema_version FROM events").to_pylist()}
        assert versions == {"m1": "2.0.0", "m5": "1.0.0"}
        # idempotent: a second replay changes nothing
        again = replay(wh, catalog, policy=None)
        assert (again.loaded, again.still_failing) == (0, 3)
        assert _ids(wh, "events") == ["m1", "m5"]
        # an event already loaded (the loader got it on a retry) is not duplicated
        _quarantine(wh, [_row("m1", {"quantity": 2})])
        third = replay(wh, catalog, policy=None)
        assert (third.loaded, third.duplicates) == (0, 1)
        assert _ids(wh, "events") == ["m1", "m5"]
        assert _ids(wh, "quarantine") == ["m2", "m3", "m4"]


def test_replay_dry_run_and_event_filter(ws: Workspace) -> None:
    _seed(ws)
    catalog = Catalog.load(ws.events_dir)
    with Warehouse.for_workspace(ws) as wh:
        dry = replay(wh, catalog, policy=None, dry_run=True)
        assert dry.loaded == 2
        assert _ids(wh, "events") == []
        only = replay(wh, catalog, policy=None, event="unplanned_event")
        assert (only.judged, only.loaded) == (1, 0)


def _load_copy(wh: Warehouse, message_id: str) -> None:
    """The loader got a valid copy of a quarantined message (a client's retry)."""
    wh.cursor().execute(
        "INSERT INTO events BY NAME SELECT * EXCLUDE (violations, quarantined_at), "
        "current_timestamp AS loaded_at FROM quarantine WHERE message_id = ? LIMIT 1",
        [message_id])


def _counts(report: Any) -> tuple[int, int, int, int]:
    return report.judged, report.loaded, report.duplicates, report.still_failing


def test_dry_run_counts_what_is_already_loaded_as_the_replay_does(ws: Workspace) -> None:
    _seed(ws)
    catalog = Catalog.load(ws.events_dir)
    with Warehouse.for_workspace(ws) as wh:
        _load_copy(wh, "m1")
    with Warehouse.for_workspace(ws, read_only=True) as reader:  # a dry run only reads
        dry = replay(reader, catalog, policy=None, dry_run=True)
    with Warehouse.for_workspace(ws) as wh:
        real = replay(wh, catalog, policy=None)
    # it said "would load 2, already loaded 0" while the replay loaded 1 of them
    assert _counts(dry) == _counts(real) == (6, 1, 1, 3)


def run(ws: Workspace, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["--workspace", str(ws.root), *args])
    return result.exit_code, result.stdout, result.stderr


def test_cli_list_show_replay(ws: Workspace) -> None:
    _seed(ws)
    code, out, _ = run(ws, "quarantine", "list", "--event", "add_to_cart", "--format", "json")
    assert code == 0
    rows = json.loads(out)
    assert sorted(r["message_id"] for r in rows) == ["m1", "m2", "m4", "m5", "m5"]
    assert rows[0]["violations"] == 1
    code, out, _ = run(ws, "quarantine", "show", "m2", "--format", "json")
    assert code == 0
    shown = json.loads(out)
    assert shown["violations"][0]["message"] == "was invalid"
    code, _, err = run(ws, "quarantine", "show", "nope")
    assert code == 4
    assert "no quarantined event" in err
    code, out, _ = run(ws, "quarantine", "replay", "--format", "json")
    assert code == 3  # some still fail
    assert json.loads(out)[0]["loaded"] == 2


def _at(row: dict[str, Any], timestamp: datetime) -> dict[str, Any]:
    """The row as an event that happened at ``timestamp`` (received, and quarantined, at
    NOW all the same: the range is on when it happened)."""
    return {**row, "timestamp": timestamp, "original_timestamp": timestamp}


def _listed(ws: Workspace, *args: str) -> list[str]:
    code, out, err = run(ws, "quarantine", "list", *args, "--format", "json")
    assert code == 0, err
    return sorted(r["message_id"] for r in json.loads(out))


def test_cli_list_keeps_the_events_timestamped_in_the_range(ws: Workspace) -> None:
    """``nerve ask`` points at ``nerve quarantine list --since --until`` for the events
    of its range: dates are whole days in the workspace's timezone (an until date
    included), on the event's timestamp, as metrics count it."""
    toml = ws.root / "nerve.toml"
    toml.write_text(toml.read_text().replace('timezone = "UTC"', 'timezone = "Asia/Tokyo"'))
    jst = ZoneInfo("Asia/Tokyo")
    days = {"before": datetime(2026, 2, 28, 23, 59, tzinfo=jst),
            "first": datetime(2026, 3, 1, 0, 0, tzinfo=jst),
            # 2026-03-02 20:00 UTC is already 03-03 in Tokyo
            "last": datetime(2026, 3, 2, 23, 59, tzinfo=jst),
            "after": datetime(2026, 3, 3, 5, 0, tzinfo=jst)}
    with Warehouse.for_workspace(ws) as wh:
        _quarantine(wh, [_at(_row(name, {"quantity": 0}), at) for name, at in days.items()]
                    + [_at(_row("other", {"quantity": 0}, event="unplanned_event"),
                           days["first"])])
    assert _listed(ws) == ["after", "before", "first", "last", "other"]
    assert _listed(ws, "--event", "add_to_cart", "--since", "2026-03-01",
                   "--until", "2026-03-02") == ["first", "last"]
    assert _listed(ws, "--since", "2026-03-01") == ["after", "first", "last", "other"]
    assert _listed(ws, "--until", "2026-02-28") == ["before"]
    # a datetime: naive is local time, and an until datetime is excluded
    assert _listed(ws, "--since", "2026-03-02T23:59", "--until", "2026-03-03T05:00") \
        == ["last"]
    code, out, _ = run(ws, "quarantine", "list", "--event", "add_to_cart",
                       "--since", "2026-03-01", "--until", "2026-03-01", "--format", "json")
    assert [r["timestamp"][:10] for r in json.loads(out)] == ["2026-02-28"]  # UTC
    code, _, err = run(ws, "quarantine", "list", "--since", "2026-03-02",
                       "--until", "2026-03-01")
    assert code == 4
    assert "empty time range" in err
    code, _, err = run(ws, "quarantine", "list", "--since", "last tuesday")
    assert code == 4
    assert "--since" in err


def test_cli_list_since_a_duration_back_from_now(ws: Workspace) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    with Warehouse.for_workspace(ws) as wh:
        _quarantine(wh, [_at(_row("recent", {"quantity": 0}), now - timedelta(days=1)),
                         _at(_row("old", {"quantity": 0}), now - timedelta(days=30))])
    assert _listed(ws, "--since", "7d") == ["recent"]
    assert _listed(ws, "--until", "7d") == ["old"]


def test_replay_refuses_while_the_server_holds_the_warehouse(ws: Workspace) -> None:
    _seed(ws)
    (ws.data_dir / "server.json").write_text(json.dumps(
        {"url": "http://127.0.0.1:9", "pid": os.getpid(), "admin_token": "t"}))
    code, _, err = run(ws, "quarantine", "replay")
    assert code == 5
    assert "stop it" in err
    with Warehouse.for_workspace(ws, read_only=True) as wh:
        assert _ids(wh, "events") == []


def test_dry_run_works_while_the_server_runs(ws: Workspace, serve: Callable[..., Any]
                                            ) -> None:
    """A dry run writes nothing, so it reads through the server instead of refusing."""
    _seed(ws)
    with Warehouse.for_workspace(ws) as wh:
        _load_copy(wh, "m5")
    serve(ws)
    code, out, err = run(ws, "quarantine", "replay", "--dry-run", "--format", "json")
    assert code == 3, err  # some still fail
    [summary] = json.loads(out)
    assert (summary["judged"], summary["loaded"], summary["duplicates"],
            summary["still_failing"], summary["dry_run"]) == (6, 1, 1, 3, True)
    code, _, err = run(ws, "quarantine", "replay")
    assert code == 5
    assert "--dry-run` works while it runs" in err


def test_cli_list_and_show_suggest_the_cataloged_name_of_an_unknown_event(
        ws: Workspace) -> None:
    """The collector says only that a name is not cataloged (a suggestion per event at
    ingest would be work a client can make it do); list and show add the closest name of
    the catalog as it is when they run."""
    unknown = [{"path": "$.event", "rule": "unknown_event",
                "message": "'add_to_crat' is not in the catalog: add it to events/, or fix "
                           "the name", "file": None, "line": None}]
    far = [{**unknown[0], "message": "'zzz' is not in the catalog"}]
    with Warehouse.for_workspace(ws) as wh:
        _quarantine(wh, [_row("u1", {"quantity": 1}, event="add_to_crat", violations=unknown),
                         _row("u2", {"quantity": 1}, event="zzz", violations=far),
                         _row("u3", {"quantity": 0})])
    code, out, _ = run(ws, "quarantine", "list", "--format", "json")
    assert code == 0
    first = {r["message_id"]: r["first"] for r in json.loads(out)}
    assert first == {
        "u1": "'add_to_crat' is not in the catalog: add it to events/, or fix the name "
              "(did you mean add_to_cart?)",
        "u2": "'zzz' is not in the catalog",
        "u3": "was invalid"}
    code, out, _ = run(ws, "quarantine", "show", "u1", "--format", "json")
    assert code == 0
    assert json.loads(out)["violations"][0]["message"].endswith("(did you mean add_to_cart?)")


def test_cli_list_piped_prints_a_row_a_line(ws: Workspace) -> None:
    """Piped to a file or a CI log (no terminal, no $COLUMNS), Rich assumed 80 columns
    and folded every row over several lines, a message in slivers; a table is as wide as
    its content there. $COLUMNS still bounds it."""
    message = "quantity: 0 is less than the minimum of 1 (events/add_to_cart.yaml:9)"
    with Warehouse.for_workspace(ws) as wh:
        _quarantine(wh, [_row(f"message-{n}-0f8fad5b-d9cb-469f-a165-70867728950e",
                              {"quantity": 0}, violations=[{
                                  "path": "$.properties.quantity", "rule": "minimum",
                                  "message": message}]) for n in range(3)])
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    command = [sys.executable, "-m", "nerve", "--workspace", str(ws.root), "quarantine", "list"]
    piped = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120,
                           check=False)
    assert piped.returncode == 0, piped.stderr
    rows = [line for line in piped.stdout.splitlines() if "message-" in line]
    assert len(rows) == 3, piped.stdout  # the id whole, on one line
    assert all(message in row and "add_to_cart" in row for row in rows), piped.stdout
    bounded = subprocess.run(command, capture_output=True, text=True, timeout=120,
                             env={**env, "COLUMNS": "80"}, check=False)
    assert max(len(line) for line in bounded.stdout.splitlines()) <= 80, bounded.stdout
    assert message not in bounded.stdout  # folded, as a terminal of 80 columns needs


LOCKER = """\
name: locker_opened
description: A recipient opens a parcel locker.
owner: delivery
purpose: analytics
version: 1
retention: 400d
properties:
  locker_id: {type: string, pii: none}
  tracking_number: {type: string, pii: pseudonymous}
  recipient_email: {type: string, pii: personal}
  door_pin: {type: string, pii: sensitive}
"""


def test_replay_protects_what_the_accepting_spec_classes(ws: Workspace) -> None:
    """An event quarantined before it was cataloged kept its values as sent; cataloged
    with a pseudonymous ``tracking_number`` and a sensitive ``door_pin``, the replay
    loaded both raw beside the collector's hashes. A value hashed at collection (an
    email, by its name) is not hashed again."""
    secret = ws.secret()
    hashed_email = pseudonymise("ana@example.org", secret)
    with Warehouse.for_workspace(ws) as wh:
        _quarantine(wh, [_row("m9", {"locker_id": "L-7", "tracking_number": "PCL-123",
                                     "recipient_email": hashed_email, "door_pin": "4711"},
                              event="locker_opened")])
    (ws.events_dir / "locker_opened.yaml").write_text(LOCKER)
    code, out, err = run(ws, "quarantine", "replay", "--format", "json")
    assert code == 0, err
    assert json.loads(out)[0]["loaded"] == 1
    with Warehouse.for_workspace(ws) as wh:
        (row,) = wh.query("SELECT properties FROM events").to_pylist()
        assert orjson.loads(row["properties"]) == {
            "locker_id": "L-7", "tracking_number": pseudonymise("PCL-123", secret),
            "recipient_email": hashed_email}


def test_replay_hashes_nothing_twice(make_workspace: Callable[..., Workspace]) -> None:
    """A value the collector hashed stays as it is when the replay protects the event
    again: an email-like name an open spec does not declare, an IP and the ids under
    ``ip = "hash"`` and ``user_id = "hash"``. Hashed again, each matched no other row
    (the user's other events, ``nerve forget``); before, they were."""
    ws = make_workspace({"locker_opened.yaml": LOCKER + "additional_properties: true\n"},
                        extra_toml='[privacy]\nip = "hash"\nuser_id = "hash"\n')
    secret = ws.secret()
    email, ip, user = (pseudonymise(v, secret) for v in ("ana@example.org", "203.0.113.7",
                                                        "u1"))
    row = _row("m1", {"locker_id": "L-7", "contact_email": email}, event="unplanned")
    row.update(event="locker_opened", user_id=user,
               context=orjson.dumps({"ip": ip, "traits": {"email": email}}).decode())
    with Warehouse.for_workspace(ws) as wh:
        _quarantine(wh, [row])
    code, out, err = run(ws, "quarantine", "replay", "--format", "json")
    assert code == 0, err
    assert json.loads(out)[0]["loaded"] == 1
    with Warehouse.for_workspace(ws) as wh:
        (stored,) = wh.query("SELECT user_id, properties, traits, context FROM events"
                             ).to_pylist()
    assert stored["user_id"] == user
    assert orjson.loads(stored["properties"]) == {"locker_id": "L-7", "contact_email": email}
    assert orjson.loads(stored["context"]) == {"ip": ip, "traits": {"email": email}}
    assert orjson.loads(stored["traits"]) == {"email": email}


def test_replay_withholds_an_event_its_consent_does_not_cover(ws: Workspace) -> None:
    """Quarantined before it was cataloged, an event with consent for advertising only
    was kept (an event without a purpose needs some consent); its new spec's purpose is
    analytics, which the collector would not store now. The replay loads it no more:
    it leaves the quarantine, counted as withheld, and the dry run says so first."""
    consent = {"consent": {"categoryPreferences": {"Advertising": True, "Analytics": False}}}
    granted = {"consent": {"categoryPreferences": {"Analytics": True}}}
    with Warehouse.for_workspace(ws) as wh:
        _quarantine(wh, [
            {**_row("m1", {"quantity": 2}), "context": orjson.dumps(consent).decode()},
            {**_row("m2", {"quantity": 2}), "context": orjson.dumps(granted).decode()}])
    code, out, err = run(ws, "quarantine", "replay", "--dry-run", "--format", "json")
    assert code == 0, err
    dry = json.loads(out)[0]
    assert (dry["loaded"], dry["withheld"], dry["duplicates"]) == (1, 1, 0)
    code, out, err = run(ws, "quarantine", "replay", "--format", "json")
    assert code == 0, err
    real = json.loads(out)[0]
    assert (real["loaded"], real["withheld"], real["duplicates"]) == (1, 1, 0)
    with Warehouse.for_workspace(ws) as wh:
        assert _ids(wh, "events") == ["m2"]
        assert _ids(wh, "quarantine") == []


def test_replay_hashes_a_user_id_the_traits_repeat(
        make_workspace: Callable[..., Workspace]) -> None:
    """A row quarantined under ``user_id = "hash"`` before the collector hashed the ids in
    the traits holds the raw id in ``context.traits`` beside its hash in ``user_id``:
    the replay stores it as the collector does now."""
    ws = make_workspace({"locker_opened.yaml": LOCKER}, extra_toml='[privacy]\nuser_id = "hash"\n')
    user = pseudonymise("user-4711", ws.secret())
    traits = {"userId": "user-4711", "plan": "pro"}
    row = _row("m1", {"locker_id": "L-7"}, event="locker_opened")
    row.update(user_id=user, context=orjson.dumps({"traits": traits}).decode(),
               traits=orjson.dumps(traits).decode())
    with Warehouse.for_workspace(ws) as wh:
        _quarantine(wh, [row])
    code, out, err = run(ws, "quarantine", "replay", "--format", "json")
    assert code == 0, err
    assert json.loads(out)[0]["loaded"] == 1
    with Warehouse.for_workspace(ws) as wh:
        (stored,) = wh.query("SELECT user_id, traits, context FROM events").to_pylist()
    assert stored["user_id"] == user
    assert orjson.loads(stored["traits"]) == {"userId": user, "plan": "pro"}
    assert orjson.loads(stored["context"]) == {"traits": {"userId": user, "plan": "pro"}}
