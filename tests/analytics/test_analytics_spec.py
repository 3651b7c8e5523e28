"""Specs and request bodies: parsing, validation messages that name the field, and the
public names of nerve.analytics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import nerve.analytics
from nerve.analytics import (
    Filter,
    FunnelSpec,
    Step,
    funnel_spec,
    parse_duration,
    parse_filter,
    parse_step,
    parse_time,
)
from nerve.errors import QueryError


def test_exported_names() -> None:
    assert sorted(nerve.analytics.__all__) == sorted([
        "MEASURES", "RETENTION_MODES", "Exclusion", "Filter", "FunnelResult", "FunnelSpec",
        "RetentionSpec", "Step", "TrendSpec", "breakdown_layer", "funnel", "funnel_request",
        "funnel_spec", "metric_trend", "parse_duration", "parse_filter", "parse_step",
        "parse_time", "retention", "retention_request", "retention_spec", "trend",
        "trend_filters", "trend_request"])


def test_parsers() -> None:
    assert parse_duration("90min") == timedelta(minutes=90)
    assert parse_duration("2w") == timedelta(weeks=2)
    assert parse_duration("6mo") == timedelta(days=180)  # months as the semantic layer's
    # "m" is months to `nerve metrics query --since 3m`, minutes to most tools: refused
    with pytest.raises(QueryError, match=r"'6m' is ambiguous: write 6min for minutes or "
                                         r"6mo for months"):
        parse_duration("6m", what="--since")
    assert parse_filter("price>=20") == Filter("price", ">=", 20)
    assert parse_filter("flag=true") == Filter("flag", "=", True)
    assert parse_filter("sku='007'") == Filter("sku", "=", "007")
    step = parse_step("add_to_cart:platform=ios,price>2.5")
    assert step == Step("add_to_cart", (Filter("platform", "=", "ios"),
                                        Filter("price", ">", 2.5)))
    assert step.name == "add_to_cart[platform=ios,price>2.5]"
    now = datetime(2026, 11, 28, tzinfo=UTC)
    assert parse_time("7d", what="since", now=now) == datetime(2026, 11, 21, tzinfo=UTC)
    assert parse_time("2026-11-02", what="since") == datetime(2026, 11, 2, tzinfo=UTC)


@pytest.mark.parametrize(("text", "message"), [
    ("1x", "not a duration"), ("-1d", "not a duration"), ("0s", "must be positive")])
def test_bad_durations(text: str, message: str) -> None:
    with pytest.raises(QueryError, match=message):
        parse_duration(text, what="window")


@pytest.mark.parametrize(("body", "message"), [
    ({}, "steps: required"),
    ({"steps": ["a"]}, "2 to 20 steps"),
    ({"steps": ["a"] * 21}, "2 to 20 steps"),
    ({"steps": ["a", "b"], "order": "sideways"}, "order: 'sideways'"),
    ({"steps": ["a", "b"], "optional": [1]}, "step 1 (a): the first step cannot be optional"),
    ({"steps": ["a", "b", "c"], "optional": [3]},
     "step 3 (c): the last step cannot be optional"),
    ({"steps": ["a", "b"], "step_windows": {"1": "1h"}}, "step 1 (a): the first step has no"),
    ({"steps": ["a", "b", "c"], "optional": [9]}, "optional: a step number 1..3"),
    ({"steps": ["a", "a"], "order": "any"}, "each step must be a different event"),
    ({"steps": ["a", "b"], "exclusions": [{"event": "x", "after": 2, "before": 1}]},
     "exclusions[0] (x): between step 2 (b) and step 1 (a) is not a range of steps 1..2"),
    ({"steps": ["a", "b"], "attribution": "step:5"}, "attribution_step: a step number"),
    ({"steps": ["a", "b"], "window": "soon"}, "window: 'soon' is not a duration"),
    ({"steps": ["a:price>cheap", "b"]}, "ordering operators need a number"),
    ({"steps": ["a", "b"], "since": "yesterday-ish"}, "since: 'yesterday-ish'"),
])
def test_bad_funnel_bodies(body: dict[str, object], message: str) -> None:
    with pytest.raises(QueryError) as info:
        funnel_spec(body)
    assert message in str(info.value)


def test_body_maps_to_spec() -> None:
    spec = funnel_spec({
        "steps": ["view", {"event": "cart", "where": ["price>=10"]}, "buy"],
        "window": "2d", "optional": [2], "step_windows": {"3": "1h"},
        "exclusions": ["refund"], "attribution": "step:2", "hold": "product_id"})
    assert spec.window == timedelta(days=2)
    assert spec.steps[1] == Step("cart", (Filter("price", ">=", 10),), optional=True)
    assert spec.steps[2].within == timedelta(hours=1)
    assert spec.exclusions[0].after == 0
    assert spec.exclusions[0].before is None
    assert (spec.attribution, spec.attribution_step) == ("step", 1)
    assert spec.hold == ("product_id",)
    assert isinstance(spec, FunnelSpec)
