""""Why" answers on the demo: drivers only when ``nerve explain`` finds them beyond
noise, a wrong premise said plainly, and the question's filter kept."""

from __future__ import annotations

import math
import random
import shlex
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import ibis
import pyarrow as pa
import pytest

from nerve.agent import Context, ask, run_tool
from nerve.agent._answer import Builder
from nerve.agent._render_explain import _before, _drivers, _explain_caveats
from nerve.anomaly._explain_words import MIN_SCORE
from nerve.envelope import ENVELOPE_SCHEMA
from nerve.workspace import Workspace


def _explained(ctx: Context, question: str) -> tuple[str, dict, dict]:  # type: ignore[type-arg]
    answer = ask(question, ctx)
    (query,) = [q for q in answer.queries if q["tool"] == "explain_change"]
    return answer.answer, query, run_tool(ctx, "explain_change", query["args"])


def test_only_drivers_beyond_noise_are_named(demo_ctx: Context) -> None:
    text, _, result = _explained(demo_ctx, "why did sales drop last week?")
    named = [d for d in result["drivers"] if f"{d['dimension']} = {d['value']} (" in text]
    real = [d for d in result["drivers"]
            if d["significant"] and (d["score"] or 0) >= MIN_SCORE]
    assert all(d in real for d in named), named
    if real:
        assert "Main driver:" in text or "Main drivers:" in text
    else:
        assert "Main driver" not in text
        assert_noise_judged(text, result)
        weak = [d for d in result["drivers"] if (d["score"] or 0) >= MIN_SCORE]
        assert ("The likeliest candidate, on weak evidence only" in text) == bool(weak)


def test_a_weak_main_driver_is_named_as_a_candidate_only() -> None:
    """`nerve explain` named app_version 5.2.0 (new that day) the main driver "with weak
    evidence"; the answer said no breakdown value explains the drop, hiding where to look."""
    driver = {"dimension": "app_version", "value": "5.2.0", "effect": "rate",
              "contribution": 112.0, "share": -0.39, "effect_change": -94.2,
              "effect_share": 0.33, "significant": False, "score": 0.2, "z": -2.13}
    explained = {"observed": 246.0, "baseline": 533.0, "change": -287.0,
                 "drivers": [driver], "change_z": -6.3, "change_significant": True}
    b = Builder("why did plays drop on android?", {})
    _drivers(explained, "nerve explain plays", "number", None, -287.0, b)
    answer = b.finish()
    assert "Main driver" not in answer.answer
    assert "but no single breakdown value explains it" in answer.answer
    assert ("The likeliest candidate, on weak evidence only (z = -2.13), is app_version = "
            "5.2.0: a rate effect of -94.20.") in answer.answer, answer.answer
    assert {-94.2, -2.13} <= {n.value for n in answer.numbers}
    # below explain's own bar for naming a value, nothing is named
    b = Builder("why did plays drop on android?", {})
    _drivers({**explained, "drivers": [{**driver, "score": MIN_SCORE / 2}]},
             "nerve explain plays", "number", None, -287.0, b)
    assert "candidate" not in b.finish().answer


def assert_noise_judged(text: str, result: dict) -> None:  # type: ignore[type-arg]
    """Without a driver, the answer says whether the change itself is beyond noise."""
    if result["change_significant"]:
        assert "The change itself is beyond noise (z = " in text
        assert "ordinary variation" not in text
    else:
        assert "may be ordinary variation" in text


@pytest.mark.parametrize(("z", "real"), [(-4.54, True), (-1.2, False)])
def test_a_change_without_drivers_is_called_noise_only_when_it_is(z: float,
                                                                  real: bool) -> None:
    # an explanation as `nerve explain` gives it for a drop no value carries (the demo's
    # android add-to-cart bug on a new app version, 254 -> 150 at 10,000 shoppers)
    explained = {"observed": 150.0, "baseline": 254.0, "change": -104.0, "drivers": [],
                 "change_z": z, "change_significant": real}
    b = Builder("why did add to cart drop?", {})
    _drivers(explained, "nerve explain add_to_carts", "number", None, -104.0, b)
    text = b.finish().answer
    assert f"(z = {z:.2f})" in text
    assert ("may be ordinary variation" in text) is not real
    assert ("The change itself is beyond noise" in text) is real


