"""The loader's one-pass path (no message_id repeats) loads exactly what the dedup path
loads, and steps aside, having written nothing, as soon as any id repeats."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from nerve.envelope import to_record_batch
from nerve.loader._commit import _load_dedup, _load_fresh, _Probes, conform
from nerve.warehouse import Warehouse

VIOLATION = '[{"path": "$", "rule": "unplanned", "message": "x", "file": null, "line": null}]'


def table(make_envelope: Callable[..., Any], ids: list[str]) -> pa.Table:
    rows = [make_envelope(i, message_id=mid, violations=VIOLATION if i % 3 == 0 else None)
            for i, mid in enumerate(ids)]
    return conform(pa.Table.from_batches([to_record_batch(rows)]))


def contents(wh: Warehouse) -> dict[str, list[dict[str, Any]]]:
    out = {}
    for name in ("events", "quarantine"):
        sql = (f"SELECT * EXCLUDE ({'loaded_at' if name == 'events' else 'quarantined_at'}) "
               f"FROM {name} ORDER BY message_id")
        out[name] = [{k: str(v) for k, v in r.items()} for r in wh.query(sql).to_pylist()]
    return out


def test_the_one_pass_load_equals_the_dedup_path(make_envelope: Callable[..., Any]) -> None:
    raw = table(make_envelope, [f"m{i}" for i in range(30)])
    with Warehouse.open("duckdb://:memory:") as fast, Warehouse.open("duckdb://:memory:") as slow:
        assert _load_fresh(fast.cursor(), raw, None, _Probes()) == (20, 10, Counter())
        assert _load_dedup(slow.cursor(), raw, None, _Probes()) == (20, 10, Counter())
        assert contents(fast) == contents(slow)
        assert len(contents(fast)["quarantine"]) == 10


def test_it_steps_aside_when_an_id_repeats(make_envelope: Callable[..., Any]) -> None:
    with Warehouse.open("duckdb://:memory:") as wh:
        cursor = wh.cursor()
        within = table(make_envelope, ["a", "b", "a"])
        assert _load_fresh(cursor, within, None, _Probes()) is None
        assert contents(wh) == {"events": [], "quarantine": []}
        assert _load_fresh(cursor, table(make_envelope, ["x", "y", "z"]), None,
                           _Probes()) == (2, 1, Counter())
        # "x" is invalid (i=0): already in quarantine; "q" is new
        assert _load_fresh(cursor, table(make_envelope, ["x", "q"]), None, _Probes()) is None
        # "y" is valid (i=1) in the first table, and valid again here (i=1)
        assert _load_fresh(cursor, table(make_envelope, ["n", "y"]), None, _Probes()) is None
        assert len(contents(wh)["events"]) == 2
        assert len(contents(wh)["quarantine"]) == 1
