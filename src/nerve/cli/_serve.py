"""``nerve serve``: the collector and the read APIs over HTTP."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from nerve.cli._common import (
    Format,
    FormatOption,
    console,
    emit,
    emit_json,
    handle_errors,
    load_workspace,
)

if TYPE_CHECKING:
    from nerve.server import NerveState

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_command)
    app.command("console")(console_command)
    app.command("status")(status_command)


@handle_errors
def serve_command(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on. Keep 127.0.0.1 unless a "
                                           "proxy or firewall fronts nerve.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port (0 picks a free one).", min=0,
                                      max=65535)] = 8700,
    workers: Annotated[int, typer.Option(help="Processes accepting events on the port (one "
                                              "per core parses JSON fastest). Above 1, the "
                                              "main process takes no events: it loads them "
                                              "on the CPU time the workers leave (the log "
                                              "absorbs bursts), runs the checks and answers "
                                              "the read APIs.",
                                              min=1, max=64)] = 1,
    pin_workers: Annotated[bool, typer.Option(
        "--pin-workers", help="Pin worker i to the i-th CPU this process may use, for a "
                              "machine given to nerve: each worker keeps its core, and the "
                              "loader runs on what they leave. Measured p99 at 120k "
                              "events/s on 2 cores: ~40 ms pinned, 100-250 ms not. Leave it "
                              "off where other busy processes share the CPUs (or a "
                              "container has a CPU quota but sees every host CPU). Needs "
                              "--workers 2 or more.")] = False,
    collect_only: Annotated[bool, typer.Option(
        "--collect-only", help="A stateless collector: publish events to the workspace's NATS "
                               "stream (url in the log section of nerve.toml) and nothing "
                               "else. Run any number of them, behind a load balancer, beside "
                               "the one full `nerve serve` that loads the stream into the "
                               "warehouse and answers the read APIs (docs/storage.md).")
    ] = False,
) -> None:
    """Collect events (Segment HTTP API) and serve the read APIs until Ctrl-C.

    Loads the workspace and catalog, opens the warehouse, starts the loader thread.
    The event log is the workspace's own (.nerve/log), or a NATS JetStream stream
    when the url of the log section of nerve.toml names one.

    Events: POST /v1/batch (or /v1/track, /v1/t, ...) with a source's write key.

    A 200 means the events are durable in the event log.

    Health: GET /health. SQL: POST /v1/admin/sql with the token in .nerve/server.json.

    Prometheus metrics: GET /metrics. OpenAPI of the ingest API: GET /openapi.json.
    Logs: one JSON object per line on stderr.

    Privacy (the privacy section), rate limits and timeouts (the collector section)
    come from nerve.toml.

    SIGTERM or Ctrl-C: finish in-flight requests, load the rest of the log, exit 0.

    Example: nerve serve --port 8701  (another port when 8700 is taken)

    Docs: docs/collector.md, docs/operations.md, docs/privacy.md, docs/http-api.md.
    """
    # the server pulls in uvicorn, Starlette and the warehouse: only `serve` pays for them
    from nerve.server import serve  # noqa: PLC0415

    workspace = load_workspace(ctx)

    def ready(state: NerveState) -> None:
        sources = ", ".join(s.name for s in workspace.config.sources) or "none"
        console.print(f"nerve serving [bold]{state.url}[/bold]  workspace {workspace.root}  "
                      f"catalog {len(state.catalog)} events  sources {sources}",
                      highlight=False)
        console.print("Send events to POST /v1/batch; Ctrl-C stops (nothing accepted is lost).",
                      highlight=False)
        if not collect_only:
            console.print(f"Web console: {state.url}/ui (`nerve console` opens it with the "
                          "admin token).", highlight=False)

    serve(workspace, host, port, workers=workers, pin_workers=pin_workers,
          collect_only=collect_only, on_ready=ready)


@handle_errors
def console_command(
    ctx: typer.Context,
    print_only: Annotated[bool, typer.Option(
        "--print", help="Print the console's URL (with the admin token) instead of opening "
                        "a browser.")] = False,
) -> None:
    """Open the web console of the running nerve serve.

    The console (the page /ui of the server) shows the pipeline, the checks,
    live alerts, experiments, a metric, the busiest events and the quarantine.
    This command opens it with the server's admin token in the URL's fragment,
    which the browser keeps to itself (no server or log sees it). A reader
    opens /ui and types her own token instead.

    Example: nerve console --print  (the URL, to open elsewhere)

    Docs: docs/http-api.md.
    """
    import webbrowser  # noqa: PLC0415

    from nerve.errors import UserError  # noqa: PLC0415
    from nerve.server._run import read_server_file  # noqa: PLC0415

    workspace = load_workspace(ctx)
    info = read_server_file(workspace)
    if info is None:
        raise UserError(f"no nerve serve is running for {workspace.root}: start it with "
                        "`nerve serve`, then run `nerve console`")
    url = f"{info['url']}/ui#token={info['admin_token']}"
    if print_only or not webbrowser.open(url):
        typer.echo(url)
    else:
        console.print(f"opened {info['url']}/ui in the browser", highlight=False)


@handle_errors
def status_command(ctx: typer.Context, fmt: FormatOption = Format.table) -> None:
    """The pipeline at a glance: events in the warehouse, the newest one, the log's
    unloaded bytes, the collector's counters and whether the loader is failing, and the
    events withheld for consent and requests refused in the last 24 h (the loads ledger).

    From the running nerve serve (GET /v1/status), else from the workspace's files
    and log. The web console shows the same (nerve console).

    Example: nerve status --format json  (nerve --workspace shop status from elsewhere)
    """
    import httpx  # noqa: PLC0415

    from nerve.cli._remote import call, running_server  # noqa: PLC0415

    workspace = load_workspace(ctx)
    body = None
    server = running_server(workspace)
    if server is not None:
        # a server that died since it wrote server.json: read the files instead
        with contextlib.suppress(httpx.ConnectError):
            body = call(server, "GET", "/v1/status", timeout=60)
    if body is None:
        from nerve.audit import local_read  # noqa: PLC0415
        from nerve.server.api.console import offline_status  # noqa: PLC0415

        with local_read(workspace, "/v1/status", None):  # as the server records it
            body = offline_status(workspace)
    if fmt is Format.json:
        emit_json(body)
        return
    emit(_status_rows(body, fmt), fmt, title=f"nerve status: {body['project']}")


def _status_rows(body: dict[str, Any], fmt: Format) -> list[dict[str, Any]]:
    """The status as (what, value) rows; counts grouped by thousands in the table only
    (CSV numbers carry every digit, docs/cli.md)."""
    def n(value: int) -> str:
        return f"{value:,}" if fmt is Format.table else str(value)

    warehouse, collector, log = body["warehouse"], body["collector"], body["log"]
    loader = body["loader"]
    since = "since the server started" if body["url"] else "in the server's last run"
    collectors = body.get("collect_only_pids")
    server = body["url"] or "not running"
    if not body["url"] and collectors:
        since = "since the collectors started"
        server = (f"not running; nerve serve --collect-only runs here (pid "
                  f"{', '.join(map(str, collectors))}: it takes events, no read API)")
    rows = [("server", server)]
    if warehouse is None:
        rows.append(("warehouse", "not on this machine: the log is a NATS stream, and the "
                                  "nerve serve that loads it (without --collect-only) holds "
                                  "the warehouse; run nerve status there"))
    else:
        rows += [
            ("events in the warehouse", n(warehouse['events'])),
            ("received in the last 24 h", n(warehouse['events_24h'])),
            ("newest event received", warehouse["last_received_at"] or "none"),
            ("quarantined rows", n(warehouse['quarantine']))]
    rows += [
        (f"accepted {since}", n(collector['accepted'])),
        (f"with violations {since}", n(collector['quarantined'])),
        (f"dropped {since}", ", ".join(f"{k}: {n(v)}" for k, v in collector["dropped"].items())
         or "0"),
        (f"ingest answers {since}",
         ", ".join(f"{k}: {n(v)}" for k, v in collector["requests"].items()) or "none"),
        *([(f"refused {since}",
            ", ".join(f"{k}: {n(v)}" for k, v in collector["refusals"].items())
            + " (the server's log says why)")] if collector.get("refusals") else []),
        *_withheld_rows(body.get("withheld"), n),
        (f"{log['kind']} log, not loaded yet",
         f"unknown: {log['unreachable']}" if log.get("unreachable") else
         f"{n(log['backlog_bytes'])} bytes"),
    ]
    if log.get("write_problem"):
        rows.append((f"{log['kind']} log", f"cannot be written: {log['write_problem']}; "
                                           "ingest answers 503 until it can"))
    disk = body.get("warehouse_disk") or {}
    if disk.get("problem"):
        rows.append(("warehouse disk", f"short of room: {disk['problem']}; ingest answers "
                                       "503 until it has room"))
    if log.get("set_aside"):
        rows.append(("log files set aside", "\n".join(log["set_aside"]) + "\n(damaged or "
                     "refused log data kept for inspection, docs/storage.md: read, then "
                     "delete them by hand)"))
    if loader is not None:
        rows.append((f"loader, {since}", f"failing: {loader['last_error']}"
                     if loader["failing"] else
                     f"ok: {n(loader['loaded'])} events loaded, {n(loader['quarantined'])} "
                     f"quarantined, {n(loader['duplicates'])} duplicates dropped"))
    catalog = body.get("catalog")
    if catalog is not None:
        rows.append(("catalog in use", f"{catalog['events']} events, loaded "
                                       f"{catalog['loaded_at']}"))
        if catalog["problems"]:
            rows.append(("events/ did not load (the catalog above stays in use)",
                         "\n".join(catalog["problems"])))
    retention = body.get("retention")
    if retention is not None:
        rows.append(_retention_row(retention, n))
    return [{"what": what, "value": value} for what, value in rows]


def _withheld_rows(withheld: dict[str, Any] | None,
                   n: Callable[[int], str]) -> list[tuple[str, str]]:
    """The ledger's last 24 h: unlike the counters above, durable, from every collector
    process, and not reset by a restart (none without a warehouse on this machine)."""
    if withheld is None:
        return []
    if not withheld["recorded"]:
        return [("withheld and refused, last 24 h", "not recorded: the warehouse's loads "
                                                    "ledger has no withheld column")]
    consent, refused = withheld["consent"], withheld["refused"]
    return [
        ("withheld for consent, last 24 h",
         ", ".join(f"{event}: {n(count)}" for event, count in consent.items()) or "0"),
        ("refused requests, last 24 h",
         ", ".join(f"{r['status']} {r['code']}: {n(r['requests'])}" for r in refused)
         or "0")]


def _retention_row(retention: dict[str, Any], n: Callable[[int], str]) -> tuple[str, str]:
    deleted = retention["deleted"]
    last = ("never" if retention["last_run"] is None else
            f"{retention['last_run']} (deleted {n(deleted['events'])} events, "
            f"{n(deleted['quarantine'])} quarantined rows)")
    if retention["failing"]:
        return ("retention job", f"failing since {retention['failed_at']}: "
                                 f"{retention['last_error']} (retried every hour until a "
                                 f"run succeeds); last run: {last}")
    if not retention["enforced"]:
        return ("retention job", "off ([privacy] enforce_retention = false); last run "
                                 f"(nerve expire): {last}")
    return ("retention job, last run", last)
