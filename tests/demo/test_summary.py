"""The demo summary: sections are plain functions; a broken one never breaks the demo."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

import nerve.demo
from nerve.demo import SimConfig, ground_truth
from nerve.demo._summary import (
    SECTIONS,
    Section,
    SummaryContext,
    build_summary,
    events_section,
    explore_section,
    incidents_section,
)
from nerve.workspace import Workspace, init_workspace

END = datetime(2026, 11, 28, 7, 30, tzinfo=UTC)


def test_exported_names() -> None:
    assert sorted(nerve.demo.__all__) == sorted([
        "DEFAULT_DAYS", "DEFAULT_USERS", "EXPERIMENT", "FAULTS", "QUARANTINED_FAULTS",
        "SHOP_DIR", "Experiment", "Incident", "SimConfig", "SimMessage", "Simulation",
        "Timeline", "build_timeline", "call_name", "ground_truth", "simulate",
    ])


def context(tmp_path: Path, rows: dict[str, int], **run: Any) -> SummaryContext:
    """A context whose sql() runs on a real DuckDB holding ``rows`` events per name."""
    con = duckdb.connect()
    con.execute("CREATE TABLE events (type VARCHAR, event VARCHAR)")
    for name, n in rows.items():
        con.execute("INSERT INTO events SELECT 'track', ? FROM range(?)", [name, n])

    def sql(query: str) -> list[dict[str, Any]]:
        cursor = con.execute(query)
        columns = [d[0] for d in cursor.description]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]

    ws: Workspace = init_workspace(tmp_path / "ws", "shop")
    truth = ground_truth(SimConfig(end=END, days=2, users=40, seed=3))
    return SummaryContext(ws, truth, "http://127.0.0.1:1", sql, run=run)


def test_sections_run_in_order_and_failures_become_notes(tmp_path: Path) -> None:
    ctx = context(tmp_path, {"product_view": 3})

    def broken(ctx: SummaryContext) -> Section | None:
        raise ValueError("no such table: funnels")

    def silent(ctx: SummaryContext) -> Section | None:
        return None

    sections: list[Callable[[SummaryContext], Section | None]] = [
        events_section, broken, silent, explore_section]
    result = build_summary(ctx, sections)
    assert [s.key for s in result] == ["events", "broken", "explore"]
    assert result[1].note == "could not compute: no such table: funnels"
    views = next(r for r in result[0].rows if r["event"] == "product_view")
    assert views["events"] == 3
    assert views["expected"] == ctx.truth["expected"]["accepted_by_event"]["product_view"]


def test_incidents_and_explore_sections(tmp_path: Path) -> None:
    ctx = context(tmp_path, {}, serving=False)
    incidents = incidents_section(ctx)
    assert incidents is not None
    assert {r["incident"] for r in incidents.rows} == {i["key"] for i in ctx.truth["incidents"]}
    assert {r["effect"] for r in incidents.rows} == {"-60%", "+1400%"}
    explore = {r["what"]: r["value"] for r in explore_section(ctx).rows}
    assert explore["server"].startswith("stops now")
    assert explore["ground truth"].endswith("ground_truth.json")


def test_default_sections_are_listed() -> None:
    names = [fn.__name__ for fn in SECTIONS]
    assert names[0] == "overview_section"
    assert names[-1] == "explore_section"
