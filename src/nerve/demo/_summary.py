"""The demo's closing summary: a list of sections, each a function of the run.

A section function takes a ``SummaryContext`` and returns a ``Section`` (or None to stay
silent). Later layers add theirs to ``SECTIONS`` (quality checks, metrics, funnels,
anomalies, the experiment's analysis), in the order they should print::

    def funnel_section(ctx: SummaryContext) -> Section | None:
        rows = ctx.sql("SELECT ...")
        return Section("funnel", "Purchase funnel", rows)

    SECTIONS.insert(SECTIONS.index(explore_section), funnel_section)

A section that fails is reported as a one-line note, never as a failed demo.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from nerve.workspace import Workspace

__all__ = ["SECTIONS", "Section", "SummaryContext", "build_summary", "explore_section"]


@dataclass(frozen=True, slots=True)
class SummaryContext:
    """What a section may look at."""

    workspace: Workspace
    #: the ground truth document (ground_truth.json)
    truth: dict[str, Any]
    #: the running server's URL, None once stopped
    url: str | None
    #: run a read-only SQL query on the warehouse; rows as dicts
    sql: Callable[[str], list[dict[str, Any]]]
    #: call the server's HTTP API: ``api(path, body)`` POSTs (GET when body is None) with
    #: the admin token and returns the JSON answer; None when no server runs
    api: Callable[[str, dict[str, Any] | None], Any] | None = None
    #: figures of the run: seconds per phase, messages sent, delivery errors
    run: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Section:
    key: str
    title: str
    rows: list[dict[str, Any]]
    note: str | None = None
    #: how the table shows a column's numbers (the rows keep every digit for json and
    #: csv): "percent" (0.4874 as 48.7%), "change" (+37.5%), "p" (2.3e-06), "seconds"
    #: (69 s), or "currency USD"; other numbers get thousands separators
    formats: dict[str, str] = field(default_factory=dict)
    #: columns the table shows in one, a line each ("check / event"), so that short
    #: names are not folded mid-word beside a long message at 80 columns
    stack: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "title": self.title, "rows": self.rows, "note": self.note}


SectionFn = Callable[[SummaryContext], Section | None]


def _count(ctx: SummaryContext, table: str) -> int:
    return int(ctx.sql(f"SELECT count(*) AS n FROM {table}")[0]["n"])


def overview_section(ctx: SummaryContext) -> Section:
    sim, expected, run = ctx.truth["simulation"], ctx.truth["expected"], ctx.run
    events, quarantined = _count(ctx, "events"), _count(ctx, "quarantine")
    duplicates = ctx.sql("SELECT coalesce(sum(duplicates), 0) AS n FROM loads")[0]["n"]
    seconds = run.get("send_seconds") or 0.0
    rows = [
        {"what": "simulated",
         "value": f"{sim['days']} days, {sim['active_users']:,} active users, "
                  f"{sim['sessions']:,} sessions (seed {sim['seed']})"},
        {"what": "sent", "value": f"{expected['messages_sent']:,} messages "
                                  f"({expected['history_sent']:,} historical import, "
                                  f"{expected['live_sent']:,} live)"
                                  + (f", {expected['messages_sent'] / seconds:,.0f}/s"
                                     if seconds else "")},
        {"what": "accepted", "value": f"{events:,} events (expected {expected['accepted']:,})"},
        {"what": "quarantined", "value": f"{quarantined:,} (expected "
                                         f"{expected['quarantined']:,})"},
        {"what": "duplicates dropped",
         "value": f"{int(duplicates):,} (retried messages sent twice: "
                  f"{ctx.truth['faults']['duplicate_message_id']:,})"},
    ]
    if run.get("undelivered"):
        rows.append({"what": "NOT delivered", "value": f"{run['undelivered']:,} "
                                                       f"({run.get('errors')})"})
    note = None
    if events != expected["accepted"] or quarantined != expected["quarantined"]:
        note = "the warehouse does not hold what the simulator sent: see the server log in .nerve/"
    return Section("overview", "Demo run", rows, note)


def violations_section(ctx: SummaryContext) -> Section | None:
    rows = ctx.sql(
        "SELECT coalesce(event, type) AS event, "
        "json_extract_string(violations, '$[0].rule') AS rule, "
        "json_extract_string(violations, '$[0].path') AS path, count(*) AS events "
        "FROM quarantine GROUP BY ALL ORDER BY events DESC, event LIMIT 8")
    if not rows:
        return None
    return Section("violations", "Quarantined: top violations", rows,
                   "nerve quarantine list shows each one; replay after fixing the catalog")


def events_section(ctx: SummaryContext) -> Section:
    expected = ctx.truth["expected"]["accepted_by_event"]
    got = {r["event"]: int(r["n"]) for r in ctx.sql(
        "SELECT CASE WHEN type = 'track' THEN event ELSE type END AS event, count(*) AS n "
        "FROM events GROUP BY ALL")}
    rows = [{"event": name, "events": got.get(name, 0), "expected": n}
            for name, n in sorted(expected.items(), key=lambda kv: -kv[1])]
    return Section("events", "Events per name", rows)


def metrics_section(ctx: SummaryContext) -> Section | None:
    """The shop's key metrics per week, from the semantic layer (metrics/*.yaml)."""
    if ctx.api is None or not (ctx.workspace.root / "metrics").is_dir():
        return None
    names = ["revenue", "orders", "average_order_value", "checkout_conversion",
             "payment_failure_rate"]
    sim = ctx.truth["simulation"]
    # from the simulation's first moment: "28d" by week was the last 4 weeks, leaving out
    # the days of the first, partial one
    answer = ctx.api("/v1/metrics/query", {"metrics": names, "grain": "week",
                                           "since": sim["start"], "until": sim["end"]})
    time_column = answer.get("time_column") or "week"
    rows = [{time_column: row.get(time_column), **{name: row.get(name) for name in names}}
            for row in answer["rows"]]
    # a week the simulation covers only in part (its first, and the one still running)
    # is marked, so that its lower figures do not read as a drop
    tz = ZoneInfo(answer.get("timezone") or "UTC")
    first, last = (_local(sim[k], tz) for k in ("start", "end"))
    for row in rows:
        week = datetime.fromisoformat(str(row[time_column])[:10])
        row["partial"] = week < first or week + timedelta(days=7) > last
    return Section("metrics", "Key metrics per week (semantic layer)", rows,
                   "nerve metrics query revenue checkout_conversion --by platform --grain day",
                   _metric_formats(ctx, names))


