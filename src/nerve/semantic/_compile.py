"""Compile a MetricQuery into one Ibis expression over the ``events`` table.

The plan, for every query:

1. Each metric is broken into **components**: one aggregation over one set of event rows
   (a measure, its filters, an optional period offset, an optional cumulative window).
   Components shared by several metrics are computed once.
2. Each component reads its events, resolves the dimensions (JSON fields, identify
   traits as of the event's time), filters, and aggregates into ``(period, dims, value)``
   using a small **spine** of periods computed in Python (``_time.py``): either by
   truncating local time to the grain, or, for windows and offsets that do not fall on
   period boundaries, by a range join ``lo <= local_time < hi``.
3. A **frame** of every period (times every dimension combination seen) is left-joined
   with each component, so empty periods are present; additive measures become 0.
4. Each metric's value is an expression over the frame's columns (ratios and derived
   metrics divide with ``nullif``: a zero denominator gives null, not an error).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import ibis
import ibis.expr.types as ir
import pyarrow as pa

from nerve.errors import QueryError, did_you_mean
from nerve.semantic._check import parse_ref
from nerve.semantic._conversion import followed
from nerve.semantic._engines import exact_sum, local_time, safe_divide
from nerve.semantic._expr import (
    Arith,
    Lit,
    Neg,
    Node,
    Ref,
    parse_arithmetic,
    parse_filter,
    refs,
)
from nerve.semantic._model import ADDITIVE, ANY_EVENT, ConversionSpec, Measure, Metric
from nerve.semantic._query import Lineage, MetricQuery
from nerve.semantic._reader import EventReader
from nerve.semantic._resolve import Resolved, Resolver
from nerve.semantic._time import (
    Duration,
    TimeRange,
    floor_to,
    next_period,
    parse_duration,
    periods,
    shift,
    to_utc,
)
from nerve.warehouse import one_of

__all__ = ["CompiledQuery", "compile_query", "formula"]

_TRUNCATE = {"hour": "h", "day": "D", "week": "W", "month": "M"}
_EPOCH = datetime(1970, 1, 1)  # noqa: DTZ001 - local wall clock: "all time" starts here


@dataclass(frozen=True, slots=True)
class _Key:
    """One component: an aggregation over one set of rows, shifted and windowed."""

    measure: Measure
    filters: tuple[tuple[str, str], ...]  # (filter text, where it comes from)
    offsets: tuple[Duration, ...] = ()
    window: Duration | None = None
    grain_to_date: str | None = None
    all_time: bool = False
    #: set for a conversion's converted rows: only base rows followed by a conversion
    converted: ConversionSpec | None = None


@dataclass(frozen=True, slots=True)
class _Plan:
    """A component's resolved names: what it reads and how it filters."""

    key: _Key
    dims: tuple[Resolved, ...]
    target: Resolved | None
    filters: list[tuple[Node, str, str]]
    needed: tuple[Resolved, ...]
    entity: Resolved | None


@dataclass
class _Trace:
    """What a metric read, for its lineage."""

    events: set[str] = field(default_factory=set)
    fields: set[str] = field(default_factory=set)
    filters: list[str] = field(default_factory=list)
    segments: set[str] = field(default_factory=set)
    inputs: list[str] = field(default_factory=list)

    def merge(self, other: _Trace) -> None:
        self.events |= other.events
        self.fields |= other.fields
        self.filters.extend(f for f in other.filters if f not in self.filters)
        self.segments |= other.segments


@dataclass(frozen=True, slots=True)
class CompiledQuery:
    """An Ibis expression plus what is needed to present its result."""

    expr: ir.Table
    #: internal column -> result column
    names: dict[str, str]
    time_column: str | None
    grain: str | None
    range: TimeRange
    lineage: dict[str, Lineage]


Value = Callable[[ir.Table], ir.Value]


