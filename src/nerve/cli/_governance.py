"""``nerve forget``, ``nerve expire``, ``nerve compact`` and ``nerve audit``: erase a
user's data, enforce retention, take deleted rows' bytes off the disk, and read the audit
log of reads.

While ``nerve serve`` runs they go through its admin API (``POST /v1/admin/forget``,
``/v1/admin/expire``), whose loader owns the warehouse; otherwise they open the warehouse
for writing and drain the log themselves. docs/privacy.md says what is erased where.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from nerve.audit import local_read
from nerve.catalog import Catalog
from nerve.cli._common import (
    Format,
    FormatOption,
    console,
    emit,
    emit_json,
    err_console,
    handle_errors,
    load_workspace,
)
from nerve.cli._remote import answer, running_server
from nerve.errors import TransientError, UserError, did_you_mean
from nerve.workspace import Workspace

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    app.command("forget")(forget)
    app.command("expire")(expire)
    app.command("compact")(compact)
    app.command("audit")(audit)


def _run(ws: Workspace, path: str, body: dict[str, Any],
         local: Callable[[Any], Any]) -> dict[str, Any]:
    """The server's answer at ``path``, else ``local(loader).as_dict()`` on the file."""
    from nerve.loader import Loader  # noqa: PLC0415 - DuckDB only when needed
    from nerve.warehouse import Warehouse  # noqa: PLC0415

    file = Warehouse.file_of(ws.warehouse_url)
    if body.get("dry_run") and file is not None and not file.is_relative_to(ws.data_dir):
        # a dry run creates nothing: opening a file named outside .nerve/ that is not
        # there (a typo, a volume not mounted) for writing made an empty warehouse
        Warehouse.check_exists(ws)
    if file is not None and not file.exists() and running_server(ws) is None:
        _stream_reachable(ws)

    return answer(ws, path, body, lambda warehouse: local(
        Loader.for_workspace(ws, warehouse)).as_dict(), write=True)


def _stream_reachable(ws: Workspace) -> None:
    """Connect to the workspace's NATS stream, if its log is one, before a fresh warehouse
    is made for the loader: NATS out of reach (``TransientError``, exit 5) left an empty
    warehouse file behind, and the next ``nerve status`` showed 0 events on a machine that
    may not be the one meant to hold the warehouse."""
    from nerve.log import StreamLink, StreamSettings  # noqa: PLC0415

    settings = StreamSettings.from_workspace(ws)
    if settings is not None:
        StreamLink(settings, name="nerve-probe").close()