def _local(moment: str, tz: ZoneInfo) -> datetime:
    """``moment`` (ISO 8601) as naive wall-clock time in ``tz``."""
    return datetime.fromisoformat(moment.replace("Z", "+00:00")).astimezone(tz).replace(
        tzinfo=None)


def _metric_formats(ctx: SummaryContext, names: list[str]) -> dict[str, str]:
    """The table formats of metrics, as metrics/*.yaml declares them (format, currency)."""
    from nerve.semantic import SemanticLayer  # noqa: PLC0415 - loaded when the demo prints

    layer = SemanticLayer.load(ctx.workspace)
    formats = {}
    for name in names:
        metric = layer.get(name)
        if metric.format == "percent":
            formats[name] = "percent"
        elif metric.format == "currency":
            formats[name] = f"currency {metric.currency or ''}".strip()
    return formats


def funnel_section(ctx: SummaryContext) -> Section | None:
    """The purchase funnel over the whole simulated span."""
    if ctx.api is None:
        return None
    steps = ["session_start", "product_view", "add_to_cart", "checkout_start",
             "purchase_complete"]
    answer = ctx.api("/v1/funnels", {"steps": steps, "window": "1h"})
    rows = [{"step": r["step"], "event": r["event"], "users": r["users"],
             "conversion": r.get("conversion"), "median_seconds": r.get("median_seconds")}
            for r in answer["rows"]]
    return Section("funnel", "Purchase funnel (users, 1 h window)", rows,
                   "nerve funnel session_start product_view add_to_cart checkout_start "
                   "purchase_complete --window 1h --by platform",
                   {"conversion": "percent", "median_seconds": "seconds"})


def checks_section(ctx: SummaryContext) -> Section | None:
    """The data-quality checks: what they found among the injected faults."""
    if ctx.api is None:
        return None
    answer = ctx.api("/v1/admin/checks/run", {})
    results = answer["results"]
    order = {"fail": 0, "error": 1, "warn": 2}
    found = sorted((r for r in results if r["status"] in order),
                   key=lambda r: (order[r["status"]], r["check"], str(r.get("event"))))
    counts = {s: sum(r["status"] == s for r in results)
              for s in ("pass", "warn", "fail", "error")}
    rows = [{"status": r["status"], "check": r["check"], "event": r.get("event"),
             "message": r["message"]} for r in found[:12]]
    note = (f"{len(results)} checks: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n)
            + (f" ({len(found) - 12} more: nerve check)" if len(found) > 12 else ""))
    return Section("checks", f"Data-quality checks: {answer['status']}", rows, note,
                   stack=("check", "event"))


