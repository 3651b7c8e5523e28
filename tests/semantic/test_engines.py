"""Every metric type against hand-computed numbers, on DuckDB, PostgreSQL and Spark.

One small shop history (three users, four weeks, one of them empty) is loaded once per
engine; each test runs a query on it and compares with numbers worked out by hand in
the comments. Queries bundle several metrics so Spark runs few of them.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from tests.semantic.conftest import identify, track, ts

from nerve.semantic import MetricQuery, SemanticLayer

NOW = datetime(2026, 4, 1, 12, tzinfo=UTC)
IOS = {"os": {"name": "iOS"}}
ANDROID = {"os": {"name": "Android"}}

HISTORY = [
    # u1 is 30 until 2026-03-10, then 66; u2 is 70 until 2026-03-10, then 30 (a fix)
    identify(ts(2026, 3, 1), "u1", age=30, country="DE", age_group="25-34"),
    identify(ts(2026, 3, 1), "u2", age=70, country="FR", age_group="65+"),
    identify(ts(2026, 3, 10), "u1", age=66, age_group="65+"),
    identify(ts(2026, 3, 10), "u2", age=30, age_group="25-34"),
    # week of 2026-03-02
    track("session_start", ts(2026, 3, 2, 10), "u1", session_id="s1", context=IOS),
    track("product_view", ts(2026, 3, 2, 10, 1), "u1", price=50.0, category="shoes",
          context=IOS),
    track("add_to_cart", ts(2026, 3, 2, 10, 2), "u1", price=50.0, quantity=1, context=IOS),
    track("checkout_start", ts(2026, 3, 2, 10, 3), "u1", context=IOS),
    track("purchase_complete", ts(2026, 3, 2, 10, 30), "u1", revenue=50.0, currency="EUR",
          context=IOS),
    track("session_start", ts(2026, 3, 3, 9), "u2", session_id="s2", context=ANDROID),
    track("product_view", ts(2026, 3, 3, 9, 5), "u2", price=20.0, context=ANDROID),
    track("checkout_start", ts(2026, 3, 3, 9, 10), "u2", context=ANDROID),
    # more than an hour after checkout: not a conversion within 1h
    track("purchase_complete", ts(2026, 3, 3, 11), "u2", revenue=20.0, currency="USD",
          context=ANDROID),
    track("product_view", ts(2026, 3, 4, 12), "u3", price=10.0),
    # week of 2026-03-09
    track("session_start", ts(2026, 3, 11, 8), "u1", session_id="s3", context=IOS),
    track("purchase_complete", ts(2026, 3, 11, 8, 30), "u1", revenue=100.0, currency="EUR",
          context=IOS),
    track("purchase_complete", ts(2026, 3, 12, 10), "u2", revenue=30.0, currency="EUR",
          context=ANDROID),
    # week of 2026-03-16: nothing. Week of 2026-03-23: one anonymous visit
    {"event": "session_start", "timestamp": ts(2026, 3, 24, 7), "anonymous_id": "a3",
     "properties": {"session_id": "s4"}},
]

WEEKS = [date(2026, 3, 2), date(2026, 3, 9), date(2026, 3, 16), date(2026, 3, 23)]


@pytest.fixture(scope="module")
def loaded(engine: Any) -> dict[str, Any]:
    """The shop history on each engine, loaded once (Spark is slow to start)."""
    return {}


@pytest.fixture
def events(engine: Any, loaded: dict[str, Any],
           events_table: Callable[[list[dict[str, Any]]], Any]) -> Any:
    key = engine.name
    if key not in loaded:
        loaded[key] = engine.load("semantic_events", events_table(HISTORY))
    return loaded[key]


def run(layer: SemanticLayer, table: Any, metrics: list[str], **options: Any) -> list[dict]:
    query = MetricQuery.build(metrics, **options)
    return layer.query(query, table, now=NOW).rows()


def close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) < 1e-9


def test_weekly_metrics_of_every_type(make_layer: Callable[..., SemanticLayer],
                                      events: Any) -> None:
    layer = make_layer()
    rows = run(layer, events,
               ["orders", "revenue", "aov", "revenue_wow", "active_users", "events",
                "cart_rate", "checkout_conversion", "checkout_conversions", "sessions",
                "eur_revenue"],
               grain="week", since="2026-03-02", until="2026-03-29")
    assert [r["week"] for r in rows] == WEEKS  # the empty week is there
    column = {k: [r[k] for r in rows] for k in rows[0]}
    assert column["orders"] == [2, 2, 0, 0]
    assert column["revenue"] == [70, 130, 0, 0]
    assert column["eur_revenue"] == [50, 130, 0, 0]
    # 70/2, 130/2, then 0/0: null, not an error
    assert column["aov"] == [35, 65, None, None]
    # week 1 against an empty week before it: null; (130-70)/70; (0-130)/130; 0/0
    assert [close(a, b) for a, b in zip(column["revenue_wow"],
                                        [None, 60 / 70, -1.0, None], strict=True)] == [True] * 4
    assert column["active_users"] == [3, 2, 0, 1]
    assert column["events"] == [10, 3, 0, 1]
    # add_to_cart users {u1} over product_view users {u1, u2, u3}
    assert close(column["cart_rate"][0], 1 / 3)
    assert column["cart_rate"][1:] == [None, None, None]
    # checkout users {u1, u2}; only u1 bought within the hour
    assert column["checkout_conversion"] == [0.5, None, None, None]
    assert column["checkout_conversions"] == [1, 0, 0, 0]
    assert column["sessions"] == [2, 1, 0, 1]


def test_breakdown_fills_every_period_for_every_value(
        make_layer: Callable[..., SemanticLayer], events: Any) -> None:
    layer = make_layer()
    rows = run(layer, events, ["revenue", "orders", "events"], by="platform", grain="week",
               since="2026-03-02", until="2026-03-22")
    got = {(r["week"], r["platform"]): (r["revenue"], r["orders"], r["events"]) for r in rows}
    # u3's events have no context: their platform is null, a breakdown value like others
    assert got == {
        (WEEKS[0], "Android"): (20, 1, 4), (WEEKS[0], "iOS"): (50, 1, 5),
        (WEEKS[0], None): (0, 0, 1),
        (WEEKS[1], "Android"): (30, 1, 1), (WEEKS[1], "iOS"): (100, 1, 2),
        (WEEKS[1], None): (0, 0, 0),
        (WEEKS[2], "Android"): (0, 0, 0), (WEEKS[2], "iOS"): (0, 0, 0),
        (WEEKS[2], None): (0, 0, 0),
    }
    assert list(rows[0]) == ["week", "platform", "revenue", "orders", "events"]
    # one metric alone: each (week, platform) once, though each platform has many weeks
    rows = run(layer, events, ["orders"], by="platform", grain="week", since="2026-03-02",
               until="2026-03-15")
    assert [(r["week"], r["platform"], r["orders"]) for r in rows] == [
        (WEEKS[0], "Android", 1), (WEEKS[0], "iOS", 1),
        (WEEKS[1], "Android", 1), (WEEKS[1], "iOS", 1)]


def test_traits_are_taken_as_of_the_event(make_layer: Callable[..., SemanticLayer],
                                          events: Any) -> None:
    layer = make_layer()
    # seniors (age >= 65 at the time): u2 bought in week 1 (age 70); u1 in week 2 (66)
    rows = run(layer, events, ["revenue", "orders"], grain="week", segments="seniors",
               since="2026-03-02", until="2026-03-15")
    assert [(r["revenue"], r["orders"]) for r in rows] == [(20, 1), (100, 1)]
    # by a trait dimension, and a where on another trait that never changed (country)
    rows = run(layer, events, ["revenue"], by="age_group", where="user.country = 'DE'",
               since="2026-03-01", until="2026-03-31")
    assert {r["age_group"]: r["revenue"] for r in rows} == {"25-34": 50, "65+": 100}


def test_cumulative_windows(make_layer: Callable[..., SemanticLayer], events: Any) -> None:
    layer = make_layer()
    rows = run(layer, events, ["wau", "revenue_mtd", "revenue_all_time"], grain="day",
               since="2026-03-09", until="2026-03-12")
    got = {r["day"]: (r["wau"], r["revenue_mtd"], r["revenue_all_time"]) for r in rows}
    assert got == {
        # trailing 7 days ending 03-09: 03-03..03-09 holds u2 (03-03) and u3 (03-04)
        date(2026, 3, 9): (2, 70, 70),
        # 03-04..03-10: u3 only
        date(2026, 3, 10): (1, 70, 70),
        # 03-05..03-11: u1
        date(2026, 3, 11): (1, 170, 170),
        # 03-06..03-12: u1, u2
        date(2026, 3, 12): (2, 200, 200),
    }


def test_grain_to_date_is_as_of_the_end_of_each_period(
        make_layer: Callable[..., SemanticLayer], events: Any) -> None:
    """A period that crosses the grain's boundary counts from the start of the grain
    holding its end: the week of 2026-03-30..04-05 ends in April, so its month to date is
    April's revenue (none), not March's 200 plus April's."""
    layer = make_layer(extra="metrics:\n  revenue_wtd:\n    type: cumulative\n"
                             "    measure: {agg: sum, event: purchase_complete, of: revenue}\n"
                             "    grain_to_date: week\n")
    rows = run(layer, events, ["revenue_mtd"], grain="week", since="2026-03-02",
               until="2026-04-05")
    assert [(r["week"], r["revenue_mtd"]) for r in rows] == [
        (WEEKS[0], 70), (WEEKS[1], 200), (WEEKS[2], 200), (WEEKS[3], 200),
        (date(2026, 3, 30), 0)]
    # March as a month ends in the week of 03-30 (nothing bought on 03-30 or 03-31);
    # the part of February's last week before 03-01 is not March's week to date either
    rows = run(layer, events, ["revenue_wtd", "revenue_mtd"], grain="month",
               since="2026-03-01", until="2026-03-31")
    assert [(r["month"], r["revenue_wtd"], r["revenue_mtd"]) for r in rows] == [
        (date(2026, 3, 1), 0, 200)]
    # without a grain: as of the end of the range (April 2): April so far
    rows = run(layer, events, ["revenue_mtd"], since="2026-03-09", until="2026-04-02")
    assert rows == [{"revenue_mtd": 0}]
    rows = run(layer, events, ["revenue_mtd"], since="2026-03-09", until="2026-03-31")
    assert rows == [{"revenue_mtd": 200}]


