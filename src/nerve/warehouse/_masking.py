"""The warehouse as a reader sees it: personal values masked, everything else as stored.

A reader (``[[readers]]`` with ``role = "reader"``, docs/privacy.md) reads through
``MaskedWarehouse``. Each of its connections gets temporary views named like the
tables they hide, so every query, Ibis expression and analysis runs unchanged on them:

- ``events`` and ``quarantine``: ``user_id``, ``anonymous_id`` and ``previous_id``, the
  catalog's ``personal`` and ``sensitive`` properties and traits (every version's, in
  objects and in each item of an array too), and
  ``context.ip``, ``context.device.id``, ``advertisingId`` and ``name``, and
  ``context.traits`` are replaced by ``m:`` + a keyed hash (values the catalog types other
  than string are removed: a typed read of them gives NULL, as is a precise
  ``context.location``); a page's (or a screen's) ``url`` and
  ``referrer`` (and ``context.referrer``'s ``url`` and ``link``) lose their query string
  and fragment, and ``search`` is removed; the
  quarantine's violation messages about those values are withheld (their path, rule and
  catalog file and line stay); values the catalog does not declare (extra properties,
  the quarantine's uncataloged events, traits identify does not declare, in ``traits``
  and ``context.traits``) are masked too (``_undeclared``);
- ``evt_<event>``: the typed views, over the masked ``events``.

The hash is keyed with a key derived from the workspace secret, so equal values stay
equal: counting distinct users, funnels, retention and experiments give the admin's
figures, while no value can be read back or tested against a guess. The key is data, in a
one-row temp table of the reader's connection that the views join (``KEY_TABLE``), never
in their text; a reader's SQL may name only these views and the tables that hold no
personal data (``check_reader_query``), unqualified, and no table function that lists the
catalog.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa
from sqlglot import exp

from nerve.errors import QueryError
from nerve.warehouse._readonly import check_read_only
from nerve.warehouse._schema import quote
from nerve.warehouse._typed_views import (
    VIEW_PREFIX,
    json_path,
    typed_view_specs,
    typed_view_sql,
)
from nerve.warehouse._undeclared import (
    CONTEXT,
    FUNCTION_PREFIX,
    context_may_hold,
    declared_trees,
    fingerprint,
    is_declared,
    mask_undeclared,
    may_hold,
    register,
    strict_specs,
)
from nerve.warehouse._warehouse import IbisReads

if TYPE_CHECKING:
    from nerve.catalog import Catalog, PropertySpec
    from nerve.warehouse._warehouse import Warehouse

__all__ = [
    "MASKED_CLASSES",
    "MASKED_ONCE",
    "MASK_PREFIX",
    "OPEN_TABLES",
    "MaskedFields",
    "MaskedWarehouse",
    "check_reader_query",
    "mask_key",
    "masking_sql",
]

MASK_PREFIX = "m:"
#: the one-row temp table of a reader's connection that holds the masking key, and its
#: column: the views join it, so their text (which DuckDB shows in several ways: its
#: ``duckdb_views()``, ``pg_get_viewdef()``, a bound plan) holds no key. A reader's SQL
#: may not name it (``check_reader_query``)
KEY_TABLE = f"{FUNCTION_PREFIX}mask_key"
KEY_COLUMN = f"{FUNCTION_PREFIX}key"
#: PII classes whose values a reader sees masked (``pseudonymous`` ones are stored hashed)
MASKED_CLASSES = frozenset({"personal", "sensitive"})
#: tables without personal data, which readers see as stored
OPEN_TABLES = ("loads", "log_offsets", "check_results", "erasures")
#: table functions a reader may use: they make rows and read nothing
_ROW_FUNCTIONS = (exp.GenerateSeries, exp.Unnest)
#: scalar functions a reader may not call: the server's settings name its paths (the
#: warehouse's, in ``temp_directory``), which are none of a reader's business
_SERVER_FUNCTIONS = frozenset({"current_setting"})
#: scalar functions a reader may not call: they show the masked views' text, which held
#: the masking key before the key moved to ``KEY_TABLE`` (with it a reader hashed guessed
#: e-mails, birth dates or user ids and found whose masked rows they were); refused still,
#: in depth. ``json_serialize_plan`` binds the query it is given, and its plan holds the
#: views' expressions; DuckDB's ``pg_get_viewdef`` macro reads ``duckdb_views()`` inside,
#: where the query's table names cannot show it
_VIEW_TEXT_FUNCTIONS = frozenset({"json_serialize_plan", "pg_get_viewdef"})
_IDENTIFIERS = ("user_id", "anonymous_id", "previous_id")
_HASH, _DROP, _URL = "hash", "drop", "url"
#: traits the Segment spec reserves that name or locate a person
_PERSONAL_TRAITS = ("address", "age", "avatar", "birthday", "email", "firstName", "gender",
                    "lastName", "name", "phone", "username")
#: a page's address keeps its path: query strings and fragments carry e-mails, reset and
#: access tokens, and campaign parameters are in ``context.campaign`` anyway
_PAGE: dict[str, Any] = {"url": _URL, "referrer": _URL, "search": _DROP}
#: context keys masked whatever the catalog says: the IP (even truncated), device ids and
#: the device's given name ("Ana's iPhone"), a precise location, the page's query string
_CONTEXT: dict[str, Any] = {
    "ip": _HASH,
    "device": {"id": _HASH, "advertisingId": _HASH, "name": _HASH},
    "location": {"latitude": _DROP, "longitude": _DROP},
    "page": _PAGE,
    # the link that opened a mobile app (Segment's ``context.referrer``): a deep link's
    # query string carries tokens and addresses as a page's does
    "referrer": {"url": _URL, "link": _URL},
}

#: name -> ``_HASH`` (a text replaced by its mask), ``_DROP`` (any other value: removed,
#: so a typed read gives NULL rather than failing on a hash), ``_URL`` (an address cut
#: before its query string) or the keys nested in it
Tree = dict[str, Any]


def mask_key(secret: bytes) -> str:
    """The masking key: derived from the workspace secret, never the secret itself, so
    the collector's hashes cannot be recomputed from it."""
    return hmac.new(secret, b"nerve: reader masking", hashlib.sha256).hexdigest()


