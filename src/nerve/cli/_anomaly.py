"""``nerve anomalies``, ``nerve explain`` and ``nerve forecast`` (docs/anomalies.md).

Thin shells over ``nerve.anomaly``: through ``nerve serve`` when it runs (it holds the
warehouse), else on the warehouse file opened read-only (``nerve.cli._remote.answer``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import typer

from nerve.cli._common import (
    ExitCode,
    Format,
    FormatOption,
    console,
    emit,
    emit_json,
    err_console,
    handle_errors,
    iso_time,
    load_workspace,
    shown,
    working,
)
from nerve.cli._remote import answer

__all__ = ["register"]


def table_row(row: dict[str, Any]) -> dict[str, Any]:
    """An anomaly for people: the change in percent, times to the minute (UTC unless an
    offset follows), a rate's
    figures with four significant digits (json and csv keep every field as it is).

    >>> table_row({"target": "add_to_cart", "dimension": "platform", "value": "android",
    ...            "direction": "down", "start": "2026-11-25T12:00:00+00:00",
    ...            "end": "2026-11-26T09:00:00+00:00", "observed": 3.0,
    ...            "expected": 10.4693, "change": -0.7134})
    ... # doctest: +NORMALIZE_WHITESPACE
    {'target': 'add_to_cart', 'dimension': 'platform', 'value': 'android',
     'direction': 'down', 'start': '2026-11-25 12:00', 'end': '2026-11-26 09:00',
     'observed': '3', 'expected': '10.47', 'change': '-71.3%'}
    """
    shown: dict[str, Any] = {k: row.get(k) for k in (
        "target", "dimension", "value", "direction", "start", "end", "observed", "expected",
        "change")}
    for key in ("start", "end"):
        text = row.get(key)
        if isinstance(text, str):  # the offset stays unless it is UTC's
            shown[key] = text[:16].replace("T", " ") + (
                "" if text.endswith(("+00:00", "Z")) or len(text) <= 16 else f" {text[-6:]}")
    for key in ("observed", "expected"):
        number = row.get(key)
        if isinstance(number, int | float) and not isinstance(number, bool):
            shown[key] = f"{number:,.4g}" if abs(number) < 10_000 else f"{number:,.0f}"
    change = row.get("change")
    if isinstance(change, int | float) and not isinstance(change, bool):
        shown["change"] = f"{change:+.1%}"
    return shown


def register(app: typer.Typer) -> None:
    app.command("anomalies")(anomalies)
    app.command("explain")(explain)
    app.command("forecast")(forecast)


def _now(text: str | None) -> str | None:
    moment = iso_time(text, "--now")
    return None if moment is None else moment.isoformat()


@handle_errors
def anomalies(
    ctx: typer.Context,
    target: Annotated[str | None, typer.Argument(
        help="A metric or an event (its count); none: every event.", show_default=False)]
    = None,
    by: Annotated[list[str] | None, typer.Option(
        help="Also judge each value of this dimension (platform, country, a property). "
             "Repeatable. Default for events: platform, os, app_version, country.")] = None,
    evaluate: Annotated[str, typer.Option(help="Judge the last ... (24h, 7d).")] = "24h",
    backtest: Annotated[str | None, typer.Option(
        help="Instead: walk back this far (14d) and show what would have alerted, "
             "refitting before each day as a daily run would.")] = None,
    training: Annotated[str, typer.Option(help="History the model learns from.")] = "28d",
    grain: Annotated[str | None, typer.Option(
        help="hour or day (default: hour for counts and sums, day for rates).")] = None,
    sensitivity: Annotated[float, typer.Option(
        help="Family error in sigmas for counts and rates, spreads for metric values "
             "(higher: fewer alerts).")] = 3.0,
    direction: Annotated[str, typer.Option(help="both, up (spikes) or down (drops).")] =
    "both",
    min_volume: Annotated[float, typer.Option(
        help="Ignore windows with fewer events than this (observed and expected).")] = 5.0,
    min_change: Annotated[float, typer.Option(
        help="Smallest relative change to report (0.3 = 30%).")] = 0.3,
    points: Annotated[bool, typer.Option(
        "--points", help="List every judged period with its band instead of the alerts.")]
    = False,
    now: Annotated[str | None, typer.Option(help="Judge as of this time (ISO 8601).")] =
    None,
    fmt: FormatOption = Format.table,
) -> None:
    """Anomalies of a metric or event count, overall and per dimension value.

    Each period gets an expected value and a band from a seasonal robust model (hour of
    day and day of week; medians that ignore past incidents, then means on the clean
    points); sums over 1, 4 and 24 periods are judged too, so slow drops and small
    bursts show. Exit code 1 when something is anomalous.

    Example: nerve anomalies add_to_cart --by platform --backtest 14d --format json
    """
    ws = load_workspace(ctx)
    body: dict[str, Any] = {
        "target": target, "by": by or [], "evaluate": evaluate, "backtest": backtest,
        "training": training, "grain": grain, "sensitivity": sensitivity,
        "direction": direction, "min_volume": min_volume, "min_change": min_change,
        "points": points, "now": _now(now)}

    def local(warehouse: Any) -> dict[str, Any]:
        from nerve.anomaly._service import run_local  # noqa: PLC0415

        data = dict(body)
        moment = data.pop("now")
        return run_local(warehouse, ws, data, datetime.fromisoformat(moment) if moment
                         else None)

    with working(f"judging {target or 'every event'}"):
        result = answer(ws, "/v1/anomalies", body, local)
    rows = result.get("points", []) if points else result["anomalies"]
    if fmt is Format.table:
        about = result["about"]
        grain = {"hour": "hourly", "day": "daily"}.get(about["grain"], about["grain"])
        err_console.print(f"{about['target'] or 'every event'} ({grain}), "
                          f"{about['evaluated']['start']} to {about['evaluated']['end']}: "
                          f"{result['series_judged']} series judged, "
                          f"{result['series_skipped']} skipped (too new or too small).")
        if not rows:
            console.print("No anomalies.")
        else:
            emit([table_row(r) if not points else r for r in rows], fmt)
    else:
        emit(rows, fmt)
    if result["anomalies"]:
        raise typer.Exit(ExitCode.FAILED)


@handle_errors
def explain(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(help="A metric or an event (its count).",
                                          show_default=False)],
    period: Annotated[str, typer.Option(
        help="24h, 7d, yesterday, last_week, YYYY-MM-DD or YYYY-MM-DD..YYYY-MM-DD (a day "
             "not over ends at the last complete hour).")] = "24h",
    vs: Annotated[str, typer.Option(
        help="previous (the period before) or expected (median of the same hours 1-4 "
             "weeks before).")] = "previous",
    by: Annotated[list[str] | None, typer.Option(
        help="Only these breakdowns (default: platform, os, app_version, country, "
             "age_group, channel, plan and the events' properties with few values). "
             "Repeatable.")] = None,
    funnel: Annotated[list[str] | None, typer.Option(
        help="Funnel steps, in order, to find the broken step in (repeat; default: a "
             "conversion metric's base and conversion events).")] = None,
    now: Annotated[str | None, typer.Option(help="Explain as of this time (ISO 8601).")]
    = None,
    where: Annotated[str | None, typer.Option(
        help="Only events matching this filter of the semantic layer, e.g. "
             "\"platform = 'android'\" (related events and the funnel are then not "
             "computed).")] = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Why a metric or an event count changed: drivers, mix and rate, related anomalies.

    The change is split among the values of each breakdown into volume, mix (the value's
    share of active users, or of a ratio's denominator) and rate (per active user-hour,
    or the ratio itself) effects; drivers are ranked by the share of the change their
    effect carries beyond their usual size, how cleanly their breakdown explains it and
    the evidence. The JSON has target, period, baseline, observed, change, drivers,
    related, caveats (from the quality checks) and a one-paragraph summary.

    Example: nerve explain revenue --period last_week --vs expected --format json
    """
    ws = load_workspace(ctx)
    body = {"target": target, "period": period, "vs": vs, "by": by or None,
            "funnel": funnel or None, "now": _now(now), "where": where}

    def local(warehouse: Any) -> dict[str, Any]:
        from nerve.anomaly._service import explain_local  # noqa: PLC0415

        data = dict(body)
        moment = data.pop("now")
        return explain_local(warehouse, ws, data, datetime.fromisoformat(str(moment))
                             if moment else None)

    with working(f"explaining {target}"):
        result = answer(ws, "/v1/anomalies/explain", body, local)
    if fmt is Format.json:
        emit_json(result)
        return
    console.print(result["summary"], markup=False)
    drivers, unscored = scored_drivers(result["drivers"], fmt)
    if drivers:
        emit(effect_rows(drivers, fmt, result.get("style")), fmt, title="Drivers")
    if unscored:
        console.print(f"{unscored} more value(s) moved with the change but score 0 (no "
                      "more than their usual share of it, or their breakdown's values "
                      "cancel out): not drivers; --format json lists them.", markup=False)
    if result.get("offsets"):  # the summary names them: "Against the change: ..."
        emit(effect_rows(result["offsets"], fmt, result.get("style")), fmt,
             title="Against the change")
    if result["related"]:
        emit(related_rows(result["related"], fmt), fmt, title="Related")
    if result["caveats"]:
        emit([{k: c.get(k) for k in ("check", "status", "event", "impact", "message")}
              for c in result["caveats"]], fmt, title="Caveats")
    if result.get("funnel"):
        emit(result["funnel"]["steps"], fmt, title="Funnel")


