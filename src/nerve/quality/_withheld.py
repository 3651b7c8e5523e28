"""Checks on what the collector did not store: consent drops and refused requests.

The collector writes their counts into the event log beside the events it accepted
(``nerve.log._tally``), and the loader records them in the ``loads`` ledger's
``withheld`` column, in the transaction that loads the events next to them. So they are
windowed like the duplicates check (by the ledger's ``at``), survive restarts, and come
from every collector process (``--workers``, ``--collect-only``).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson

from nerve.quality import _scan
from nerve.quality._context import Context
from nerve.quality._engine import backend_name, epoch_seconds, has_table
from nerve.quality._result import CheckResult, Status, fmt_count, fmt_duration, fmt_pct

__all__ = ["Withheld", "check_refusals", "check_withheld", "consent_note", "read_withheld",
           "withheld", "withheld_count", "withheld_figures"]

#: statuses a client retries (the events come again): 408, 429 and 5xx
_RETRIED = frozenset({408, 429})


class Withheld:
    """The ledger's counts over one window: consent drops by (source, event), refused
    requests by (status, code); ``ledger`` is False without a ``withheld`` column."""

    def __init__(self, ledger: bool) -> None:
        self.ledger = ledger
        self.consent: Counter[tuple[str, str]] = Counter()
        self.refused: Counter[tuple[int, str]] = Counter()

    def add(self, counts: dict[str, Any]) -> None:
        for source, events in counts.get("consent", {}).items():
            for event, n in events.items():
                self.consent[source, event] += int(n)
        for status, codes in counts.get("refused", {}).items():
            for code, n in codes.items():
                self.refused[int(status), code] += int(n)

    def by_event(self) -> dict[str, Counter[str]]:
        """Consent drops per event, by source."""
        out: dict[str, Counter[str]] = {}
        for (source, event), n in self.consent.items():
            out.setdefault(event, Counter())[source] += n
        return out


def read_withheld(loads: Any, now: float, window: float) -> Withheld:
    """What the ``loads`` ledger (an Ibis table, or None) says was not stored in the
    ``window`` seconds before ``now`` (epoch seconds), by the ledger's ``at``."""
    found = Withheld(ledger=loads is not None and "withheld" in loads.columns)
    if loads is not None and found.ledger:
        at = epoch_seconds(loads.at, backend_name(loads))
        frame = loads.filter(at >= now - window, at <= now,
                             loads.withheld.notnull()).select("withheld").to_pandas()
        for text in frame["withheld"]:
            found.add(orjson.loads(text))
    return found


def withheld(ctx: Context, window: float) -> Withheld:
    """``read_withheld`` of the run's ledger (one scan per window and run)."""
    key = f"withheld:{window}"
    if key in ctx.cache:
        cached: Withheld = ctx.cache[key]
        return cached
    found = read_withheld(ctx.inputs.loads, ctx.now, window)
    ctx.cache[key] = found
    return found


def withheld_figures(con: Any, now: float, window: float = 86400.0) -> dict[str, Any]:
    """``nerve status``'s view of the ledger of the Ibis backend ``con``: consent drops
    by event and refused requests by status and code over the ``window`` seconds before
    ``now``, most first. ``recorded`` is False without a ledger (``withheld`` column)
    to read them from; the counts are then empty.

    >>> import ibis
    >>> withheld_figures(ibis.duckdb.connect(), 0.0)["recorded"]
    False
    """
    found = read_withheld(con.table("loads") if has_table(con, "loads") else None, now,
                          window)
    consent: Counter[str] = Counter()
    for (_source, event), n in found.consent.items():
        consent[event] += n
    refused = sorted(found.refused.items(), key=lambda item: (-item[1], item[0]))
    return {"window_seconds": window, "recorded": found.ledger,
            "consent": dict(sorted(consent.items(), key=lambda item: (-item[1], item[0]))),
            "refused": [{"status": status, "code": code, "requests": n}
                        for (status, code), n in refused]}


def _stored(ctx: Context, window: float) -> Counter[str]:
    """Rows per event received in the window (events and quarantine)."""
    stored: Counter[str] = Counter()
    for table in (ctx.inputs.events, ctx.inputs.quarantine):
        if table is not None:
            frame = _scan.received_counts(table, ctx.inputs.backend, ctx.now - window, ctx.now)
            stored.update(frame.groupby("event")["n"].sum().astype(int).to_dict())
    return stored


