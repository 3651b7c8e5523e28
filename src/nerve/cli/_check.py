"""``nerve check``: run the data-quality checks; exit code by the worst result.

While ``nerve serve`` holds the DuckDB file (``.nerve/server.json``), the checks run in
the server (``POST /v1/admin/checks/run``); otherwise the warehouse is opened read-only.
"""

from __future__ import annotations

import enum
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

import httpx
import typer
from rich.markup import escape
from rich.table import Table

from nerve.audit import local_read
from nerve.catalog import Catalog
from nerve.cli._common import (
    ExitCode,
    Format,
    console,
    emit,
    emit_json,
    err_console,
    handle_errors,
    iso_time,
    load_workspace,
    print_rich_table,
    table_width,
    working,
)
from nerve.cli._remote import post, running_server, wait_for_server
from nerve.errors import InternalError, WarehouseLockedError
from nerve.quality import (
    CHECKS,
    CheckResult,
    Status,
    junit_xml,
    load_config,
    worst,
)
from nerve.workspace import Workspace

__all__ = ["exit_code", "register"]


class CheckFormat(enum.StrEnum):
    table = "table"
    json = "json"
    csv = "csv"
    junit = "junit"


_EXIT = {Status.passed: ExitCode.OK, Status.warn: ExitCode.WARN, Status.fail: ExitCode.FAILED,
         Status.error: ExitCode.INTERNAL}
_STYLE = {Status.passed: "green", Status.warn: "yellow", Status.fail: "red",
          Status.error: "magenta"}


def exit_code(results: Sequence[CheckResult]) -> ExitCode:
    """OK when all pass, WARN for warnings only, FAILED on any failure, INTERNAL on errors."""
    return _EXIT[worst([r.status for r in results])]


def register(app: typer.Typer) -> None:
    app.command("check")(check)


@handle_errors
def check(
    ctx: typer.Context,
    select: Annotated[list[str] | None, typer.Option(
        "--select", "-s", help="Only these checks and/or events (repeat, or comma-separate): "
                               f"{', '.join(CHECKS)}, or an event name.")] = None,
    fmt: Annotated[CheckFormat, typer.Option(
        "--format", "-f", case_sensitive=False,
        help="table for people; json (an array of results) or csv for programs; junit "
             "(XML) for CI.")] = CheckFormat.table,
    now_text: Annotated[str | None, typer.Option(
        "--now", metavar="TIME",
        help="Judge as of this ISO 8601 time (UTC if no zone), e.g. to re-check "
             "yesterday. Default: now.")] = None,
    show_passed: Annotated[bool, typer.Option(
        "--all/--problems", help="Table: show passing results too (default: problems only, "
                                 "plus a count).")] = False,
) -> None:
    """Check the warehouse's data: schema violations, drift, duplicates, freshness, lateness,
    clock skew, volume anomalies, missing data and sequences (docs/quality.md).

    Exit codes: 0 all pass, 3 warnings only, 1 a check failed, 70 a check could not run,
    4 the workspace, catalog or checks.yaml is invalid, 5 the warehouse is busy (try again).

    Example: nerve check --select volume,freshness --format json
    """
    ws = load_workspace(ctx)
    wanted = [part.strip() for item in (select or []) for part in item.split(",")
              if part.strip()]
    now = iso_time(now_text, "--now")
    with working("running the checks"):
        results = collect(ws, wanted, now)
    if fmt is CheckFormat.json:
        emit_json([r.as_dict() for r in results])
    elif fmt is CheckFormat.junit:
        sys.stdout.write(junit_xml(results) + "\n")
    elif fmt is CheckFormat.csv:
        emit([_flat(r) for r in results], Format.csv)
    else:
        _print_table(results, show_passed)
    raise typer.Exit(exit_code(results))


