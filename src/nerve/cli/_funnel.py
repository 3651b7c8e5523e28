"""``nerve funnel``, ``nerve retention`` and ``nerve trend``: thin shells over
``nerve.analytics``.

Each command builds the JSON body of the HTTP API. While ``nerve serve`` holds the DuckDB
file (``.nerve/server.json``) the body goes to the server; otherwise the warehouse file is
opened read-only here and the same function answers it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.markup import escape

from nerve.cli._common import (
    Format,
    FormatOption,
    emit,
    err_console,
    handle_errors,
    load_workspace,
    shown,
    to_json,
)
from nerve.cli._remote import answer
from nerve.errors import CatalogError, InternalError, QueryError
from nerve.workspace import Workspace

if TYPE_CHECKING:
    from nerve.catalog import Catalog

__all__ = ["register", "run_analysis"]

#: the table view keeps what fits a terminal; json and csv have every field
_TABLE_HIDDEN = ("event", "histogram", "drop_off", "p50_seconds", "p90_seconds")
#: how the funnel table shows its numbers (`shown`'s forms); counts get separators
_FUNNEL_FORMS = {"conversion": "percent", "step_conversion": "percent", "median_seconds": "seconds"}


def register(app: typer.Typer) -> None:
    app.command("funnel")(funnel)
    app.command("retention")(retention)
    app.command("trend")(trend)


def run_analysis(ws: Workspace, kind: str, body: dict[str, Any]) -> dict[str, Any]:
    """Answer a funnel/retention/trend body: through the running server, else locally."""
    def local(warehouse: Any) -> dict[str, Any]:
        from nerve import analytics  # noqa: PLC0415 - Ibis and DuckDB only when needed
        from nerve.warehouse import analysis_events  # noqa: PLC0415

        events = analysis_events(warehouse)

        def layer() -> Any:
            from nerve.semantic import SemanticLayer  # noqa: PLC0415

            return SemanticLayer.load(ws)

        timezone = ws.config.timezone  # days and weeks as metrics count them
        catalog = _catalog(ws)  # a filter's fields must be declared there
        if kind == "funnels":
            found = analytics.funnel_request(events, body, layer, timezone=timezone,
                                             catalog=catalog)
        elif kind == "retention":
            found = analytics.retention_request(events, body, timezone=timezone,
                                                catalog=catalog)
        else:
            found = analytics.trend_request(events, body, layer, timezone=timezone,
                                            catalog=catalog)
        # as the server's JSON has it (periods as ISO 8601 text), so the table and CSV
        # print the same whether `nerve serve` runs or not
        return orjson.loads(to_json(found))  # type: ignore[no-any-return]

    found = answer(ws, f"/v1/{kind}", body, local)
    if "rows" not in found:
        raise InternalError(f"unexpected answer to a {kind} request (no rows)")
    return found


def _catalog(ws: Workspace) -> Catalog | None:
    """The workspace's catalog; None when it does not load (`nerve catalog lint` reports
    a broken catalog; the funnel still runs)."""
    from nerve.catalog import Catalog  # noqa: PLC0415

    try:
        return Catalog.load(ws.events_dir)
    except (CatalogError, OSError):
        return None


def _warn_uncataloged(ws: Workspace, events: list[str]) -> None:
    """Events come from the catalog: say so (on stderr) when one is not in it (a typo
    counts nothing, and would otherwise read as a drop to zero)."""
    from difflib import get_close_matches  # noqa: PLC0415

    catalog = _catalog(ws)
    if catalog is None:
        return
    names = catalog.names()
    for event in dict.fromkeys(events):
        if event not in catalog:
            close = get_close_matches(event, names, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            err_console.print(f"[yellow]warning:[/yellow] {escape(repr(event))} is not in the "
                              f"catalog (events/){escape(hint)}; counting the warehouse's "
                              "events of that name",
                              highlight=False)


def _pairs(values: list[str], what: str, parse: Callable[[str, str], Any]) -> dict[str, Any]:
    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep:
            raise QueryError(f"{what}: {item!r} is not N=VALUE")
        out[key.strip()] = parse(key.strip(), value.strip())
    return out


def _exclusion(text: str) -> dict[str, Any]:
    event, _, between = text.partition("@")
    item: dict[str, Any] = {"event": event.strip()}
    if between:
        lo, sep, hi = between.partition("-")
        if not sep or not lo.strip().isdigit() or not hi.strip().isdigit():
            raise QueryError(f"--exclude {text!r}: write EVENT or EVENT@A-B (step numbers)")
        item |= {"after": int(lo), "before": int(hi)}
    return item


@handle_errors
def funnel(
    ctx: typer.Context,
    steps: Annotated[list[str], typer.Argument(
        help="2 to 20 steps in order: EVENT or EVENT:FIELD=VALUE,FIELD>=N (filters).",
        show_default=False)],
    window: Annotated[str, typer.Option(help="Conversion window from the first step: "
                                             "30min, 12h, 1d, 2w.")] = "1d",
    order: Annotated[str, typer.Option(help="sequential (other events may come between "
                                            "steps), strict (none may) or any.")] =
    "sequential",
    by: Annotated[str | None, typer.Option(help="Break down by a property or a path "
                                                "(platform, context.os.name).")] = None,
    attribution: Annotated[str, typer.Option(
        help="Which breakdown value an entity gets: first_touch, last_touch or step:N.")] =
    "first_touch",
    hold: Annotated[list[str] | None, typer.Option(
        help="A property that must be the same on every step (product_id). Repeatable.")] =
    None,
    exclude: Annotated[list[str] | None, typer.Option(
        help="EVENT or EVENT@A-B: drop a chain with EVENT between steps A and B "
             "(default: first and last). Repeatable.")] = None,
    optional: Annotated[list[int] | None, typer.Option(
        help="Step number that may be skipped. Repeatable.")] = None,
    step_window: Annotated[list[str] | None, typer.Option(
        help="N=DURATION: at most this long from the previous step to step N. "
             "Repeatable.")] = None,
    since: Annotated[str | None, typer.Option(
        help="First step from: a date, a datetime, today, yesterday or a duration back "
             "(30d).")] = None,
    until: Annotated[str | None, typer.Option(
        help="First step until: a date (included) or a datetime (excluded); the later "
             "steps may run up to the window past it.")] = None,
    users: Annotated[str | None, typer.Option(
        help="List entities instead: N (reached step N), N:converted or N:dropped.")] = None,
    fmt: FormatOption = Format.table,
) -> None:
    """How many entities (user id, else anonymous id) go through steps in order.

    One row per step (and breakdown value): users who reached the step, conversion from
    the first step and from the previous one, drop-off, and time to convert. Equal
    timestamps count in funnel order; docs/analytics.md defines every option.

    Example: nerve funnel add_to_cart purchase_complete --window 1d --by platform -f json
    """
    ws = load_workspace(ctx)
    body: dict[str, Any] = {
        "steps": steps, "window": window, "order": order, "by": by,
        "attribution": attribution, "hold": hold or [],
        "exclusions": [_exclusion(x) for x in exclude or []],
        "optional": optional or [],
        "step_windows": _pairs(step_window or [], "--step-window", lambda _k, v: v),
        "since": since, "until": until,
    }
    if users:
        number, _, status = users.partition(":")
        if not number.strip().isdigit():
            raise QueryError(f"--users {users!r}: write N, N:converted or N:dropped")
        body["users"] = {"step": int(number), "status": status or "reached"}
    answer = run_analysis(ws, "funnels", body)  # a step in neither catalog nor data: refused
    _warn_uncataloged(ws, [step.partition(":")[0].strip() for step in steps]
                      + [x.partition("@")[0].strip() for x in exclude or []])
    if users:
        emit([{"user": u} for u in answer.get("users", [])], fmt)
        return
    rows = answer["rows"]
    if fmt is Format.table:
        rows = [_table_row(r) for r in rows]
    emit(rows, fmt, title=" → ".join(steps))


def _table_row(row: dict[str, Any]) -> dict[str, Any]:
    """A funnel row for people: counts with separators, conversions as percentages,
    times in seconds, minutes or hours (json and csv keep the numbers as they are).

    >>> _table_row({"step": 2, "event": "add_to_cart", "label": "add_to_cart",
    ...             "users": 2483, "converted": 1697, "dropped": 786, "conversion": 0.73789,
    ...             "step_conversion": 0.73789, "median_seconds": 20.712})
    ... # doctest: +NORMALIZE_WHITESPACE
    {'step': '2', 'label': 'add_to_cart', 'users': '2,483', 'converted': '1,697',
     'dropped': '786', 'conversion': '73.8%', 'step_conversion': '73.8%', 'median_time': '21 s'}
    """
    return {"median_time" if key == "median_seconds" else key: shown(value, _FUNNEL_FORMS.get(key))
            for key, value in row.items() if key not in _TABLE_HIDDEN}


@handle_errors
def retention(
    ctx: typer.Context,
    start: Annotated[str | None, typer.Option(
        "--start", help="The event that puts an entity in a cohort (its first one). "
                        "Default: any track event.")] = None,
    returning: Annotated[str | None, typer.Option(
        "--return", help="The event that counts as coming back. Default: any track "
                          "event.")] = None,
    grain: Annotated[str, typer.Option(help="Cohorts and periods by day or week.")] = "day",
    periods: Annotated[int, typer.Option(help="How many periods after the cohort's.")] = 7,
    mode: Annotated[str, typer.Option(help="on: came back in that period; on_or_after: "
                                           "in that period or later.")] = "on",
    since: Annotated[str | None, typer.Option(
        help="Cohorts from: a date, a datetime, today, yesterday or a duration back "
             "(4w by week: 4 cohorts, today's included), in whole cohorts.")] = None,
    until: Annotated[str | None, typer.Option(
        help="Cohorts until: a date (included) or a datetime (excluded).")] = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Retention by first-event cohort: one row per cohort and period.

    Example: nerve retention --start signup --return purchase_complete --grain week
    """
    ws = load_workspace(ctx)
    body = {"start_event": start, "return_event": returning, "grain": grain,
            "periods": periods, "mode": mode, "since": since, "until": until}
    rows = run_analysis(ws, "retention", body)["rows"]
    _warn_uncataloged(ws, [e for e in (start, returning) if e])
    if fmt is Format.table:
        rows = [_readable_row(row, share="retention") for row in rows]
    emit(rows, fmt, title="retention")


