"""nerve experiment on a workspace's warehouse file: JSON rows, table readout, errors."""

import json
import math
import statistics
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import NormalDist
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


def _load_exposures_and_orders(ws: Any, events_table: Any) -> None:
    """40 users exposed to experiment e an hour ago, alternating a and b, user i with
    i % 3 orders after it."""
    now = datetime.now(UTC) - timedelta(hours=1)
    rows = []
    for i in range(40):
        user, variant = f"u{i}", "a" if i % 2 else "b"
        rows.append({"timestamp": now, "event": "experiment_viewed", "user_id": user,
                     "properties": {"experiment_id": "e", "variant_id": variant}})
        rows.extend({"timestamp": now + timedelta(minutes=1 + k), "event": "purchase_complete",
                     "user_id": user} for k in range(i % 3))
    _insert(ws, events_table(rows))


def _insert(ws: Any, table: Any) -> None:
    """Rows of ``events_table`` into the workspace's warehouse."""
    with Warehouse.for_workspace(ws) as warehouse:
        cursor = warehouse.cursor()
        cursor.register("_arrow", table)
        names = ", ".join(f'"{c}"' for c in table.column_names)
        cursor.execute(f"INSERT INTO events ({names}) SELECT {names} FROM _arrow")


def _refused(ws: Any, command: str, folder: Path) -> list[str]:
    """The error lines of ``nerve experiment COMMAND x``, which must exit INVALID, with
    the experiments folder's path written ``experiments``."""
    result = runner.invoke(app, ["-w", str(ws.root), "experiment", command, "x"])
    assert result.exit_code == ExitCode.INVALID, result.output
    return [line.removeprefix("error: ").replace(str(folder), "experiments")
            for line in result.stderr.splitlines()]


def test_analyze_json_and_table(make_workspace: Any, events_table: Any) -> None:
    ws = make_workspace(EVENTS)
    (ws.metrics_dir / "m.yaml").write_text(METRICS)
    (Path(ws.root) / "experiments").mkdir()
    (Path(ws.root) / "experiments" / "e.yaml").write_text(EXPERIMENT)
    _load_exposures_and_orders(ws, events_table)
    result = runner.invoke(app, ["-w", str(ws.root), "experiment", "analyze", "e", "-f", "json"])
    assert result.exit_code == ExitCode.OK, result.output
    data = json.loads(result.stdout)["rows"]
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
        lines = _refused(ws, command, folder)
        assert lines == [
            "experiments/x.yaml:4: x.secondary: unknown metric 'order'; did you mean orders?",
            "experiments/x.yaml:5: x.guardrails: metric 'sessions' (count_distinct(session_id) "
            "of app_opened): experiments read metrics made of counts and sums per unit; "
            "count_distinct per unit is not additive",
            "experiments/x.yaml:6: x.targeting: segment: unknown segment 'iso' (known: ios)",
        ]


