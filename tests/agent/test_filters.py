"""``nerve ask`` on filters, on the demo shop: each phrasing of a filter gives the figure
the semantic layer gives for that filter written by hand (and not the unfiltered one),
and a filter nerve cannot read is declined with its words, through the CLI and MCP."""

from __future__ import annotations

import json
import shlex
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from tests.conftest import run_nerve

from nerve.agent import Context, ask
from nerve.semantic import MetricQuery


def _last_week(today: date) -> tuple[str, str]:
    monday = today - timedelta(days=today.weekday())
    return (monday - timedelta(days=7)).isoformat(), (monday - timedelta(days=1)).isoformat()


def _layer(ctx: Context, metric: str, where: str | None, week: bool) -> Any:
    """The metric straight from the semantic layer, the filter written by hand."""
    since, until = _last_week(ctx.today()) if week else (None, None)
    query = MetricQuery((metric,), where=where, since=since, until=until)
    return ctx.layer.query(query, ctx.events, now=ctx.now).as_dict()["rows"][0][metric]


@pytest.mark.parametrize(("question", "metric", "where", "week"), [
    ("how many orders where country is DE last week", "orders", "country = 'DE'", True),
    ("orders with country = DE last week", "orders", "country = 'DE'", True),
    ("orders in Germany last week", "orders", "country = 'DE'", True),
    ("orders from DE users last week", "orders", "country = 'DE'", True),
    ("orders where country = 'de'", "orders", "country = 'DE'", False),
    ("orders country is DE", "orders", "country = 'DE'", False),
    ("orders for DE only", "orders", "country = 'DE'", False),
    ("revenue where plan is plus", "revenue", "plan = 'plus'", False),
    ("revenue with plan PLUS", "revenue", "plan = 'plus'", False),
    ("orders where os is ios", "orders", "os = 'iOS'", False),
    ("orders where age_group = 65+", "orders", "age_group = '65+'", False),
    ("orders where country is DE and plan is free", "orders",
     "country = 'DE' and plan = 'free'", False),
])
def test_each_phrasing_gives_the_filtered_figure(
        demo_ctx: Context, question: str, metric: str, where: str, week: bool) -> None:
    answer = ask(question, demo_ctx)
    assert answer.answered, answer.answer
    assert answer.plan["where"] == where
    value = answer.numbers[0].value
    assert value == pytest.approx(_layer(demo_ctx, metric, where, week))
    assert value != pytest.approx(_layer(demo_ctx, metric, None, week))


def test_a_breakdown_keeps_its_stated_filter(demo_ctx: Context) -> None:
    answer = ask("revenue by platform where country is DE", demo_ctx)
    query = MetricQuery(("revenue",), by=("platform",), where="country = 'DE'")
    rows = demo_ctx.layer.query(query, demo_ctx.events, now=demo_ctx.now).as_dict()["rows"]
    assert sorted(n.value for n in answer.numbers) == \
        pytest.approx(sorted(r["revenue"] for r in rows))


@pytest.mark.parametrize(("question", "words"), [
    ("revenue where plan is pro", "where plan is pro"),
    ("orders where coupon is SAVE10 last week", "where coupon is save10"),
    ("orders where payment provider = 'stripe'", "where payment provider is stripe"),
    ("orders not on ios last week", "not on ios"),
    ("orders where platform is ios or android", "android"),
    ("funnel from product_view to purchase_complete on ios", "on ios"),
    ("forecast orders in Germany", "in germany"),
])
def test_a_filter_nerve_cannot_read_is_declined_not_dropped(
        demo_ctx: Context, question: str, words: str) -> None:
    answer = ask(question, demo_ctx)
    assert not answer.answered
    assert answer.numbers == []
    assert repr(words) in answer.answer
    assert "Nothing was computed, so no number is given." in answer.answer


def _nerve(root: Path, *args: str) -> Result:
    return run_nerve(root, *args)


def test_the_cli_filters_and_declines(demo_root: Path, demo_ctx: Context) -> None:
    done = _nerve(demo_root, "ask", "how many orders where country is DE last week",
                  "--no-llm", "--format", "json")
    assert done.exit_code == 0, done.stderr
    body = json.loads(done.stdout)
    assert body["plan"]["where"] == "country = 'DE'"
    value = body["numbers"][0]["value"]
    assert value == _layer(demo_ctx, "orders", "country = 'DE'", True)
    assert value != _layer(demo_ctx, "orders", None, True)
    # the command the answer shows gives the same figure
    command = shlex.split(body["queries"][0]["command"])
    assert command[:3] == ["nerve", "metrics", "query"]
    assert "--where" in command
    shown = _nerve(demo_root, *command[1:], "--format", "json")
    assert json.loads(shown.stdout) == [{"orders": value}], shown.stderr

    done = _nerve(demo_root, "ask", "revenue where plan is pro", "--no-llm")
    assert done.exit_code == 1, done.stderr
    text = " ".join(done.stdout.split())
    assert "did not understand 'where plan is pro' as a filter: the dimension plan has no " \
        "value 'pro' in the data (it has free, plus)" in text
    assert "Nothing was computed, so no number is given." in text
