"""Funnels, retention and trends against hand-computed answers, on DuckDB, PostgreSQL
and Spark (the ``engine`` fixture). One small table serves several assertions per test,
so Spark runs few queries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tests.analytics.conftest import ev

from nerve.analytics import (
    Exclusion,
    Filter,
    FunnelSpec,
    RetentionSpec,
    Step,
    TrendSpec,
    funnel,
    retention,
    trend,
)

# A shop day. Minutes after T0.
#  u1: view, view, cart(ios), buy                  -> converts, 2 min cart->buy
#  u2: view, cart(android) ... buy after 2 days    -> out of a 1-day window
#  u3: view, remove_from_cart, cart(ios), buy      -> strict breaks; exclusion applies
#  u4: cart, view (wrong order)                     -> reaches view only
#  u5: view + cart at the same instant, buy         -> ties count in funnel order
SHOP = [
    ev("u1", "view", 0, product="p1"), ev("u1", "view", 1, product="p2"),
    ev("u1", "cart", 3, product="p2", platform="ios"), ev("u1", "buy", 5, product="p2"),
    ev("u2", "view", 0, product="p1"), ev("u2", "cart", 10, platform="android",
                                          product="p1"),
    ev("u2", "buy", 2 * 1440 + 10, product="p1"),
    ev("u3", "view", 2, product="p3"), ev("u3", "remove_from_cart", 3),
    ev("u3", "cart", 4, platform="ios", product="p3"), ev("u3", "buy", 7, product="p3"),
    ev("u4", "cart", 1, platform="web", product="p4"), ev("u4", "view", 2, product="p4"),
    ev("u5", "view", 30, product="p5", mid="zz1"),
    ev("u5", "cart", 30, platform="web", product="p5", mid="aa1"),
    ev("u5", "buy", 31, product="p6"),
]
STEPS = (Step("view"), Step("cart"), Step("buy"))


@pytest.fixture
def shop(engine: Any, events_table: Any) -> Any:
    return engine.load("events", events_table(SHOP))


def _users(result: Any) -> list[int]:
    return [r["users"] for r in result.rows]


def test_funnel_modes(shop: Any, engine: Any) -> None:
    seq = funnel(shop, FunnelSpec(STEPS, window=timedelta(days=1)))
    assert _users(seq) == [5, 4, 3]
    assert seq.users(3) == ["u1", "u3", "u5"]
    assert seq.users(2, "dropped") == ["u2"]
    assert [r["conversion"] for r in seq.rows] == [1.0, 0.8, 0.6]
    # cart -> buy: u1 2 min, u3 3 min, u5 1 min
    assert seq.rows[2]["median_seconds"] == 120.0
    strict = funnel(shop, FunnelSpec(STEPS, window=timedelta(days=1), order="strict"))
    # u3 has remove_from_cart between view and cart; u1's second view is next to cart
    assert strict.users(3) == ["u1", "u5"]
    anyorder = funnel(shop, FunnelSpec((Step("cart"), Step("view")),
                                       window=timedelta(minutes=5), order="any"))
    assert _users(anyorder) == [5, 4]  # u2's view and cart are 10 min apart
    excluded = funnel(shop, FunnelSpec(STEPS, window=timedelta(days=1),
                                       exclusions=(Exclusion("remove_from_cart"),)))
    assert excluded.users(3) == ["u1", "u5"]
    long = funnel(shop, FunnelSpec(STEPS, window=timedelta(days=3)))
    assert long.users(3) == ["u1", "u2", "u3", "u5"]


def test_funnel_options(shop: Any) -> None:
    held = funnel(shop, FunnelSpec(STEPS, window=timedelta(days=1), hold=("product",)))
    assert held.users(3) == ["u1", "u3"]  # u5 bought another product
    per_step = funnel(shop, FunnelSpec(
        (Step("view"), Step("cart"), Step("buy", within=timedelta(minutes=2))),
        window=timedelta(days=1)))
    assert per_step.users(3) == ["u1", "u5"]  # u3 took 3 minutes
    optional = funnel(shop, FunnelSpec(
        (Step("view"), Step("remove_from_cart", optional=True), Step("buy")),
        window=timedelta(days=1)))
    assert _users(optional) == [5, 1, 3]
    filtered = funnel(shop, FunnelSpec(
        (Step("view"), Step("cart", (Filter("platform", "=", "ios"),))),
        window=timedelta(days=1)))
    assert filtered.users(2) == ["u1", "u3"]
    by = funnel(shop, FunnelSpec(STEPS, window=timedelta(days=1), by="platform",
                                 attribution="step", attribution_step=1))
    rows = {(r["platform"], r["step"]): r["users"] for r in by.rows}
    assert rows == {("ios", 1): 2, ("ios", 2): 2, ("ios", 3): 2,
                    ("android", 1): 1, ("android", 2): 1, ("android", 3): 0,
                    ("web", 1): 1, ("web", 2): 1, ("web", 3): 1,
                    (None, 1): 1, (None, 2): 0, (None, 3): 0}


def _day(d: int, h: int = 10) -> datetime:
    return datetime(2026, 11, 2 + d, h, tzinfo=UTC)  # 2026-11-02 is a Monday


def _row(user: str, event: str, when: datetime) -> dict[str, Any]:
    return {"user_id": user, "event": event, "timestamp": when}


def test_retention_and_trend(engine: Any, events_table: Any) -> None:
    rows = [
        _row("a", "signup", _day(0)), _row("a", "open", _day(1)), _row("a", "open", _day(3)),
        _row("b", "signup", _day(0, 23)), _row("b", "open", _day(2)),
        _row("c", "signup", _day(1)), _row("c", "open", _day(1, 12)),
    ]
    table = engine.load("events", events_table(rows))
    on = retention(table, RetentionSpec("signup", "open", periods=3))
    got = {(r["cohort"].date().isoformat(), r["period"]): r["users"] for r in on}
    # the last event is on the 5th: the 6th is not observed (None), not a day nobody came
    assert got == {("2026-11-02", 0): 0, ("2026-11-02", 1): 1, ("2026-11-02", 2): 1,
                   ("2026-11-02", 3): 1, ("2026-11-03", 0): 1, ("2026-11-03", 1): 0,
                   ("2026-11-03", 2): 0, ("2026-11-03", 3): None}
    assert on[0]["cohort_size"] == 2
    after = retention(table, RetentionSpec("signup", "open", periods=3, mode="on_or_after"))
    assert [r["users"] for r in after[:4]] == [2, 2, 2, 1]  # a is back on day 3, b on 2
    weekly = retention(table, RetentionSpec("signup", None, grain="week", periods=1))
    assert [(r["period"], r["users"], r["cohort_size"]) for r in weekly] == [
        (0, 3, 3), (1, None, 3)]  # no event in the week of the 9th yet
    series = trend(table, TrendSpec(_day(2, 0), _day(4, 0), event="open", measure="users"))
    assert [(r["period"].day, r["value"], r["previous"]) for r in series] == [
        (4, 1, 0), (5, 1, 2)]  # b on the 4th, a on the 5th; a and c on the 3rd
    # counts are whole numbers, as JSON gives them (1, not 1.0)
    assert all(type(r["value"]) is int and type(r["previous"]) is int for r in series)
    assert series[0]["change"] is None
    assert series[1]["change"] == -0.5
    assert not any(r["partial"] for r in series)
    # at noon on the 4th: the 4th so far, not set against a whole day; the 5th not yet
    midway = trend(table, TrendSpec(_day(2, 0), _day(4, 0), event="open", measure="users"),
                   now=_day(2, 12))
    assert [(r["value"], r["partial"], r["change"]) for r in midway] == [
        (1.0, True, None), (None, False, None)]


def test_unbounded_retention_counts_returns_after_the_last_period_shown(
        engine: Any, events_table: Any) -> None:
    """"Came back in p or later" does not depend on how many periods are shown: a user
    back only on day 5 came back in day 2 or later. With --periods 2 the returns after
    day 2 were dropped before the last return was taken (lingo: 53 and 50 users at weeks
    2 and 3 with --periods 3, 54 and 54 with --periods 4)."""
    rows = [_row("a", "signup", _day(0)), _row("a", "open", _day(5)),
            _row("b", "signup", _day(0)), _row("b", "open", _day(1))]
    table = engine.load("events", events_table(rows))

    def users(periods: int) -> list[int]:
        spec = RetentionSpec("signup", "open", periods=periods, mode="on_or_after")
        return [r["users"] for r in retention(table, spec)]

    assert users(5) == [2, 2, 1, 1, 1, 1]
    assert users(2) == users(5)[:3]


def test_retention_leaves_periods_not_observed_yet_empty(engine: Any,
                                                         events_table: Any) -> None:
    """A period that is not over, or that the data does not reach yet, is None (not
    observed), not 0: a cohort three days old has had no week 1, which a 0 reads as
    churn."""
    rows = [_row("a", "signup", _day(0)), _row("a", "open", _day(1)),
            _row("b", "signup", _day(2)), _row("b", "open", _day(3))]  # last: the 5th
    table = engine.load("events", events_table(rows))

    def got(spec: RetentionSpec, now: datetime | None = None) -> dict[Any, Any]:
        return {(r["cohort"].day, r["period"]): (r["users"], r["retention"])
                for r in retention(table, spec, now=now)}

    daily = RetentionSpec("signup", "open", periods=3)
    # long after: the 6th and 7th are after the last event
    assert got(daily) == {(2, 0): (0, 0.0), (2, 1): (1, 1.0), (2, 2): (0, 0.0),
                          (2, 3): (0, 0.0), (4, 0): (0, 0.0), (4, 1): (1, 1.0),
                          (4, 2): (None, None), (4, 3): (None, None)}
    noon = _day(3, 12)  # the 5th at noon: the 5th is not over
    assert got(daily, noon) == {(2, 0): (0, 0.0), (2, 1): (1, 1.0), (2, 2): (0, 0.0),
                                (2, 3): (None, None), (4, 0): (0, 0.0),
                                (4, 1): (None, None), (4, 2): (None, None),
                                (4, 3): (None, None)}
    after = got(RetentionSpec("signup", "open", periods=3, mode="on_or_after"), noon)
    assert [after[2, p][0] for p in range(4)] == [1, 1, 0, None]
    # the brief's case: a weekly cohort that started on Monday, three days before
    weekly = RetentionSpec("signup", "open", grain="week", periods=2)
    assert got(weekly, noon) == {(2, 0): (None, None), (2, 1): (None, None),
                                 (2, 2): (None, None)}
    assert got(weekly, _day(7)) == {(2, 0): (2, 1.0), (2, 1): (None, None),
                                    (2, 2): (None, None)}  # no event on the 9th yet


def test_retention_filters_apply_to_any_event_too(engine: Any, events_table: Any) -> None:
    """``return_where`` with no return event filters every event it counts (it was left
    out, counting every return)."""
    day = 1440
    rows = [ev("a", "signup", 0), ev("a", "open", day, platform="ios"),
            ev("b", "signup", 0), ev("b", "search", day, platform="web"),
            ev("c", "signup", 0), ev("c", "open", 2 * day, platform="ios")]
    table = engine.load("events", events_table(rows))
    ios = (Filter("platform", "=", "ios"),)

    def users(spec: RetentionSpec) -> list[Any]:
        return [r["users"] for r in retention(table, spec)]

    assert users(RetentionSpec("signup", None, periods=2)) == [3, 2, 1]
    assert users(RetentionSpec("signup", None, periods=2, return_where=ios)) == [0, 1, 1]
    # cohorts of the ios events: a on day 1 (nothing on day 2), c on day 2 (the last day)
    assert users(RetentionSpec(None, None, periods=1, start_where=ios)) == [1, 0, 1, None]


PURCHASE = """
name: purchase_complete
properties:
  revenue: {type: number, required: true}
