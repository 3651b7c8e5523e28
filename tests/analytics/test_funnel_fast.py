"""The compiled funnel path on DuckDB against the SQL path, beyond what the hypothesis
suite's small tables reach: enough rows for several threads and partitions, a heavy
user (thousands of events), every mode and option; and the ways the compiled path
declines (a hash collision, a time span too wide to pack), which must give the SQL
path's answer, not a wrong one.

The hypothesis suite (test_funnel_reference.py) checks both paths against the
plain-Python reference on every example.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import ibis
import numpy as np
import pyarrow as pa
import pytest
from tests.analytics.conftest import at, ev

from nerve.analytics import Exclusion, Filter, FunnelSpec, Step, _fast, _kernels, _scratch, funnel
from nerve.analytics._fast import fetch_table, match_table
from nerve.analytics._funnel import plan_of
from nerve.errors import QueryError

EVENTS = ["visit", "search", "view", "cart", "buy", "remove"]


@pytest.fixture(scope="module")
def big() -> Any:
    """~150k events, 12k users, 3 weeks, plus one user with 6k events: the compiled
    path runs on 2+ threads (from 50k rows) and sorts a bucket of thousands of rows."""
    con = ibis.duckdb.connect()
    con.raw_sql("""
        CREATE TABLE events AS
        WITH r AS (SELECT i, hash(i) AS h, hash(i + 7777) AS h2 FROM range(150000) t(i)
                   UNION ALL
                   SELECT i, 424242 AS h, hash(i + 99) AS h2 FROM range(150000, 156000) t(i))
        SELECT 'm' || i::VARCHAR AS message_id,
               CASE WHEN h2 % 20 = 0 THEN 'page' ELSE 'track' END AS type,
               (['visit', 'search', 'view', 'cart', 'buy', 'remove'])[1 + (h2 % 6)::INT]
                 AS event,
               CASE WHEN h % 10 = 0 THEN NULL ELSE 'u' || (h % 12000)::VARCHAR END
                 AS user_id,
               'a' || (h % 12000)::VARCHAR AS anonymous_id,
               TIMESTAMPTZ '2026-11-01 00:00:00+00'
                 + to_microseconds(((h2 >> 20) % (21::BIGINT * 86400 * 1000000))::BIGINT
                                   // 60000000 * 60000000) AS timestamp,
               '{"platform":"' || (['ios', 'android', 'web'])[1 + ((h2 >> 8) % 3)::INT]
                 || '","product":"p' || ((h2 >> 12) % 4)::VARCHAR
                 || '","price":' || ((h2 >> 16) % 50)::VARCHAR || '}' AS properties
        FROM r
    """)
    return con.table("events")


STEPS = tuple(Step(e) for e in ("visit", "search", "view", "cart", "buy"))
SPECS = {
    "sequential": FunnelSpec(STEPS, window=timedelta(days=2)),
    "strict": FunnelSpec(STEPS[:3], window=timedelta(days=7), order="strict"),
    "any": FunnelSpec(STEPS[:3], window=timedelta(hours=12), order="any"),
    "options": FunnelSpec(
        (Step("visit"), Step("search", optional=True),
         Step("view", (Filter("price", ">=", 10),), within=timedelta(hours=6)),
         Step("cart"), Step("buy")),
        window=timedelta(days=3),
        exclusions=(Exclusion("remove", after=2, before=4),),
        since=at(0) - timedelta(days=1), until=at(0) + timedelta(days=10)),
    "held_by_first": FunnelSpec(STEPS[2:], window=timedelta(days=5), hold=("product",),
                                by="platform"),
    "held_strict_by_step": FunnelSpec(STEPS[2:], window=timedelta(days=5), order="strict",
                                      hold=("product",), by="platform",
                                      attribution="step", attribution_step=1),
    "repeated_last_touch": FunnelSpec((Step("view"), Step("view"), Step("cart"),
                                       Step("view")), window=timedelta(days=1),
                                      by="platform", attribution="last_touch"),
}


@pytest.mark.parametrize("name", sorted(SPECS))
def test_compiled_equals_sql(big: Any, name: str) -> None:
    spec = SPECS[name]
    fast, sql = funnel(big, spec, method="compiled"), funnel(big, spec, method="sql")
    assert (fast.extra["method"], sql.extra["method"]) == ("compiled", "sql")
    assert fast.rows == sql.rows
    assert fast.rows[0]["users"] > 100  # the data exercises the funnel
    n = len(spec.steps)
    for status in ("reached", "converted", "dropped"):
        assert fast.users(n - 1, status) == sql.users(n - 1, status)


def test_hash_collision_falls_back(big: Any) -> None:
    """Ids whose first hash collide (forced by masking it to 4 bits) are told apart by
    the second hash: the kernels decline, and the SQL path's matcher answers."""
    spec = SPECS["sequential"].validate()
    table = fetch_table(big, spec)
    assert match_table(table, spec, plan_of(spec), hash_mask=0xF) is None
    assert match_table(table, spec, plan_of(spec)) is not None


def test_wide_time_span_falls_back(events_table: Any) -> None:
    """Two millennia between events and 70 breakdown values do not fit the packed
    time-and-tie: the compiled path declines and the SQL path's matcher answers."""
    rows = [ev("u1", "a", -1_000_000_000), ev("u1", "b", 1)]
    rows += [ev(f"v{i}", "a", i, platform=f"p{i:02d}") for i in range(70)]
    rows += [ev(f"v{i}", "b", i + 1) for i in range(0, 70, 2)]
    table = ibis.duckdb.connect().create_table("events", events_table(rows))
    spec = FunnelSpec((Step("a"), Step("b")), window=timedelta(days=2000 * 366),
                      by="platform")
    auto, sql = funnel(table, spec, method="compiled"), funnel(table, spec, method="sql")
    assert auto.extra["method"] == "sql"  # declined
    assert auto.rows == sql.rows
    assert auto.users(2) == sorted(["u1", *(f"v{i}" for i in range(0, 70, 2))])


def test_method_is_checked(events_table: Any) -> None:
    table = ibis.duckdb.connect().create_table(
        "events", events_table([ev("u1", "a", 0), ev("u1", "b", 1)]))
    spec = FunnelSpec((Step("a"), Step("b")))
    # a small table: auto needs no compiled kernels
    assert funnel(table, spec).extra["method"] == "sql"
    assert funnel(table, spec, method="compiled").extra["method"] == "compiled"
    with pytest.raises(QueryError, match="method"):
        funnel(table, spec, method="fast")  # type: ignore[arg-type]
    unbound = ibis.table(table.schema(), name="events")
    with pytest.raises(QueryError, match="embedded DuckDB"):
        funnel(unbound, spec, method="compiled")


def test_empty_and_untimed_events() -> None:
    """No rows at all, then an event without a timestamp (left out): both paths agree."""
    con = ibis.duckdb.connect()
    con.raw_sql("CREATE TABLE events (type VARCHAR, event VARCHAR, user_id VARCHAR, "
                "anonymous_id VARCHAR, timestamp TIMESTAMPTZ, properties VARCHAR, "
                "message_id VARCHAR)")
    table = con.table("events")
    spec = FunnelSpec((Step("a"), Step("b")))
    for method in ("compiled", "sql"):
        empty = funnel(table, spec, method=method)  # type: ignore[arg-type]
        assert [r["users"] for r in empty.rows] == [0, 0]
        assert empty.users(1) == []
    con.raw_sql("INSERT INTO events VALUES ('track', 'a', 'u1', NULL, NULL, NULL, 'm1'), "
                "('track', 'a', 'u2', NULL, '2026-01-01', NULL, 'm2'), "
                "('track', 'b', 'u2', NULL, '2026-01-01 00:01', NULL, 'm3')")
    for method in ("compiled", "sql"):
        got = funnel(table, spec, method=method)  # type: ignore[arg-type]
        assert [r["users"] for r in got.rows] == [1, 1]
        assert got.users(1) == ["u2"]


def test_kept_work_memory_is_not_shared_by_results(big: Any) -> None:
    """The kernels' work arrays are kept for the next funnel (``_scratch``): a result
    must not see a later funnel's rows, and two funnels at once (one on fresh memory)
    must both be right."""
    first = funnel(big, SPECS["options"], method="compiled")
    rows, reached = first.rows, first.reached.copy()
    users = first.users(3, "converted")
    funnel(big, SPECS["held_by_first"], method="compiled")  # reuses the same memory
    assert (first.reached == reached).all()
    assert first.users(3, "converted") == users
    # a DuckDB connection runs one query at a time: fetch first, match concurrently
    specs = {name: spec.validate() for name, spec in SPECS.items()}
    tables = {name: fetch_table(big, spec) for name, spec in specs.items()}

    def match(name: str) -> Any:
        matched = match_table(tables[name], specs[name], plan_of(specs[name]))
        assert matched is not None
        return matched.reached.tolist(), matched.delta.tolist()

    alone = {name: match(name) for name in specs}
    names = sorted(specs) * 2
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(match, names))
    assert together == [alone[name] for name in names]
    assert rows == funnel(big, SPECS["options"], method="sql").rows
    _scratch._kept.release_if_idle()  # the timer's job, done now: memory given back
    assert not _scratch._kept.arrays._buffers


