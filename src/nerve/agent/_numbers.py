"""Numbers in answers: each one recorded with the query that produced it, and a check
that an answer's text holds no other.

The honesty rule is enforced here: renderers may only put a number into text through
``Numbers.put``, which records it; ``unsupported`` finds any numeral in a text that no
recorded number (nor the question, nor a date label) accounts for.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Number", "Numbers", "numerals", "unsupported"]

_NUMERAL = re.compile(r"(?<![A-Za-z_])[-+]?\d[\d,]*(?:\.\d+)?")
_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2})?)?")


@dataclass(frozen=True, slots=True)
class Number:
    """One number in an answer: what it is, its exact value, how it reads, its source."""

    label: str
    value: float | int | None
    text: str
    query: str
    tool: str

    def as_dict(self) -> dict[str, Any]:
        return {"label": self.label, "value": self.value, "text": self.text,
                "query": self.query, "tool": self.tool}


def fmt(value: float | int | None, kind: str = "number", currency: str | None = None) -> str:
    """How a value reads: ``1,234``, ``12.50``, ``12.3%``, ``1,234.00 USD``; a ``count``
    (of events or users) as a whole number, though a median or a forecast of it falls
    between two: ``2,300``, not ``2,299.50``.

    >>> fmt(2299.5, "count"), fmt(-5.35, "count"), fmt(2299.5), fmt(0.004216), fmt(-0.05)
    ('2,300', '-5', '2,299.50', '0.00422', '-0.05')
    """
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "no value"
    if kind == "count":
        whole = math.floor(abs(value) + 0.5)  # half up, not to even: 2,299.5 is 2,300
        return f"{'-' if value < 0 and whole else ''}{whole:,}"
    if kind == "percent":
        return f"{value * 100:.1f}%"
    if kind == "abs_percent":
        return f"{abs(value) * 100:.1f}%"
    if kind == "signed_percent":
        return f"{value * 100:+.1f}%"
    if kind == "currency":
        return f"{value:,.2f}" + (f" {currency}" if currency else "")
    if kind == "pvalue":  # 1.5e-05 is not "0.000"
        return "< 0.001" if 0 <= value < 0.0005 else f"{value:.3f}"
    if float(value).is_integer():
        return f"{int(value):,}"
    if abs(value) < 0.1:  # three significant digits: 0.0042 is not "0.00"
        places = min(-math.floor(math.log10(abs(value))) + 2, 12)
        return f"{value:.{places}f}".rstrip("0")
    return f"{value:,.2f}"


@dataclass
class Numbers:
    """The numbers of one answer, in the order they appear."""

    items: list[Number] = field(default_factory=list)

    def put(self, label: str, value: Any, query: str, tool: str, kind: str = "number",
            currency: str | None = None) -> str:
        """Record ``value`` and return its text for the answer."""
        clean = value if value is None or isinstance(value, int | float) else float(value)
        if isinstance(clean, bool):
            clean = int(clean)
        text = fmt(clean, kind, currency)
        self.items.append(Number(label, clean, text, query, tool))
        return text

    def as_list(self) -> list[dict[str, Any]]:
        return [n.as_dict() for n in self.items]


def numerals(text: str) -> list[str]:
    """The numerals in ``text``, dates removed (``2026-11-20`` is a label, not a value)."""
    return [m.group(0).lstrip("+-").rstrip(",.") for m in _NUMERAL.finditer(_DATE.sub(" ", text))]


def unsupported(text: str, numbers: list[Number] | list[dict[str, Any]],
                also: str = "") -> list[str]:
    """The numerals of ``text`` that neither a recorded number's text nor ``also`` (the
    question, names of metrics and events) contains. Empty means honest."""
    allowed: set[str] = set(numerals(also))
    for n in numbers:
        allowed.update(numerals(n.text if isinstance(n, Number) else str(n.get("text", ""))))
    return [n for n in numerals(text) if n not in allowed]
