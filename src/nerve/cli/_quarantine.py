"""``nerve quarantine list|show|replay``: events the catalog refused, and their second chance."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import httpx
import orjson
import typer
from rich.markup import escape

from nerve.audit import local_read
from nerve.catalog import Catalog
from nerve.cli._common import (
    ExitCode,
    Format,
    FormatOption,
    console,
    emit,
    emit_json,
    err_console,
    handle_errors,
    load_workspace,
)
from nerve.cli._remote import post, running_server, wait_for_server
from nerve.cli._sql import run_sql
from nerve.errors import (
    CatalogError,
    QueryError,
    TransientError,
    UserError,
    WarehouseLockedError,
    did_you_mean,
)
from nerve.workspace import Workspace

if TYPE_CHECKING:
    from nerve.pipeline import PrivacyPolicy
    from nerve.quarantine import ReplayReport

__all__ = ["register"]

quarantine_app = typer.Typer(
    help="Events that failed validation or are not in the catalog, kept with every "
         "violation; replay them after fixing the catalog (docs/catalog.md#quarantine-and-replay).",
    no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(quarantine_app, name="quarantine")


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _violations(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            return []
    return [v for v in value or [] if isinstance(v, dict)]


def _hinted(found: list[dict[str, Any]], event: Any, hints: dict[str, str]) -> None:
    """Add "(did you mean X?)" to an ``unknown_event`` violation, against the catalog as it
    is now: worked out here, when someone reads the quarantine, never at ingest (where a
    client sending made-up names would make the collector compute it for each)."""
    hint = hints.get(str(event), "") if event is not None else ""
    for violation in found:
        if hint and violation.get("rule") == "unknown_event":
            violation["message"] = f"{violation.get('message')}{hint}"


def _unknown_hints(ws: Workspace, events: set[str]) -> dict[str, str]:
    """``did_you_mean`` of each name the current catalog lacks (nothing when it does not
    load: the list still shows what the collector said)."""
    try:
        catalog = Catalog.load(ws.events_dir)
    except CatalogError:
        return {}
    names = catalog.names()
    return {name: did_you_mean(name, names) for name in events if name not in catalog}


@quarantine_app.command("list")
@handle_errors
def list_quarantine(
    ctx: typer.Context,
    event: Annotated[str | None, typer.Option("--event", "-e",
                                              help="Only this event.")] = None,
    since: Annotated[str | None, typer.Option(
        "--since", help="Events timestamped from: a date (2026-03-01), a datetime, today, "
                        "yesterday or a duration back from now (7d).")] = None,
    until: Annotated[str | None, typer.Option(
        "--until", help="Events timestamped until: a date (included) or a datetime "
                        "(excluded).")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.", min=1)] = 100,
    fmt: FormatOption = Format.table,
) -> None:
    """List quarantined events, newest first, with their first violation.

    `--since` and `--until` keep the events whose own timestamp (when the client says it
    happened, as metrics count it) is in the range, in the workspace's timezone. Works
    while `nerve serve` runs (the query goes through it).

    Example: nerve quarantine list --event add_to_cart --since 2026-03-01 --until 2026-03-07
    """
    ws = load_workspace(ctx)
    conditions = [f"event = {_literal(event)}"] if event is not None else []
    conditions += _time_conditions(ws, since, until)
    where = f"WHERE {' AND '.join(conditions)} " if conditions else ""
    body = run_sql(ws, "SELECT message_id, type, event, source, \"timestamp\", received_at, "
                       f"violations FROM quarantine {where}"
                       f"ORDER BY received_at DESC LIMIT {int(limit)}")
    rows = []
    hints = _unknown_hints(ws, {str(r["event"]) for r in body["rows"] if r.get("event")})
    for row in body["rows"]:
        found = _violations(row.get("violations"))
        _hinted(found, row.get("event"), hints)
        rows.append({"message_id": row["message_id"], "type": row["type"],
                     "event": row["event"], "source": row["source"],
                     "timestamp": row["timestamp"], "received_at": row["received_at"],
                     "violations": len(found),
                     "first": found[0].get("message") if found else None})
    emit(rows, fmt, title="quarantine")


def _time_conditions(ws: Workspace, since: str | None, until: str | None) -> list[str]:
    """SQL conditions on the events' ``timestamp`` for ``--since`` / ``--until``, read as
    metrics and funnels read them (dates whole days in the workspace's timezone, an
    until date included)."""
    from nerve.analytics import parse_time  # noqa: PLC0415 - Ibis, only when asked

    now = datetime.now(UTC)
    start = parse_time(since, what="--since", now=now, timezone=ws.config.timezone)
    end = parse_time(until, what="--until", now=now, timezone=ws.config.timezone, end=True)
    if start is not None and end is not None and end <= start:
        raise QueryError(f"empty time range: --since {since} is not before --until {until} "
                         f"(from {start.isoformat()} to {end.isoformat()}; an until date "
                         "is included)")
    found = []
    if start is not None:
        found.append(f'"timestamp" >= TIMESTAMPTZ {_literal(start.isoformat())}')
    if end is not None:
        found.append(f'"timestamp" < TIMESTAMPTZ {_literal(end.isoformat())}')
    return found


@quarantine_app.command("show")
@handle_errors
def show(
    ctx: typer.Context,
    message_id: Annotated[str, typer.Argument(help="The quarantined event's message_id.")],
    fmt: FormatOption = Format.table,
) -> None:
    """Show one quarantined event: its payload, and one row per violation (path, rule,
    message, catalog file and line).

    Example: nerve quarantine show MESSAGE_ID --format json (ids: nerve quarantine list)
    """
    ws = load_workspace(ctx)
    body = run_sql(ws, f"SELECT * FROM quarantine WHERE message_id = {_literal(message_id)} "
                       "ORDER BY quarantined_at LIMIT 1")
    if not body["rows"]:
        raise UserError(f"no quarantined event with message_id {message_id!r} "
                        "(`nerve quarantine list` shows them)")
    row = body["rows"][0]
    found = _violations(row.get("violations"))
    if row.get("event"):
        _hinted(found, row["event"], _unknown_hints(ws, {str(row["event"])}))
    if fmt is Format.json:
        emit_json({**row, "violations": found})
        return
    if fmt is Format.csv:
        emit(found, fmt)
        return
    name = escape(str(row.get("event") or row.get("type")))
    console.print(f"[bold]{name}[/bold] "
                  + escape(f"{message_id} from {row.get('source')} at {row.get('received_at')}"),
                  highlight=False)
    for key in ("properties", "traits", "context"):
        if row.get(key):
            console.print(f"{key}: {orjson.dumps(row[key]).decode()}", highlight=False,
                          markup=False)
    emit(found, fmt, title="violations")


@quarantine_app.command("replay")
@handle_errors
def replay(
    ctx: typer.Context,
    event: Annotated[str | None, typer.Option("--event", "-e",
                                              help="Only this event.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run",
                                          help="Judge only; change nothing.")] = False,
    fmt: FormatOption = Format.table,
) -> None:
    """Re-validate quarantined events against the current catalog and load those that pass.

    Loaded events move from the quarantine to `events` in one transaction; a message_id
    already in `events` is never loaded twice. Needs the warehouse to itself: stop
    `nerve serve` first. `--dry-run` only reads, so it also works while `nerve serve` runs
    (through the server). Exit 0 when everything judged now passes, 3 when some still fail.

    Example: nerve quarantine replay --event add_to_cart --dry-run
    """
    ws = load_workspace(ctx)
    catalog = Catalog.load(ws.events_dir)
    with err_console.status("judging quarantined events against the catalog..."):
        report = (_dry_run(ws, catalog, event) if dry_run
                  else _replay_locally(ws, catalog, event))
    summary = {"judged": report.judged, "loaded": report.loaded,
               "duplicates": report.duplicates, "still_failing": report.still_failing,
               "withheld": report.withheld, "dry_run": dry_run}
    if fmt is Format.table:
        verb = "would load" if dry_run else "loaded"
        withheld = (f", withheld by consent {report.withheld}" if report.withheld else "")
        console.print(f"judged {report.judged}: {verb} {report.loaded}, already loaded "
                      f"{report.duplicates}, still failing {report.still_failing}"
                      + withheld)
        failing = [d for d in report.decisions if not d.ok][:20]
        if failing:
            emit([{"message_id": d.message_id,
                   "violation": d.violations[0].get("message") if d.violations else ""}
                  for d in failing], Format.table, title="still failing (first 20)")
    else:
        emit([summary], fmt)
    if report.still_failing:
        err_console.print(f"{report.still_failing} events still fail; "
                          "`nerve quarantine list` shows why", highlight=False)
        raise typer.Exit(ExitCode.WARN)


def _dry_run(ws: Workspace, catalog: Catalog, event: str | None) -> ReplayReport:
    """A dry run only reads: through the running server's SQL API, else on the file opened
    read-only (recorded in the audit log as the replay it previews)."""
    from nerve.quarantine import preview, preview_query  # noqa: PLC0415 - Ibis
    from nerve.quarantine import replay as run_replay  # noqa: PLC0415
    from nerve.warehouse import Warehouse  # noqa: PLC0415

    server = running_server(ws)
    if server is not None:
        try:
            return preview(catalog, post(server, "/v1/admin/sql",
                                         {"query": preview_query(event)})["rows"],
                           _policy(ws, catalog, dry_run=True))
        except httpx.ConnectError:
            pass  # the server died since it wrote server.json: open the file ourselves
    path = Warehouse.file_of(ws.warehouse_url)
    try:
        if (path is not None and not path.exists()
                and path.is_relative_to(ws.data_dir)):
            Warehouse.for_workspace(ws).close()  # a fresh workspace: create the empty tables
        with (local_read(ws, "nerve quarantine replay", {"event": event, "dry_run": True}),
              Warehouse.for_workspace(ws, read_only=True) as warehouse):
            return run_replay(warehouse, catalog, event=event, dry_run=True,
                              policy=_policy(ws, catalog, dry_run=True))
    except WarehouseLockedError as exc:  # a nerve serve that starts: wait for its name
        server = wait_for_server(ws, exc.pid)
        if server is None:
            raise
        return preview(catalog, post(server, "/v1/admin/sql",
                                     {"query": preview_query(event)})["rows"],
                       _policy(ws, catalog, dry_run=True))


def _policy(ws: Workspace, catalog: Catalog, *, dry_run: bool = False) -> PrivacyPolicy:
    """The workspace's ``[privacy]`` policy, as ``nerve serve``'s collector applies it. A
    dry run stores nothing and counts only what consent withholds: it needs no secret
    (and creates none in a workspace that has none yet)."""
    from nerve.pipeline import PrivacyPolicy  # noqa: PLC0415

    return PrivacyPolicy.from_config(ws.config.raw.get("privacy", {}),
                                     b"" if dry_run else ws.secret()).with_catalog(catalog)


def _replay_locally(ws: Workspace, catalog: Catalog, event: str | None) -> ReplayReport:
    """The replay writes, so it needs the warehouse to itself."""
    from nerve.quarantine import replay as run_replay  # noqa: PLC0415 - Ibis when needed
    from nerve.warehouse import Warehouse  # noqa: PLC0415

    server = running_server(ws)
    if server is not None:
        raise TransientError(
            f"`nerve serve` (pid {server.get('pid', '?')}, {server.get('url')}) holds "
            "the warehouse; stop it (Ctrl-C or SIGTERM), run `nerve quarantine replay`, "
            "then start it again (`--dry-run` works while it runs)")
    policy = _policy(ws, catalog)
    with (local_read(ws, "nerve quarantine replay", {"event": event, "dry_run": False}),
          Warehouse.for_workspace(ws) as warehouse):
        return run_replay(warehouse, catalog, event=event, policy=policy)
