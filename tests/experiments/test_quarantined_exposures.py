"""Exposures the collector quarantined are not counted, and the readout says so: sent
through the real collector, log and loader into the workspace's DuckDB warehouse."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.conftest import collect_and_load
from typer.testing import CliRunner

from nerve.cli import ExitCode, app
from nerve.workspace import Workspace

runner = CliRunner()

EVENTS = {
    "experiment_viewed.yaml": "name: experiment_viewed\nproperties:\n"
                              "  experiment_id: {type: string}\n  variant_id: {type: string}\n",
    "purchase_complete.yaml": "name: purchase_complete\n",
}
SEGMENT_EVENT = ("name: Experiment Viewed\nproperties:\n  experiment_id: {type: string}\n"
                 "  experiment_name: {type: string}\n  variation_id: {type: string}\n"
                 "  variation_name: {type: string}\n")
METRICS = "metrics:\n  orders:\n    measure: {agg: count, event: purchase_complete}\n"


def _exposure(i: int, sent: datetime) -> dict[str, Any]:
    """Even users come from nerve's SDK, odd ones from a Segment-spec SDK."""
    variant = "a" if i % 4 < 2 else "b"
    event, field = (("experiment_viewed", "variant_id") if i % 2 == 0
                    else ("Experiment Viewed", "variation_id"))
    return {"type": "track", "event": event, "userId": f"u{i}", "messageId": f"x{i}",
            "timestamp": sent.isoformat(), "properties": {"experiment_id": "e", field: variant}}


def _analyze(ws: Workspace, *fmt: str) -> Any:
    return runner.invoke(app, ["-w", str(ws.root), "experiment", "analyze", "e", *fmt])


def _experiment_workspace(make_workspace: Callable[..., Workspace]) -> tuple[Workspace, datetime]:
    """A workspace with experiment ``e`` on the orders metric, and a send time an hour ago."""
    ws = make_workspace(EVENTS)
    (ws.metrics_dir / "m.yaml").write_text(METRICS)
    (ws.root / "experiments").mkdir()
    (ws.root / "experiments" / "e.yaml").write_text("key: e\nvariants: [a, b]\nprimary: orders\n")
    return ws, datetime.now(UTC) - timedelta(hours=1)


def test_quarantined_exposures_are_reported_and_count_once_cataloged(
        make_workspace: Callable[..., Workspace]) -> None:
    ws, sent = _experiment_workspace(make_workspace)
    collect_and_load(ws, [_exposure(i, sent) for i in range(40)])

    result = _analyze(ws, "-f", "json")
    assert result.exit_code == ExitCode.OK, result.output
    assert [r["units"] for r in json.loads(result.stdout)["rows"]] == [10, 10]  # nerve's shape only
    assert "warning: 20 exposures of e are in the quarantine and not counted here " \
           "(20 'Experiment Viewed')" in result.stderr
    table = _analyze(ws)
    assert "WARNING: 20 exposures of e are in the quarantine" in table.stdout

    # the documented remedy: catalog the Segment shape, replay the quarantine
    (ws.events_dir / "experiment_viewed_segment.yaml").write_text(SEGMENT_EVENT)
    replay = runner.invoke(app, ["-w", str(ws.root), "quarantine", "replay"])
    assert replay.exit_code == ExitCode.OK, replay.output
    result = _analyze(ws, "-f", "json")
    assert [r["units"] for r in json.loads(result.stdout)["rows"]] == [20, 20]
    # (no order was sent: the readout warns of that, and of nothing in the quarantine)
    assert "quarantine" not in result.stderr
    assert "quarantine" not in _analyze(ws).stdout


def test_exposures_of_other_experiments_in_the_quarantine_are_not_reported(
        make_workspace: Callable[..., Workspace]) -> None:
    ws, sent = _experiment_workspace(make_workspace)
    other = [{**m, "properties": {**m["properties"], "experiment_id": "other"}}
             for m in (_exposure(i, sent) for i in range(1, 10, 2))]
    collect_and_load(ws, [*(_exposure(i, sent) for i in range(0, 40, 2)), *other])
    result = _analyze(ws, "-f", "json")
    assert result.exit_code == ExitCode.OK, result.output
    assert "quarantine" not in result.stderr