def scored_drivers(drivers: list[dict[str, Any]], fmt: Format
                   ) -> tuple[list[dict[str, Any]], int]:
    """The drivers a table shows, and how many it leaves out: a value that moved with the
    change but scores 0 explains none of it (it kept its usual share, or its breakdown's
    values cancel out), and a row in a table titled "Drivers" reads as one. CSV keeps
    every row, with its score.

    >>> scored_drivers([{"value": "ios", "score": 0.5}, {"value": "FR", "score": 0.0}],
    ...                Format.table)
    ([{'value': 'ios', 'score': 0.5}], 1)
    """
    if fmt is not Format.table:
        return drivers, 0
    kept = [d for d in drivers if (d.get("score") or 0) > 0]
    return kept, len(drivers) - len(kept)


def effect_rows(items: list[dict[str, Any]], fmt: Format,
                style: str | None = None) -> list[dict[str, Any]]:
    """Drivers (or the values against the change) as rows. A table shows a share in
    percent ("over 100%" beyond the whole change: other values moved the other way) and
    the effects and z rounded for reading, a count's effects as whole numbers (``style``
    "count", as the summary writes them); CSV keeps every digit.

    >>> effect_rows([{"value": "ios", "share": 0.28754, "mix": 30.1299, "rate": -40.549,
    ...               "z": 1.75637}], Format.table)[0]["share"]
    '28.8%'
    >>> row = effect_rows([{"value": "4.2.0", "share": 13.169, "mix": 214.4, "rate": -37.5}],
    ...                   Format.table, "count")[0]
    >>> row["share"], row["mix"], row["rate"]
    ('over 100%', 214, -38)
    """
    from nerve.anomaly._explain_words import whole  # noqa: PLC0415 - with explain


    rows = []
    for d in items:
        row = {k: d.get(k) for k in ("dimension", "value", "effect", "contribution", "share",
                                     "observed", "expected", "mix", "rate", "z",
                                     "score", "overlaps")}
        if fmt is Format.table:
            row["share"] = "over 100%" if (row["share"] or 0) > 1 \
                else shown(row["share"], "percent")
            for key, digits in (("mix", 1), ("rate", 1), ("z", 2), ("score", 2)):
                value = row[key]
                if value is None:
                    continue
                row[key] = whole(value) if style == "count" and key in ("mix", "rate") \
                    else round(value, digits)
        rows.append(row)
    return rows


