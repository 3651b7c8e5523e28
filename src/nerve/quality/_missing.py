"""Missing data: cataloged events with no data, required properties left empty, and
expected values that disappear."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from nerve.catalog import PAYLOAD_FIELD, EventSpec
from nerve.quality._context import Context, grade, moment
from nerve.quality._engine import (
    epoch_seconds,
    event_key,
    field_value,
    json_missing,
    json_texts,
)
from nerve.quality._result import CheckResult, Status, fmt_count, fmt_duration, fmt_pct, fmt_time
from nerve.quality._scan import dimension_counts, profile_span, received_counts
from nerve.quality._withheld import consent_note, withheld_count
from nerve.warehouse import one_of

__all__ = ["check_disappeared_values", "check_missing_events", "check_null_rate",
           "empty_days"]

#: PII classes whose values a check result never quotes (a reader's view masks them)
_PERSONAL = frozenset({"personal", "sensitive"})


def _payload(spec: EventSpec) -> str:
    return PAYLOAD_FIELD.get(spec.type, "properties")


def _judged_specs(ctx: Context) -> list[EventSpec]:
    if ctx.catalog is None:
        return []
    return [s for s in ctx.catalog if s.status not in ("deprecated", "draft")]


def check_missing_events(ctx: Context, profile: pd.DataFrame) -> list[CheckResult]:
    """Cataloged (active) events with no event time in the window.

    Judged by event time, as every analysis counts: a backfill of old events arriving now
    does not mean the product sends the event today. Rows that did arrive in the window
    with older event times are counted in the message, so it does not read as "nothing
    came".
    """
    window = ctx.cfg.seconds("missing_events", "window")
    status = Status(ctx.cfg.get("missing_events", "status"))
    lasts = profile.groupby("event")["last"].max() if not profile.empty else pd.Series()
    quarantined = ctx.cache.get("quarantine")
    q_events = set(quarantined["event"]) if quarantined is not None else set()
    # the schema check's scan of the quarantine, when it ran (see _basic._quarantine)
    q_window = max(ctx.cfg.seconds("schema", "window"), ctx.cfg.seconds("drift", "window"))
    scanned = fmt_duration(profile_span(ctx.cfg))
    results = []
    for spec in _judged_specs(ctx):
        if not ctx.cfg.enabled("missing_events", spec.name):
            continue
        seconds = lasts.get(spec.name)
        last = moment(seconds) if seconds is not None else None
        where = f" ({spec.file.name})" if spec.file else ""
        if last is not None and float(seconds) >= ctx.now - window:
            results.append(ctx.result(
                "missing_events", Status.passed,
                f"{spec.name} has data: the last one happened at {fmt_time(last)}.",
                event=spec.name, observed=1.0, expected={"min": 1.0, "max": None},
                unit="events"))
            continue
        none = (f"{spec.name}{where} is in the catalog, but no {spec.name} event has an event "
                f"time in the last {fmt_duration(window)}")
        # dropped for consent, it never reached a table: the ledger says so
        dropped = withheld_count(ctx, spec.name, window)
        consent = consent_note(spec.name, dropped)
        if spec.name in q_events and last is None:
            text = (f"{none}: those received in the last {fmt_duration(q_window)} were all "
                    f"quarantined (see the schema check){consent}.")
        elif last is None:
            text = (f"{none}, nor any in the last {scanned}{_arrived(ctx, spec.name, window)}"
                    f"{consent}.")
        else:
            text = (f"{none}; the last one happened at {fmt_time(last)}"
                    f"{_arrived(ctx, spec.name, window)}{consent}.")
        results.append(ctx.result("missing_events", status, text, event=spec.name,
                                  observed=0.0, expected={"min": 1.0, "max": None},
                                  unit="events", since=last,
                                  details={"withheld": dropped} if dropped else {}))
    return results + _gaps(ctx, profile, status)


def empty_days(daily: pd.Series, min_events: float) -> list[tuple[date, float]]:
    """Days without a single event inside a history, and what their weekday usually holds.

    ``daily`` counts events per local day (a ``date`` index), every day from the first
    with events to the last, zeros included. A day is empty when it counts nothing while
    the median of the other days of its weekday in ``daily`` is at least ``min_events``:
    a product closed every weekend (no event on any Saturday) raises nothing, and a day
    whose weekday was never seen on another day cannot be judged.

    >>> days = pd.Series([50, 40, 0, 45, 60, 0, 0] * 2 + [50, 40, 30, 45, 0, 0, 0],
    ...                  index=[date(2026, 11, 2) + timedelta(days=i) for i in range(21)])
    >>> empty_days(days, 20)  # Friday the 20th; two empty Wednesdays of three are usual
    [(datetime.date(2026, 11, 20), 60.0)]
    """
    out: list[tuple[date, float]] = []
    weekdays = pd.Series([d.weekday() for d in daily.index], index=daily.index)
    for day, n in daily.items():
        if n > 0:
            continue
        others = daily[(weekdays == weekdays[day]) & (daily.index != day)]
        if not others.empty and float(others.median()) >= min_events:
            out.append((day, float(others.median())))
    return out


def _local_days(counts: pd.DataFrame, tz: ZoneInfo) -> pd.Series:
    """Events per local day from hourly counts (``hour``, ``n``), every day from the first
    with events to the last, zeros included."""
    stamps = pd.to_datetime(counts["hour"] * 3600, unit="s", utc=True).dt.tz_convert(tz)
    daily = counts["n"].groupby(stamps.dt.date.to_numpy()).sum()
    daily = daily[daily > 0]
    if daily.empty:
        return daily
    first, last = min(daily.index), max(daily.index)
    every = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    return daily.reindex(every, fill_value=0)


def _gaps(ctx: Context, profile: pd.DataFrame, status: Status) -> list[CheckResult]:
    """Local days inside the training history without any event (the whole product), or
    without one event while the product had others: a backfill that left a day out is
    learnt as a day of zero traffic by the volume model, and compared with by explain."""
    if profile.empty or not ctx.cfg.enabled("missing_events", None):
        return []
    tz = ZoneInfo(ctx.cfg.timezone)
    least = float(ctx.cfg.get("missing_events", "min_day_events"))
    # the days the volume model learns from, not the longer span the profile may cover
    start = ctx.now - ctx.cfg.seconds("volume", "training")
    past = profile[(profile["hour"] * 3600 < ctx.now) & (profile["hour"] * 3600 >= start)]
    product = _local_days(past, tz)
    results = []
    for day, usual in empty_days(product, least):
        results.append(_gap_result(ctx, status, None, day, usual, tz))
    gone = {day for day, n in product.items() if n == 0}
    for spec in _judged_specs(ctx):
        if not ctx.cfg.enabled("missing_events", spec.name):
            continue
        own = _local_days(past[past["event"] == spec.name], tz)
        results.extend(_gap_result(ctx, status, spec.name, day, usual, tz)
                       for day, usual in empty_days(own, least) if day not in gone)
    return results


def _gap_result(ctx: Context, status: Status, event: str | None, day: date, usual: float,
                tz: ZoneInfo) -> CheckResult:
    start = datetime(day.year, day.month, day.day, tzinfo=tz)
    end = start + timedelta(days=1)
    weekday = f"{day:%A}"
    what = f"no {event} event" if event else "no event at all"
    others = f"other {weekday}s hold {fmt_count(round(usual))} {event or 'events'}"
    why = ("an import that left the day out, or an outage of the whole pipeline; if the "
           "product was closed that day, ignore this" if event is None else
           "an import or a client that left it out that day")
    text = (f"{day.isoformat()} ({weekday}, {ctx.cfg.timezone}) has {what}, inside the "
            f"history the checks learn from: {others} (median). The volume model learns "
            f"it as a day of zero traffic and explain compares with it: {why}.")
    return ctx.result("missing_events", status, text, event=event,
                      dimensions={"day": day.isoformat()}, observed=0.0,
                      expected={"min": 1.0, "max": None}, unit="events",
                      since=start.astimezone(UTC),
                      details={"day": day.isoformat(),
                               "start": start.astimezone(UTC).isoformat(),
                               "end": end.astimezone(UTC).isoformat(),
                               "usual": usual})


def _arrived(ctx: Context, event: str, window: float) -> str:
    """`` (N arrived in that window, with older event times)``, or nothing when none did."""
    received = ctx.scan(f"received:{window}", lambda: received_counts(
        ctx.inputs.events, ctx.inputs.backend, ctx.now - window, ctx.now))
    n = int(received.loc[received["event"] == event, "n"].sum()) if not received.empty else 0
    if not n:
        return ""
    return (f" (by arrival: {fmt_count(n)} arrived in that window, with older event times, "
            "e.g. a backfill)")


def _null_counts(table: ir.Table, backend: str, since: float, until: float,
                 props: dict[str, list[tuple[str, str]]]) -> pd.DataFrame:
    """Rows and empty values per event, source and import flag for the required
    properties, one scan."""
    received = epoch_seconds(table.received_at, backend)
    key = event_key(table)
    recent = table.filter(received >= since, received <= until, one_of(key, list(props)))
    aggs: dict[str, Any] = {"n": ibis._.count()}
    pairs = sorted({pair for plist in props.values() for pair in plist})
    columns = sorted({column for column, _ in pairs})
    # one parse per row for every path (DuckDB), else one JSON access per path
    arrays = {c: json_texts(recent[c], [n for col, n in pairs if col == c], backend)
              for c in columns}
    recent = recent.mutate(**{f"_{c}": a for c, a in arrays.items() if a is not None})
    rkey = event_key(recent)
    for i, (column, name) in enumerate(pairs):
        owners = [event for event, plist in props.items() if (column, name) in plist]
        if arrays[column] is not None:
            position = [n for col, n in pairs if col == column].index(name)
            missing = recent[f"_{column}"][position].isnull()
        else:
            missing = json_missing(recent[column], name, backend)
        aggs[f"p{i}"] = ibis.ifelse(one_of(rkey, owners), missing, False).sum()
    frame = recent.group_by(event=rkey, source=recent.source,
                            historical=recent.historical).agg(**aggs).to_pandas()
    frame.attrs["pairs"] = pairs
    return frame


def check_null_rate(ctx: Context) -> list[CheckResult]:
    """Share of rows (loaded and quarantined) where a required property is missing or
    null, per event and source, live rows apart from backfills.

    Per source, as the schema check: one broken client is not averaged away by the
    others. Backfills (historical rows) are judged on their own: an import received in
    the same window would dilute the live share, and its own gaps are worth a word too.
    """
    window = ctx.cfg.seconds("null_rate", "window")
    props: dict[str, list[tuple[str, str]]] = {}
    for spec in _judged_specs(ctx):
        # a required property the privacy policy drops is never stored: all its rows
        # would read as missing it
        required = [(_payload(spec), p.name) for p in spec.properties
                    if p.required and ctx.cfg.stored(spec.name, p)]
        if required and ctx.cfg.enabled("null_rate", spec.name):
            props[spec.name] = required
    if not props:
        return []
    inputs = ctx.inputs
    frames = [_null_counts(inputs.events, inputs.backend, ctx.now - window, ctx.now, props)]
    if inputs.quarantine is not None:
        frames.append(_null_counts(inputs.quarantine, inputs.backend, ctx.now - window, ctx.now,
                                   props))
    totals: dict[tuple[str, str, bool], float] = {}
    empties: dict[tuple[str, str, bool, str], float] = {}
    for frame in frames:
        pairs = frame.attrs["pairs"]
        for row in frame.to_dict("records"):
            group = (row["event"], row["source"], bool(row["historical"]))
            totals[group] = totals.get(group, 0) + row["n"]
            for i, pair in enumerate(pairs):
                key = (*group, pair[1])
                empties[key] = empties.get(key, 0) + (row[f"p{i}"] or 0)
    results = []
    for (event, source, historical), total in sorted(totals.items(),
                                                     key=lambda kv: str(kv[0])):
        if not total:
            continue
        warn = ctx.cfg.get("null_rate", "warn", event)
        fail = ctx.cfg.get("null_rate", "fail", event)
        for column, name in props[event]:
            empty = empties.get((event, source, historical, name), 0)
            share = empty / total
            status = grade(share, warn, fail)
            if total < ctx.cfg.get("null_rate", "min_events", event):
                status = min(status, Status.warn, key=lambda s: s.rank)
            rows = f"{'backfilled' if historical else 'live'} {event} events from source {source}"
            if empty == 0:
                text = (f"{event}.{name} (required) was present in all {fmt_count(total)} "
                        f"{rows} of the last {fmt_duration(window)}.")
            else:
                text = (f"{event}.{name} is required but missing or null in "
                        f"{fmt_count(empty)} of {fmt_count(total)} {rows} "
                        f"({fmt_pct(share)}) in the last {fmt_duration(window)} (expected at "
                        f"most {fmt_pct(warn)}).")
            results.append(ctx.result("null_rate", status, text, event=event,
                                      dimensions={"property": f"{column}.{name}",
                                                  "source": str(source),
                                                  **({"backfill": "true"} if historical
                                                     else {})},
                                      observed=share, expected={"min": 0.0, "max": warn},
                                      unit="share"))
    return results


def check_disappeared_values(ctx: Context, dims: list[str] | None = None
                             ) -> list[CheckResult]:
    """Values of enum properties (and configured expected values) that stopped arriving,
    and values of the key dimensions ``dims`` (platform = ios) that one event stopped
    arriving with while other events still carry them."""
    return _property_values(ctx) + _dimension_values(ctx, dims or [])


def _property_values(ctx: Context) -> list[CheckResult]:
    window = ctx.cfg.seconds("disappeared_values", "window")
    baseline = ctx.cfg.seconds("disappeared_values", "baseline")
    paths: dict[str, dict[str, tuple[Any, ...] | None]] = {}
    for spec in _judged_specs(ctx):
        if not ctx.cfg.enabled("disappeared_values", spec.name):
            continue
        for prop in spec.properties:
            if prop.enum is not None and prop.type == "string":
                paths.setdefault(spec.name, {})[f"{_payload(spec)}.{prop.name}"] = None
    for event in ctx.cfg.events:
        for path, values in ctx.cfg.expected_values(event).items():
            paths.setdefault(event, {})[path] = values
    if not paths:
        return []
    e = ctx.inputs.events
    backend = ctx.inputs.backend
    ts = epoch_seconds(e.timestamp, backend)
    key = event_key(e)
    start = ctx.now - window - baseline
    by_path: dict[str, list[str]] = {}
    for event, plist in paths.items():
        for path in plist:
            by_path.setdefault(path, []).append(event)
    fast = _value_counts_at_once(ctx, by_path, start)
    frames = [fast] if fast is not None else []
    for path, events in by_path.items() if fast is None else ():
        rows = e.filter(ts >= start, ts < ctx.now, one_of(key, events))
        rows = rows.select(event=event_key(rows), value=field_value(rows, path, backend),
                           recent=epoch_seconds(rows.timestamp, backend) >= ctx.now - window)
        frame = rows.group_by(["event", "recent", "value"]).agg(n=ibis._.count()).to_pandas()
        frames.append(frame.assign(path=path))
    data = pd.concat(frames, ignore_index=True)
    if data.empty:
        return []
    results = []
    min_share = ctx.cfg.get("disappeared_values", "min_share")
    min_expected = ctx.cfg.get("disappeared_values", "min_expected")
    for (event, path), frame in data.groupby(["event", "path"]):
        old = frame[~frame["recent"]].groupby("value", dropna=False)["n"].sum()
        new = frame[frame["recent"]].groupby("value", dropna=False)["n"].sum()
        old_total, new_total = float(old.sum()), float(new.sum())
        if old_total == 0 or new_total == 0:
            continue  # no baseline, or the whole event is missing (another check says so)
        listed = paths[str(event)].get(str(path))
        candidates = list(listed) if listed else [v for v in old.index if pd.notna(v)]
        gone = []
        for value in candidates:
            before = float(old.get(value, 0))
            share = before / old_total
            expected = share * new_total
            if float(new.get(value, 0)) == 0 and (listed or (share >= min_share
                                                              and expected >= min_expected)):
                gone.append((value, share, expected))
        if not gone:
            results.append(ctx.result(
                "disappeared_values", Status.passed,
                f"Every usual value of {event}.{path.split('.', 1)[-1]} still arrives.",
                event=str(event), dimensions={"property": str(path)}))
            continue
        since = moment(ctx.now - window)
        withheld = _personal_class(ctx, str(event), str(path))
        if withheld is not None:
            results.append(_withheld_values(ctx, str(event), str(path), withheld, gone,
                                            new_total))
            continue
        for value, share, expected in gone:
            field = f"{event}.{path.split('.', 1)[-1]} = {value!r}"
            if share == 0:  # listed in expected_values, and absent from the baseline too
                text = (f"{field} is expected (expected_values in checks.yaml) but has not "
                        f"arrived: none in the last {fmt_duration(window)} among "
                        f"{fmt_count(new_total)} {event} events, nor in the "
                        f"{fmt_duration(baseline)} before.")
            else:
                text = (f"{field} has disappeared: none in the last {fmt_duration(window)} "
                        f"among {fmt_count(new_total)} {event} events, though it was "
                        f"{fmt_pct(share)} of them in the {fmt_duration(baseline)} before "
                        f"(about {fmt_count(round(expected))} expected).")
            results.append(ctx.result(
                "disappeared_values", Status.warn, text,
                event=str(event), dimensions={"property": str(path), "value": str(value)},
                observed=0.0, expected={"min": 1.0, "max": None}, unit="events", since=since))
    return results


def _personal_class(ctx: Context, event: str, path: str) -> str | None:
    """``personal`` or ``sensitive`` when the catalog classes the property at ``path`` (or
    an object holding it) so in any version of ``event``, else None.

    A check result never quotes such a value: check_results is read as stored by readers
    whose view masks it, it goes to webhooks, and ``nerve forget`` does not reach it.
    """
    if ctx.catalog is None:
        return None
    head, _, rest = path.partition(".")
    for spec in ctx.catalog.versions(event):
        if head != _payload(spec):
            continue
        props = spec.properties
        for name in rest.split("."):
            found = next((p for p in props if p.name == name), None)
            if found is None:
                break
            if found.pii in _PERSONAL:
                return found.pii
            props = found.properties
    return None


def _withheld_values(ctx: Context, event: str, path: str, pii: str,
                     gone: list[tuple[Any, float, float]], new_total: float) -> CheckResult:
    """One result for the values of a personal or sensitive property that disappeared,
    with their count and share but not the values themselves."""
    window = ctx.cfg.seconds("disappeared_values", "window")
    baseline = ctx.cfg.seconds("disappeared_values", "baseline")
    share = sum(s for _, s, _ in gone)
    expected = sum(e for _, _, e in gone)
    name = f"{event}.{path.split('.', 1)[-1]}"
    usual = sum(1 for _, s, _ in gone if s > 0)
    # values listed in expected_values that were absent from the baseline too
    never = len(gone) - usual
    parts = []
    if usual:
        some = (f"1 usual value of {name} has" if usual == 1
                else f"{usual} usual values of {name} have")
        parts.append(
            f"{some} disappeared (the values are withheld: {pii} data): none in the last "
            f"{fmt_duration(window)} among {fmt_count(new_total)} {event} events, though "
            f"{'it was' if usual == 1 else 'they were'} {fmt_pct(share)} of them in the "
            f"{fmt_duration(baseline)} before (about {fmt_count(round(expected))} expected).")
    if never:
        some = (f"1 value of {name} in expected_values (checks.yaml) has" if never == 1
                else f"{never} values of {name} in expected_values (checks.yaml) have")
        parts.append(
            f"{some} not arrived (the values are withheld: {pii} data): none in the last "
            f"{fmt_duration(window)} among {fmt_count(new_total)} {event} events, nor in the "
            f"{fmt_duration(baseline)} before.")
    return ctx.result(
        "disappeared_values", Status.warn,
        " ".join(parts) + " A breakdown by the property (with the admin's view) shows which.",
        event=event, dimensions={"property": path}, observed=0.0,
        expected={"min": 1.0, "max": None}, unit="events", since=moment(ctx.now - window),
        details={"values": len(gone), "withheld": pii})


def _dimension_values(ctx: Context, dims: list[str]) -> list[CheckResult]:
    """Per cataloged event and key dimension, the usual values it stopped arriving with.

    A value is judged as enum values are (``min_share`` of the event's events in the
    baseline, ``min_expected`` expected in the window), and only while the other events
    still carry it at half its usual share or more: add_to_cart without platform = ios
    while iOS users go on browsing is events not sent (a release's tracking bug); an app
    version whose users all left, or a platform with no traffic at all, is not. Reads the
    volume check's scan of the dimension when it ran and reaches back far enough.

    What would have come is the smaller of two estimates: from the baseline's share, and
    from the value's median daily share over the days the scan covers before the window.
    An outage that filled the baseline with one value's events (payment_failed in NL) made
    its ordinary quiet after the outage read as "no longer sent there".
    """
    judged = {s.name for s in _judged_specs(ctx)
              if ctx.cfg.enabled("disappeared_values", s.name)}
    if not judged or not dims:
        return []
    window = ctx.cfg.seconds("disappeared_values", "window")
    baseline = ctx.cfg.seconds("disappeared_values", "baseline")
    min_share = ctx.cfg.get("disappeared_values", "min_share")
    min_expected = ctx.cfg.get("disappeared_values", "min_expected")
    start = ctx.now - window - baseline
    scanned = min(ctx.cfg.seconds("volume", "training"),
                  ctx.cfg.seconds("volume", "dimension_training"))
    history_start = min(start, ctx.now - scanned)
    results = []
    for dim in dims:
        frame = ctx.cache.get(f"dim:{dim}")  # the volume check's scan, when it ran
        if frame is None or scanned < window + baseline:
            frame = ctx.scan(f"dim:{dim}:{history_start}", lambda d=dim: dimension_counts(
                ctx.inputs, ctx.cfg, ctx.now, d, since=history_start))
        begin = frame["hour"].astype("int64") * 3600
        frame = frame.assign(recent=begin >= ctx.now - window,
                             day=(ctx.now - window - 1 - begin) // 86400)[
            (begin >= history_start) & (begin < ctx.now)].dropna(subset=["value"])
        typical = _daily_shares(frame[~frame["recent"]])
        frame = frame[frame["hour"].astype("int64") * 3600 >= start]
        if frame.empty:
            continue
        frame = frame.assign(value=frame["value"].astype(str))
        old = frame[~frame["recent"]].groupby(["event", "value"])["n"].sum()
        new = frame[frame["recent"]].groupby(["event", "value"])["n"].sum()
        if old.empty or new.empty:
            continue
        totals_old, totals_new = old.groupby(level=0).sum(), new.groupby(level=0).sum()
        values_old, values_new = old.groupby(level=1).sum(), new.groupby(level=1).sum()
        for (event, value), before in old.items():
            if event not in judged or (event, value) in new.index \
                    or event not in totals_new.index:
                continue  # still arrives, or the whole event is missing (said elsewhere)
            share = before / totals_old[event]
            # what would have come: the value's events per event of the other values
            rest = float(totals_old[event] - before)
            expected = before * (totals_new[event] / rest if rest > 0 else window / baseline)
            # the value's usual events per event of the others, day by day: an outage in
            # the baseline does not make its usual quiet a tracking bug
            expected = min(expected, typical.get((event, value), math.inf)
                           * totals_new[event])
            if share < min_share or expected < min_expected:
                continue
            # the other events: does the value still arrive with them?
            others_old = float(values_old[value] - before)
            others_new = float(values_new.get(value, 0))
            rest_old = float(totals_old.sum() - totals_old[event])
            rest_new = float(totals_new.sum() - totals_new[event])
            if others_old <= 0 or rest_old <= 0 or \
                    others_new < 0.5 * others_old / rest_old * rest_new:
                continue
            mine = frame[(frame["event"] == event) & (frame["value"] == value)]
            since = (int(mine["hour"].max()) + 1) * 3600
            last = datetime.fromtimestamp(since, tz=UTC)
            results.append(ctx.result(
                "disappeared_values", Status.warn,
                f"{event} has had no event with {dim} = {value} for "
                f"{fmt_duration(ctx.now - since)} (none since {fmt_time(last)}), "
                f"where it had {fmt_pct(share)} of them in the {fmt_duration(baseline)} "
                f"before (about {fmt_count(round(expected))} expected beside the "
                f"{fmt_count(totals_new[event])} {event} events of the last "
                f"{fmt_duration(window)}), while other events with {dim} = {value} still "
                f"arrive ({fmt_count(others_new)} in the last {fmt_duration(window)}): "
                f"{event} is no longer sent there (a tracking bug?), not users gone.",
                event=str(event), dimensions={dim: str(value)}, observed=0.0,
                expected={"min": 1.0, "max": None}, unit="events", since=last))
    return results



def _daily_shares(history: pd.DataFrame) -> dict[tuple[str, str], float]:
    """(event, value) -> the median, over the days of ``history`` (its ``day`` column)
    with events of both the value and the event's other values, of the value's events
    per event of the others. Days without the value are left out: an app version's days
    before its release say nothing of its share once it is out."""
    shares: dict[tuple[str, str], float] = {}
    if history.empty:
        return shares
    daily = history.assign(value=history["value"].astype(str)).groupby(
        ["event", "day", "value"])["n"].sum()
    for event, counts in daily.groupby(level=0):
        table = counts.droplevel(0).unstack(fill_value=0)  # days x values
        rest = table.sum(axis=1).to_numpy()[:, None] - table.to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios = np.where((rest > 0) & (table.to_numpy() > 0), table.to_numpy() / rest,
                              np.nan)
        for value, column in zip(table.columns, ratios.T, strict=True):
            if not np.isnan(column).all():
                shares[(str(event), str(value))] = float(np.nanmedian(column))
    return shares

def _value_counts_at_once(ctx: Context, by_path: dict[str, list[str]], start: float
                          ) -> pd.DataFrame | None:
    """Counts per event, window half and value of every path, from one scan (DuckDB).

    Rows are grouped by the whole list of values (few distinct combinations: each event
    has only a handful of enum properties), then split per path here.
    """
    e = ctx.inputs.events
    backend = ctx.inputs.backend
    paths = sorted(by_path)
    by_column: dict[str, list[str]] = {}
    for path in paths:
        column, _, rest = path.partition(".")
        if not rest:
            return None
        by_column.setdefault(column, []).append(rest)
    arrays = {c: json_texts(e[c], names, backend) for c, names in by_column.items()}
    if any(a is None for a in arrays.values()):
        return None
    ts = epoch_seconds(e.timestamp, backend)
    key = event_key(e)
    events = sorted({ev for evs in by_path.values() for ev in evs})
    rows = e.filter(ts >= start, ts < ctx.now, one_of(key, events)).select(
        event=key, recent=ts >= ctx.now - ctx.cfg.seconds("disappeared_values", "window"),
        **{f"_{c}": a for c, a in arrays.items()})
    grouped = rows.group_by(list(rows.columns)).agg(n=ibis._.count()).to_pandas()
    out = []
    for row in grouped.to_dict("records"):
        for column, names in by_column.items():
            values = row[f"_{column}"]
            if values is None:  # no such JSON document (traits of a track call)
                values = [None] * len(names)
            for name, value in zip(names, values, strict=True):
                path = f"{column}.{name}"
                if row["event"] in by_path[path]:
                    out.append((row["event"], row["recent"], value, row["n"], path))
    return pd.DataFrame(out, columns=["event", "recent", "value", "n", "path"])
