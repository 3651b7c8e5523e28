"""explain on small hand-made tables with known answers: additive drivers, the mix and rate
split of a ratio, periods, related events."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from tests.anomaly.conftest import load_rows

from nerve.agent._answer import Builder
from nerve.agent._numbers import fmt, unsupported
from nerve.agent._render_explain import _of_the_change
from nerve.anomaly import explain, parse_period
from nerve.anomaly._explain import _Target
from nerve.anomaly._explain_context import CAVEAT_CHECKS
from nerve.anomaly._explain_decompose import decompose
from nerve.anomaly._explain_words import MIN_SCORE, _driver_words
from nerve.catalog import Catalog, EventSpec, PropertySpec, Version
from nerve.cli._anomaly import effect_rows
from nerve.cli._common import Format
from nerve.errors import QueryError
from nerve.semantic import SemanticLayer
from nerve.warehouse import Warehouse

NOW = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)
METRICS = """
dimensions:
  platform: {expr: context.device.type}
metrics:
  carts:
    measure: {agg: count, event: add_to_cart}
  cart_per_view:
    type: ratio
    numerator: {agg: count, event: add_to_cart}
    denominator: {agg: count, event: product_view}
  view_to_cart:
    type: conversion
    format: percent
    base: {event: product_view}
    conversion: {event: add_to_cart}
    window: 1d