def experiment_analysis_section(ctx: SummaryContext) -> Section | None:
    """The readout of the running experiment, when experiments/ defines it."""
    key = ctx.truth["experiment"]["key"]
    folder = ctx.workspace.root / "experiments"
    if ctx.api is None or not any(folder.glob("*.yaml")):
        return None
    readout = ctx.api("/v1/experiments/analyze", {"key": key})
    rows = [{k: v for k, v in row.items()
             if k in ("variant", "metric", "units", "mean", "lift", "ci_low", "ci_high",
                      "p_value", "chance_to_win")}
            for row in readout.get("rows", readout.get("results", []))]
    decision = readout.get("decision")
    reasons = "; ".join(str(r) for r in readout.get("reasons") or [])
    note = (f"decision: {decision}" + (f" ({reasons})" if reasons else "")
            if decision else None)
    return Section("experiment_analysis", f"Experiment {key}: analysis", rows,
                   (note + f"; details: nerve experiment analyze {key}") if note
                   else f"nerve experiment analyze {key}",
                   {"lift": "change", "ci_low": "change", "ci_high": "change", "p_value": "p",
                    "chance_to_win": "percent"})


def incidents_section(ctx: SummaryContext) -> Section | None:
    incidents = ctx.truth["incidents"]
    if not incidents:
        return None
    rows = [{"incident": i["key"], "event": i["event"],
             "segment": f"{i['dimension']} = {i['value']}",
             "window": f"{i['start'][5:16].replace('T', ' ')} .. "
                       f"{i['end'][5:16].replace('T', ' ')} UTC",
             "effect": f"{i['effect']:+.0%}"} for i in incidents]
    return Section("incidents", "Injected incidents (ground_truth.json)", rows,
                   "can you find them? nerve sql, and the checks and anomaly detectors")


def experiment_section(ctx: SummaryContext) -> Section:
    exp = ctx.truth["experiment"]
    rows = [{"variant": arm["variant"], "users": arm["units"], "checkouts": arm["checkouts"],
             "checkout completion": arm["checkout_completion"],
             "purchasers": arm["purchasers"]} for arm in exp["observed"]]
    return Section("experiment", f"Running experiment {exp['key']} ({exp['targeting']['segment']}, "
                   f"since {exp['start'][:10]})", rows,
                   f"true lift of checkout completion: {exp['true_lift']['relative']:+.0%}",
                   {"checkout completion": "percent"})


def faults_section(ctx: SummaryContext) -> Section:
    descriptions = ctx.truth["fault_descriptions"]
    rows = [{"fault": kind, "messages": n, "what": descriptions[kind]}
            for kind, n in ctx.truth["faults"].items()]
    return Section("faults", "Injected instrumentation faults", rows)


def explore_section(ctx: SummaryContext) -> Section:
    root = ctx.workspace.root
    rows = [
        {"what": "workspace", "value": str(root)},
        {"what": "ground truth", "value": str(root / "ground_truth.json")},
        {"what": "server", "value": ctx.url if ctx.url and ctx.run.get("serving", True)
         else f"stops now (--no-serve); start it again: nerve --workspace {root} serve"},
        {"what": "query", "value": f"nerve --workspace {root} sql \"SELECT coalesce(event, type) "
                                   "AS event, count(*) FROM events GROUP BY 1 ORDER BY 2 DESC\""},
        {"what": "catalog", "value": f"nerve --workspace {root} catalog list"},
        {"what": "docs", "value": "docs/demo.md"},
    ]
    return Section("explore", "Explore", rows)


#: the summary, in print order; later layers add their sections here
SECTIONS: list[SectionFn] = [
    overview_section,
    violations_section,
    events_section,
    metrics_section,
    funnel_section,
    checks_section,
    incidents_section,
    experiment_section,
    experiment_analysis_section,
    faults_section,
    explore_section,
]


def build_summary(ctx: SummaryContext,
                  sections: list[SectionFn] | None = None) -> list[Section]:
    """Run every section function; a failing one becomes a note, not a failed demo."""
    result = []
    for fn in SECTIONS if sections is None else sections:
        try:
            section = fn(ctx)
        except Exception as exc:  # noqa: BLE001 - a broken section must not hide the others
            section = Section(fn.__name__, fn.__name__, [], f"could not compute: {exc}")
        if section is not None:
            result.append(section)
    return result
