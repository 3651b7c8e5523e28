"""Loading metrics/*.yaml: every problem is reported with its file and line."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from nerve.catalog import Catalog
from nerve.errors import CatalogError, QueryError
from nerve.semantic import Metric, MetricsError, SemanticLayer


def problems(make_layer: Callable[..., SemanticLayer], text: str) -> list[str]:
    with pytest.raises(MetricsError) as info:
        make_layer(extra=text)
    return [f"{Path(str(loc.file)).name}:{loc.line}: {msg}" for loc, msg in info.value.problems]


def test_the_test_metrics_load(make_layer: Callable[..., SemanticLayer]) -> None:
    layer = make_layer()
    aov = layer.get("aov")
    assert isinstance(aov, Metric)
    assert (aov.type, aov.numerator, aov.denominator, aov.format) == \
        ("ratio", "revenue", "orders", "currency")
    assert layer.get("actives").name == "active_users"  # by synonym
    assert layer.events_of("revenue_wow") == ["purchase_complete"]
    assert set(layer.segments) == {"seniors", "germans"}
    assert layer.dimensions["age"].type == "integer"
    assert isinstance(layer.get("wau").window, str)


def test_metrics_errors_are_catalog_errors_with_a_code() -> None:
    error = MetricsError([])
    assert isinstance(error, CatalogError)
    assert error.code == "metrics"


@pytest.mark.parametrize(("text", "expected"), [
    ("metrics:\n  x:\n    measure: {agg: count, event: purchase}\n",
     "extra.yaml:3: x.measure.event: 'purchase' is not in the catalog"),
    ("metrics:\n  x:\n    measure: {agg: sum, event: purchase_complete, of: amount}\n",
     "extra.yaml:3: x.measure.of: 'amount': purchase_complete has no property 'amount'"),
    ("metrics:\n  x:\n    measure: {agg: sum, event: purchase_complete, of: currency}\n",
     "extra.yaml:3: x.measure.of: sum needs a number, but currency is string"),
    ("metrics:\n  x:\n    measure:\n      agg: count\n      event: purchase_complete\n"
     "      filter: revenue = 'big'\n",
     "extra.yaml:4: x.measure.filter: revenue = 'big': revenue is number, compared (=) "
     "with string 'big'"),
    ("metrics:\n  x:\n    kind: simple\n    measure: {agg: count, event: orders}\n",
     "extra.yaml:3: x.kind: unknown field"),
    ("metrics:\n  x:\n    type: ratio\n    numerator: orders\n    denominator: nope\n",
     "extra.yaml:5: x.denominator: unknown metric 'nope'"),
    ("metrics:\n  x:\n    type: derived\n    expr: orders / nothing\n",
     "extra.yaml:4: x.expr: 'nothing' is neither an input alias nor a metric"),
    ("metrics:\n  x:\n    type: cumulative\n    measure: {agg: count, event: purchase_complete}"
     "\n    window: 7 days\n",
     "extra.yaml:5: x.window: expected a duration like 24h, 30d, 8w, 3m or 1y"),
    ("metrics:\n  x:\n    type: funnel\n", "extra.yaml:3: x.type: expected one of simple"),
    ("metrics:\n  x:\n    measure: {agg: percentile, event: purchase_complete, of: revenue}\n",
     "extra.yaml:3: x.measure.percentile: required for agg percentile"),
    ("segments:\n  big_spenders: revenue > 100\n",
     "extra.yaml:2: segments.big_spenders: 'revenue': a segment may use user.TRAIT"),
    # a segment is type-checked and resolved at load like a filter (it was only at query
    # time, as an engine error: HTTP 500)
    ("segments:\n  free: user.plan = 3\n",
     "extra.yaml:2: segments.free: user.plan = 3: user.plan is string, compared (=) with "
     "integer 3"),
    ("segments:\n  old: age = 'old'\n",
     "extra.yaml:2: segments.old: age = 'old': age is integer, compared (=) with string"),
    ("segments:\n  tall: user.height > 2\n",
     "extra.yaml:2: segments.tall: 'user.height': identify has no trait 'height'"),
    ("metrics:\n  x:\n    measure: {agg: count, event: purchase_complete}\n    filter: "
     "user.shoe_size > 40\n",
     "extra.yaml:4: x.filter (on measure): 'user.shoe_size': identify has no trait"),
    ("dimensions:\n  event: context.os.name\n",
     "extra.yaml:2: dimensions.event: 'event' is a built-in name"),
    ("metrics:\n  a:\n    type: ratio\n    numerator: b\n    denominator: orders\n"
     "  b:\n    type: ratio\n    numerator: a\n    denominator: orders\n",
     "extra.yaml:3: a: metrics refer to each other in a cycle: a -> b -> a"),
    ("metrics:\n  Revenue2:\n    measure: {agg: count, event: purchase_complete}\n",
     "extra.yaml:2: metrics.Revenue2: names are lowercase letters"),
    ("metrics:\n  orders:\n    measure: {agg: count, event: purchase_complete}\n",
     "shop.yaml:9: metrics.orders: already defined in metrics/extra.yaml:2"),
    ("metrics: [1, 2]\n", "extra.yaml:1: metrics: expected a mapping keyed by name"),
    ("metrics:\n  x:\n    type: conversion\n    entity: session_id\n    base:\n"
     "      {agg: count_distinct, of: user, event: checkout_start}\n"
     "    conversion: {event: purchase_complete}\n",
     "extra.yaml:6: x.base.of: a conversion counts distinct entities ('session_id')"),
    ("metrics:\n  x:\n    type: conversion\n    base: {agg: sum, event: checkout_start, "
     "of: n}\n    conversion: {event: purchase_complete}\n",
     "extra.yaml:4: x.base.agg: count_distinct (of the entity, the default) or count"),
    # an unclosed bracket: the line it opens on, not the end of the file
    ("metrics:\n  x: {measure: {agg: count, event: purchase_complete}\n",
     "extra.yaml:2: invalid YAML: expected ',' or '}', but got '<stream end>' (while "
     "parsing a flow mapping at line 2, column 6)"),
])
def test_problems_name_file_line_and_field(make_layer: Callable[..., SemanticLayer],
                                           text: str, expected: str) -> None:
    found = problems(make_layer, text)
    assert any(p.startswith(expected) for p in found), found


def test_every_problem_is_reported_not_just_the_first(
        make_layer: Callable[..., SemanticLayer]) -> None:
    found = problems(make_layer, "metrics:\n  a:\n    measure: {agg: count, event: nope1}\n"
                                 "  b:\n    measure: {agg: count, event: nope2}\n")
    assert len(found) == 2


def test_parse_and_catalog_problems_are_reported_together(
        make_layer: Callable[..., SemanticLayer], shop_dir: Path) -> None:
    """The strict load (what query uses) lists what lint lists, not only parse problems."""
    text = ("metrics:\n  a:\n    kind: simple\n    measure: {agg: count, event: nope}\n"
            "  b:\n    type: ratio\n    numerator: orders\n    denominator: missing\n")
    found = problems(make_layer, text)
    assert found == [
        "extra.yaml:3: a.kind: unknown field; expected one of base, calculation, conversion, "
        "currency, denominator, description, entity, expr, filter, format, grain_to_date, "
        "inputs, label, measure, numerator, owner, synonyms, type, up_is_good, window",
        "extra.yaml:4: a.measure.event: 'nope' is not in the catalog",
        "extra.yaml:8: b.denominator: unknown metric 'missing'",
    ]
    lenient = SemanticLayer.from_folder(shop_dir / "metrics",
                                        Catalog.load(shop_dir / "events"), strict=False)
    assert [f"{Path(str(loc.file)).name}:{loc.line}: {msg}"
            for loc, msg in lenient.problems] == found


def test_query_errors_say_what_is_wrong(make_layer: Callable[..., SemanticLayer],
                                        events_table: Callable[..., object]) -> None:
    import ibis

    from nerve.semantic import MetricQuery

    layer = make_layer()
    table = ibis.memtable(events_table([]))  # type: ignore[arg-type]
    cases = {
        MetricQuery(("revenu",)): "unknown metric 'revenu'",
        MetricQuery(("revenue",), by=("colour",)): "purchase_complete has no property 'colour'",
        MetricQuery(("revenue",), grain="fortnight"): "unknown grain 'fortnight'",
        MetricQuery(("revenue",), where="revenue >"): "cannot parse",
        MetricQuery(("revenue",), segments=("juniors",)): "unknown segment 'juniors'",
        MetricQuery(("revenue",), since="last tuesday"): "cannot read the time",
        MetricQuery(("revenue",), order_by=("-profit",)): "order_by 'profit'",
        MetricQuery(("revenue",), where="currency > 3"): "currency is string",
        # a misspelt name: the closest declared one; a property of other events: which
        MetricQuery(("revenue",), where="currncy = 'EUR'"): "purchase_complete has no "
        "property 'currncy' (did you mean 'currency'? its properties: session_id,",
        MetricQuery(("revenue",), where="price > 3"): "its properties: session_id, "
        "revenue, currency, item_count; 'price' is a property of add_to_cart, product_view)",
        MetricQuery(("events",), where="quantty > 1"): "no cataloged event has a property "
        "'quantty' (did you mean 'quantity'?)",
        # a misspelt dimension or segment: which one was meant
        MetricQuery(("revenue",), by=("platfrom",)): "purchase_complete has no property "
        "'platfrom' (its properties: session_id, revenue, currency, item_count); did you mean "
        "the dimension 'platform'?",
        MetricQuery(("revenue",), where="senior"): "did you mean the segment 'seniors'?",
    }
    for query, message in cases.items():
        with pytest.raises(QueryError, match=re.escape(message)):
            layer.compile(query, table, data_bounds=None, dialect="duckdb")


def test_a_filter_on_a_value_no_catalog_version_allows_is_refused(
        shop_dir: Path, make_layer: Callable[..., SemanticLayer]) -> None:
    """`reason = 'lost'` where every version enumerates other values counted 0 without a
    word; a value an older version allowed (rows of it may be stored) stays usable."""
    events = shop_dir / "events"
    (events / "refund.yaml").write_text(
        "name: refund\nversion: 2.0.0\nproperties:\n"
        "  reason: {type: string, enum: [damaged, late]}\n", encoding="utf-8")
    (events / "versions").mkdir(exist_ok=True)
    (events / "versions" / "refund.v1.yaml").write_text(
        "name: refund\nversion: 1.0.0\nproperties:\n"
        "  reason: {type: string, enum: [damaged, late, wrong_size]}\n", encoding="utf-8")
    metric = "metrics:\n  refunds_x:\n    measure: {agg: count, event: refund, filter: %s}\n"
    found = problems(make_layer, metric % "\"reason = 'lost'\"")
    assert found == ["extra.yaml:3: refunds_x.measure.filter: reason = 'lost': reason takes "
                     "only damaged, late, wrong_size in the catalog, not 'lost': the "
                     "comparison (=) matches no event"], found
    assert problems(make_layer, metric % "\"reason in ('late', 'lost')\"")[0].endswith(
        "reason takes only damaged, late, wrong_size in the catalog, not 'lost': the "
        "comparison (in) matches no event")
    make_layer(extra=metric % "\"reason != 'lost'\"")  # true of every refund: no mistake
    make_layer(extra=metric % "\"reason = 'wrong_size'\"")  # v1 allows it: accepted


def test_problems_are_listed_in_the_order_of_the_file(
        make_layer: Callable[..., SemanticLayer]) -> None:
    """A catalog problem on line 3 and a field problem on line 6 read top to bottom, as
    one edits the file (the field problems used to come first, whatever their line)."""
    text = ("metrics:\n  a:\n    measure: {agg: count, event: nope}\n"
            "  b:\n    measure: {agg: count, event: purchase_complete}\n"
            "    filtr: revenue > 0\n")
    found = problems(make_layer, text)
    assert [p.split(":")[1] for p in found] == ["3", "6"], found
    # a misspelt field names the one it misspells
    assert "b.filtr: unknown field; did you mean 'filter'?" in found[1], found


def test_describe_names_the_metrics_a_derived_expr_reads(
        make_layer: Callable[..., SemanticLayer]) -> None:
    """An input not listed is a metric by its own name (docs/metrics.md), and `nerve
    metrics show` (and the MCP's describe_metric) listed none of them: a lingo
    net_revenue = revenue - refunds showed "metrics": []."""
    layer = make_layer()
    assert layer.describe("revenue_per_user")["metrics"] == ["revenue", "active_users"]
    # an alias is not a metric: the input it stands for is
    assert layer.describe("revenue_wow")["metrics"] == ["revenue"]
