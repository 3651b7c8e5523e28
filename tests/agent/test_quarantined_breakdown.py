"""A breakdown value whose events all went to the quarantine has no row in
``query_metrics``: ``nerve ask`` keeps the same numbers and says why it is not listed.
Sent through the real collector, log and loader into the workspace's DuckDB warehouse."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.conftest import collect_and_load

from nerve.agent import Context, ask
from nerve.agent._tools import run_tool
from nerve.warehouse import Warehouse
from nerve.workspace import Workspace

EVENTS = {
    "play.yaml": "name: play\nproperties:\n  track_id: {type: string, required: true}\n",
    "app_opened.yaml": "name: app_opened\n",
}
METRICS = ("dimensions:\n  platform:\n    expr: context.device.type\n"
           "metrics:\n  plays:\n    measure: {agg: count, event: play}\n")


def _message(i: int, event: str, device: str, sent: datetime, **props: Any) -> dict[str, Any]:
    return {"type": "track", "event": event, "userId": f"u{i}", "messageId": f"m{i}",
            "timestamp": sent.isoformat(), "properties": props,
            "context": {"device": {"type": device}}}


def test_a_value_whose_events_are_all_quarantined_is_named_not_dropped(
        make_workspace: Callable[..., Workspace]) -> None:
    ws = make_workspace(EVENTS)
    (ws.metrics_dir / "m.yaml").write_text(METRICS)
    # two hours ago, and asked about "today" an hour after that: whatever today is
    sent = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    now = sent + timedelta(hours=1)
    collect_and_load(ws, [
        *(_message(i, "play", "web", sent, track_id="t") for i in range(5)),
        # android's plays lack the required track_id: all go to the quarantine
        *(_message(10 + i, "play", "android", sent) for i in range(3)),
        _message(20, "app_opened", "android", sent),
    ])
    with Warehouse.for_workspace(ws, read_only=True) as warehouse:
        ctx = Context.open(ws, warehouse, now=now)
        day = sent.date().isoformat()
        rows = run_tool(ctx, "query_metrics", {"metrics": ["plays"], "by": ["platform"],
                                               "since": day, "until": day})["rows"]
        answer = ask(f"plays on {day} by platform", ctx).as_dict()
    # the tool's figures: android has no row (no play of it reached the warehouse)
    assert rows == [{"platform": "web", "plays": 5}]
    counted = {n["label"]: n["value"] for n in answer["numbers"]
               if n["tool"] == "query_metrics"}
    assert list(counted.values()) == [5]
    assert "web 5" in answer["answer"]
    # and the words say where android's plays went, with their count
    assert "Not listed: android, whose play events in this range are all in the " \
           "quarantine (android 3)" in answer["answer"]
    held = [n for n in answer["numbers"] if n["tool"] == "sql"]
    assert [(n["label"], n["value"]) for n in held] == [("play quarantined platform=android", 3)]
    assert any("quarantine" in c and "android 3" in c for c in answer["caveats"])
    # the command it points at lists the range's quarantined plays, not every one
    listing = f"nerve quarantine list --event play --since {day} --until {day}"
    assert f"(`{listing}`)" in answer["answer"]
    [ran] = [q for q in answer["queries"] if q["tool"] == "sql"]
    assert ran["command"] == listing
