"""Filter and arithmetic expressions in metric files, parsed once into a tiny typed tree.

Filters read like SQL (``user.age >= 65 and context.os.name in ('iOS', 'Android')``) and
derived metrics like arithmetic (``(revenue - revenue_last_week) / revenue_last_week``).
sqlglot parses the text; only the node kinds below are accepted, so nothing a metric
author writes reaches an engine as raw SQL.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import sqlglot
from sqlglot import exp

__all__ = [
    "And",
    "Arith",
    "Cmp",
    "InList",
    "IsNull",
    "Like",
    "Lit",
    "Neg",
    "Node",
    "Not",
    "Or",
    "Ref",
    "literal_type",
    "parse_arithmetic",
    "parse_filter",
    "refs",
    "type_problems",
]


@dataclass(frozen=True, slots=True)
class Ref:
    """A name: ``price``, ``user.age``, ``context.os.name``, a segment or a metric."""

    path: tuple[str, ...]

    @property
    def text(self) -> str:
        return ".".join(self.path)


@dataclass(frozen=True, slots=True)
class Lit:
    value: str | int | float | bool | None


@dataclass(frozen=True, slots=True)
class Cmp:
    op: str  # = != < <= > >=
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class InList:
    expr: Node
    values: tuple[Lit, ...]
    negate: bool = False


@dataclass(frozen=True, slots=True)
class IsNull:
    expr: Node
    negate: bool = False


@dataclass(frozen=True, slots=True)
class Like:
    expr: Node
    pattern: str
    negate: bool = False


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Node


@dataclass(frozen=True, slots=True)
class Arith:
    op: str  # + - * /
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Neg:
    item: Node


Node = Ref | Lit | Cmp | InList | IsNull | Like | And | Or | Not | Arith | Neg

_CMP = {exp.EQ: "=", exp.NEQ: "!=", exp.LT: "<", exp.LTE: "<=", exp.GT: ">", exp.GTE: ">="}
_ARITH = {exp.Add: "+", exp.Sub: "-", exp.Mul: "*", exp.Div: "/"}


_MISSING = re.compile(r"Required keyword: '\w+' missing for <class 'sqlglot\.expressions\.(\w+)'>")
_OPERATORS = {**{k.__name__: v for k, v in (_CMP | _ARITH).items()},
              "And": "AND", "Or": "OR", "Not": "NOT", "Between": "BETWEEN"}


def _readable(detail: str) -> str:
    """sqlglot's words for an expression cut short, in the filter's own terms:
    ``Required keyword: 'expression' missing for <class '...And'>`` -> ``AND is missing
    an operand``."""
    found = _MISSING.fullmatch(detail)
    if found is None:
        return detail
    return f"{_OPERATORS.get(found.group(1), found.group(1).upper())} is missing an operand"


def _parse(text: str) -> exp.Expression:
    try:
        # parse, not parse_one: parse_one keeps the first of several statements and drops
        # the rest without a word, so "a = 1; b = 2" would silently mean "a = 1"
        trees = [t for t in sqlglot.parse(text, dialect="duckdb") if t is not None]
    except sqlglot.errors.ParseError as exc:
        errors = exc.errors or [{}]
        detail = errors[0].get("description") or str(exc).splitlines()[0]
        raise ValueError(f"cannot parse {text!r}: {_readable(detail)}") from None
    if not trees:
        raise ValueError(f"cannot parse {text!r}: no expression")
    if len(trees) > 1:
        raise ValueError(f"cannot parse {text!r}: {len(trees)} statements separated by ';'; "
                         "write one expression (join conditions with and)")
    return trees[0]


def _ref(node: exp.Expression, text: str) -> Ref:
    if isinstance(node, exp.Column):
        parts = tuple(p.name for p in node.parts)
    elif isinstance(node, exp.Dot):
        parts = tuple(p.name for p in node.flatten())  # type: ignore[no-untyped-call]
    else:  # pragma: no cover - callers check the kind
        raise ValueError(f"{text!r}: expected a name, got {node.sql()}")
    if not all(parts):
        raise ValueError(f"{text!r}: {node.sql()} is not a plain name")
    return Ref(parts)


def _literal(node: exp.Expression, text: str) -> Lit:
    if isinstance(node, exp.Neg):
        inner = _literal(node.this, text)
        if isinstance(inner.value, int | float) and not isinstance(inner.value, bool):
            return Lit(-inner.value)
        raise ValueError(f"{text!r}: cannot negate {node.this.sql()}")
    if isinstance(node, exp.Paren):
        return _literal(node.this, text)
    if isinstance(node, exp.Boolean):
        return Lit(bool(node.this))
    if isinstance(node, exp.Null):
        return Lit(None)
    if isinstance(node, exp.Literal):
        if node.is_string:
            return Lit(str(node.this))
        raw = str(node.this)
        return Lit(float(raw) if any(c in raw for c in ".eE") else int(raw))
    raise ValueError(f"{text!r}: unsupported {node.sql()}: expected a name or a literal value")


def _operand(node: exp.Expression, text: str) -> Node:
    if isinstance(node, exp.Column | exp.Dot):
        return _ref(node, text)
    return _literal(node, text)


def _comparison(op: str, left: Node, right: Node, text: str) -> Node:
    """``x = NULL`` reads as ``x IS NULL`` and ``x != NULL`` as ``x IS NOT NULL`` (what
    the writer meant; in SQL both match nothing), on either side; an order with NULL
    (``x < NULL``) matches nothing, so it is refused (docs/metrics.md, "Filters")."""
    null = [side for side in (left, right) if isinstance(side, Lit) and side.value is None]
    if not null:
        return Cmp(op, left, right)
    other = right if left in null else left
    if op not in ("=", "!=") or len(null) == 2:
        raise ValueError(f"{text!r}: a comparison ({op}) with NULL is never true; use "
                         "IS NULL or IS NOT NULL")
    return IsNull(other, negate=op == "!=")


def _filter(node: exp.Expression, text: str) -> Node:
    if isinstance(node, exp.Paren):
        return _filter(node.this, text)
    if isinstance(node, exp.And):
        return And((_filter(node.left, text), _filter(node.right, text)))
    if isinstance(node, exp.Or):
        return Or((_filter(node.left, text), _filter(node.right, text)))
    if isinstance(node, exp.Not):
        inner = node.this
        if isinstance(inner, exp.Is):
            return IsNull(_operand(inner.this, text), negate=True)
        if isinstance(inner, exp.In):
            result = _filter(inner, text)
            assert isinstance(result, InList)
            return InList(result.expr, result.values, negate=True)
        if isinstance(inner, exp.Like | exp.ILike):
            like = _filter(inner, text)
            assert isinstance(like, Like)
            return Like(like.expr, like.pattern, negate=True)
        return Not(_filter(inner, text))
    for kind, op in _CMP.items():
        if isinstance(node, kind):
            return _comparison(op, _operand(node.this, text),
                               _operand(node.expression, text), text)
    if isinstance(node, exp.Is):
        if not isinstance(node.expression, exp.Null):
            raise ValueError(f"{text!r}: only IS NULL and IS NOT NULL are supported")
        return IsNull(_operand(node.this, text))
    if isinstance(node, exp.In):
        if node.args.get("query") is not None or not node.expressions:
            raise ValueError(f"{text!r}: IN takes a list of values")
        return InList(_operand(node.this, text),
                      tuple(_literal(v, text) for v in node.expressions))
    if isinstance(node, exp.Like):
        pattern = _literal(node.expression, text)
        if not isinstance(pattern.value, str):
            raise ValueError(f"{text!r}: LIKE takes a string pattern")
        return Like(_operand(node.this, text), pattern.value)
    if isinstance(node, exp.Between):
        target = _operand(node.this, text)
        return And((Cmp(">=", target, _literal(node.args["low"], text)),
                    Cmp("<=", target, _literal(node.args["high"], text))))
    if isinstance(node, exp.Column | exp.Dot):
        return _ref(node, text)  # a segment, or a boolean dimension
    if isinstance(node, exp.Boolean):
        return Lit(bool(node.this))
    raise ValueError(f"{text!r}: unsupported {node.key.upper()} in a filter "
                     "(use comparisons, IN, LIKE, BETWEEN, IS NULL, AND, OR, NOT)")


def parse_filter(text: str) -> Node:
    """Parse a filter expression.

    >>> parse_filter("user.age >= 65")
    Cmp(op='>=', left=Ref(path=('user', 'age')), right=Lit(value=65))
    """
    return _filter(_parse(text), text)


def _arith(node: exp.Expression, text: str) -> Node:
    if isinstance(node, exp.Paren):
        return _arith(node.this, text)
    for kind, op in _ARITH.items():
        if isinstance(node, kind):
            return Arith(op, _arith(node.this, text), _arith(node.expression, text))
    if isinstance(node, exp.Neg):
        return Neg(_arith(node.this, text))
    if isinstance(node, exp.Column | exp.Dot):
        return _ref(node, text)
    if isinstance(node, exp.Literal) and not node.is_string:
        return _literal(node, text)
    raise ValueError(f"{text!r}: unsupported {node.sql()!r} (use metric names, numbers, "
                     "+ - * / and parentheses)")


def parse_arithmetic(text: str) -> Node:
    """Parse a derived metric's expression.

    >>> parse_arithmetic("a / b")
    Arith(op='/', left=Ref(path=('a',)), right=Ref(path=('b',)))
    """
    return _arith(_parse(text), text)


def refs(node: Node) -> Iterator[Ref]:
    """Every name the expression mentions, in order."""
    if isinstance(node, Ref):
        yield node
    elif isinstance(node, Cmp | Arith):
        yield from refs(node.left)
        yield from refs(node.right)
    elif isinstance(node, InList | IsNull | Like):
        yield from refs(node.expr)
    elif isinstance(node, And | Or):
        for item in node.items:
            yield from refs(item)
    elif isinstance(node, Not | Neg):
        yield from refs(node.item)


def literal_type(value: Any) -> str | None:
    """The catalog type a literal fits: string, integer, number, boolean (None for null)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return "string"


