"""The agent's funnel tool on the demo: a breakdown by the user (the funnel's own entity)
is refused with the field named, on the reader's and the admin's view and by ``nerve
funnel``, where it used to crash inside the semantic layer (a ``user`` dimension collided
with the rows' own ``user`` column)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.conftest import run_nerve

from nerve.errors import QueryError
from nerve.mcp import call
from nerve.workspace import Workspace

STEPS = ["product_view", "add_to_cart"]
REFUSED = "a funnel counts users, so a breakdown by the user puts each one in a group"


@pytest.mark.parametrize("masked", [True, False])
@pytest.mark.parametrize("by", ["user", "user_id"])
def test_a_funnel_by_the_user_is_refused_naming_the_field(demo_root: Path, masked: bool,
                                                          by: str) -> None:
    ws = Workspace.load(demo_root)
    with pytest.raises(QueryError, match=rf"^by '{by}': {REFUSED}"):
        call(ws, "run_funnel", {"steps": STEPS, "by": by}, masked=masked)
    # a breakdown users share still answers
    rows = call(ws, "run_funnel", {"steps": STEPS, "by": "platform"}, masked=masked)["rows"]
    assert {r["platform"] for r in rows} >= {"ios", "android"}


def test_a_breakdown_named_like_the_rows_own_column_is_refused(demo_root: Path) -> None:
    ws = Workspace.load(demo_root)
    with pytest.raises(QueryError, match=r"^dimension 'event': the name of a column the "
                                         r"rows always have"):
        call(ws, "run_funnel", {"steps": STEPS, "by": "event"}, masked=False)


def test_nerve_funnel_by_user_says_why(demo_root: Path) -> None:
    done = run_nerve(demo_root, "funnel", *STEPS, "--by", "user")
    assert done.exit_code != 0
    assert "Traceback" not in done.stderr
    assert f"by 'user': {REFUSED}" in " ".join((done.stdout + done.stderr).split())


@pytest.mark.parametrize("masked", [True, False])
def test_a_step_filter_on_an_undeclared_property_is_refused(demo_root: Path,
                                                            masked: bool) -> None:
    """``quantiy`` is no property of add_to_cart: it would count 0 at that step; the MCP
    tool refuses it as a metric's filter is, naming the property it meant."""
    ws = Workspace.load(demo_root)
    with pytest.raises(QueryError, match=r"^step 2 \(add_to_cart\) filter quantiy>=2: "
                                         r".*add_to_cart has no property 'quantiy' \(did "
                                         r"you mean 'quantity'\?"):
        call(ws, "run_funnel", {"steps": ["product_view", "add_to_cart:quantiy>=2"]},
             masked=masked)
    rows = call(ws, "run_funnel", {"steps": ["product_view", "add_to_cart:quantity>=2"]},
                masked=masked)["rows"]
    assert rows[1]["users"] > 0