def test_avg_of_an_integer_property(make_layer: Callable[..., SemanticLayer],
                                    events: Any) -> None:
    """PostgreSQL's AVG of a bigint is a numeric, which did not convert to a float: the
    query failed there (engine refused) while DuckDB and Spark answered."""
    layer = make_layer(extra="metrics:\n  avg_quantity:\n"
                             "    measure: {agg: avg, event: add_to_cart, of: quantity}\n")
    rows = run(layer, events, ["avg_quantity"], grain="week", since="2026-03-02",
               until="2026-03-15")
    assert [(r["week"], r["avg_quantity"]) for r in rows] == [(WEEKS[0], 1.0),
                                                              (WEEKS[1], None)]


def test_totals_without_a_grain(make_layer: Callable[..., SemanticLayer],
                                events: Any) -> None:
    layer = make_layer()
    rows = run(layer, events, ["orders", "avg_order", "max_order", "median_order",
                               "revenue_per_user"],
               since="2026-03-01", until="2026-03-31")
    assert len(rows) == 1
    row = rows[0]
    assert set(row) == {"orders", "avg_order", "max_order", "median_order",
                        "revenue_per_user"}
    assert row["orders"] == 4
    assert close(row["avg_order"], 50.0)
    assert row["max_order"] == 100
    assert close(row["median_order"], 40.0)  # (30 + 50) / 2
    assert close(row["revenue_per_user"], 200 / 4)  # u1, u2, u3 and a3


