"""The work behind ``nerve ask``, ``POST /v1/ask`` and the MCP server: a JSON body in, a
JSON answer out, on a warehouse (the server's, or the file a command opened read-only)."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from datetime import datetime
from typing import Any

from nerve.agent._ask import ask
from nerve.agent._llm import LLMConfig, llm_answer
from nerve.agent._tools import Context, run_tool
from nerve.catalog import Catalog
from nerve.errors import QueryError
from nerve.workspace import Workspace

__all__ = ["ask_local", "tool_local"]


def _now(body: dict[str, Any]) -> datetime | None:
    raw = body.get("now")
    if raw is None:
        return None
    try:
        return datetime.fromisoformat(str(raw))
    except ValueError as exc:
        raise QueryError(f"now: expected an ISO 8601 time, got {raw!r}") from exc


def ask_local(warehouse: Any, workspace: Workspace, body: dict[str, Any],
              catalog: Catalog | None = None) -> dict[str, Any]:
    """``{"question": ..., "llm": true|false, "now": ISO}`` -> the answer as JSON.

    The LLM answers only when one is configured and ``llm`` is not false.
    """
    question = body.get("question")
    if not isinstance(question, str) or not question.strip():
        raise QueryError('question: required, e.g. {"question": "revenue yesterday"}')
    with _masked_once(warehouse):
        ctx = Context.open(workspace, warehouse, now=_now(body), catalog=catalog)
        answer = ask(question, ctx)
        config = LLMConfig.from_workspace(workspace.config.raw)
        if config is not None and body.get("llm", True) is not False:
            answer = llm_answer(question, ctx, config, answer)
        return answer.as_dict()


def _masked_once(warehouse: Any) -> AbstractContextManager[None]:
    """On a reader's view, the question's queries read ``events`` masked once
    (``MaskedWarehouse.masked_once``): a question runs some 25 of them, each of which
    masked every row it read again. One tool call (``tool_local``) runs one or two
    queries that read a few columns: masking every column once would cost it more."""
    once = getattr(warehouse, "masked_once", None)
    return once() if callable(once) else nullcontext()


def tool_local(warehouse: Any, workspace: Workspace, body: dict[str, Any],
               catalog: Catalog | None = None) -> dict[str, Any]:
    """``{"tool": name, "args": {...}}`` -> ``{"result": ...}`` (one read-only tool)."""
    name = body.get("tool")
    args = body.get("args") or {}
    if not isinstance(name, str) or not isinstance(args, dict):
        raise QueryError('expected {"tool": "query_metrics", "args": {...}}')
    ctx = Context.open(workspace, warehouse, now=_now(body), catalog=catalog)
    return {"result": run_tool(ctx, name, args)}
