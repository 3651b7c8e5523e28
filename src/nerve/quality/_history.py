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


#: the run id prefix of a run of some checks (``nerve check --select volume``)
PARTIAL = "partial-"


def latest_results(con: Any) -> list[CheckResult]:
    """The data's health now: the results of the latest full run, each check's replaced by
    those of a later run of some checks that ran it (empty when nothing was recorded).

    A run of some checks (``--select schema``) is recorded too, but it says nothing about
    the others: taken alone as the latest run, it would hide every other problem.
    """
    if not has_table(con, HISTORY_TABLE):
        return []
    t = con.table(HISTORY_TABLE)
    full = t.filter(~t.run_id.startswith(PARTIAL))
    since = full.at.max().to_pyarrow().as_py()
    recent = t.filter(t.at >= since) if since is not None else t
    rows = recent.order_by("at", "check", "name").to_pyarrow().to_pylist()
    by_check: dict[str, list[dict[str, Any]]] = {}
    for at in sorted({row["at"] for row in rows}):
        run = [row for row in rows if row["at"] == at]
        if not run[0]["run_id"].startswith(PARTIAL):
            by_check = {}
        for check in {row["check"] for row in run}:
            by_check[check] = [row for row in run if row["check"] == check]
    last = sorted((row for found in by_check.values() for row in found),
                  key=lambda row: (row["check"], row["name"]))
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