def test_days_follow_the_workspace_time_zone_across_dst(
        make_layer: Callable[..., SemanticLayer], engine: Any,
        events_table: Callable[[list[dict[str, Any]]], Any]) -> None:
    # Europe/Berlin switches to summer time on 2026-03-29 at 02:00 (UTC+1 -> UTC+2)
    table = engine.load("semantic_dst", events_table([
        track("purchase_complete", ts(2026, 3, 28, 22, 30), "u1", revenue=1.0),  # 28th 23:30
        track("purchase_complete", ts(2026, 3, 28, 23, 30), "u1", revenue=2.0),  # 29th 00:30
        track("purchase_complete", ts(2026, 3, 29, 21, 30), "u1", revenue=4.0),  # 29th 23:30
        track("purchase_complete", ts(2026, 3, 29, 22, 30), "u1", revenue=8.0),  # 30th 00:30
    ]))
    berlin = make_layer("Europe/Berlin")
    rows = run(berlin, table, ["revenue"], grain="day", since="2026-03-27",
               until="2026-03-30")
    assert [(r["day"], r["revenue"]) for r in rows] == [
        (date(2026, 3, 27), 0), (date(2026, 3, 28), 1), (date(2026, 3, 29), 6),
        (date(2026, 3, 30), 8)]
    # the night of the switch by the hour: 02:00-03:00 does not exist in Berlin
    rows = run(berlin, table, ["orders"], grain="hour", since="2026-03-29T00:00",
               until="2026-03-29T04:00")
    assert [(r["hour"].hour, r["orders"]) for r in rows] == [(0, 1), (1, 0), (3, 0)]
    utc = make_layer("UTC")
    rows = run(utc, table, ["revenue"], grain="day", since="2026-03-28", until="2026-03-29")
    assert [r["revenue"] for r in rows] == [3, 12]


