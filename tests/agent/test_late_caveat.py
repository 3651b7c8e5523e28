"""A lateness caveat is about the period its late events happened in: 65 ride_completed
events received in the last day that happened on a Sunday ten days before were quoted on
an answer about the next week too. Sent through the real collector, log and loader into
the workspace's DuckDB warehouse, checked by ``nerve check``, asked with ``ask``."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from nerve.agent import Context, ask
from nerve.catalog import Catalog
from nerve.collector import Collector
from nerve.loader import Loader
from nerve.log import LogWriter
from nerve.quality import record_results
from nerve.quality._scheduler import run_and_record
from nerve.warehouse import Warehouse
from nerve.workspace import Workspace

NOW = datetime(2026, 11, 25, 17, tzinfo=UTC)  # a Wednesday, noon in New York


def _send(ws: Workspace, log: LogWriter, messages: list[dict[str, Any]],
          received: datetime) -> None:
    key = ws.config.sources[0].write_key
    collected = Collector(ws, Catalog.load(ws.events_dir)).collect(
        orjson.dumps({"batch": messages}), endpoint="batch",
        authorization="Basic " + base64.b64encode(f"{key}:".encode()).decode(),
        received_at=int(received.timestamp() * 1_000_000))
    log.append(collected.record_batch())


def _ride(n: int, at: datetime, sent: datetime, event: str = "ride_completed"
          ) -> dict[str, Any]:
    return {"type": "track", "event": event, "userId": f"u{n % 40}",
            "messageId": f"m{n}", "timestamp": at.isoformat(), "sentAt": sent.isoformat()}


def _caveats(ws: Workspace, question: str, check: str = "lateness") -> list[str]:
    with Warehouse.for_workspace(ws, read_only=True) as warehouse:
        answer = ask(question, Context.open(ws, warehouse, now=NOW)).as_dict()
    return [c for c in answer["caveats"] if c.startswith(f"{check} check")]


def _rides(make_workspace: Callable[..., Workspace]) -> tuple[Workspace, list[Any]]:
    """Rides and app opens from 2026-11-02 on (New York days), no ride on Thursday
    2026-11-05, and 65 late rides; checked as of NOW, the results recorded."""
    ws = make_workspace({"ride_completed.yaml": "name: ride_completed\n",
                         "app_opened.yaml": "name: app_opened\n"})
    toml = ws.root / "nerve.toml"
    toml.write_text(toml.read_text().replace('timezone = "UTC"',
                                             'timezone = "America/New_York"'))
    (ws.metrics_dir / "m.yaml").write_text(
        "metrics:\n  ride_completions:\n    measure: {agg: count, event: ride_completed}\n")
    ws = Workspace.load(ws.root)
    n = 0
    with LogWriter(ws.log_dir, "test") as log:
        # 30 rides and 30 app opens a day from 2026-11-02 on, each received a second
        # after it happened; no ride on 2026-11-05 (day 3)
        for day in range(23):
            start = datetime(2026, 11, 2, 14, tzinfo=UTC) + timedelta(days=day)
            sent = start + timedelta(minutes=30)
            for event in ("ride_completed", "app_opened")[day == 3:]:
                _send(ws, log, [_ride(n + i, start + timedelta(minutes=i), sent, event)
                                for i in range(30)], sent + timedelta(seconds=1))
                n += 30
        # 65 rides of Sunday 2026-11-15, 22:00 in New York (already Monday in UTC),
        # queued on phones and received two hours ago
        happened = datetime(2026, 11, 16, 3, tzinfo=UTC)
        sent = NOW - timedelta(hours=2)
        _send(ws, log, [_ride(n + i, happened + timedelta(seconds=i), sent)
                        for i in range(65)], sent)
        log.sync()
    with Warehouse.for_workspace(ws) as warehouse:
        Loader(ws.log_dir, warehouse).load_once()
        # `nerve check` as of NOW, recorded as the data's health (as the scheduler does)
        results, _ = run_and_record(warehouse, ws, Catalog.load(ws.events_dir), now=NOW)
        record_results(warehouse.ibis(), results, at=NOW)
    return ws, results


def test_a_lateness_caveat_is_said_only_of_the_period_its_late_events_happened_in(
        make_workspace: Callable[..., Workspace]) -> None:
    ws, results = _rides(make_workspace)
    late = [r.as_dict() for r in results
            if r.check == "lateness" and r.event == "ride_completed"]
    assert [r["status"] for r in late] == ["fail"], late
    assert late[0]["details"]["late"] == 65
    assert late[0]["details"]["happened_from"] == "2026-11-16T03:00:00+00:00"
    assert late[0]["details"]["happened_to"] == "2026-11-16T03:01:04+00:00"

    # the week they happened in (Monday to Sunday, New York days) says so
    [caveat] = _caveats(ws, "ride completions from 2026-11-09 to 2026-11-15")
    assert "65 of" in caveat
    # the next week (Monday 2026-11-16 in UTC holds them, not in New York) does not
    assert _caveats(ws, "ride completions from 2026-11-16 to 2026-11-22") == []
    assert _caveats(ws, "ride completions on 2026-11-14") == []
    # a range up to now, and one that holds the Sunday, still do
    assert _caveats(ws, "ride completions from 2026-11-15 to 2026-11-16") != []
    assert _caveats(ws, "ride completions this month") != []
    # a comparison reads the week before too, which holds them
    assert _caveats(ws, "ride completions from 2026-11-16 to 2026-11-22 vs the week before")



def test_a_day_without_rides_is_a_caveat_of_the_periods_that_hold_it_only(
        make_workspace: Callable[..., Workspace]) -> None:
    ws, results = _rides(make_workspace)
    gap = [r for r in results if r.check == "missing_events" and r.event == "ride_completed"
           and r.dimensions.get("day")]
    assert [r.dimensions["day"] for r in gap] == ["2026-11-05"]
    [caveat] = _caveats(ws, "ride completions from 2026-11-02 to 2026-11-08", "missing_events")
    assert "2026-11-05" in caveat
    assert _caveats(ws, "ride completions from 2026-11-09 to 2026-11-15", "missing_events") == []