def test_plan_counts_every_active_unit_and_the_experiments_share(
        make_workspace: Any, events_table: Any) -> None:
    # 40 users active in the baseline window, 10 of them bought: a did-it-or-not primary
    # has baseline 0.25 over the active units (it read 1.0 over the buyers alone, with no
    # variance: 0 units and 0 days needed)
    ws = make_workspace({**EVENTS, "app_opened.yaml": "name: app_opened\n"})
    (ws.metrics_dir / "m.yaml").write_text(
        "metrics:\n  buyers:\n    measure: {agg: count_distinct, event: purchase_complete}\n")
    (Path(ws.root) / "experiments").mkdir()
    (Path(ws.root) / "experiments" / "e.yaml").write_text(
        "key: e\nvariants: [a, b]\nprimary: buyers\nmde: 0.1\ncoverage: 0.5\n"
        "layer: checkout\nlayer_range: [0.0, 0.5]\nholdout: 0.2\n")
    now = datetime.now(UTC) - timedelta(hours=1)
    rows: list[dict[str, Any]] = [{"timestamp": now, "event": "app_opened", "user_id": f"u{i}"}
                                  for i in range(40)]
    rows.extend({"timestamp": now, "event": "purchase_complete", "user_id": f"u{i}"}
                for i in range(10))
    _insert(ws, events_table(rows))
    result = runner.invoke(app, ["-w", str(ws.root), "experiment", "plan", "e", "-f", "json"])
    assert result.exit_code == ExitCode.OK, result.output
    plan = json.loads(result.stdout)
    values = [1.0] * 10 + [0.0] * 30
    std = statistics.stdev(values)
    z = NormalDist().inv_cdf(0.975) + NormalDist().inv_cdf(0.8)
    per_variant = math.ceil(2 * (z * std / (0.1 * 0.25)) ** 2)
    eligible = 40 * 0.5 * 0.5 * 0.8 / 14  # coverage, layer slice, what the holdout leaves
    assert plan["baseline"] == 0.25
    assert math.isclose(plan["baseline_std"], std)
    assert plan["units_per_variant"] == per_variant
    assert plan["units_total"] == 2 * per_variant
    assert math.isclose(plan["eligible_units_per_day"], eligible)
    assert plan["days"] == math.ceil(2 * per_variant / eligible)


def test_an_exposure_event_the_catalog_lacks_names_file_line_field(make_workspace: Any) -> None:
    # a typo in exposure_event counted 0 units without a word: the event can only be
    # quarantined, never reach the analysis
    ws = make_workspace(EVENTS)
    (ws.metrics_dir / "m.yaml").write_text(METRICS)
    folder = Path(ws.root) / "experiments"
    folder.mkdir()
    (folder / "x.yaml").write_text("key: x\nvariants: [a, b]\nprimary: orders\n"
                                   "exposure_event: experiment_viwed\n")
    with Warehouse.for_workspace(ws):
        pass
    for command in ("analyze", "plan"):
        lines = _refused(ws, command, folder)
        assert lines == [
            "experiments/x.yaml:4: x.exposure_event: unknown event 'experiment_viwed': the "
            "catalog has no such event, so no exposure of it is counted; did you mean "
            "experiment_viewed?",
        ]
    # the default names need not all be cataloged: each SDK family sends its own
    (folder / "x.yaml").write_text("key: x\nvariants: [a, b]\nprimary: orders\n")
    result = runner.invoke(app, ["-w", str(ws.root), "experiment", "analyze", "x"])
    assert result.exit_code == ExitCode.OK, result.output


def test_the_readout_labels_intervals_with_the_experiments_alpha(
        make_workspace: Any, events_table: Any) -> None:
    # with alpha: 0.1 the intervals are 90% ones; the table and the readout said "95% CI"
    ws = make_workspace(EVENTS)
    (ws.metrics_dir / "m.yaml").write_text(METRICS)
    (Path(ws.root) / "experiments").mkdir()
    (Path(ws.root) / "experiments" / "e.yaml").write_text(EXPERIMENT + "alpha: 0.1\n")
    _load_exposures_and_orders(ws, events_table)
    result = runner.invoke(app, ["-w", str(ws.root), "experiment", "analyze", "e"])
    assert result.exit_code == ExitCode.OK, result.output
    assert "95%" not in result.stdout
    header = next(line for line in result.stdout.splitlines() if "lift" in line)
    assert "90% CI" in header
    assert "(90% CI " in result.stdout  # the readout's line