def test_event_rows_resolve_dimensions_for_other_analyses(
        make_layer: Callable[..., SemanticLayer], events: Any) -> None:
    layer = make_layer("Europe/Berlin")
    rows = layer.event_rows(events, "purchase_complete", dimensions=["platform", "user.age"],
                            segments=["seniors"], since="2026-03-01", until="2026-03-31",
                            now=NOW).order_by("timestamp").to_pyarrow().to_pylist()
    assert [(r["user"], r["platform"], r["user_age"]) for r in rows] == [
        ("u2", "Android", 70), ("u1", "iOS", 66)]
    assert rows[0]["local_time"] == datetime(2026, 3, 3, 12)  # noqa: DTZ001 - Berlin wall clock
    assert rows[0]["event"] == "purchase_complete"


def test_the_period_that_holds_now_is_marked_partial(make_layer: Callable[..., SemanticLayer],
                                                     events: Any) -> None:
    """A week queried on its Wednesday holds three days: the result says which period
    is still running, so that its low figures are not read as a drop."""
    layer = make_layer()
    query = MetricQuery.build(["orders"], grain="week", since="2026-03-02", until="today")
    wednesday = datetime(2026, 3, 11, 12, tzinfo=UTC)
    result = layer.query(query, events, now=wednesday)
    assert [r["week"] for r in result.rows()] == WEEKS[:2]
    assert result.partial == date(2026, 3, 9)
    assert result.as_dict()["partial"] == "2026-03-09"
    # a range that ends before now has no partial period, nor has a total
    past = MetricQuery.build(["orders"], grain="week", since="2026-03-02", until="2026-03-08")
    assert layer.query(past, events, now=wednesday).partial is None
    total = MetricQuery.build(["orders"], since="2026-03-02")
    assert layer.query(total, events, now=wednesday).partial is None
    hourly = MetricQuery.build(["orders"], grain="hour", since="2026-03-11")
    # an hour is labelled with its local time, naive
    assert layer.query(hourly, events, now=wednesday).partial == wednesday.replace(tzinfo=None)


