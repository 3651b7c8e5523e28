"""The filters of a question, read into a ``Plan`` (pure, as the planner is).

A filter is stated with a dimension's name ("where country is DE", "plan = 'plus'",
"with platform ios"), or named by its value alone ("on iOS", "in Germany", "from DE
users", "users over 65", a segment such as "seniors"). Values are the ones in the data,
whatever their case. A phrase that reads as a filter but maps onto none ("where plan is
pro", "not on ios", "where coupon is SAVE10") goes to ``Plan.ignored`` with the reason
in ``Plan.problems``, and the question is declined: never answered unfiltered.
"""

from __future__ import annotations

import itertools
import re
from typing import TYPE_CHECKING

from nerve.agent._words import _DIM_WORDS, _NUM, _STOP, _VAGUE, _any, _has, _norm, _stems

if TYPE_CHECKING:
    from nerve.agent._plan import Plan, Vocabulary

__all__ = ["read_filters", "read_stated", "spell_out"]

_COUNTRIES = {
    "united states": "US", "usa": "US", "america": "US", "us": "US", "germany": "DE",
    "france": "FR", "spain": "ES", "japan": "JP", "brazil": "BR", "india": "IN",
    "canada": "CA", "australia": "AU", "united kingdom": "GB", "uk": "GB",
    "britain": "GB", "england": "GB", "italy": "IT", "netherlands": "NL",
    "austria": "AT", "switzerland": "CH", "mexico": "MX", "china": "CN",
    "poland": "PL", "sweden": "SE", "ireland": "IE", "portugal": "PT",
}
#: ages: "users over 65", "aged 65+", "under 25", "65 and older"; "users over 65" reads
#: as the over-65s (65 and over), and the answer shows the filter
_AGES = ((rf"\b(?:over|above|older than|more than) {_NUM}\b", ">="),
         (rf"\b(?:under|below|younger than) {_NUM}\b", "<"),
         (rf"\bgreater than {_NUM}\b", ">"),
         (rf"\b{_NUM}\+", ">="),
         (rf"\b(?:aged )?{_NUM} (?:and|or) (?:older|over|above)\b", ">="),
         (rf"\b(?:aged )?{_NUM} (?:and|or) (?:younger|under|below)\b", "<="))
#: how a filter states a value after the dimension's name ("country is DE")
_IS = ("is equal to", "equal to", "equals", "is", "are", "was", "were")
_IS_NOT = ("is not", "isn t", "are not", "aren t", "was not", "wasn t", "not")
#: the words that lead a stated filter ("where country is DE", "with plan plus")
_LEADS = ("where", "whose", "with", "for", "and")
#: a word before "<dimension> is" that asks about it ("which platform is best"): no filter
_ASKING = frozenset({"which", "what", "each", "every", "per", "by", "across", "how"})
#: words that end a value nerve does not know ("where plan is pro on ios")
_ENDS = frozenset({"and", "or", "by", "on", "in", "from", "for", "over", "with", "where",
                   "per", "during", "then", "but"})
#: words that may follow a value ("DE users", "the plus plan")
_TAIL = r"(?: (?:app|plan|users|shoppers|platform|members|customers))?"
#: words before a value that leave it out ("not on ios", "except web")
_NEGATION = re.compile(r"\b(?:not|non|except|excluding|exclude|without|other than|"
                       r"apart from|besides)(?: (?:on|in|from|for|with|by|the|any))*\s*$")
#: words a "where" clause may keep once its filter is read ("where users came from DE")
_FILLER = frozenset({"only", "came", "come", "live", "lives", "based", "located"})
#: a "where" clause, unless it asks where ("where did sales come from")
_WHERE = re.compile(r"\b(?:where|whose|having)\b(?! (?:do|does|did|is|are|was|were|can|"
                    r"could|should|would|will|have|has|had)\b)(.*)$")


def spell_out(text: str) -> str:
    """``country = 'DE'`` -> ``country is DE``, ``age >= 65`` -> ``age 65 or over``:
    words, before the planner's normalisation drops signs and quotes (and would read
    the ``'s`` of a quoted ``'standard'`` as a possessive).

    >>> spell_out("orders where country = 'DE' and age >= 65")
    'orders where country is DE and age 65 or over'
    >>> spell_out("plan != 'free'")
    'plan is not free'
    """
    text = re.sub(r"\s*(?:!=|<>)\s*", " is not ", text)
    text = re.sub(r"\s*(?<![<>!=])==?(?!=)\s*", " is ", text)
    text = re.sub(r"\s*>=\s*(\S+)", r" \1 or over", text)
    text = re.sub(r"\s*<=\s*(\S+)", r" \1 or under", text)
    text = re.sub(r"\s*>\s*", " greater than ", text)
    text = re.sub(r"\s*<\s*", " under ", text)
    # quotes around a value, not an apostrophe inside a word ("shopper's")
    return " ".join(re.sub(r"(?<!\w)(['\"])([^'\"]+)\1(?!\w)", r"\2", text).split())


