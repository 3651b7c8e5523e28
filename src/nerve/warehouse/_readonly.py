"""Refuse anything but one read-only query, before it reaches the engine.

``nerve sql`` and the server's admin SQL route run user text on the warehouse. This
check parses it with sqlglot (DuckDB dialect) and accepts one statement that only reads:
SELECT (with WITH, set operations, FROM-first), VALUES, DESCRIBE, SHOW, SUMMARIZE, PIVOT.
It refuses writes hidden inside (a data-modifying CTE), and table functions or
replacement scans that read files or other databases, since the server runs these with
its own file permissions. The warehouse also runs the query in a transaction it rolls
back, so a write that slipped through would not stick.
"""

from __future__ import annotations

import logging
import re

import sqlglot
from sqlglot import exp

from nerve.errors import QueryError

__all__ = ["check_read_only"]

_READ_STATEMENTS = (
    exp.Select,
    exp.SetOperation,
    exp.Subquery,
    exp.Values,
    exp.Describe,
    exp.Show,
    exp.Summarize,
    exp.Pivot,
)

_WRITE_NODES = (
    exp.Insert,
    exp.Update,
    exp.Delete,
    exp.Merge,
    exp.Create,
    exp.Drop,
    exp.Alter,
    exp.Copy,
    exp.Command,
    exp.Attach,
    exp.Detach,
    exp.Install,
    exp.Set,
    exp.Pragma,
    exp.TruncateTable,
)

#: functions that read files, other databases or the network, or change state
_REFUSED_FUNCTION = re.compile(
    r"^(read_\w+|\w+_scan|glob|query|query_table|nextval|setval|sniff_csv|"
    r"parquet_\w+|iceberg_\w+|delta_\w+|postgres_\w+|sqlite_\w+|mysql_\w+|http_\w+)$",
    re.IGNORECASE,
)
_FILE_LIKE = re.compile(
    r"(/|\\|://|\.(csv|tsv|txt|parquet|json|jsonl|ndjson|gz|zst|db|duckdb|sqlite|arrow|xlsx)$)",
    re.IGNORECASE,
)


def _statement_kind(statement: exp.Expression) -> str:
    return type(statement).__name__.upper()


def _parse_problem(exc: sqlglot.errors.ParseError) -> str:
    """sqlglot's first parse error as plain text: its own message underlines the token
    with terminal escape codes, which a log, a pipe or a JSON answer shows raw."""
    if not exc.errors:
        return str(exc)
    first = exc.errors[0]
    near = f"{first.get('start_context') or ''}{first.get('highlight') or ''}".strip()
    return (f"{first.get('description')} at line {first.get('line')}, column "
            f"{first.get('col')}" + (f", near {near[-40:]!r}" if near else ""))


def check_read_only(sql: str) -> exp.Expression:
    """Raise ``QueryError`` unless ``sql`` is exactly one read-only query; returns it
    parsed.

    >>> check_read_only("SELECT event, count(*) FROM events GROUP BY 1").sql()
    'SELECT event, COUNT(*) FROM events GROUP BY 1'
    >>> check_read_only("DROP TABLE events")
    Traceback (most recent call last):
    ...
    nerve.errors.QueryError: refused: only a single read-only query ...
    """
    text = sql.strip().rstrip(";").strip()
    if not text:
        raise QueryError("empty query: give one SELECT statement")
    sqlglot_log = logging.getLogger("sqlglot")
    level = sqlglot_log.level
    sqlglot_log.setLevel(logging.ERROR)  # it warns on syntax it falls back on; we refuse it
    try:
        statements = [s for s in sqlglot.parse(text, read="duckdb") if s is not None]
    except sqlglot.errors.ParseError as exc:
        raise QueryError(f"cannot parse the query: {_parse_problem(exc)}") from exc
    finally:
        sqlglot_log.setLevel(level)
    if len(statements) != 1:
        raise QueryError(
            f"refused: only a single read-only query (SELECT ...) is allowed, got "
            f"{len(statements)} statements"
        )
    statement = statements[0]
    if not isinstance(statement, _READ_STATEMENTS):
        raise QueryError(
            f"refused: only a single read-only query (SELECT ...) is allowed, "
            f"got {_statement_kind(statement)}; nerve sql never changes the warehouse"
        )
    for node in statement.walk():
        if isinstance(node, _WRITE_NODES):
            raise QueryError(
                f"refused: the query contains {_statement_kind(node)}; "
                "nerve sql runs read-only queries only"
            )
        if isinstance(node, exp.Func):
            name = node.name if isinstance(node, exp.Anonymous) else str(
                node.sql_name())  # type: ignore[no-untyped-call]
            if _REFUSED_FUNCTION.match(name or ""):
                raise QueryError(
                    f"refused: function {name.lower()}() reads files or changes state; "
                    "nerve sql reads the warehouse's tables only"
                )
        if (isinstance(node, exp.Table) and isinstance(node.this, exp.Identifier)
                and node.this.quoted and _FILE_LIKE.search(node.this.name)):
            raise QueryError(
                    f"refused: {node.this.name!r} looks like a file; "
                    "nerve sql reads the warehouse's tables only"
                )
    return statement