"""


def rows(day: datetime, counts: dict[tuple[str, str], int]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for (event, platform), n in counts.items():
        out.extend({"event": event, "platform": platform, "user": f"{platform}{i}",
                    "at": day + timedelta(minutes=(i * 7) % 1440),
                    "props": {"method": "card" if i % 2 else "wallet"}} for i in range(n))
    return out


@pytest.fixture
def shop(tmp_path: Path) -> tuple[Any, SemanticLayer]:
    specs = [EventSpec(name=n, version=Version(1), properties=(
        PropertySpec(name="method", type="string", enum=("card", "wallet")),))
        for n in ("add_to_cart", "product_view", "payment_failed")]
    catalog = Catalog.from_specs(specs)
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "shop.yaml").write_text(METRICS)
    layer = SemanticLayer.from_folder(tmp_path / "metrics", catalog)
    warehouse = Warehouse.open(f"duckdb:///{tmp_path / 'w.duckdb'}")
    before, during = NOW - timedelta(days=2), NOW - timedelta(days=1)
    load_rows(warehouse, rows(before, {
        ("product_view", "ios"): 100, ("product_view", "android"): 100,
        ("add_to_cart", "ios"): 30, ("add_to_cart", "android"): 30,
        ("payment_failed", "ios"): 10}))
    load_rows(warehouse, rows(during, {
        ("product_view", "ios"): 150, ("product_view", "android"): 50,
        ("add_to_cart", "ios"): 45, ("add_to_cart", "android"): 5,
        ("payment_failed", "ios"): 40}), offset=1)
    return warehouse.ibis().table("events"), layer


def test_an_event_count_is_split_among_values(shop: tuple[Any, SemanticLayer]) -> None:
    events, layer = shop
    result = explain(events, "add_to_cart", layer=layer, period="yesterday", now=NOW,
                     dimensions=["platform"], catalog_events=["add_to_cart", "product_view",
                                                              "payment_failed"])
    assert (result["observed"], result["baseline"], result["change"]) == (50, 60, -10)
    top = result["drivers"][0]
    assert (top["dimension"], top["value"]) == ("platform", "android")
    assert (top["observed"], top["expected"], top["contribution"]) == (5, 30, -25)
    assert result["summary"].startswith("add_to_cart events fell to 50")
    # payment_failed quadrupled at the same time: a related anomaly
    assert [r["event"] for r in result["related"] if r["direction"] == "up"] == [
        "payment_failed"]


def test_a_related_event_s_change_is_its_observed_over_expected(
        shop: tuple[Any, SemanticLayer]) -> None:
    events, layer = shop
    result = explain(events, "add_to_cart", layer=layer, period="yesterday", now=NOW,
                     dimensions=["platform"], catalog_events=["add_to_cart", "product_view",
                                                              "payment_failed"])
    failed, = (r for r in result["related"] if r["event"] == "payment_failed"
               and r["dimension"] is None)
    assert (failed["observed"], failed["expected"]) == (40, 10)
    assert failed["change"] == pytest.approx(3.0)  # quadrupled: +300%, not 41 / 11 - 1
    # said once, with the direction's word and no sign ("down -35%" read as a rise)
    assert "payment_failed up 300%" in result["summary"]


def test_counts_are_integers_in_json(shop: tuple[Any, SemanticLayer]) -> None:
    """A script reading the JSON gets counts as integers (50, not 50.0); rates, shares,
    effects and z stay numbers with decimals."""
    events, layer = shop
    result = json.loads(json.dumps(explain(
        events, "add_to_cart", layer=layer, period="yesterday", now=NOW,
        dimensions=["platform"], catalog_events=["add_to_cart", "product_view",
                                                 "payment_failed"])))
    counts = [result[k] for k in ("observed", "baseline", "change")]
    counts += [result["volume"][k] for k in ("exposure", "expected_exposure")]
    for d in result["drivers"] + result["offsets"]:
        counts += [d[k] for k in ("observed", "expected", "contribution", "exposure",
                                  "expected_exposure")]
    for r in result["related"]:
        counts += [r["observed"], r["expected"]]
    assert len(counts) > 10
    assert all(type(c) is int for c in counts), counts
    assert type(result["drivers"][0]["rate_observed"]) is float
    ratio = json.loads(json.dumps(explain(events, "cart_per_view", layer=layer,
                                          period="yesterday", now=NOW,
                                          dimensions=["platform"])))
    assert type(ratio["observed"]) is float  # a rate: 0.25
    android = next(d for d in ratio["drivers"] if d["value"] == "android")
    # the denominator of a ratio of counts is a count of views
    assert (android["exposure"], android["expected_exposure"]) == (50, 100)
    assert type(android["exposure"]) is int


def test_a_ratio_splits_into_mix_and_rate(shop: tuple[Any, SemanticLayer]) -> None:
    events, layer = shop
    result = explain(events, "cart_per_view", layer=layer, period="yesterday", now=NOW,
                     dimensions=["platform"])
    assert result["observed"] == pytest.approx(0.25)
    assert result["baseline"] == pytest.approx(0.30)
    by_value = {d["value"]: d for d in result["drivers"]}
    android = by_value["android"]
    # android's rate fell from 0.3 to 0.1 on a quarter of the views: -0.05, all of it
    assert android["rate"] == pytest.approx(-0.05)
    assert android["mix"] == pytest.approx(0.0)
    assert android["share"] == pytest.approx(1.0)
    assert "ios" not in by_value  # ios moved views, not the rate: no contribution
    # the ratio's two events as a funnel (nerve.analytics): the add-to-cart step broke.
    # The day before, 60 viewers added that day and 15 more the next, within the 1-day
    # window (ios30..ios44 viewed on the 18th and added on the 19th)
    steps = result["funnel"]["steps"]
    assert [(s["event"], s["users"], s["expected_users"]) for s in steps] == [
        ("product_view", 200, 200), ("add_to_cart", 50, 75)]
    assert result["funnel"]["broken_step"]["event"] == "add_to_cart"
    assert "step 2 (add_to_cart) broke" in result["summary"]


def test_properties_with_few_values_are_breakdowns_by_default(
        shop: tuple[Any, SemanticLayer]) -> None:
    events, layer = shop
    result = explain(events, "carts", layer=layer, period="yesterday", now=NOW)
    assert {d["dimension"] for d in result["drivers"]} >= {"platform", "method"}
    assert result["drivers"][0]["value"] == "android"


def test_periods() -> None:
    now = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)  # a Friday
    assert parse_period("24h", now).start == datetime(2026, 11, 19, 9, tzinfo=UTC)
    week = parse_period("last_week", now)
    assert (week.start, week.end) == (datetime(2026, 11, 9, tzinfo=UTC),
                                      datetime(2026, 11, 16, tzinfo=UTC))
    span = parse_period("2026-11-01..2026-11-03", now)
    assert span.end - span.start == timedelta(days=3)
    berlin = parse_period("yesterday", now, "Europe/Berlin")
    assert berlin.start == datetime(2026, 11, 18, 23, tzinfo=UTC)
    with pytest.raises(QueryError, match="--period"):
        parse_period("fortnight", now)
    one = parse_period("2026-11-03", now)
    assert (one.start, one.end) == (datetime(2026, 11, 3, tzinfo=UTC),
                                    datetime(2026, 11, 4, tzinfo=UTC))
    # a day that is not over ends at the last complete hour, as rolling periods do
    today = parse_period("2026-11-19..2026-11-20", now)
    assert (today.start, today.end) == (datetime(2026, 11, 19, tzinfo=UTC),
                                        datetime(2026, 11, 20, 9, tzinfo=UTC))
    with pytest.raises(QueryError, match="no complete hour yet"):
        parse_period("2026-11-21", now)


def test_today_so_far_is_compared_with_the_same_hours(shop: tuple[Any, SemanticLayer]
                                                      ) -> None:
    # at 03:30 on the 19th, "the 19th" is its first three hours: 26 ios and 5 android
    # add-to-carts (every 7 minutes), not a whole day, and the checks judge it as of now
    # (what arrived after 03:00 is about it too), not as of a midnight still to come
    events, layer = shop
    now = NOW - timedelta(hours=20, minutes=30)
    seen: list[datetime] = []

    def run_checks(names: Any, at: datetime) -> list[dict[str, Any]]:
        seen.append(at)
        return []

    result = explain(events, "add_to_cart", layer=layer, period="2026-11-19..2026-11-19", now=now,
                     dimensions=["platform"], run_checks=run_checks,
                     catalog_events=["add_to_cart"])
    assert result["period"]["end"] == "2026-11-19T03:00:00+00:00"
    assert result["observed"] == 31
    assert [(b["start"], b["end"]) for b in result["baseline_periods"]] == [
        ("2026-11-18T21:00:00+00:00", "2026-11-19T00:00:00+00:00")]
    assert seen == [now]
    assert [c["source"] for c in result["caveats"]] == []  # the shop's data is clean
    # a period over for more than a day is judged as of its end
    explain(events, "add_to_cart", layer=layer, period="2026-11-17..2026-11-17", now=now,
            dimensions=["platform"], run_checks=run_checks, catalog_events=["add_to_cart"])
    assert seen[-1] == datetime(2026, 11, 18, tzinfo=UTC)


# mix and rate on a ratio, and version churn on a count: synthetic shops whose answers are
# known by construction. Each shopper views once; the first ``carts`` of a segment also
# add to cart in the same hour.
CHURN_METRICS = """
dimensions:
  platform: {expr: context.device.type}
  app_version: {expr: properties.app_version}
metrics:
  cart_per_view:
    type: ratio
    numerator: {agg: count, event: add_to_cart}
    denominator: {agg: count, event: product_view}
