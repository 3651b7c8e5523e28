"""The Answer object, and the Builder that keeps an answer honest while it is written.

Renderers add sentences with ``Builder.say`` and numbers only through ``Builder.num``
(which records each one with its query); ``Builder.finish`` verifies that every numeral
in the text is one of them, and refuses (InternalError) an answer that is not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nerve.agent._numbers import Number, Numbers, unsupported
from nerve.errors import NerveError

__all__ = ["Answer", "Builder", "DishonestAnswerError"]


class DishonestAnswerError(NerveError, AssertionError):
    """An answer held a number no tool produced (a bug in a renderer, or an LLM's)."""


@dataclass
class Answer:
    """What ``nerve ask`` answers: the text, its plan, numbers, caveats and queries."""

    question: str
    answer: str
    plan: dict[str, Any]
    numbers: list[Number]
    caveats: list[str] = field(default_factory=list)
    queries: list[dict[str, Any]] = field(default_factory=list)
    #: True when the question was answered with data; False for "nerve cannot say"
    answered: bool = True
    #: who planned and phrased it: "offline" or "llm:<model>"
    source: str = "offline"
    #: definition text quoted verbatim (descriptions, formulas): its digits are not data
    quoted: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"question": self.question, "answer": self.answer, "plan": self.plan,
                "numbers": [n.as_dict() for n in self.numbers], "caveats": self.caveats,
                "queries": self.queries, "answered": self.answered, "source": self.source}


def value_text(value: object) -> str:
    """A breakdown value as answers show it: ``(none)`` for a missing one."""
    return "(none)" if value is None or value == "" else str(value)


@dataclass
class Builder:
    """An answer being written."""

    question: str
    plan: dict[str, Any]
    sentences: list[str] = field(default_factory=list)
    numbers: Numbers = field(default_factory=Numbers)
    caveats: list[str] = field(default_factory=list)
    queries: list[dict[str, Any]] = field(default_factory=list)
    #: text quoted from definitions (descriptions, formulas): digits there are not data
    quoted: list[str] = field(default_factory=list)
    answered: bool = True

    def num(self, label: str, value: Any, query: str, tool: str, kind: str = "number",
            currency: str | None = None) -> str:
        """A number for the text, recorded with the query that produced it."""
        return self.numbers.put(label, value, query, tool, kind, currency)

    def say(self, sentence: str) -> None:
        self.sentences.append(sentence)

    def quote(self, text: str | None) -> str:
        """Definition text (a description) put in the answer as it is written."""
        text = text or ""
        self.quoted.append(text)
        return text

    def label(self, value: object) -> str:
        """A label from a result (a breakdown value such as ``25-34``): data, not a
        number, shown as it came."""
        text = value_text(value)
        self.quoted.append(text)
        return text

    def ran(self, tool: str, args: dict[str, Any], sql: str | None = None,
            command: str | None = None) -> str:
        """Record a tool call; returns the text that identifies it as a number's query."""
        entry: dict[str, Any] = {"tool": tool, "args": args}
        if sql:
            entry["sql"] = sql
        if command:
            entry["command"] = command
        self.queries.append(entry)
        return sql or command or f"{tool}({args})"

    def finish(self, source: str = "offline") -> Answer:
        text = " ".join(s.strip() for s in self.sentences if s.strip())
        also = " ".join([self.question, *self.quoted])
        bad = unsupported(text, self.numbers.items, also)
        if bad:
            raise DishonestAnswerError(f"the answer holds number(s) {', '.join(bad)} that no "
                                  f"tool produced: {text!r}")
        return Answer(self.question, text, self.plan, list(self.numbers.items),
                      self.caveats, self.queries, self.answered, source, list(self.quoted))
