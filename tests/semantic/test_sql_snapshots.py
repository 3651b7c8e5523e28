"""The SQL each engine gets, pinned as golden files (tests/semantic/golden/*.sql).

A change in the compiler shows up here as a readable diff. To accept new SQL after a
deliberate change: ``NERVE_UPDATE_GOLDEN=1 pytest tests/semantic/test_sql_snapshots.py``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import ibis
import pytest

from nerve.envelope import ENVELOPE_SCHEMA
from nerve.semantic import MetricQuery, SemanticLayer

GOLDEN = Path(__file__).parent / "golden"
NOW = datetime(2026, 4, 1, 12, tzinfo=UTC)
DIALECTS = ["duckdb", "postgres", "pyspark"]

CASES = {
    "simple_ratio_by_context": MetricQuery(
        ("revenue", "aov"), by=("platform",), grain="week", since="2026-03-02",
        until="2026-03-29"),
    "conversion": MetricQuery(("checkout_conversion",), grain="day", since="2026-03-01",
                              until="2026-03-07"),
    "cumulative_and_offset": MetricQuery(("wau", "revenue_wow"), grain="day",
                                         since="2026-03-01", until="2026-03-07"),
    "segment_as_of_trait": MetricQuery(("orders",), segments=("seniors",),
                                       where="platform = 'iOS'", since="2026-03-01",
                                       until="2026-03-31"),
}


def events_schema() -> ibis.Schema:
    fields = {f.name: f.type for f in ENVELOPE_SCHEMA if f.name != "violations"}
    return ibis.schema({name: ibis.dtype(t) for name, t in fields.items()})


def normalized(sql: str) -> str:
    """Memtable names are random per process: number them in order of appearance."""
    names: dict[str, str] = {}

    def rename(match: re.Match[str]) -> str:
        return names.setdefault(match.group(0), f"spine_{len(names)}")

    return re.sub(r"ibis_\w+?_memtable_[a-z0-9]+", rename, sql).rstrip() + "\n"


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_compiled_sql_matches_golden(make_layer: Callable[..., SemanticLayer], case: str,
                                     dialect: str) -> None:
    layer = make_layer("Europe/Berlin")
    table = ibis.table(events_schema(), name="events")
    # the metric's own SQL: identity stitching, a join in front of it, is tested apart
    sql = normalized(layer.to_sql(CASES[case], table, dialect=dialect, now=NOW, stitch=False))
    path = GOLDEN / f"{case}.{dialect}.sql"
    if os.environ.get("NERVE_UPDATE_GOLDEN") == "1":
        path.write_text(sql, encoding="utf-8")
    assert path.exists(), f"{path} missing: run with NERVE_UPDATE_GOLDEN=1 to create it"
    assert sql == path.read_text(encoding="utf-8")


def test_engine_specific_functions_are_used() -> None:
    """Each engine reads JSON and local time with its own builtin (the adapter's job)."""
    texts = {d: (GOLDEN / f"simple_ratio_by_context.{d}.sql").read_text() for d in DIALECTS}
    assert "->> '$.os.name'" in texts["duckdb"]
    assert "TIMEZONE('Europe/Berlin'" in texts["duckdb"]
    assert "JSON_EXTRACT_PATH_TEXT(JSON_EXTRACT_PATH(CAST(" in texts["postgres"]
    assert "GET_JSON_OBJECT(`t" in texts["pyspark"]
    assert "FROM_UTC_TIMESTAMP(" in texts["pyspark"]
    for text in texts.values():
        assert "NULLIF(" in text.upper()  # ratios divide safely


def test_a_conversion_is_window_functions_not_a_join() -> None:
    """A conversion's base rows are matched with later conversion rows by a sort per
    entity: a join (EXISTS, a semi-join) ran as a nested loop on PostgreSQL, whose guess
    for filtered identity-stitched events is one row (tests/semantic/
    test_conversion_scale.py runs it)."""
    for dialect in DIALECTS:
        text = (GOLDEN / f"conversion.{dialect}.sql").read_text().upper()
        assert "EXISTS" not in text
        assert "SEMI" not in text
        assert "PARTITION BY" in text
