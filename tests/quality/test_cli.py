"""``nerve check`` on a real warehouse file, through a real ``nerve serve``, and the
server's scheduler with its webhook (a real HTTP receiver on loopback)."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from xml.etree import ElementTree as ET

import httpx
import pytest
from typer.testing import CliRunner

from nerve.catalog import Catalog
from nerve.cli import ExitCode, app
from nerve.quality import Scheduler, Status, latest_results, run_and_record
from nerve.warehouse import Warehouse
from nerve.workspace import Workspace

runner = CliRunner()

SIGNUP = """\
name: signup
description: A visitor creates an account.
owner: growth
purpose: analytics
retention: 400d
properties:
  plan: {type: string, required: true, pii: none}
"""
REFUND = SIGNUP.replace("signup", "refund").replace("A visitor creates an account",
                                                    "Money goes back")


def _fill(ws: Workspace, events_table: Any, quarantine_table: Any, *, bad: int) -> None:
    """Live signups over the last hours, ``bad`` of them quarantined; no refunds."""
    now = datetime.now(UTC)
    rows = [{"event": "signup", "timestamp": now - timedelta(minutes=3 * i),
             "user_id": f"u{i}", "properties": {"plan": "free"}} for i in range(60)]
    quarantined = [{"event": "signup", "timestamp": now - timedelta(minutes=7 * i),
                    "properties": {"plan": 3}, "violations": [
                        {"path": "$.properties.plan", "rule": "type", "message": "not a string"}]}
                   for i in range(bad)]
    with Warehouse.for_workspace(ws) as wh:
        cur = wh.cursor()
        good = events_table(rows)
        cur.register("good_rows", good)
        cur.execute("INSERT INTO events SELECT * FROM good_rows")
        if quarantined:
            q = quarantine_table(quarantined)
            cur.register("bad_rows", q)
            cur.execute("INSERT INTO quarantine SELECT * FROM bad_rows")


@pytest.fixture
def workspace(make_workspace: Callable[..., Workspace], events_table: Any,
              quarantine_table: Any) -> Callable[..., Workspace]:
    def make(bad: int = 0, checks_yaml: str = "", refund: bool = True) -> Workspace:
        events = {"signup.yaml": SIGNUP}
        if refund:
            events["refund.yaml"] = REFUND
        ws = make_workspace(events)
        if checks_yaml:
            (ws.root / "checks.yaml").write_text(checks_yaml)
        _fill(ws, events_table, quarantine_table, bad=bad)
        return ws
    return make


def check(ws: Workspace, *args: str) -> Any:
    return runner.invoke(app, ["--workspace", str(ws.root), "check", *args])


def test_exit_codes_and_json(workspace: Callable[..., Workspace]) -> None:
    ws = workspace(bad=10, refund=True)
    result = check(ws, "--format", "json")
    assert result.exit_code == ExitCode.FAILED, result.output
    rows = json.loads(result.stdout)
    assert isinstance(rows, list)
    assert rows
    for row in rows:
        assert {"check", "status", "event", "dimensions", "observed", "expected", "message",
                "since"} <= set(row)
        assert row["status"] in ("pass", "warn", "fail", "error")
    schema = [r for r in rows if r["check"] == "schema"]
    assert schema[0]["status"] == "fail"
    assert schema[0]["event"] == "signup"
    assert "failed the catalog schema" in schema[0]["message"]
    assert "most often $.properties.plan type (10)" in schema[0]["message"]
    # warnings only: refund is cataloged but never arrived
    warn = check(ws, "--select", "missing_events", "--format", "json")
    assert warn.exit_code == ExitCode.WARN
    assert [r["event"] for r in json.loads(warn.stdout) if r["status"] == "warn"] == ["refund"]
    ok = check(ws, "--select", "freshness,drift")
    assert ok.exit_code == ExitCode.OK, ok.output
    assert "pass" in ok.stdout


def test_csv_keys_each_row_as_json_does(workspace: Callable[..., Workspace]) -> None:
    """A CI script reading CSV gets the stable name and the counts behind each result."""
    ws = workspace(bad=10)
    as_json = json.loads(check(ws, "--format", "json").stdout)
    result = check(ws, "--format", "csv")
    assert result.exit_code == ExitCode.FAILED
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["name"] for r in rows] == [r["name"] for r in as_json]
    assert [json.loads(r["details"]) for r in rows] == [r["details"] for r in as_json]
    schema = next(r for r in rows if r["check"] == "schema" and r["status"] == "fail")
    assert json.loads(schema["details"])["quarantined"] == 10


def test_junit_and_table(workspace: Callable[..., Workspace]) -> None:
    ws = workspace(bad=10)
    result = check(ws, "--format", "junit", "--select", "schema")
    assert result.exit_code == ExitCode.FAILED
    root = ET.fromstring(result.stdout)
    assert root.tag == "testsuites"
    assert int(root.get("failures", "0")) >= 1
    table = check(ws, "--select", "schema")
    assert "signup" in table.stdout
    assert table.stdout.rstrip().endswith("1 fail")


def test_bad_input_exits_invalid(workspace: Callable[..., Workspace]) -> None:
    ws = workspace(checks_yaml="defaults:\n  volume: {sensitivty: 3}\n")
    result = check(ws)
    assert result.exit_code == ExitCode.INVALID
    assert "checks.yaml" in result.output
    assert "sensitivty" in result.output
    (ws.root / "checks.yaml").unlink()
    typo = check(ws, "--select", "freshnes")
    assert typo.exit_code == ExitCode.INVALID
    assert "freshnes" in typo.output


@pytest.mark.parametrize(("checks_yaml", "select", "why"), [
    ("", "sequence", "select: sequence: no sequences are configured"),
    ("", "rate", "select: rate: no rates are configured"),
    ("defaults:\n  lateness: {enabled: false}\n", "lateness,schema",
     "select: lateness: switched off (defaults.lateness.enabled: false"),
])
def test_selecting_a_check_with_nothing_to_run_is_invalid(
        workspace: Callable[..., Workspace], checks_yaml: str, select: str, why: str) -> None:
    """It printed "no checks ran" and exited 0: a CI step checking nothing stayed green."""
    ws = workspace(checks_yaml=checks_yaml)
    result = check(ws, "--select", select, "--format", "json")
    assert result.exit_code == ExitCode.INVALID, result.output
    assert why in result.stderr
    assert result.stdout == ""


def test_selecting_a_check_with_nothing_to_run_over_http_is_a_400(
        workspace: Callable[..., Workspace], serve: Callable[..., Any]) -> None:
    """The HTTP API answered an empty passing run where ``nerve check`` exits 4."""
    ws = workspace()
    server = serve(ws)
    headers = {"Authorization": "Bearer " + json.loads(
        (ws.data_dir / "server.json").read_text())["admin_token"]}
    refused = httpx.post(server.url + "/v1/admin/checks/run", headers=headers,
                         json={"select": ["volume", "sequence"]}, timeout=60)
    assert refused.status_code == 400, refused.text
    body = refused.json()
    assert body["message"] == ("select: sequence: no sequences are configured (sequences: "
                               "in checks.yaml), so it has nothing to run")
    assert set(body) == {"code", "message", "details"}
    latest = httpx.get(server.url + "/v1/admin/checks/latest", headers=headers, timeout=30)
    assert latest.json()["results"] == []  # refused before anything ran or was recorded


def test_every_checks_yaml_mistake_is_reported_in_one_run(
        workspace: Callable[..., Workspace]) -> None:
    ws = workspace(checks_yaml="defaults:\n  volume: {sensitivty: 3}\n  freshnes: {}\n"
                               "events:\n  singup:\n    volume: {direction: sideways}\n"
                               "schedule: 5m\n")
    result = check(ws)
    assert result.exit_code == ExitCode.INVALID, result.output
    reported = [line.removeprefix("error: ") for line in result.stderr.splitlines()]
    assert [line.split(": ", 2)[:2] for line in reported] == [
        [f"{ws.root / 'checks.yaml'}:2", "defaults.volume.sensitivty"],
        [f"{ws.root / 'checks.yaml'}:3", "defaults.freshnes"],
        [f"{ws.root / 'checks.yaml'}:5", "events.singup"],
        [f"{ws.root / 'checks.yaml'}:6", "events.singup.volume.direction"],
        [f"{ws.root / 'checks.yaml'}:7", "schedule"],
    ]
    assert "(did you mean signup?)" in reported[2]


def test_names_the_catalog_lacks_are_config_errors(workspace: Callable[..., Workspace]) -> None:
    """A misspelt key used to make the result vanish (null on every row: exit 0), and a
    misspelt preceded_by failed the sequence check on good data (exit 1)."""
    ws = workspace(checks_yaml="events:\n  signup:\n    natural_key: [properties.plann]\n")
    result = check(ws, "--select", "natural_key_duplicates", "--all")
    assert result.exit_code == ExitCode.INVALID, result.output
    assert "checks.yaml:3: events.signup.natural_key[0]" in result.output
    assert "did you mean plan?" in result.output
    (ws.root / "checks.yaml").write_text(
        "sequences:\n  - {event: signup, preceded_by: refnd}\n")
    result = check(ws, "--select", "sequence")
    assert result.exit_code == ExitCode.INVALID, result.output
    assert "checks.yaml:2: sequences[0].preceded_by: 'refnd' is not a cataloged" in result.output
    (ws.root / "checks.yaml").write_text("events:\n  signup:\n    natural_key: [properties.plan]\n")
    result = check(ws, "--select", "natural_key_duplicates", "--all", "--format", "json")
    assert [r["event"] for r in json.loads(result.stdout)] == ["signup"]


def test_check_goes_through_a_running_server(workspace: Callable[..., Workspace],
                                            serve: Callable[..., Any]) -> None:
    ws = workspace(bad=10)
    server = serve(ws)
    result = check(ws, "--format", "json", "--select", "schema")
    assert result.exit_code == ExitCode.FAILED, result.output
    rows = json.loads(result.stdout)
    assert rows[0]["check"] == "schema"
    assert rows[0]["status"] == "fail"
    # the server kept the run in its history
    info = json.loads((ws.data_dir / "server.json").read_text())
    headers = {"Authorization": f"Bearer {info['admin_token']}"}
    latest = httpx.get(server.url + "/v1/admin/checks/latest", headers=headers, timeout=30)
    assert latest.status_code == 200
    assert latest.json()["status"] == "fail"
    assert latest.json()["results"][0]["message"] == rows[0]["message"]
    refused = httpx.post(server.url + "/v1/admin/checks/run", json={}, timeout=30)
    assert refused.status_code == 401


def test_a_run_as_of_another_time_is_not_the_latest_health(
        workspace: Callable[..., Workspace], serve: Callable[..., Any]) -> None:
    """``--now`` in the past re-checks then: answered, but the latest recorded run (what
    data_health, ask, readiness and the console call the health now) stays the current one."""
    ws = workspace(bad=10)
    server = serve(ws)
    current = check(ws, "--format", "json")
    assert current.exit_code == ExitCode.FAILED, current.output
    headers = {"Authorization": "Bearer " + json.loads(
        (ws.data_dir / "server.json").read_text())["admin_token"]}

    def latest() -> dict[str, Any]:
        answer = httpx.get(server.url + "/v1/admin/checks/latest", headers=headers, timeout=30)
        assert answer.status_code == 200
        body: dict[str, Any] = answer.json()
        return body

    before = latest()
    assert before["results"]
    past = (datetime.now(UTC) - timedelta(minutes=30)).isoformat()
    old = check(ws, "--format", "json", "--now", past)
    assert json.loads(old.stdout), old.output
    assert json.loads(old.stdout) != json.loads(current.stdout)
    assert "not recorded as the current health" in old.stderr
    assert latest() == before
    ran = httpx.post(server.url + "/v1/admin/checks/run", headers=headers,
                     json={"select": ["volume"], "now": past}, timeout=60)
    assert ran.status_code == 200
    assert ran.json()["results"]
    assert latest() == before


def test_a_run_of_some_events_or_checks_does_not_hide_the_other_problems(
        workspace: Callable[..., Workspace]) -> None:
    """A run narrowed to some checks updates those checks' part of the latest health; a
    run narrowed to some events is not recorded (it says nothing of the others)."""
    ws = workspace(bad=10)
    catalog = Catalog.load(ws.events_dir)
    with Warehouse.for_workspace(ws) as wh:
        full, _ = run_and_record(wh, ws, catalog)
        assert "fail" in {str(r.status) for r in latest_results(wh.ibis())}
        drift, _ = run_and_record(wh, ws, catalog, select=["drift"])
        assert {r.check for r in drift} == {"drift"}
        latest = latest_results(wh.ibis())
        assert sorted(r.name for r in latest) == sorted(r.name for r in full)
        assert next(r for r in latest if r.check == "schema").status is Status.fail
        refunds, _ = run_and_record(wh, ws, catalog, select=["refund"])
        assert all(r.event == "refund" for r in refunds)
        assert latest_results(wh.ibis()) == latest


def test_scheduler_records_and_alerts_once(workspace: Callable[..., Workspace],
                                           receiver: tuple[str, list[dict[str, Any]]]) -> None:
    url, received = receiver
    ws = workspace(bad=10, checks_yaml=f"webhook: {{url: '{url}', alert_on: [fail]}}\n")
    ws = Workspace.load(ws.root)
    with Warehouse.for_workspace(ws) as wh:
        state = SimpleNamespace(workspace=ws, catalog=Catalog.load(ws.events_dir),
                                warehouse=wh)
        scheduler = Scheduler(state, every=0.1).start()
        deadline = time.monotonic() + 60
        while scheduler.runs < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        scheduler.stop()
        assert scheduler.runs >= 2
        history = wh.ibis().table("check_results").count().execute()
        assert history >= 2 * len(scheduler.last)
        assert latest_results(wh.ibis())
    # the failing schema check alerted once, not at every run
    assert len(received) == 1
    text = received[0]["body"]["text"]
    assert "signup events from source web failed the catalog schema" in text


def test_workspace_without_warehouse(make_workspace: Callable[..., Workspace]) -> None:
    ws = make_workspace({"signup.yaml": SIGNUP})
    result = check(ws)
    assert result.exit_code == ExitCode.INVALID
    assert "no warehouse yet" in result.output


_ = Path
