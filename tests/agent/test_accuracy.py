"""The measured promise: every realistic question answered correctly against
independently computed truth (docs/ask.md states the count), and no answer with a
number no query produced."""

from __future__ import annotations

import duckdb
import pytest
from tests.agent.questions import CASES, HELD_OUT, Truth, grade, honest

from nerve.agent import Context, ask


@pytest.fixture(scope="module")
def truth(demo_ctx: Context) -> Truth:
    path = demo_ctx.workspace.root / ".nerve" / "warehouse.duckdb"
    con = duckdb.connect(str(path), read_only=True)
    con.execute("SET TimeZone = 'UTC'")
    return Truth(con, demo_ctx.today())


def test_there_are_at_least_60_questions() -> None:
    assert len(CASES) >= 60
    every = [c.question for c in (*CASES, *HELD_OUT)]
    assert len(set(every)) == len(every)


def test_accuracy_and_honesty(demo_ctx: Context, truth: Truth) -> None:
    wrong, dishonest = [], []
    cases = [*CASES, *HELD_OUT]
    for case in cases:
        answer = ask(case.question, demo_ctx)
        problem = grade(case, answer, truth)
        if problem:
            wrong.append(f"{case.question!r}: {problem}\n    answer: {answer.answer}")
        extra = honest(answer)
        if extra:
            dishonest.append(f"{case.question!r}: {extra} in {answer.answer!r}")
        assert all(n.query for n in answer.numbers), case.question
    assert not dishonest, "\n".join(dishonest)
    assert not wrong, f"{len(cases) - len(wrong)} of {len(cases)} right:\n" + "\n".join(wrong)
