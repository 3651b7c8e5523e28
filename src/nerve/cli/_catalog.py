"""``nerve catalog ...``: the tracking plan, reviewed like code."""

from __future__ import annotations

import enum
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from nerve.catalog import Catalog
from nerve.catalog._codegen import generate, track_specs
from nerve.catalog._diff import check_bumps, diff_catalogs
from nerve.catalog._git import catalog_at_ref
from nerve.catalog._lint import Finding, LintConfig, lint_folder, to_junit
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
from nerve.cli._sql import run_sql
from nerve.errors import did_you_mean
from nerve.workspace import CONFIG_FILE, Workspace

__all__ = ["register"]

catalog_app = typer.Typer(help="The tracking plan: events as code in events/*.yaml "
                               "(docs/catalog.md).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(catalog_app, name="catalog")


class LintFormat(enum.StrEnum):
    table = "table"
    json = "json"
    csv = "csv"
    junit = "junit"


class DiffFormat(enum.StrEnum):
    table = "table"
    json = "json"


class Lang(enum.StrEnum):
    python = "python"
    typescript = "typescript"


def _catalog_files(events_dir: Path, root: Path) -> list[str]:
    return sorted(_rel(p, root) for p in events_dir.rglob("*.y*ml")
                  if p.suffix in (".yaml", ".yml"))


def _rel(path: Path | str | None, root: Path) -> str:
    """A path relative to the workspace (what CI annotations and people want)."""
    if path is None:
        return ""
    path = Path(path)
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)


@catalog_app.command("lint")
@handle_errors
def lint(
    ctx: typer.Context,
    fmt: Annotated[LintFormat, typer.Option(
        "--format", "-f", case_sensitive=False,
        help="table for people; json or csv (one row per finding); junit (XML) for CI.",
    )] = LintFormat.table,
) -> None:
    """Check every events/*.yaml file against the lint rules
    (docs/catalog.md#nerve-catalog-lint), and that the allow_sensitive entries of
    nerve.toml's privacy section name sensitive properties of the catalog.

    Each finding names its rule, severity, file and line. Exit 1 on errors, 3 when only
    warnings are found, 0 when clean. Configure in nerve.toml [catalog]: naming,
    min_description, and [catalog.rules] to change a rule's severity or turn it off.

    Example: nerve catalog lint --format junit > lint.xml  (in CI)
    """
    ws = load_workspace(ctx)
    config = LintConfig.from_toml(ws.config.raw, ws.root / CONFIG_FILE, ws.line_of)
    findings, counts = lint_folder(ws.events_dir, config)
    findings = [replace(f, file=_rel(f.file, ws.root) or None) for f in findings]
    if not any(f.rule == "load" for f in findings):  # a partial catalog lacks some names
        findings += _allow_sensitive_findings(ws)
    if fmt is LintFormat.junit:
        sys.stdout.write(to_junit(findings, _catalog_files(ws.events_dir, ws.root)))
    elif fmt is LintFormat.table:
        if findings:
            emit([{"severity": f.severity, "rule": f.rule,
                   "where": f"{f.file}:{f.line}" if f.line else f.file,
                   "message": f.message} for f in findings], Format.table,
                 title="catalog lint")
        errors = sum(f.severity == "error" for f in findings)
        warnings = len(findings) - errors
        console.print(f"{counts}: {errors} error{'' if errors == 1 else 's'}, "
                      f"{warnings} warning{'' if warnings == 1 else 's'}", soft_wrap=True)
    else:
        emit([f.as_dict() for f in findings], Format(fmt.value))
    if any(f.severity == "error" for f in findings):
        raise typer.Exit(ExitCode.FAILED)
    if findings:
        raise typer.Exit(ExitCode.WARN)


