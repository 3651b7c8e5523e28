"""Pure parts: durations, time ranges, expressions, readiness and the exported names."""
# ruff: noqa: DTZ001 - naive datetimes here are wall-clock times in the workspace zone

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime

import pytest

import nerve.semantic
from nerve.errors import QueryError
from nerve.semantic import ChecksHealth, Health, MetricQuery, SemanticLayer, parse_duration
from nerve.semantic._expr import (
    And,
    Cmp,
    InList,
    IsNull,
    Like,
    Lit,
    Not,
    Or,
    Ref,
    parse_arithmetic,
    parse_filter,
)
from nerve.semantic._time import add_months, periods, resolve_range, zone

NOW = datetime(2026, 3, 25, 10, 30, tzinfo=UTC)  # a Wednesday; 11:30 in Berlin


def test_exported_names() -> None:
    assert set(nerve.semantic.__all__) == {
        "AGGREGATIONS", "FORMATS", "GRAINS", "METRIC_TYPES", "ChecksHealth", "CompiledQuery",
        "ConversionSpec", "Definitions", "Dimension", "Health", "HealthSource", "Lineage",
        "Measure", "Metric", "MetricInput", "MetricQuery", "MetricResult", "MetricsError",
        "Readiness", "Requirement", "SemanticLayer", "Segment", "health_from_checks",
        "parse_duration", "query", "readiness",
    }


@pytest.mark.parametrize(("text", "count", "unit"), [
    ("24h", 24, "hour"), ("30d", 30, "day"), ("8w", 8, "week"), ("3m", 3, "month"),
    ("1y", 1, "year"), ("15min", 15, "minute"), (" 2 W ", 2, "week"),
])
def test_durations(text: str, count: int, unit: str) -> None:
    duration = parse_duration(text)
    assert (duration.count, duration.unit) == (count, unit)