def test_a_driver_whose_total_rose_is_quoted_by_its_effect_not_its_total() -> None:
    # "app_version = 5.1.4 (55, -36% of the change)" named as a driver of a fall: 5.1.4's
    # adds rose (more shoppers) while its like-for-like rate fell; the rate effect is what
    # makes it a driver, and the numbers quoted must say so
    driver = {"dimension": "app_version", "value": "5.1.4", "effect": "rate",
              "contribution": 60.0, "share": -0.333333, "effect_change": -86.666667,
              "effect_share": 0.481481, "significant": True, "score": 0.25}
    explained = {"observed": 1060.0, "baseline": 1240.0, "change": -180.0,
                 "drivers": [driver], "change_z": -5.0, "change_significant": True}
    b = Builder("why did add to cart drop on android?", {})
    _drivers(explained, "nerve explain add_to_cart", "number", None, -180.0, b)
    text = b.finish().answer
    assert "app_version = 5.1.4 (rate effect -86.67, 48.1% of the change, while its total " \
           "rose by 60)" in text, text
    assert "-33" not in text


def test_a_why_question_whose_premise_is_wrong_is_told_so(demo_ctx: Context) -> None:
    text, _, result = _explained(demo_ctx, "why did sales drop last week?")
    if result["change"] > 0:
        assert "So it did not drop: it rose." in text
    elif result["change"] == 0:
        assert "So it did not drop: it did not change." in text
    else:
        assert "did not drop" not in text
    rise = ask("why did sales rise last week?", demo_ctx)
    assert ("did not rise" in rise.answer) == (result["change"] <= 0)


def test_a_why_answer_names_the_period_it_is_compared_with(demo_ctx: Context) -> None:
    """"against 50 the period before" did not say which days those were: the same number
    of days ending the day before the period asked, as `nerve explain --vs previous`."""
    text, query, result = _explained(demo_ctx, "why did sales drop last week?")
    since, until = (date.fromisoformat(d) for d in query["args"]["period"].split(".."))
    assert (since.weekday(), (until - since).days) == (0, 6)  # a whole week, Monday first
    before = (f"from {(since - timedelta(days=7)).isoformat()} to "
              f"{(since - timedelta(days=1)).isoformat()}")
    assert f"from {since.isoformat()} to {until.isoformat()}, against " in text, text
    assert f" {before}, the same number of days just before (" in text, text
    (period,) = result["baseline_periods"]
    assert period["start"].startswith((since - timedelta(days=7)).isoformat())


def test_a_why_answer_about_one_day_is_compared_with_the_day_before() -> None:
    assert _before(date(2026, 11, 28), date(2026, 11, 28)) == "on 2026-11-27, the day before"
    assert _before(None, date(2026, 11, 28)) == "the period before"


def test_the_filter_of_a_why_question_reaches_the_explanation(demo_ctx: Context) -> None:
    day = demo_ctx.today() - timedelta(days=3)
    text, query, result = _explained(
        demo_ctx, f"why did add to cart drop on {day.isoformat()} on android?")
    assert query["args"]["where"] == "platform = 'android'"
    # shown as a person types it, and a shell reads it back as the same filter
    assert "--where \"platform = 'android'\"" in query["command"]
    assert "platform = 'android'" in shlex.split(query["command"])
    android = run_tool(demo_ctx, "query_metrics", {
        "metrics": ["add_to_carts"], "where": "platform = 'android'",
        "since": day.isoformat(), "until": day.isoformat()})["rows"][0]["add_to_carts"]
    everyone = run_tool(demo_ctx, "query_metrics", {
        "metrics": ["add_to_carts"], "since": day.isoformat(),
        "until": day.isoformat()})["rows"][0]["add_to_carts"]
    assert result["observed"] == android < everyone
    assert f"Add to carts (platform = android) rose to {android:,} " in text \
        or f"(platform = android) fell to {android:,} " in text \
        or f"(platform = android) held at {android:,} " in text


NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)


