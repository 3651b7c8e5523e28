"""The breakdown of a question, read into a ``Plan`` (pure, as the planner is).

A breakdown names a dimension ("by platform", "per country", "for each plan", "by
device" for platform), or a property of the cataloged events ("by payment provider");
"top 3 countries by revenue" ranks a dimension by a metric. A breakdown that names
neither ("by gateway"), one that names a person or a device ("by user_id", "per user":
no dimension, one group each), a second one ("by platform and country"), and one the
question's tool cannot take (a trend's, a forecast's) go to ``Plan.ignored`` with the
reason in ``Plan.problems``, and the question is declined: never answered for everyone.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from nerve.agent._filters import _COUNTRIES
from nerve.agent._words import _DIM_WORDS, _STOP, _VAGUE, _phrases, _stem, _stems

if TYPE_CHECKING:
    from nerve.agent._plan import Plan, Vocabulary

__all__ = ["cannot_break_down", "decline_breakdown", "read_breakdown"]

#: "by platform", "per country", "for each plan", "broken down by age group": the words
#: end before a preposition, or an "and" that may join a second breakdown
_BY = re.compile(r"\b(broken down by|split by|for each|by|per|across|each) (?:the )?"
                 r"([a-z][a-z0-9 ]*?)(?= (?:by|per|for|in|on|over|from|with|and|or)\b|$)")
#: a person or a device, one group each: no dimension ("by user_id", "per user"); after
#: "by", a plural is who did it ("orders by users over 65"), not a breakdown
_ENTITIES = ("user id", "userid", "anonymous id", "anon id", "device id", "customer id",
             "user", "customer", "shopper", "visitor", "person", "device")
#: the same ranked by a top question ("top 10 users by revenue", "which customers")
_PLURALS = {"users": "user", "customers": "customer", "shoppers": "shopper",
            "visitors": "visitor", "people": "person", "devices": "device"}
#: words after "by" that start no breakdown ("by far", "by those over 65")
_NO_BREAKDOWN = frozenset({"far", "those", "whom", "itself"})


def read_breakdown(text: str, vocab: Vocabulary, plan: Plan,
                   keep: frozenset[str] = frozenset()) -> str:
    """The breakdown of ``text`` ("by platform", "top 3 countries") into ``plan.by``, or
    declined with its words; returns the rest of ``text``. ``keep``: first words of a
    "by" phrase that the caller reads itself (an experiment's "by variant")."""
    pos = 0
    while (m := _BY.search(text, pos)) is not None:
        words = m.group(2).split()
        # a name with "by" or "per" in it ("by cancelled_by") runs past where _BY stops
        longer = text[m.start(2):].split()[:3]
        size, dim = _dimension(longer, vocab)
        if dim is not None and size > len(words):
            words = longer[:size]
        if words[0] in keep or _in_a_metric(text, m.group(0), vocab):
            pos = m.end()  # "revenue per user" is a metric's name
            continue
        entity = _entity(words, vocab)
        size, dim = _dimension(words, vocab)
        said = entity.split() if entity else words[:size] if dim else _said(words)
        end = m.start(2) + len(" ".join(said))
        phrase = text[m.start():end]
        if entity is not None:
            _entity_problem(phrase, entity, plan, vocab)
        elif dim is not None and plan.by is None:
            plan.by, plan.by_text = dim, phrase
            text = _and_another(text, end, vocab, plan)
        elif dim is not None and dim != plan.by:
            _one_only(phrase, plan, vocab)
        elif dim is None and (not said or _filler(said, vocab)):
            pos = m.end()  # "by far", "by seniors" (a filter): no breakdown
            continue
        elif dim is None and _a_metric(said, vocab):
            if plan.intent == "top":  # "top 3 countries by revenue": what it ranks by
                pos = m.end()
                continue
            metric = " ".join(said)
            decline_breakdown(phrase, f"{metric} is a metric, not a dimension, and nerve ask "
                              "answers one metric at a time" + (
                                  f" (to rank a dimension by it: 'top 3 countries by "
                                  f"{metric}')" if m.group(1) == "by" else ""), plan, vocab)
        elif dim is None:
            decline_breakdown(phrase, "nothing in the data matches it (no dimension or "
                              "event property), so nerve cannot break it down that way",
                              plan, vocab)
        text, pos = (text[: m.start()] + " " + text[end:]).strip(), m.start()
    if plan.intent == "top" and plan.by is None and not plan.ignored:
        text = _ranked(text, vocab, plan)
    return text


def decline_breakdown(phrase: str, why: str, plan: Plan, vocab: Vocabulary) -> None:
    """Declines the breakdown ``phrase``: its words in ``plan.ignored``, ``why`` in
    ``plan.problems``, and the dimensions nerve can break down by in
    ``plan.suggestions``."""
    plan.ignored.append(phrase)
    plan.problems.append(f"nerve did not understand {phrase!r} as a breakdown: {why}")
    plan.suggestions = plan.suggestions or [
        name for name, (_, values) in vocab.dimensions.items() if values]


def cannot_break_down(plan: Plan) -> None:
    """Declines the breakdown of a question whose tool cannot take one: a trend, a
    comparison, a forecast (a funnel's and a why-question's take it)."""
    if plan.by is None or plan.by_text is None:
        return
    metric, by = plan.metric or "", plan.by
    # "top 3 countries by daily revenue": a value per country and day, which is a trend
    if plan.intent == "trend" or (plan.grain and plan.intent in ("value", "top",
                                                                  "breakdown")):
        what, instead = "a trend", (f"`nerve metrics query {metric} --by {by} --grain "
                                    f"{plan.grain or 'day'}` gives it")
    elif plan.intent == "comparison":
        what, instead = "a comparison", (f"`nerve metrics query {metric} --by {by}` gives "
                                         "each period's values")
    elif plan.intent == "forecast":
        what, instead = "a forecast", f"the forecast would be of all {metric}"
    elif plan.intent == "experiment" and plan.experiment:
        what, instead = "an experiment's readout", (
            f"`nerve experiment analyze {plan.experiment} --by {by}` gives it")
    else:
        return
    plan.ignored.append(plan.by_text)
    plan.problems.append(f"nerve ask cannot break {what} down, so it did not apply "
                         f"{plan.by_text!r}: {instead}")
    plan.by = None


def _ranked(text: str, vocab: Vocabulary, plan: Plan) -> str:
    """The dimension "top 3 countries by revenue" or "which country had most orders"
    ranks; a person or a device it would rank ("top 10 users") is declined."""
    tokens = text.split()
    for i in range(len(tokens)):
        size, dim = _dimension(tokens[i:i + 2], vocab)
        if dim is not None:
            plan.by, plan.by_text = dim, " ".join(tokens[i:i + size])
            return " ".join(tokens[:i] + tokens[i + size:])
    for i, token in enumerate(tokens):
        entity = _entity(tokens[i:], vocab) or _PLURALS.get(token)
        if entity is None:
            continue
        size = len(entity.split())
        rest = tokens[:i] + tokens[i + size:]
        # "top 10 users by revenue" ranks users; "which day had the most users" counts them
        if any(_a_metric(rest[j:], vocab) for j in range(len(rest))):
            _entity_problem(" ".join(tokens[i:i + size]), entity, plan, vocab)
            return " ".join(rest)
    return text


def _singulars(word: str) -> tuple[str, ...]:
    """The singulars ``word`` may be the plural of: ``_stem``'s ("cities", "boxes"), and
    the word without its s ("cuisines", "sources", whose "es" is no plural ending)."""
    return (_stem(word), word[:-1]) if word.endswith("s") else (word,)


def _dim_name(words: str, vocab: Vocabulary) -> str | None:
    words = words.strip()
    for candidate in (words, words.replace(" ", "_")):
        if candidate in vocab.dimensions:
            return candidate
    if words in _DIM_WORDS and _DIM_WORDS[words] in vocab.dimensions:
        return _DIM_WORDS[words]
    for candidate in _singulars(words):
        if candidate in vocab.dimensions:
            return candidate
    joined = words.replace(" ", "_")
    for candidate in (joined, *_singulars(joined)):
        if candidate in vocab.properties:
            return candidate  # a property of the events: the query checks the metric's
    if words in _STOP:  # "by" is no property's last word ("cancelled_by")
        return None
    ends = [p for p in vocab.properties if p.endswith("_" + joined)]
    return ends[0] if len(ends) == 1 else None  # "by provider": payment_provider


def _dimension(words: list[str], vocab: Vocabulary) -> tuple[int, str | None]:
    """The dimension (or event property) that ``words`` start with, and how many words
    name it; a property named as a metric is the metric ("top 3 countries by revenue"
    ranks by the metric revenue, not by the purchase's property)."""
    for size in range(min(3, len(words)), 0, -1):
        dim = _dim_name(" ".join(words[:size]), vocab)
        if dim is not None and (dim in vocab.dimensions
                                or not _is_a_metric(words[:size], vocab)):
            return size, dim
    return 0, None


def _and_another(text: str, end: int, vocab: Vocabulary, plan: Plan) -> str:
    """``text`` without a second dimension joined to the breakdown ending at ``end``
    ("by platform and country"), which is declined."""
    m = re.match(r" (?:and|,) (?:by |per )?(?:the )?([a-z][a-z0-9 ]*)", text[end:])
    size, dim = _dimension(m.group(1).split(), vocab) if m else (0, None)
    if m is None or dim is None:
        return text
    stop = end + m.start(1) + len(" ".join(m.group(1).split()[:size]))
    _one_only(text[end:stop].strip(), plan, vocab)
    return text[:end] + text[stop:]


def _one_only(phrase: str, plan: Plan, vocab: Vocabulary) -> None:
    decline_breakdown(phrase, "it names a second breakdown, and nerve ask breaks down by "
                      "one dimension at a time (`nerve metrics query --by` takes several)",
                      plan, vocab)


def _entity(words: list[str], vocab: Vocabulary) -> str | None:
    """The person or device ``words`` start with ("user id", "customer"), unless the
    semantic layer names a dimension so (a "device" is the platform)."""
    said = " ".join(words)
    for form in _ENTITIES:
        if re.match(rf"{form}\b", said) and _dim_name(form, vocab) is None:
            return form
    return None


def _entity_problem(phrase: str, entity: str, plan: Plan, vocab: Vocabulary) -> None:
    decline_breakdown(phrase, f"{entity} is not a dimension, and one group per {entity} "
                      "would be too many groups to answer in words; break it down by a "
                      f"dimension, or count per {entity} with `nerve sql`", plan, vocab)


def _said(words: list[str]) -> list[str]:
    """The words of a "by" phrase to quote: up to three, to the first word such as
    "the" or "last"."""
    said: list[str] = []
    for word in words[:3]:
        if word in _STOP:
            break
        said.append(word)
    return said


def _filler(words: list[str], vocab: Vocabulary) -> bool:
    """``words`` after "by" start a filter ("by seniors", "by plus members", "by ios
    users") or no thing ("by far", "by users over 65", "across all platforms")."""
    if words[0] in _VAGUE or words[0] in _NO_BREAKDOWN:
        return True
    said = _stems(" ".join(words))
    values = [*vocab.segments, *_COUNTRIES,
              *(v for _, values in vocab.dimensions.values() for v in values)]
    return any(_starts(said, _stems(v)) for v in values if _stems(v))


def _a_metric(words: list[str], vocab: Vocabulary) -> bool:
    """``words`` start with a metric's name, label or synonym ("revenue", "sales")."""
    said = _stems(" ".join(words))
    return any(_starts(said, phrase) for phrase, _ in _phrases(vocab))


def _is_a_metric(words: list[str], vocab: Vocabulary) -> bool:
    """``words`` are a metric's name, label or synonym, whole ("revenue", not "session
    id", which starts with the metric sessions but is a property)."""
    said = _stems(" ".join(words))
    return any(said == phrase for phrase, _ in _phrases(vocab))


def _in_a_metric(text: str, phrase: str, vocab: Vocabulary) -> bool:
    """``phrase`` is part of a metric's name said in ``text`` ("revenue per user")."""
    stemmed, said = _stems(text), _stems(phrase)
    return any(said in p and re.search(rf"\b{re.escape(p)}\b", stemmed)
               for p, _ in _phrases(vocab))


def _starts(said: str, phrase: str) -> bool:
    return said == phrase or said.startswith(phrase + " ")
