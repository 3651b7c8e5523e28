"""Reading events for metrics: names resolved to columns, traits as of each event, filters.

``EventReader`` is what the compiler (and funnels, explain, experiments) use to turn
references such as ``user.age_group`` or ``context.os.name`` and filter expressions into
Ibis expressions over the warehouse's ``events`` table, on any engine.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import ibis
import ibis.expr.types as ir

from nerve.errors import QueryError
from nerve.semantic._engines import json_field
from nerve.semantic._expr import (
    And,
    Cmp,
    InList,
    IsNull,
    Like,
    Lit,
    Node,
    Not,
    Or,
    Ref,
    refs,
    type_problems,
)
from nerve.semantic._model import ANY_EVENT, MEASURED_TYPES
from nerve.semantic._resolve import Resolved, ResolveError, Resolver
from nerve.warehouse import one_of

__all__ = ["EventReader", "ValueOf"]

ValueOf = Callable[[Resolved], ir.Value]


class EventReader:
    """Resolves names and reads event rows from one events table on one engine."""

    def __init__(self, resolver: Resolver, table: ir.Table, dialect: str) -> None:
        self.resolver = resolver
        self.table = table
        self.dialect = dialect

    def resolve(self, ref: Ref, events: tuple[str, ...], *, segments: bool = False,
                context: str) -> Resolved:
        """What ``ref`` means on ``events``; QueryError prefixed with ``context`` if nothing."""
        try:
            return self.resolver.resolve(ref, events, allow_segments=segments)
        except ResolveError as exc:
            raise QueryError(f"{context}: {exc}") from None

    def read(self, events: tuple[str, ...], lo: datetime, hi: datetime,
             needed: list[Resolved]) -> tuple[ir.Table, ValueOf]:
        """Event rows in ``[lo, hi)`` (UTC) with the trait columns that ``needed`` uses."""
        t = self.table
        t = t.filter(t.timestamp >= ibis.literal(lo), t.timestamp < ibis.literal(hi))
        if events == (ANY_EVENT,):
            t = t.filter(one_of(t.type, list(MEASURED_TYPES)))
        else:
            t = t.filter(t.type == "track", one_of(t.event, list(events)))
        traits: dict[tuple[str, ...], str] = {}
        for item in needed:
            if item.kind == "trait" and item.path not in traits:
                traits[item.path] = f"_t{len(traits)}"
                t = self._join_trait(t, item, traits[item.path])

        def value(item: Resolved) -> ir.Value:
            if item.kind == "user":
                return ibis.coalesce(t.user_id, t.anonymous_id)
            if item.kind == "trait":
                return t[traits[item.path]]
            if item.kind == "context":
                return json_field(t.context, item.path, item.type, self.dialect)
            if item.kind == "property":
                return json_field(t.properties, item.path, item.type, self.dialect)
            if item.kind == "column":
                return t[item.path[0]]
            raise QueryError(f"{item.text!r} is a segment; use it in a filter")

        return t, value

    def _join_trait(self, t: ir.Table, item: Resolved, column: str) -> ir.Table:
        """Add the trait's value as of each event: the latest identify at or before it."""
        ident = self.table.filter(self.table.type == "identify")
        ident = ident.select(
            _e=ibis.coalesce(ident.user_id, ident.anonymous_id), _ts=ident.timestamp,
            _mid=ident.message_id,
            _v=json_field(ident.traits, item.path, item.type, self.dialect),
        )
        ident = ident.filter(ident._v.notnull())
        # each identify holds until the next one that sets this trait: [_ts, _to)
        ident = ident.mutate(_to=ident._ts.lead().over(
            ibis.window(group_by=ident._e, order_by=[ident._ts, ident._mid])))
        entity = ibis.coalesce(t.user_id, t.anonymous_id)
        far = ibis.literal(datetime(2999, 12, 31, tzinfo=UTC))
        joined = t.left_join(ident, [
            entity == ident._e,
            t.timestamp >= ident._ts,
            t.timestamp < ibis.coalesce(ident._to, far),
        ])
        return joined.select(*[joined[c] for c in t.columns], **{column: joined._v})

    def condition(self, node: Node, events: tuple[str, ...],
                   value: ValueOf, origin: str) -> ir.BooleanValue:
        """A parsed filter as an Ibis condition; names read through ``value``.

        Literals are checked against the names' catalog types first (QueryError).
        """

        def operand(item: Node) -> ir.Value:
            if isinstance(item, Lit):
                return ibis.literal(item.value)
            assert isinstance(item, Ref)
            resolved = self.resolve(item, events, segments=True, context=origin)
            if resolved.kind == "segment":
                assert resolved.condition is not None
                return walk(resolved.condition)
            return value(resolved)

        def walk(item: Node) -> ir.BooleanValue:
            if isinstance(item, And):
                result = walk(item.items[0])
                for sub in item.items[1:]:
                    result = result & walk(sub)
                return result
            if isinstance(item, Or):
                result = walk(item.items[0])
                for sub in item.items[1:]:
                    result = result | walk(sub)
                return result
            if isinstance(item, Not):
                return ~walk(item.item)
            if isinstance(item, Cmp):
                left, right = operand(item.left), operand(item.right)
                ops: dict[str, Callable[[ir.Value, ir.Value], ir.BooleanValue]] = {
                    "=": lambda a, b: a == b, "!=": lambda a, b: a != b,
                    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
                    ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
                }
                return ops[item.op](left, right)
            if isinstance(item, InList):
                result = operand(item.expr).isin([v.value for v in item.values])
                return ~result if item.negate else result
            if isinstance(item, IsNull):
                target = operand(item.expr)
                return target.notnull() if item.negate else target.isnull()
            if isinstance(item, Like):
                result = operand(item.expr).like(item.pattern)
                return ~result if item.negate else result
            if isinstance(item, Ref):
                result = operand(item)
                return result if result.type().is_boolean() else result.notnull()
            raise QueryError(f"{origin}: a literal alone is not a condition")

        problems = type_problems(node, self.resolver.type_of(events))
        if problems:
            raise QueryError(f"{origin}: {'; '.join(problems)}")
        return walk(node)

    def expand(self, node: Node, events: tuple[str, ...], origin: str) -> list[Resolved]:
        """Every resolved name a filter reads, segments expanded."""
        found = []
        for ref in refs(node):
            item = self.resolve(ref, events, segments=True, context=origin)
            if item.kind == "segment":
                assert item.condition is not None
                found.extend(self.expand(item.condition, events, origin))
            else:
                found.append(item)
        return found

    # ---------------------------------------------------------------- aggregation