def _android_carts(demo_root: Path, per_day: dict[int, int],
                   event: str = "add_to_cart", usual: int = 24) -> Context:
    """The demo's metrics over hand-made events: ``usual`` (24) Android add-to-carts (or
    ``event``s) a day for four weeks, spread over the day, but ``per_day`` (days before
    NOW -> count)."""
    rows = []
    for back in range(1, 29):
        day = (NOW - timedelta(days=back)).replace(hour=0)
        n = per_day.get(back, usual)
        for i in range(n):
            at = int((day + timedelta(minutes=i * 24 * 60 // n)).timestamp() * 1_000_000)
            rows.append({"message_id": f"m{back}-{i}", "type": "track", "event": event,
                         "user_id": f"u{i}", "timestamp": at, "received_at": at,
                         "source": "app", "historical": False,
                         "properties": '{"product_id": "p1", "price": 10.0, "quantity": 1}',
                         "context": '{"device": {"type": "android"}}'})
    table = pa.Table.from_pylist([{f.name: r.get(f.name) for f in ENVELOPE_SCHEMA}
                                  for r in rows], schema=ENVELOPE_SCHEMA)
    table = table.drop_columns(["violations"])
    con = ibis.duckdb.connect()
    con.create_table("events", table.append_column("loaded_at", table.column("received_at")))
    return Context.open(Workspace.load(demo_root), con, now=NOW)


def _explain_args(ctx: Context, question: str) -> tuple[str, dict]:  # type: ignore[type-arg]
    answer = ask(question, ctx)
    assert answer.answered, answer.answer
    (query,) = [q for q in answer.queries if q["tool"] == "explain_change"]
    return answer.answer, query["args"]


def test_why_without_a_period_explains_the_day_it_dropped(demo_root: Path) -> None:
    """"why did add to cart drop on android?" (README's example): the demo's broken
    release cut one day by ~40%, a few percent of the week, and the answer compared weeks
    and called the change ordinary variation. Now the day that stands out is explained."""
    ctx = _android_carts(demo_root, {5: 6})
    text, args = _explain_args(ctx, "why did add to cart drop on android?")
    day = date(2026, 11, 24).isoformat()
    assert (args["period"], args["vs"]) == (f"{day}..{day}", "expected")
    assert f"fell lowest on {day} (6)" in text
    assert f"fell to 6 on {day}, against 24 expected" in text
    assert "(-75.0%)" in text
    assert "The change itself is beyond noise" in text


@pytest.mark.parametrize("where", ["", " on android"])
def test_why_an_event_no_metric_counts_dropped_explains_its_count(
        demo_root: Path, where: str) -> None:
    """"why did item added drop?" was declined ("the event is cataloged, but no metric
    counts it") though `nerve explain EVENT` explains an event's count: now the count is
    explained, the day it dropped first, and the answer says it counts events."""
    ctx = _android_carts(demo_root, {5: 6}, event="remove_from_cart")
    answer = ask(f"why did remove from cart drop{where}?", ctx)
    assert answer.answered, answer.answer
    assert answer.plan["event"] == "remove_from_cart"
    daily, explained = answer.queries
    assert daily["args"]["grain"] == "day"
    day = date(2026, 11, 24).isoformat()
    assert explained["args"]["target"] == "remove_from_cart"
    assert (explained["args"]["period"], explained["args"]["vs"]) == (f"{day}..{day}",
                                                                      "expected")
    # no check has run on this warehouse: the explanation's caveats would come from them
    assert any(c.startswith("no data-quality checks are recorded yet") for c in answer.caveats)
    text = answer.answer
    assert text.startswith("No metric counts remove_from_cart, so this explains its count "
                           "of events (as `nerve explain remove_from_cart` does).")
    assert f"remove_from_cart events{' (platform = android)' if where else ''} fell " \
        f"lowest on {day} (6)" in text
    assert f"fell to 6 on {day}, against 24 expected" in text
    if not where:  # the same daily counts as a command a reader can run
        assert daily["command"] == ("nerve trend remove_from_cart --grain day --since "
                                    "2026-11-08 --until 2026-11-28")
    else:
        assert explained["args"]["where"] == "platform = 'android'"


def test_a_steady_metrics_one_day_drop_under_a_quarter_is_the_day_explained(
        demo_root: Path) -> None:
    """A 20% one-day drop of a steady count (2,000 a day) was not singled out, being less
    than 25% from the median day, and the week was explained instead (a change of 3%).
    Now a day whose change from the same weekday a week before is far beyond the metric's
    own day-to-day changes (and its Poisson noise) is the day explained."""
    ctx = _android_carts(demo_root, {5: 1600}, usual=2000)
    text, args = _explain_args(ctx, "why did add to cart drop?")
    day = date(2026, 11, 24).isoformat()
    assert (args["period"], args["vs"]) == (f"{day}..{day}", "expected")
    assert f"fell unusually on {day} (1,600, against 2,000 a week before;" in text
    assert f"fell to 1,600 on {day}, against 2,000 expected" in text


@pytest.mark.parametrize("drop", [True, False])
def test_a_day_stands_out_of_noise_only_when_it_dropped(demo_root: Path,
                                                        drop: bool) -> None:
    # Poisson days of about 2,000 (a fixed seed): their wobble singles out no day; the
    # same days with one 20% lower do single it out
    rng = random.Random(7)
    per_day = {back: _poisson(rng, 2000) for back in range(1, 29)}
    if drop:
        per_day[5] = int(per_day[5] * 0.8)
    _, args = _explain_args(_android_carts(demo_root, per_day),
                            "why did add to cart drop?")
    period = "2026-11-24..2026-11-24" if drop else "2026-11-22..2026-11-28"
    assert args["period"] == period
    assert args["vs"] == ("expected" if drop else "previous")


def _poisson(rng: random.Random, mean: float) -> int:
    return max(0, round(rng.gauss(mean, math.sqrt(mean))))  # close enough at 2,000


@pytest.mark.parametrize(("question", "per_day", "period"), [
    # no day stands out a quarter from the median day: the last 7 days, as before
    ("why did add to cart drop on android?", {5: 20}, "2026-11-22..2026-11-28"),
    # a rise asked, a dip in the data: no day rose that far
    ("why did add to cart rise on android?", {5: 6}, "2026-11-22..2026-11-28"),
    # a period said: that period
    ("why did add to cart drop last week on android?", {5: 6}, "2026-11-16..2026-11-22"),
])
def test_why_explains_the_week_when_no_day_stands_out_or_a_period_is_said(
        demo_root: Path, question: str, per_day: dict[int, int], period: str) -> None:
    _, args = _explain_args(_android_carts(demo_root, per_day), question)
    assert (args["period"], args["vs"]) == (period, "previous")


def test_a_caveat_on_no_event_is_not_said_to_flag_none() -> None:
    # `nerve explain` of a day whose data ends at 21:59 (as a day with no late orders
    # does): the coverage finding has no event; the answer said "checks flag None"
    coverage = {"check": "coverage", "status": "warn", "event": None,
                "message": "The data ends at 2026-11-28T21:59:00+00:00, before the period "
                           "ends (2026-11-29T00:00:00+00:00)."}
    dup = {"check": "natural_key_duplicates", "status": "warn", "event": "order_placed",
           "message": "2 duplicates."}
    b = Builder("why did bookings drop yesterday?", {})
    _explain_caveats([coverage, dup], b)
    answer = b.finish()
    assert "None" not in answer.answer
    assert all("None" not in c for c in answer.caveats)
    assert "data-quality checks flag order_placed" in answer.answer
    assert "the data ends before the period does" in answer.answer
    assert answer.caveats[0].startswith("coverage check warn: The data ends at")


def test_a_day_without_any_event_in_the_comparison_is_said() -> None:
    # `nerve explain` of a Thursday against the week before, whose Thursday a backfill
    # left out: "rose to 286 against 0" with no word of it
    gap = {"check": "missing_events", "status": "warn", "event": None,
           "dimensions": {"day": "2026-11-12"},
           "message": "2026-11-12 (Thursday, UTC) has no event at all"}
    b = Builder("why did carts rise on 2026-11-13?", {})
    _explain_caveats([gap], b)
    answer = b.finish()
    assert "2026-11-12 has no event at all in the data, and the comparison holds it" \
        in answer.answer
    assert "None" not in answer.answer
    assert answer.caveats == ["missing_events check warn: 2026-11-12 (Thursday, UTC) has no "
                              "event at all"]


def test_a_zero_day_between_days_with_events_is_called_possibly_missing(
        demo_root: Path) -> None:
    # was: "Add to carts on 2026-11-26: 0." and nothing else, for a day on which no
    # add_to_cart arrived at all while every day around it had some
    ctx = _android_carts(demo_root, {3: 0})
    gap = (NOW - timedelta(days=3)).date().isoformat()
    answer = ask(f"how many add to carts on {gap}?", ctx)
    assert answer.numbers[0].value == 0
    assert "may be missing" in answer.answer
    assert any(gap in c and "missing" in c for c in answer.caveats)
    other = (NOW - timedelta(days=4)).date().isoformat()
    assert "missing" not in ask(f"how many add to carts on {other}?", ctx).answer


def test_an_answer_with_dates_names_their_time_zone(demo_ctx: Context) -> None:
    # "from 2026-11-23 to 2026-11-29" in a workspace on Europe/Berlin: whose days?
    zone = demo_ctx.layer.timezone
    text = ask("why did sales drop last week?", demo_ctx).answer
    assert text.endswith(f"Days are those of the workspace's time zone, {zone}.")
    declined = ask("what is our churn rate?", demo_ctx).answer
    assert "time zone" not in declined


def test_why_without_a_period_explains_the_whole_stretch_of_days_that_dropped(
        demo_root: Path) -> None:
    """A release that stopped sending add_to_cart on android for three days: "why did add
    to cart drop on android?" explained the first of the zero days only, against what is
    expected of it; now the three days are explained together."""
    ctx = _android_carts(demo_root, {3: 0, 4: 0, 5: 0})
    text, args = _explain_args(ctx, "why did add to cart drop on android?")
    assert (args["period"], args["vs"]) == ("2026-11-24..2026-11-26", "expected")
    assert "one of the days from 2026-11-24 to 2026-11-26 that all stand out so" in text
    assert "fell to 0 from 2026-11-24 to 2026-11-26, against 72 expected" in text


def test_a_weekly_rhythms_quiet_day_is_not_the_day_that_dropped(demo_root: Path) -> None:
    """Mondays have 30% fewer add-to-carts every week: "why did add to cart drop?" took
    the last Monday for the day that dropped (the lowest day, 30% under the median) and
    called it ordinary variation, while a Thursday fell 20% from the Thursday before.
    A day stands out only when it also moved from the same weekday a week before."""
    mondays = {back: 1400 for back in range(1, 29)
               if (NOW - timedelta(days=back)).weekday() == 0}
    ctx = _android_carts(demo_root, {**mondays, 3: 1600}, usual=2000)
    text, args = _explain_args(ctx, "why did add to cart drop?")
    assert (args["period"], args["vs"]) == ("2026-11-26..2026-11-26", "expected")
    assert "fell unusually on 2026-11-26 (1,600, against 2,000 a week before;" in text


def test_a_driver_whose_total_did_not_move_is_not_said_to_have_fallen_by_0() -> None:
    # an app version with no cart in the period nor in the median baseline week (it was
    # out one week of four) drives the drop by its rate against the average: "while its
    # total fell by 0" said a fall that is not there
    driver = {"dimension": "app_version", "value": "3.4.0", "effect": "rate",
              "contribution": 0, "share": 0.0, "effect_change": -430.05,
              "effect_share": 0.925, "significant": True, "score": 0.46}
    explained = {"observed": 19, "baseline": 484, "change": -465,
                 "drivers": [driver], "change_z": -20.0, "change_significant": True}
    b = Builder("why did carts drop on ios?", {})
    _drivers(explained, "nerve explain carts", "number", None, -465, b)
    text = b.finish().answer
    assert "while its total did not move)" in text, text
    assert "fell by 0" not in text
    # and one that went the other way is quoted by how much, without a sign
    driver = {**driver, "contribution": -36, "effect_change": 55.0}
    b = Builder("why did carts rise?", {})
    _drivers({**explained, "drivers": [driver]}, "nerve explain carts", "number", None,
             465, b)
    assert "while its total fell by 36)" in b.finish().answer
