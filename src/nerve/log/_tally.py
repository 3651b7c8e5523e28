"""Tallies: what the collector did not store, carried in the log next to what it did.

A consent drop or a refused request leaves no envelope, yet ``nerve check`` must see it
(docs/quality.md, ``withheld`` and ``refusals``). So each group-commit round that has
something to tell appends one extra row to its batch: a *tally*, an envelope row of type
``nerve:tally`` (a type no client can send: the collector accepts only the Segment
call types) whose ``properties`` hold the round's counts::

    {"consent": {"web": {"app_opened": 3}}, "refused": {"401": {"unauthorized": 2}}}

The row travels wherever the round's events travel (a segment file of this process, or
the NATS stream; from ``--collect-only`` collectors and ``--workers`` too), is fsynced
with them before their 200, and the loader takes it out of the batch (``split_tallies``)
and writes its counts into the ``loads`` ledger row of the same transaction
(``withheld``). One row per round, however many requests it holds: the hot path only
adds a request's counts to a ``Counter``.
"""

from __future__ import annotations

import secrets
import time
from collections import Counter
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["MAX_TALLY_KEYS", "OTHER", "TALLY_TYPE", "Tally", "merge_tallies",
           "split_tallies", "tally_row"]

#: the envelope ``type`` of a tally row
TALLY_TYPE = "nerve:tally"
#: a round's tally keeps this many (kind, a, b) keys; the rest are summed under ``OTHER``
#: (event names are the client's: a flood of made-up names must not make a huge row)
MAX_TALLY_KEYS = 500
OTHER = "(other)"

#: (kind, a, b) -> count: ("consent", source, event) or ("refused", status, code)
Tally = Counter[tuple[str, str, str]]


def tally_row(tally: Tally, received_at: int | None = None) -> tuple[Any, ...]:
    """The envelope row (``ENVELOPE_FIELDS`` order) that carries ``tally``.

    >>> row = tally_row(Counter({("consent", "web", "app_opened"): 3}), 0)
    >>> row[1], row[12]
    ('nerve:tally', '{"consent":{"web":{"app_opened":3}}}')
    """
    if received_at is None:
        received_at = time.time_ns() // 1000
    nested: dict[str, dict[str, dict[str, int]]] = {}
    for index, ((kind, a, b), n) in enumerate(sorted(tally.items())):
        name = b if index < MAX_TALLY_KEYS else OTHER
        inner = nested.setdefault(kind, {}).setdefault(a, {})
        inner[name] = inner.get(name, 0) + n
    properties = orjson.dumps(nested).decode()
    return (f"nerve-tally-{secrets.token_hex(12)}", TALLY_TYPE, None, None, None, None,
            None, None, received_at, None, None, received_at, properties, None, None,
            "nerve", False, None, None)


def split_tallies(table: pa.Table) -> tuple[pa.Table, dict[str, Any] | None]:
    """The table without its tally rows, and their counts merged (None when none).

    >>> split_tallies(pa.table({"type": ["track"], "properties": [None]}))[1] is None
    True
    """
    if table.num_rows == 0:
        return table, None
    marked = pc.equal(table.column("type"), TALLY_TYPE)
    if not pc.any(marked).as_py():
        return table, None
    counts: dict[str, Any] = {}
    for text in table.filter(marked).column("properties").to_pylist():
        merge_tallies(counts, orjson.loads(text or "{}"))
    return table.filter(pc.invert(marked)), counts


def merge_tallies(into: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """Add the nested counts of ``other`` to ``into`` (both ``{kind: {a: {b: n}}}``)."""
    for kind, by_a in other.items():
        target = into.setdefault(kind, {})
        for a, by_b in by_a.items():
            inner = target.setdefault(a, {})
            for b, n in by_b.items():
                inner[b] = inner.get(b, 0) + int(n)
    return into