"""


def segment(day: datetime, platform: str, version: str, users: int, carts: int
            ) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(users):
        at = day + timedelta(minutes=(i * 7) % 1440)
        who = f"{platform}{i}"
        props = {"app_version": version}
        out.append({"event": "product_view", "platform": platform, "user": who, "at": at,
                    "props": props})
        if i < carts:
            out.append({"event": "add_to_cart", "platform": platform, "user": who,
                        "at": at, "props": props})
    return out


def churn_shop(tmp_path: Path, before: list[tuple[str, str, int, int]],
               during: list[tuple[str, str, int, int]]) -> tuple[Any, SemanticLayer]:
    specs = [EventSpec(name=n, version=Version(1), properties=(
        PropertySpec(name="app_version", type="string"),))
        for n in ("add_to_cart", "product_view")]
    catalog = Catalog.from_specs(specs)
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "shop.yaml").write_text(CHURN_METRICS)
    layer = SemanticLayer.from_folder(tmp_path / "metrics", catalog)
    warehouse = Warehouse.open(f"duckdb:///{tmp_path / 'w.duckdb'}")
    for offset, (day, parts) in enumerate(((NOW - timedelta(days=2), before),
                                           (NOW - timedelta(days=1), during))):
        load_rows(warehouse, [r for p in parts for r in segment(day, *p)], offset=offset)
    return warehouse.ibis().table("events"), layer


def test_a_pure_mix_shift_is_reported_as_mix(tmp_path: Path) -> None:
    # android converts at 10%, ios at 30%, on both days; views move from ios to android
    events, layer = churn_shop(
        tmp_path, before=[("ios", "1", 300, 90), ("android", "1", 100, 10)],
        during=[("ios", "1", 100, 30), ("android", "1", 300, 30)])
    result = explain(events, "cart_per_view", layer=layer, period="yesterday", now=NOW,
                     dimensions=["platform"])
    assert result["observed"] == pytest.approx(0.15)
    assert result["baseline"] == pytest.approx(0.25)
    top = result["drivers"][0]
    assert top["effect"] == "mix"
    assert top["significant"]
    # no rate moved; the mix terms add up to the whole change
    by_value = {d["value"]: d for d in result["drivers"]}
    assert all(d["rate"] == pytest.approx(0.0) for d in by_value.values())
    assert sum(d["mix"] for d in by_value.values()) == pytest.approx(-0.10)
    assert "a mix effect" in result["summary"]


def test_a_rate_drop_in_one_segment_is_reported_as_rate(tmp_path: Path) -> None:
    events, layer = churn_shop(
        tmp_path, before=[("ios", "1", 200, 60), ("android", "1", 200, 60),
                          ("web", "1", 200, 60)],
        during=[("ios", "1", 200, 60), ("android", "1", 200, 10), ("web", "1", 200, 60)])
    result = explain(events, "add_to_cart", layer=layer, period="yesterday", now=NOW,
                     dimensions=["platform"], catalog_events=["add_to_cart",
                                                              "product_view"])
    top = result["drivers"][0]
    assert (top["dimension"], top["value"], top["effect"]) == ("platform", "android", "rate")
    assert top["significant"]
    # the same shoppers (200 user-hours) added 10 instead of 60: all rate, no mix
    assert top["rate"] == pytest.approx(-50)
    assert top["mix"] == pytest.approx(0)
    assert (top["rate_observed"], top["rate_expected"]) == (0.05, 0.3)
    assert [d["value"] for d in result["drivers"]] == ["android"]


def test_version_churn_is_mix_and_the_android_rate_drop_leads(tmp_path: Path) -> None:
    # android users upgrade from 4.1.1 to 4.2.0 (the version ios already runs) and the
    # new build breaks add to cart: 4.1.1 vanishes, 4.2.0 doubles, android's rate falls
    events, layer = churn_shop(
        tmp_path, before=[("ios", "4.2.0", 200, 60), ("android", "4.1.1", 200, 60)],
        during=[("ios", "4.2.0", 200, 60), ("android", "4.2.0", 200, 20)])
    result = explain(events, "add_to_cart", layer=layer, period="yesterday", now=NOW,
                     dimensions=["app_version", "platform"],
                     catalog_events=["add_to_cart", "product_view"])
    assert result["change"] == -40
    top = result["drivers"][0]
    assert (top["dimension"], top["value"], top["effect"]) == ("platform", "android", "rate")
    by_value = {(d["dimension"], d["value"]): d for d in result["drivers"]}
    assert top["rate"] == pytest.approx(-40)
    # the version that vanished lost its shoppers, not their appetite: no rate effect,
    # and its loss is 4.2.0's gain (the breakdown's mix nets to zero)
    gone = by_value.get(("app_version", "4.1.1"))
    assert gone is None or gone["rate"] == pytest.approx(0)
    # 4.2.0 gained 200 shoppers and 20 adds: it went up, so it is no driver of a drop
    assert ("app_version", "4.2.0") not in by_value
    assert "platform = android" in result["summary"]



def test_a_new_release_that_breaks_carts_leads_against_the_average(tmp_path: Path) -> None:
    # android users upgrade from 4.1.1 to 5.0.0, a version new to the period whose add to
    # cart fails; by version alone, 5.0.0 has no history: its rate is held against the
    # average (before, that was arrivals, never ranked: no value explained the drop)
    events, layer = churn_shop(
        tmp_path, before=[("ios", "4.2.0", 200, 60), ("android", "4.1.1", 200, 60)],
        during=[("ios", "4.2.0", 200, 60), ("android", "5.0.0", 200, 10)])
    result = explain(events, "add_to_cart", layer=layer, period="yesterday", now=NOW,
                     dimensions=["app_version"], catalog_events=["add_to_cart",
                                                                 "product_view"])
    top = result["drivers"][0]
    assert (top["value"], top["effect"], top["new"]) == ("5.0.0", "rate", True)
    assert top["significant"]
    assert (top["rate_observed"], top["rate_expected"]) == (0.05, 0.3)  # 120 / 400
    assert top["rate"] == pytest.approx(200 * (0.05 - 0.3))
    assert "app_version = 5.0.0" in result["summary"]
    assert "new in this period: against the average" in result["summary"]


def test_a_new_value_at_the_average_rate_drives_nothing(tmp_path: Path) -> None:
    # the same upgrade with a build that works (5.0.0 at the average rate), while ios's
    # 4.2.0 breaks: only 4.2.0 drives the drop
    events, layer = churn_shop(
        tmp_path, before=[("ios", "4.2.0", 200, 60), ("android", "4.1.1", 200, 60)],
        during=[("ios", "4.2.0", 200, 20), ("android", "5.0.0", 200, 60)])
    result = explain(events, "add_to_cart", layer=layer, period="yesterday", now=NOW,
                     dimensions=["app_version"], catalog_events=["add_to_cart",
                                                                 "product_view"])
    assert result["change"] == -40
    top = result["drivers"][0]
    assert (top["value"], top["effect"], top["rate"]) == ("4.2.0", "rate", -40)
    # 5.0.0 went up (60 against none): no driver; 4.1.1 only lost its shoppers
    assert [d["value"] for d in result["drivers"] if d["score"]] == ["4.2.0"]
    assert "5.0.0" not in {d["value"] for d in result["drivers"]}

def test_arrivals_are_split_from_like_for_like_rate() -> None:
    # 4.2.0 had 200 ios user-hours at 0.3; now 200 more android ones arrive at 0.1
    cells = pd.DataFrame({"n1": [0.0, 80.0], "d1": [0.0, 400.0], "n0": [60.0, 60.0],
                          "d0": [200.0, 200.0]}, index=["4.1.1", "4.2.0"])
    parts = decompose(cells, additive=True)
    new = parts.loc["4.2.0"]
    assert new["rate"] == pytest.approx(-20)  # ios, like for like: 200 x (0.2 - 0.3)
    assert new["arrivals"] == pytest.approx(-20)  # the newcomers against ios history
    assert new["mix"] == pytest.approx(60)  # 200 more user-hours at 0.3
    gone = parts.loc["4.1.1"]
    assert (gone["rate"], gone["mix"]) == (0, -60)
    assert parts["contribution"].sum() == pytest.approx(-40)
    assert (parts["volume"] + parts["mix"] + parts["rate"] + parts["arrivals"]).tolist() \
        == pytest.approx(parts["contribution"].tolist())


def test_caveats_keep_quality_findings_that_can_bias_the_numbers(
        shop: tuple[Any, SemanticLayer]) -> None:
    events, layer = shop
    recorded = [
        {"check": "schema", "status": "warn", "event": "add_to_cart",
         "message": "2.4% of add_to_cart events failed the catalog schema"},
        # the change being explained is no data-quality problem
        {"check": "volume", "status": "fail", "event": "add_to_cart",
         "message": "add_to_cart dropped"},
        {"check": "duplicates", "status": "pass", "event": "add_to_cart", "message": "ok"},
        {"check": "lateness", "status": "warn", "event": "product_view", "message": "late"},
    ]
    result = explain(events, "add_to_cart", layer=layer, period="yesterday", now=NOW,
                     dimensions=["platform"], caveats=recorded,
                     catalog_events=["add_to_cart", "product_view"])
    # (the shop's last event is at 17:23: the period's last hours have none)
    assert [(c["check"], c["source"]) for c in result["caveats"]] == [
        ("coverage", "the events table"), ("schema", "recorded")]
    assert "not counted" in result["caveats"][1]["impact"]
    assert "Caveat: 2 data-quality finding" in result["summary"]
    # checks run as of the period's end replace the recorded ones
    seen: list[tuple[list[str], datetime]] = []

    def run_checks(names: Any, at: datetime) -> list[dict[str, Any]]:
        seen.append((list(names), at))
        return [{"check": "duplicates", "status": "fail", "event": "add_to_cart",
                 "message": "repeated message ids"}]

    result = explain(events, "add_to_cart", layer=layer, period="yesterday", now=NOW,
                     dimensions=["platform"], caveats=recorded, run_checks=run_checks,
                     catalog_events=["add_to_cart", "product_view"])
    # how the latest events arrive says nothing about a period long before them
    late = [{"check": "lateness", "status": "warn", "event": "add_to_cart",
             "message": "late"}]
    kept = [[c["check"] for c in explain(
        events, "add_to_cart", layer=layer, period=period, now=NOW, dimensions=["platform"],
        caveats=late, catalog_events=["add_to_cart"])["caveats"]]
        for period in ("yesterday", "2026-11-17..2026-11-17")]
    assert kept == [["coverage", "lateness"], []]
    # the target's events, and every check but those that judge the change itself
    assert seen == [(["add_to_cart", *CAVEAT_CHECKS], NOW)]
    assert "volume" not in CAVEAT_CHECKS
    assert "schema" in CAVEAT_CHECKS
    assert [c["check"] for c in result["caveats"]] == ["coverage", "duplicates"]


def test_a_period_the_data_does_not_cover_is_a_caveat(shop: tuple[Any, SemanticLayer]
                                                       ) -> None:
    events, layer = shop
    later = NOW + timedelta(days=2)
    result = explain(events, "add_to_cart", layer=layer, period="24h", now=later,
                     dimensions=["platform"], catalog_events=["add_to_cart"])
    assert result["caveats"][0]["check"] == "coverage"
    assert "before the period ends" in result["caveats"][0]["message"]


def test_a_segment_that_fell_while_the_total_rose_is_an_offset(tmp_path: Path) -> None:
    # ios adds three times as much, android's rate falls by 5/6: the total rises,
    # android offsets it
    events, layer = churn_shop(
        tmp_path, before=[("ios", "1", 200, 40), ("android", "1", 200, 60)],
        during=[("ios", "1", 200, 120), ("android", "1", 200, 10)])
    result = explain(events, "add_to_cart", layer=layer, period="yesterday", now=NOW,
                     dimensions=["platform"], catalog_events=["add_to_cart",
                                                              "product_view"])
    assert result["change"] == 30
    assert [(d["value"], d["effect"]) for d in result["drivers"]] == [("ios", "rate")]
    assert [(d["value"], d["effect"]) for d in result["offsets"]] == [("android", "rate")]
    assert result["offsets"][0]["rate"] == pytest.approx(-50)
    assert "Against the change: platform = android (rate effect -50" in result["summary"]


def test_the_explain_table_lists_what_went_against_the_change_and_reads_as_percent(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The summary named android "against the change", but the only table was the
    drivers': android showed there as a mix effect with another z, and shares and
    effects had five decimals (0.28754, 30.1299)."""
    from typer.testing import CliRunner

    from nerve.cli import ExitCode, _anomaly, app
    from nerve.cli._common import console

    events, layer = churn_shop(
        tmp_path, before=[("ios", "1", 200, 40), ("android", "1", 200, 60)],
        during=[("ios", "1", 200, 120), ("android", "1", 200, 10)])
    result = explain(events, "add_to_cart", layer=layer, period="yesterday", now=NOW,
                     dimensions=["platform"], catalog_events=["add_to_cart",
                                                              "product_view"])
    monkeypatch.setattr(_anomaly, "answer", lambda *args: result)
    # a row on one line: COLUMNS alone left the table 80 wide in some runs of the suite
    monkeypatch.setattr(console, "_width", 200)
    runner = CliRunner()
    assert runner.invoke(app, ["init", str(tmp_path / "ws")]).exit_code == ExitCode.OK
    shown = runner.invoke(app, ["-w", str(tmp_path / "ws"), "explain", "add_to_cart"],
                          env={"COLUMNS": "200"})
    assert shown.exit_code == ExitCode.OK, shown.output
    # the tables come after the summary (which names android against the change too)
    drivers, against = shown.output.split("Drivers", 1)[1].split("Against the change", 1)
    assert "android" in against
    assert "rate" in against
    # ios rose by more than the whole (net) change, android fell: no "266.7%" share
    assert result["drivers"][0]["share"] > 1
    assert "over 100%" in drivers
    csv = runner.invoke(app, ["-w", str(tmp_path / "ws"), "explain", "add_to_cart",
                              "--format", "csv"])
    assert repr(result["offsets"][0]["z"]) in csv.output  # every digit