@pytest.mark.parametrize("text", ["", "7 days", "-3d", "1.5h", "d"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="expected a duration"):
        parse_duration(text)


@pytest.mark.parametrize(("since", "grain", "first", "rows"), [
    ("8w", "week", datetime(2026, 2, 2), 8),      # 8 weeks including this one
    ("30d", "day", datetime(2026, 2, 24), 30),
    ("24h", "hour", datetime(2026, 3, 24, 12), 24),
    ("3m", "month", datetime(2026, 1, 1), 3),
    ("2026-03-01", "day", datetime(2026, 3, 1), 25),
    ("yesterday", "day", datetime(2026, 3, 24), 2),
])
def test_relative_ranges_count_periods_including_the_current_one(
        since: str, grain: str, first: datetime, rows: int) -> None:
    tz = zone("Europe/Berlin")
    found = resolve_range(since, None, grain=grain, tz=tz, now=NOW, data_bounds=None)
    starts = periods(found.start, found.end, grain)
    assert starts[0] == first
    assert len(starts) == rows


def test_an_until_date_is_included_and_bounds_convert_to_utc() -> None:
    tz = zone("Europe/Berlin")
    found = resolve_range(date(2026, 3, 28), "2026-03-29", grain=None, tz=tz, now=NOW,
                          data_bounds=None)
    assert (found.start, found.end) == (datetime(2026, 3, 28), datetime(2026, 3, 30))
    # midnight in Berlin: UTC+1 before the switch, UTC+2 after it
    assert found.start_utc == datetime(2026, 3, 27, 23, tzinfo=UTC)
    assert found.end_utc == datetime(2026, 3, 29, 22, tzinfo=UTC)


def test_a_range_without_bounds_comes_from_the_data() -> None:
    bounds = (datetime(2026, 3, 3, 5, tzinfo=UTC), datetime(2026, 3, 17, 9, tzinfo=UTC))
    found = resolve_range(None, None, grain="week", tz=zone("UTC"), now=NOW,
                          data_bounds=bounds)
    assert (found.start, found.end) == (datetime(2026, 3, 2), datetime(2026, 3, 23))


def test_an_empty_range_is_an_error() -> None:
    # the dates as given, not only the range's end (an until date's next midnight)
    with pytest.raises(QueryError, match=r"empty time range: since 2026-03-10 is not "
                                         r"before until 2026-03-01 \(from "
                                         r"2026-03-10T00:00:00 to 2026-03-02T00:00:00"):
        resolve_range("2026-03-10", "2026-03-01", grain="day", tz=zone("UTC"), now=NOW,
                      data_bounds=None)


def test_unknown_time_zone() -> None:
    with pytest.raises(QueryError, match="unknown time zone 'Mars/Olympus'"):
        zone("Mars/Olympus")


def test_months_clamp_to_the_last_day() -> None:
    assert add_months(datetime(2026, 3, 31), -1) == datetime(2026, 2, 28)
    assert add_months(datetime(2024, 3, 31), -1) == datetime(2024, 2, 29)
    assert add_months(datetime(2026, 1, 15), 13) == datetime(2027, 2, 15)


def test_filters_parse_into_a_small_tree() -> None:
    assert parse_filter("user.age >= 65") == Cmp(">=", Ref(("user", "age")), Lit(65))
    assert parse_filter("a in ('x', 'y') and not b is null") == And((
        InList(Ref(("a",)), (Lit("x"), Lit("y"))), IsNull(Ref(("b",)), negate=True)))
    assert parse_filter("not (a = 1 or b = 2)") == Not(Or((Cmp("=", Ref(("a",)), Lit(1)),
                                                           Cmp("=", Ref(("b",)), Lit(2)))))
    assert parse_filter("c not like 'pro%'") == Like(Ref(("c",)), "pro%", negate=True)
    assert parse_filter("x between -1 and 2.5") == And((Cmp(">=", Ref(("x",)), Lit(-1)),
                                                        Cmp("<=", Ref(("x",)), Lit(2.5))))
    assert parse_filter("context.device.ad.id is not null") == \
        IsNull(Ref(("context", "device", "ad", "id")), negate=True)


@pytest.mark.parametrize("text", ["price + 1", "lower(x) = 'a'", "x in (select 1)",
                                  "revenue >", "x = y or", "a is true"])
def test_filters_refuse_anything_else(text: str) -> None:
    with pytest.raises(ValueError, match=r"unsupported|cannot parse|only IS NULL|IN takes"):
        parse_filter(text)


@pytest.mark.parametrize(("text", "message"), [
    ("user.age < 20 and", "AND is missing an operand"),
    ("revenue >", "> is missing an operand"),
    ("not", "NOT is missing an operand"),
    ("price between 1 and", "BETWEEN is missing an operand"),
])
def test_a_filter_cut_short_says_so_in_its_own_terms(text: str, message: str) -> None:
    """It said "Required keyword: 'expression' missing for <class
    'sqlglot.expressions.And'>", a parser's internals."""
    with pytest.raises(ValueError, match="cannot parse") as info:
        parse_filter(text)
    assert str(info.value) == f"cannot parse {text!r}: {message}"


@pytest.mark.parametrize("text", ["platform = 'ios'; DROP TABLE events",
                                  "platform = 'ios'; country = 'BR'"])
def test_filters_refuse_several_statements(text: str) -> None:
    """Everything after a ';' used to be dropped without a word (sqlglot.parse_one)."""
    with pytest.raises(ValueError, match="2 statements separated by ';'"):
        parse_filter(text)
    with pytest.raises(ValueError, match="2 statements"):
        parse_arithmetic("a; b")


def test_a_semicolon_alone_is_no_second_statement() -> None:
    ios = Cmp("=", Ref(("platform",)), Lit("ios"))
    assert parse_filter("platform = 'ios';") == ios
    assert parse_filter("platform = 'a;b'") == Cmp("=", Ref(("platform",)), Lit("a;b"))
    with pytest.raises(ValueError, match="no expression"):
        parse_filter(";")


def test_arithmetic() -> None:
    node = parse_arithmetic("(a - b) / b * 100")
    assert node.op == "*"  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="unsupported"):
        parse_arithmetic("a / 'b'")


def test_metric_query_build_takes_loose_arguments() -> None:
    query = MetricQuery.build("revenue, orders", by="platform", order_by=["-revenue"],
                              grain="week", limit=3)
    assert query == MetricQuery(("revenue", "orders"), by=("platform",), grain="week",
                                order_by=("-revenue",), limit=3)
    assert query.as_dict()["metrics"] == ["revenue", "orders"]


def test_readiness_reports_needs_catalog_and_health(
        make_layer: Callable[..., SemanticLayer]) -> None:
    layer = make_layer()
    from nerve.quality import CheckResult, Status

    health = ChecksHealth([  # what `nerve check` records
        CheckResult("volume", Status.fail, "volume dropped 80%", event="purchase_complete"),
        CheckResult("lateness", Status.warn, "late events", event="checkout_start"),
        CheckResult("schema", Status.passed, "ok", event="add_to_cart"),
        CheckResult("schema", Status.passed, "ok", event="product_view"),
        CheckResult("freshness", Status.error, "could not run"),
    ])
    found = {r.metric: r for r in layer.readiness(health)}
    assert found["aov"].status == "unhealthy"
    assert found["aov"].health["purchase_complete"] == Health("fail", "volume dropped 80%")
    assert found["checkout_conversion"].status == "unhealthy"
    assert found["cart_rate"].status == "ready"
    assert found["sessions"].health["session_start"].status == "unknown"
    assert found["sessions"].status == "ready"
    info = found["eur_revenue"].as_dict()
    assert info["events"] == ["purchase_complete"]
    assert {r["field"] for r in info["requirements"]} >= \
        {"purchase_complete.properties.revenue"[len("purchase_complete."):],
         "properties.currency"}


