"""A reader's question reads ``events`` masked once (``MaskedWarehouse.masked_once``),
and answers exactly what masking in each query answered: the same text, numbers,
caveats and queries, with no raw user id in them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from tests.agent.conftest import demo_root

import nerve.agent._service as service
from nerve.agent import ask_local
from nerve.catalog import Catalog
from nerve.warehouse import MaskedWarehouse, Warehouse
from nerve.warehouse._masking import KEY_TABLE, MASKED_ONCE
from nerve.workspace import Workspace

__all__ = ["demo_root"]

QUESTIONS = ["why did add to cart drop on android?", "add to carts by platform last week",
             "how many orders yesterday?"]


@pytest.mark.parametrize("question", QUESTIONS)
def test_a_readers_answer_is_the_same_masked_once_or_in_each_query(
        demo_root: Path, question: str, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = Workspace.load(demo_root)
    now = (demo_root / ".ask-ready").read_text().strip()
    body = {"question": question, "now": now}
    seen: list[set[str]] = []
    real_ask = service.ask

    def ask(question: str, ctx: Any) -> Any:
        """The real ask, noting the TEMP tables its connection holds meanwhile (but the
        masking key's, which every reader's connection holds)."""
        seen.append({n for (n,) in ctx.con.con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE temporary").fetchall()} - {KEY_TABLE})
        return real_ask(question, ctx)

    monkeypatch.setattr(service, "ask", ask)
    answers = []
    for bound in (MaskedWarehouse.masked_once_max_rows, 0):
        with Warehouse.for_workspace(ws, read_only=True) as warehouse:
            masked = MaskedWarehouse(warehouse, Catalog.load(ws.events_dir), ws.secret())
            masked.masked_once_max_rows = bound
            answers.append(ask_local(masked, ws, body))
    assert seen == [{MASKED_ONCE}, set()]  # once, then in each query
    # the SQL shown names Ibis's in-memory tables by a fresh random name each run
    once, per_query = (re.sub(r"ibis_pyarrow_memtable_\w+", "memtable",
                              orjson.dumps(a).decode()) for a in answers)
    assert once == per_query
    assert answers[0]["answered"]
    assert answers[0]["numbers"]

    with Warehouse.for_workspace(ws, read_only=True) as warehouse:
        users = [u for (u,) in warehouse.cursor().execute(
            "SELECT DISTINCT user_id FROM events WHERE user_id IS NOT NULL").fetchall()]
    assert users
    assert [u for u in users if f'"{u}"' in once or f" {u} " in once] == []