def _flat(r: CheckResult) -> dict[str, Any]:
    data = r.as_dict()
    # name: the stable id a CI script keys on, as in JSON; details: the counts behind it
    return {"status": data["status"], "check": r.check, "name": data["name"],
            "event": r.event,
            "dimensions": ",".join(f"{k}={v}" for k, v in sorted(r.dimensions.items())),
            "observed": data["observed"], "expected_min": data["expected"].get("min"),
            "expected_max": data["expected"].get("max"), "unit": r.unit,
            "since": data["since"], "message": r.message,
            "details": data["details"]}  # compact JSON in the cell


def _print_table(results: list[CheckResult], show_passed: bool) -> None:
    shown = results if show_passed else [r for r in results if r.status is not Status.passed]
    shown = sorted(shown, key=lambda r: -r.status.rank)
    if shown:
        # the check, its event and dimensions in one column, a line each and none cut
        # (at 80 columns, three columns of them left the message a sliver and folded
        # "lesson_complete" into "lesson_co" / "mplete")
        lines = [[r.check, *([r.event] if r.event else []),
                  *(f"{k}={v}" for k, v in r.dimensions.items())] for r in shown]
        widest = max(len(line) for group in lines for line in group)
        table = Table(show_lines=True, expand=True)
        table.add_column("status", no_wrap=True)
        table.add_column("check / event", overflow="fold",
                         min_width=min(widest, max(12, table_width(console) // 3)))
        table.add_column("message", overflow="fold", ratio=1)
        for r, group in zip(shown, lines, strict=True):
            style = _STYLE[r.status]
            table.add_row(f"[{style}]{r.status}[/{style}]", escape("\n".join(group)),
                          escape(r.message))
        print_rich_table(table, console)
    counts = {s: sum(r.status is s for r in results) for s in Status}
    console.print(", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no checks ran",
                  highlight=False)


def collect(ws: Workspace, select: list[str], now: datetime | None) -> list[CheckResult]:
    """Results from the running server when there is one, else from the warehouse file."""
    catalog = Catalog.load(ws.events_dir)
    # report a bad checks.yaml (or one naming events the catalog lacks) before anything
    config = load_config(ws.root, ws.config.raw, catalog)
    from nerve.quality import refuse_idle_selection  # noqa: PLC0415 - loads the engines

    refuse_idle_selection(config, select)  # an empty run would exit 0, checking nothing
    server = running_server(ws)
    if server is not None:
        try:
            return _via_server(server, select, now)
        except httpx.ConnectError:
            pass  # the server died since it wrote server.json: open the file ourselves
    from nerve.quality import inputs_for, run_checks  # noqa: PLC0415 - SciPy only when needed
    from nerve.warehouse import Warehouse  # noqa: PLC0415

    # another engine's URL is refused here as by every command (a table elsewhere is
    # checked through the Python API: docs/quality.md); ibis.connect used to take any URL,
    # printing its driver's traceback, or making an empty DuckDB file of a bare path
    Warehouse.check_url(ws)
    Warehouse.check_exists(ws)
    request = {"select": select, "now": now.isoformat() if now else None}
    try:
        with (local_read(ws, "/v1/admin/checks/run", request),
              Warehouse.for_workspace(ws, read_only=True) as warehouse):
            return run_checks(inputs_for(warehouse.ibis()), catalog, config, now=now,
                              select=select)
    except WarehouseLockedError as exc:  # a nerve serve that starts: wait for its name
        server = wait_for_server(ws, exc.pid)
        if server is None:
            raise
        return _via_server(server, select, now)


def _via_server(server: dict[str, Any], select: list[str], now: datetime | None
                ) -> list[CheckResult]:
    err_console.print(f"running the checks in the server at {server['url']}"
                      + (f", as of {now.isoformat()} (not recorded as the current health)"
                         if now else ""), style="dim", highlight=False)
    data = post(server, "/v1/admin/checks/run",
                {"select": select, "now": now.isoformat() if now else None})
    if "results" not in data:
        raise InternalError(f"{server['url']}: unexpected answer to a checks run (no results)")
    return [CheckResult.from_dict(item) for item in data["results"]]