def test_readiness_without_checks_and_with_catalog_gaps(
        make_layer: Callable[..., SemanticLayer], shop_dir: object) -> None:
    from pathlib import Path

    from nerve.catalog import Catalog

    root = Path(str(shop_dir))
    (root / "metrics" / "gap.yaml").write_text(
        "metrics:\n  wishlists:\n    measure: {agg: count, event: wishlist_add}\n"
        "  big_orders:\n    measure: {agg: count, event: purchase_complete, "
        "filter: size > 3}\n", encoding="utf-8")
    layer = SemanticLayer.from_folder(root / "metrics", Catalog.load(root / "events"),
                                      strict=False)
    assert len(layer.problems) == 2
    found = {r.metric: r for r in layer.readiness()}
    assert found["wishlists"].status == "missing"
    assert found["big_orders"].status == "missing"
    missing = [r for r in found["big_orders"].requirements if not r.in_catalog]
    assert "no property 'size'" in missing[0].problem
    assert found["orders"].status == "ready"
    assert found["orders"].health["purchase_complete"].status == "unknown"


def test_the_one_call_query_function(make_layer: Callable[..., SemanticLayer],
                                     events_table: Callable[..., object]) -> None:
    import ibis
    from tests.semantic.conftest import track, ts

    table = ibis.duckdb.connect().create_table("events", events_table([  # type: ignore[arg-type]
        track("purchase_complete", ts(2026, 3, 2, 10), "u1", revenue=5.0),
        track("purchase_complete", ts(2026, 3, 4, 10), "u2", revenue=7.0),
    ]))
    result = nerve.semantic.query("revenue,orders", layer=make_layer(), table=table,
                                  grain="week", since="2026-03-02", until="2026-03-08")
    assert result.rows() == [{"week": date(2026, 3, 2), "revenue": 12.0, "orders": 2}]
    assert result.time_column == "week"
    assert result.dialect == "duckdb"
    assert result.lineage["orders"].formula == "count(*) of purchase_complete"
    assert result.as_dict()["rows"] == result.rows()


def test_with_metrics_adds_checked_metrics(make_layer: Callable[..., SemanticLayer]) -> None:
    from nerve.semantic import Measure, Metric, MetricsError

    layer = make_layer()
    extra = Metric(name="big_orders", type="simple", measure=Measure(
        agg="count", events=("purchase_complete",), filter="revenue >= 100"))
    wider = layer.with_metrics([extra])
    assert "big_orders" in wider
    assert "big_orders" not in layer
    bad = Metric(name="bad", type="simple", measure=Measure(agg="sum", events=("nope",),
                                                            of="x"))
    with pytest.raises(MetricsError, match="'nope' is not in the catalog"):
        layer.with_metrics([bad])


CONVERSIONS = """
metrics:
  by_user:
    type: conversion
    base: {event: checkout_start}
    conversion: {event: purchase_complete}
    window: 1h
  by_event:
    type: conversion
    base: {agg: count, event: checkout_start}
    conversion: {event: purchase_complete}
    window: 1h
  by_session:
    type: conversion
    entity: session_id
    base: {event: checkout_start}
    conversion: {event: purchase_complete}
    window: 1h
"""


def test_a_conversion_counts_distinct_entities_unless_asked_for_events(
        make_layer: Callable[..., SemanticLayer],
        events_table: Callable[..., object]) -> None:
    """docs/metrics.md: the base is count_distinct of the entity by default."""
    import ibis
    from tests.semantic.conftest import track, ts

    table = ibis.duckdb.connect().create_table("events", events_table([  # type: ignore[arg-type]
        # u1: two checkouts in session s1, then a purchase in s1; a checkout in s2, no buy
        track("checkout_start", ts(2026, 3, 2, 10), "u1", session_id="s1"),
        track("checkout_start", ts(2026, 3, 2, 10, 5), "u1", session_id="s1"),
        track("purchase_complete", ts(2026, 3, 2, 10, 10), "u1", session_id="s1",
              revenue=5.0),
        track("checkout_start", ts(2026, 3, 2, 15), "u1", session_id="s2"),
        # u2: one checkout in s3, no purchase
        track("checkout_start", ts(2026, 3, 2, 11), "u2", session_id="s3"),
        # u3: one checkout in s4, no purchase
        track("checkout_start", ts(2026, 3, 2, 12), "u3", session_id="s4"),
    ]))
    layer = make_layer(extra=CONVERSIONS)
    result = nerve.semantic.query("by_user,by_event,by_session", layer=layer, table=table,
                                  since="2026-03-02", until="2026-03-02")
    # users: u1 converted, u2 and u3 did not. Events: 2 of 5 checkouts were followed by
    # the buy within the hour (both of u1's in s1). Sessions: s1 converted, s2-s4 did not
    assert result.rows() == [{"by_user": 1 / 3, "by_event": 2 / 5, "by_session": 1 / 4}]
    assert result.lineage["by_session"].formula.startswith("count_distinct(session_id)")

