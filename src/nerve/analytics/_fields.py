"""Fields of an event row as Ibis expressions: the seam to the semantic layer.

A field name is a property (``platform``, ``properties.platform``), a path into the
``context`` or ``traits`` JSON (``context.os.name``), or an envelope column (``source``,
``user_id``). Values come back as text; filters cast to numbers where they compare
numbers. This module is the only place that reads JSON, so that it can be swapped for the
semantic layer's dimension resolution (as-of identify traits) without touching the rest.
Names are checked against the catalog with the semantic layer's resolver
(``check_declared``), so a filter a metric would refuse is refused here too.

JSON text is read with each engine's builtin function because Ibis' own JSON unwrapping
is not portable (on Spark it runs Python UDFs):

=========  ================================================
DuckDB     ``json_extract_string(doc, '$.a.b')``
Postgres   ``json_extract_path_text(doc::json, 'a', 'b')``
Spark      ``get_json_object(doc, '$.a.b')``
=========  ================================================
"""

from __future__ import annotations

from collections.abc import Iterable

import ibis.expr.datatypes as dt
import ibis.expr.types as ir

from nerve.analytics._spec import Filter
from nerve.catalog import Catalog
from nerve.errors import Location, QueryError
from nerve.semantic._engines import json_text
from nerve.semantic._expr import Ref
from nerve.semantic._model import ANY_EVENT
from nerve.semantic._resolve import IDENTIFY, ResolveError, Resolver

__all__ = ["check_declared", "dialect_of", "entity", "field_source", "field_text",
           "filter_expr", "filters_expr"]

_JSON_COLUMNS = ("properties", "context", "traits")


def dialect_of(table: ir.Table) -> str:
    """``duckdb``, ``postgres`` or ``pyspark``: the engine a table lives on."""
    try:
        name = str(table._find_backend().name).lower()
    except Exception:  # noqa: BLE001 - an unbound table compiles as DuckDB
        return "duckdb"
    return {"postgresql": "postgres", "spark": "pyspark"}.get(name, name)


def entity(table: ir.Table) -> ir.StringValue:
    """Who did it: the user id, else the anonymous id."""
    return table.user_id.coalesce(table.anonymous_id)


#: the semantic layer's name for where each JSON column's values live
_KINDS = {"properties": "property", "context": "context", "traits": "trait"}
_COLUMN_OF = {kind: column for column, kind in _KINDS.items()}
#: the semantic layer's reference to a property or a trait (the catalog declares both)
_AS_REF = {"property": "properties", "trait": "user"}


def field_source(name: str, columns: Iterable[str]) -> tuple[str, tuple[str, ...]]:
    """Where field ``name`` of a row with ``columns`` lives, named as the semantic layer
    names it: ``("column", (name,))``, or ``"property"``, ``"context"`` or ``"trait"``
    and the path in that JSON column (what nerve.governance asks the reader's view).

    >>> field_source("context.ip", ["user_id"]), field_source("user_id", ["user_id"])
    (('context', ('ip',)), ('column', ('user_id',)))
    """
    if not name or name.startswith(".") or name.endswith("."):
        raise QueryError(f"field {name!r}: expected a property name or a path such as "
                         "context.os.name")
    head, _, rest = name.partition(".")
    if head in _JSON_COLUMNS and rest:
        return _KINDS[head], tuple(rest.split("."))
    if "." not in name and name in columns and name not in _JSON_COLUMNS:
        return "column", (name,)
    return "property", tuple(name.split("."))


def field_text(table: ir.Table, name: str) -> ir.StringValue:
    """The value of field ``name`` on each row, as text (null when absent)."""
    kind, path = field_source(name, table.columns)
    if kind == "column":
        return table[name].cast(dt.string)
    return json_text(table[_COLUMN_OF[kind]], path, dialect_of(table))


def filter_expr(table: ir.Table, flt: Filter) -> ir.BooleanValue:
    """One filter as a boolean expression (false, not null, when the field is absent)."""
    text = field_text(table, flt.field)
    value = flt.value
    expr: ir.BooleanValue
    if isinstance(value, bool):
        target = "true" if value else "false"
        expr = text == target if flt.op == "=" else text != target
    elif isinstance(value, int | float):
        number = text.cast(dt.float64)
        ops = {"=": number.__eq__, "!=": number.__ne__, ">": number.__gt__,
               ">=": number.__ge__, "<": number.__lt__, "<=": number.__le__}
        expr = ops[flt.op](float(value))
    else:
        expr = text == str(value) if flt.op == "=" else text != str(value)
    return expr.fill_null(False)


def filters_expr(table: ir.Table, event: str, filters: tuple[Filter, ...]) -> ir.BooleanValue:
    """Rows of the track event ``event`` that pass every filter."""
    expr: ir.BooleanValue = table.event == event
    for flt in filters:
        expr = expr & filter_expr(table, flt)
    return expr


def check_declared(catalog: Catalog | None, event: str | None,
                   fields: Iterable[tuple[str, str]], columns: Iterable[str]) -> None:
    """Raise QueryError when a field is a property or a trait the catalog does not declare
    on ``event`` (on any track event when None): it would match no row and count 0.

    ``fields`` are ``(where, name)`` pairs, ``where`` naming the request's part for the
    message (``step 2 (purchase_complete) filter plan=pro``). The semantic layer's
    resolver decides, so a field is refused here exactly where a metric's filter on it
    is: a property on the event's entry, a trait (``traits.plan``) on ``identify``'s.
    Context paths and envelope columns are not in the catalog, and an event the catalog
    lacks is not checked (the CLI warns about it). A declared field that no row has yet
    is a real zero, and passes.
    """
    if catalog is None or (event is not None and event not in catalog):
        return
    resolver = Resolver(catalog, {}, {}, {})
    columns = list(columns)
    for where, name in fields:
        kind, path = field_source(name, columns)
        if kind not in _AS_REF:
            continue
        try:
            resolver.resolve(Ref((_AS_REF[kind], *path)), (event or ANY_EVENT,))
        except ResolveError as exc:
            spec = catalog.get(IDENTIFY if kind == "trait" else event or "")
            home = (f"in {Location(spec.file, spec.lines.get('properties'))}"
                    if spec is not None and spec.file else "in the catalog (events/)")
            raise QueryError(f"{where}: {exc}, so it would match no event and count 0; fix "
                             f"the name, or declare the {kind} {home} if the event sends "
                             "it") from None