def _allow_sensitive_findings(ws: Workspace) -> list[Finding]:
    """``[privacy] allow_sensitive`` entries naming no sensitive property of the catalog,
    as errors of the ``load`` rule: `nerve serve` refuses to start on them."""
    from nerve.pipeline import allow_sensitive_problems  # noqa: PLC0415

    allowed = ws.config.raw.get("privacy", {}).get("allow_sensitive", [])
    if not allowed:
        return []
    problems = allow_sensitive_problems(allowed, Catalog.load(ws.events_dir))
    line = ws.line_of("privacy", "allow_sensitive")
    return [Finding("load", "error", f"[privacy] allow_sensitive: {problem}", "nerve.toml",
                    line) for problem in problems]


@catalog_app.command("list")
@handle_errors
def list_events(
    ctx: typer.Context,
    all_versions: Annotated[bool, typer.Option(
        "--all-versions", help="One row per live version (events/versions/ too), with its file.",
    )] = False,
    fmt: FormatOption = Format.table,
) -> None:
    """List cataloged events with their version, owner and retention.

    Example: nerve catalog list --all-versions --format csv
    """
    ws = load_workspace(ctx)
    catalog = Catalog.load(ws.events_dir)
    specs = [v for s in catalog for v in catalog.versions(s.name)] if all_versions \
        else list(catalog)
    rows = []
    for spec in specs:
        row = {"event": spec.name, "type": spec.type, "version": str(spec.version),
               "status": spec.status, "owner": spec.owner, "retention": spec.retention,
               "properties": len(spec.properties)}
        if all_versions:
            row["file"] = _rel(spec.file, ws.root)
        rows.append(row)
    emit(rows, fmt, title="events")


@catalog_app.command("diff")
@handle_errors
def diff(
    ctx: typer.Context,
    base: Annotated[str, typer.Option(
        "--base", help="Git ref to compare the working tree's catalog with.")] = "HEAD",
    base_dir: Annotated[Path | None, typer.Option(
        "--base-dir", help="Compare with this events folder instead of a git ref.",
        exists=True, file_okay=False)] = None,
    fmt: Annotated[DiffFormat, typer.Option(
        "--format", "-f", case_sensitive=False,
        help="table for people; json: one object per change, with its event's verdict.",
    )] = DiffFormat.table,
) -> None:
    """Classify every catalog change since --base: breaking, additive or docs.

    Breaking changes need a major version bump, additive ones a minor bump, docs a patch.
    Exit 1 when an event's declared version bump is smaller than its changes need (the
    message names the file and line of `version:`), 0 otherwise.

    Example: nerve catalog diff --base main
    """
    ws = load_workspace(ctx)
    new = Catalog.load(ws.events_dir)
    old = Catalog.load(base_dir) if base_dir is not None else catalog_at_ref(ws.events_dir,
                                                                               base)
    changes = diff_catalogs(old, new)
    verdicts = check_bumps(old, new, changes)
    by_event = {(v.event, v.old_version, v.new_version): v for v in verdicts}
    rows = []
    for change in changes:
        verdict = by_event[(change.event, change.old_version, change.new_version)]
        rows.append({**change.as_dict(), "file": _rel(change.file, ws.root) or None,
                     "required_bump": verdict.required,
                     "declared_bump": verdict.declared, "ok": verdict.ok})
    failed = [v for v in verdicts if not v.ok]
    if fmt is DiffFormat.json:
        emit_json(rows)
    elif not changes:
        console.print(f"no catalog changes since {base_dir or base}")
    else:
        emit([{"level": r["level"], "change": r["kind"], "detail": r["message"],
               "versions": f"{r['old_version'] or '-'} -> {r['new_version'] or '-'}"}
              for r in rows], Format.table, title=f"catalog changes since {base_dir or base}")
        for verdict in verdicts:
            where = f" ({_rel(verdict.file, ws.root)}:{verdict.line})" if verdict.file else ""
            mark = "[green]ok[/green]  " if verdict.ok else "[red]FAIL[/red]"
            console.print(f"{mark} {escape(verdict.message + where)}", highlight=False,
                          soft_wrap=True)
    for verdict in failed:
        if fmt is DiffFormat.json:
            where = f"{_rel(verdict.file, ws.root)}:{verdict.line}: " if verdict.file else ""
            err_console.print(f"{where}{verdict.message}", highlight=False, markup=False,
                              soft_wrap=True)
    if failed:
        raise typer.Exit(ExitCode.FAILED)


