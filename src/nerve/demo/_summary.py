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
from typing import Any

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
    #: figures of the run: seconds per phase, messages sent, delivery errors
    run: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Section:
    key: str
    title: str
    rows: list[dict[str, Any]]
    note: str | None = None

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
                   f"true lift of checkout completion: {exp['true_lift']['relative']:+.0%}")


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
        {"what": "query", "value": f"nerve --workspace {root} sql \"SELECT event, count(*) "
                                   "FROM events GROUP BY 1 ORDER BY 2 DESC\""},
        {"what": "catalog", "value": f"nerve --workspace {root} catalog list"},
        {"what": "docs", "value": "docs/demo.md"},
    ]
    return Section("explore", "Explore", rows)


#: the summary, in print order; later layers add their sections here
SECTIONS: list[SectionFn] = [
    overview_section,
    violations_section,
    events_section,
    incidents_section,
    experiment_section,
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