def test_a_conversion_metric_splits_by_its_base_users(shop: tuple[Any, SemanticLayer]
                                                      ) -> None:
    events, layer = shop
    result = explain(events, "view_to_cart", layer=layer, period="yesterday", now=NOW,
                     dimensions=["platform"])
    assert result["kind"] == "ratio"
    # 50 of 200 viewers converted yesterday (45 ios of 150, 5 android of 50), against
    # 75 of 200 the day before (the 1-day window reaches into yesterday's adds: 15 ios)
    assert result["observed"] == pytest.approx(0.25)
    assert result["baseline"] == pytest.approx(0.375)
    top = result["drivers"][0]
    assert (top["dimension"], top["value"], top["effect"]) == ("platform", "android", "rate")
    assert top["observed"] == pytest.approx(0.1)
    assert "fell to 25.00%" in result["summary"]


@pytest.mark.parametrize(("carts", "real"), [(50, True), (95, False)])
def test_a_change_no_value_carries_is_still_judged_against_noise(
        tmp_path: Path, carts: int, real: bool) -> None:
    # both platforms add to cart alike on both days: no value drives the change, but
    # halving 200 carts is far beyond noise, while 200 -> 190 is not
    events, layer = churn_shop(
        tmp_path, before=[("ios", "1", 200, 100), ("android", "1", 200, 100)],
        during=[("ios", "1", 200, carts), ("android", "1", 200, carts)])
    for target in ("add_to_cart", "cart_per_view"):
        result = explain(events, target, layer=layer, period="yesterday", now=NOW,
                         dimensions=["platform"], catalog_events=["add_to_cart",
                                                                  "product_view"])
        assert not [d for d in result["drivers"] if (d["score"] or 0) >= MIN_SCORE]
        assert result["change_significant"] is real, (target, result["change_z"])
        assert result["change_z"] < 0
        if real:
            assert "The change itself is beyond noise (z = -" in result["summary"]
            assert "ordinary variation" not in result["summary"]
        else:
            assert "within noise" in result["summary"]
            assert "it may be ordinary variation" in result["summary"]