def check_withheld(ctx: Context) -> list[CheckResult]:
    """Per event, the share of what arrived that consent withheld (not stored)."""
    window = ctx.cfg.seconds("withheld", "window")
    found = withheld(ctx, window)
    span = fmt_duration(window)
    if not found.ledger:
        return [ctx.result("withheld", Status.passed, "No loader ledger with the collector's "
                           "counts (loads.withheld) to read consent drops from.")]
    events = found.by_event()
    if not events:
        return [ctx.result("withheld", Status.passed, "The collector withheld no event for "
                           f"consent in the last {span}.", observed=0.0, unit="share")]
    stored = _stored(ctx, window)
    results = []
    for event, sources in sorted(events.items()):
        if not ctx.cfg.enabled("withheld", event):
            continue
        dropped = sum(sources.values())
        arrived = dropped + stored[event]
        share = dropped / arrived
        warn = ctx.cfg.get("withheld", "warn", event)
        fail = ctx.cfg.get("withheld", "fail", event)
        least = ctx.cfg.get("withheld", "min_events", event)
        status = Status.passed
        if share > fail and arrived >= least:
            status = Status.fail
        elif share > warn:
            status = Status.warn
        by = ", ".join(f"{source} {fmt_count(n)}" for source, n in sources.most_common())
        message = (f"{fmt_pct(share)} of {event} events were withheld for consent in the "
                   f"last {span}: {fmt_count(dropped)} of {fmt_count(arrived)} arrived were not "
                   f"stored, as the sender's consent does not cover the event's purpose "
                   f"(by source: {by}; expected at most {fmt_pct(warn)}).")
        if share >= 1:
            message += (" None was stored: is the event's purpose in the catalog the one "
                        "its senders consent to?")
        results.append(ctx.result(
            "withheld", status, message, event=event, observed=share,
            expected={"min": 0.0, "max": warn}, unit="share",
            details={"withheld": dropped, "stored": stored[event], "arrived": arrived,
                     "sources": dict(sorted(sources.items()))}))
    return results


def check_refusals(ctx: Context) -> list[CheckResult]:
    """Requests the collector refused, by status and error code: their events were not
    stored (a client drops what a 4xx refused; it retries 408, 429 and 5xx)."""
    window = ctx.cfg.seconds("refusals", "window")
    found = withheld(ctx, window)
    span = fmt_duration(window)
    if not found.ledger:
        return [ctx.result("refusals", Status.passed, "No loader ledger with the collector's "
                           "counts (loads.withheld) to read refused requests from.")]
    if not found.refused:
        return [ctx.result("refusals", Status.passed, "The collector refused no request in "
                           f"the last {span}.", observed=0.0, unit="requests")]
    warn = ctx.cfg.get("refusals", "warn_requests")
    fail = ctx.cfg.get("refusals", "fail_requests")
    retried_warn = ctx.cfg.get("refusals", "warn_retried")
    results = []
    for (status_code, code), n in sorted(found.refused.items()):
        retried = status_code in _RETRIED or status_code >= 500
        if retried:
            status = Status.warn if n > retried_warn else Status.passed
            bound = retried_warn
            what = "clients retry these, so their events come again unless they give up"
        else:
            status = (Status.fail if n > fail else Status.warn if n > warn
                      else Status.passed)
            bound = warn
            what = "clients drop what a 4xx refuses: their events are lost"
        results.append(ctx.result(
            "refusals", status,
            f"The collector refused {fmt_count(n)} request{'s' if n != 1 else ''} with "
            f"{status_code} {code} in the last {span} ({what}; expected at most "
            f"{fmt_count(bound)}).",
            dimensions={"status": str(status_code), "code": code}, observed=float(n),
            expected={"min": 0.0, "max": float(bound)}, unit="requests",
            details={"requests": n, "retried": retried}))
    return results


def withheld_count(ctx: Context, event: str, window: float) -> int:
    """How many ``event`` events consent withheld in the window (0 without a ledger)."""
    if ctx.inputs.loads is None:
        return 0
    return sum(withheld(ctx, window).by_event().get(event, Counter()).values())


def consent_note(event: str, n: int) -> str:
    """For missing_events: that ``n`` ``event`` events were withheld for consent in its
    window (``""`` when none), so an event missing because it was dropped says why.

    >>> consent_note("app_opened", 0), consent_note("app_opened", 1)[:40]
    ('', '; but 1 app_opened event arrived in that')
    """
    if not n:
        return ""
    return (f"; but {fmt_count(n)} {event} event{'s' if n != 1 else ''} arrived in that time "
            f"and {'were' if n != 1 else 'was'} withheld for consent: the sender's consent "
            "does not cover the event's purpose (see the withheld check)")
