"""Periods in a question: calendar years, quarters and months, "since ...", rolling
months, month-to-date comparisons, a trend's grain over a long range, and the note when a
period starts before a metric's own first event. ``now`` is fixed (``Context.open(...,
now=NOW)``; the planner takes ``today``), so every range is known in advance.

The answers are asked of a small workspace sent through the real collector, log and
loader: ``opens`` from 2025-10-01 and ``orders`` from 2026-02-10 only, one of each a day
(a few more on the first days of November and December); the figures expected are
counted from that list, not through the agent.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from tests.conftest import collect_and_load

from nerve.agent import Context, Vocabulary, ask, plan_question
from nerve.agent._plan import MetricInfo
from nerve.agent._time import find_comparison, find_span, trend_grain, unread_period
from nerve.warehouse import Warehouse
from nerve.workspace import Workspace, init_workspace

TODAY = date(2026, 12, 2)  # a Wednesday
NOW = datetime(2026, 12, 2, 12, tzinfo=UTC)  # the workspace's time zone is UTC
VOCAB = Vocabulary((MetricInfo("revenue", "Revenue", synonyms=("sales",)),))


# ---------------------------------------------------------------- the planner


@pytest.mark.parametrize(("text", "since", "until"), [
    # calendar years, quarters, months; "to date" runs to today
    ("revenue last year", date(2025, 1, 1), date(2025, 12, 31)),
    ("revenue previous year", date(2025, 1, 1), date(2025, 12, 31)),
    ("revenue in 2025", date(2025, 1, 1), date(2025, 12, 31)),
    ("revenue during 2024", date(2024, 1, 1), date(2024, 12, 31)),
    ("revenue in 2026", date(2026, 1, 1), TODAY),
    ("revenue this year", date(2026, 1, 1), TODAY),
    ("revenue year to date", date(2026, 1, 1), TODAY),
    ("revenue ytd", date(2026, 1, 1), TODAY),
    ("revenue last quarter", date(2026, 7, 1), date(2026, 9, 30)),
    ("revenue this quarter", date(2026, 10, 1), TODAY),
    ("revenue in Q2", date(2026, 4, 1), date(2026, 6, 30)),
    ("revenue in Q3 2025", date(2025, 7, 1), date(2025, 9, 30)),
    ("revenue this month", date(2026, 12, 1), TODAY),
    ("revenue in March 2025", date(2025, 3, 1), date(2025, 3, 31)),
    # since: to now (no end)
    ("revenue since March", date(2026, 3, 1), None),
    ("revenue since March 2025", date(2025, 3, 1), None),
    ("revenue since the start of March", date(2026, 3, 1), None),
    ("revenue since 2025", date(2025, 1, 1), None),
    ("revenue since last week", date(2026, 11, 23), None),
    ("revenue since last month", date(2026, 11, 1), None),
    ("revenue since last quarter", date(2026, 7, 1), None),
    ("revenue since yesterday", date(2026, 12, 1), None),
    ("revenue since Nov 20", date(2026, 11, 20), None),
    # rolling: complete days before today, months as calendar months
    ("revenue last 12 months", date(2025, 12, 2), date(2026, 12, 1)),
    ("revenue in the past 3 months", date(2026, 9, 2), date(2026, 12, 1)),
    ("revenue over the last twelve months", date(2025, 12, 2), date(2026, 12, 1)),
    ("revenue last 2 quarters", date(2026, 6, 2), date(2026, 12, 1)),
    ("revenue last 2 years", date(2024, 12, 2), date(2026, 12, 1)),
    ("revenue in the past year", date(2025, 12, 2), date(2026, 12, 1)),
    ("revenue past 30 days", date(2026, 11, 2), date(2026, 12, 1)),
])
def test_period_phrases(text: str, since: date, until: date | None) -> None:
    span, rest = find_span(text, TODAY)
    assert span is not None, text
    assert (span.since, span.until) == (since, until)
    assert rest == "revenue"
    assert unread_period(rest) is None


@pytest.mark.parametrize(("today", "text", "since", "until"), [
    # March still to come this year: last year's
    (date(2026, 2, 10), "revenue since March", date(2025, 3, 1), None),
    # in the first quarter, the last one is the previous year's fourth
    (date(2026, 2, 10), "revenue last quarter", date(2025, 10, 1), date(2025, 12, 31)),
    (date(2026, 1, 15), "revenue last month", date(2025, 12, 1), date(2025, 12, 31)),
    # from the 31st: the month before has no 31st, so its last day
    (date(2026, 3, 31), "revenue last 1 month", date(2026, 2, 28), date(2026, 3, 30)),
    (date(2026, 2, 10), "revenue in Q4", date(2025, 10, 1), date(2025, 12, 31)),
])
def test_period_phrases_near_the_turn_of_a_year(today: date, text: str, since: date,
                                                until: date | None) -> None:
    span, _ = find_span(text, today)
    assert span is not None
    assert (span.since, span.until) == (since, until)


@pytest.mark.parametrize("text", [
    "revenue last fortnight", "revenue since the launch", "revenue in 2031",
    "revenue over the holiday season", "revenue in the first week", "revenue in H1",
    "revenue last week and last month", "revenue in march 2030",
])
def test_a_period_it_cannot_read_is_declined_not_dropped(text: str) -> None:
    plan = plan_question(text, VOCAB, TODAY)
    assert plan.intent == "unknown", plan
    assert plan.ignored
    assert "period" in plan.problems[0]


@pytest.mark.parametrize("text", [
    "daily revenue", "revenue per day", "revenue for each day", "forecast revenue for the "
    "next 7 days", "revenue next week", "revenue by week", "total revenue",
])
def test_words_that_are_no_period_are_left_alone(text: str) -> None:
    span, rest = find_span(text, TODAY)
    assert span is None
    assert unread_period(rest) is None
    assert plan_question(text, VOCAB, TODAY).intent != "unknown"


def test_this_month_is_compared_with_the_same_days_of_last_month() -> None:
    days, rest = find_comparison("revenue this month vs last month")
    span, _ = find_span(rest, TODAY)
    assert days is not None
    assert span is not None
    before = span.before(TODAY)
    assert (before.since, before.until) == (date(2026, 11, 1), date(2026, 11, 2))
    assert before.label == "the same days of the month before"
    # on the 31st, the month before's last day
    span, _ = find_span("revenue this month", date(2026, 3, 31))
    assert span is not None
    before = span.before(date(2026, 3, 31))
    assert (before.since, before.until) == (date(2026, 2, 1), date(2026, 2, 28))
    # a whole month against the whole month before, whatever their lengths
    span, _ = find_span("revenue last month", TODAY)
    assert span is not None
    before = span.before(TODAY)
    assert (before.since, before.until) == (date(2026, 10, 1), date(2026, 10, 31))
    # this week (Monday 11-30 to Wednesday): Monday to Wednesday of last week
    span, _ = find_span("revenue this week", TODAY)
    assert span is not None
    before = span.before(TODAY)
    assert (before.since, before.until) == (date(2026, 11, 23), date(2026, 11, 25))
    assert before.label == "the same days of the week before"
    # the same days of last year
    span, _ = find_span("revenue year to date", TODAY)
    assert span is not None
    before = span.before(TODAY)
    assert (before.since, before.until) == (date(2025, 1, 1), date(2025, 12, 2))


def test_a_long_trend_is_grouped_by_week_or_month() -> None:
    assert trend_grain("day", 31) == "day"
    assert trend_grain("day", 92) == "week"  # a quarter: 14 weeks
    assert trend_grain("day", 365) == "month"
    assert trend_grain("week", 200) == "week"
    assert trend_grain("week", 365) == "month"
    assert trend_grain("hour", 1) == "hour"
    assert trend_grain("hour", 7) == "day"


# ---------------------------------------------------------------- the answers

EVENTS = {"app_opened.yaml": "name: app_opened\n", "order.yaml": "name: order\n"}
METRICS = ("metrics:\n"
           "  opens:\n    measure: {agg: count, event: app_opened}\n"
           "  orders:\n    measure: {agg: count, event: order}\n")
#: orders a day beyond the one of every day
EXTRA = {date(2026, 11, 1): 2, date(2026, 11, 2): 4, date(2026, 12, 1): 3,
         date(2026, 12, 2): 6}


def _days(first: date) -> Iterator[date]:
    day = first
    while day <= TODAY:
        yield day
        day += timedelta(days=1)


def _sent() -> list[tuple[str, date]]:
    """(event, day) of every event sent, each at 09:00 UTC (before NOW on TODAY)."""
    sent = [("app_opened", day) for day in _days(date(2025, 10, 1))]
    for day in _days(date(2026, 2, 10)):
        sent += [("order", day)] * (1 + EXTRA.get(day, 0))
    return sent


def _count(event: str, since: date, until: date = TODAY) -> int:
    return sum(1 for e, day in _sent() if e == event and since <= day <= until)


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Context]:
    root = tmp_path_factory.mktemp("periods")
    init_workspace(root, "periods")
    for name, text in EVENTS.items():
        (root / "events" / name).write_text(text)
    ws = Workspace.load(root)
    (ws.metrics_dir / "m.yaml").write_text(METRICS)
    ws = Workspace.load(root)
    messages: list[dict[str, Any]] = []
    for i, (event, day) in enumerate(_sent()):
        at = datetime(day.year, day.month, day.day, 9, tzinfo=UTC) + timedelta(seconds=i)
        messages.append({"type": "track", "event": event, "userId": f"u{i % 7}",
                         "messageId": f"m{i}", "timestamp": at.isoformat()})
    collect_and_load(ws, messages)
    with Warehouse.for_workspace(ws, read_only=True) as warehouse:
        yield Context.open(ws, warehouse, now=NOW)


def _value(answer: dict[str, Any]) -> Any:
    [number] = [n for n in answer["numbers"] if n["tool"] == "query_metrics"]
    return number["value"]


@pytest.mark.parametrize(("question", "event", "since", "until"), [
    ("opens last year", "app_opened", date(2025, 1, 1), date(2025, 12, 31)),
    ("opens in 2025", "app_opened", date(2025, 1, 1), date(2025, 12, 31)),
    ("orders last quarter", "order", date(2026, 7, 1), date(2026, 9, 30)),
    ("orders since March", "order", date(2026, 3, 1), TODAY),
    ("orders year to date", "order", date(2026, 1, 1), TODAY),
    ("orders last 12 months", "order", date(2025, 12, 2), date(2026, 12, 1)),
    ("orders since March 2026", "order", date(2026, 3, 1), TODAY),
    ("opens since March 2025", "app_opened", date(2025, 3, 1), TODAY),
    ("orders since last week", "order", date(2026, 11, 23), TODAY),
])
def test_the_period_asked_is_the_period_counted(ctx: Context, question: str, event: str,
                                                since: date, until: date) -> None:
    answer = ask(question, ctx).as_dict()
    assert answer["answered"], answer["answer"]
    assert _value(answer) == _count(event, since, until)
    [query] = [q for q in answer["queries"] if q["tool"] == "query_metrics"]
    assert query["args"]["since"] == since.isoformat()
    assert query["args"].get("until", TODAY.isoformat()) == until.isoformat()
    assert "over all the data" not in answer["answer"]


def test_a_period_it_cannot_read_computes_nothing(ctx: Context) -> None:
    answer = ask("orders last fortnight", ctx).as_dict()
    assert not answer["answered"]
    assert not answer["numbers"]
    assert "'last fortnight' as a period" in answer["answer"]
    assert "Nothing was computed" in answer["answer"]


def test_this_month_vs_last_month_compares_the_same_days(ctx: Context) -> None:
    answer = ask("orders this month vs last month", ctx).as_dict()
    values = [n["value"] for n in answer["numbers"] if n["tool"] == "query_metrics"]
    # today is not over: the 1st against the 1st
    assert values == [_count("order", date(2026, 12, 1), date(2026, 12, 1)),
                      _count("order", date(2026, 11, 1), date(2026, 11, 1))]
    assert "on 2026-12-01" in answer["answer"]
    assert "on 2026-11-01 (the same days of the month before, today left out as it is " \
           "not over)" in answer["answer"]


def test_a_trend_over_a_year_is_by_month(ctx: Context) -> None:
    answer = ask("daily orders in 2026", ctx).as_dict()
    assert "by month from 2026-01-01" in answer["answer"]
    assert "Grouped by month rather than by day" in answer["answer"]
    months = [n["value"] for n in answer["numbers"] if n["tool"] == "query_metrics"]
    assert sum(months) == _count("order", date(2026, 1, 1))
    quarter = ask("daily orders last quarter", ctx).as_dict()
    assert "by week from" in quarter["answer"]
    assert "Grouped by week rather than by day" in quarter["answer"]
    # weeks are Monday to Sunday: the first starts before July 1, the last ends after
    # September 30, and the answer says so
    assert "by week from 2026-06-29 to 2026-10-04" in quarter["answer"]
    assert "Its weeks are whole, so the trend reaches outside the period asked " \
        "(2026-07-01 to 2026-09-30)." in quarter["answer"]
    # months are aligned with the year: nothing to say
    assert "reach outside" not in answer["answer"]


def test_a_period_before_the_metrics_first_event_is_noted(ctx: Context) -> None:
    # orders start on 2026-02-10, though app opens go back to 2025-10-01
    answer = ask("orders since January 2026", ctx).as_dict()
    assert "Note: the orders data starts on 2026-02-10, after the start of the range " \
        "(2026-01-01), so the range is not fully covered." in answer["answer"]
    assert any("start on 2026-02-10" in c for c in answer["caveats"])
    # opens have data from the period's start: nothing to note
    opens = ask("opens since January 2026", ctx).as_dict()
    assert "data starts" not in opens["answer"]
    # and the note names the metric's own first day, not that of every event
    last_year = ask("orders last year", ctx).as_dict()
    assert "2026-02-10" in last_year["answer"]
    assert "2025-10-01" not in last_year["answer"]
