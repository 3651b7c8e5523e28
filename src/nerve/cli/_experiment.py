"""``nerve experiment list|show|plan|analyze``: experiments as code (docs/experiments.md)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer

from nerve.cli._common import (
    Format,
    FormatOption,
    console,
    emit,
    emit_json,
    err_console,
    handle_errors,
    shown,
    working,
)
from nerve.cli._common import load_workspace as _workspace
from nerve.cli._remote import answer
from nerve.experiments import get_experiment, load_experiments
from nerve.workspace import Workspace

__all__ = ["register", "run_analysis"]

experiment_app = typer.Typer(help="Experiments as code in experiments/*.yaml: plan, assign, "
                                  "analyse.", no_args_is_help=True)



def _table_row(row: dict[str, Any], level: str = "95%") -> dict[str, Any]:
    """A readable row: the columns that decide, formatted for people."""
    ci = (f"{shown(row['ci_low'], 'change')} .. {shown(row['ci_high'], 'change')}"
          if row["ci_low"] is not None else "")
    return {
        "metric": row["metric"], "variant": row["variant"], "units": row["units"],
        "mean": f"{row['mean']:.4g}" if row["mean"] is not None else "",
        "lift": row.get("note") or shown(row["lift"], "change"), f"{level} CI": ci,
        "p": shown(row["p_value"], "p"), "win": shown(row["chance_to_win"], "percent"),
    }


def register(app: typer.Typer) -> None:
    app.add_typer(experiment_app, name="experiment")


def _experiments(ws: Workspace) -> dict[str, Any]:
    return load_experiments(ws.root / "experiments", ws.config.timezone)


@experiment_app.command("list")
@handle_errors
def list_experiments(ctx: typer.Context, fmt: FormatOption = Format.table) -> None:
    """Every experiment with its variants, metrics and dates.

    Example: nerve experiment list
    """
    ws = _workspace(ctx)
    rows = [{"key": e.key, "name": e.name, "owner": e.owner, "status": e.status,
             "variants": ", ".join(f"{v.key} ({v.weight:g})" for v in e.variants),
             "primary": e.primary, "start": e.start, "end": e.end}
            for e in _experiments(ws).values()]
    if fmt is Format.table:
        # dates as written: an end date's moment is the midnight after its last day
        for row in rows:
            row["start"] = _day(row["start"])
            row["end"] = _day(row["end"], last=True)
    emit(rows, fmt, title="experiments")


def _day(moment: datetime | None, *, last: bool = False) -> str | None:
    """A start or end for the table: the local date for a midnight (an end's last day),
    else the moment."""
    if moment is None:
        return None
    if (moment.hour, moment.minute, moment.second, moment.microsecond) != (0, 0, 0, 0):
        return moment.isoformat()
    return (moment - timedelta(days=1) if last else moment).date().isoformat()


@experiment_app.command("show")
@handle_errors
def show(ctx: typer.Context, key: Annotated[str, typer.Argument(help="Experiment key.")],
         fmt: FormatOption = Format.table) -> None:
    """One experiment's definition, as SDKs receive it.

    Example: nerve experiment show simple_checkout --format json
    """
    exp = get_experiment(_experiments(_workspace(ctx)), key)
    info = {**exp.as_dict(), "hypothesis": exp.hypothesis, "owner": exp.owner,
            "primary": exp.primary, "secondary": list(exp.secondary),
            "guardrails": list(exp.guardrails), "mde": exp.mde, "alpha": exp.alpha,
            "power": exp.power, "correction": exp.correction}
    if fmt is Format.json:
        emit_json(info)
    else:
        emit([{"field": k, "value": v} for k, v in info.items()], fmt, title=exp.key)


def run_analysis(ws: Workspace, key: str, by: str | None = None) -> dict[str, Any]:
    """The readout of ``key``: through the running server, else from the warehouse file."""
    def local(warehouse: Any) -> dict[str, Any]:
        from nerve.experiments._run import analyze_experiment, readout_dict  # noqa: PLC0415
        from nerve.semantic import SemanticLayer  # noqa: PLC0415
        from nerve.warehouse import analysis_events  # noqa: PLC0415

        exp = get_experiment(_experiments(ws), key)
        layer = SemanticLayer.load(ws)
        readout = analyze_experiment(exp, layer, analysis_events(warehouse),
                                     now=datetime.now(UTC), by=by)
        return readout_dict(exp, readout)

    get_experiment(_experiments(ws), key)  # a bad file or key fails before any connection
    return answer(ws, "/v1/experiments/analyze", {"key": key, "by": by}, local)


@experiment_app.command("analyze")
@handle_errors
def analyze(ctx: typer.Context, key: Annotated[str, typer.Argument(help="Experiment key.")],
            by: Annotated[str | None, typer.Option(
                "--by", help="Also break the results down by a dimension (platform, "
                             "user.age_group, ...) at each unit's first exposure.")] = None,
            fmt: FormatOption = Format.table) -> None:
    """Analyse an experiment: lift, intervals, CUPED, always-valid intervals, chance to
    win, sample-ratio mismatch, and a decision (ship, keep running, stop).

    --format json prints the readout POST /v1/experiments/analyze returns: decision,
    reasons, srm_p_value, units per variant, warnings, and "rows", one object per
    variant and metric (lift, ci_low, ci_high, p_value, seq_ci_low, seq_ci_high,
    cuped_lift, chance_to_win, ...); with --by, "breakdown" holds the same per value of
    the dimension. --format csv prints the rows, then the breakdown's.

    Example: nerve experiment analyze simple_checkout --by platform
    """
    from nerve.experiments._run import confidence_level, report_text  # noqa: PLC0415

    with working(f"analysing {key}"):
        readout = run_analysis(_workspace(ctx), key, by)
    if fmt is not Format.table:
        if fmt is Format.json:
            emit_json(readout)
        else:
            emit([*readout["rows"], *readout.get("breakdown", [])], fmt)
        for warning in readout.get("warnings", []):  # JSON or CSV on stdout stays clean
            err_console.print(f"warning: {warning}", highlight=False, markup=False,
                              soft_wrap=True)
        return
    level = confidence_level(readout)
    emit([_table_row(r, level) for r in readout["rows"]], fmt, title=key)
    if readout.get("breakdown"):
        emit([{by or "value": r["value"], **_table_row(r, level)} for r in readout["breakdown"]],
             fmt,
             title=f"{key} by {by}")
    console.print(report_text(readout), highlight=False, soft_wrap=True, markup=False)


@experiment_app.command("plan")
@handle_errors
def plan(ctx: typer.Context, key: Annotated[str, typer.Argument(help="Experiment key.")],
         baseline_days: Annotated[int, typer.Option(help="Days of history to read the primary "
                                                        "metric's level and traffic from.")] = 14,
         fmt: FormatOption = Format.table) -> None:
    """Units and days needed to detect the experiment's minimum detectable effect.

    Example: nerve experiment plan simple_checkout --baseline-days 28
    """
    ws = _workspace(ctx)
    exp = get_experiment(_experiments(ws), key)

    def local(warehouse: Any) -> dict[str, Any]:
        from nerve.experiments._plan import plan_experiment  # noqa: PLC0415
        from nerve.semantic import SemanticLayer  # noqa: PLC0415
        from nerve.warehouse import analysis_events  # noqa: PLC0415

        return plan_experiment(exp, SemanticLayer.load(ws), analysis_events(warehouse),
                               baseline_days=baseline_days, now=datetime.now(UTC))

    result = answer(ws, "/v1/experiments/plan", {"key": key, "baseline_days": baseline_days},
                    local)
    if fmt is Format.json:
        emit_json(result)
        return
    emit([{"field": k, "value": v} for k, v in result.items()], fmt, title=f"plan for {key}")
