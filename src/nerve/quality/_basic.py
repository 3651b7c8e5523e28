"""Checks on what the pipeline recorded: schema violations, catalog drift, duplicates,
freshness, loader lag, late arrival and clock skew."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import orjson
import pandas as pd

from nerve.errors import did_you_mean
from nerve.quality import _scan
from nerve.quality._context import Context, grade, moment
from nerve.quality._result import CheckResult, Status, fmt_count, fmt_duration, fmt_pct, fmt_time

__all__ = [
    "check_clock_skew",
    "check_drift",
    "check_duplicates",
    "check_freshness",
    "check_lateness",
    "check_loader_lag",
    "check_natural_key_duplicates",
    "check_schema",
]

UNKNOWN_EVENT = "unknown_event"
_UNEXPECTED = re.compile(r"'([^']+)' (?:was|were) unexpected|property '([^']+)'")


def _within(path: str) -> str:
    """The declared object an undeclared key was found in, as a name prefix: ``device.``
    for ``$.properties.device``, ``items[].`` for ``$.properties.items[3]``, nothing at
    the top level (``$.properties``, ``$.traits``)."""
    parts = path.split(".", 2)
    return re.sub(r"\[\d+\]", "[]", parts[2]) + "." if len(parts) == 3 else ""


def _violations(text: Any) -> list[dict[str, Any]]:
    """The violation list of a quarantined row (JSON text, or already parsed by Ibis)."""
    if isinstance(text, list):
        value: Any = text
    elif isinstance(text, str):
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            return [{"path": "$", "rule": "unreadable", "message": text[:200]}]
    else:
        return []
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _quarantine(ctx: Context) -> pd.DataFrame:
    window = max(ctx.cfg.seconds("schema", "window"), ctx.cfg.seconds("drift", "window"))
    frame = ctx.scan("quarantine", lambda: _scan.quarantine_summary(ctx.inputs, ctx.now, window))
    if "parsed" not in frame.columns:
        frame = frame.assign(parsed=[_violations(v) for v in frame["violations"]])
        frame["unknown"] = [any(v.get("rule") == UNKNOWN_EVENT for v in p)
                            for p in frame["parsed"]]
        ctx.cache["quarantine"] = frame
    return frame


def _window_text(seconds: float) -> str:
    return f"the last {fmt_duration(seconds)}"


def check_schema(ctx: Context) -> list[CheckResult]:
    """Share of each event's rows (per source) that failed the catalog schema."""
    window = ctx.cfg.seconds("schema", "window")
    loaded = ctx.scan(f"received:{window}", lambda: _scan.received_counts(
        ctx.inputs.events, ctx.inputs.backend, ctx.now - window, ctx.now))
    if ctx.inputs.quarantine is None:
        # a copy of `events` alone (PostgreSQL, Spark) holds only the rows that passed:
        # counting them said "All N events matched the catalog schema" whatever failed
        return [ctx.result("schema", Status.passed,
                           f"No quarantine table to read schema failures from: the "
                           f"{fmt_count(int(loaded['n'].sum()))} events of "
                           f"{_window_text(window)} here are only those that passed (copy "
                           "`quarantine` beside `events` to check them).")]
    quarantined = _quarantine(ctx)
    quarantined = quarantined[~quarantined["unknown"].astype(bool)]
    quarantined = quarantined[quarantined["first"] >= ctx.now - window]
    good = {(r.event, r.source): int(r.n) for r in loaded.itertuples()}
    bad: dict[tuple[str, str], dict[str, Any]] = {}
    for row in quarantined.itertuples():
        item = bad.setdefault((row.event, row.source), {"n": 0, "first": row.first,
                                                         "rules": Counter()})
        item["n"] += int(row.n)
        item["first"] = min(item["first"], row.first)
        for v in row.parsed:
            item["rules"][f"{v.get('path', '$')} {v.get('rule', '?')}"] += int(row.n)
    results = []
    for (event, source) in sorted(set(good) | set(bad)):
        if not ctx.cfg.enabled("schema", event):
            continue
        n_bad = bad.get((event, source), {}).get("n", 0)
        total = n_bad + good.get((event, source), 0)
        share = n_bad / total if total else 0.0
        warn = ctx.cfg.get("schema", "warn", event)
        fail = ctx.cfg.get("schema", "fail", event)
        status = grade(share, warn, fail)
        if total < ctx.cfg.get("schema", "min_events", event) and status is Status.fail:
            status = Status.warn  # too few rows to call it a failure
        dims = {"source": source}
        expected = {"min": 0.0, "max": warn}
        if n_bad == 0:
            results.append(ctx.result(
                "schema", Status.passed,
                f"All {fmt_count(total)} {event} events from source {source} in "
                f"{_window_text(window)} matched the catalog schema.",
                event=event, dimensions=dims, observed=0.0, expected=expected, unit="share"))
            continue
        info = bad[(event, source)]
        top = ", ".join(f"{k} ({fmt_count(c)})" for k, c in info["rules"].most_common(3))
        since = moment(info["first"])
        results.append(ctx.result(
            "schema", status,
            f"{fmt_pct(share)} of {event} events from source {source} failed the catalog "
            f"schema in {_window_text(window)} (expected at most {fmt_pct(warn)}): "
            f"{fmt_count(n_bad)} of {fmt_count(total)} quarantined, most often {top}; "
            f"since {fmt_time(since) if since else '?'}. `nerve quarantine list --event "
            f"{event}` shows them; where the catalog was wrong, fix it and `nerve quarantine "
            f"replay --event {event}` loads them.",
            event=event, dimensions=dims, observed=share, expected=expected, unit="share",
            since=since, details={"quarantined": n_bad, "total": total,
                                  "violations": dict(info["rules"].most_common(10))}))
    return results