class _Compiler:
    def __init__(self, *, metrics: dict[str, Metric], resolver: Resolver, table: ir.Table,
                 dialect: str, tz: str, query: MetricQuery, trange: TimeRange) -> None:
        self.metrics = metrics
        self.resolver = resolver
        self.table = table
        self.dialect = dialect
        self.tz = tz
        self.query = query
        self.range = trange
        self.grain = query.grain
        self.by = [parse_ref(b) for b in query.by]
        self.reader = EventReader(resolver, table, dialect)
        self.components: dict[_Key, str] = {}
        self.traces: dict[_Key, _Trace] = {}
        starts = (periods(trange.start, trange.end, self.grain, trange.tz) if self.grain
                  else [trange.start])
        self.periods = starts

    # ---------------------------------------------------------------- query-level filters

    def _query_filters(self) -> tuple[tuple[str, str], ...]:
        found = []
        if self.query.where:
            found.append((self.query.where, "query where"))
        for name in self.query.segments:
            if name not in self.resolver.segments:
                known = ", ".join(sorted(self.resolver.segments)) or "none defined"
                raise QueryError(f"unknown segment {name!r} (segments: {known})")
            found.append((name, f"segment {name}"))
        return tuple(found)

    # ---------------------------------------------------------------- metric values

    def metric_value(self, name: str, offsets: tuple[Duration, ...],
                     filters: tuple[tuple[str, str], ...], trace: _Trace) -> Value:
        metric = self.metrics.get(name)
        if metric is None:
            known = ", ".join(sorted(self.metrics)) or "none defined in metrics/"
            raise QueryError(f"unknown metric {name!r} (metrics: {known})")
        if metric.filter:
            origin = f"{metric.name} filter ({metric.where('filter')})"
            filters = (*filters, (metric.filter, origin))
        if metric.type == "simple":
            assert metric.measure is not None
            return self._measure_value(metric.measure, _Key(metric.measure, filters, offsets),
                                       trace)
        if metric.type == "cumulative":
            assert metric.measure is not None
            key = _Key(metric.measure, filters, offsets,
                       window=parse_duration(metric.window) if metric.window else None,
                       grain_to_date=metric.grain_to_date,
                       all_time=not metric.window and not metric.grain_to_date)
            return self._measure_value(metric.measure, key, trace)
        if metric.type == "ratio":
            num = self._side(metric.numerator, offsets, filters, trace)
            den = self._side(metric.denominator, offsets, filters, trace)
            return lambda f: safe_divide(num(f), den(f))
        if metric.type == "conversion":
            conv = metric.conversion
            assert conv is not None
            base = self._measure_value(conv.base, _Key(conv.base, filters, offsets), trace)
            converted = self._measure_value(
                conv.base, _Key(conv.base, filters, offsets, converted=conv), trace)
            if conv.calculation == "conversions":
                return converted
            return lambda f: safe_divide(converted(f), base(f))
        assert metric.expr is not None
        node = parse_arithmetic(metric.expr)
        aliases = {i.alias: i for i in metric.inputs}
        values: dict[str, Value] = {}
        for ref in refs(node):
            item = aliases.get(ref.text)
            target = item.metric if item else ref.text
            shifted = offsets + ((parse_duration(item.offset),) if item and item.offset else ())
            trace.inputs.append(target + (f"@-{item.offset}" if item and item.offset else ""))
            values[ref.text] = self.metric_value(target, shifted, filters, trace)
        return lambda f: _arith(node, values, f)

    def _side(self, side: str | Measure | None, offsets: tuple[Duration, ...],
              filters: tuple[tuple[str, str], ...], trace: _Trace) -> Value:
        if isinstance(side, Measure):
            return self._measure_value(side, _Key(side, filters, offsets), trace)
        assert side is not None
        trace.inputs.append(side)
        return self.metric_value(side, offsets, filters, trace)

    def _measure_value(self, measure: Measure, key: _Key, trace: _Trace) -> Value:
        if key not in self.components:
            self.components[key] = f"_c{len(self.components)}"
        column = self.components[key]
        self.traces.setdefault(key, self._trace_of(key))
        trace.merge(self.traces[key])
        additive = measure.agg in ADDITIVE
        return (lambda f: f[column].fill_null(0)) if additive else (lambda f: f[column])

    # ---------------------------------------------------------------- resolving names

    def _filters_of(self, key: _Key) -> list[tuple[Node, str, str]]:
        found = []
        if key.measure.filter:
            found.append((key.measure.filter, f"measure filter ({key.measure.file}:"
                                              f"{key.measure.line})"))
        found.extend(key.filters)
        found.extend(self._query_filters())
        parsed = []
        for text, origin in found:
            try:
                parsed.append((parse_filter(text), text, origin))
            except ValueError as exc:
                raise QueryError(f"{origin}: {exc}") from None
        return parsed

    def _trace_of(self, key: _Key) -> _Trace:
        trace = _Trace()
        events = key.measure.events
        trace.events.update(e for e in events if e != ANY_EVENT)
        label = "|".join(events) if events != (ANY_EVENT,) else "any event"
        for _, text, origin in self._filters_of(key):
            trace.filters.append(f"{label}: {text} [{origin}]")
        plan = self._plan(key)
        short = label if events != (ANY_EVENT,) else "*"
        for item in plan.needed:
            trace.fields.add(item.lineage if item.kind in ("trait", "user", "column")
                             else f"{short}.{item.lineage}")
        if key.converted is not None:
            conv = key.converted.conversion
            trace.events.update(conv.events)
            if conv.filter:
                trace.filters.append(f"{'|'.join(conv.events)}: {conv.filter} [conversion]")
            trace.filters.append(f"converted within {key.converted.window} by "
                                 f"{key.converted.entity}")
        return trace

    # ---------------------------------------------------------------- event rows

    def _plan(self, key: _Key) -> _Plan:
        """What one component reads: its dimensions, value, filters and traits."""
        measure = key.measure
        events = measure.events
        context = f"metric measure {measure.describe()}"
        dims = tuple(self.reader.resolve(b, events, context=f"--by {b.text} on {context}")
                     for b in self.by)
        target = (self.reader.resolve(parse_ref(measure.of), events, context=context)
                  if measure.of else None)
        filters = self._filters_of(key)
        needed = [*dims, *([target] if target else [])]
        for node, _, origin in filters:
            needed.extend(self.reader.expand(node, events, origin))
        entity = None
        if key.converted is not None:
            entity = self.reader.resolve(parse_ref(key.converted.entity), events, context=context)
            needed.append(entity)
        return _Plan(key, dims, target, filters, tuple(needed), entity)

    def _rows(self, plans: list[_Plan], lo: datetime, hi: datetime) -> ir.Table:
        """Rows of one or more components of the same shape, read in one scan.

        Columns: ``_local``, the dimensions ``_d*``, and per component ``j`` its value
        ``_v{j}`` and, when several share the scan, ``_f{j}``: whether the row is one of
        its events and passes its filters. A single component filters rows instead.
        """
        if any(p.key.measure.any_event for p in plans):
            events: tuple[str, ...] = (ANY_EVENT,)
        else:
            events = tuple(dict.fromkeys(e for p in plans for e in p.key.measure.events))
        needed = [item for p in plans for item in p.needed]
        t, value = self.reader.read(events, to_utc(lo, self.range.tz), to_utc(hi, self.range.tz),
                                 needed)
        def member(own: tuple[str, ...]) -> ir.BooleanValue:
            if own in (events, (ANY_EVENT,)):
                return ibis.literal(True)
            inside = one_of(t.event, list(own))
            return (t.type == "track") & inside if events == (ANY_EVENT,) else inside

        conditions = []
        if len(plans) == 1:
            own = plans[0].key.measure.events
            for node, _, origin in plans[0].filters:
                t = t.filter(self.reader.condition(node, own, value, origin))
        else:
            for plan in plans:
                own = plan.key.measure.events
                condition = member(own)
                for node, _, origin in plan.filters:
                    condition = condition & self.reader.condition(node, own, value, origin)
                conditions.append(condition)
        columns: dict[str, ir.Value] = {
            "_local": local_time(t.timestamp, self.tz, self.dialect),
            **{f"_d{i}": value(d) for i, d in enumerate(plans[0].dims)},
        }
        for j, plan in enumerate(plans):
            if plan.target is not None:
                columns[f"_v{j}"] = value(plan.target)
            if len(plans) > 1:
                # a NULL condition (a filter on a missing field) does not count
                columns[f"_f{j}"] = conditions[j].fill_null(False)
        converted = plans[0].key.converted
        if converted is None:
            return t.select(**columns)
        assert len(plans) == 1
        assert plans[0].entity is not None
        columns.update(_ts=t.timestamp, _mid=t.message_id, _ent=value(plans[0].entity))
        base = t.select(**columns)
        conv = self._conversion_rows(converted, lo, hi)
        window = ibis.interval(seconds=int(parse_duration(converted.window).seconds()))
        hit = followed(base, conv, window)
        return hit.select(*[c for c in base.columns if c not in ("_ts", "_mid", "_ent")])

    def _conversion_rows(self, spec: ConversionSpec, lo: datetime, hi: datetime) -> ir.Table:
        measure = spec.conversion
        events = measure.events
        context = f"conversion {measure.describe()}"
        entity = self.reader.resolve(parse_ref(spec.entity), events, context=context)
        filters = []
        if measure.filter:
            filters.append((parse_filter(measure.filter), measure.filter, "conversion filter"))
        needed = [entity]
        for node, _, origin in filters:
            needed.extend(self.reader.expand(node, events, origin))
        end = to_utc(hi, self.range.tz) + timedelta(seconds=parse_duration(spec.window).seconds())
        t, value = self.reader.read(events, to_utc(lo, self.range.tz), end, needed)
        for node, _, origin in filters:
            t = t.filter(self.reader.condition(node, events, value, origin))
        return t.select(_cent=value(entity), _cts=t.timestamp, _cmid=t.message_id)

    def _bounds(self, key: _Key) -> list[tuple[datetime, datetime, datetime]]:
        """``(period, lo, hi)`` in local time: the rows each output period aggregates."""
        result = []
        for i, start in enumerate(self.periods):
            end = (next_period(start, self.grain) if self.grain else self.range.end)
            lo, hi = start, end
            for offset in key.offsets:
                lo, hi = shift(lo, offset, -1), shift(hi, offset, -1)
            if key.window is not None:
                lo = shift(hi, key.window, -1)
            elif key.grain_to_date is not None:
                # to date as of the period's end: a week that ends in November counts
                # from November 1st, not from the start of the October it began in
                lo = floor_to(hi - timedelta(microseconds=1), key.grain_to_date)
            elif key.all_time:
                lo = _EPOCH
            result.append((start, lo, hi))
            del i
        return result

    def _aligned(self, bounds: list[tuple[datetime, datetime, datetime]]) -> bool:
        grain = self.grain
        return grain is not None and all(
            floor_to(lo, grain) == lo and next_period(lo, grain) == hi for _, lo, hi in bounds)

    def _spine(self, name: str, columns: dict[str, list[datetime]]) -> ir.Table:
        del name
        data = pa.table({k: pa.array(v, pa.timestamp("us")) for k, v in columns.items()})
        return ibis.memtable(data)

    def _aggregation(self, measure: Measure, rows: ir.Table, j: int,
                     shared: bool) -> ir.Scalar:
        where = rows[f"_f{j}"] if shared else None
        if measure.agg == "count":
            return rows.count(where=where)
        v = rows[f"_v{j}"]
        if measure.agg == "count_distinct":
            return v.nunique(where=where)
        if measure.agg == "sum":
            return exact_sum(v, where, self.dialect)
        if measure.agg == "avg":
            # the exact sum over the count, so that it is the sum's average on every
            # engine: AVG of doubles drifts in the last digits, and differently on each
            # (2833.96 over 104 orders: ...385 exactly, ...367 on DuckDB, ...33 on a jsonb
            # PostgreSQL copy). A float first: PostgreSQL's AVG of an integer is a numeric
            v = v.cast("float64")
            return safe_divide(exact_sum(v, where, self.dialect), v.count(where=where))
        if measure.agg == "min":
            return v.min(where=where)
        if measure.agg == "max":
            return v.max(where=where)
        assert measure.percentile is not None
        return v.quantile(measure.percentile, where=where)

    def component_table(self, keys: list[_Key]) -> ir.Table:
        """``(_period, _d*, _c*)``: the value of components of one shape for every period
        they have rows in (one scan, one aggregation for all of them)."""
        bounds = self._bounds(keys[0])
        lo = min(b[1] for b in bounds)
        hi = max(b[2] for b in bounds)
        plans = [self._plan(key) for key in keys]
        rows = self._rows(plans, lo, hi)
        dims = [f"_d{i}" for i in range(len(self.by))]
        shared = len(keys) > 1
        if not shared and keys[0].measure.agg == "count_distinct" and self._day_bounds(bounds):
            # one row per value and day is enough to count distinct values per period
            rows = rows.select("_v0", *dims, _local=rows._local.truncate("D")).distinct()
        outputs = [self.components[key] for key in keys]
        if self._aligned(bounds):
            assert self.grain is not None
            rows = rows.mutate(_src=rows._local.truncate(_TRUNCATE[self.grain]))
            grouped = rows.group_by(["_src", *dims]).aggregate(**{
                out: self._aggregation(k.measure, rows, j, shared)
                for j, (k, out) in enumerate(zip(keys, outputs, strict=True))})
            if all(period == lo for period, lo, _ in bounds):
                # no offset: each row's own period is the output period
                return grouped.select(_period=grouped._src, **{d: grouped[d] for d in dims},
                                      **{out: grouped[out] for out in outputs})
            spine = self._spine("periods", {"_p": [b[0] for b in bounds],
                                            "_s": [b[1] for b in bounds]})
            joined = grouped.join(spine, grouped._src == spine._s)
            return joined.select(_period=joined._p, **{d: joined[d] for d in dims},
                                 **{out: joined[out] for out in outputs})
        spine = self._spine("windows", {"_p": [b[0] for b in bounds],
                                        "_lo": [b[1] for b in bounds],
                                        "_hi": [b[2] for b in bounds]})
        joined = rows.join(spine, [rows._local >= spine._lo, rows._local < spine._hi])
        keep = {"_period": joined._p, **{d: joined[d] for d in dims}}
        keep.update({c: joined[c] for c in rows.columns if c[:2] in ("_v", "_f")})
        joined = joined.select(**keep)
        return joined.group_by(["_period", *dims]).aggregate(**{
            out: self._aggregation(k.measure, joined, j, shared)
            for j, (k, out) in enumerate(zip(keys, outputs, strict=True))})

    def _groups(self) -> list[list[_Key]]:
        """Components that can share one scan: same time shape, same dimensions.

        A conversion's converted rows are always alone (they need a semi-join).
        """
        groups: dict[object, list[_Key]] = {}
        for key in self.components:
            shape: object = (key.offsets, key.window, key.grain_to_date, key.all_time)
            if key.converted is not None:
                shape = ("converted", key)
            else:
                dims = tuple((d.kind, d.path, d.type) for d in self._plan(key).dims)
                shape = (shape, dims)
            groups.setdefault(shape, []).append(key)
        return list(groups.values())

    def _day_bounds(self, bounds: list[tuple[datetime, datetime, datetime]]) -> bool:
        def on_day(moment: datetime) -> bool:
            return moment == floor_to(moment, "day")

        return self.grain not in (None, "hour") and all(
            on_day(lo) and on_day(hi) for _, lo, hi in bounds)

    # ---------------------------------------------------------------- the whole query

    def build(self) -> CompiledQuery:
        values: dict[str, Value] = {}
        traces: dict[str, _Trace] = {}
        for name in self.query.metrics:
            trace = _Trace()
            values[name] = self.metric_value(name, (), (), trace)
            traces[name] = trace
        dims = [f"_d{i}" for i in range(len(self.by))]
        tables = [self.component_table(group) for group in self._groups()]
        frame = self._spine("frame", {"_period": self.periods})
        if dims:
            combos = ibis.union(*[t.select(*dims) for t in tables],
                                distinct=True).distinct()  # one table: union is a no-op
            frame = frame.cross_join(combos)
        for table in tables:
            values_ = [c for c in table.columns if c.startswith("_c")]
            renamed = table.select(_jp=table._period, **{f"_j{d}": table[d] for d in dims},
                                   **{c: table[c] for c in values_})
            predicates = [frame._period == renamed._jp]
            predicates += [frame[d].identical_to(renamed[f"_j{d}"]) for d in dims]
            joined = frame.left_join(renamed, predicates)
            frame = joined.select(*[joined[c] for c in frame.columns],
                                  *[joined[c] for c in values_])
        names: dict[str, str] = {}
        time_column = self.grain
        out: dict[str, ir.Value] = {}
        if time_column:
            out["_period"] = frame._period
            names["_period"] = time_column
        for i, ref in enumerate(self.by):
            out[f"_d{i}"] = frame[f"_d{i}"]
            names[f"_d{i}"] = ref.text
        for i, name in enumerate(self.query.metrics):
            out[f"_m{i}"] = values[name](frame)
            names[f"_m{i}"] = name
        if len(set(names.values())) != len(names):
            raise QueryError("a metric and a dimension share a name; rename one in the query")
        result = frame.select(**out)
        result = self._order(result, names)
        if self.query.limit is not None:
            if self.query.limit < 0:
                raise QueryError(f"limit must be a positive number, got {self.query.limit}")
            result = result.limit(self.query.limit)
        lineage = {name: self._lineage(name, traces[name]) for name in self.query.metrics}
        return CompiledQuery(result, names, time_column, self.grain, self.range, lineage)

    def _order(self, result: ir.Table, names: dict[str, str]) -> ir.Table:
        by_name = {v: k for k, v in names.items()}
        keys: list[ir.Value] = []
        for item in self.query.order_by:
            desc = item.startswith("-")
            name = item[1:] if desc else item
            column = by_name.get(name)
            if column is None:
                raise QueryError(f"order_by {name!r}: not a column of the result "
                                 f"({', '.join(names.values())})")
            keys.append(result[column].desc() if desc else result[column].asc())
        defaults = [c for c in names if not c.startswith("_m")]
        keys += [result[c].asc() for c in defaults]
        return result.order_by(keys) if keys else result

    def _lineage(self, name: str, trace: _Trace) -> Lineage:
        metric = self.metrics[name]
        return Lineage(
            metric=metric.name, type=metric.type, formula=formula(metric),
            events=tuple(sorted(trace.events)) or ("*",),
            fields=tuple(sorted(trace.fields)), filters=tuple(trace.filters),
            segments=tuple(self.query.segments), inputs=tuple(dict.fromkeys(trace.inputs)),
            defined_at=metric.where("type") if metric.file else "",
        )


