"""The SemanticLayer: a workspace's metrics, dimensions and segments, checked and queryable."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

import ibis
import ibis.expr.types as ir
import pyarrow as pa

from nerve.catalog import Catalog
from nerve.errors import Location, QueryError
from nerve.semantic._check import check_definitions, parse_ref, parse_segments
from nerve.semantic._compile import CompiledQuery, compile_query, formula
from nerve.semantic._engines import backend_dialect, local_time, normalize_dialect
from nerve.semantic._expr import parse_filter
from nerve.semantic._load import Definitions, MetricsError, load_definitions
from nerve.semantic._model import ANY_EVENT, Dimension, Metric, Segment
from nerve.semantic._query import MetricQuery, MetricResult
from nerve.semantic._reader import EventReader
from nerve.semantic._readiness import HealthSource, Readiness, readiness
from nerve.semantic._resolve import Resolver
from nerve.semantic._time import floor_to, parse_bound, resolve_range, to_local, to_utc, zone
from nerve.warehouse import stitch_identities

__all__ = ["SemanticLayer"]

_ENVELOPE_COLUMNS = ("message_id", "type", "event", "user_id", "anonymous_id", "timestamp",
                     "properties", "traits", "context")
#: the columns ``event_rows`` always has: a dimension of the same name cannot be added
_ROW_COLUMNS = ("message_id", "event", "user", "timestamp", "local_time")


class SemanticLayer:
    """Metrics as code, checked against the catalog, compiled through Ibis.

    >>> layer = SemanticLayer.load(workspace)                        # doctest: +SKIP
    >>> result = layer.query(MetricQuery(("revenue",), grain="week", since="8w"),
    ...                      table=events)                           # doctest: +SKIP
    >>> result.table, result.sql, result.lineage["revenue"]          # doctest: +SKIP
    """

    def __init__(self, definitions: Definitions, catalog: Catalog, *,
                 timezone: str = "UTC", strict: bool = True) -> None:
        """Check ``definitions`` against ``catalog``; raise MetricsError on any problem,
        or with ``strict=False`` keep them in ``problems`` (for lint and readiness)."""
        problems: list[tuple[Location, str]] = []
        zone(timezone)
        parsed = parse_segments(definitions, problems)
        self.catalog = catalog
        self.timezone = timezone
        self.metrics: Mapping[str, Metric] = MappingProxyType(dict(definitions.metrics))
        self.dimensions: Mapping[str, Dimension] = MappingProxyType(dict(definitions.dimensions))
        self.segments: Mapping[str, Segment] = MappingProxyType(dict(definitions.segments))
        self.files = tuple(definitions.files)
        self.resolver = Resolver(catalog, self.dimensions, self.segments, parsed)
        check_definitions(definitions, catalog, self.resolver, problems)
        # each dimension as it is read: a short form takes its catalog type
        self.dimensions = MappingProxyType({name: self.resolver.typed(dim)
                                           for name, dim in self.dimensions.items()})
        self.resolver.dimensions = self.dimensions
        self.problems: tuple[tuple[Location, str], ...] = in_file_order(problems)
        if problems and strict:
            raise MetricsError(list(self.problems))

    @classmethod
    def from_folder(cls, metrics_dir: Path | str, catalog: Catalog, *,
                    timezone: str = "UTC", strict: bool = True) -> SemanticLayer:
        """Load ``metrics_dir/*.yaml``; raises MetricsError listing every problem.

        What parses is checked against the catalog even when some entries did not parse,
        so the error lists what ``nerve metrics lint`` lists, not only the parse problems.
        """
        problems: list[tuple[Location, str]] = []
        definitions = load_definitions(Path(metrics_dir), problems)
        layer = cls(definitions, catalog, timezone=timezone, strict=False)
        layer.problems = in_file_order([*problems, *layer.problems])
        if layer.problems and strict:
            raise MetricsError(list(layer.problems))
        return layer

    @classmethod
    def load(cls, workspace: Any, catalog: Catalog | None = None, *,
             strict: bool = True) -> SemanticLayer:
        """The layer of a ``nerve.workspace.Workspace`` (its catalog loaded unless given)."""
        catalog = catalog if catalog is not None else Catalog.load(workspace.events_dir)
        return cls.from_folder(workspace.metrics_dir, catalog,
                               timezone=workspace.config.timezone, strict=strict)

    def with_metrics(self, metrics: Iterable[Metric], *, strict: bool = True) -> SemanticLayer:
        """This layer plus metrics built in code (ad-hoc ones for an experiment or an
        anomaly scan), checked like the rest; same names replace the files' metrics."""
        definitions = Definitions(metrics={**self.metrics, **{m.name: m for m in metrics}},
                                  dimensions=dict(self.dimensions),
                                  segments=dict(self.segments), files=list(self.files))
        return SemanticLayer(definitions, self.catalog, timezone=self.timezone, strict=strict)

    def readiness(self, health: HealthSource | None = None) -> list[Readiness]:
        """For each metric: what it needs, whether the catalog has it, and data health."""
        return readiness(self.metrics, self.resolver, self.catalog, health)

    # ------------------------------------------------------------------ lookups

    def __contains__(self, name: object) -> bool:
        return name in self.metrics

    def get(self, name: str) -> Metric:
        """A metric by name or synonym; raises QueryError naming the closest ones."""
        metric = self.metrics.get(name)
        if metric is not None:
            return metric
        lowered = name.lower().replace(" ", "_")
        for metric in self.metrics.values():
            if lowered in (s.lower().replace(" ", "_") for s in metric.synonyms):
                return metric
        close = [m for m in self.metrics if lowered[:3] in m][:5]
        if close:
            hint = f"; did you mean {', '.join(close)}?"
        else:  # nothing alike: what there is (metrics/*.yaml)
            hint = f"; metrics: {', '.join(sorted(self.metrics)) or 'none in metrics/'}"
        raise QueryError(f"unknown metric {name!r}{hint}")

    def events_of(self, name: str) -> list[str]:
        """Every cataloged event a metric reads (through its inputs too)."""
        found: list[str] = []
        metric = self.get(name)
        for measure in (metric.measure, metric.numerator, metric.denominator):
            if measure is not None and not isinstance(measure, str):
                found.extend(e for e in measure.events if e != "*")
        if metric.conversion is not None:
            found.extend(metric.conversion.base.events)
            found.extend(metric.conversion.conversion.events)
        for other in self.metrics_of(name):
            found.extend(self.events_of(other))
        return list(dict.fromkeys(found))

    def metrics_of(self, name: str) -> list[str]:
        """The other metrics a metric is built from: a ratio's sides, a derived metric's
        inputs and the names its ``expr`` reads that are no input's alias."""
        metric = self.get(name)
        found = list(metric.referenced_metrics())
        if metric.expr and metric.type == "derived":
            from nerve.semantic._expr import parse_arithmetic, refs  # noqa: PLC0415

            aliases = {i.alias for i in metric.inputs}
            found.extend(ref.text for ref in refs(parse_arithmetic(metric.expr))
                         if ref.text not in aliases and ref.text in self.metrics)
        return list(dict.fromkeys(found))

    def describe(self, name: str) -> dict[str, Any]:
        """A metric as a JSON-ready dict: metadata, definition, formula, events it reads."""
        metric = self.get(name)
        info: dict[str, Any] = {
            "name": metric.name, "label": metric.title, "type": metric.type,
            "description": metric.description, "owner": metric.owner,
            "synonyms": list(metric.synonyms), "format": metric.format,
            "currency": metric.currency, "up_is_good": metric.up_is_good,
            "formula": formula(metric), "filter": metric.filter,
            "events": self.events_of(metric.name),
            "metrics": self.metrics_of(metric.name),
            "defined_at": metric.where("type") if metric.file else None,
        }
        if metric.window or metric.grain_to_date:
            info["window"] = metric.window
            info["grain_to_date"] = metric.grain_to_date
        if metric.conversion is not None:
            info["window"] = metric.conversion.window
            info["entity"] = metric.conversion.entity
        if metric.inputs:
            info["inputs"] = [{"metric": i.metric, "alias": i.alias, "offset": i.offset}
                              for i in metric.inputs]
        return info

    # ------------------------------------------------------------------ queries

    def _named(self, query: MetricQuery) -> dict[str, Metric]:
        """Every metric by name, plus the query's synonyms (results keep the asked name)."""
        metrics = dict(self.metrics)
        for name in query.metrics:
            if name not in metrics:
                metrics[name] = self.get(name)
        return metrics

    def compile(self, query: MetricQuery, table: ir.Table, *, dialect: str | None = None,
                now: datetime | None = None,
                data_bounds: tuple[datetime, datetime] | None = None,
                stitch: bool = True) -> CompiledQuery:
        """The Ibis expression for ``query`` over ``table`` (the warehouse's events).

        Without ``since`` (or ``until``), the range comes from ``data_bounds`` (first and
        last event, UTC), which is read from ``table`` when not given. ``stitch``:
        identities are stitched first (``nerve.warehouse.stitch_identities``), as the CLI
        and the HTTP API count users; a table that ``analysis_events`` returned is not
        stitched again. ``stitch=False`` counts the ids as they were sent.
        """
        metrics = self._named(query)
        _check_table(table)
        if stitch:
            table = stitch_identities(table)
        dialect = normalize_dialect(dialect) if dialect else backend_dialect(table)
        now = now or datetime.now(UTC)
        tz = zone(self.timezone)
        if data_bounds is None and (query.since is None or query.until is None):
            data_bounds = _data_bounds(table)
        trange = resolve_range(query.since, query.until, grain=query.grain, tz=tz, now=now,
                               data_bounds=data_bounds)
        return compile_query(query, metrics=metrics, resolver=self.resolver,
                             table=table, dialect=dialect, tz=self.timezone, trange=trange)

    def to_sql(self, query: MetricQuery, table: ir.Table, *, dialect: str | None = None,
               now: datetime | None = None,
               data_bounds: tuple[datetime, datetime] | None = None,
               stitch: bool = True) -> str:
        """The SQL ``query`` compiles to on an engine (default: the table's own)."""
        dialect = normalize_dialect(dialect) if dialect else backend_dialect(table)
        compiled = self.compile(query, table, dialect=dialect, now=now,
                                data_bounds=data_bounds, stitch=stitch)
        return str(ibis.to_sql(compiled.expr, dialect=dialect))

    def query(self, query: MetricQuery, table: ir.Table, *,
              now: datetime | None = None, stitch: bool = True) -> MetricResult:
        """Run ``query`` on the engine holding ``table``; rows, SQL and lineage.
        ``stitch``: as ``compile``'s."""
        dialect = backend_dialect(table)
        now = now or datetime.now(UTC)
        compiled = self.compile(query, table, dialect=dialect, now=now, stitch=stitch)
        sql = str(ibis.to_sql(compiled.expr, dialect=dialect))
        try:
            raw = compiled.expr.to_pyarrow()
        except QueryError:
            raise
        except Exception as exc:
            raise QueryError(f"the engine refused the compiled query: "
                             f"{str(exc).splitlines()[0][:300]}") from exc
        return MetricResult(
            query=query, table=_present(raw, compiled), sql=sql,
            dialect=dialect, lineage=compiled.lineage, time_column=compiled.time_column,
            start=compiled.range.start, end=compiled.range.end, timezone=self.timezone,
            partial=_partial(compiled, now, zone(self.timezone)),
        )


    def event_rows(self, table: ir.Table, events: str | tuple[str, ...] | list[str], *,
                   dimensions: tuple[str, ...] | list[str] = (), where: str | None = None,
                   segments: tuple[str, ...] | list[str] = (),
                   since: str | date | datetime | None = None,
                   until: str | date | datetime | None = None,
                   now: datetime | None = None) -> ir.Table:
        """Events with their dimensions resolved, for analyses built on the layer.

        Funnels, explain and experiments read events through this, so that names such
        as ``platform``, ``user.age_group`` (as of each event) and segments mean what
        they mean in metrics. Columns: ``message_id``, ``event``, ``user``,
        ``timestamp`` (UTC), ``local_time`` (workspace zone), then one per dimension,
        named as given with dots as underscores (``user.age_group`` ->
        ``user_age_group``). ``events`` may be ``"*"`` (every track, page and screen).
        """
        _check_table(table)
        wanted = (events,) if isinstance(events, str) else tuple(events)
        for event in wanted:
            if event != ANY_EVENT and event not in self.catalog:
                raise QueryError(f"event {event!r} is not in the catalog")
        for name in dimensions:
            if name.replace(".", "_") in _ROW_COLUMNS:
                raise QueryError(f"dimension {name!r}: the name of a column the rows "
                                 f"always have ({', '.join(_ROW_COLUMNS)}), so it cannot "
                                 "be a breakdown")
        dialect = backend_dialect(table)
        reader = EventReader(self.resolver, table, dialect)
        tz = zone(self.timezone)
        now = now or datetime.now(UTC)
        start = parse_bound(since, tz, now, grain=None, is_end=False) or _EARLIEST
        end = parse_bound(until, tz, now, grain=None, is_end=True) or _LATEST
        dims = {name.replace(".", "_"): reader.resolve(parse_ref(name), wanted,
                                                      context=f"dimension {name}")
                for name in dimensions}
        texts = [(where, "where")] if where else []
        for name in segments:
            if name not in self.segments:
                raise QueryError(f"unknown segment {name!r}")
            texts.append((name, f"segment {name}"))
        filters = []
        for text, origin in texts:
            try:
                filters.append((parse_filter(text), origin))
            except ValueError as exc:
                raise QueryError(f"{origin}: {exc}") from None
        needed = [*dims.values()]
        for node, origin in filters:
            needed.extend(reader.expand(node, wanted, origin))
        t, value = reader.read(wanted, to_utc(start, tz), to_utc(end, tz), needed)
        for node, origin in filters:
            t = t.filter(reader.condition(node, wanted, value, origin))
        return t.select(
            message_id=t.message_id, event=ibis.coalesce(t.event, t.type),
            user=ibis.coalesce(t.user_id, t.anonymous_id), timestamp=t.timestamp,
            local_time=local_time(t.timestamp, self.timezone, dialect),
            **{name: value(item) for name, item in dims.items()},
        )


_EARLIEST = datetime(1970, 1, 1)  # noqa: DTZ001 - local wall clock: no lower bound
_LATEST = datetime(2999, 12, 31)  # noqa: DTZ001 - local wall clock: no upper bound


def _check_table(table: ir.Table) -> None:
    missing = [c for c in _ENVELOPE_COLUMNS if c not in table.columns]
    if missing:
        raise QueryError(f"the events table lacks column(s) {', '.join(missing)}; "
                         "expected the warehouse's events table")


def _data_bounds(table: ir.Table) -> tuple[datetime, datetime] | None:
    row = table.aggregate(lo=table.timestamp.min(), hi=table.timestamp.max()).to_pyarrow()
    lo, hi = row.column("lo")[0].as_py(), row.column("hi")[0].as_py()
    if lo is None or hi is None:
        return None
    return _aware(lo), _aware(hi)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _partial(compiled: CompiledQuery, now: datetime, tz: ZoneInfo) -> date | datetime | None:
    """The period of ``compiled`` that holds ``now``, as ``_present`` labels it; None
    without a grain or when the range does not reach ``now``."""
    if compiled.grain is None:
        return None
    current = floor_to(to_local(now, tz), compiled.grain)
    if not compiled.range.start <= current < compiled.range.end:
        return None
    return current.date() if compiled.grain in ("day", "week", "month") else current


def _present(raw: pa.Table, compiled: CompiledQuery) -> pa.Table:
    """Result columns named for people; day, week and month periods as dates."""
    columns, names = [], []
    for name in raw.column_names:
        column = raw.column(name)
        if name == "_period":
            column = column.cast(pa.timestamp("us"))
            if compiled.grain in ("day", "week", "month"):
                column = column.cast(pa.date32())
        elif name.startswith("_m") and pa.types.is_decimal(column.type):
            column = column.cast(pa.float64())
        columns.append(column)
        names.append(compiled.names.get(name, name))
    return pa.table(columns, names=names)


def bound_text(value: str | date | datetime | None) -> str | None:
    return value.isoformat() if isinstance(value, date) else value


def in_file_order(problems: Iterable[tuple[Location, str]]) -> tuple[tuple[Location, str], ...]:
    """Problems by file and line, as one reads and fixes them (each check appends its
    own, so a file's line 40 could come before its line 3); a line's own keep their order."""
    return tuple(sorted(problems, key=lambda p: (str(p[0].file), p[0].line or 0)))