def check_drift(ctx: Context) -> list[CheckResult]:
    """Events and properties that arrive but the catalog does not know."""
    window = ctx.cfg.seconds("drift", "window")
    status = Status(ctx.cfg.get("drift", "status"))
    frame = _quarantine(ctx)
    frame = frame[frame["first"] >= ctx.now - window]
    unknown: dict[tuple[str, str], list[Any]] = {}
    props: dict[tuple[str, str], Counter[str]] = {}
    for row in frame.itertuples():
        if row.unknown:
            item = unknown.setdefault((row.event, row.source), [0, row.first])
            item[0] += int(row.n)
            item[1] = min(item[1], row.first)
            continue
        for v in row.parsed:
            if v.get("rule") != "additional_properties":
                continue
            within = _within(str(v.get("path", "")))
            for match in _UNEXPECTED.finditer(str(v.get("message", ""))):
                name = within + (match.group(1) or match.group(2))
                props.setdefault((row.event, row.source), Counter())[name] += int(row.n)
    # rows that reached the events table although the catalog has no such event
    if ctx.catalog is not None:
        loaded = ctx.scan(f"received:{window}", lambda: _scan.received_counts(
            ctx.inputs.events, ctx.inputs.backend, ctx.now - window, ctx.now))
        for row in loaded.itertuples():
            if row.event not in ctx.catalog:
                item = unknown.setdefault((row.event, row.source), [0, None])
                item[0] += int(row.n)
    results = []
    for (event, source), (count, first) in sorted(unknown.items()):
        since = moment(first)
        results.append(ctx.result(
            "drift", status,
            f"Event {event!r} is not in the catalog, yet {fmt_count(count)} arrived from "
            f"source {source} in {_window_text(window)} (expected none)"
            + (f", since {fmt_time(since)}" if since else "")
            + f". Add events/{event}.yaml or fix the sender"
            + f"{did_you_mean(str(event), ctx.cataloged())}.",
            event=event, dimensions={"source": source}, observed=float(count),
            expected={"min": 0.0, "max": 0.0}, unit="events", since=since))
    for (event, source), names in sorted(props.items()):
        listed = ", ".join(f"{k} ({fmt_count(c)})" for k, c in names.most_common(5))
        results.append(ctx.result(
            "drift", status,
            f"{event} events from source {source} carry properties the catalog does not "
            f"list: {listed} in {_window_text(window)}.",
            event=event, dimensions={"source": source}, observed=float(sum(names.values())),
            expected={"min": 0.0, "max": 0.0}, unit="events",
            details={"properties": dict(names)}))
    if not results:
        results.append(ctx.result(
            "drift", Status.passed,
            f"Every event and property seen in {_window_text(window)} is in the catalog"
            + (" (no quarantine table: only the events table was read)."
               if ctx.inputs.quarantine is None else "."),
            observed=0.0, expected={"min": 0.0, "max": 0.0}, unit="events"))
    return results


