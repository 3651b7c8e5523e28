"""The breakdown of a question, read into a ``Plan`` (pure, as the planner is).

A breakdown names a dimension ("by platform", "per country", "for each plan", "by
device" for platform), or a property of the cataloged events ("by payment provider");
"top 3 countries by revenue" ranks one.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from nerve.agent._words import _DIM_WORDS, _stem

if TYPE_CHECKING:
    from nerve.agent._plan import Plan, Vocabulary

__all__ = ["read_breakdown"]


def _dim_name(words: str, vocab: Vocabulary) -> str | None:
    words = words.strip()
    for candidate in (words, words.replace(" ", "_")):
        if candidate in vocab.dimensions:
            return candidate
    if words in _DIM_WORDS and _DIM_WORDS[words] in vocab.dimensions:
        return _DIM_WORDS[words]
    if _stem(words) in vocab.dimensions:
        return _stem(words)
    joined = words.replace(" ", "_")
    for candidate in (joined, _stem(joined)):
        if candidate in vocab.properties:
            return candidate  # a property of the events: the query checks the metric's
    ends = [p for p in vocab.properties if p.endswith("_" + joined)]
    return ends[0] if len(ends) == 1 else None  # "by provider": payment_provider


def read_breakdown(text: str, vocab: Vocabulary, plan: Plan) -> str:
    """The breakdown of ``text`` ("by platform", "top 3 countries"), into ``plan.by``;
    returns the rest of ``text``."""
    m = re.search(r"\b(?:by|per|across|for each|split by|broken down by|each)"
                  r" ([a-z_ ]+?)(?= by | for | in | on | over |$)", text)
    if m is not None:
        for size in (3, 2, 1):
            words = " ".join(m.group(1).split()[:size])
            dim = _dim_name(words, vocab)
            if dim is not None:
                plan.by = dim
                end = m.start(1) + len(words)
                return (text[: m.start()] + " " + text[end:]).strip()
    if plan.intent == "top":  # "top 3 countries by revenue", "which country had most orders"
        tokens = text.split()
        for size in (2, 1):
            for i in range(len(tokens) - size + 1):
                dim = _dim_name(" ".join(tokens[i:i + size]), vocab)
                if dim is not None:
                    plan.by = dim
                    return " ".join(tokens[:i] + tokens[i + size:])
        m = re.search(r"\b(?:which|what) ([a-z_ ]+?)(?= had | has | have | brought |"
                      r" made | generated | with | drove | is | was |$)", text)
        if m is not None:
            for size in (2, 1):
                words = " ".join(m.group(1).split()[:size])
                dim = _dim_name(words, vocab)
                if dim is not None:
                    plan.by = dim
                    return (text[: m.start()] + " " + text[m.start(1) + len(words):]).strip()
    return text