"""
REVENUE = """
metrics:
  revenue:
    measure: {agg: sum, event: purchase_complete, of: revenue}
"""


def test_metric_trend(tmp_path: Any, events_table: Any) -> None:
    """A semantic-layer metric over time, with the previous period (DuckDB only: the
    layer has its own engine-agnostic suite)."""
    import ibis

    from nerve.analytics import metric_trend
    from nerve.catalog import Catalog
    from nerve.semantic import SemanticLayer

    (tmp_path / "events").mkdir()
    (tmp_path / "events" / "purchase_complete.yaml").write_text(PURCHASE)
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "shop.yaml").write_text(REVENUE)
    layer = SemanticLayer.from_folder(tmp_path / "metrics", Catalog.load(tmp_path / "events"))
    rows = [{"user_id": "a", "event": "purchase_complete", "timestamp": _day(d),
             "properties": {"revenue": value}} for d, value in [(0, 10), (1, 5), (2, 30)]]
    table = ibis.duckdb.connect().create_table("events", events_table(rows))
    series = metric_trend(layer, table, "revenue", since=_day(2, 0), until=_day(4, 0))
    assert [(r["value"], r["previous"]) for r in series] == [(30.0, 10.0), (0.0, 5.0)]
    assert series[0]["change"] == 2.0


IDENTIFY = """
name: identify
type: identify
properties:
  age_group: {type: string}