def check_duplicates(ctx: Context) -> list[CheckResult]:
    """Share of incoming rows the loader dropped as already-seen message ids (retries)."""
    window = ctx.cfg.seconds("duplicates", "window")
    warn, fail = ctx.cfg.get("duplicates", "warn"), ctx.cfg.get("duplicates", "fail")
    if ctx.inputs.loads is None:
        return [ctx.result("duplicates", Status.passed,
                           "No loader ledger (loads table) to read duplicate drops from.")]
    frame = _scan.loads_summary(ctx.inputs, ctx.now, window)
    row = frame.iloc[0] if len(frame) else None
    rows_in = int(row["rows_in"]) if row is not None and pd.notna(row["rows_in"]) else 0
    dups = int(row["duplicates"]) if row is not None and pd.notna(row["duplicates"]) else 0
    share = dups / rows_in if rows_in else 0.0
    status = grade(share, warn, fail)
    since = moment(row["first_dup"]) if row is not None else None
    expected = {"min": 0.0, "max": warn}
    if dups == 0:
        message = (f"The loader dropped no duplicate message ids among {fmt_count(rows_in)} "
                   f"rows in {_window_text(window)}.")
    else:
        message = (f"The loader dropped {fmt_count(dups)} of {fmt_count(rows_in)} incoming rows "
                   f"({fmt_pct(share)}) as duplicate message ids in {_window_text(window)} "
                   f"(expected at most {fmt_pct(warn)}): clients are resending batches"
                   + (f", since {fmt_time(since)}." if since else "."))
    total = ctx.result("duplicates", status, message, observed=share, expected=expected,
                       unit="share", since=since if dups else None,
                       details={"rows_in": rows_in, "duplicates": dups})
    return [total, *_duplicates_by_source(ctx, window, warn, fail)] if dups else [total]


def _duplicates_by_source(ctx: Context, window: float, warn: float, fail: float
                          ) -> list[CheckResult]:
    """The share of each source's rows dropped as duplicates, when several sources sent
    rows: one source's resends are not diluted by the others' traffic (a backfill)."""
    dropped = _scan.duplicates_by_source(ctx.inputs, ctx.now, window)
    if not dropped:
        return []  # a ledger written before nerve recorded the sources
    received: Counter[str] = Counter()
    for table in (ctx.inputs.events, ctx.inputs.quarantine):
        if table is not None:
            frame = _scan.received_counts(table, ctx.inputs.backend, ctx.now - window,
                                          ctx.now)
            received.update(frame.groupby("source")["n"].sum().astype(int).to_dict())
    if len(received | dropped) < 2:
        return []  # one source: the total above is its share
    results = []
    for source, dups in sorted(dropped.items()):
        rows_in = received[source] + dups
        share = dups / rows_in
        results.append(ctx.result(
            "duplicates", grade(share, warn, fail),
            f"The loader dropped {fmt_count(dups)} of the {fmt_count(rows_in)} rows from "
            f"source {source} ({fmt_pct(share)}) as duplicate message ids in "
            f"{_window_text(window)} (expected at most {fmt_pct(warn)}).",
            dimensions={"source": source}, observed=share,
            expected={"min": 0.0, "max": warn}, unit="share",
            details={"rows_in": rows_in, "duplicates": dups}))
    return results


