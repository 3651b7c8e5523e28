"""`nerve demo` end to end: a real server subprocess, the real SDK over loopback HTTP, the
warehouse checked against the simulator's ground truth."""

from __future__ import annotations

import csv
import io
import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from nerve.catalog import Catalog
from nerve.cli import app
from nerve.cli._common import ExitCode
from nerve.cli._sql import run_sql
from nerve.demo import SHOP_DIR
from nerve.workspace import Workspace


def nerve(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nerve", *args], capture_output=True,
                          text=True, timeout=240, cwd=cwd, check=False)


def sql(root: Path, query: str) -> list[dict[str, Any]]:
    """Rows from the warehouse file, opened read-only (the demo's server has stopped)."""
    return list(run_sql(Workspace.load(root), query)["rows"])


def check_warehouse(root: Path) -> dict[str, Any]:
    truth = json.loads((root / "ground_truth.json").read_text())
    expected = truth["expected"]
    by_event = {r["event"]: r["n"] for r in sql(
        root, "SELECT CASE WHEN type = 'track' THEN event ELSE type END AS event, "
              "count(*) AS n FROM events GROUP BY ALL")}
    assert by_event == expected["accepted_by_event"]
    quarantined = {r["event"]: r["n"] for r in sql(
        root, "SELECT coalesce(event, type) AS event, count(*) AS n FROM quarantine "
              "GROUP BY ALL")}
    assert quarantined == expected["quarantined_by_event"]
    assert sum(quarantined.values()) == expected["quarantined"]
    # the loader dropped exactly the retried duplicates
    duplicates = sql(root, "SELECT coalesce(sum(duplicates), 0) AS n FROM loads")[0]["n"]
    assert duplicates == truth["faults"]["duplicate_message_id"]
    # history came in as a historical import, the live minutes with the platforms' keys
    sources = {(r["source"], r["historical"]): r["n"] for r in sql(
        root, "SELECT source, historical, count(*) AS n FROM events GROUP BY ALL")}
    assert sum(n for (s, h), n in sources.items() if s == "import" and h) > 0
    assert {s for (s, h), _n in sources.items() if not h} <= {"ios", "android", "web",
                                                              "server"}
    return truth


def test_demo_no_serve_loads_exactly_what_was_simulated(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    result = nerve("demo", "--dir", str(root), "--days", "2", "--users", "50",
                   "--no-serve", "--format", "json", "--end", "2026-11-28T08:00")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    keys = [s["key"] for s in summary["sections"]]
    assert keys[0] == "overview"
    assert "incidents" in keys
    assert keys[-1] == "explore"
    assert summary["sections"][0]["note"] is None  # warehouse == expected
    truth = check_warehouse(root)
    assert truth["expected"]["accepted"] > 80
    assert truth["simulation"]["end"] == "2026-11-28T08:00:00.000Z"
    assert truth["simulation"]["days"] == 2
    assert truth["simulation"]["users"] == 50
    assert (root / "nerve.toml").read_text().count("[[sources]]") == 5
    Catalog.load(root / "events")  # the bundled catalog was copied and loads

    # a second run resets the data: nothing from the first run is left over
    again = nerve("demo", "--dir", str(root), "--days", "1", "--users", "30", "--seed", "5",
                  "--no-serve", "--no-faults", "--format", "json")
    assert again.returncode == 0, again.stderr
    truth = check_warehouse(root)
    assert truth["simulation"]["seed"] == 5
    assert truth["expected"]["quarantined"] == 0


def test_demo_format_csv_prints_only_csv(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    result = nerve("demo", "--dir", str(root), "--days", "1", "--users", "20",
                   "--no-serve", "--format", "csv", "--end", "2026-11-28T08:00")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert rows[0]["section"] == "overview"
    assert rows[-1]["section"] == "explore"
    truth = json.loads((root / "ground_truth.json").read_text())
    events = {r["event"]: int(r["events"]) for r in rows if r["section"] == "events"}
    assert events == {e: n for e, n in truth["expected"]["accepted_by_event"].items() if n}
    assert "sending" in result.stderr  # progress goes to stderr


def cli(*args: str) -> Result:
    """Run the real CLI in this process (cheaper than a new interpreter per call)."""
    return CliRunner().invoke(app, list(args))


def test_demo_refuses_a_folder_it_did_not_create(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    result = cli("demo", "--dir", str(mine), "--no-serve")
    assert result.exit_code == ExitCode.INVALID
    assert "not empty" in result.output
    assert (mine / "notes.txt").read_text() == "keep me"

    workspace = tmp_path / "ws"
    assert cli("init", str(workspace)).exit_code == 0
    result = cli("demo", "--dir", str(workspace), "--no-serve")
    assert result.exit_code == ExitCode.INVALID
    assert "did not create" in result.output
    assert not (workspace / "ground_truth.json").exists()


def test_bundled_catalog_lints_clean(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    assert cli("init", str(workspace)).exit_code == 0
    for path in (SHOP_DIR / "events").rglob("*.yaml"):
        target = workspace / "events" / path.relative_to(SHOP_DIR / "events")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(path.read_text())
    result = cli("--workspace", str(workspace), "catalog", "lint", "--format", "json")
    assert result.exit_code == ExitCode.OK, result.output
    assert json.loads(result.stdout) == []


def test_demo_serves_until_interrupted(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    process = subprocess.Popen(
        [sys.executable, "-m", "nerve", "demo", "--dir", str(root), "--days", "1",
         "--users", "20"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if "Ctrl-C stops" in line:
                break
        else:
            raise AssertionError("".join(lines))
        info = json.loads((root / ".nerve" / "server.json").read_text())
        assert httpx.get(info["url"] + "/health", timeout=5).status_code == 200
        process.send_signal(signal.SIGINT)
        assert process.wait(60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    # the server stopped with it, cleanly
    assert not (root / ".nerve" / "server.json").exists()
    with pytest.raises(httpx.ConnectError):
        httpx.get(info["url"] + "/health", timeout=5)
