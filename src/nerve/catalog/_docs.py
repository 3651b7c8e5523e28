"""A static HTML site of the catalog: ``nerve catalog docs``.

An index with client-side search, and one page per event: its metadata, properties,
an example payload generated from its schema, the metrics that use it, every version with
the changes from the one before, its git history, and (when the warehouse is there and
free) its 7/28-day volume and quarantine rate. Pure Jinja2 templates, no JavaScript
framework, so the site opens from the file system or any static host.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
import orjson

from nerve.catalog._catalog import Catalog
from nerve.catalog._diff import diff_events
from nerve.catalog._example import example_payload
from nerve.catalog._git import file_history
from nerve.catalog._model import EventSpec, PropertySpec, Version
from nerve.errors import NerveError
from nerve.workspace import Workspace

if TYPE_CHECKING:
    from nerve.semantic import Metric

__all__ = ["STATS_SQL", "EventStats", "MetricRef", "QueryRows", "SiteReport", "build_site",
           "event_stats", "metric_refs", "page_name"]


@dataclass(frozen=True, slots=True)
class SiteReport:
    pages: int
    #: whether volumes were included, and if not, why
    stats_note: str
    #: metrics left out of the "used by" lists, and why ("" when all loaded)
    metrics_note: str = ""


@dataclass(frozen=True, slots=True)
class EventStats:
    n7: int
    n28: int
    q28: int

    @property
    def rate(self) -> str:
        total = self.n28 + self.q28
        return f"{100 * self.q28 / total:.1f}%" if total else "-"


@dataclass(frozen=True, slots=True)
class MetricRef:
    metric: str
    file: str
    line: int


# ------------------------------------------------------------------------- metrics, stats

def metric_refs(metrics_dir: Path, catalog: Catalog) -> tuple[dict[str, list[MetricRef]], str]:
    """Which metrics read which event, from the semantic layer's own loader, and a note.

    A metric reads the events of its measures (a ratio's numerator and denominator, a
    conversion's base and conversion) and, through its inputs, those of the metrics it is
    built from. Each reference points at the measure that names the event, else at the
    metric. A metric that does not load is left out (``nerve metrics lint`` says why),
    and the note counts the problems: the site is built all the same.
    """
    # the semantic layer reads the catalog: imported here, not at the top of a catalog module
    from nerve.semantic import SemanticLayer  # noqa: PLC0415

    try:
        layer = SemanticLayer.from_folder(metrics_dir, catalog, strict=False)
    except NerveError as exc:
        return {}, f"metrics skipped: {str(exc).splitlines()[0]}"
    refs: dict[str, list[MetricRef]] = {}
    for metric in layer.metrics.values():
        lines = _measure_lines(metric)
        try:
            events = layer.events_of(metric.name)
        except (NerveError, RecursionError):  # an unknown or circular input: lint says so
            events = list(lines)
        for event in events:
            file = metric.file or metrics_dir
            rel = file.relative_to(metrics_dir).as_posix() \
                if file.is_relative_to(metrics_dir) else file.name
            refs.setdefault(event, []).append(
                MetricRef(metric.name, rel, lines.get(event, metric.line or 0)))
    count = len(layer.problems)
    note = f"metrics: {count} problem{'s' * (count != 1)}, see nerve metrics lint; a metric " \
        "that does not load is not listed" if count else ""
    return refs, note


def _measure_lines(metric: Metric) -> dict[str, int]:
    """The line of the measure that names each event a metric reads directly."""
    measures = [metric.measure, metric.numerator, metric.denominator]
    if metric.conversion is not None:
        measures += [metric.conversion.base, metric.conversion.conversion]
    lines: dict[str, int] = {}
    for measure in measures:
        if measure is None or isinstance(measure, str):
            continue
        for event in measure.events:
            lines.setdefault(event, measure.line or metric.line or 0)
    return lines


#: track events by name; the other calls a catalog entry can describe (``identify``,
#: ``group``, ``page``, ``screen``) by their type, the name of the entry describing them
STATS_SQL = """
SELECT 'events' AS tbl, CASE WHEN type = 'track' THEN event ELSE type END AS event,
       count(*) FILTER (WHERE "timestamp" >= current_timestamp - INTERVAL 7 DAY) AS n7,
       count(*) FILTER (WHERE "timestamp" >= current_timestamp - INTERVAL 28 DAY) AS n28
FROM events WHERE type IN ('track', 'identify', 'group', 'page', 'screen') GROUP BY ALL
UNION ALL
SELECT 'quarantine' AS tbl, CASE WHEN type = 'track' THEN event ELSE type END AS event,
       0 AS n7,
       count(*) FILTER (WHERE "timestamp" >= current_timestamp - INTERVAL 28 DAY) AS n28
FROM quarantine WHERE type IN ('track', 'identify', 'group', 'page', 'screen') GROUP BY ALL
"""


#: a query function: SQL in, rows (dicts) out; ``nerve sql``'s path through a running server
QueryRows = Callable[[str], list[dict[str, Any]]]


def event_stats(ws: Workspace, query: QueryRows | None = None
                ) -> tuple[dict[str, EventStats] | None, str]:
    """Per-event volumes from the warehouse, and a note for the reader.

    ``query`` runs the SQL (the CLI passes one that goes through a running ``nerve serve``);
    without it the warehouse file is opened read-only. Returns no figures (and says why)
    when there is no warehouse yet or it is locked (None): the site is still built.
    """
    if query is None:
        from nerve.warehouse import Warehouse  # noqa: PLC0415 - DuckDB only when needed

        def query(sql: str) -> list[dict[str, Any]]:
            with Warehouse.for_workspace(ws, read_only=True) as wh:
                rows: list[dict[str, Any]] = wh.query(sql).to_pylist()
                return rows

    try:
        rows = query(STATS_SQL)
    except NerveError as exc:
        return None, f"volumes skipped: {str(exc).splitlines()[0]}"
    counts: dict[str, dict[str, int]] = {}
    for row in rows:
        item = counts.setdefault(row["event"], {"n7": 0, "n28": 0, "q28": 0})
        if row["tbl"] == "events":
            item["n7"], item["n28"] = int(row["n7"]), int(row["n28"])
        else:
            item["q28"] = int(row["n28"])
    return {k: EventStats(**v) for k, v in counts.items()}, "volumes from the warehouse"


# ------------------------------------------------------------------------------- the site


def page_name(spec: EventSpec, taken: set[str] | None = None) -> str:
    """The page file of an event: ``events/add_to_cart.html``. With ``taken`` (the lower-case
    names given so far, updated), one no other event has, on a file system that ignores
    case too: ``Order Completed`` and ``Order_Completed`` get ``Order_Completed.html`` and
    ``Order_Completed_2.html``."""
    base = re.sub(r"[^\w.-]+", "_", spec.name)
    stem, n = base, 2
    while taken is not None and stem.lower() in taken:
        stem, n = f"{base}_{n}", n + 1
    if taken is not None:
        taken.add(stem.lower())
    return f"events/{stem}.html"


def _constraints(prop: PropertySpec) -> str:
    parts = []
    if prop.enum is not None:
        parts.append("one of " + ", ".join(str(v) for v in prop.enum))
    if prop.minimum is not None:
        parts.append(f"≥ {prop.minimum:g}")
    if prop.maximum is not None:
        parts.append(f"≤ {prop.maximum:g}")
    if prop.pattern:
        parts.append(f"matches {prop.pattern}")
    if prop.format:
        parts.append(f"format {prop.format}")
    if prop.items is not None:
        # an object's items have rows of their own; a scalar's constraints go here
        inner = "" if prop.items.properties else _constraints(prop.items)
        parts.append(f"items: {prop.items.type}" + (f" ({inner})" if inner else ""))
    return "; ".join(parts)


def _flatten(props: tuple[PropertySpec, ...], prefix: str = "") -> list[dict[str, Any]]:
    rows = []
    for prop in props:
        rows.append({"name": prefix + prop.name, "type": prop.type, "required": prop.required,
                     "pii": prop.pii, "handling": prop.handling, "group": prop.group,
                     "description": prop.description, "constraints": _constraints(prop)})
        rows.extend(_nested(prop, prefix + prop.name))
    return rows


def _nested(prop: PropertySpec, path: str) -> list[dict[str, Any]]:
    """The rows under a property: an object's properties (``shipping.country``) and those
    of an array's items (``items[].sku``, ``grid[][].cell``)."""
    rows = _flatten(prop.properties, f"{path}.")
    if prop.items is not None:
        rows.extend(_nested(prop.items, f"{path}[]"))
    return rows


def _stats(stats: dict[str, EventStats] | None, name: str) -> EventStats | None:
    """An event's figures; zeros when the warehouse answered but has none of it."""
    if stats is None:
        return None
    return stats.get(name, EventStats(0, 0, 0))


def _rel(path: Path | None, root: Path | None) -> str:
    if path is None:
        return "-"
    if root is not None and path.is_relative_to(root):
        return path.relative_to(root).as_posix()
    return str(path)


#: in the head of every page the site has, so that a later build knows its own pages
GENERATOR = '<meta name="generator" content="nerve catalog docs">'


def _remove_stale_pages(events_dir: Path, pages: set[str]) -> None:
    """Delete the pages of events no longer in the catalog (renamed or removed) that an
    earlier build left in ``events/``; files nerve did not write stay."""
    for path in events_dir.glob("*.html"):
        if f"events/{path.name}" in pages:
            continue
        with path.open("rb") as f:
            head = f.read(1024)
        if GENERATOR.encode() in head:
            path.unlink()


def build_site(catalog: Catalog, out_dir: Path, *, workspace: Workspace | None = None,
               project: str | None = None, query: QueryRows | None = None) -> SiteReport:
    """Write the site into ``out_dir`` (index.html, events/*.html); return what was done."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("nerve.catalog", "templates"),
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
        lstrip_blocks=True)
    project = project or (workspace.config.name if workspace else "nerve")
    root = workspace.root if workspace else None
    stats: dict[str, EventStats] | None = None
    note = "no workspace: volumes skipped"
    refs: dict[str, list[MetricRef]] = {}
    metrics_note = ""
    allowed: set[str] | None = None
    if workspace is not None:
        privacy = workspace.config.raw.get("privacy")
        allowed = set((privacy.get("allow_sensitive") or []) if isinstance(privacy, dict)
                      else [])
        stats, note = event_stats(workspace, query)
        refs, metrics_note = metric_refs(workspace.metrics_dir, catalog)
    (out_dir / "events").mkdir(parents=True, exist_ok=True)
    index_rows = []
    taken: set[str] = set()
    for spec in catalog:
        page = page_name(spec, taken)
        props = _flatten(spec.properties)
        for row in props:
            # without an allow_sensitive entry the privacy step drops a sensitive value,
            # whatever its handling says (it matches a nested property by its own name)
            entry = f"{spec.name}.{row['name'].replace('[]', '').rsplit('.', 1)[-1]}"
            row["dropped"] = (allowed is not None and row["pii"] == "sensitive"
                              and row["handling"] != "drop" and entry not in allowed)
        search = " ".join([spec.name, spec.description, spec.owner, spec.purpose,
                           spec.trigger, *(p["name"] for p in props)]).lower()
        index_rows.append({"name": spec.name, "type": spec.type, "page": page,
                           "description": spec.description, "owner": spec.owner,
                           "version": str(spec.version), "status": spec.status,
                           "search": search, "stats": _stats(stats, spec.name)})
        versions = []
        previous: EventSpec | None = None
        for version in catalog.versions(spec.name):
            changes = diff_events(previous, version) if previous is not None else []
            versions.append({"version": str(version.version), "file": _rel(version.file, root),
                             "changes": [{"level": c.level, "message": c.message}
                                         for c in changes],
                             # 1.1.0 alone in events/ had a 1.0.0 before it: not "first"
                             "first": previous is None and version.version <= Version(1)})
            previous = version
        history = file_history(spec.file) if spec.file is not None else []
        html = env.get_template("event.html.j2").render(
            project=project, root="../", stats=_stats(stats, spec.name),
            e={"name": spec.name, "type": spec.type, "version": str(spec.version),
               "status": spec.status, "description": spec.description,
               "trigger": spec.trigger, "owner": spec.owner, "purpose": spec.purpose,
               "retention": spec.retention, "groups": list(spec.groups),
               "file": _rel(spec.file, root), "properties": props},
            example=orjson.dumps(example_payload(spec), option=orjson.OPT_INDENT_2).decode(),
            metrics=[{"metric": r.metric, "file": r.file, "line": r.line}
                     for r in refs.get(spec.name, [])],
            versions=list(reversed(versions)), history=history)
        (out_dir / page).write_text(html, encoding="utf-8")
    _remove_stale_pages(out_dir / "events", {str(row["page"]) for row in index_rows})
    index = env.get_template("index.html.j2").render(
        project=project, root="", events=index_rows, has_stats=stats is not None,
        stats_note=note)
    (out_dir / "index.html").write_text(index, encoding="utf-8")
    return SiteReport(pages=len(index_rows) + 1, stats_note=note, metrics_note=metrics_note)