class _Items:
    """How each item of an array is masked: ``_HASH`` or ``_DROP`` (the items are
    personal themselves; ``_DROP`` removes the array), or the tree of an object item."""

    __slots__ = ("tree",)

    def __init__(self, tree: Any) -> None:
        self.tree = tree


def _tree(props: Iterable[PropertySpec], into: Tree) -> Tree:
    for prop in props:
        if prop.pii in MASKED_CLASSES:
            text = prop.type == "string" and into.get(prop.name) != _DROP
            into[prop.name] = _HASH if text else _DROP
        elif prop.properties and isinstance(into.get(prop.name, {}), dict):
            _tree(prop.properties, into.setdefault(prop.name, {}))
            if not into[prop.name]:
                del into[prop.name]
        elif prop.items is not None:
            items = _items(prop.items, into.get(prop.name))
            if items is not None:
                into[prop.name] = items
    return into


def _items(item: PropertySpec, known: Any) -> Any:
    """What an array's items need masked (None: nothing), merged with what another
    version of the event said (``known``)."""
    if known is not None and not isinstance(known, _Items):
        return known  # another version masks the whole value, or declares an object
    before = known.tree if known is not None else None
    if item.pii in MASKED_CLASSES:
        text = item.type == "string" and before in (None, _HASH)
        return _Items(_HASH if text else _DROP)
    if isinstance(before, str):
        return known
    if item.properties:
        tree = _tree(item.properties, dict(before or {}))
        return _Items(tree) if tree else known
    return known


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class _Sql:
    """SQL text of the masked columns. The key is not in it: a mask reads the
    ``KEY_COLUMN`` of the ``KEY_TABLE`` each view joins (one row, made per connection)."""

    def mask(self, value: str) -> str:
        # NULL stays NULL (sha256 of NULL is NULL)
        return f"({_literal(MASK_PREFIX)} || left(sha256({KEY_COLUMN} || {value}), 32))"

    def patch(self, column: str, tree: Tree, path: tuple[str, ...] = ()) -> str:
        """A JSON merge patch replacing the values ``tree`` names with their masks (a
        missing key gets a null, which a merge patch ignores)."""
        members = []
        for name, sub in tree.items():
            where = (*path, name)
            if sub == _DROP:
                value = "NULL"
            elif sub == _HASH:
                value = self.mask(f"json_extract_string({column}, {json_path(*where)})")
            elif sub == _URL:
                value = (f"regexp_replace(json_extract_string({column}, {json_path(*where)}), "
                         r"'[?#].*$', '')")
            elif isinstance(sub, _Items):
                value = self.items(column, where, sub.tree)
            else:
                value = (f"CASE WHEN json_type({column}, {json_path(*where)}) = 'OBJECT' "
                         f"THEN {self.patch(column, sub, where)} END")
            members += [_literal(name), value]
        return f"json_object({', '.join(members)})"

    def items(self, column: str, where: tuple[str, ...], tree: Any) -> str:
        """The array at ``where`` with each item masked (an item that is not an object
        where objects are declared stays as it is); NULL (the key removed) when it is
        not an array, or when its items are removed."""
        if tree == _DROP:
            return "NULL"
        item = f"_item{len(where)}"  # a lambda's name of its own at each depth
        if tree == _HASH:
            each = self.mask(f"json_extract_string({item}, '$')")
        else:
            each = (f"CASE WHEN json_type({item}) = 'OBJECT' THEN "
                    f"json_merge_patch({item}, {self.patch(item, tree)}) ELSE {item} END")
        path = json_path(*where)
        return (f"CASE WHEN json_type({column}, {path}) = 'ARRAY' THEN to_json(list_transform("
                f"CAST(json_extract({column}, {path}) AS JSON[]), {item} -> {each})) END")

    def patched(self, column: str, tree: Tree) -> str:
        return (f"CASE WHEN json_type({column}) = 'OBJECT' "
                f"THEN json_merge_patch({column}, {self.patch(column, tree)}) ELSE {column} END")