def read_stated(text: str, vocab: Vocabulary, plan: Plan) -> str:
    """Filters stated with a dimension's name (or a word for it, "device"): "where
    country is DE", "plan is plus", "with platform ios", "whose plan is not free".

    Read before breakdowns, so that "top 3 by orders where country is DE" keeps its
    filter rather than giving "country" to the breakdown.
    """
    forms = {w: d for w, d in _DIM_WORDS.items() if d in vocab.dimensions}
    forms |= {_norm(d): d for d in vocab.dimensions}
    if not forms:
        return text
    names = "|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True))
    ops = "|".join(sorted((*_IS_NOT, *_IS), key=len, reverse=True))
    stated = re.compile(rf"\b(?:({'|'.join(_LEADS)}) )?(?:the |their )?({names})"
                        rf"(?: ({ops}))? (?=\S)")
    text, pos = " ".join(text.split()), 0
    while (m := stated.search(text, pos)) is not None:
        lead, dim, op = m.group(1), forms[m.group(2)], m.group(3)
        rest = text[m.end():]
        value, length = _value(rest, dim, vocab)
        before = text[: m.start()].split()
        if (lead is None and before and before[-1] in _ASKING) or (
                op is None and (lead is None or value is None)) or (
                value is None and any(re.match(p, rest) for p, _ in _AGES)):
            # "revenue by country", "which platform is best": no filter; "where age is
            # over 65": read with the other ages
            pos = m.end()
            continue
        end = m.end() + length
        phrase = text[m.start():end]
        if op in _IS_NOT:
            _leaves_out(phrase, plan)
        elif value is None:
            _no_such_value(phrase, dim, text[m.end():end], vocab, plan)
        else:
            plan.where.append(_equals(dim, value))
            plan.filters_text.append(phrase)
        text = (text[: m.start()] + " " + text[end:]).strip()
        pos = m.start()
    return text


def read_filters(text: str, vocab: Vocabulary, plan: Plan) -> str:
    """Filters named by a value ("on iOS", "in Germany", "users over 65", "seniors"), and
    what is left of a "where" clause; returns the rest of ``text``."""
    text = " ".join(text.split())
    age = "age" if "age" in vocab.dimensions else None
    for pattern, op in _AGES:
        m = re.search(pattern, text)
        if (m is not None and age is not None and _any(
                text, "user", "users", "shopper", "shoppers", "people", "customers",
                "aged", "old", "older", "younger", "age", "buyers")) or (
                m is not None and age is not None and op == ">="):
            text = _take(text, m, plan, f"{age} {op} {m.group(1)}")
            break
    # segments by name: "seniors", "plus members", "mobile"
    for name in vocab.segments:
        if _has(_stems(text), _stems(name)) is None or name in plan.segments:
            continue
        m = re.search(rf"\b{re.escape(name.replace('_', ' '))}\b", text)
        negation = _NEGATION.search(text[: m.start()]) if m is not None else None
        if m is not None and negation is not None:  # "except web": not the segment
            _leaves_out(text[negation.start():m.end()].strip(), plan)
            text = (text[: negation.start()] + " " + text[m.end():]).strip()
            continue
        plan.segments.append(name)
        plan.filters_text.append(name.replace("_", " "))
        text = re.sub(rf"\b{re.escape(name.replace('_', ' '))}\b", " ", text)
    # dimension values: "on iOS", "in DE", "in Germany", "on the plus plan"
    for phrase, code in sorted(_COUNTRIES.items(), key=lambda kv: -len(kv[0])):
        m = re.search(rf"\b(?:in|from|for) (?:the )?{re.escape(phrase)}\b", text)
        if m is not None and "country" in vocab.dimensions:
            values = vocab.dimensions["country"][1]
            value = code if code in values or not values else None
            if value is not None:
                text = _take(text, m, plan, f"country = '{value}'")
                break
    taken = {w.split(" ")[0] for w in plan.where} & set(vocab.dimensions)
    for dim in taken:
        text = _second(text, dim, vocab, plan)
    for dim, (_, values) in vocab.dimensions.items():
        if dim in taken or dim == plan.by or dim in ("age", "os_version", "app_version"):
            continue
        found = _named_value(text, dim, values)
        if found is not None:
            text = _take(text, found[1], plan, _equals(dim, found[0]))
            text = _second(text, dim, vocab, plan)
            taken.add(dim)
    m = _WHERE.search(text)  # "where coupon is SAVE10": a filter nothing above read
    names = {w for form in (*vocab.dimensions, *_DIM_WORDS) for w in _norm(form).split()}
    if m is not None and set(m.group(1).split()) - _STOP - _VAGUE - _FILLER - names:
        _unmatched(m.group(0).strip(), plan)
        text = text[: m.start()].strip()
    return text


