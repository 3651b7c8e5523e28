"""The words the offline planner reads: normalisation, and the lists shared by the
planner (``_plan``) and its filter reading (``_filters``)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nerve.agent._plan import Vocabulary

_STOP = frozenset({
    "a", "an", "and", "are", "at", "by", "count", "day", "days", "did", "do", "does", "each",
    "every", "for", "from", "give", "how", "in", "is", "last", "many", "me", "month",
    "months", "much", "my", "number", "of", "on", "or", "our", "over", "past", "per",
    "please", "show", "since", "tell", "than", "that", "the", "their", "there", "this", "to",
    "today", "total", "under", "versus", "vs", "was", "we", "week", "weeks", "were", "what",
    "what's", "whats", "when", "where", "which", "who", "with", "yesterday",
})
_NUM = r"(\d+(?:\.\d+)?)"
#: words after "on", "for"... that are no filter ("for users", "in total")
_VAGUE = frozenset({"user", "users", "shopper", "shoppers", "customer", "customers",
                    "people", "everyone", "all", "total", "average", "general", "us",
                    "app", "apps", "platform", "platforms", "store", "shop", "site",
                    "website", "something", "anything", "period", "time", "range",
                    "overall", "sum", "it", "them", "next", "coming", "upcoming",
                    "example", "instance", "now", "comparison", "detail", "details"})
_DIM_WORDS = {"device": "platform", "devices": "platform", "platforms": "platform",
              "countries": "country", "age": "age_group", "ages": "age_group",
              "age groups": "age_group", "age group": "age_group", "plans": "plan",
              "operating system": "os", "operating systems": "os", "app version":
              "app_version", "app versions": "app_version", "language": "locale",
              "locales": "locale", "os version": "os_version", "phone": "device_model",
              "device model": "device_model", "model": "device_model"}



def _norm(text: str) -> str:
    text = text.lower().replace("_", " ").replace("-", " ").replace("'s", "")
    return re.sub(r"[^a-z0-9+.%/ ]+", " ", text).strip()


def _stem(word: str) -> str:
    """A plural's singular, the same for both ("cities", "city"; "boxes", "box"; "rides",
    "ride": an "es" is a plural ending only after s, x, z, ch or sh)."""
    if word.endswith("ies") and len(word) > 5:
        return word[:-3] + "y"
    if re.search(r"(?:s|x|z|ch|sh)es$", word) and len(word) > 4:
        return word[:-2]
    if word.endswith("s") and len(word) > 3:
        return word[:-1]
    return word


def _stems(text: str) -> str:
    return " ".join(_stem(w) for w in _norm(text).split())


def _has(text: str, phrase: str) -> re.Match[str] | None:
    return re.search(rf"(?<![a-z0-9]){re.escape(phrase)}(?![a-z0-9])", text)


def _any(text: str, *words: str) -> bool:
    return any(_has(text, w) for w in words)


def _phrases(vocab: Vocabulary) -> list[tuple[str, str]]:
    """The metrics' names, labels and synonyms, stemmed, longest first."""
    found = [(_stems(phrase), m.name) for m in vocab.metrics
             for phrase in (m.name, m.label, *m.synonyms) if phrase]
    return sorted(found, key=lambda p: -len(p[0]))