"""
CART = """
name: add_to_cart
properties:
  price: {type: number}
"""


def test_funnel_by_semantic_dimension(tmp_path: Any, events_table: Any) -> None:
    """With the semantic layer, `by` is its dimension: a user trait as of each event."""
    import ibis

    from nerve.catalog import Catalog
    from nerve.semantic import SemanticLayer

    (tmp_path / "events").mkdir()
    for name, text in [("identify", IDENTIFY), ("add_to_cart", CART),
                       ("purchase_complete", PURCHASE)]:
        (tmp_path / "events" / f"{name}.yaml").write_text(text)
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "shop.yaml").write_text(REVENUE)
    layer = SemanticLayer.from_folder(tmp_path / "metrics", Catalog.load(tmp_path / "events"))
    rows = [
        {"type": "identify", "user_id": "u1", "timestamp": _day(0, 8),
         "traits": {"age_group": "18-24"}},
        {"user_id": "u1", "event": "add_to_cart", "timestamp": _day(0, 9)},
        {"type": "identify", "user_id": "u1", "timestamp": _day(0, 10),
         "traits": {"age_group": "65+"}},
        {"user_id": "u1", "event": "purchase_complete", "timestamp": _day(0, 11),
         "properties": {"revenue": 5}},
        {"user_id": "u2", "event": "add_to_cart", "timestamp": _day(0, 9)},
    ]
    table = ibis.duckdb.connect().create_table("events", events_table(rows))
    steps = (Step("add_to_cart"), Step("purchase_complete"))
    for method in ("compiled", "sql"):  # DuckDB's two paths
        first = funnel(table, FunnelSpec(steps, by="user.age_group"), layer=layer,
                       method=method)
        got = {(r["user.age_group"], r["step"]): r["users"] for r in first.rows}
        assert got == {("18-24", 1): 1, ("18-24", 2): 1, (None, 1): 1, (None, 2): 0}
        last = funnel(table, FunnelSpec(steps, by="user.age_group",
                                        attribution="last_touch"), layer=layer,
                      method=method)
        assert {r["user.age_group"] for r in last.rows} == {"65+", None}
        assert last.extra["method"] == method
