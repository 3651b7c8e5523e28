"""``nerve demo``: a shop's month of traffic through the real system, in one command."""

from __future__ import annotations

import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from nerve.cli._common import (
    Format,
    FormatOption,
    console,
    emit,
    emit_json,
    err_console,
    handle_errors,
    print_table,
    shown,
)
from nerve.demo import DEFAULT_DAYS, DEFAULT_USERS, simulate
from nerve.workspace import Workspace

if TYPE_CHECKING:
    from nerve.demo._summary import Section

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


@handle_errors
def demo(
    directory: Annotated[Path, typer.Option("--dir", help="Folder for the demo workspace; "
                                                          "created, or reset if an earlier "
                                                          "demo made it.", file_okay=False)]
    = Path("nerve-demo"),
    days: Annotated[int, typer.Option(help="Days of history to simulate, ending now "
                                           "(or at --end).",
                                      min=1, max=400)] = DEFAULT_DAYS,
    users: Annotated[int, typer.Option(help="Shoppers to simulate (about 50 messages each "
                                            "over 28 days).", min=1, max=1_000_000)]
    = DEFAULT_USERS,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same "
                                           "events.")] = 0,
    serve: Annotated[bool, typer.Option("--serve/--no-serve",
                                        help="Keep serving after the summary until Ctrl-C "
                                             "(--no-serve: stop and exit).")] = True,
    port: Annotated[int, typer.Option(help="Port of the demo server (0: a free one).",
                                      min=0, max=65535)] = 0,
    incidents: Annotated[bool, typer.Option("--incidents/--no-incidents",
                                            help="Inject the production incidents.")] = True,
    faults: Annotated[bool, typer.Option("--faults/--no-faults",
                                         help="Inject instrumentation faults (wrong types, "
                                              "duplicates, late events, ...).")] = True,
    end: Annotated[datetime | None, typer.Option(
        help="Where simulated time ends (UTC), e.g. 2026-11-28T08:00:00. Default: now. "
             "With --end and --seed fixed, every run sends the same events; an end in the "
             "past makes the live minutes arrive late.",
        formats=["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d"])] = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Simulate a shoe shop's traffic through a real nerve server, then summarise it.

    Creates a workspace with the shop's catalog, starts `nerve serve`, sends DAYS of
    simulated history (iOS, Android and web shoppers; a running experiment; injected
    incidents and instrumentation faults) through the Python SDK as a historical import,
    its last 15 minutes as live traffic, waits until everything is loaded, and prints a
    summary. The truth about what was injected is in DIR/ground_truth.json.

    Example: nerve demo --days 7 --users 1000 --no-serve
    """
    # with --format json or csv, stdout holds only the summary: progress goes to stderr
    out = console if fmt is Format.table else err_console
    from nerve.demo._run import (  # noqa: PLC0415 - the server and warehouse only when run
        DemoServer,
        make_config,
        prepare_workspace,
        wait_until_loaded,
        write_ground_truth,
    )
    from nerve.demo._summary import SummaryContext, build_summary  # noqa: PLC0415

    ws = prepare_workspace(directory)
    config = make_config(days, users, seed, incidents=incidents, faults=faults,
                         end=None if end is None else end.replace(tzinfo=UTC))
    sim = simulate(config)
    out.print(f"Demo workspace [bold]{ws.root}[/bold]: starting nerve serve", highlight=False)
    server = DemoServer(ws, port)
    # SIGTERM (a service manager, `kill`) stops the demo like Ctrl-C: the server stops too
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        report = _send(sim, ws, server.url, out)
        truth = sim.ground_truth
        write_ground_truth(ws, truth)
        expected = truth["expected"]["accepted"] + truth["expected"]["quarantined"]
        sql = server.sql
        with _progress(out) as bar:
            task = bar.add_task("loading into the warehouse", total=expected)
            wait_until_loaded(sql, expected, lambda n: bar.update(task, completed=n),
                              loading=server.loading)
        ctx = SummaryContext(ws, truth, server.url, sql, api=server.api, run={
            "send_seconds": round(report.seconds, 2), "messages": report.messages,
            "undelivered": report.undelivered, "errors": report.errors, "serving": serve})
        sections = build_summary(ctx)
        if fmt is Format.json:
            emit_json({"workspace": str(ws.root), "url": server.url,
                       "sections": [s.as_dict() for s in sections]})
        elif fmt is Format.csv:  # one table: each section's rows, named in a first column
            emit([{"section": s.key, **row} for s in sections for row in s.rows], fmt)
        else:
            _print(sections, out)
        if serve:
            out.print(f"\nServing [bold]{server.url}[/bold]; Ctrl-C stops.", highlight=False)
            try:
                server.wait()
            except KeyboardInterrupt:
                out.print("stopping (loading what is left)...")
    finally:
        server.stop()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _progress(out: Console) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=out)


def _send(sim: Any, ws: Workspace, url: str, out: Console) -> Any:
    days = sim.config.days
    with Progress(TextColumn("{task.description}"), BarColumn(),
                  TextColumn("day {task.completed:.1f}/{task.total:.0f}"),
                  TextColumn("{task.fields[messages]:,} messages"), TimeElapsedColumn(),
                  console=out) as bar:
        task = bar.add_task(f"sending {days} days of the shop through the SDK", total=days,
                            messages=0)
        from nerve.demo._run import send_simulation  # noqa: PLC0415

        return send_simulation(
            sim, ws, url, lambda done, n: bar.update(task, completed=done, messages=n))


def _print(sections: list[Section], out: Console) -> None:
    for section in sections:
        columns: list[str] = []
        for row in section.rows:
            columns.extend(k for k in row if k not in columns and k != "partial")
        stacked = [c for c in section.stack if c in columns]
        if stacked:  # shown in one column, where the first of them was
            columns = [" / ".join(stacked) if c == stacked[0] else c
                       for c in columns if c == stacked[0] or c not in stacked]
        cells = []
        for row in section.rows:
            values = {**row, " / ".join(stacked): "\n".join(
                shown(row.get(c)) for c in stacked if row.get(c) is not None)}
            line = [shown(values.get(c), section.formats.get(c)) for c in columns]
            if row.get("partial"):  # a period the run covers in part: its figures are low
                line[0] += " (partial)"
            cells.append(line)
        out.print()
        if section.rows:  # a duration reads 2 min, so its header says time, not seconds
            headers = [c.removesuffix("_seconds") + "_time"
                       if section.formats.get(c) == "seconds" else c for c in columns]
            print_table(headers, cells, section.title, out, title_justify="left",
                        title_style="bold")
        else:
            out.print(f"[bold]{section.title}[/bold]")
        if section.note:
            out.print(f"  {section.note}", style="dim", highlight=False)
    sys.stdout.flush()
