"""``nerve metrics ...``: the semantic layer (metrics/*.yaml) on the command line.

``query`` goes through the running ``nerve serve`` when it holds the warehouse (its
``.nerve/server.json``), else opens the warehouse file read-only.
"""

from __future__ import annotations

import csv
import sys
from datetime import date, datetime
from typing import Annotated, Any

import httpx
import typer

from nerve import semantic  # its modules load on first use: Ibis only for a command that reads
from nerve.audit import local_read
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
    readable,
)
from nerve.cli._remote import answer, call, running_server, wait_for_server
from nerve.errors import InternalError, Location, TransientError, WarehouseLockedError
from nerve.workspace import Workspace

__all__ = ["register", "run_query"]

metrics_app = typer.Typer(
    help="Metrics as code: list, check and query the metrics in metrics/*.yaml.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(metrics_app, name="metrics")


def _layer(ws: Workspace, *, strict: bool = True) -> semantic.SemanticLayer:
    """The workspace's layer; a MetricsError names files as lint does (metrics/x.yaml)."""
    try:
        return semantic.SemanticLayer.load(ws, strict=strict)
    except semantic.MetricsError as exc:
        raise semantic.MetricsError(
            [(Location(_relative(ws, str(loc.file)), loc.line, loc.column), what)
             for loc, what in exc.problems]) from None


@metrics_app.command("list")
@handle_errors
def list_metrics(ctx: typer.Context, fmt: FormatOption = Format.table) -> None:
    """List every metric with its type, format, owner and description.

    Example: nerve metrics list --format json
    """
    layer = _layer(load_workspace(ctx))
    rows = [{"metric": m.name, "type": m.type, "label": m.title, "format": m.format,
             "owner": m.owner, "description": m.description,
             "synonyms": ", ".join(m.synonyms)} for m in layer.metrics.values()]
    emit(sorted(rows, key=lambda r: r["metric"]), fmt, title="metrics")


@metrics_app.command("show")
@handle_errors
def show(ctx: typer.Context,
         name: Annotated[str, typer.Argument(help="A metric name or synonym.")],
         fmt: FormatOption = Format.table) -> None:
    """Show one metric: its definition, formula, events and where it is defined.

    Example: nerve metrics show revenue
    """
    info = _layer(load_workspace(ctx)).describe(name)
    if fmt is Format.json:
        emit_json(info)
        return
    rows = [{"field": k, "value": ", ".join(map(str, v)) if isinstance(v, list) else v}
            for k, v in info.items() if v not in (None, [], "")]
    emit(rows, fmt, title=info["name"])


@metrics_app.command("lint")
@handle_errors
def lint(ctx: typer.Context, fmt: FormatOption = Format.table) -> None:
    """Check metrics/*.yaml against the catalog; exit 1 on any problem (file and line given).

    Example: nerve metrics lint
    """
    ws = load_workspace(ctx)
    try:
        layer = _layer(ws, strict=False)
        problems = list(layer.problems)
        count = len(layer.metrics)
    except semantic.MetricsError as exc:  # pragma: no cover - strict=False collects instead
        problems, count = list(exc.problems), 0
    if problems:
        rows = [{"file": _relative(ws, str(loc.file)), "line": loc.line, "severity": "error",
                 "message": msg} for loc, msg in problems]
        emit(rows, fmt, title="metric problems")
        raise typer.Exit(ExitCode.FAILED)
    if fmt is Format.table:
        typer.echo(f"{count} metrics, no problems")
    else:
        emit([], fmt)


def _relative(ws: Workspace, path: str) -> str:
    root = str(ws.root) + "/"
    return path[len(root):] if path.startswith(root) else path


def _health(ws: Workspace) -> semantic.HealthSource | None:
    """Data health from the latest quality-check run recorded in the warehouse, if any."""
    from nerve.warehouse import Warehouse  # noqa: PLC0415 - DuckDB only when needed

    path = Warehouse.file_of(ws.warehouse_url)
    if path is not None and not path.exists():
        return None
    try:
        with (local_read(ws, "/v1/metrics/readiness", None),
              Warehouse.for_workspace(ws, read_only=True) as warehouse):
            return semantic.health_from_checks(warehouse.ibis())
    except WarehouseLockedError:
        raise  # a nerve serve that starts holds it: `readiness` waits for its name
    except TransientError:
        return None  # the server holds the file: `readiness` asks the server instead


@metrics_app.command("readiness")
@handle_errors
def readiness(ctx: typer.Context, fmt: FormatOption = Format.table) -> None:
    """For each metric: the events and fields it needs, whether the catalog has them,
    and their data health from the latest quality checks (nerve check).

    Exits 1 when a metric needs something the catalog lacks.

    Example: nerve metrics readiness --format json
    """
    ws = load_workspace(ctx)
    layer = _layer(ws, strict=False)
    server = running_server(ws)
    if server is not None:
        try:
            found = [_readiness_of(item) for item in call(server, "GET", "/v1/metrics/readiness")]
        except httpx.ConnectError:
            server = None
    if server is None:
        try:
            found = layer.readiness(_health(ws))
        except WarehouseLockedError as exc:  # a nerve serve that starts: wait for its name
            server = wait_for_server(ws, exc.pid)
            if server is None:
                found = layer.readiness(None)  # another holder: no health, as before
            else:
                found = [_readiness_of(item)
                         for item in call(server, "GET", "/v1/metrics/readiness")]
    if fmt is Format.json:
        emit_json([r.as_dict() for r in found])
    else:
        _emit_readiness(found, fmt)
    if any(r.status == "missing" for r in found):
        raise typer.Exit(ExitCode.FAILED)


def _readiness_of(item: dict[str, Any]) -> semantic.Readiness:
    """A Readiness from its JSON form (the server's answer)."""
    return semantic.Readiness(
        metric=item["metric"], status=item["status"],
        requirements=tuple(
            semantic.Requirement(r["event"], r["field"], r["in_catalog"], r["problem"])
            for r in item["requirements"]),
        health={e: semantic.Health(h["status"], h["detail"])
                for e, h in item["health"].items()},
    )


def _emit_readiness(found: list[semantic.Readiness], fmt: Format) -> None:
    rows = []
    for item in found:
        info = item.as_dict()
        missing = [f"{r['event']}{'.' + r['field'] if r['field'] else ''}: {r['problem']}"
                   for r in info["requirements"] if not r["in_catalog"]]
        rows.append({
            "metric": item.metric, "status": item.status, "events": ", ".join(info["events"]),
            "fields": ", ".join(sorted({r["field"] for r in info["requirements"]
                                        if r["field"] and r["in_catalog"]})),
            "missing": "; ".join(missing),
            "health": ", ".join(f"{e}={h.status}" for e, h in sorted(item.health.items())),
        })
    emit(rows, fmt, title="metric readiness")


# ----------------------------------------------------------------------------- query


def run_query(ws: Workspace, query: semantic.MetricQuery) -> dict[str, Any]:
    """``MetricResult.as_dict()`` of ``query``: from the running server when there is
    one, else from the warehouse file opened read-only."""
    layer = _layer(ws)  # a bad metrics file fails here, before any connection

    def local(warehouse: Any) -> dict[str, Any]:
        from nerve.warehouse import analysis_events  # noqa: PLC0415 - DuckDB only when needed

        return layer.query(query, analysis_events(warehouse)).as_dict()

    body = answer(ws, "/v1/metrics/query", query.as_dict(), local)
    if "rows" not in body:
        raise InternalError("unexpected answer to a metrics query (no rows)")
    return body


def _formatted(value: Any, fmt: str, currency: str | None) -> Any:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return value
    if fmt == "percent":
        return f"{value * 100:.1f}%"
    if fmt == "currency":
        return f"{value:,.2f}" + (f" {currency}" if currency else "")
    # every digit a person needs: `{:,.4g}` showed a sum of 30997.42 as 3.1e+04
    return f"{value:,}" if isinstance(value, int) else readable(value)


@metrics_app.command("query")
@handle_errors
def query(
    ctx: typer.Context,
    metrics: Annotated[list[str], typer.Argument(help="Metric names (or synonyms).")],
    by: Annotated[list[str] | None, typer.Option(
        "--by", "-b", help="Break down by a dimension (repeat for several): platform, "
                           "user.age_group, context.os.name, a property of the event.")] = None,
    grain: Annotated[str | None, typer.Option(
        "--grain", "-g", help="hour, day, week or month (in the workspace time zone). "
                              "Default: one total.")] = None,
    where: Annotated[str | None, typer.Option(
        "--where", help="A filter: \"platform = 'ios' and user.age >= 65\"; segment names "
                        "work as conditions.")] = None,
    segment: Annotated[list[str] | None, typer.Option(
        "--segment", "-s", help="A named segment that must hold (repeatable).")] = None,
    since: Annotated[str | None, typer.Option(
        "--since", help="Start: a date (2026-03-01), today, yesterday, or a duration back "
                        "from now (8w, 30d, 24h: that many periods with a grain).")] = None,
    until: Annotated[str | None, typer.Option(
        "--until", help="End: a date (included) or datetime; default now.")] = None,
    order_by: Annotated[list[str] | None, typer.Option(
        "--order-by", help="Sort by a result column; -name for descending.")] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="At most N rows.")] = None,
    full: Annotated[bool, typer.Option(
        "--full", help="With --format json: one object with rows, sql and lineage.")] = False,
    sql: Annotated[bool, typer.Option(
        "--sql", help="Also print the compiled SQL and each metric's lineage (stderr).")] = False,
    fmt: FormatOption = Format.table,
) -> None:
    """Compute metrics by time and dimensions.

    Example: nerve metrics query revenue checkout_conversion --by platform --grain week
    --since 8w --format json
    """
    ws = load_workspace(ctx)
    request = semantic.MetricQuery.build(metrics, by=by, grain=grain, where=where,
                                         segments=segment, since=since, until=until,
                                         order_by=order_by, limit=limit)
    result = run_query(ws, request)
    if sql:
        err_console.print(result["sql"], markup=False, highlight=False)
        for item in result["lineage"].values():
            err_console.print(f"-- {item['metric']}: {item['formula']}; events "
                              f"{', '.join(item['events'])}; filters: "
                              f"{'; '.join(item['filters']) or 'none'}",
                              markup=False, highlight=False)
    if fmt is Format.json and full:
        emit_json(result)
        return
    rows = result["rows"]
    if not rows:
        _no_rows(result, fmt)
        return
    if fmt is Format.table:
        layer = _layer(ws)
        formats = {name: (layer.get(name).format, layer.get(name).currency)
                   for name in result["query"]["metrics"]}
        rows = [{k: _formatted(v, *formats[k]) if k in formats else v for k, v in r.items()}
                for r in rows]
        time_column, partial = result.get("time_column"), result.get("partial")
        if time_column and partial:
            # the period still running: its figures are so far (a week on its Monday
            # would read as a drop)
            for row in rows:
                value = row.get(time_column)
                if (value.isoformat() if isinstance(value, date | datetime) else value) == partial:
                    row[time_column] = f"{partial} (partial)"
        title = (f"{', '.join(result['query']['metrics'])} from {_minute(result['start'])} "
                 f"to {_minute(result['end'])} ({result['timezone']}, end excluded)")
        emit(rows, fmt, title=title)
        return
    emit(rows, fmt)