def _payload_trees(catalog: Catalog) -> dict[tuple[str, str | None], Tree]:
    """(call type, event name for track) -> the masked keys of its payload, over every
    version (rows stored under an older version keep its classes), and a page call's
    address."""
    trees: dict[tuple[str, str | None], Tree] = {}
    for latest in catalog:
        for spec in catalog.versions(latest.name):
            key = ("track", spec.name) if spec.type == "track" else (spec.type, None)
            tree = _tree(spec.properties, trees.get(key, {}))
            if tree:
                trees[key] = tree
    # a page call's own properties repeat its address (url, referrer, search); a screen
    # call's may hold a deep link (``shop://reset?token=...``)
    for type_ in ("page", "screen"):
        trees[(type_, None)] = {**_PAGE, **trees.get((type_, None), {})}
    return trees


def _properties(sql: _Sql, trees: dict[tuple[str, str | None], Tree]) -> str:
    """``properties`` masked by the spec of each row's call (track by event name, page and
    screen by type)."""
    branches = []
    for (type_, event), tree in sorted(trees.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
        if type_ not in ("track", "page", "screen"):
            continue
        condition = f"type = {_literal(type_)}" + (
            f" AND event = {_literal(event)}" if event is not None else "")
        branches.append(f"WHEN {condition} THEN {sql.patched('properties', tree)}")
    if not branches:
        return "properties"
    return f"CASE {' '.join(branches)} ELSE properties END"


def _traits(sql: _Sql, identify: Tree, group: Tree) -> str:
    """``traits``: a group call's by the group spec; any other call's are the user's
    (identify's own, or the ``context.traits`` the collector copies to every call)."""
    user = sql.patched("traits", identify) if identify else "traits"
    if not group:
        return user
    return f"CASE WHEN type = 'group' THEN {sql.patched('traits', group)} ELSE {user} END"


#: a violation's catalog file as the workspace names it (``events/signup.yaml``, as
#: ``nerve catalog lint`` does), not the server's absolute path, which is none of a
#: reader's business; a file outside an ``events`` folder by its name only
_CATALOG_FILE = (r"CASE WHEN regexp_matches(v->>'file', '(^|[/\\])events[/\\]') "
                 r"THEN regexp_replace(v->>'file', '^(.*[/\\])?(events[/\\])', '\2') "
                 r"ELSE regexp_replace(v->>'file', '^.*[/\\]', '') END")


#: how a validator's message goes on after the value it quotes -> what the rule expects
#: (as ``nerve.pipeline.guard`` words a withheld message in the collector)
_EXPECTS = {" is not of types ": "expected one of ", " is not of type ": "expected ",
            " is not one of ": "expected one of ", " does not match ": "expected to match ",
            " is not a ": "expected a ", " is less than the minimum of ": "expected at least ",
            " is greater than the maximum of ": "expected at most ",
            " is shorter than ": "expected no shorter than ",
            " is longer than ": "expected no longer than "}
_WITHHELD_TAIL = " (value withheld: personal data)"
#: the raw values a violation's path names (``$.properties.phone``, ``$.userId``)
_RAW = ("json_object('properties', properties, 'traits', traits, 'context', context, "
        "'userId', user_id, 'anonymousId', anonymous_id, 'previousId', previous_id, "
        "'user_id', user_id, 'anonymous_id', anonymous_id, 'previous_id', previous_id)")


def _expectation() -> str:
    """SQL: ``, expected integer`` from a violation ``v``'s message, the text after the
    validator's last phrase (the value comes first, the rule's side after it); empty when
    that text holds the raw value, or the message has no such phrase."""
    phrases = "|".join(_EXPECTS)
    found = f"regexp_extract(v->>'message', {_literal(f'^.*({phrases})(.*)$')}, {{}}, 's')"
    phrase, tail = found.format(1), found.format(2)
    words = " ".join(f"WHEN {_literal(k)} THEN {_literal(v)}" for k, v in _EXPECTS.items())
    shown = f"CASE WHEN {phrase} LIKE ' is not of type%' THEN replace({tail}, '\"', '') " \
            f"ELSE {tail} END"
    value = f"try(json_extract_string({_RAW}, v->>'path'))"
    return (f"CASE WHEN {phrase} = '' OR {value} IS NULL OR contains({tail}, {value}) "
            f"THEN '' ELSE concat(', ', CASE {phrase} {words} END, {shown}) END")


def _violations(masked_paths: list[str]) -> str:
    """Violation messages about a masked value withheld (they may quote it), saying what
    the rule expects (``expected integer``) when that does not quote the value either,
    and the catalog file of each as the workspace names it."""
    pattern = _literal("^(" + "|".join(masked_paths) + r")($|[.\[])")
    # a message the collector already withheld (its value hashed or dropped) says what
    # the rule expects without the value: it stays
    message = (f"CASE WHEN ends_with(v->>'message', {_literal(_WITHHELD_TAIL)}) "
               f"THEN v->>'message' ELSE concat(v->>'path', ': breaks the ', v->>'rule', "
               f"' rule', {_expectation()}, {_literal(_WITHHELD_TAIL)}) END")
    # the catalog's file and line are not personal: a reader still finds the rule broken
    withheld = (f"json_object('path', v->>'path', 'rule', v->>'rule', 'message', "
                f"{message}, 'file', {_CATALOG_FILE}, 'line', v->'line')")
    shown = (f"CASE WHEN v->>'file' IS NULL THEN v "
             f"ELSE json_merge_patch(v, json_object('file', {_CATALOG_FILE})) END")
    return (f"CASE WHEN json_type(violations) = 'ARRAY' THEN to_json(list_transform("
            f"CAST(violations AS JSON[]), v -> CASE WHEN regexp_matches("
            f"coalesce(v->>'path', ''), {pattern}) THEN {withheld} ELSE {shown} END)) "
            f"ELSE violations END")


def _regex_paths(root: str, tree: Tree) -> list[str]:
    paths = []
    for name, sub in tree.items():
        here = root + r"\." + re.escape(name)
        # an array with masked items: any violation in it (or of it) may quote them
        paths += _regex_paths(here, sub) if isinstance(sub, dict) else [here]
    return paths


def _identify_tree(catalog: Catalog, trees: dict[tuple[str, str | None], Tree]) -> Tree:
    """The user's traits a reader sees masked: identify's personal and sensitive ones,
    and the Segment spec's personal traits that identify does not declare."""
    declared = {p.name for spec in catalog.versions("identify") for p in spec.properties}
    return {**{t: _HASH for t in _PERSONAL_TRAITS if t not in declared},
            **trees.get(("identify", None), {})}


def _lookup(tree: Tree, path: tuple[str, ...]) -> str | None:
    """How the value at ``path`` is masked (a value inside a masked one is too); None
    when it is shown as stored, or only some of its keys are masked."""
    node: Any = tree
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
        if isinstance(node, str):
            return node
    return None


class MaskedFields:
    """Which values the reader's view masks, by where they live: what a filter needs to
    know, since a masked value no longer compares with the stored one (a removed
    ``user.age`` matches no ``age >= 65``, a hashed e-mail no address)."""

    #: how a value is masked: replaced by a keyed hash, removed, or cut (an address)
    HASH, DROP, URL = _HASH, _DROP, _URL

    def __init__(self, catalog: Catalog) -> None:
        self.trees = _payload_trees(catalog)
        self.identify = _identify_tree(catalog, self.trees)
        self.context: Tree = dict(_CONTEXT, traits=self.identify)
        self.declared = declared_trees(catalog, {("identify", None): _PERSONAL_TRAITS})
        self.strict = strict_specs(catalog)

    def how(self, kind: str, path: tuple[str, ...], events: Iterable[str] = ()) -> str | None:
        """``HASH``, ``DROP``, ``URL`` or None for a value of ``kind`` (as the semantic
        layer resolves names: ``user``, ``column``, ``trait``, ``context``, ``property``)
        at ``path``; a property is masked when it is on any of ``events`` (``*``: any)."""
        if kind == "user" or (kind == "column" and path and path[0] in _IDENTIFIERS):
            return _HASH
        if kind == "trait":
            return _lookup(self.identify, path) or self._undeclared(path, [("identify", None)])
        if kind == "context":
            found = _lookup(self.context, path)
            if found is None and len(path) > 1 and path[0] == "traits" \
                    and not is_declared(self.declared.get(("identify", None), {}), path[1:]):
                return _HASH  # an undeclared trait: masked on every row (``_undeclared``)
            return found
        if kind != "property":
            return None
        wanted = set(events)
        for (type_, event), tree in self.trees.items():
            if type_ == "track" and ("*" in wanted or event in wanted):
                found = _lookup(tree, path)
                if found is not None:
                    return found
        named: list[tuple[str, str | None]] = (
            [key for key in self.declared if key[0] == "track"] if "*" in wanted
            else [("track", event) for event in sorted(wanted)])
        return self._undeclared(path, named)

    def _undeclared(self, path: tuple[str, ...], keys: list[tuple[str, str | None]]
                    ) -> str | None:
        """``HASH`` for a value that none of ``keys``' specs declares, when one of them
        may hold such values (it allows extra properties, or the catalog has no spec):
        ``_undeclared`` masks it, whatever its type, by the mask of its text."""
        if any(is_declared(self.declared.get(key, {}), path) for key in keys):
            return None
        loose = any(not self.strict.get(key, False) for key in keys)
        return _HASH if loose else None


def _undeclared_sql(catalog: Catalog, function: str, table: str) -> dict[str, str]:
    """``properties``, ``traits`` and ``context.traits`` with their undeclared values
    masked by ``function`` (``_undeclared``), on the rows that may hold such values
    (every quarantined row); traits by identify's declarations (a group call's by the
    group spec's), ``context.traits`` by identify's on every row (nothing validates it)."""
    traits_of = "CASE WHEN type = 'group' THEN 'group' ELSE 'identify' END"
    masked = {
        "properties": f"CAST({function}(type, event, CAST(properties AS VARCHAR)) AS JSON)",
        "traits": f"CAST({function}({traits_of}, NULL, CAST(traits AS VARCHAR)) AS JSON)"}
    if table != "quarantine":
        masked = {column: f"CASE WHEN {may_hold(catalog, column)} THEN {value} "
                          f"ELSE {column} END" for column, value in masked.items()}
    held = context_may_hold(declared_trees(catalog, {("identify", None): _PERSONAL_TRAITS}))
    masked["context"] = (f"CASE WHEN {held} THEN CAST({function}({_literal(CONTEXT)}, NULL, "
                         "CAST(context AS VARCHAR)) AS JSON) ELSE context END")
    return masked


#: the checks' default key dimensions that read a trait (nerve.quality's
#: ``DEFAULT_DIMENSIONS``): ``country`` falls back to ``context.traits.country``
_TRAIT_DIMENSIONS = {"country": "country"}
_WITHHELD = ("the message is withheld: it quoted a value a reader's view masks (written "
             "before nerve withheld such values; the admin's view shows it)")


def _check_results(sql: _Sql, trees: dict[tuple[str, str | None], Tree], identify: Tree,
                   database: str) -> str:
    """The checks' results with the personal values older rows quote withheld: a
    disappeared value of a property the catalog classes personal or sensitive (its
    ``value`` dimension removed), and a default key dimension's value read from a masked
    trait (replaced by its mask). nerve withholds both since: these rows predate it."""
    paths = _regex_paths("context", dict(_CONTEXT, traits=identify))
    for tree in trees.values():
        paths += _regex_paths("(properties|traits)", tree)
    pattern = _literal("^(" + "|".join(paths) + r")($|\.)")
    value = (f"\"check\" = 'disappeared_values' AND json_exists(dimensions, '$.value') AND "
             f"regexp_matches(coalesce(dimensions->>'property', ''), {pattern})")
    traits = [name for name, trait in _TRAIT_DIMENSIONS.items()
              if _lookup(identify, (trait,)) is not None]
    quoted = " OR ".join([value, *(f"json_exists(dimensions, {json_path(name)})"
                                   for name in traits)])
    dimensions = f"CASE WHEN {value} THEN json_object('property', dimensions->>'property')"
    if traits:
        patch = ", ".join(f"{_literal(name)}, {sql.mask(f'(dimensions->>{json_path(name)})')}"
                          for name in traits)
        dimensions += f" WHEN {quoted} THEN json_merge_patch(dimensions, json_object({patch}))"
    # a result's name lists its dimensions (``volume:signup:country=PT``): made again
    name = ("concat_ws(':', \"check\", event, array_to_string(list_transform(list_sort("
            "json_keys(dimensions)), k -> k || '=' || json_extract_string(dimensions, "
            "'$.\"' || k || '\"')), ':'))")
    inner = (f"SELECT * EXCLUDE ({KEY_COLUMN}) REPLACE (CAST({dimensions} ELSE dimensions END "
             f"AS VARCHAR) AS dimensions), {quoted} AS _withheld FROM "
             f"{quote(database)}.main.check_results, {KEY_TABLE}")
    return (f"CREATE OR REPLACE TEMP VIEW check_results AS SELECT * EXCLUDE (_withheld) "
            f"REPLACE (CASE WHEN _withheld THEN {name} ELSE name END AS name, "
            f"CASE WHEN _withheld THEN {_literal(_WITHHELD)} ELSE message END AS message) "
            f"FROM ({inner}) AS check_results")


def masking_sql(catalog: Catalog, database: str, undeclared: str) -> dict[str, str]:
    """View name -> the statement creating it in a connection: the masked ``events`` and
    ``quarantine`` of ``database``, then each typed view over the masked ``events``.
    Each costs a bind of the masked table (~40 ms with 300 cataloged events that have
    personal properties), so a connection creates the views it reads only.
    ``undeclared``: the name of the connection's ``_undeclared`` function."""
    sql = _Sql()
    trees = _payload_trees(catalog)
    identify = _identify_tree(catalog, trees)
    context = dict(_CONTEXT, traits=identify)
    replaced = {name: sql.mask(name) for name in _IDENTIFIERS}
    replaced["properties"] = _properties(sql, trees)
    replaced["traits"] = _traits(sql, identify, trees.get(("group", None), {}))
    replaced["context"] = sql.patched("context", context)
    paths = [r"\$\.(userId|anonymousId|previousId|user_id|anonymous_id|previous_id)"]
    paths += _regex_paths(r"\$\.context", context)
    for tree in trees.values():
        paths += _regex_paths(r"\$\.(properties|traits)", tree)
    views = {}
    for table, extra in (("events", {}), ("quarantine", {"violations": _violations(paths)})):
        columns = ", ".join(f"{value} AS {name}" for name, value in {**replaced, **extra}.items())
        first = ", ".join(f"{value} AS {name}"
                          for name, value in _undeclared_sql(catalog, undeclared, table).items())
        # the undeclared values first: the catalog's masks then apply to what it declares
        views[table] = (f"CREATE OR REPLACE TEMP VIEW {table} AS SELECT * EXCLUDE ({KEY_COLUMN}) "
                        f"REPLACE ({columns}) FROM (SELECT * REPLACE ({first}) FROM "
                        f"{quote(database)}.main.{table}) AS {quote(table)}, {KEY_TABLE}")
    views["check_results"] = _check_results(sql, trees, identify, database)
    for name, spec in typed_view_specs(catalog).items():
        views[name] = typed_view_sql(spec, temp=True)
    return views


def _names(ctes: Iterable[exp.Expression], name: str) -> bool:
    return any(cte.alias_or_name.lower() == name for cte in ctes)


def _cte_in_scope(table: exp.Table) -> bool:
    """Whether ``table`` reads a CTE of the query around it, as DuckDB resolves the name:
    a WITH's names are seen by the query it belongs to (subqueries included) and, inside
    the WITH, by the CTEs defined after each one (a RECURSIVE one sees itself too).
    Anywhere else the same name reads the catalog: ``(WITH duckdb_views AS (...) ...)``
    in one subquery and ``duckdb_views`` in another is DuckDB's own view, whose text holds
    the masking key."""
    name = table.name.lower()
    child: exp.Expression = table
    node = table.parent
    while node is not None:
        if isinstance(node, exp.With):
            if isinstance(child, exp.CTE):
                ctes = node.expressions
                index = next(i for i, cte in enumerate(ctes) if cte is child)
                seen = ctes[:index + 1] if node.args.get("recursive") else ctes[:index]
                if _names(seen, name):
                    return True
        else:
            # sqlglot names the argument ``with_`` from 28 on, ``with`` before
            with_ = node.args.get("with_", node.args.get("with"))
            if (isinstance(with_, exp.With) and with_ is not child
                    and _names(with_.expressions, name)):
                return True
        child, node = node, node.parent
    return False


def check_reader_query(sql: str, tables: Iterable[str]) -> set[str]:
    """``check_read_only``, and the query names only ``tables`` (or its own CTEs, where
    they are in scope), unqualified, no table function but
    ``range``/``generate_series``/``unnest``, and no ``current_setting``,
    ``json_serialize_plan`` or ``pg_get_viewdef``; returns the
    table names it reads."""
    statement = check_read_only(sql)
    allowed = {t.lower() for t in tables}
    listed = (", ".join(sorted(allowed & {"events", "quarantine", *OPEN_TABLES}))
              + ", evt_<event> (one per cataloged track event; evt_identify and evt_group "
              "when the catalog describes those calls)")
    for func in statement.find_all(exp.Anonymous):
        if func.name.lower() in _SERVER_FUNCTIONS:
            raise QueryError(f"refused: {func.name.lower()}() shows the server's settings; "
                             f"readers query the warehouse's tables ({listed})")
        if func.name.lower() in _VIEW_TEXT_FUNCTIONS:
            raise QueryError(f"refused: {func.name.lower()}() shows the views' text; "
                             f"readers query the warehouse's tables ({listed})")
        if func.name.lower().startswith(FUNCTION_PREFIX):
            raise QueryError(f"refused: {func.name.lower()}() is nerve's own, for its views; "
                             f"readers query the warehouse's tables ({listed})")
    names = set()
    for table in statement.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier):
            if isinstance(table.this, _ROW_FUNCTIONS):
                continue
            raise QueryError("refused: readers query the warehouse's tables, not table "
                             f"functions; they may read {listed}")
        if table.args.get("db") or table.args.get("catalog"):
            raise QueryError(f"refused: {table.sql(dialect='duckdb')}: readers name tables "
                             f"without a schema or database ({listed})")
        if table.name.lower() not in allowed and not _cte_in_scope(table):
            raise QueryError(f"refused: readers may read {listed}; not {table.name!r}")
        names.add(table.name.lower())
    return names


