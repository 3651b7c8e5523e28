"""``nerve sql "SELECT ..."``: a read-only query on the workspace's warehouse.

DuckDB lets one process hold the database file. While ``nerve serve`` runs, it names
itself in ``.nerve/server.json`` and the query goes through its admin API; otherwise the
file is opened read-only here.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import httpx
import orjson
import typer

from nerve.cli._common import Format, FormatOption, emit, handle_errors, load_workspace
from nerve.errors import InternalError, QueryError, TransientError, UserError
from nerve.warehouse import Warehouse, result_json
from nerve.workspace import Workspace

__all__ = ["register", "run_sql"]

SERVER_FILE = "server.json"


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

    Tables: events, quarantine, loads, log_offsets, and a typed view evt_<event> per
    cataloged event (docs/storage.md). Statements that change anything (INSERT, DROP,
    ATTACH, COPY, ...) and functions that read files are refused. While `nerve serve`
    runs, the query goes through the server.

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
    emit(_Rows(list(body["columns"]), list(body["rows"])), fmt)


def run_sql(ws: Workspace, query: str) -> dict[str, Any]:
    """The result of ``query`` as ``{"columns": [...], "rows": [...]}``, from the running
    server when there is one, else from the warehouse file opened read-only."""
    server = _running_server(ws)
    if server is not None:
        try:
            return _via_server(server, query)
        except httpx.ConnectError:
            pass  # the server died since it wrote server.json: open the file ourselves
    warehouse_file = Warehouse.file_of(ws.warehouse_url)
    if warehouse_file is not None and not warehouse_file.exists():
        Warehouse.for_workspace(ws).close()  # a fresh workspace: create the empty tables
    with Warehouse.for_workspace(ws, read_only=True) as warehouse:
        return result_json(warehouse.query(query))


def _running_server(ws: Workspace) -> dict[str, Any] | None:
    path = ws.data_dir / SERVER_FILE
    try:
        info = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except orjson.JSONDecodeError:
        return None  # half-written or stale: treat as no server
    if not isinstance(info, dict) or not isinstance(info.get("url"), str):
        return None
    pid = info.get("pid")
    if isinstance(pid, int) and not _alive(pid):
        return None
    return info


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def _via_server(server: dict[str, Any], query: str) -> dict[str, Any]:
    url = str(server["url"]).rstrip("/") + "/v1/admin/sql"
    headers = {"Authorization": f"Bearer {server.get('admin_token', '')}"}
    try:
        # "query" is the documented field; "sql" too, for servers that name it so
        response = httpx.post(url, json={"query": query, "sql": query}, headers=headers,
                              timeout=300)
    except httpx.ConnectError:
        raise
    except httpx.HTTPError as exc:
        raise TransientError(f"{url}: the server did not answer ({exc})") from exc
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code == 200 and isinstance(body, dict) and "columns" in body:
        return body
    message = body.get("message") if isinstance(body, dict) else None
    message = message or response.text[:500] or f"HTTP {response.status_code}"
    if response.status_code in (401, 403):
        raise UserError(f"{url}: the server refused the admin token ({message}); "
                        "is .nerve/server.json from another server?")
    if response.status_code in (429, 503):
        raise TransientError(f"{url}: {message}")
    if 400 <= response.status_code < 500:
        raise QueryError(message)
    raise InternalError(f"{url}: HTTP {response.status_code}: {message}")
