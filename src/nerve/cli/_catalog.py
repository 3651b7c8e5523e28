"""``nerve catalog ...``: the tracking plan."""

from __future__ import annotations

from typing import Annotated

import typer

from nerve.catalog import Catalog
from nerve.cli._common import ExitCode, Format, FormatOption, emit, handle_errors, load_workspace
from nerve.errors import CatalogError

catalog_app = typer.Typer(help="The tracking plan: events as code in events/*.yaml.",
                          no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(catalog_app, name="catalog")


@catalog_app.command("lint")
@handle_errors
def lint(ctx: typer.Context, fmt: FormatOption = Format.table) -> None:
    """Check every events/*.yaml file; exit 1 when any has an error (file and line given)."""
    ws = load_workspace(ctx)
    try:
        catalog = Catalog.load(ws.events_dir)
    except CatalogError as exc:
        rows = [{"file": str(loc.file), "line": loc.line, "severity": "error", "message": msg}
                for loc, msg in exc.problems]
        emit(rows, fmt, title="catalog problems")
        raise typer.Exit(ExitCode.FAILED) from exc
    if fmt is Format.table:
        typer.echo(f"{len(catalog)} events, no problems")
    else:
        emit([], fmt)


@catalog_app.command("list")
@handle_errors
def list_events(ctx: typer.Context, fmt: FormatOption = Format.table) -> None:
    """List cataloged events with their version, owner and retention."""
    ws = load_workspace(ctx)
    catalog = Catalog.load(ws.events_dir)
    rows = [{"event": s.name, "type": s.type, "version": str(s.version), "status": s.status,
             "owner": s.owner, "retention": s.retention, "properties": len(s.properties)}
            for s in catalog]
    emit(rows, fmt, title="events")


_ = Annotated  # keep the import for the commands other modules add here