_NUMERIC = {"integer", "number"}


def _compatible(column: str, value_type: str | None) -> bool:
    if value_type is None or column == value_type:
        return True
    if column in _NUMERIC and value_type in _NUMERIC:
        return True
    # timestamps compare with ISO strings
    return column == "timestamp" and value_type == "string"


#: comparisons that a value outside a property's enum makes match no event
_EQUALITY = frozenset({"=", "==", "in"})


def type_problems(node: Node, type_of: Callable[[Ref], str | None]) -> list[str]:
    """Every comparison between a name and a literal of an incompatible type, or (for a
    name whose values the catalog enumerates) an equality with a value it cannot hold.

    ``type_of`` gives a name's catalog type (None when unknown: not checked here); its
    ``enum(ref)``, when it has one, the values the catalog allows.
    """
    problems: list[str] = []
    enum_of = getattr(type_of, "enum", None)

    def check(ref: Node, lit: Node, op: str) -> None:
        if not isinstance(ref, Ref) or not isinstance(lit, Lit):
            return
        column = type_of(ref)
        if column is None:
            return
        if not _compatible(column, literal_type(lit.value)):
            problems.append(f"{ref.text} is {column}, compared ({op}) with "
                            f"{literal_type(lit.value)} {lit.value!r}")
            return
        allowed = enum_of(ref) if enum_of is not None and op in _EQUALITY else None
        if allowed is not None and lit.value is not None and lit.value not in allowed:
            listed = ", ".join(sorted(map(str, allowed)))
            problems.append(f"{ref.text} takes only {listed} in the catalog, not "
                            f"{lit.value!r}: the comparison ({op}) matches no event")

    def walk(item: Node) -> None:
        if isinstance(item, Cmp):
            check(item.left, item.right, item.op)
            check(item.right, item.left, item.op)
        elif isinstance(item, InList):
            for value in item.values:
                check(item.expr, value, "in")
        elif isinstance(item, Like):
            if isinstance(item.expr, Ref) and type_of(item.expr) not in (None, "string"):
                problems.append(f"{item.expr.text} is {type_of(item.expr)}; LIKE needs a string")
        elif isinstance(item, And | Or):
            for sub in item.items:
                walk(sub)
        elif isinstance(item, Not):
            walk(item.item)

    walk(node)
    return problems