@catalog_app.command("codegen")
@handle_errors
def codegen(
    ctx: typer.Context,
    # a plain text option, checked below, so that a misspelt language gets a suggestion
    lang: Annotated[str, typer.Option("--lang", help="python or typescript",
                                      metavar="<python|typescript>")],
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="File to write (default: stdout).", dir_okay=False)] = None,
) -> None:
    """Generate typed tracking functions, one per event, from the catalog.

    python: functions with typed keyword arguments over nerve.sdk's Client.track (any
    client with a compatible track method). typescript: interfaces and functions over
    analytics.js' track. Both add context.event_version so the collector validates against
    the version the code was written for.

    Example: nerve catalog codegen --lang typescript --out src/track.ts
    """
    if lang.lower() not in tuple(Lang):
        raise typer.BadParameter(f"{lang!r} is not one of 'python', 'typescript'"
                                 f"{did_you_mean(lang.lower(), tuple(Lang))}",
                                 param_hint="'--lang'")
    ws = load_workspace(ctx)
    catalog = Catalog.load(ws.events_dir)
    code = generate(catalog, lang.lower())
    if out is None:
        sys.stdout.write(code)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(code, encoding="utf-8")
    functions = len(track_specs(catalog))
    deprecated = sorted({s.name for s in catalog
                         if s.type == "track" and s.status == "deprecated"})
    marked = (f" ({len(deprecated)} marked deprecated: {', '.join(deprecated)})"
              if deprecated else "")
    noun = "function" if functions == 1 else "functions"
    err_console.print(f"wrote {functions} tracking {noun} to {out}{marked}",
                      highlight=False)


@catalog_app.command("docs")
@handle_errors
def docs(
    ctx: typer.Context,
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Folder for the site (default: .nerve/catalog-docs).",
        file_okay=False)] = None,
) -> None:
    """Build a static HTML site of the catalog: search, a page per event, volumes.

    Each page shows the event's metadata, properties (type, required, PII), versions and
    changelog (git log when in git), an example payload, the metrics that use it, and,
    when the warehouse is there, 7/28-day volume and quarantine rate (through nerve
    serve while it runs). Open index.html of the folder in a browser.

    Example: nerve catalog docs --out site  (then open site/index.html)
    """
    # jinja2 and the warehouse load only for this command
    from nerve.catalog._docs import build_site  # noqa: PLC0415

    ws = load_workspace(ctx)
    catalog = Catalog.load(ws.events_dir)
    target = out or ws.make_data_dir() / "catalog-docs"
    if (target / "events").resolve() == ws.events_dir.resolve():
        # the pages go in DIR/events/: among the YAML files of the tracking plan
        raise typer.BadParameter(f"{target} would put the pages in {ws.events_dir}, the "
                                 "catalog's own folder; choose another folder (such as "
                                 "site)", param_hint="'--out'")

    def query(sql: str) -> list[dict[str, Any]]:
        # through `nerve serve` when it holds the warehouse, else the file read-only
        rows: list[dict[str, Any]] = run_sql(ws, sql)["rows"]
        return rows

    report = build_site(catalog, target, workspace=ws, query=query)
    err_console.print(f"wrote {report.pages} pages to {target} ({report.stats_note})",
                      highlight=False, markup=False, soft_wrap=True)
    if report.metrics_note:
        err_console.print(report.metrics_note, highlight=False, markup=False, soft_wrap=True)
    console.print(str(target / "index.html"), highlight=False)
