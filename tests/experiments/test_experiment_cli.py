"""nerve experiment on a workspace's warehouse file: JSON rows, table readout, errors."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from nerve.cli import ExitCode, app
from nerve.warehouse import Warehouse

runner = CliRunner()

EVENTS = {
    "experiment_viewed.yaml": "name: experiment_viewed\nproperties:\n"
                              "  experiment_id: {type: string}\n  variant_id: {type: string}\n",
    "purchase_complete.yaml": "name: purchase_complete\n",
}
METRICS = "metrics:\n  orders:\n    measure: {agg: count, event: purchase_complete}\n"
EXPERIMENT = "key: e\nvariants: [a, b]\nprimary: orders\n"


def test_analyze_json_and_table(make_workspace: Any, events_table: Any) -> None:
    ws = make_workspace(EVENTS)
    (ws.metrics_dir / "m.yaml").write_text(METRICS)
    (Path(ws.root) / "experiments").mkdir()
    (Path(ws.root) / "experiments" / "e.yaml").write_text(EXPERIMENT)
    now = datetime.now(UTC) - timedelta(hours=1)
    rows = []
    for i in range(40):
        user, variant = f"u{i}", "a" if i % 2 else "b"
        rows.append({"timestamp": now, "event": "experiment_viewed", "user_id": user,
                     "properties": {"experiment_id": "e", "variant_id": variant}})
        rows.extend({"timestamp": now + timedelta(minutes=1 + k), "event": "purchase_complete",
                     "user_id": user} for k in range(i % 3))
    table = events_table(rows)
    with Warehouse.for_workspace(ws) as warehouse:
        cursor = warehouse.cursor()
        cursor.register("_arrow", table)
        names = ", ".join(f'"{c}"' for c in table.column_names)
        cursor.execute(f"INSERT INTO events ({names}) SELECT {names} FROM _arrow")
    result = runner.invoke(app, ["-w", str(ws.root), "experiment", "analyze", "e", "-f", "json"])
    assert result.exit_code == ExitCode.OK, result.output
    data = json.loads(result.stdout)
    assert [(r["variant"], r["metric"], r["units"]) for r in data] == [("a", "orders", 20),
                                                                         ("b", "orders", 20)]
    expected_a = sum(i % 3 for i in range(40) if i % 2) / 20
    assert data[0]["mean"] == expected_a
    assert data[1]["lift"] is not None
    assert data[1]["srm_p_value"] == 1.0
    result = runner.invoke(app, ["-w", str(ws.root), "experiment", "analyze", "e"])
    assert result.exit_code == ExitCode.OK
    assert "Decision:" in result.stdout
    result = runner.invoke(app, ["-w", str(ws.root), "experiment", "analyze", "nope"])
    assert result.exit_code == ExitCode.INVALID
    assert "no experiment 'nope'" in result.stderr


def test_bad_definition_names_file_line_field(make_workspace: Any) -> None:
    ws = make_workspace()
    folder = Path(ws.root) / "experiments"
    folder.mkdir()
    (folder / "x.yaml").write_text("key: x\nvariants: [a, b]\ncontrol: c\nprimary: orders\n")
    result = runner.invoke(app, ["-w", str(ws.root), "experiment", "list"])
    assert result.exit_code == ExitCode.INVALID
    assert "x.yaml:3: x.control: 'c' is not one of the variants" in result.stderr


def test_metrics_the_experiment_cannot_read_name_file_line_field(make_workspace: Any) -> None:
    ws = make_workspace({**EVENTS, "app_opened.yaml": "name: app_opened\nproperties:\n"
                                                      "  session_id: {type: string}\n"})
    (ws.metrics_dir / "m.yaml").write_text(
        METRICS + "  sessions:\n    measure: {agg: count_distinct, event: app_opened, "
                  "of: session_id}\nsegments:\n  ios: context.os.name = 'iOS'\n")
    folder = Path(ws.root) / "experiments"
    folder.mkdir()
    (folder / "x.yaml").write_text("key: x\nvariants: [a, b]\nprimary: orders\n"
                                   "secondary: [order]\nguardrails: [sessions]\n"
                                   "targeting: {segment: iso}\n")
    with Warehouse.for_workspace(ws):
        pass
    for command in ("analyze", "plan"):
        result = runner.invoke(app, ["-w", str(ws.root), "experiment", command, "x"])
        assert result.exit_code == ExitCode.INVALID, result.output
        lines = [line.removeprefix("error: ").replace(str(folder), "experiments")
                 for line in result.stderr.splitlines()]
        assert lines == [
            "experiments/x.yaml:4: x.secondary: unknown metric 'order'; did you mean orders?",
            "experiments/x.yaml:5: x.guardrails: metric 'sessions' (count_distinct(session_id) "
            "of app_opened): experiments read metrics made of counts and sums per unit; "
            "count_distinct per unit is not additive",
            "experiments/x.yaml:6: x.targeting: segment: unknown segment 'iso' (known: ios)",
        ]