def check_natural_key_duplicates(ctx: Context) -> list[CheckResult]:
    """The same action recorded twice under different message ids (by a natural key)."""
    window = ctx.cfg.seconds("natural_key_duplicates", "window")
    events = ctx.cataloged()
    keyed = {e: k for e in ctx.cfg.events if (k := ctx.cfg.natural_key(e))}
    frame = _scan.natural_key_duplicates(ctx.inputs, ctx.now, window, keyed, list(keyed))
    results = []
    totals = frame[frame["source"].isna()] if not frame.empty else frame
    for row in totals.groupby("event", as_index=False)[["rows", "extra"]].sum().itertuples():
        event = str(row.event)
        if not ctx.cfg.enabled("natural_key_duplicates", event):
            continue
        rows, extra = int(row.rows), int(row.extra)
        share = extra / rows if rows else 0.0
        warn = ctx.cfg.get("natural_key_duplicates", "warn", event)
        fail = ctx.cfg.get("natural_key_duplicates", "fail", event)
        status = grade(share, warn, fail)
        if rows < ctx.cfg.get("natural_key_duplicates", "min_events", event):
            status = min(status, Status.warn, key=lambda s: s.rank)
        key = ", ".join(keyed.get(event, ("user", "timestamp", "properties")))
        if extra == 0:
            message = (f"No two {event} events received in {_window_text(window)} share "
                       f"the natural key ({key}).")
        else:
            # received in the window: a backfill's month of events is judged the day it
            # arrives, and "in the last 24 h" alone read as a day of 6,817 purchases
            message = (f"{fmt_count(extra)} of {fmt_count(rows)} {event} events "
                       f"({fmt_pct(share)}) received in {_window_text(window)} repeat another "
                       f"event's natural key ({key}) under a different message id (expected at "
                       f"most {fmt_pct(warn)}): the same action is tracked twice.")
        results.append(ctx.result("natural_key_duplicates", status, message, event=event,
                                  observed=share, expected={"min": 0.0, "max": warn},
                                  unit="share", details={"rows": rows, "duplicates": extra}))
        if extra:
            results.extend(r for r in _key_duplicates_by_source(ctx, event, frame, window, key)
                           if r.status.rank > status.rank)
    del events
    return results


def _key_duplicates_by_source(ctx: Context, event: str, frame: pd.DataFrame, window: float,
                              key: str) -> list[CheckResult]:
    """Each source's own share, when several sent ``event`` in the window: a client that
    tracks one action twice is not diluted by another source's traffic, such as a
    backfill (as the duplicates check judges each source). The caller keeps those graded
    worse than the event's total: the others would repeat it."""
    counts = ctx.scan(f"received:{window}", lambda: _scan.received_counts(
        ctx.inputs.events, ctx.inputs.backend, ctx.now - window, ctx.now))
    rows_by = counts[counts["event"] == event].groupby("source")["n"].sum()
    if len(rows_by) < 2:
        return []  # one source: the event's total is its share
    own = frame[(frame["event"] == event) & frame["source"].notna()]
    extras = own.groupby("source")["extra"].sum()
    warn = ctx.cfg.get("natural_key_duplicates", "warn", event)
    fail = ctx.cfg.get("natural_key_duplicates", "fail", event)
    results = []
    for source, extra in sorted(extras[extras > 0].items()):
        rows = int(rows_by.get(source, 0))
        share = int(extra) / rows if rows else 0.0
        status = grade(share, warn, fail)
        if rows < ctx.cfg.get("natural_key_duplicates", "min_events", event):
            status = min(status, Status.warn, key=lambda s: s.rank)
        message = (f"{fmt_count(int(extra))} of the {fmt_count(rows)} {event} events from "
                   f"source {source} ({fmt_pct(share)}) received in {_window_text(window)} "
                   f"repeat another event's natural key ({key}) under a different message "
                   f"id (expected at most {fmt_pct(warn)}): the same action is tracked twice.")
        results.append(ctx.result(
            "natural_key_duplicates", status, message, event=event,
            dimensions={"source": str(source)}, observed=share,
            expected={"min": 0.0, "max": warn}, unit="share",
            details={"rows": rows, "duplicates": int(extra)}))
    return results


