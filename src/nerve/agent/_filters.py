"""The filters of a question: ages, segments, countries and dimension values ("on iOS",
"users over 65", "in Germany"), read into a ``Plan`` (pure, as the planner is)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from nerve.agent._words import _NUM, _any, _has, _norm, _stems

if TYPE_CHECKING:
    from nerve.agent._plan import Plan, Vocabulary

__all__ = ["read_filters"]

_COUNTRIES = {
    "united states": "US", "usa": "US", "america": "US", "us": "US", "germany": "DE",
    "france": "FR", "spain": "ES", "japan": "JP", "brazil": "BR", "india": "IN",
    "canada": "CA", "australia": "AU", "united kingdom": "GB", "uk": "GB",
    "britain": "GB", "england": "GB", "italy": "IT", "netherlands": "NL",
    "austria": "AT", "switzerland": "CH", "mexico": "MX", "china": "CN",
    "poland": "PL", "sweden": "SE", "ireland": "IE", "portugal": "PT",
}


def read_filters(text: str, vocab: Vocabulary, plan: Plan) -> str:
    # ages: "users over 65", "aged 65+", "under 25", "65 and older"
    age = "age" if "age" in vocab.dimensions else None
    # "users over 65" reads as the over-65s (65 and over); the answer shows the filter
    for pattern, op in ((rf"\b(?:over|above|older than|more than) {_NUM}\b", ">="),
                        (rf"\b(?:under|below|younger than) {_NUM}\b", "<"),
                        (rf"\b{_NUM}\+", ">="),
                        (rf"\b(?:aged )?{_NUM} (?:and|or) (?:older|over|above)\b", ">="),
                        (rf"\b(?:aged )?{_NUM} (?:and|or) (?:younger|under|below)\b", "<=")):
        m = re.search(pattern, text)
        if (m is not None and age is not None and _any(
                text, "user", "users", "shopper", "shoppers", "people", "customers",
                "aged", "old", "older", "younger", "age", "buyers")) or (
                m is not None and age is not None and op == ">="):
            plan.where.append(f"{age} {op} {m.group(1)}")
            plan.filters_text.append(m.group(0))
            text = (text[: m.start()] + " " + text[m.end():]).strip()
            break
    # segments by name: "seniors", "plus members", "mobile"
    for name, description in vocab.segments.items():
        m = _has(_stems(text), _stems(name))
        if m is not None and name not in plan.segments:
            plan.segments.append(name)
            plan.filters_text.append(name.replace("_", " "))
            text = re.sub(rf"\b{re.escape(name.replace('_', ' '))}\b", " ", text)
            del description
    # dimension values: "on iOS", "in DE", "in Germany", "on the plus plan"
    for phrase, code in sorted(_COUNTRIES.items(), key=lambda kv: -len(kv[0])):
        m = re.search(rf"\b(?:in|from|for) (?:the )?{re.escape(phrase)}\b", text)
        if m is not None and "country" in vocab.dimensions:
            values = vocab.dimensions["country"][1]
            value = code if code in values or not values else None
            if value is not None:
                plan.where.append(f"country = '{value}'")
                plan.filters_text.append(m.group(0))
                text = (text[: m.start()] + " " + text[m.end():]).strip()
                break
    taken = {w.split(" ")[0] for w in plan.where}
    for dim, (_, values) in vocab.dimensions.items():
        if dim in taken or dim == plan.by or dim in ("age", "os_version", "app_version"):
            continue
        for value in sorted(values, key=len, reverse=True):
            v = _norm(value)  # as the question was normalised: "18-24" -> "18 24"
            if len(v) < 2 or (dim == "country" and len(v) == 2 and not re.search(
                    rf"\b(?:in|from) {re.escape(v)}\b", text)):
                continue  # bare two-letter codes ("in", "us") are too often words
            m = re.search(rf"\b(?:on|in|from|for|with|using|via)?\s*(?:the )?"
                          rf"{re.escape(v)}(?: (?:app|plan|users|shoppers|platform|"
                          rf"members|customers))?(?![a-z0-9])", text)
            if m is not None and re.search(rf"(?<![a-z0-9]){re.escape(v)}(?![a-z0-9])",
                                           text):
                literal = value.replace("'", "''")
                plan.where.append(f"{dim} = '{literal}'")
                plan.filters_text.append(m.group(0).strip())
                text = (text[: m.start()] + " " + text[m.end():]).strip()
                taken.add(dim)
                break
    return text


