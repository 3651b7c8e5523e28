"""Series to judge: counts or metric values per period, overall and per dimension value.

Every function returns a *series frame*: one row per (target, dimension, value, period)
with columns ``target``, ``dimension`` and ``value`` (both ``""`` for the overall series),
``period`` (hours since the epoch, or local days of the workspace's time zone numbered
from 1970-01-01: ``nerve.anomaly._days``; an int) and ``n`` (the count or value).

Event counts come from one engine scan (all events, all dimensions at once); metrics go
through the semantic layer, one query per breakdown.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import ibis
import ibis.expr.types as ir
import pandas as pd

from nerve.anomaly._days import local_day_expr
from nerve.quality._config import DEFAULT_DIMENSIONS
from nerve.quality._engine import backend_name, epoch_seconds, event_key, field_value
from nerve.semantic import Measure, Metric, MetricQuery, SemanticLayer
from nerve.semantic._load import Definitions
from nerve.warehouse import one_of

__all__ = ["CHURNING", "COLUMNS", "KEY_DIMENSIONS", "count_metric", "event_counts", "metric_series",
           "with_metrics"]

COLUMNS = ["target", "dimension", "value", "period", "n"]

#: the live stream's and the all-events detector's key dimensions: name -> JSON paths
KEY_DIMENSIONS: dict[str, tuple[str, ...]] = {
    "platform": ("context.device.type", "context.os.name"),
    "os": ("context.os.name",),
    "app_version": DEFAULT_DIMENSIONS["app_version"],
    "country": DEFAULT_DIMENSIONS["country"],
}

#: key dimensions whose values are replaced at every release: an old app version falling
#: to zero is the release working, a change of mix (judged by the quality volume check's
#: mix test and by ``nerve explain``), so scans without ``--by`` report only their spikes
CHURNING = frozenset({"app_version"})


def _seconds(grain_hours: int) -> int:
    return 3600 * grain_hours


def event_counts(table: ir.Table, *, start: datetime, end: datetime,
                 dims: Mapping[str, Sequence[str]] | None = None,
                 events: Sequence[str] | None = None, grain_hours: int = 1,
                 time_column: str = "timestamp", users: bool = True,
                 tz: ZoneInfo | None = None) -> pd.DataFrame:
    """Counts per event and period in ``[start, end)``, overall and per dimension value.

    Day periods (``grain_hours=24``) are the local days of ``tz`` (default: UTC days).

    ``users`` holds the distinct users (or anonymous ids) of each cell, summed over cells
    (with ``users=False`` there is no such column: the distinct count is most of the
    scan's cost after the JSON).

    ``dims`` maps a dimension name to JSON paths (first non-null wins); default: the key
    dimensions (platform, os, app version, country). One scan of the events table.
    """
    dims = dict(KEY_DIMENSIONS if dims is None else dims)
    backend = backend_name(table)
    ts = epoch_seconds(table[time_column], backend)
    columns: dict[str, Any] = {
        "target": event_key(table),
        "period": local_day_expr(ts, start, end, tz) if grain_hours >= 24 and tz
        else (ts // _seconds(grain_hours)).cast("int64"),
    }
    for name, paths in dims.items():
        values = [field_value(table, path, backend) for path in paths]
        columns[name] = values[0] if len(values) == 1 else ibis.coalesce(*values)
    filtered = table.filter(ts >= start.timestamp(), ts < end.timestamp())
    if events:
        filtered = filtered.filter(one_of(event_key(filtered), list(events)))
    if not users:
        grouped = filtered.select(**columns).group_by(list(columns)).agg(n=ibis._.count())
        return melt(grouped.to_pandas(), list(dims))
    who = ibis.coalesce(filtered.user_id, filtered.anonymous_id)
    grouped = filtered.select(**columns, _who=who).group_by(list(columns)).agg(
        n=ibis._.count(), users=ibis._._who.nunique())
    return melt(grouped.to_pandas(), list(dims))


def melt(cells: pd.DataFrame, dims: list[str]) -> pd.DataFrame:
    """Cells grouped by target, period and every dimension -> a series frame."""
    sums = ["n", "users"] if "users" in cells.columns else ["n"]
    if cells.empty:
        return pd.DataFrame(columns=COLUMNS + sums[1:])
    parts = []
    overall = cells.groupby(["target", "period"], as_index=False)[sums].sum()
    overall["dimension"], overall["value"] = "", ""
    parts.append(overall)
    for dim in dims:
        sub = cells.dropna(subset=[dim])
        if sub.empty:
            continue
        one = sub.groupby(["target", dim, "period"], as_index=False)[sums].sum()
        one = one.rename(columns={dim: "value"})
        one["dimension"] = dim
        one["value"] = one["value"].astype(str)
        parts.append(one)
    out = pd.concat(parts, ignore_index=True)[COLUMNS + sums[1:]]
    for column in sums:
        out[column] = out[column].astype(float)
    return out


def count_metric(event: str) -> Metric:
    """An ad-hoc metric counting ``event``, so an event goes where a metric goes."""
    return Metric(name=f"{event}__count", type="simple", label=f"{event} events",
                  measure=Measure(agg="count", events=(event,)))


def with_metrics(layer: SemanticLayer, extra: Sequence[Metric], *,
                 timezone: str | None = None) -> SemanticLayer:
    """``layer`` plus ad-hoc metrics (a count of an event, a ratio's two sides), in
    ``timezone`` instead of the layer's when given."""
    definitions = Definitions(metrics={**layer.metrics, **{m.name: m for m in extra}},
                              dimensions=dict(layer.dimensions),
                              segments=dict(layer.segments), files=list(layer.files))
    return SemanticLayer(definitions, layer.catalog, timezone=timezone or layer.timezone)


def metric_series(layer: SemanticLayer, table: ir.Table, metric: str, *,
                  by: Sequence[str] = (), start: datetime, end: datetime,
                  grain_hours: int = 1, now: datetime | None = None) -> pd.DataFrame:
    """One metric per period in ``[start, end)``, overall and per value of each ``by``.

    Day periods are the layer's local days (numbered as ``nerve.anomaly._days`` does);
    hour periods are hours since the epoch, queried in UTC: a local clock's fall-back
    hour holds two hours, and its numbering would shift every hour by the UTC offset.
    """
    grain = "day" if grain_hours >= 24 else "hour"
    if grain == "hour" and layer.timezone != "UTC":
        layer = with_metrics(layer, (), timezone="UTC")
    parts = []
    for dim in ("", *by):
        query = MetricQuery((metric,), by=(dim,) if dim else (), grain=grain,
                            since=start.astimezone(UTC), until=end.astimezone(UTC))
        result = layer.query(query, table, now=now or datetime.now(UTC))
        frame = result.table.to_pandas()
        if frame.empty:
            continue
        column = result.time_column or grain
        moments = pd.to_datetime(frame[column])  # naive wall-clock time of the layer
        epoch = (moments - pd.Timestamp("1970-01-01")) // pd.Timedelta(seconds=1)
        name = layer.get(metric).name
        part = pd.DataFrame({
            "target": metric,
            "dimension": dim,
            "value": frame[dim].astype(str) if dim else "",
            "period": (epoch // _seconds(grain_hours)).astype("int64"),
            "n": pd.to_numeric(frame[name], errors="coerce").astype(float),
        })
        if dim:
            part = part[frame[dim].notna().to_numpy()]
        parts.append(part)
    if not parts:
        return pd.DataFrame(columns=COLUMNS)
    out = pd.concat(parts, ignore_index=True)[COLUMNS].sort_values("period", kind="stable")
    # the layer fills empty periods with zeros from ``start``; before a series' first
    # value those zeros are "no data yet", not a quiet time, and must not train the model
    seen = out["n"].fillna(0).ne(0).groupby([out["dimension"], out["value"]]).cummax()
    return out[seen.to_numpy()].reset_index(drop=True)

