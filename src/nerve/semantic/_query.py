"""The semantic layer's boundary objects: a MetricQuery in, a MetricResult out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import pyarrow as pa

__all__ = ["Lineage", "MetricQuery", "MetricResult"]

TimeBound = str | date | datetime | None


@dataclass(frozen=True, slots=True)
class MetricQuery:
    """What to compute.

    - ``metrics``: metric names, in the order of the result's columns;
    - ``by``: dimensions to break down by (``platform``, ``user.age_group``, ``price``);
    - ``grain``: ``hour``, ``day``, ``week``, ``month``, or None for one total;
    - ``where``: a filter over dimensions and segments (``country = 'DE' and seniors``);
    - ``segments``: named segments that must hold (joined with ``where`` by AND);
    - ``since``/``until``: dates, datetimes, ``today``/``yesterday``/``now``, or a duration
      back from now (``8w``, ``30d``, ``24h``); an ``until`` date is included;
    - ``order_by``: result columns, ``-name`` for descending (default: time, then ``by``);
    - ``limit``: at most this many rows.
    """

    metrics: tuple[str, ...]
    by: tuple[str, ...] = ()
    grain: str | None = None
    where: str | None = None
    segments: tuple[str, ...] = ()
    since: TimeBound = None
    until: TimeBound = None
    order_by: tuple[str, ...] = ()
    limit: int | None = None

    @classmethod
    def build(cls, metrics: str | list[str] | tuple[str, ...], **options: Any) -> MetricQuery:
        """A query from loose arguments: single names or lists, as callers have them."""

        def many(value: Any) -> tuple[str, ...]:
            if value is None:
                return ()
            if isinstance(value, str):
                return tuple(v.strip() for v in value.split(",") if v.strip())
            return tuple(value)

        return cls(metrics=many(metrics), by=many(options.pop("by", None)),
                   segments=many(options.pop("segments", None)),
                   order_by=many(options.pop("order_by", None)), **options)

    def as_dict(self) -> dict[str, Any]:
        def bound(value: TimeBound) -> Any:
            return value.isoformat() if isinstance(value, date) else value

        return {"metrics": list(self.metrics), "by": list(self.by), "grain": self.grain,
                "where": self.where, "segments": list(self.segments),
                "since": bound(self.since), "until": bound(self.until),
                "order_by": list(self.order_by), "limit": self.limit}


@dataclass(frozen=True, slots=True)
class Lineage:
    """Where one metric's numbers come from: events, fields and every filter applied."""

    metric: str
    type: str
    #: how it is computed, in words: ``sum(properties.revenue) of purchase_complete``
    formula: str
    events: tuple[str, ...]
    #: every field read: ``purchase_complete.properties.revenue``, ``user.age``
    fields: tuple[str, ...]
    #: every filter applied, with where it was defined
    filters: tuple[str, ...]
    segments: tuple[str, ...] = ()
    #: other metrics it is built from (with offsets: ``revenue@-1w``)
    inputs: tuple[str, ...] = ()
    #: the metric's definition: ``metrics/shop.yaml:12``
    defined_at: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "type": self.type, "formula": self.formula,
                "events": list(self.events), "fields": list(self.fields),
                "filters": list(self.filters), "segments": list(self.segments),
                "inputs": list(self.inputs), "defined_at": self.defined_at}


@dataclass(frozen=True, slots=True)
class MetricResult:
    """A computed query: the rows, the SQL that produced them, and each metric's lineage.

    ``table`` has the time column (named after the grain: ``day``, ``week``...; absent
    without a grain), one column per ``by`` dimension, and one per metric.
    """

    query: MetricQuery
    table: pa.Table
    sql: str
    dialect: str
    lineage: dict[str, Lineage]
    time_column: str | None
    #: the query's resolved local time range, ``[start, end)``, and its zone
    start: datetime
    end: datetime
    timezone: str
    #: the period that holds the query's "now", as the time column shows it (a date, or
    #: a local datetime for hours): its figures are so far, not the whole period's
    partial: date | datetime | None = None

    def rows(self) -> list[dict[str, Any]]:
        """The rows as dicts keyed by column name."""
        return self.table.to_pylist()  # type: ignore[no-any-return]

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form (the HTTP API's answer)."""
        return {"query": self.query.as_dict(), "rows": self.rows(), "sql": self.sql,
                "dialect": self.dialect, "time_column": self.time_column,
                "start": self.start.isoformat(), "end": self.end.isoformat(),
                "timezone": self.timezone,
                "partial": self.partial.isoformat() if self.partial else None,
                "lineage": {k: v.as_dict() for k, v in self.lineage.items()}}