def formula(metric: Metric) -> str:
    """How a metric is computed, in words."""
    if metric.type in ("simple", "cumulative") and metric.measure is not None:
        text = metric.measure.describe()
        if metric.type == "cumulative":
            span = (f"over the trailing {metric.window}" if metric.window else
                    f"{metric.grain_to_date} to date" if metric.grain_to_date else "all time")
            text = f"{text}, {span}"
        return text
    if metric.type == "ratio":
        def side(value: str | Measure | None) -> str:
            return value.describe() if isinstance(value, Measure) else str(value)

        return f"({side(metric.numerator)}) / ({side(metric.denominator)})"
    if metric.type == "conversion" and metric.conversion is not None:
        conv = metric.conversion
        return (f"{conv.base.describe()} converting to {conv.conversion.describe()} by the "
                f"same {conv.entity} within {conv.window} ({conv.calculation})")
    return metric.expr or ""


def _arith(node: Node, values: dict[str, Value], frame: ir.Table) -> ir.Value:
    if isinstance(node, Ref):
        return values[node.text](frame)
    if isinstance(node, Lit):
        return ibis.literal(node.value)
    if isinstance(node, Neg):
        return -_arith(node.item, values, frame)
    assert isinstance(node, Arith)
    left, right = _arith(node.left, values, frame), _arith(node.right, values, frame)
    if node.op == "/":
        return safe_divide(left, right)
    if node.op == "+":
        return left + right
    if node.op == "-":
        return left - right
    return left * right


def compile_query(query: MetricQuery, *, metrics: dict[str, Metric], resolver: Resolver,
                  table: ir.Table, dialect: str, tz: str, trange: TimeRange) -> CompiledQuery:
    """One Ibis expression computing ``query`` over ``table`` (the events table)."""
    if not query.metrics:
        raise QueryError("name at least one metric")
    if query.grain is not None and query.grain not in _TRUNCATE:
        raise QueryError(f"unknown grain {query.grain!r}; expected hour, day, week or month"
                         f"{did_you_mean(query.grain, _TRUNCATE)}")
    for name in query.by:
        try:
            parse_ref(name)
        except ValueError as exc:
            raise QueryError(f"--by {name}: {exc}") from None
    return _Compiler(metrics=metrics, resolver=resolver, table=table, dialect=dialect, tz=tz,
                     query=query, trange=trange).build()
