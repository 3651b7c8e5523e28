"""What a reader sees of the values the catalog does not declare.

The catalog's classes decide what the reader's view masks (``_masking``). A value the
catalog does not declare has no class: an extra property of an event whose schema allows
them (``additional_properties: true``), every property of an uncataloged event in the
quarantine (or of an event since removed from the catalog), a call's payload that no
spec describes (a ``page`` call without a ``page`` spec), a trait identify does not
declare, in ``traits`` or in ``context.traits`` (the user's traits the SDKs copy into
every call). The collector's ``guard_unknown`` hashes those whose names look personal
(``email``, ``phone``...) before they are stored, and keeps the rest as sent: a
``note``, a ``name``, a ``salary``. Nobody has said they are not personal, so
the reader's view masks every one of them: a text by its ``m:`` mask, any other value
(a number, a boolean) by the mask of its JSON text, inside objects and arrays too; the
names stay, so a reader still sees what was sent, and equal values keep equal masks.
An admin (or a reader with ``personal = "visible"``) sees them as stored; declaring a
property with ``pii: none`` shows it to readers.

Undeclared keys are not known in advance, so a SQL merge patch cannot name them: a
Python function of DuckDB's does the walk, on the rows that may hold such values only
(``may_hold``): every quarantined row, and the stored rows of calls whose spec allows
extra properties or that no spec describes. Rows of a strict spec (the default) hold
only declared values: the collector quarantines the others. ``context.traits`` is
not validated, so any row may hold such traits: the function runs on the rows whose
``context.traits`` has a name identify does not declare as a plain value
(``context_may_hold``).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import duckdb
import orjson
from duckdb.func import FunctionNullHandling

if TYPE_CHECKING:
    from nerve.catalog import Catalog, PropertySpec

__all__ = ["CONTEXT", "FUNCTION_PREFIX", "Declared", "context_may_hold", "declared_trees",
           "fingerprint", "is_declared", "mask_undeclared", "may_hold", "register",
           "strict_specs"]

#: names of nerve's own functions in a reader's connection; a reader's SQL may not call
#: them (one would mask guessed values with the key: ``check_reader_query``)
FUNCTION_PREFIX = "nerve_"
#: name -> what the catalog declares there: the declared names of an object, ``ITEMS``
#: and the tree of an array's object items, or ``LEAF`` (a declared plain value)
Declared = dict[str, Any]
LEAF = "leaf"
#: the call type that asks the function for a row's ``context``, whose ``traits`` it
#: masks by identify's declarations (the rest of the context is the view's SQL's)
CONTEXT = "context"


class _Items:
    __slots__ = ("tree",)

    def __init__(self, tree: Declared) -> None:
        self.tree = tree


def _declare(props: Iterable[PropertySpec], into: Declared) -> Declared:
    for prop in props:
        known = into.get(prop.name)
        if prop.properties:
            into[prop.name] = _declare(prop.properties, known if isinstance(known, dict)
                                       else {})
        elif prop.items is not None and prop.items.properties:
            before = known.tree if isinstance(known, _Items) else {}
            into[prop.name] = _Items(_declare(prop.items.properties, before))
        elif known is None:
            into[prop.name] = LEAF
    return into


def declared_trees(catalog: Catalog, extra: dict[tuple[str, str | None], Iterable[str]]
                   ) -> dict[tuple[str, str | None], Declared]:
    """(call type, event name for track) -> the names its payload declares, over every
    version, and the ``extra`` names the view masks there whatever the catalog says (the
    Segment spec's personal traits)."""
    trees: dict[tuple[str, str | None], Declared] = {}
    for latest in catalog:
        for spec in catalog.versions(latest.name):
            key: tuple[str, str | None] = (
                ("track", spec.name) if spec.type == "track" else (spec.type, None))
            trees[key] = _declare(spec.properties, trees.get(key, {}))
    for where, names in extra.items():
        tree = trees.setdefault(where, {})
        for name in names:
            tree.setdefault(name, LEAF)
    return trees


def is_declared(tree: Declared, path: tuple[str, ...]) -> bool:
    """Whether the catalog declares the value at ``path`` (or a declared plain value
    holds it)."""
    node: Any = tree
    for name in path:
        if isinstance(node, _Items):
            node = node.tree
        if node == LEAF:
            return True
        if not isinstance(node, dict) or name not in node:
            return False
        node = node[name]
    return True


def _walk(value: Any, tree: Any, mask: Callable[[str], str]) -> Any:
    """``value`` with each value ``tree`` does not declare masked (``tree`` None: the
    value itself is undeclared)."""
    if isinstance(tree, _Items):
        tree = tree.tree
    if tree == LEAF:
        return value  # declared: the catalog's own masks apply
    if isinstance(value, list):
        return [_walk(item, tree, mask) for item in value]
    if isinstance(value, dict):
        names = tree if isinstance(tree, dict) else {}
        return {name: _walk(sub, names.get(name), mask) for name, sub in value.items()}
    if tree is not None or value is None:
        return value  # a plain value where the catalog declares an object
    return mask(value if isinstance(value, str) else orjson.dumps(value).decode())


def mask_undeclared(trees: dict[tuple[str, str | None], Declared], key: str
                    ) -> Callable[[str | None, str | None, str | None], str | None]:
    """The function a reader's connection runs: (call type, event, JSON text) -> the
    JSON text with the undeclared values masked, by the same keyed hash as the view's
    SQL (``'m:' || left(sha256(key || value), 32)``)."""
    from nerve.warehouse._masking import MASK_PREFIX  # noqa: PLC0415 - a cycle

    def mask(text: str) -> str:
        return MASK_PREFIX + hashlib.sha256((key + text).encode()).hexdigest()[:32]

    def run(type_: str | None, event: str | None, text: str | None) -> str | None:
        if text is None:
            return None
        value = orjson.loads(text)
        if type_ == CONTEXT:
            if isinstance(value, dict) and isinstance(value.get("traits"), dict):
                value["traits"] = _walk(value["traits"], trees.get(("identify", None), {}),
                                        mask)
            return orjson.dumps(value).decode()
        found = trees.get(("track", event) if type_ == "track" else (type_ or "", None), {})
        return orjson.dumps(_walk(value, found, mask)).decode()

    return run


def register(cursor: duckdb.DuckDBPyConnection, name: str,
             function: Callable[..., str | None]) -> None:
    """Make ``function`` DuckDB's ``name`` (a database's connections share it: a name
    already made is left as it is)."""
    # made by an earlier connection to the same database: nothing to do
    with contextlib.suppress(duckdb.CatalogException):
        # SPECIAL: NULLs reach the function (a call without an event has its traits)
        cursor.create_function(name, function, ["VARCHAR", "VARCHAR", "VARCHAR"], "VARCHAR",
                               null_handling=FunctionNullHandling.SPECIAL, side_effects=False)


def _plain(tree: Any) -> Any:
    if isinstance(tree, _Items):
        return {"[]": _plain(tree.tree)}
    if isinstance(tree, dict):
        return {name: _plain(sub) for name, sub in sorted(tree.items())}
    return tree


def fingerprint(trees: dict[tuple[str, str | None], Declared], key: str) -> str:
    """A short digest of ``trees`` and ``key``: the name of their function."""
    plain = [[type_, event or "", _plain(tree)] for (type_, event), tree in sorted(
        trees.items(), key=lambda kv: (kv[0][0], kv[0][1] or ""))]
    return hashlib.sha256(key.encode() + orjson.dumps(plain)).hexdigest()[:16]


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def strict_specs(catalog: Catalog) -> dict[tuple[str, str | None], bool]:
    """(call type, event name for track) -> whether every version of its spec is strict
    (``additional_properties: false``): its stored rows then hold declared values only."""
    strict: dict[tuple[str, str | None], bool] = {}
    for latest in catalog:
        for spec in catalog.versions(latest.name):
            key: tuple[str, str | None] = (
                ("track", spec.name) if spec.type == "track" else (spec.type, None))
            strict[key] = strict.get(key, True) and not spec.additional_properties
    return strict


def context_may_hold(trees: dict[tuple[str, str | None], Declared]) -> str:
    """A SQL condition on a row: its ``context.traits`` may hold undeclared values (it
    has a name that identify does not declare as a plain value). The SDKs send the same
    few traits with every call, so rows whose traits identify declares skip the walk."""
    plain = sorted(name for name, sub in trees.get(("identify", None), {}).items()
                   if sub == LEAF)
    listed = f"[{', '.join(map(_literal, plain))}]::VARCHAR[]"
    return ("(json_type(context, '$.traits') = 'OBJECT' AND NOT list_has_all("
            f"{listed}, json_keys(context, '$.traits')))")


def may_hold(catalog: Catalog, column: str) -> str:
    """A SQL condition on a stored row: its ``column`` (``properties`` or ``traits``)
    may hold undeclared values. A spec's rows hold declared values only when every
    version of it is strict (``additional_properties: false``, the default): the
    collector quarantines a call with any other. A ``traits`` column is a group call's
    (by the group spec) or identify's; a ``properties`` one is the call's own."""
    strict = strict_specs(catalog)
    if column == "traits":
        kinds = [t for t in ("identify", "group") if strict.get((t, None))]
        checked = (f"type IN ({', '.join(map(_literal, kinds))})" if kinds else "FALSE")
        return f"({column} IS NOT NULL AND NOT ({checked}))"
    events = sorted(e for (t, e), ok in strict.items() if ok and t == "track" and e)
    types = sorted(t for (t, e), ok in strict.items() if ok and t != "track")
    parts = [f"(type = 'track' AND event IN ({', '.join(map(_literal, events))}))"] \
        if events else []
    parts += [f"type IN ({', '.join(map(_literal, types))})"] if types else []
    return f"({column} IS NOT NULL AND NOT ({' OR '.join(parts) or 'FALSE'}))"
