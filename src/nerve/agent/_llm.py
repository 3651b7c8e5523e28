"""An optional LLM that plans and phrases through the same tools (OpenAI-compatible).

The only module that talks to an LLM, over plain HTTP (httpx): ``POST
{llm_url}/chat/completions`` with ``tools`` (function calling). The model calls nerve's
tools; their results go back to it; its final text is accepted only when every numeral
in it is a number some tool returned (or is in the question). Otherwise, or when the
endpoint fails, the offline answer stands, with a caveat saying why.

Configuration: ``[agent] llm_url``, ``llm_model``, ``llm_api_key_env`` in nerve.toml,
or the environment: ``NERVE_LLM_URL``, ``NERVE_LLM_MODEL``, ``NERVE_LLM_API_KEY``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from nerve.agent._answer import Answer
from nerve.agent._numbers import Number, numerals
from nerve.agent._tools import TOOLS, Context, run_tool
from nerve.errors import NerveError, QueryError

__all__ = ["LLMConfig", "llm_answer", "supported_by_values"]

_SYSTEM = (
    "You answer questions about a product's telemetry with the tools given, which read "
    "nerve's semantic layer and warehouse. Call list_metrics first if unsure of names. "
    "Rules: every number you write must come from a tool result in this conversation; "
    "never estimate or invent one. If the data cannot answer, say so and name the "
    "closest metrics. Answer in two to four sentences, mention the period and filters, "
    "and mention data-quality problems the tools report. Today is {today}.")


@dataclass(frozen=True, slots=True)
class LLMConfig:
    url: str
    model: str
    api_key: str | None = None
    max_rounds: int = 6
    timeout: float = 120.0

    @classmethod
    def from_workspace(cls, raw: dict[str, Any]) -> LLMConfig | None:
        """The configured endpoint, or None (the offline planner answers)."""
        section = raw.get("agent") or {}
        url = os.environ.get("NERVE_LLM_URL") or section.get("llm_url")
        if not url:
            return None
        model = os.environ.get("NERVE_LLM_MODEL") or section.get("llm_model") or "default"
        key_env = section.get("llm_api_key_env") or "NERVE_LLM_API_KEY"
        return cls(str(url).rstrip("/"), str(model), os.environ.get(str(key_env)),
                   int(section.get("max_rounds", 6)))


def _values(data: Any, out: list[float]) -> None:
    if isinstance(data, bool):
        return
    if isinstance(data, int | float):
        if math.isfinite(float(data)):
            out.append(float(data))
    elif isinstance(data, dict):
        for v in data.values():
            _values(v, out)
    elif isinstance(data, list):
        for v in data:
            _values(v, out)
    elif isinstance(data, str):
        for text in numerals(data):
            try:
                out.append(float(text.replace(",", "")))
            except ValueError:
                continue


def supported_by_values(numeral: str, values: list[float]) -> bool:
    """Whether a numeral in prose (``1,234.5``, ``12.3`` of a ``12.3%``) is one of the
    tool values as written, rounded, or as a percentage of a fraction."""
    try:
        x = float(numeral.replace(",", ""))
    except ValueError:
        return False
    decimals = len(numeral.partition(".")[2])
    tolerance = 0.5 * 10 ** -decimals + 1e-9
    for v in values:
        for candidate in (v, v * 100, abs(v), abs(v) * 100):
            if abs(candidate - x) <= tolerance:
                return True
    return False


def _chat(config: LLMConfig, messages: list[dict[str, Any]], client: httpx.Client
          ) -> dict[str, Any]:
    tools = [{"type": "function", "function": {"name": t.name, "description": t.description,
                                               "parameters": t.parameters}}
             for t in TOOLS.values()]
    headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
    response = client.post(f"{config.url}/chat/completions", headers=headers, json={
        "model": config.model, "messages": messages, "tools": tools, "temperature": 0})
    response.raise_for_status()
    body = response.json()
    message: dict[str, Any] = body["choices"][0]["message"]
    return message


def llm_answer(question: str, ctx: Context, config: LLMConfig, fallback: Answer,
               *, client: httpx.Client | None = None) -> Answer:
    """The LLM's answer when it is honest, else ``fallback`` with a caveat."""
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": _SYSTEM.format(today=ctx.today().isoformat())},
        {"role": "user", "content": question}]
    values: list[float] = []
    numbers: list[Number] = []
    queries: list[dict[str, Any]] = []
    own = client or httpx.Client(timeout=config.timeout)
    try:
        for _ in range(config.max_rounds):
            message = _chat(config, messages, own)
            calls = message.get("tool_calls") or []
            if not calls:
                return _verified(question, str(message.get("content") or ""), values,
                                 numbers, queries, fallback, config)
            messages.append({"role": "assistant", "content": message.get("content"),
                             "tool_calls": calls})
            for call in calls:
                name = call["function"]["name"]
                try:
                    args = orjson.loads(call["function"].get("arguments") or "{}")
                    result = run_tool(ctx, name, args)
                except (NerveError, orjson.JSONDecodeError, ValueError) as exc:
                    result = {"error": str(exc)}
                    args = {}
                found: list[float] = []
                _values(result, found)
                values.extend(found)
                query = str(result.get("sql") or f"{name}({orjson.dumps(args).decode()})")
                queries.append({"tool": name, "args": args,
                                **({"sql": result["sql"]} if result.get("sql") else {})})
                numbers.extend(Number(f"{name} value", v, f"{v:g}", query, name)
                               for v in found[:200])
                messages.append({"role": "tool", "tool_call_id": call.get("id", name),
                                 "content": orjson.dumps(result, default=str).decode()[:20000]})
        return _fallback(fallback, f"the LLM did not finish within {config.max_rounds} rounds")
    except (httpx.HTTPError, KeyError, IndexError, ValueError, QueryError) as exc:
        return _fallback(fallback, f"the LLM endpoint failed ({type(exc).__name__}: {exc})")
    finally:
        if client is None:
            own.close()


def _verified(question: str, text: str, values: list[float], numbers: list[Number],
              queries: list[dict[str, Any]], fallback: Answer, config: LLMConfig) -> Answer:
    allowed = set(numerals(question))
    bad = [n for n in numerals(text) if n not in allowed
           and not supported_by_values(n, values)]
    if not text.strip():
        return _fallback(fallback, "the LLM gave an empty answer")
    if bad:
        return _fallback(fallback, f"the LLM's answer had number(s) no tool produced "
                                   f"({', '.join(bad[:5])}); showing the offline answer")
    used = [n for n in numbers if any(supported_by_values(t, [float(n.value or 0)])
                                      for t in numerals(text))]
    return Answer(question, text.strip(), {**fallback.plan, "planner": "llm"},
                  used or numbers[:50], fallback.caveats, queries, True,
                  f"llm:{config.model}")


def _fallback(answer: Answer, why: str) -> Answer:
    return Answer(answer.question, answer.answer, answer.plan, answer.numbers,
                  [*answer.caveats, why], answer.queries, answer.answered, answer.source)