def related_rows(items: list[dict[str, Any]], fmt: Format) -> list[dict[str, Any]]:
    """Related events as rows. A table shows the change in percent and z rounded, as the
    summary says them ("recipe_view up 101%"); CSV keeps every digit.

    >>> related_rows([{"event": "a", "change": 1.01116, "z": 19.3175}], Format.table)[0]
    {'event': 'a', 'change': '+101.1%', 'z': 19.3}
    """
    rows = []
    for item in items:
        row = dict(item)
        if fmt is Format.table:
            row["change"] = shown(row.get("change"), "change")
            if row.get("z") is not None:
                row["z"] = round(row["z"], 1)
        rows.append(row)
    return rows


@handle_errors
def forecast(
    ctx: typer.Context,
    metric: Annotated[str, typer.Argument(help="A metric or an event (its daily count).",
                                          show_default=False)],
    horizon: Annotated[str, typer.Option(help="How far ahead (14d).")] = "14d",
    history: Annotated[str, typer.Option(help="History to fit on (90d).")] = "90d",
    level: Annotated[float, typer.Option(help="Prediction interval probability.")] = 0.9,
    now: Annotated[str | None, typer.Option(help="Forecast as of this time (ISO 8601).")]
    = None,
    fmt: FormatOption = Format.table,
) -> None:
    """A daily forecast with prediction intervals (Holt-Winters / ETS with weekly
    seasonality), and a backtest on the last days: MAE, MAPE and interval coverage.

    JSON: an array of rows, kind "forecast" (the future) or "backtest" (held-out days,
    with the actual value); the backtest's scores are printed on stderr.

    Example: nerve forecast revenue --horizon 14d --format json
    """
    ws = load_workspace(ctx)
    body = {"metric": metric, "horizon": horizon, "history": history, "level": level,
            "now": _now(now)}

    def local(warehouse: Any) -> dict[str, Any]:
        from nerve.anomaly._service import forecast_local  # noqa: PLC0415

        data = dict(body)
        moment = data.pop("now")
        return forecast_local(warehouse, ws, data, datetime.fromisoformat(str(moment))
                              if moment else None)

    with working(f"forecasting {metric}"):
        result = answer(ws, "/v1/anomalies/forecast", body, local)
    check = result["backtest"]
    rows = [{"kind": "forecast", **r} for r in result["forecast"]]
    rows += [{"kind": "backtest", **r} for r in check["points"]]
    mape = f"{check['mape']:.1%}" if check["mape"] is not None else "n/a"
    err_console.print(f"{result['model']}, {result['history_days']} days of history. "
                      f"Backtest on the last {check['days']} days: MAE {check['mae']:,.4g}, "
                      f"MAPE {mape}, {check['coverage']:.0%} inside the "
                      f"{check['level']:.0%} interval.")
    emit(rows, fmt)