@handle_errors
def trend(
    ctx: typer.Context,
    event: Annotated[str | None, typer.Argument(
        help="The event to count (default: every event).", show_default=False)] = None,
    metric: Annotated[str | None, typer.Option(
        help="A semantic-layer metric (metrics/*.yaml) instead of an event.")] = None,
    measure: Annotated[str, typer.Option(help="count (events) or users (unique).")] =
    "count",
    where: Annotated[list[str] | None, typer.Option(
        help="Filter FIELD=VALUE on the event. Repeatable. With --metric, a filter of "
             "the semantic layer: \"platform = 'ios'\".")] = None,
    grain: Annotated[str, typer.Option(
        help="hour, day, week or month (calendar months of the workspace).")] = "day",
    since: Annotated[str, typer.Option(
        help="From: a date, a datetime, today, yesterday or a duration back, in whole "
             "buckets (7d by day: the last 7 days, today included; 6mo by month: the "
             "last 6 months).")] = "7d",
    until: Annotated[str, typer.Option(
        help="Until: a date (included), a datetime (excluded) or now.")] = "now",
    compare: Annotated[bool, typer.Option(help="Compare with the previous period.")] = True,
    fmt: FormatOption = Format.table,
) -> None:
    """An event's count or unique users (or a metric) per period, next to the period
    before.

    Example: nerve trend add_to_cart --measure users --since 14d --format json
    """
    ws = load_workspace(ctx)
    body: dict[str, Any] = {"grain": grain, "since": since, "until": until,
                            "compare": compare}
    if metric:
        # the layer's filter; several --where are all required, as in `metrics query`
        wheres = where or []
        body |= {"metric": metric, "where": wheres[0] if len(wheres) == 1
                 else " and ".join(f"({w})" for w in wheres) or None}
        if event:
            body["event"] = event  # refused, rather than quietly left out
        if measure != "count":
            raise QueryError(f"--measure {measure}: a metric has its own measure "
                             "(metrics/*.yaml); --measure is for an event's trend")
    else:
        body |= {"event": event, "measure": measure, "filters": where or []}
    rows = run_analysis(ws, "trends", body)["rows"]
    if event and not metric:
        _warn_uncataloged(ws, [event])
    if fmt is Format.table:
        rows = [_readable_row(row, change="change") for row in rows]
    emit(rows, fmt, title=metric or event or "events")


def _readable_row(row: dict[str, Any], *, share: str = "", change: str = "") -> dict[str, Any]:
    """A retention or trend row for people: numbers with separators, the ``share``
    column as a percentage and the ``change`` column as a signed one (json and csv keep
    the numbers as they are).

    >>> _readable_row({"period": 1, "users": 1523, "retention": 0.890306}, share="retention")
    {'period': '1', 'users': '1,523', 'retention': '89.0%'}
    >>> _readable_row({"value": 2618.5, "previous": 1042, "change": 1.51015}, change="change")
    {'value': '2,618.5', 'previous': '1,042', 'change': '+151.0%'}
    """
    forms = {share: "percent", change: "change"}
    return {key: shown(value, forms.get(key)) for key, value in row.items()}