def _auto_after(ctx: Context, event: str, source: str, rate_per_hour: float) -> tuple[float, float]:
    warn_cfg = ctx.cfg.get("freshness", "warn_after", event)
    fail_cfg = ctx.cfg.get("freshness", "fail_after", event)
    floor = ctx.cfg.seconds("freshness", "min_warn_after", event)
    gap = 3600 / rate_per_hour if rate_per_hour > 0 else 86400.0
    # 20 typical gaps: quiet night hours are far below the mean rate
    warn = (max(floor, min(20 * gap, 7 * 86400)) if warn_cfg == "auto"
            else ctx.cfg.seconds("freshness", "warn_after", event))
    fail = 3 * warn if fail_cfg == "auto" else ctx.cfg.seconds("freshness", "fail_after", event)
    del source
    return warn, max(fail, warn)


def check_freshness(ctx: Context, profile: pd.DataFrame,
                    before: pd.DataFrame | None = None) -> list[CheckResult]:
    """Time since the last live event, per event and source; imports are not judged.

    ``before`` (``_scan.live_before``) holds the last live arrival of each event and
    source before the profile's span: a pair that sent nothing live inside it is judged
    from there (``_silent``), instead of getting no result at all.
    """
    results = []
    judged: set[tuple[str, str]] = set()
    per = (profile.groupby(["event", "source"], as_index=False).agg(
        n=("n", "sum"), last_live=("last_live", "max"), first=("hour", "min"),
        last=("hour", "max")) if not profile.empty else profile)
    for row in per.itertuples():
        event, source = str(row.event), str(row.source)
        if pd.isna(row.last_live) or not ctx.cfg.enabled("freshness", event):
            continue  # only historical imports: freshness does not apply
        judged.add((event, source))
        # the usual rate while this source sent this event (it may have started recently)
        rate = float(row.n) / max(1.0, float(row.last - row.first + 1))
        warn, fail = _auto_after(ctx, event, source, rate)
        age = float(max(0.0, ctx.now - float(row.last_live)))
        status = grade(age, warn, fail)
        last = moment(row.last_live)
        assert last is not None
        if status is Status.passed:
            message = (f"The last live {event} event from source {source} arrived "
                       f"{fmt_duration(age)} ago (at most {fmt_duration(warn)} expected).")
        else:
            message = (f"No {event} event has arrived from source {source} for "
                       f"{fmt_duration(age)}, since {fmt_time(last)} (expected one at least "
                       f"every {fmt_duration(warn)} at its usual rate of "
                       f"{fmt_count(round(rate, 1))}/h).")
        results.append(ctx.result("freshness", status, message, event=event,
                                  dimensions={"source": source}, observed=age,
                                  expected={"min": 0.0, "max": warn}, unit="seconds",
                                  since=last if status is not Status.passed else None))
    if before is not None and not before.empty:
        results += _silent(ctx, before, judged)
    return results


def _retired(ctx: Context, event: str) -> bool:
    """A deprecated or draft event may go quiet (as missing_events has it), and one no
    longer in the catalog was removed after its deprecation: none is a source that stopped."""
    if ctx.catalog is None:
        return False
    spec = ctx.catalog.get(event)
    return spec is None or spec.status in ("deprecated", "draft")