def test_a_sum_of_amounts_with_cents_is_their_exact_sum(
        make_layer: Callable[..., SemanticLayer], engine: Any,
        events_table: Callable[[list[dict[str, Any]]], Any]) -> None:
    """Revenue with cents adds up to its cents, per period and per breakdown value: a
    plain sum of doubles printed 23878673.869998433 for 23,878,673.87 (and each day's
    revenue ended in ...99999996). Checked against Python's decimal on the values sent."""
    if engine.name == "spark":
        pytest.skip("Spark adds floats plainly (docs/metrics.md)")
    rng = random.Random(1)
    sent = [(ts(2026, 3, 2 + rng.randrange(14), rng.randrange(24)), rng.choice(["A", "B"]),
             f"{rng.randrange(1, 100_000) / 100:.2f}") for _ in range(3000)]
    history = [track("purchase_complete", when, f"u{i % 40}", revenue=float(amount),
                     currency="EUR", context={"os": {"name": os_name}})
               for i, (when, os_name, amount) in enumerate(sent)]
    table = engine.load("cents_events", events_table(history))
    rows = run(make_layer(), table, ["revenue"], by="platform", grain="week",
               since="2026-03-02", until="2026-03-15")
    exact: dict[tuple[date, str], Decimal] = defaultdict(Decimal)
    for when, os_name, amount in sent:
        exact[(WEEKS[(when.date() - WEEKS[0]).days // 7], os_name)] += Decimal(amount)
    assert {(r["week"], r["platform"]): Decimal(repr(r["revenue"])) for r in rows} == exact
    (total,) = run(make_layer(), table, ["revenue"], since="2026-03-02", until="2026-03-15")
    assert Decimal(repr(total["revenue"])) == sum(exact.values())


@pytest.mark.parametrize("amounts", [
    ["79.99", "9.99"],                                    # a plain double sum: 89.97999999999999
    ["79.99"] * 10 + ["9.99"] * 7,                        # 1009.8299999999999
    ["0.1", "0.1", "0.1", "-0.3"],                        # refunds cancelling: 2.78e-17
    ["1234567.89", "-0.01", "0.000001"],
])
def test_a_sum_is_the_sum_of_the_values_sent_on_every_engine(
        make_layer: Callable[..., SemanticLayer], engine: Any,
        events_table: Callable[[list[dict[str, Any]]], Any], amounts: list[str]) -> None:
    """A few amounts whose doubles add up to just below their sum: the exact sum of the
    doubles (DuckDB's fsum alone) printed 79.99 + 9.99 as 89.97999999999999, where
    PostgreSQL answered 89.98: both engines give the double nearest the decimal sum."""
    if engine.name == "spark":
        pytest.skip("Spark adds floats plainly (docs/metrics.md)")
    history = [track("purchase_complete", ts(2026, 3, 2, 10, i), "u1", revenue=float(a),
                     currency="EUR") for i, a in enumerate(amounts)]
    table = engine.load(f"sum_events_{len(amounts)}_{amounts[0].replace('.', '_')}",
                        events_table(history))
    (row,) = run(make_layer(), table, ["revenue"], since="2026-03-02", until="2026-03-02")
    assert row["revenue"] == float(sum(Decimal(a) for a in amounts))


@pytest.mark.parametrize("amounts", [
    ["79.99", "9.99"],                                    # AVG of the doubles: 44.989999999999995
    ["19.99"] * 3 + ["0.01"] * 7 + ["59.99"] * 5,
])
def test_an_average_is_its_sum_over_its_count_on_every_engine(
        make_layer: Callable[..., SemanticLayer], engine: Any,
        events_table: Callable[[list[dict[str, Any]]], Any], amounts: list[str]) -> None:
    """AVG of doubles drifts in the last digits, and differently on each engine (2833.96 of
    104 subscriptions averaged 27.249615384615367 on DuckDB and 27.24961538461533 on a
    PostgreSQL copy with jsonb properties, where 2833.96 / 104 is ...385): an average is
    the exact sum divided by the count, so it agrees with the sum and across engines."""
    if engine.name == "spark":
        pytest.skip("Spark adds floats plainly (docs/metrics.md)")
    history = [track("purchase_complete", ts(2026, 3, 2, 10, i), "u1", revenue=float(a),
                     currency="EUR") for i, a in enumerate(amounts)]
    table = engine.load(f"avg_events_{len(amounts)}", events_table(history))
    (row,) = run(make_layer(), table, ["avg_order", "revenue", "orders"],
                 since="2026-03-02", until="2026-03-02")
    exact = float(sum(Decimal(a) for a in amounts))
    assert row["revenue"] == exact
    assert row["avg_order"] == exact / len(amounts) == row["revenue"] / row["orders"]


def test_a_copy_whose_timestamps_have_no_time_zone_counts_the_same_days(
        make_layer: Callable[..., SemanticLayer], engine: Any,
        events_table: Callable[[list[dict[str, Any]]], Any]) -> None:
    """A copy of ``events`` with ``timestamp`` (PostgreSQL) or ``TIMESTAMP`` (DuckDB)
    columns holds UTC without saying so: the engines' ``timezone(zone, ts)`` read it as
    Berlin wall-clock time and shifted it the wrong way, so a 23:30 UTC purchase (00:30
    in Berlin, the next day) stayed on its UTC day, silently, in every weekly figure."""
    if engine.name == "spark":
        pytest.skip("Spark's TIMESTAMP is an instant (session time zone UTC)")
    import pyarrow as pa

    data = events_table([
        track("purchase_complete", ts(2026, 3, 2, 22, 30), "u1", revenue=1.0),  # 2nd 23:30
        track("purchase_complete", ts(2026, 3, 2, 23, 30), "u1", revenue=2.0),  # 3rd 00:30
        track("purchase_complete", ts(2026, 3, 3, 22, 59), "u1", revenue=4.0),  # 3rd 23:59
    ])
    naive = pa.timestamp("us")
    data = data.set_column(data.schema.get_field_index("timestamp"), "timestamp",
                           data.column("timestamp").cast(naive))
    table = engine.load("naive_ts_events", data)
    assert table.timestamp.type().timezone is None
    rows = run(make_layer("Europe/Berlin"), table, ["revenue"], grain="day",
               since="2026-03-02", until="2026-03-03")
    assert [(r["day"], r["revenue"]) for r in rows] == [(date(2026, 3, 2), 1),
                                                        (date(2026, 3, 3), 6)]