def test_inside_a_filter_the_filtered_dimension_is_no_breakdown(
        shop: tuple[Any, SemanticLayer]) -> None:
    # within platform = 'ios' every event is ios: the other platforms come back from the
    # filtered query as empty rows, which must not make platform a breakdown of two
    # values with ios "driving" 100% of the change (found on a country outage:
    # "country = BR, 100% of the change" inside --where "country = 'BR'")
    events, layer = shop
    names = ["add_to_cart", "product_view", "payment_failed"]
    result = explain(events, "add_to_cart", layer=layer, period="yesterday", now=NOW,
                     dimensions=["platform"], catalog_events=names,
                     where="platform = 'ios'")
    assert (result["observed"], result["baseline"]) == (45, 30)
    assert result["drivers"] == []
    assert result["offsets"] == []
    # a breakdown that still splits the filtered events keeps its values, and only them
    result = explain(events, "add_to_cart", layer=layer, period="yesterday", now=NOW,
                     dimensions=["method"], catalog_events=names,
                     where="platform = 'ios'")
    assert {d["values"] for d in result["drivers"] + result["offsets"]} <= {2}


def test_when_everything_stops_no_value_drives_the_fall() -> None:
    # a country's day-long outage explained inside it: every value falls to zero in
    # proportion to its size, so none is a driver (with a size of half its share, as
    # the average with the empty period made it, 5.2.0 "drove" 41% of the change)
    from nerve.anomaly._explain_decompose import score_drivers

    cells = pd.DataFrame({"n1": [0.0, 0.0, 0.0], "d1": [0.0, 0.0, 0.0],
                          "n0": [102.0, 115.0, 162.0], "d0": [33.0, 36.0, 58.0],
                          "a1": [0.0, 0.0, 0.0], "a0": [33.0, 36.0, 58.0]},
                         index=pd.Index(["(none)", "5.1.4", "5.2.0"], name="app_version"))
    parts = decompose(cells, additive=True, unit=1.0, baselines=3)
    assert parts["weight"].to_list() == pytest.approx([33 / 127, 36 / 127, 58 / 127])
    scored = score_drivers(parts, change=-379.0)
    assert scored["score"].max() < MIN_SCORE, scored[["share", "weight", "score"]]


