"""What the collector does not store reaches ``nerve check`` through a real ``nerve serve``:
consent drops by event (``withheld``), refused requests (``refusals``), and a missing
event that consent dropped (``missing_events``). The counts ride in the event log beside
the events (``nerve.log._tally``) and land in the ``loads`` ledger, so they come from
``--workers`` processes and ``--collect-only`` collectors alike, and outlive the server."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from serverkit import EVENTS, HTTP, basic, order, rows, write_key
from tests.conftest import run_nerve

from nerve.workspace import Workspace

APP_OPENED = """\
name: app_opened
description: The app comes to the foreground.
owner: growth
purpose: analytics
version: 1
retention: 400d
properties:
  screen: {type: string, pii: none}
"""

CONSENT_NO = {"consent": {"categoryPreferences": {"Analytics": False}}}
CHECKS_YAML = """\
defaults:
  withheld: {min_events: 1}
  refusals: {fail_requests: 1}
"""


def _opened(i: int, prefix: str) -> dict[str, Any]:
    return {"type": "track", "event": "app_opened", "userId": f"u{i}",
            "messageId": f"{prefix}-{i}", "timestamp": "2026-11-28T10:00:00Z",
            "properties": {"screen": "home"}, "context": CONSENT_NO}


def _send(url: str, key: str, prefix: str) -> None:
    """8 orders stored and 2 withheld; a request of 3 app_opened, all withheld; two
    requests with an unknown key; one that is not JSON."""
    batch = [order(i, prefix) for i in range(8)]
    batch += [order(i, f"{prefix}nc", context=CONSENT_NO) for i in range(2)]
    assert HTTP.post(url + "/v1/batch", json={"batch": batch},
                     headers=basic(key)).status_code == 200
    opened = [_opened(i, prefix) for i in range(3)]
    assert HTTP.post(url + "/v1/batch", json={"batch": opened},
                     headers=basic(key)).status_code == 200
    for _ in range(2):
        assert HTTP.post(url + "/v1/batch", json={"batch": [order(0, "x")]},
                         headers=basic("no-such-key")).status_code == 401
    assert HTTP.post(url + "/v1/batch", content=b"{", headers=basic(key)).status_code == 400


def _check(root: Path) -> list[dict[str, Any]]:
    result = run_nerve(root, "check", "--all", "--format", "json",
                       "--select", "withheld,refusals,missing_events")
    assert result.exit_code in (0, 1, 3), result.output
    return list(orjson.loads(result.stdout))


def _until_recorded(root: Path) -> list[dict[str, Any]]:
    """The checks' results once the loader has recorded every count (it loads in the
    background, on the CPU the collector leaves; a refusal's count waits up to a second
    for a round of its own)."""
    deadline = time.monotonic() + 90
    while True:
        results = _check(root)
        refused = {r["dimensions"].get("code"): r["observed"] for r in results
                   if r["check"] == "refusals" and r["dimensions"]}
        withheld = {r["event"]: r["details"].get("withheld") for r in results
                    if r["check"] == "withheld"}
        if (refused == {"unauthorized": 2, "invalid_json": 1}
                and withheld == {"order_completed": 2, "app_opened": 3}):
            return results
        assert time.monotonic() < deadline, results
        time.sleep(0.3)


def _assert_reported(results: list[dict[str, Any]]) -> None:
    by = {(r["check"], r["event"], r["dimensions"].get("code")): r for r in results}
    orders = by["withheld", "order_completed", None]
    assert orders["status"] == "warn"  # 20% > 10%, under the 90% that fails
    assert orders["observed"] == pytest.approx(0.2)
    assert orders["details"] == {"withheld": 2, "stored": 8, "arrived": 10,
                                 "sources": {"server": 2}}
    assert orders["message"].startswith("20% of order_completed events were withheld for "
                                        "consent in the last 24 h: 2 of 10 arrived")
    opened = by["withheld", "app_opened", None]
    assert opened["status"] == "fail"  # every one, with min_events: 1 in checks.yaml
    assert opened["details"]["arrived"] == 3
    assert "None was stored" in opened["message"]

    unauthorized = by["refusals", None, "unauthorized"]
    assert unauthorized["status"] == "fail"  # 2 > fail_requests: 1
    assert unauthorized["dimensions"] == {"status": "401", "code": "unauthorized"}
    assert unauthorized["message"].startswith("The collector refused 2 requests with 401 "
                                              "unauthorized in the last 24 h")
    assert by["refusals", None, "invalid_json"]["status"] == "warn"

    missing = by["missing_events", "app_opened", None]
    assert missing["status"] == "warn"
    assert ("3 app_opened events arrived in that time and were withheld for consent"
            in missing["message"])
    assert missing["details"] == {"withheld": 3}


def test_consent_drops_and_refusals_of_workers_reach_nerve_check(
        make_workspace: Callable[..., Workspace], serve: Callable[..., Any]) -> None:
    ws = make_workspace({**EVENTS, "app_opened.yaml": APP_OPENED})
    (ws.root / "checks.yaml").write_text(CHECKS_YAML, encoding="utf-8")
    server = serve(ws, "--workers", "2")
    _send(server.url, write_key(ws), "w")
    _assert_reported(_until_recorded(ws.root))
    assert server.stop() == 0

    # durable: after the stop, the ledger still says it (and the checks read it offline)
    _assert_reported(_check(ws.root))
    ledger = [orjson.loads(r["withheld"]) for r in
              rows(ws, "SELECT withheld FROM loads WHERE withheld IS NOT NULL")]
    consent: dict[str, int] = {}
    for counts in ledger:
        for event, n in counts.get("consent", {}).get("server", {}).items():
            consent[event] = consent.get(event, 0) + n
    assert consent == {"order_completed": 2, "app_opened": 3}
    # the tally rows are the ledger's, never an event's
    assert rows(ws, "SELECT count(*) AS n FROM events WHERE type = 'nerve:tally'") == [
        {"n": 0}]
    assert rows(ws, "SELECT count(*) AS n FROM quarantine") == [{"n": 0}]


def test_a_collect_only_collector_reports_its_drops_through_the_stream(
        make_workspace: Callable[..., Workspace], nats_server: Any, tmp_path: Path,
        serve: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    monkeypatch.setenv("NERVE_SECRET", "a-secret-shared-by-every-collector")
    ws = make_workspace({**EVENTS, "app_opened.yaml": APP_OPENED},
                        extra_toml=f'[log]\nurl = "{nats_server.url}"\n')
    (ws.root / "checks.yaml").write_text(CHECKS_YAML, encoding="utf-8")
    root = tmp_path / "replica"  # another machine's checkout of the workspace
    root.mkdir()
    shutil.copy(ws.root / "nerve.toml", root / "nerve.toml")
    shutil.copytree(ws.events_dir, root / "events")
    loading = serve(ws)
    collector = serve(Workspace.load(root), "--collect-only")
    _send(collector.url, write_key(ws), "c")
    _assert_reported(_until_recorded(ws.root))
    assert collector.stop() == 0
    assert loading.stop() == 0