def _ids_from(path: Path | None) -> list[str]:
    """The ids of a ``--users-file``: one per line; blank lines and ``#`` comments skipped."""
    if path is None:
        return []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read the ids ({exc})") from exc
    return [line.strip() for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def _show(answer: dict[str, Any], fmt: Format) -> None:
    if fmt is Format.json:
        emit_json(answer)
        return
    rows = answer.get("rows", {})
    verb = "would delete" if answer.get("dry_run") else "deleted"
    detail = answer.get("detail", {})
    if answer.get("kind") == "expire" and detail:
        emit([{"event": name, "retention_days": d.get("retention_days"),
               "events": d.get("events"), "quarantine": d.get("quarantine")}
              for name, d in detail.items()], fmt, title=f"rows past their retention ({verb})")
    if fmt is Format.table:
        files = answer.get("audit_files") or 0
        console.print(f"{verb}: {rows.get('events', 0):,} events, "
                      f"{rows.get('quarantine', 0):,} quarantined rows"
                      + (f", {files:,} audit log files" if files else ""), markup=False)
        if answer.get("kind") == "forget":
            console.print(f"linked: {detail.get('aliased_ids', 0):,} ids merged into them by "
                          f"alias, {detail.get('linked_anonymous_ids', 0):,} devices found on "
                          "their rows", markup=False)


@handle_errors
def forget(
    ctx: typer.Context,
    user_ids: Annotated[list[str] | None, typer.Option(
        "--user-id", "-u", help="A user id as the product sent it (repeat for several). "
        "Found as sent and as its keyed hash, whatever \\[privacy] user_id is now or was.")
    ] = None,
    anonymous_ids: Annotated[list[str] | None, typer.Option(
        "--anonymous-id", "-a", help="An anonymous (device) id (repeat for several): every "
        "row of that device, whoever signed in on it.")] = None,
    users_file: Annotated[Path | None, typer.Option(
        "--users-file", help="A file of user ids, one per line (for a batch of requests); "
        "blank lines and lines starting with # are skipped.",
        exists=True, dir_okay=False)] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Count the rows that would be deleted; delete nothing.")] = False,
    fmt: FormatOption = Format.table,
) -> None:
    """Forget users: delete their events and quarantined rows, in the warehouse and the log.

    The log is drained into the warehouse first, so rows acknowledged before the command
    are deleted too. The ids merged into a user by alias calls are forgotten with the
    user, and so are the rows without a user id of the devices found on their rows
    (used before signing in); another user's rows on a shared device stay. What was
    deleted (counts, never ids) is kept in the `erasures` table.

    Example: nerve forget --user-id 4711 --dry-run
    """
    ws = load_workspace(ctx)
    users = [*(user_ids or []), *_ids_from(users_file)]
    anonymous = list(anonymous_ids or [])
    if not users and not anonymous:
        raise UserError("name whom to forget: --user-id, --anonymous-id or --users-file")
    from nerve.erasure import forget_users  # noqa: PLC0415
    from nerve.log import StreamSettings  # noqa: PLC0415

    answer = _run(ws, "/v1/admin/forget",
                  {"user_ids": users, "anonymous_ids": anonymous, "dry_run": dry_run},
                  lambda loader: forget_users(ws, loader, user_ids=users,
                                              anonymous_ids=anonymous, dry_run=dry_run))
    _show(answer, fmt)
    missing = answer.get("detail", {}).get("ids_not_found") or 0
    if missing:
        given = len(set(users) | set(anonymous))
        one = missing == 1
        err_console.print(f"note: {missing} of the {given} ids given {'is' if one else 'are'} "
                          "on no row, as sent or as its keyed hash: nothing of "
                          f"{'it' if one else 'them'} was found (ids match exactly, case "
                          "included; a misspelt id deletes nothing)",
                          highlight=False, markup=False, soft_wrap=True)
    if not dry_run:
        _note_set_aside(ws)
    # a stream's loaded messages are purged by the forget itself (docs/storage.md)
    local_log = StreamSettings.from_workspace(ws) is None
    if not dry_run and local_log and running_server(ws) is not None:
        err_console.print("note: nerve serve is running: copies of the deleted rows in the "
                          "log's open segments (.nerve/log) leave it when they are sealed, "
                          "within an hour; stop the server for them to go now "
                          "(docs/privacy.md)", highlight=False, markup=False, soft_wrap=True)


def _note_set_aside(ws: Workspace) -> None:
    """Say which files the log set aside for an operator (damaged segments, cut bytes,
    batches the warehouse refused): forget cannot read them, so they may still hold the
    forgotten users' events, and a forget that said nothing read as complete."""
    from nerve.log import set_aside_files  # noqa: PLC0415

    files = set_aside_files(ws.log_dir)
    if not files:
        return
    root = ws.root.resolve()
    names = [str(p.resolve().relative_to(root)) if p.resolve().is_relative_to(root)
             else str(p) for p in files]
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    err_console.print(f"note: the log keeps {len(files)} file{'s' if len(files) > 1 else ''} "
                      f"set aside for an operator ({shown}): forget does not read them, so "
                      "they may still hold these users' events; inspect them (`nerve "
                      "status` lists them) and delete them by hand (docs/privacy.md)",
                      highlight=False, markup=False, soft_wrap=True)


@handle_errors
def expire(
    ctx: typer.Context,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Count the rows past their retention; delete nothing.")] = False,
    fmt: FormatOption = Format.table,
) -> None:
    """Delete the rows older than their event's retention in the catalog.

    `nerve serve` does this daily; run it by hand (or from cron when no server runs) to
    see or apply it now. An event's latest version sets its retention; rows of events the
    catalog does not describe (quarantined unplanned events, and the rows of an event
    removed from events/) follow \\[privacy] uncataloged_retention (default: kept), and
    the audit log's files \\[privacy] audit_retention.

    Example: nerve expire --dry-run
    """
    ws = load_workspace(ctx)
    from nerve.erasure import expire_rows  # noqa: PLC0415

    catalog = Catalog.load(ws.events_dir)
    answer = _run(ws, "/v1/admin/expire", {"dry_run": dry_run},
                  lambda loader: expire_rows(ws, catalog, loader, dry_run=dry_run))
    _show(answer, fmt)


@handle_errors
def compact(ctx: typer.Context) -> None:
    """Rewrite the warehouse file so that deleted rows' bytes leave the disk.

    After `nerve forget` or `nerve expire` the rows are gone from every query, but DuckDB
    reuses their space only later. This copies the warehouse into a new file and swaps
    it in (a crash leaves either file whole). Stop `nerve serve` first: it needs the
    file to itself.

    Example: nerve compact
    """
    ws = load_workspace(ctx)
    from nerve.erasure import compact as compact_file  # noqa: PLC0415
    from nerve.warehouse import Warehouse  # noqa: PLC0415

    server = running_server(ws)
    if server is not None:
        raise TransientError(f"nerve serve is running for this workspace (pid "
                             f"{server.get('pid')}): stop it, then compact", retry_after=60)
    Warehouse.check_url(ws)  # a PostgreSQL URL's password is never printed
    path = Warehouse.file_of(ws.warehouse_url)
    if path is None or not path.exists():
        raise UserError(f"{path or ws.warehouse_url}: no warehouse file to compact")
    with (local_read(ws, "nerve compact", None),
          err_console.status(f"compacting {path} ({path.stat().st_size / 1e6:,.1f} MB)")):
        before, after = compact_file(path)
    console.print(f"compacted {path}: {before / 1e6:,.1f} MB -> {after / 1e6:,.1f} MB",
                  markup=False)


#: a refused attempt (no valid token, a reader at an admin's endpoint, a request too
#: large for its record, or an MCP tool call refused before any tool ran) read nothing
_REFUSED = (401, 403, 413, "unknown_tool", "invalid_arguments")


def _saw_stored(record: dict[str, Any]) -> bool:
    """Whether the read saw personal values as stored: not masked, and not refused."""
    return not record.get("masked") and record.get("status") not in _REFUSED


@handle_errors
def audit(
    ctx: typer.Context,
    since: Annotated[str, typer.Option(
        "--since", help="How far back: a duration such as 1h, 7d or 4w.")] = "7d",
    who: Annotated[str | None, typer.Option(
        "--who", help="Only this reader: admin, an OS user name, anonymous...")] = None,
    action: Annotated[str | None, typer.Option(
        "--action", help="Only actions containing this text, e.g. sql or forget.")] = None,
    unmasked: Annotated[bool, typer.Option(
        "--unmasked", help="Only reads that saw personal values as stored (not masked; "
        "refused attempts, 401, 403 and 413 and MCP tool calls refused before a tool "
        "ran, read nothing and are left out).")
    ] = False,
    fmt: FormatOption = Format.table,
) -> None:
    """Who read the warehouse, when, how and what: one record per read.

    Every read API call the server answers and every command that reads the warehouse
    file itself is recorded in .nerve/audit/ (docs/privacy.md). Reading this log is not
    itself a read of the warehouse.

    Example: nerve audit --since 7d --action sql
    """
    ws = load_workspace(ctx)
    from nerve.analytics import parse_duration  # noqa: PLC0415
    from nerve.audit import read_records  # noqa: PLC0415

    start = datetime.now(UTC) - parse_duration(since, what="--since")
    found = read_records(ws, start)
    records = [r for r in found
               if (who is None or r.get("who") == who)
               and not (unmasked and not _saw_stored(r))
               and (action is None or action in str(r.get("action")))]
    readers = sorted({str(r.get("who")) for r in found})
    if who is not None and who not in readers:
        # a misspelt name read as "nobody of that name read anything"
        err_console.print(f"note: nobody named {who!r} read the warehouse since "
                          f"{start:%Y-%m-%d %H:%M} UTC{did_you_mean(who, readers)}; "
                          f"those who did: {', '.join(readers) or 'none'}",
                          highlight=False, markup=False, soft_wrap=True)
    if fmt is Format.json:
        emit_json(records)
        return
    if fmt is Format.table:  # narrow enough for a terminal: whole seconds, no empty column
        local = not any(r.get("client") for r in records)
        records = [{"at": str(r.get("at", ""))[:19].replace("T", " "),
                    **{k: r.get(k) for k in ("via", "who", "client", "action", "masked",
                                             "status", "ms")
                       if not (k == "client" and local)},
                    "request": orjson.dumps(r.get("request")).decode()} for r in records]
    emit(records, fmt, title=f"reads since {start:%Y-%m-%d %H:%M} UTC")