def test_a_driver_whose_total_rose_is_quoted_by_its_effect(tmp_path: Path) -> None:
    # inside android, shoppers move from 5.1.3 to 5.1.4 (whose early users added at 0.4)
    # and 5.1.4 starts adding at 0.18: its adds rose, 160 to 220, while its like-for-like
    # rate fell. The summary read "app_version = 5.1.4, a rate effect: 220 against 160,
    # -33% of the change", and `nerve ask` "5.1.4 (60, -33% of the change)": a driver of
    # a fall quoted with a total that rose
    def users(day: datetime, platform: str, version: str, n: int, carts: int
              ) -> list[dict[str, Any]]:
        out = segment(day, platform, version, n, carts)
        for r in out:
            r["user"] = f"{version}-{r['user']}"  # one set of shoppers per version
        return out

    specs = [EventSpec(name=n, version=Version(1), properties=(
        PropertySpec(name="app_version", type="string"),))
        for n in ("add_to_cart", "product_view")]
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "shop.yaml").write_text(CHURN_METRICS)
    layer = SemanticLayer.from_folder(tmp_path / "metrics", Catalog.from_specs(specs))
    warehouse = Warehouse.open(f"duckdb:///{tmp_path / 'w.duckdb'}")
    days = {
        NOW - timedelta(days=2): [("android", "5.1.2", 2400, 720), ("android", "5.1.3", 1200, 360),
                                  ("android", "5.1.4", 400, 160), ("ios", "3.2.0", 200, 60)],
        NOW - timedelta(days=1): [("android", "5.1.2", 2400, 720), ("android", "5.1.3", 400, 120),
                                  ("android", "5.1.4", 1200, 220), ("ios", "3.2.0", 200, 60)],
    }
    for offset, (day, parts) in enumerate(days.items()):
        load_rows(warehouse, [r for p in parts for r in users(day, *p)], offset=offset)
    events = warehouse.ibis().table("events")
    result = explain(events, "add_to_cart", layer=layer, period="yesterday", now=NOW,
                     dimensions=["app_version"], catalog_events=["add_to_cart", "product_view"],
                     where="platform = 'android'")
    assert (result["observed"], result["baseline"]) == (1060, 1240)
    top = result["drivers"][0]
    assert (top["value"], top["effect"], top["observed"], top["expected"]) == (
        "5.1.4", "rate", 220, 160)
    # 400 user-hours like for like, at 0.183 instead of 0.4: -86.7 of the -180 change
    assert top["effect_change"] == pytest.approx(400 * (220 / 1200 - 0.4), abs=1e-4)
    assert top["effect_share"] == pytest.approx(top["effect_change"] / -180, abs=1e-4)
    assert top["contribution"] == 60  # its own change, against the fall: reported as is
    # a count's effect reads whole, as `nerve ask` writes it: -87, not -86.7
    assert ("The main driver is app_version = 5.1.4, a rate effect of -87, 48% of the "
            "change (0.183 against 0.4 per active user-hour), while its total rose: 220 "
            "against 160 (mix +320, arrivals -173).") in result["summary"]
    assert "-33% of the change" not in result["summary"]


def test_the_period_before_local_days_is_local_days_across_a_dst_switch(
        tmp_path: Path) -> None:
    """The week before 2026-11-02..08 in Los Angeles is 10-26..11-01, which holds the
    25-hour day of the autumn switch; it was shifted by 168 hours, so it began at 01:00
    on 10-26 and left out that day's first hour (669 plays against 670 on a tester's
    workspace). Yesterday's day before, across the switch, likewise."""
    from zoneinfo import ZoneInfo

    la = ZoneInfo("America/Los_Angeles")
    catalog = Catalog.from_specs([EventSpec(name=n, version=Version(1))
                                  for n in ("add_to_cart", "product_view")])
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "shop.yaml").write_text(METRICS)
    layer = SemanticLayer.from_folder(tmp_path / "metrics", catalog,
                                      timezone="America/Los_Angeles")
    warehouse = Warehouse.open(f"duckdb:///{tmp_path / 'w.duckdb'}")
    day, out, per_day = datetime(2026, 10, 12), [], {}  # noqa: DTZ001 - LA wall clock
    while day <= datetime(2026, 11, 8):  # noqa: DTZ001
        # one cart in each day's first half hour, 2 + day-of-month in the afternoon
        local = [day + timedelta(minutes=20),
                 *(day + timedelta(hours=15, minutes=i) for i in range(2 + day.day))]
        out.extend({"event": "add_to_cart", "platform": "ios", "user": f"u{i}",
                    "at": t.replace(tzinfo=la).astimezone(UTC)} for i, t in enumerate(local))
        per_day[day.date()] = len(local)
        day += timedelta(days=1)
    load_rows(warehouse, out)
    events = warehouse.ibis().table("events")

    def days(first: str, last: str) -> int:
        return sum(n for d, n in per_day.items()
                   if date.fromisoformat(first) <= d <= date.fromisoformat(last))

    now = datetime(2026, 11, 10, 20, tzinfo=UTC)
    week = explain(events, "carts", layer=layer, period="2026-11-02..2026-11-08", now=now,
                   dimensions=[])
    assert week["observed"] == days("2026-11-02", "2026-11-08")
    assert week["baseline"] == days("2026-10-26", "2026-11-01")  # whole local days
    base = week["baseline_periods"][0]
    assert base["start"] == "2026-10-26T07:00:00+00:00"  # local midnight (PDT)
    assert base["end"] == "2026-11-02T08:00:00+00:00"  # local midnight (PST)
    expected = explain(events, "carts", layer=layer, period="2026-11-02..2026-11-08",
                       now=now, vs="expected", dimensions=[])
    starts = [b["start"] for b in expected["baseline_periods"]]
    assert starts[:2] == ["2026-10-26T07:00:00+00:00", "2026-10-19T07:00:00+00:00"]
    monday = explain(events, "carts", layer=layer, period="yesterday", dimensions=[],
                     now=datetime(2026, 11, 2, 20, tzinfo=UTC))  # Monday 12:00 in LA
    assert monday["observed"] == per_day[date(2026, 11, 1)]
    assert monday["baseline"] == per_day[date(2026, 10, 31)]


