"""Typed per-event views: ``evt_add_to_cart`` with each property as a typed column.

The ``events`` table keeps properties as JSON, which every event shares; analysts want
``SELECT price FROM evt_add_to_cart``. ``refresh_typed_views(con, catalog)`` creates one
view per cataloged track event with the envelope columns and one column per property
(and ``evt_identify``, ``evt_group`` with one column per trait of the cataloged calls),
extracted from the JSON and cast with ``TRY_CAST`` (a value of the wrong type reads as
NULL instead of failing the whole query). Views of events that left the catalog are
dropped. Call it at start-up and whenever the catalog changes; it is cheap and idempotent
(views hold no data).

A view shows the rows of every version of its event, so its columns are the properties of
every version: the latest version's first, then those only older versions have. A column
takes the type its versions agree on; where they differ it takes one that holds every
version's values unchanged (``integer`` and ``number``: DOUBLE; anything else: VARCHAR,
the JSON text), so that no row reads other than it was validated.

A ``number`` is DOUBLE, the one type that reads every number the collector accepts (1e300
and 19.99 alike; a DECIMAL would refuse or round some); its exact sum is
``sum(price::DECIMAL(38, 2))`` with the values' decimals (docs/catalog.md).

A number, boolean or timestamp property that the privacy stage may hash (pseudonymous;
personal unless ``handling: keep`` or ``drop``; sensitive with ``handling: hash`` or
``truncate``) is stored as its pseudonym, ``h:`` and hex text, so its column is VARCHAR:
cast to its type, every row would read NULL.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from nerve.catalog import Catalog, EventSpec, PropertySpec

__all__ = ["VIEW_PREFIX", "json_path", "refresh_typed_views", "typed_view_specs", "typed_view_sql",
           "view_name"]

VIEW_PREFIX = "evt_"

#: envelope columns every typed view starts with
_ENVELOPE = ("message_id", "event", "user_id", "anonymous_id", "timestamp",
             "original_timestamp", "sent_at", "received_at", "source", "historical",
             "schema_version", "context")

_SQL_TYPES = {"string": "VARCHAR", "integer": "BIGINT", "number": "DOUBLE",
              "boolean": "BOOLEAN", "timestamp": "TIMESTAMPTZ"}


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def view_name(event: str) -> str:
    """``evt_`` + the event name made a plain identifier: ``Order Completed`` ->
    ``evt_order_completed``."""
    return VIEW_PREFIX + re.sub(r"\W+", "_", event).strip("_").lower()


def json_path(*names: str) -> str:
    """A SQL literal of the JSON path to a (nested) key, each name quoted so that names
    with dots or spaces address one key: ``'$."address"."street"'``."""
    return _literal("$" + "".join('."' + n.replace('"', '\\"') + '"' for n in names))


#: the calls besides track that get a view, by the column their payload is in
_TRAIT_CALLS = ("identify", "group")


def _may_be_hashed(prop: PropertySpec) -> bool:
    """Whether nerve.pipeline.privacy may store ``prop``'s value as a pseudonym (text),
    as far as the catalog tells: a personal value without a handling is hashed by the
    default ``[privacy] personal`` policy."""
    if prop.pii == "pseudonymous":
        return True
    if prop.pii == "personal":
        return prop.handling not in ("keep", "drop")
    return prop.pii == "sensitive" and prop.handling in ("hash", "truncate")


def _column(prop: PropertySpec, payload: str) -> str:
    path = json_path(prop.name)
    if prop.type in ("array", "object"):
        return f"json_extract({payload}, {path})"
    text = f"json_extract_string({payload}, {path})"
    if prop.type != "string" and _may_be_hashed(prop):
        return text  # the pseudonym, h:..., which no cast to the type would read
    if prop.type == "integer":
        # TRY_CAST('12.5' AS BIGINT) rounds to 13: a fraction is not a whole number, NULL
        return (f"CASE WHEN TRY_CAST({text} AS DOUBLE) % 1 = 0 "
                f"THEN TRY_CAST({text} AS BIGINT) END")
    return f"TRY_CAST({text} AS {_SQL_TYPES[prop.type]})"


def _merged(versions: list[EventSpec]) -> EventSpec:
    """The latest of ``versions`` (oldest first) with the properties of all of them: the
    latest's, then those of older versions only; a property whose versions disagree on
    its type gets one holding every version's values (see the module's docstring)."""
    latest = versions[-1]
    by_name: dict[str, list[PropertySpec]] = {}
    for spec in reversed(versions):  # newest first: the latest's order, then older ones
        for prop in spec.properties:
            by_name.setdefault(prop.name, []).append(prop)
    properties = []
    for props in by_name.values():
        types = {p.type for p in props}
        newest = props[0]
        if len(types) > 1:
            newest = replace(newest, type="number" if types == {"integer", "number"}
                             else "string", items=None, properties=())
        properties.append(newest)
    return replace(latest, properties=tuple(properties))


def typed_view_sql(spec: EventSpec, *, temp: bool = False) -> str:
    """The ``CREATE OR REPLACE VIEW`` statement of one track event (or the identify or
    group call: its traits); ``temp``: a view of this connection only, over its own
    temporary ``events`` (a reader's masked one)."""
    payload = "traits" if spec.type in _TRAIT_CALLS else "properties"
    columns = [_quote(c) for c in _ENVELOPE]
    taken = set(_ENVELOPE)
    for prop in spec.properties:
        # a property named like an envelope column (``timestamp``) gets a prefix
        alias = prop.name if prop.name not in taken else f"prop_{prop.name}"
        taken.add(alias)
        columns.append(f"{_column(prop, payload)} AS {_quote(alias)}")
    body = ",\n  ".join(columns)
    kind, source = ("TEMP VIEW", "temp.events") if temp else ("VIEW", "events")
    where = (f"type = {_literal(spec.type)}" if spec.type in _TRAIT_CALLS
             else f"type = 'track' AND event = {_literal(spec.name)}")
    return (f"CREATE OR REPLACE {kind} {_quote(view_name(spec.name))} AS\n"
            f"SELECT\n  {body}\nFROM {source}\nWHERE {where}")


def typed_view_specs(catalog: Catalog) -> dict[str, EventSpec]:
    """View name -> the track event it shows: its latest version, with the properties of
    all its versions (``_merged``); ``evt_identify`` and ``evt_group`` show those calls'
    traits. Two events whose names map to one view name (``Add To Cart`` and
    ``add_to_cart``) keep the first, by name; a track event named ``identify`` keeps its
    view, and the identify call gets none."""
    wanted: dict[str, EventSpec] = {}
    for spec in catalog:
        if spec.type == "track" and view_name(spec.name) not in wanted:
            versions = [v for v in catalog.versions(spec.name) if v.type == "track"]
            wanted[view_name(spec.name)] = _merged(versions)
    for call in _TRAIT_CALLS:
        traits = catalog.get(call)
        if traits is not None and traits.type == call and view_name(call) not in wanted:
            wanted[view_name(call)] = _merged(catalog.versions(call))
    return wanted


def refresh_typed_views(con: Any, catalog: Catalog) -> list[str]:
    """Create or replace ``evt_<name>`` for every track event; drop views of removed ones.

    ``con`` is a DuckDB connection (or cursor) on the warehouse holding ``events``.
    Returns the names of the views that now exist, sorted. Two events whose names map to
    the same view name (``Add To Cart`` and ``add_to_cart``) keep the first, by name.

    >>> import duckdb
    >>> from nerve.catalog import Version
    >>> con = duckdb.connect()
    >>> _ = con.execute("CREATE TABLE events (message_id VARCHAR, type VARCHAR, "
    ...     "event VARCHAR, user_id VARCHAR, anonymous_id VARCHAR, timestamp TIMESTAMPTZ, "
    ...     "original_timestamp TIMESTAMPTZ, sent_at TIMESTAMPTZ, received_at TIMESTAMPTZ, "
    ...     "source VARCHAR, historical BOOLEAN, schema_version VARCHAR, context JSON, "
    ...     "properties JSON)")
    >>> refresh_typed_views(con, Catalog.from_specs([EventSpec("signup", Version(1))]))
    ['evt_signup']
    """
    wanted = typed_view_specs(catalog)
    existing = {row[0] for row in con.execute(
        "SELECT view_name FROM duckdb_views() WHERE NOT internal "
        "AND schema_name = current_schema() AND starts_with(view_name, ?)",
        [VIEW_PREFIX]).fetchall()}
    con.execute("BEGIN TRANSACTION")
    try:
        for name in sorted(existing - set(wanted)):
            con.execute(f"DROP VIEW IF EXISTS {_quote(name)}")
        for spec in wanted.values():
            con.execute(typed_view_sql(spec))
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return sorted(wanted)
