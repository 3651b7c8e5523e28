"""DuckDB's fast path: rows sorted on a hash of the entity, with a collision check.

The hypothesis cross-check (``test_funnel_reference``) already runs every DuckDB funnel
through this path; here the two orderings are compared directly, and a hash shared by
two entities is shown to be caught rather than merged.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import ibis
import pyarrow as pa
import pytest
from tests.analytics.conftest import ev

from nerve.analytics import Exclusion, FunnelSpec, Step
from nerve.analytics._funnel import plan_of, report
from nerve.analytics._match import match
from nerve.analytics._rows import _HashCollisionError, funnel_query, shape_rows

ROWS = [
    ev("u1", "a", 0, platform="ios"), ev("u1", "b", 1), ev("u1", "c", 2),
    ev("u2", "b", 0), ev("u2", "a", 1, platform="web"), ev("u2", "b", 1),
    ev("u3", "a", 5), ev("u3", "x", 6), ev("u3", "b", 7), ev("u3", "c", 30),
    ev("u4", "a", 3, platform="web"), ev("u4", "b", 3), ev("u4", "c", 3),
]
SPECS = [
    FunnelSpec((Step("a"), Step("b"), Step("c")), window=timedelta(minutes=10)),
    FunnelSpec((Step("a"), Step("b"), Step("c")), window=timedelta(minutes=60),
               exclusions=(Exclusion("x", after=0, before=1),), by="platform"),
    FunnelSpec((Step("a"), Step("b")), window=timedelta(minutes=5), order="strict"),
    FunnelSpec((Step("c"), Step("a"), Step("b")), window=timedelta(minutes=5), order="any"),
]


@pytest.mark.parametrize("spec", SPECS, ids=["sequential", "exclusion-by", "strict", "any"])
def test_hashed_sort_gives_the_text_sort_result(events_table: Any, spec: FunnelSpec) -> None:
    con = ibis.duckdb.connect()
    table = con.create_table("events", events_table(ROWS))
    spec = spec.validate()
    results = []
    for hashed in (False, True):
        query = funnel_query(table, spec, hashed=hashed)
        assert ("ekey" in query.columns) is hashed
        fetched = shape_rows(query.to_pyarrow(), spec)
        results.append(report(spec, fetched, match(fetched.rows, plan_of(spec))))
    text, hashed_result = results
    assert hashed_result.rows == text.rows
    for k in range(len(spec.steps)):
        assert hashed_result.users(k + 1) == text.users(k + 1)
    assert text.rows[0]["users"] > 0


def _sorted_rows(entities: list[str], keys: list[int]) -> pa.Table:
    n = len(entities)
    return pa.table({
        "entity": entities,
        "ekey": pa.array(keys, type=pa.uint64()),
        "ts": pa.array(range(n), type=pa.int64()),
        "rmask": pa.array([2] * n, type=pa.uint8()),
    })


def test_two_entities_sharing_a_hash_are_caught() -> None:
    spec = FunnelSpec((Step("a"), Step("b"))).validate()
    ok = shape_rows(_sorted_rows(["u1", "u1", "u2"], [5, 5, 9]), spec)
    assert ok.entity_start.tolist() == [True, False, True]
    with pytest.raises(_HashCollisionError):  # interleaved under one hash
        shape_rows(_sorted_rows(["u1", "u2", "u1"], [5, 5, 5]), spec)
    with pytest.raises(_HashCollisionError):  # one after the other, same hash
        shape_rows(_sorted_rows(["u1", "u2"], [5, 5]), spec)