def test_a_misspelt_event_is_suggested_as_an_event(shop: tuple[Any, SemanticLayer]) -> None:
    """`nerve explain add_to_crt` meant the event add_to_cart: the error says so, and
    that the name is neither an event nor a metric (not only 'unknown metric')."""
    events, layer = shop
    with pytest.raises(QueryError) as caught:
        explain(events, "add_to_crt", layer=layer, period="yesterday", now=NOW,
                catalog_events=["add_to_cart", "product_view", "payment_failed"])
    assert "did you mean add_to_cart?" in str(caught.value)
    assert "neither a cataloged event nor a metric" in str(caught.value)
    # a metric's synonym or name still resolves as before
    assert explain(events, "carts", layer=layer, period="yesterday", now=NOW,
                   dimensions=["platform"])["observed"] == 50


def gap(day: str, event: str | None = None) -> dict[str, Any]:
    """A recorded missing_events finding of a day without events (UTC workspace)."""
    return {"check": "missing_events", "status": "warn", "event": event,
            "dimensions": {"day": day}, "since": f"{day}T00:00:00+00:00",
            "message": f"{day} (...) has no event at all"}


def test_a_day_without_events_in_the_comparison_is_a_caveat(
        shop: tuple[Any, SemanticLayer]) -> None:
    """The whole product's empty day is a caveat when the period or its baseline holds
    it; not a day outside them, nor another event's empty day."""
    events, layer = shop
    recorded = [gap("2026-11-18"), gap("2026-11-01"), gap("2026-11-18", "product_view")]
    result = explain(events, "add_to_cart", layer=layer, period="yesterday", now=NOW,
                     dimensions=["platform"], caveats=recorded,
                     catalog_events=["add_to_cart", "product_view"])
    found = [c for c in result["caveats"] if c["check"] == "missing_events"]
    assert [(c["event"], c["dimensions"]) for c in found] == [(None, {"day": "2026-11-18"})]
    assert "in the baseline" in found[0]["impact"]
    in_period = explain(events, "add_to_cart", layer=layer, period="2026-11-18", now=NOW,
                        dimensions=["platform"], caveats=recorded,
                        catalog_events=["add_to_cart", "product_view"])
    assert ["in the period" in c["impact"] for c in in_period["caveats"]
            if c["check"] == "missing_events"] == [True]


def test_a_week_holding_an_empty_day_leaves_the_expected_value() -> None:
    """--vs expected: the median of the weeks before, without the week whose day counted
    nothing (a median of 0 and 284 is 142: a doubling that is not there)."""
    from nerve.anomaly._explain import Period
    from nerve.anomaly._explain_context import leave_out_gaps

    span = Period(datetime(2026, 11, 19, tzinfo=UTC), datetime(2026, 11, 20, tzinfo=UTC),
                  "2026-11-19", "UTC")
    bases = [span.shifted(timedelta(days=7 * k)) for k in (1, 2)]
    kept, caveats = leave_out_gaps(bases, [gap("2026-11-12")])
    assert kept == [bases[1]]
    assert "left out of the expected value" in caveats[0]["impact"]
    # the only week left is kept, with its caveat as it was
    assert leave_out_gaps(bases[:1], [gap("2026-11-12")]) == (bases[:1], [gap("2026-11-12")])


def paid(day: datetime, bookings: dict[str, int]) -> list[dict[str, Any]]:
    """1200 users per platform open the app; the first ``bookings[platform]`` book, and
    pay with stripe 80% of the time on android, 30% elsewhere (a property that only the
    bookings carry)."""
    out: list[dict[str, Any]] = []
    for platform, stripe in (("ios", 3), ("android", 8), ("web", 3)):
        for i in range(1200):
            at, who = day + timedelta(minutes=(i * 7) % 1440), f"{platform}{i}"
            out.append({"event": "app_open", "platform": platform, "user": who, "at": at})
            if i < bookings[platform]:
                provider = "stripe" if i % 10 < stripe else ("adyen", "paypal")[i % 2]
                out.append({"event": "booked", "platform": platform, "user": who, "at": at,
                            "props": {"payment_provider": provider}})
    return out


def test_a_property_only_the_target_carries_drives_no_mix(tmp_path: Path) -> None:
    """Bookings fall on android only. Who paid with stripe is known only from the bookings
    themselves: stripe's "users" are the people who booked, and they fell with the count.
    That is no mix effect (stripe was named a significant mix driver, -168 of -210)."""
    catalog = Catalog.from_specs([
        EventSpec(name="app_open", version=Version(1)),
        EventSpec(name="booked", version=Version(1), properties=(PropertySpec(
            name="payment_provider", type="string", enum=("stripe", "adyen", "paypal")),))])
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "m.yaml").write_text(
        "dimensions:\n  platform: {expr: context.device.type}\n")
    layer = SemanticLayer.from_folder(tmp_path / "metrics", catalog)
    warehouse = Warehouse.open(f"duckdb:///{tmp_path / 'w.duckdb'}")
    load_rows(warehouse, paid(NOW - timedelta(days=2),
                              {"ios": 300, "android": 300, "web": 300}))
    load_rows(warehouse, paid(NOW - timedelta(days=1),
                              {"ios": 300, "android": 90, "web": 300}), offset=1)
    result = explain(warehouse.ibis().table("events"), "booked", layer=layer,
                     period="yesterday", now=NOW, catalog_events=["app_open", "booked"])
    top = result["drivers"][0]
    assert (top["dimension"], top["value"], top["effect"]) == ("platform", "android", "rate")
    assert top["significant"]
    providers = [d for d in result["drivers"] + result["offsets"]
                 if d["dimension"] == "payment_provider"]
    assert providers, "payment_provider is a breakdown"
    assert all(d["score"] == 0 and not d["significant"] for d in providers), providers
    assert "payment_provider" not in result["summary"]
    # the active users did not move: the payers' fall is no volume effect either
    assert result["volume"]["exposure"] == result["volume"]["expected_exposure"]