def test_id_hashes_depend_on_the_text_only() -> None:
    """The ids are hashed 8 bytes at a time from unaligned words of the Arrow buffer:
    the same text hashes the same wherever it sits (the buffer's last bytes included),
    and different texts of every length (none, under, at and over a word) differ."""
    texts = ["", *("x" * n for n in range(1, 40)), *(f"u{i}" for i in range(2000)),
             "é", "é\x00", "\x00", "\x00\x00", "abcdefgh", "abcdefgi", "abcdefgh\x00"]
    for order in (texts, texts[::-1]):  # each text also last in its buffer
        array = pa.array([*order, *order[::-1]], type=pa.string()).slice(1)
        offsets, data = _fast._text_buffers(array)
        h1 = np.empty(len(array), dtype=np.uint64)
        h2 = np.empty(len(array), dtype=np.uint64)
        counts = np.zeros(1 << 4, dtype=np.int64)
        _kernels.hash_strings(offsets, data, _kernels.words_of(data), len(array), h1, h2,
                              np.uint64((1 << 64) - 1), 4, counts)
        seen: dict[str, tuple[int, int]] = {}
        for text, a, b in zip(array.to_pylist(), h1.tolist(), h2.tolist(), strict=True):
            assert seen.setdefault(text, (a, b)) == (a, b)
        assert len({a for a, _ in seen.values()}) == len(seen) == len(set(texts))
        assert len({b for _, b in seen.values()}) == len(seen)
        assert counts.sum() == len(array)