def _silent(ctx: Context, before: pd.DataFrame, judged: set[tuple[str, str]]
            ) -> list[CheckResult]:
    """The pairs whose last live event came before the profile's span. Their usual rate is
    unknown (nothing in the span to count), so the auto thresholds are those of the
    slowest rate, and an auto ``fail_after`` equals ``warn_after``: a silence longer than
    everything the profile reads is a stop, not a quiet spell. Configured ones hold."""
    span = _scan.profile_span(ctx.cfg)
    results = []
    for row in before.dropna(subset=["source", "last_live"]).itertuples():
        event, source = str(row.event), str(row.source)
        if ((event, source) in judged or not ctx.cfg.enabled("freshness", event)
                or _retired(ctx, event)):
            continue
        warn, fail = _auto_after(ctx, event, source, 0.0)
        if ctx.cfg.get("freshness", "fail_after", event) == "auto":
            fail = warn
        age = float(max(0.0, ctx.now - float(row.last_live)))
        status = grade(age, warn, fail)
        last = moment(row.last_live)
        assert last is not None
        message = (f"No live {event} event has arrived from source {source} for "
                   f"{fmt_duration(age)}, since {fmt_time(last)}: none in the "
                   f"{fmt_duration(span)} the checks scan, so its usual rate is unknown "
                   f"(expected one at least every {fmt_duration(warn)}).")
        if status is Status.passed:
            message = (f"The last live {event} event from source {source} arrived "
                       f"{fmt_duration(age)} ago (at most {fmt_duration(warn)} expected).")
        results.append(ctx.result("freshness", status, message, event=event,
                                  dimensions={"source": source}, observed=age,
                                  expected={"min": 0.0, "max": warn}, unit="seconds",
                                  since=last if status is not Status.passed else None,
                                  details={"rate_known": False}))
    return results


def check_loader_lag(ctx: Context, recent: pd.DataFrame) -> list[CheckResult]:
    """How long accepted events wait before they are queryable (loaded_at - received_at)."""
    window = ctx.cfg.seconds("loader_lag", "window")
    warn = ctx.cfg.seconds("loader_lag", "warn_after")
    fail = ctx.cfg.seconds("loader_lag", "fail_after")
    rows = recent[recent["lag_n"] > 0] if not recent.empty else recent
    if rows.empty:
        return [ctx.result("loader_lag", Status.passed,
                           f"No live events were loaded in {_window_text(window)}.",
                           unit="seconds")]
    lag = float(rows["lag_p95"].max())
    worst_row = rows.loc[rows["lag_p95"].idxmax()]
    status = grade(lag, warn, fail)
    message = (f"95% of live events were queryable within {fmt_duration(lag)} of arrival "
               f"in {_window_text(window)} (expected within {fmt_duration(warn)})")
    if status is not Status.passed:
        message += f"; slowest: {worst_row['event']} from source {worst_row['source']}"
    return [ctx.result("loader_lag", status, message + ".", observed=lag,
                       expected={"min": 0.0, "max": warn}, unit="seconds",
                       details={"events": int(rows["lag_n"].sum())})]


def check_lateness(ctx: Context, recent: pd.DataFrame) -> list[CheckResult]:
    """Share of live events received long after they happened (offline queues, batching)."""
    window = ctx.cfg.seconds("lateness", "window")
    results = []
    for row in recent.itertuples():
        event, source = str(row.event), str(row.source)
        if not ctx.cfg.enabled("lateness", event):
            continue
        threshold = ctx.cfg.seconds("lateness", "threshold", event)
        warn = ctx.cfg.get("lateness", "warn", event)
        fail = ctx.cfg.get("lateness", "fail", event)
        n, late = int(row.n), int(row.late or 0)
        share = late / n if n else 0.0
        status = grade(share, warn, fail)
        if n < ctx.cfg.get("lateness", "min_events", event):
            status = min(status, Status.warn, key=lambda s: s.rank)
        since = moment(row.first_late) if late else None
        dist = (f"median delay {fmt_duration(row.p50)}, p95 {fmt_duration(row.p95)}, "
                f"p99 {fmt_duration(row.p99)}")
        if late == 0:
            message = (f"No live {event} event from source {source} arrived more than "
                       f"{fmt_duration(threshold)} late in {_window_text(window)} ({dist}).")
        else:
            message = (f"{fmt_pct(share)} of live {event} events from source {source} arrived "
                       f"more than {fmt_duration(threshold)} after they happened in "
                       f"{_window_text(window)} (expected at most {fmt_pct(warn)}): "
                       f"{fmt_count(late)} of {fmt_count(n)}; {dist}"
                       + (f"; since {fmt_time(since)}." if since else "."))
        results.append(ctx.result("lateness", status, message, event=event,
                                  dimensions={"source": source}, observed=share,
                                  expected={"min": 0.0, "max": warn}, unit="share", since=since,
                                  details={"late": late, "events": n, "p50_s": row.p50,
                                           "p95_s": row.p95, "p99_s": row.p99,
                                           **_happened(row.late_from, row.late_to)}))
        ahead = int(row.ahead or 0)
        if ahead:  # said only when it happens: a timestamp after the message's own sentAt
            results.append(_ahead(ctx, event, source, ahead, n, row, window, warn, fail))
    return results


