"""``nerve sql "SELECT ..."``: a read-only query on the workspace's warehouse.

DuckDB lets one process hold the database file. While ``nerve serve`` runs, it names
itself in ``.nerve/server.json`` and the query goes through its admin API; otherwise the
file is opened read-only here.
"""

from __future__ import annotations

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
        rows = [{k: "NULL" if v is None else v for k, v in row.items()} for row in rows]
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