def test_insertion_order_setting_is_restored(big: Any) -> None:
    """The compiled path turns DuckDB's global ``preserve_insertion_order`` off for its
    query and back to what it was when the last funnel running on the connection ends
    (funnels on several threads share the switch: none restores it under another)."""
    con = big._find_backend().con

    def setting() -> Any:
        return con.execute("SELECT current_setting('preserve_insertion_order')").fetchone()[0]

    spec = SPECS["sequential"].validate()
    assert setting() is True
    with _fast._unordered(con):
        assert setting() is False
        fetch_table(big, spec)  # a funnel inside another: the outer one restores
        assert setting() is False
    assert setting() is True
    con.execute("SET preserve_insertion_order = false")
    fetch_table(big, spec)
    assert setting() is False
    con.execute("SET preserve_insertion_order = true")


def test_long_ids_and_anonymous_visitors() -> None:
    """Ids as long as UUIDs (several words each for the hash), visitors known only by
    their anonymous id, and events sharing timestamps: the compiled path answers as the
    SQL path does."""
    con = ibis.duckdb.connect()
    con.raw_sql("""
        CREATE TABLE events AS
        WITH r AS (SELECT i, hash(i) AS h, hash(i + 31) AS h2 FROM range(120000) t(i))
        SELECT 'm' || i::VARCHAR AS message_id, 'track' AS type,
               (['visit', 'search', 'view', 'cart', 'buy'])[1 + (h2 % 5)::INT] AS event,
               CASE WHEN h % 3 = 0 THEN NULL ELSE md5((h % 9000)::VARCHAR) END AS user_id,
               md5('anon' || (h % 9000)::VARCHAR) || '-' || (h % 9000)::VARCHAR
                 AS anonymous_id,
               TIMESTAMPTZ '2026-11-01 00:00:00+00'
                 + to_microseconds(((h2 >> 20) % 200)::BIGINT * 3600000000) AS timestamp,
               '{}' AS properties
        FROM r
    """)
    table = con.table("events")
    spec = FunnelSpec(STEPS, window=timedelta(days=2))
    fast, sql = funnel(table, spec, method="compiled"), funnel(table, spec, method="sql")
    assert fast.extra["method"] == "compiled"
    assert fast.rows == sql.rows
    assert fast.rows[-1]["users"] > 50
    assert fast.users(4, "dropped") == sql.users(4, "dropped")