def _ahead(ctx: Context, event: str, source: str, ahead: int, n: int, row: Any,
           window: float, warn: float, fail: float) -> CheckResult:
    """Live events whose timestamps are after they arrived: a client that stamps the time
    after sending it (or a timestamp typed by hand), stored in the future."""
    share = ahead / n
    status = grade(share, warn, fail)
    if n < ctx.cfg.get("lateness", "min_events", event):
        status = min(status, Status.warn, key=lambda s: s.rank)
    since = moment(row.first_ahead)
    message = (f"{fmt_pct(share)} of live {event} events from source {source} happened, by "
               f"their timestamps, more than {fmt_duration(_scan.AHEAD_TOLERANCE)} after "
               f"they arrived (up to {fmt_duration(row.max_ahead)}) in "
               f"{_window_text(window)} (expected at most {fmt_pct(warn)}): "
               f"{fmt_count(ahead)} of {fmt_count(n)}; their timestamp is later than the "
               "message's sentAt, so they are stored in the future"
               + (f"; since {fmt_time(since)}." if since else "."))
    return ctx.result("lateness", status, message, event=event,
                      dimensions={"source": source, "ahead": "true"}, observed=share,
                      expected={"min": 0.0, "max": warn}, unit="share", since=since,
                      details={"ahead": ahead, "events": n, "max_ahead_s": row.max_ahead,
                               **_happened(row.ahead_from, row.ahead_to)})


def _happened(first: float | None, last: float | None) -> dict[str, str]:
    """When the events a lateness result counts happened (their earliest and latest
    ``timestamp``, ISO), so that a caveat can name the periods they are in; nothing when
    there are none."""
    lo, hi = moment(first), moment(last)
    return {"happened_from": lo.isoformat(), "happened_to": hi.isoformat()} \
        if lo is not None and hi is not None else {}


def check_clock_skew(ctx: Context, recent: pd.DataFrame) -> list[CheckResult]:
    """Share of live events from devices whose clock was off (the timestamps were corrected)."""
    window = ctx.cfg.seconds("clock_skew", "window")
    results = []
    for row in recent.itertuples():
        event, source = str(row.event), str(row.source)
        if not ctx.cfg.enabled("clock_skew", event) or not row.with_skew:
            continue
        threshold = ctx.cfg.seconds("clock_skew", "threshold", event)
        warn = ctx.cfg.get("clock_skew", "warn", event)
        fail = ctx.cfg.get("clock_skew", "fail", event)
        n, skewed = int(row.with_skew), int(row.skewed or 0)
        share = skewed / n if n else 0.0
        status = grade(share, warn, fail)
        if n < ctx.cfg.get("clock_skew", "min_events", event):
            status = min(status, Status.warn, key=lambda s: s.rank)
        since = moment(row.first_skewed) if skewed else None
        if skewed == 0:
            message = (f"No live {event} event from source {source} came from a device clock "
                       f"off by more than {fmt_duration(threshold)} in {_window_text(window)}.")
        else:
            message = (f"{fmt_pct(share)} of live {event} events from source {source} came from "
                       f"devices whose clock was off by more than {fmt_duration(threshold)} "
                       f"(up to {fmt_duration(row.max_skew)}) in {_window_text(window)} "
                       f"(expected at most {fmt_pct(warn)}); nerve corrected their timestamps "
                       f"from sent_at" + (f"; since {fmt_time(since)}." if since else "."))
        results.append(ctx.result("clock_skew", status, message, event=event,
                                  dimensions={"source": source}, observed=share,
                                  expected={"min": 0.0, "max": warn}, unit="share", since=since,
                                  details={"skewed": skewed, "events": n}))
    return results