def _no_rows(result: dict[str, Any], fmt: Format) -> None:
    """No row: a breakdown over a range where no event has a value for it (without a
    breakdown every period has its row). JSON stays ``[]``; CSV keeps its header line,
    for the scripts that read it; the table says so rather than print nothing."""
    query = result["query"]
    columns = [*([result["time_column"]] if result.get("time_column") else []),
               *query["by"], *query["metrics"]]
    if fmt is Format.json:
        emit([], fmt)
    elif fmt is Format.csv:
        csv.writer(sys.stdout, lineterminator="\n").writerow(columns)
    else:
        why = (f": no event in it has a value for {', '.join(query['by'])}" if query["by"]
               else "")
        console.print(f"no rows from {_minute(result['start'])} to {_minute(result['end'])} "
                      f"({result['timezone']}, end excluded){why} (columns: "
                      f"{', '.join(columns)})", markup=False, highlight=False)


def _minute(moment: str) -> str:
    """An ISO time to the minute, or to the second when it falls within one: an end of
    now at 16:22:37 read "to 16:22, end excluded" above events of 16:22:10.

    >>> _minute("2026-11-30T16:22:00+00:00"), _minute("2026-11-30T16:22:37.125+00:00")
    ('2026-11-30T16:22', '2026-11-30T16:22:37')
    """
    return moment[:16] if moment[16:19] in ("", ":00") else moment[:19]
