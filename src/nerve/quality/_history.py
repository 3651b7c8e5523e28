"""The ``check_results`` table: every result of every scheduled or requested run."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import ibis
import orjson
import pyarrow as pa

from nerve.quality._engine import has_table
from nerve.quality._result import CheckResult

__all__ = ["HISTORY_TABLE", "latest_results", "record_results"]

HISTORY_TABLE = "check_results"

_TS = pa.timestamp("us", tz="UTC")
SCHEMA = pa.schema([
    pa.field("run_id", pa.string()),
    pa.field("at", _TS),
    pa.field("check", pa.string()),
    pa.field("name", pa.string()),
    pa.field("status", pa.string()),
    pa.field("event", pa.string()),
    pa.field("dimensions", pa.string()),  # JSON object
    pa.field("observed", pa.float64()),
    pa.field("expected_min", pa.float64()),
    pa.field("expected_max", pa.float64()),
    pa.field("unit", pa.string()),
    pa.field("since", _TS),
    pa.field("message", pa.string()),
    pa.field("details", pa.string()),  # JSON object
])


def _rows(results: list[CheckResult], run_id: str, at: datetime) -> pa.Table:
    rows = []
    for r in results:
        data = r.as_dict()
        rows.append({
            "run_id": run_id, "at": at, "check": r.check, "name": r.name,
            "status": str(r.status), "event": r.event,
            "dimensions": orjson.dumps(r.dimensions).decode(),
            "observed": data["observed"],
            "expected_min": data["expected"].get("min"),
            "expected_max": data["expected"].get("max"),
            "unit": r.unit, "since": r.since, "message": r.message,
            "details": orjson.dumps(r.details, default=str,
                                    option=orjson.OPT_SERIALIZE_NUMPY).decode(),
        })
    return pa.Table.from_pylist(rows, schema=SCHEMA)


def record_results(con: Any, results: list[CheckResult], *, at: datetime | None = None,
                   run_id: str | None = None) -> str:
    """Append ``results`` to ``check_results`` on the Ibis backend ``con``; returns the run id.

    The table is created on first use.
    """
    run_id = run_id or uuid.uuid4().hex
    at = at or datetime.now(UTC)
    table = _rows(results, run_id, at)
    if not has_table(con, HISTORY_TABLE):
        con.create_table(HISTORY_TABLE, schema=ibis.schema(SCHEMA))
    if table.num_rows:
        con.insert(HISTORY_TABLE, table)
    return run_id


def latest_results(con: Any) -> list[CheckResult]:
    """The results of the latest recorded run (empty when none)."""
    if not has_table(con, HISTORY_TABLE):
        return []
    t = con.table(HISTORY_TABLE)
    last = t.filter(t.at == t.at.max()).order_by("check", "name").to_pyarrow().to_pylist()
    return [
        CheckResult.from_dict({
            "check": row["check"], "status": row["status"], "message": row["message"],
            "event": row["event"], "dimensions": orjson.loads(row["dimensions"] or "{}"),
            "observed": row["observed"],
            "expected": {"min": row["expected_min"], "max": row["expected_max"]},
            "unit": row["unit"] or "",
            "since": row["since"].isoformat() if row["since"] else None,
            "details": orjson.loads(row["details"] or "{}"),
        })
        for row in last
    ]