#: the TEMP table ``MaskedWarehouse.masked_once`` holds the masked ``events`` in; the
#: prefix keeps it apart from anything a workspace names, and it holds masked values only
MASKED_ONCE = f"{FUNCTION_PREFIX}masked_events"


class MaskedWarehouse(IbisReads):
    """The warehouse's reader view: the same ``cursor``/``ibis``/``table``/``query`` as
    ``Warehouse``, on connections whose tables are the masked views."""

    #: the most events ``masked_once`` copies: the copy takes memory (about 1.1 KB an
    #: event on the demo's month: 540 MB for 490,000), so a bigger warehouse is masked
    #: by each query as it reads, as before
    masked_once_max_rows = 2_000_000

    def __init__(self, warehouse: Warehouse, catalog: Catalog, secret: bytes) -> None:
        self._warehouse = warehouse
        self.url = warehouse.url
        self.path = warehouse.path
        self.read_only = warehouse.read_only
        self._catalog = catalog
        #: which values this view masks (filters on them are refused: nerve.governance)
        self.masked_fields = MaskedFields(catalog)
        self._key = mask_key(secret)
        trees = declared_trees(catalog, {("identify", None): _PERSONAL_TRAITS})
        self._undeclared = mask_undeclared(trees, self._key)
        #: one function per key and catalog: a server's reload makes a new one
        self._function = f"{FUNCTION_PREFIX}undeclared_{fingerprint(trees, self._key)}"
        self._views: dict[str, str] | None = None
        self._local = threading.local()
        self.tables = frozenset({"events", "quarantine", *OPEN_TABLES,
                                 *typed_view_specs(catalog)})

    def mask(self, text: str) -> str:
        """``text`` as this view shows it where it masks a text (``m:`` and a keyed
        hash), for comparing a constant of nerve's own (an experiment's key) with values
        the view masks; never handed to a reader, whose guesses it would test."""
        return MASK_PREFIX + hashlib.sha256((self._key + text).encode()).hexdigest()[:32]

    def cursor(self, views: Iterable[str] = ()) -> duckdb.DuckDBPyConnection:
        """A cursor whose ``events`` and ``quarantine`` are the masked views, and so are
        the typed ``views`` named (``evt_<event>``). A typed view not named reads the
        workspace's own view, whose ``events`` is then the masked one too (a test pins
        that DuckDB binds it so); naming it gives the catalog's current columns."""
        cursor = self._warehouse.cursor()
        register(cursor, self._function, self._undeclared)
        # the key as data, in this connection's temp catalog: no view's text holds it
        cursor.execute(f"CREATE OR REPLACE TEMP TABLE {KEY_TABLE} AS "
                       f"SELECT CAST($key AS VARCHAR) AS {KEY_COLUMN}", {"key": self._key})
        if self._views is None:
            database = cursor.execute("SELECT current_database()").fetchone()
            self._views = masking_sql(self._catalog, str(database[0]),  # type: ignore[index]
                                      self._function)
        typed = [v for v in views if v.startswith(VIEW_PREFIX) and v in self._views]
        for name in ("events", "quarantine", *dict.fromkeys(typed)):
            cursor.execute(self._views[name])
        # made by the first checks' run: until then a query on it says so (Warehouse)
        if cursor.execute("SELECT 1 FROM duckdb_tables() WHERE database_name = "
                          "current_database() AND schema_name = 'main' AND "
                          "table_name = 'check_results'").fetchone():
            cursor.execute(self._views["check_results"])
        return cursor

    @contextmanager
    def masked_once(self) -> Iterator[None]:
        """Within the block, this thread's Ibis backend (``ibis()``, ``table()``, what an
        agent's context reads) reads ``events`` from a TEMP table holding the masked view's
        rows, masked once, instead of masking every row again in each query (``nerve ask``
        runs some 25 queries; masking the JSON columns is most of their cost). The table
        holds what the view gives, so the answers are the same; it lives in the connection
        (memory, or DuckDB's own temp spill), is dropped at the end of the block, and the
        view is back, so a later read sees newer loads. ``query()`` (a reader's SQL) opens
        cursors of its own and is not affected. A warehouse of more than
        ``masked_once_max_rows`` events is read as before."""
        self.ibis()
        cursor = self._local.cursor
        (rows,) = cursor.execute("SELECT count(*) FROM events").fetchone()
        if rows > self.masked_once_max_rows:
            yield
            return
        try:
            cursor.execute(f"CREATE OR REPLACE TEMP TABLE {MASKED_ONCE} AS SELECT * FROM events")
            # the view's NOT NULL columns stay so: Ibis compiles some expressions by them
            for column, null in cursor.execute(
                    'SELECT column_name, "null" FROM (DESCRIBE events)').fetchall():
                if null == "NO":
                    cursor.execute(f"ALTER TABLE temp.main.{MASKED_ONCE} ALTER COLUMN "
                                   f"{quote(column)} SET NOT NULL")
            cursor.execute(f"CREATE OR REPLACE TEMP VIEW events AS SELECT * FROM "
                           f"temp.main.{MASKED_ONCE}")
            yield
        finally:
            if self._views is not None:  # always: the cursor made them
                cursor.execute(self._views["events"])
            cursor.execute(f"DROP TABLE IF EXISTS temp.main.{MASKED_ONCE}")

    def table(self, name: str) -> Any:
        """An Ibis table as the reader sees it (a typed view is made on first use)."""
        backend = self.ibis()
        made: set[str] = self._local.__dict__.setdefault("views", set())
        if (name not in made and name.startswith(VIEW_PREFIX) and self._views is not None
                and name in self._views):
            self._local.cursor.execute(self._views[name])
            made.add(name)
        return backend.table(name)

    def query(self, sql: str) -> pa.Table:
        """``Warehouse.query`` for a reader: the masked views and open tables only."""
        names = check_reader_query(sql, self.tables)
        return self._warehouse.run_query(self.cursor(names), sql)
