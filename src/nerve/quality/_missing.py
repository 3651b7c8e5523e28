"""Missing data: cataloged events with no data, required properties left empty, and
expected values that disappear."""

from __future__ import annotations

from typing import Any

import ibis
import ibis.expr.types as ir
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
from nerve.warehouse import one_of

__all__ = ["check_disappeared_values", "check_missing_events", "check_null_rate"]


def _payload(spec: EventSpec) -> str:
    return PAYLOAD_FIELD.get(spec.type, "properties")


def _judged_specs(ctx: Context) -> list[EventSpec]:
    if ctx.catalog is None:
        return []
    return [s for s in ctx.catalog if s.status not in ("deprecated", "draft")]


def check_missing_events(ctx: Context, profile: pd.DataFrame) -> list[CheckResult]:
    """Cataloged (active) events with no rows at all in the window."""
    window = ctx.cfg.seconds("missing_events", "window")
    status = Status(ctx.cfg.get("missing_events", "status"))
    seen = profile.groupby("event")["hour"].max() if not profile.empty else pd.Series()
    quarantined = ctx.cache.get("quarantine")
    q_events = set(quarantined["event"]) if quarantined is not None else set()
    results = []
    for spec in _judged_specs(ctx):
        if not ctx.cfg.enabled("missing_events", spec.name):
            continue
        last_hour = seen.get(spec.name)
        last = moment(float(last_hour) * 3600) if last_hour is not None else None
        where = f" ({spec.file.name})" if spec.file else ""
        if last is not None and float(last_hour) * 3600 >= ctx.now - window - 3600:
            results.append(ctx.result(
                "missing_events", Status.passed,
                f"{spec.name} has data: last event at {fmt_time(last)}.",
                event=spec.name, observed=1.0, expected={"min": 1.0, "max": None},
                unit="events"))
            continue
        if spec.name in q_events and last is None:
            text = (f"{spec.name}{where} is in the catalog, but every {spec.name} event of "
                    f"the last {fmt_duration(window)} was quarantined (see the schema check).")
        elif last is None:
            text = (f"{spec.name}{where} is in the catalog, but no {spec.name} event arrived "
                    f"in the last {fmt_duration(ctx.cfg.seconds('volume', 'training'))}.")
        else:
            text = (f"{spec.name}{where} is in the catalog, but no {spec.name} event arrived "
                    f"in the last {fmt_duration(window)}; the last one happened at "
                    f"{fmt_time(last)}.")
        results.append(ctx.result("missing_events", status, text, event=spec.name,
                                  observed=0.0, expected={"min": 1.0, "max": None},
                                  unit="events", since=last))
    return results


def _null_counts(table: ir.Table, backend: str, since: float,
                 props: dict[str, list[tuple[str, str]]]) -> pd.DataFrame:
    """Rows and empty values per event for the required properties, one scan."""
    received = epoch_seconds(table.received_at, backend)
    key = event_key(table)
    recent = table.filter(received >= since, one_of(key, list(props)))
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
    frame = recent.group_by(event=event_key(recent)).agg(**aggs).to_pandas()
    frame.attrs["pairs"] = pairs
    return frame


def check_null_rate(ctx: Context) -> list[CheckResult]:
    """Share of rows (loaded and quarantined) where a required property is missing or null."""
    window = ctx.cfg.seconds("null_rate", "window")
    props: dict[str, list[tuple[str, str]]] = {}
    for spec in _judged_specs(ctx):
        required = [(_payload(spec), p.name) for p in spec.properties if p.required]
        if required and ctx.cfg.enabled("null_rate", spec.name):
            props[spec.name] = required
    if not props:
        return []
    inputs = ctx.inputs
    frames = [_null_counts(inputs.events, inputs.backend, ctx.now - window, props)]
    if inputs.quarantine is not None:
        frames.append(_null_counts(inputs.quarantine, inputs.backend, ctx.now - window, props))
    totals: dict[str, float] = {}
    empties: dict[tuple[str, str], float] = {}
    for frame in frames:
        pairs = frame.attrs["pairs"]
        for row in frame.to_dict("records"):
            totals[row["event"]] = totals.get(row["event"], 0) + row["n"]
            for i, pair in enumerate(pairs):
                key = (row["event"], pair[1])
                empties[key] = empties.get(key, 0) + (row[f"p{i}"] or 0)
    results = []
    for event, required in sorted(props.items()):
        total = totals.get(event, 0)
        if not total:
            continue
        warn = ctx.cfg.get("null_rate", "warn", event)
        fail = ctx.cfg.get("null_rate", "fail", event)
        for column, name in required:
            empty = empties.get((event, name), 0)
            share = empty / total
            status = grade(share, warn, fail)
            if total < ctx.cfg.get("null_rate", "min_events", event):
                status = min(status, Status.warn, key=lambda s: s.rank)
            if empty == 0:
                text = (f"{event}.{name} (required) was present in all {fmt_count(total)} "
                        f"{event} events of the last {fmt_duration(window)}.")
            else:
                text = (f"{event}.{name} is required but missing or null in "
                        f"{fmt_count(empty)} of {fmt_count(total)} {event} events "
                        f"({fmt_pct(share)}) in the last {fmt_duration(window)} (expected at "
                        f"most {fmt_pct(warn)}).")
            results.append(ctx.result("null_rate", status, text, event=event,
                                      dimensions={"property": f"{column}.{name}"},
                                      observed=share, expected={"min": 0.0, "max": warn},
                                      unit="share"))
    return results


def check_disappeared_values(ctx: Context) -> list[CheckResult]:
    """Values of enum properties (and configured expected values) that stopped arriving."""
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
        for value, share, expected in gone:
            since = moment(ctx.now - window)
            results.append(ctx.result(
                "disappeared_values", Status.warn,
                f"{event}.{path.split('.', 1)[-1]} = {value!r} has disappeared: none in the "
                f"last {fmt_duration(window)} among {fmt_count(new_total)} {event} events, "
                f"though it was {fmt_pct(share)} of them in the {fmt_duration(baseline)} before "
                f"(about {fmt_count(round(expected))} expected).",
                event=str(event), dimensions={"property": str(path), "value": str(value)},
                observed=0.0, expected={"min": 1.0, "max": None}, unit="events", since=since))
    return results


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
