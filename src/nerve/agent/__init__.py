"""Ask nerve: plain-language questions answered from the semantic layer (docs/ask.md).

question -> ``Plan`` (offline planner, or an optional LLM) -> read-only tools (metrics,
funnels, explain, checks, experiments, catalog) -> an ``Answer`` whose every number
comes from a tool result, with the queries that produced it.

>>> from nerve.agent import Context, ask                            # doctest: +SKIP
>>> ask("sales last week on iOS", Context.open(ws, warehouse)).answer  # doctest: +SKIP
'Revenue from 2026-11-16 to 2026-11-22 (platform = ios): 5,911.39 USD. Caveat: ...'
"""

from nerve.agent._answer import Answer, DishonestAnswerError
from nerve.agent._ask import ask, plan_for, vocabulary
from nerve.agent._llm import LLMConfig, llm_answer
from nerve.agent._numbers import Number, numerals, unsupported
from nerve.agent._plan import INTENTS, Plan, Vocabulary, plan_question
from nerve.agent._service import ask_local, tool_local
from nerve.agent._time import Span
from nerve.agent._tools import TOOLS, Context, Tool, run_tool

__all__ = [
    "INTENTS",
    "TOOLS",
    "Answer",
    "Context",
    "DishonestAnswerError",
    "LLMConfig",
    "Number",
    "Plan",
    "Span",
    "Tool",
    "Vocabulary",
    "ask",
    "ask_local",
    "llm_answer",
    "numerals",
    "plan_for",
    "plan_question",
    "run_tool",
    "tool_local",
    "unsupported",
    "vocabulary",
]