def test_a_rollout_in_the_baseline_weeks_is_no_new_version_and_values_add_up(
        tmp_path: Path) -> None:
    # android moves from 3.3.0 to 3.4.0: in the last of the four baseline weeks only
    # 3.4.0 existed beside 3.3.0. Its median over the weeks apart is zero (new, expected
    # 0), and the values' medians (60 + 55 + 0) would not add up to the median total (125)
    weeks = {4: [("ios", "4.2.0", 200, 60), ("android", "3.3.0", 200, 50)],
             3: [("ios", "4.2.0", 200, 60), ("android", "3.3.0", 200, 60)],
             2: [("ios", "4.2.0", 200, 60), ("android", "3.3.0", 200, 70)],
             1: [("ios", "4.2.0", 200, 60), ("android", "3.3.0", 60, 20),
                 ("android", "3.4.0", 140, 50)],
             0: [("ios", "4.2.0", 200, 60), ("android", "3.4.0", 200, 20)]}
    specs = [EventSpec(name=n, version=Version(1), properties=(
        PropertySpec(name="app_version", type="string"),))
        for n in ("add_to_cart", "product_view")]
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "shop.yaml").write_text(CHURN_METRICS)
    layer = SemanticLayer.from_folder(tmp_path / "metrics", Catalog.from_specs(specs))
    warehouse = Warehouse.open(f"duckdb:///{tmp_path / 'w.duckdb'}")
    day = NOW - timedelta(days=1)
    for offset, k in enumerate(sorted(weeks, reverse=True)):
        load_rows(warehouse, [r for p in weeks[k]
                              for r in segment(day - timedelta(days=7 * k), *p)],
                  offset=offset)
    result = explain(warehouse.ibis().table("events"), "add_to_cart", layer=layer,
                     period="yesterday", now=NOW, vs="expected", dimensions=["app_version"],
                     catalog_events=["add_to_cart", "product_view"])
    totals = sorted(sum(p[3] for p in weeks[k]) for k in (1, 2, 3, 4))  # 110 120 130 130
    assert result["baseline"] == (totals[1] + totals[2]) / 2
    # the median total is the mean of weeks 1 and 3 (130 and 120): so are the values'
    by_value = {d["value"]: d for d in result["drivers"] + result["offsets"]}
    assert by_value["3.4.0"]["expected"] == (50 + 0) / 2
    assert not by_value["3.4.0"]["new"]
    assert by_value["3.3.0"]["expected"] == (20 + 60) / 2
    assert 60 + by_value["3.3.0"]["expected"] + by_value["3.4.0"]["expected"] \
        == result["baseline"]


def _words_target(style: str) -> Any:

    return _Target(layer=None, name="carts", label="Carts",  # type: ignore[arg-type]
                   kind="additive", style=style, counted=style == "count")


def _driver(**values: Any) -> dict[str, Any]:
    # app version 4.2.0 of the demo: new that day, its rate fell while its users arrived
    base = {"dimension": "app_version", "value": "4.2.0", "effect": "rate", "new": True,
            "expected_exposure": 0, "rate_observed": 0.101, "rate_expected": 0.261,
            "contribution": 83, "share": -0.728, "observed": 83, "expected": 0,
            "effect_change": -131.43, "effect_share": 1.153, "mix": 214.4, "rate": -131.43,
            "volume": 0.0, "arrivals": 0.0}
    return base | values


def test_a_count_s_effects_read_as_whole_numbers_as_ask_writes_them(
        shop: tuple[Any, SemanticLayer]) -> None:
    """`nerve ask` wrote a count's effect as a whole number and explain's summary as
    "a rate effect of -37.5": both now round it the same way (halves away from zero)."""

    events, layer = shop
    for target in ("carts", "add_to_cart"):  # a count metric, an event's count
        result = explain(events, target, layer=layer, period="yesterday", now=NOW,
                         dimensions=["platform"], catalog_events=["add_to_cart"])
        assert result["style"] == "count"
    assert explain(events, "cart_per_view", layer=layer, period="yesterday", now=NOW,
                   dimensions=["platform"])["style"] != "count"
    driver = _driver(effect_change=-37.5, effect_share=0.6, mix=20.5, rate=-37.5)
    words = _driver_words(driver, _words_target("count"), -62.5)
    assert f"a rate effect of {fmt(-37.5, 'count')}," in words
    assert f"(mix +{fmt(20.5, 'count')})" in words
    assert "37.5" not in words
    row = effect_rows([driver], Format.table, "count")[0]
    assert (str(row["rate"]), str(row["mix"])) == (fmt(-37.5, "count"), fmt(20.5, "count"))
    # money and rates keep their decimals
    assert "37.5" in _driver_words(driver, _words_target("number"), -62.5)
    assert effect_rows([driver], Format.table)[0]["rate"] == -37.5


def test_an_effect_beyond_the_whole_change_is_not_read_as_a_share_of_it() -> None:
    """A rate effect of -131 against a net change of -114 (its own users' arrival and the
    other values moved the other way) read "115% of the change", and the table's share
    1316.9%: now "more than the whole change of -114 (the rest moved the other way by 17)",
    and "over 100%" in the table."""

    words = _driver_words(_driver(), _words_target("count"), -114)
    assert "115%" not in words
    assert "more than the whole change of -114 (the rest moved the other way by 17)" in words
    # the effect's own detail comes before, not after the rest's amount
    assert words.index("per active user-hour") < words.index("more than the whole")
    # a share within the change reads as before
    assert "84% of the change" in _driver_words(_driver(effect_share=0.84,
                                                        effect_change=-96),
                                                _words_target("count"), -114)
    assert effect_rows([_driver(share=13.169)], Format.table)[0]["share"] == "over 100%"
    assert effect_rows([_driver(share=0.288)], Format.table)[0]["share"] == "28.8%"


def test_ask_words_an_effect_beyond_the_whole_change_as_explain_does() -> None:

    b = Builder("why did add to carts drop?", {})
    text = _of_the_change(_driver(), "effect_share", -131.43, -114, "q", "count", None, b)
    assert text == "more than the whole change of -114; the rest moved the other way by 17"
    assert not unsupported(text, b.numbers.items, "why did add to carts drop?")
    within = _of_the_change(_driver(effect_share=0.84), "effect_share", -96, -114, "q",
                            "count", None, b)
    assert within.endswith("of the change")
    assert within.startswith("84")