def test_analyze_json_is_the_http_readout_with_decision_and_srm(
        make_workspace: Any, events_table: Any) -> None:
    # --format json printed only the rows: the decision, its reasons and the sample-ratio
    # check, which POST /v1/experiments/analyze returns, were missing
    ws = make_workspace(EVENTS)
    (ws.metrics_dir / "m.yaml").write_text(METRICS)
    (Path(ws.root) / "experiments").mkdir()
    (Path(ws.root) / "experiments" / "e.yaml").write_text(EXPERIMENT)
    now = datetime.now(UTC) - timedelta(hours=1)
    # 300 units in a, 200 in b where the weights say 50/50: a sample-ratio mismatch
    table = events_table([{"timestamp": now, "event": "experiment_viewed", "user_id": f"u{i}",
                           "properties": {"experiment_id": "e",
                                          "variant_id": "a" if i < 300 else "b"}}
                          for i in range(500)])
    _insert(ws, table)
    result = runner.invoke(app, ["-w", str(ws.root), "experiment", "analyze", "e", "-f", "json"])
    assert result.exit_code == ExitCode.OK, result.output
    readout = json.loads(result.stdout)
    assert set(readout) == {"experiment", "name", "hypothesis", "alpha", "decision", "reasons",
                            "srm_p_value", "units", "excluded_multiple_variants",
                            "planned_units_per_variant", "quarantined_exposures",
                            "unknown_variants", "warnings", "rows", "breakdown"}
    assert readout["decision"] == "investigate"
    assert readout["units"] == {"a": 300, "b": 200}
    srm = math.erfc(math.sqrt((50 ** 2 / 250 * 2) / 2))  # chi-square, 1 degree of freedom
    assert math.isclose(readout["srm_p_value"], srm)
    assert readout["reasons"][0].startswith("sample ratio mismatch (p = ")
    assert [(r["variant"], r["units"], r["srm_p_value"]) for r in readout["rows"]] == [
        ("a", 300, readout["srm_p_value"]), ("b", 200, readout["srm_p_value"])]
    # CSV stays one row per variant and metric
    result = runner.invoke(app, ["-w", str(ws.root), "experiment", "analyze", "e", "-f", "csv"])
    assert result.exit_code == ExitCode.OK, result.output
    assert result.stdout.splitlines()[0].startswith("experiment,variant,metric,role,units,")
    assert len(result.stdout.splitlines()) == 3


def test_a_variant_without_events_has_no_lift(make_workspace: Any, events_table: Any) -> None:
    """Variant b's units sent no order at all: its lift read -100% with an interval of zero
    width (as if certain), and the decision STOP. No events is no data: no lift, no
    interval, a note on the row and a warning, in the JSON (the HTTP answer) and the
    readout."""
    ws = make_workspace(EVENTS)
    (ws.metrics_dir / "m.yaml").write_text(METRICS)
    (Path(ws.root) / "experiments").mkdir()
    (Path(ws.root) / "experiments" / "e.yaml").write_text(EXPERIMENT)
    now = datetime.now(UTC) - timedelta(hours=1)
    rows = []
    for i in range(400):
        user, variant = f"u{i}", "a" if i % 2 else "b"
        rows.append({"timestamp": now, "event": "experiment_viewed", "user_id": user,
                     "properties": {"experiment_id": "e", "variant_id": variant}})
        if variant == "a":
            rows.extend({"timestamp": now + timedelta(minutes=1 + k),
                         "event": "purchase_complete", "user_id": user} for k in range(i % 3))
    _insert(ws, events_table(rows))
    result = runner.invoke(app, ["-w", str(ws.root), "experiment", "analyze", "e", "-f", "json"])
    assert result.exit_code == ExitCode.OK, result.output
    readout = json.loads(result.stdout)
    control, treatment = readout["rows"]
    assert control["note"] is None
    assert (treatment["units"], treatment["note"]) == (200, "no events")
    for field in ("lift", "ci_low", "ci_high", "p_value", "seq_ci_low", "seq_ci_high",
                  "cuped_lift", "chance_to_win", "expected_loss"):
        assert treatment[field] is None, field
    assert readout["decision"] != "stop"
    assert any(w.startswith("b: no events of orders among its 200 units")
               for w in readout["warnings"])
    result = runner.invoke(app, ["-w", str(ws.root), "experiment", "analyze", "e"])
    assert result.exit_code == ExitCode.OK, result.output
    assert "-100" not in result.stdout
    assert "primary orders: b no events (200 units)" in result.stdout
    assert "WARNING: b: no events of orders" in result.stdout
