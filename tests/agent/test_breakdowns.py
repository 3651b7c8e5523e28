"""``nerve ask`` on breakdowns, on the demo shop: "top N <dimension> by <metric>" ranks
the dimension by the metric (the figures the semantic layer gives), a funnel takes its
breakdown, and a breakdown nerve cannot read or apply is declined with its words, never
dropped for the overall figure, through the CLI as through Python."""

from __future__ import annotations

import json
import shlex
from datetime import date, timedelta
from pathlib import Path

import pytest
from click.testing import Result
from tests.conftest import run_nerve

from nerve.agent import Context, ask
from nerve.semantic import MetricQuery


def _last_week(today: date) -> tuple[str, str]:
    monday = today - timedelta(days=today.weekday())
    return (monday - timedelta(days=7)).isoformat(), (monday - timedelta(days=1)).isoformat()


def _nerve(root: Path, *args: str) -> Result:
    return run_nerve(root, *args)


def test_top_n_ranks_the_dimension_by_the_metric(demo_ctx: Context) -> None:
    # revenue is a metric and a property of purchase_complete: the metric ranks
    answer = ask("top 3 countries by revenue last week", demo_ctx)
    assert answer.answered, answer.answer
    assert (answer.plan["intent"], answer.plan["by"], answer.plan["limit"]) == \
        ("top", "country", 3)
    since, until = _last_week(demo_ctx.today())
    query = MetricQuery(("revenue",), by=("country",), since=since, until=until)
    rows = demo_ctx.layer.query(query, demo_ctx.events, now=demo_ctx.now).as_dict()["rows"]
    top = sorted((r["revenue"] for r in rows if r["revenue"] is not None), reverse=True)
    assert [n.value for n in answer.numbers] == pytest.approx(top[:3])


def test_a_funnel_takes_its_breakdown(demo_root: Path, demo_ctx: Context) -> None:
    steps = ["product_view", "add_to_cart", "purchase_complete"]
    answer = ask(f"funnel from {' to '.join(steps)} by platform", demo_ctx)
    assert answer.answered, answer.answer
    cli = json.loads(_nerve(demo_root, "funnel", *steps, "--by", "platform", "--window",
                            "1d", "--format", "json").stdout)
    users = [n.value for n in answer.numbers if n.label.endswith(" users")]
    assert users == [r["users"] for r in cli]
    assert len({r["platform"] for r in cli}) >= 3
    assert answer.queries[0]["command"] == \
        f"nerve funnel {' '.join(steps)} --window 1d --by platform"


def test_the_funnel_command_an_answer_shows_gives_its_figures(
        demo_root: Path, demo_ctx: Context) -> None:
    """The command left out the window and the dates: run, it counted every day."""
    answer = ask("funnel from product_view to add_to_cart to purchase_complete last week",
                 demo_ctx)
    assert answer.answered, answer.answer
    command = shlex.split(answer.queries[0]["command"])
    assert command[0] == "nerve"
    assert {"--window", "--since", "--until"} <= set(command)
    cli = json.loads(_nerve(demo_root, *command[1:], "--format", "json").stdout)
    assert [n.value for n in answer.numbers if n.label.endswith(" users")] == \
        [r["users"] for r in cli]
    everything = json.loads(_nerve(demo_root, *command[1:command.index("--window")],
                                   "--format", "json").stdout)
    assert everything[0]["users"] > cli[0]["users"]  # the dates matter


@pytest.mark.parametrize(("question", "words", "says"), [
    ("how many orders by user?", "by user",
     "user is not a dimension, and one group per user would be too many groups"),
    ("orders by user_id", "by user id", "count per user id with `nerve sql`"),
    ("revenue per anonymous_id last week", "per anonymous id", "too many groups"),
    ("orders broken down by gateway", "broken down by gateway",
     "nothing in the data matches it (no dimension or event property)"),
    ("daily orders by platform", "by platform", "cannot break a trend down"),
    ("revenue week over week by platform", "by platform", "cannot break a comparison down"),
    ("forecast orders by country", "by country", "cannot break a forecast down"),
    ("how is the simple checkout experiment doing by platform", "by platform",
     "`nerve experiment analyze simple_checkout --by platform` gives it"),
])
def test_a_breakdown_nerve_cannot_read_or_apply_is_declined_not_dropped(
        demo_ctx: Context, question: str, words: str, says: str) -> None:
    answer = ask(question, demo_ctx)
    assert not answer.answered, answer.answer
    assert answer.numbers == []
    assert (answer.plan["by"], answer.plan["ignored"]) == (None, [words])
    text = " ".join(answer.answer.split())
    assert repr(words) in text
    assert says in text
    assert "Nothing was computed, so no number is given." in text


def test_the_cli_declines_a_breakdown_by_user(demo_root: Path) -> None:
    done = _nerve(demo_root, "ask", "how many orders by user?", "--no-llm")
    assert done.exit_code == 1, done.stdout + done.stderr
    text = " ".join(done.stdout.split())
    assert "did not understand 'by user' as a breakdown: user is not a dimension" in text
    assert "The closest it has: platform, os, locale, country, age_group." in text

    declined = _nerve(demo_root, "ask", "orders by user_id", "--no-llm", "--format", "json")
    assert declined.exit_code == 1  # as in the table (it exited 0 with JSON)
    body = json.loads(declined.stdout)
    assert (body["answered"], body["numbers"]) == (False, [])
    assert (body["plan"]["by"], body["plan"]["ignored"]) == (None, ["by user id"])

    body = json.loads(_nerve(demo_root, "ask", "top 3 countries by revenue last week",
                             "--no-llm", "--format", "json").stdout)
    assert (body["answered"], body["plan"]["by"]) == (True, "country")
    assert len(body["numbers"]) == 3


def test_a_breakdown_with_many_values_lists_the_largest_and_says_how_many(
        demo_ctx: Context) -> None:
    """"orders by session_id" listed every session: thousands of figures in one answer."""
    from nerve.agent._render_metrics import MAX_GROUPS

    answer = ask("orders by session_id last week", demo_ctx)
    assert answer.answered, answer.answer
    since, until = _last_week(demo_ctx.today())
    query = MetricQuery(("orders",), by=("session_id",), since=since, until=until)
    rows = demo_ctx.layer.query(query, demo_ctx.events, now=demo_ctx.now).as_dict()["rows"]
    assert len(rows) > MAX_GROUPS
    largest = sorted((r["orders"] for r in rows), reverse=True)[:MAX_GROUPS]
    assert [n.value for n in answer.numbers if "=" in n.label] == largest
    assert f"the largest of {len(rows):,} session_id values" in answer.answer
    assert "nerve metrics query orders --by session_id" in answer.answer


def test_a_missing_value_reads_none_in_the_numbers_as_in_the_words(demo_ctx: Context) -> None:
    """Web has no app version: its row is "(none)" in the answer's words, and its number's
    label said ``app_version=None``."""
    answer = ask("orders last week by app_version", demo_ctx)
    assert answer.answered, answer.answer
    labels = [n.label for n in answer.numbers]
    assert any(label.endswith("app_version=(none)") for label in labels), labels
    assert not any("=None" in label for label in labels), labels
    assert "(none)" in answer.answer