def _value(rest: str, dim: str, vocab: Vocabulary) -> tuple[str | None, int]:
    """The value of ``dim`` that ``rest`` starts with, as stored (a country by its name
    too), and the length it takes; else None, and the length of the words in its place."""
    values = vocab.dimensions[dim][1]
    said = [(_norm(v), v) for v in values]
    if dim == "country":
        said += [(name, code) for name, code in _COUNTRIES.items() if code in values]
    for words, value in sorted(said, key=lambda s: -len(s[0])):
        m = re.match(rf"(?:the )?{re.escape(words)}{_TAIL}(?![a-z0-9])", rest)
        if words and m is not None:
            return value, m.end()
    instead = list(itertools.takewhile(lambda w: w not in _ENDS, rest.split()))[:3]
    return None, len(" ".join(instead or rest.split()[:1]))


def _named_value(text: str, dim: str, values: tuple[str, ...]
                 ) -> tuple[str, re.Match[str]] | None:
    """A value of ``dim`` named alone in ``text`` ("on iOS", "from DE users")."""
    for value in sorted(values, key=len, reverse=True):
        v = _norm(value)  # as the question was normalised: "18-24" -> "18 24"
        if len(v) < 2 or (dim == "country" and len(v) == 2 and not (
                re.search(rf"\b(?:in|from) {re.escape(v)}\b", text) or (
                    v not in _STOP and v not in _VAGUE
                    and re.search(rf"\b(?:for|with) {re.escape(v)}\b", text)))):
            continue  # bare two-letter codes ("in", "us") are too often words
        m = re.search(rf"\b(?:on|in|from|for|with|using|via)?\s*(?:the )?"
                      rf"{re.escape(v)}{_TAIL}(?![a-z0-9])", text)
        if m is not None and re.search(rf"(?<![a-z0-9]){re.escape(v)}(?![a-z0-9])", text):
            return value, m
    return None


def _second(text: str, dim: str, vocab: Vocabulary, plan: Plan) -> str:
    """``text`` without a second value of ``dim``, which a filter took ("on ios or
    android", "in Germany or France"): declined, since nerve keeps one value of each
    dimension (and "android" must not become another dimension's filter, os)."""
    values = vocab.dimensions[dim][1]
    said = [_norm(v) for v in values]
    if dim == "country":  # "in Germany or France": France in the data or not
        said += list(_COUNTRIES)
    for words in sorted(said, key=len, reverse=True):
        short = len(words) < 3  # a two-letter code only after "or FR", "and in FR"
        m = re.search(rf"\b{'(?:or|and|in|from|for|with) ' if short else ''}"
                      rf"{re.escape(words)}(?![a-z0-9])", text)
        if m is not None and words and words not in _STOP and words not in _VAGUE:
            phrase = m.group(0)
            plan.ignored.append(phrase)
            plan.problems.append(f"nerve did not understand {phrase!r} as a filter: it "
                                 f"names a second {dim}, and nerve keeps one value of each "
                                 "dimension")
            _suggest(dim, vocab, plan)
            return (text[: m.start()] + " " + text[m.end():]).strip()
    return text


def _equals(dim: str, value: str) -> str:
    literal = value.replace("'", "''")
    return f"{dim} = '{literal}'"


def _take(text: str, m: re.Match[str], plan: Plan, where: str) -> str:
    """``text`` without the filter ``m`` found, which goes to ``plan`` (as ``where``);
    one that leaves its value out ("not on ios") is declined instead."""
    start = m.start()
    negation = _NEGATION.search(text[:start])
    if negation is not None:
        start = negation.start()
        _leaves_out(text[start:m.end()].strip(), plan)
    else:
        plan.where.append(where)
        plan.filters_text.append(m.group(0).strip())
    return (text[:start] + " " + text[m.end():]).strip()


def _leaves_out(phrase: str, plan: Plan) -> None:
    plan.ignored.append(phrase)
    plan.problems.append(f"nerve did not understand {phrase!r} as a filter: it reads "
                         "filters that keep a value, not ones that leave it out")


def _no_such_value(phrase: str, dim: str, said: str, vocab: Vocabulary, plan: Plan
                   ) -> None:
    values = vocab.dimensions[dim][1]
    plan.ignored.append(phrase)
    if values:
        known = ", ".join(values[:10]) + (", ..." if len(values) > 10 else "")
        plan.problems.append(f"nerve did not understand {phrase!r} as a filter: the "
                             f"dimension {dim} has no value {said!r} in the data (it has "
                             f"{known})")
        _suggest(dim, vocab, plan)
    else:
        plan.problems.append(f"nerve did not understand {phrase!r} as a filter: it does "
                             f"not list the values of {dim} (only those of text dimensions "
                             "with few values); `nerve metrics query --where` filters on "
                             "any value")


def _suggest(dim: str, vocab: Vocabulary, plan: Plan) -> None:
    """The dimension a declined filter names, with its values, as the closest nerve has
    (not the first dimensions of the layer)."""
    values = vocab.dimensions[dim][1]
    suggestion = f"{dim} ({', '.join(values[:6])}{', ...' if len(values) > 6 else ''})"
    if suggestion not in plan.suggestions:
        plan.suggestions.append(suggestion)


def _unmatched(phrase: str, plan: Plan) -> None:
    plan.ignored.append(phrase)
    plan.problems.append(f"nerve did not understand {phrase!r} as a filter: nothing in the "
                         "data matches it (no dimension value or segment)")
