"""The demo summary: sections are plain functions; a broken one never breaks the demo."""

from __future__ import annotations

import io
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
from rich.console import Console

import nerve.demo
from nerve.cli._demo import _print
from nerve.demo import SHOP_DIR, SimConfig, ground_truth
from nerve.demo._summary import (
    SECTIONS,
    Section,
    SummaryContext,
    build_summary,
    events_section,
    experiment_analysis_section,
    explore_section,
    funnel_section,
    incidents_section,
    metrics_section,
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


def test_summary_tables_read_as_percent_currency_and_keep_every_digit(tmp_path: Path) -> None:
    """The printed summary shows a conversion as a percentage, revenue in its currency
    (metrics/*.yaml), a p-value of 2.3e-06 as such; the rows (json, csv) keep the figures."""
    base = context(tmp_path, {})
    for folder in ("events", "metrics", "experiments"):
        shutil.copytree(SHOP_DIR / folder, base.workspace.root / folder, dirs_exist_ok=True)
    # what the server's read APIs answer (the demo calls them over HTTP)
    answers: dict[str, Any] = {
        "/v1/metrics/query": {"time_column": "week", "rows": [
            {"week": "2026-11-09", "revenue": 246912.4, "orders": 1740,
             "average_order_value": 141.9, "checkout_conversion": 0.7595,
             "payment_failure_rate": 0.025}]},
        "/v1/funnels": {"rows": [
            {"step": 1, "event": "session_start", "users": 9436, "conversion": 1.0,
             "median_seconds": None},
            {"step": 2, "event": "product_view", "users": 9428, "conversion": 0.99915,
             "median_seconds": 69.4},
            {"step": 3, "event": "add_to_cart", "users": 6724, "conversion": 0.714,
             "median_seconds": 754.0}]},
        "/v1/experiments/analyze": {"decision": "ship", "rows": [
            {"variant": "simple", "metric": "checkout_conversion", "units": 296,
             "mean": 0.785, "lift": 0.3748, "ci_low": 0.2205, "ci_high": 0.529,
             "p_value": 2.28e-06, "chance_to_win": 1.0}]},
    }
    ctx = SummaryContext(base.workspace, base.truth, base.url, base.sql,
                         api=lambda path, body: answers[path])
    sections = [s for s in (metrics_section(ctx), funnel_section(ctx),
                            experiment_analysis_section(ctx)) if s is not None]
    assert len(sections) == 3
    out = Console(width=250, record=True, file=io.StringIO())
    _print(sections, out)
    text = out.export_text()
    for shown in ("246,912.40 USD", "1,740", "141.90 USD", "75.9%", "2.5%",  # metrics
                  "9,436", "99.9%", "69 s", "13 min", "median_time",         # funnel
                  "+37.5%", "+22.1%", "+52.9%", "2.3e-06", "100.0%"):        # experiment
        assert shown in text, shown
    analysis = next(s for s in sections if s.key == "experiment_analysis")
    assert analysis.rows[0]["p_value"] == 2.28e-06  # not rounded away to 0.0
    assert sections[0].rows[0]["revenue"] == 246912.4
    assert "median_seconds" not in text  # its cells read 13 min, not seconds
    assert sections[1].rows[2]["median_seconds"] == 754.0


def test_weekly_metrics_cover_the_whole_run_and_mark_its_partial_weeks(tmp_path: Path) -> None:
    """14 days ending on Saturday 2026-11-28 start on Saturday 2026-11-14: the week of
    the 9th holds two of its days and that of the 23rd six. Both are marked partial (their
    lower figures are not a drop), and the first is asked for at all ("14d" by week was
    the last two weeks, which left out the run's first days)."""
    base = context(tmp_path, {})
    shutil.copytree(SHOP_DIR / "metrics", base.workspace.root / "metrics", dirs_exist_ok=True)
    shutil.copytree(SHOP_DIR / "events", base.workspace.root / "events", dirs_exist_ok=True)
    truth = ground_truth(SimConfig(end=END, days=14, users=40, seed=3))
    asked: list[dict[str, Any]] = []

    def api(path: str, body: dict[str, Any] | None) -> Any:
        asked.append(body or {})
        return {"time_column": "week", "timezone": "UTC", "rows": [
            {"week": week, "revenue": 10.0, "orders": 1, "average_order_value": 10.0,
             "checkout_conversion": 0.5, "payment_failure_rate": 0.0}
            for week in ("2026-11-09", "2026-11-16", "2026-11-23")]}

    ctx = SummaryContext(base.workspace, truth, base.url, base.sql, api=api)
    section = metrics_section(ctx)
    assert section is not None
    assert datetime.fromisoformat(asked[0]["since"]) == datetime(2026, 11, 14, 7, 30,
                                                                 tzinfo=UTC)
    assert [r["partial"] for r in section.rows] == [True, False, True]
    out = Console(width=120, record=True, file=io.StringIO())
    _print([section], out)
    lines = out.export_text().splitlines()
    assert any("2026-11-09 (partial)" in line for line in lines)
    assert any("2026-11-23 (partial)" in line for line in lines)
    assert any("2026-11-16" in line and "partial" not in line for line in lines)
