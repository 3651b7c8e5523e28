"""``nerve sql "SELECT ..."``: a read-only query on the workspace's warehouse.

DuckDB lets one process hold the database file. While ``nerve serve`` runs, it names
itself in ``.nerve/server.json`` and the query goes through its admin API; otherwise the
file is opened read-only here.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from nerve.cli._common import Format, FormatOption, emit, handle_errors, load_workspace
from nerve.cli._remote import answer
from nerve.errors import InternalError, QueryError
from nerve.workspace import Workspace

__all__ = ["register", "run_sql"]


def register(app: typer.Typer) -> None:
    app.command("sql")(sql)


@dataclass(frozen=True, slots=True)
class _Rows:
    """Query rows in the shape ``emit`` prints (keeps column order, even with no rows)."""

    column_names: list[str]
    rows: list[dict[str, Any]]

    def to_pylist(self) -> list[dict[str, Any]]:
        return self.rows


@handle_errors
def sql(
    ctx: typer.Context,
    query: Annotated[str | None, typer.Argument(
        help="One read-only query: SELECT, WITH, FROM-first, DESCRIBE, SHOW or SUMMARIZE.",
        show_default=False)] = None,
    file: Annotated[Path | None, typer.Option(
        "--file", help="Read the query from this file ('-' for stdin) instead.",
        dir_okay=False, allow_dash=True)] = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Run a read-only SQL query (DuckDB dialect) on the warehouse.

    Tables: events, quarantine, loads, log_offsets, erasures (what nerve forget and
    nerve expire deleted), check_results (once the checks have run), and a typed view
    `evt_<event>` per cataloged event (docs/storage.md). Statements that change anything
    (INSERT, DROP, ATTACH, COPY, ...) and functions that read files are refused. While
    `nerve serve` runs, the query goes through the server. The table shows NULL as NULL;
    json and csv give null and an empty field.

    Example: nerve sql "SELECT event, count(*) AS n FROM events GROUP BY 1" --format json
    """
    if (query is None) == (file is None):
        raise QueryError("give a query, or --file FILE, but not both")
    if file is not None:
        try:
            query = sys.stdin.read() if str(file) == "-" else file.read_text(encoding="utf-8")
        except OSError as exc:
            raise QueryError(f"{file}: cannot read the query ({exc.strerror})") from exc
    assert query is not None
    ws = load_workspace(ctx)
    body = run_sql(ws, query)
    rows = list(body["rows"])
    if fmt is Format.table:
        # as DuckDB's shell shows it: an empty cell would read as an empty string (the
        # events of identify, page and screen calls have no event name)
        durations = set(body.get("intervals", ()))
        rows = [{k: "NULL" if v is None else duration_text(v) if k in durations else v
                 for k, v in row.items()} for row in rows]
    emit(_Rows(list(body["columns"]), rows), fmt)


def run_sql(ws: Workspace, query: str) -> dict[str, Any]:
    """The result of ``query`` as ``{"columns": [...], "rows": [...]}``, from the running
    server when there is one, else from the warehouse file opened read-only."""
    from nerve.warehouse import result_json  # noqa: PLC0415 - Arrow only when needed

    body = answer(ws, "/v1/admin/sql", {"query": query},
                  lambda warehouse: result_json(warehouse.query(query)))
    if "columns" not in body:
        raise InternalError("unexpected answer to a SQL query (no columns)")
    return body


#: an ISO 8601 duration as ``result_json`` writes an INTERVAL (each part signed)
_DURATION = re.compile(
    r"P(?!$)(?:(-?\d+)Y)?(?:(-?\d+)M)?(?:(-?\d+)D)?"
    r"(?:T(?=-?\d)(?:(-?\d+)H)?(?:(-?\d+)M)?(?:(-?\d+(?:\.\d+)?)S)?)?")


def duration_text(iso: str) -> str:
    """An ISO 8601 duration as DuckDB prints an INTERVAL.

    >>> duration_text("P1Y2M3DT1H30M0.5S")
    '1 year 2 months 3 days 01:30:00.5'
    >>> duration_text("PT-1H-30M")
    '-01:30:00'
    """
    match = _DURATION.fullmatch(iso)
    if match is None:
        return iso
    years, months, days, hours, minutes, seconds = match.groups()
    parts = [f"{n} {unit}{'' if int(n) in (1, -1) else 's'}"
             for n, unit in ((years, "year"), (months, "month"), (days, "day")) if n]
    if hours or minutes or seconds or not parts:
        total = (abs(int(hours or 0)) * 3600 + abs(int(minutes or 0)) * 60)
        sign = "-" if any(p and p.startswith("-") for p in (hours, minutes, seconds)) else ""
        whole, _, fraction = (seconds or "0").lstrip("-").partition(".")
        total += int(whole)
        text = f"{total // 3600:02d}:{total % 3600 // 60:02d}:{total % 60:02d}"
        parts.append(f"{sign}{text}{'.' + fraction if fraction else ''}")
    return " ".join(parts)
