"""Question -> Plan: the offline planner (no LLM), pure over a Vocabulary.

The vocabulary is what nerve knows: metrics (names, labels, synonyms, descriptions),
dimensions with the values seen in the data, segments, cataloged events, experiments.
The planner finds, in order: a period-over-period phrase, a time range, the intent,
filters stated with a dimension's name (``where country is DE``), a grain, a top N, a
breakdown (``by platform``), filters named by their value (``on iOS``, ``users over
65``, ``in Germany``), and the metric (``_filters`` reads the filters, ``_breakdowns``
the breakdown). What it cannot place it reports in ``Plan.problems``; a filter or a
breakdown it cannot read or apply declines the question.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from nerve.agent._breakdowns import cannot_break_down, decline_breakdown, read_breakdown
from nerve.agent._filters import read_filters, read_stated, spell_out
from nerve.agent._time import PERIODS, Span, find_comparison, find_span, unread_period
from nerve.agent._words import _STOP, _VAGUE, _any, _has, _norm, _phrases, _stems

__all__ = ["INTENTS", "MetricInfo", "Plan", "Vocabulary", "plan_question"]

INTENTS = ("value", "comparison", "trend", "breakdown", "top", "funnel", "explain",
           "experiment", "forecast", "health", "catalog", "unknown")


@dataclass(frozen=True, slots=True)
class MetricInfo:
    name: str
    label: str
    description: str = ""
    synonyms: tuple[str, ...] = ()
    #: what a simple metric counts: ``events`` (a count) or ``people`` (distinct users);
    #: None for any other metric
    counts: str | None = None
    #: for a counting metric, what it counts over: its events and filters
    #: (``order_completed where currency = 'EUR'``)
    over: str = ""
    #: the cataloged events it reads (empty: every event, or none named)
    events: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """Everything the planner may map words onto."""

    metrics: tuple[MetricInfo, ...]
    #: dimension name -> (description, values seen in the data)
    dimensions: dict[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)
    #: segment name -> description
    segments: dict[str, str] = field(default_factory=dict)
    events: tuple[str, ...] = ()
    experiments: dict[str, str] = field(default_factory=dict)  # key -> name
    #: the cataloged events' property names: a breakdown may name one ("by gateway")
    properties: tuple[str, ...] = ()


@dataclass(slots=True)
class Plan:
    """What to compute for a question; ``as_dict`` is the JSON answer's ``plan``."""

    question: str
    intent: str = "value"
    metric: str | None = None
    span: Span | None = None
    compare_days: int | None = None
    grain: str | None = None
    by: str | None = None
    #: the words of the breakdown ("by device", "top 3 countries"), quoted if declined
    by_text: str | None = None
    where: list[str] = field(default_factory=list)
    segments: list[str] = field(default_factory=list)
    filters_text: list[str] = field(default_factory=list)
    limit: int | None = None
    direction: str = "desc"
    steps: list[str] = field(default_factory=list)
    #: phrases that look like filters but match nothing (said in the answer, not dropped
    #: silently: "revenue in Narnia" is not the revenue of everywhere)
    ignored: list[str] = field(default_factory=list)
    event: str | None = None
    experiment: str | None = None
    #: the move a "why" question takes for granted ("why did sales drop"): down or up;
    #: the answer says so when the metric did otherwise
    premise: str | None = None
    problems: list[str] = field(default_factory=list)
    suggestions: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"question": self.question, "intent": self.intent, "metric": self.metric,
                "time": self.span.as_dict() if self.span else None,
                "compare_days": self.compare_days, "grain": self.grain, "by": self.by,
                "where": " and ".join(self.where) or None, "segments": self.segments,
                "filters": self.filters_text, "limit": self.limit,
                "direction": self.direction, "steps": self.steps,
                "ignored": self.ignored, "premise": self.premise, "event": self.event,
                "experiment": self.experiment, "problems": self.problems,
                "suggestions": self.suggestions}


# ---------------------------------------------------------------- words

_GRAINS = {"daily": "day", "each day": "day", "per day": "day", "by day": "day",
           "day by day": "day", "every day": "day", "weekly": "week", "each week": "week",
           "per week": "week", "by week": "week", "monthly": "month", "by month": "month",
           "per month": "month", "hourly": "hour", "by hour": "hour", "per hour": "hour"}
#: everyday words (stemmed) -> metric phrases a workspace may define
_EVERYDAY = {"money": ("revenue", "sales"), "earn": ("revenue", "sales"),
             "earned": ("revenue", "sales"), "made": ("revenue", "sales"),
             "make": ("revenue", "sales"), "bought": ("orders", "purchases"),
             "buy": ("orders", "purchases"), "purchased": ("orders", "purchases"),
             "spent": ("revenue", "sales"), "spend": ("revenue", "sales"),
             "visited": ("sessions", "visits"), "visit": ("sessions", "visits")}
#: the words of an experiment's own breakdown ("results by variant")
_READOUT = frozenset({"variant", "variants", "arm", "arms", "group", "groups"})
#: words for a quantity: left over after a metric is found, the question asks for another
_QUANTITY = frozenset({"lifetime", "ltv", "clv", "churn", "retention", "ratio", "score",
                       "nps", "cost", "cac", "margin", "profit", "install", "download",
                       "satisfaction", "latency", "value", "rate", "share", "percentage",
                       "average", "avg", "mean", "median", "typical"})


# ---------------------------------------------------------------- planning

def plan_question(question: str, vocab: Vocabulary, today: date) -> Plan:
    """The plan for ``question`` (``today`` in the workspace's time zone).

    >>> v = Vocabulary((MetricInfo("revenue", "Revenue", synonyms=("sales",)),))
    >>> plan_question("sales yesterday", v, date(2026, 11, 28)).metric
    'revenue'
    """
    plan = Plan(question=question.strip())
    rest = spell_out(question.strip().rstrip("?!. "))
    plan.compare_days, rest = find_comparison(rest)
    plan.span, rest = find_span(rest, today)
    unread = unread_period(rest)
    if unread is not None:  # never the figure of all the data for a period asked
        plan.intent = "unknown"
        plan.ignored.append(unread)
        plan.problems.append(
            f"the question names a second period, {unread!r}, besides {plan.span.label!r}: "
            "nerve answers for one period (or compares it with the one before: 'this month "
            "vs last month')" if plan.span else
            f"nerve did not understand {unread!r} as a period, and will not answer over "
            "all the data instead (docs/ask.md lists the phrases it reads)")
        plan.suggestions = list(PERIODS)
        return plan
    text = _norm(rest)
    plan.intent = _intent(text, plan)
    if re.search(r"->|\u2192", question) and plan.intent not in (
            "experiment", "health", "catalog", "explain"):
        plan.intent = "funnel"  # "app opened -> ride requested": steps, in order
    if plan.intent == "experiment":
        text = read_breakdown(text, vocab, plan, keep=_READOUT)
        _experiment(text, vocab, plan)
        cannot_break_down(plan)
        if plan.ignored:
            plan.intent = "unknown"
        return plan
    if plan.intent == "health":
        plan.event = _event(text, vocab)
        return plan
    if plan.intent == "funnel":
        plan.steps = _events_in_order(text, vocab)
        if len(plan.steps) < 2:
            plan.problems.append("a funnel needs at least two cataloged events, in order "
                                 "(e.g. 'funnel from product_view to add_to_cart to "
                                 "purchase_complete')")
            plan.suggestions = list(vocab.events)
        text = read_breakdown(read_stated(text, vocab, plan), vocab, plan)  # run_funnel's by
        read_filters(text, vocab, plan)
        if plan.where or plan.segments:  # run_funnel has no filter: not everyone's funnel
            shown = ", ".join(repr(f) for f in plan.filters_text)
            plan.problems.append(f"nerve ask cannot filter a funnel, so it did not apply "
                                 f"{shown}: the funnel would count every user")
        if plan.where or plan.segments or plan.ignored:
            plan.intent = "unknown"
        return plan
    if plan.intent == "catalog":
        plan.event = _event(text, vocab)
        metric, _ = _metric(text, vocab)
        plan.metric = None if plan.event else metric
        if plan.event is None and plan.metric is None:
            plan.problems.append("no cataloged event or metric is named in the question")
            plan.suggestions = _closest(text, vocab)
        return plan
    text = read_stated(text, vocab, plan)  # before "by" and "top" take its dimension
    text = _grain(text, plan)
    text, top = _top(text, plan)
    text = read_breakdown(text, vocab, plan)
    text = read_filters(text, vocab, plan)
    asked = _PEOPLE.search(text)
    if asked is not None:  # "how many customers placed orders"
        text = _people(text, asked, vocab, plan)
        if plan.intent == "unknown":
            return plan
    if plan.metric is None:
        said = text
        plan.metric, text = _metric(text, vocab)
        if plan.metric is not None and _event_named_instead(said, plan.metric, vocab):
            plan.metric, text = None, said  # "meditations were started": not completions
    if plan.metric is None:  # "how many tracks were skipped": a metric counts that event
        plan.metric = _counting(_event(text, vocab), asked is not None, vocab)
    if plan.metric is None and plan.intent == "explain":
        # "why did item added drop?": no metric counts the event, so its count is what
        # is explained (as `nerve explain item_added` does)
        named = _event_matches(text, vocab)
        if named:
            start, end, plan.event = named[0]
            text = (text[:start] + " " + text[end:]).strip()
    if plan.metric is None and plan.event is None:
        event = _event(text, vocab)
        words = [w for w in text.split() if w not in _STOP]
        what = " ".join(words) or question
        if event is not None:
            plan.problems.append(
                f"the event {event} is cataloged, but no metric counts it (`nerve trend "
                f"{event}` counts its events, with `--measure users` its users)")
        else:
            plan.problems.append(f"nerve has no metric or event for {what!r}")
        plan.suggestions = _closest(text, vocab)
        plan.intent = "unknown"
        return plan
    leftover = sorted(_QUANTITY & set(text.split()))
    if leftover:  # "customer lifetime value": buyers was named, but not what is asked
        target = plan.metric or f"the {plan.event} events"
        plan.problems.append(f"the question asks for {' '.join(leftover)!r} of "
                             f"{target}, which no metric defines")
        plan.suggestions = [*([plan.metric] if plan.metric else []),
                            *(_closest(question, vocab))]
        plan.suggestions = list(dict.fromkeys(plan.suggestions))
        plan.metric, plan.event, plan.intent = None, None, "unknown"
        return plan
    filters = [m.group(0) for m in re.finditer(
        r"\b(?:on|in|from|for|among|with) (?:the )?([a-z][a-z0-9]+)\b", text)
        if m.group(1) not in _STOP and m.group(1) not in _VAGUE]
    versus = re.search(r"\b(?:vs|versu|versus)\b(?: [a-z0-9+.%/]+){0,3}", text)
    if versus is not None and not plan.ignored:  # "rides vs black friday", "x vs orders"
        plan.ignored.append(versus.group(0))
        plan.problems.append(
            f"nerve did not understand {versus.group(0)!r} as a comparison: it compares a "
            "period with the one just before it ('vs last week', 'vs the week before'), "
            "one metric at a time")
    plan.ignored += filters  # after the filters read_filters declined
    if filters:  # "revenue in Narnia": the revenue of everywhere would mislead
        phrases = ", ".join(repr(p) for p in filters)
        plan.problems.append(f"nerve did not understand {phrases} as a filter: nothing in "
                             "the data matches it (no dimension value or segment)")
    if plan.ignored:  # the dimension a declined filter names, else the first ones
        plan.suggestions = plan.suggestions or [
            f"{name} ({', '.join(values[:6])})"
            for name, (_, values) in vocab.dimensions.items() if values][:4]
        plan.intent = "unknown"
        return plan
    if plan.intent == "forecast" and (plan.where or plan.segments):
        shown = ", ".join(repr(f) for f in plan.filters_text)
        plan.problems.append(f"nerve cannot filter a forecast, so it did not apply "
                             f"{shown}: the forecast would be of all {plan.metric}")
        plan.intent = "unknown"
        return plan
    if plan.intent == "value" and plan.by:
        plan.intent = "breakdown"
    if plan.intent == "top" and not plan.by and plan.grain:
        plan.intent = "value"  # "the highest daily revenue": the trend names its top day
    elif plan.intent == "top" and not plan.by:
        decline_breakdown(top or "top", "a ranking needs a dimension to rank ('top 3 "
                          "countries by revenue'), and the question names none", plan, vocab)
    if plan.intent == "explain":
        plan.premise = _premise(_norm(question))
    if plan.intent in ("comparison", "explain") and plan.compare_days is None \
            and plan.span is None:
        plan.compare_days = 7
    if plan.intent == "trend" and plan.grain is None:
        plan.grain = "day"
    if plan.grain and plan.intent == "value":
        plan.intent = "trend"
    cannot_break_down(plan)  # a trend's, a comparison's, a forecast's
    if plan.ignored:
        plan.intent = "unknown"
    return plan


#: "track" and "mean" as verbs ("what do we track", "what does X mean"), not as the noun
#: of a music app's track_played or a mean listening time
_CATALOG_VERB = re.compile(r"\b(?:do|does|we|you|it)\b(?: [a-z0-9]+){0,6} (?:track|mean)s?$"
                           r"|\bwhat (?:[a-z0-9]+ ){0,6}(?:tracks|means)$")


def _intent(text: str, plan: Plan) -> str:
    text = re.sub(r"\bbroken down\b", "split", text)  # a breakdown, not broken data
    if _any(text, "experiment", "a/b", "ab test", "a b test", "variant", "variants") \
            or re.search(r"\b(test|rollout) (result|readout)", text):
        return "experiment"
    if _any(text, "data health", "data quality", "quality", "trust the data", "healthy",
            "checks", "broken", "data issues", "data problems", "tracking issues",
            "instrumentation"):
        return "health"
    if _any(text, "what does", "what is tracked", "tracked", "defined", "definition",
            "define", "how is", "describe", "meaning", "properties of", "what is the event"
            ) or _CATALOG_VERB.search(text):
        return "catalog"
    if _any(text, "funnel", "drop off", "drop-off", "dropoff") or (
            _any(text, "from") and _any(text, "then", "to") and _any(text, "convert")):
        return "funnel"
    if _any(text, "why") or _WHAT_MOVED.search(text):
        return "explain"
    if _any(text, "forecast", "predict", "projection", "project", "will", "expect",
            "expected", "next week", "next month", "next 7 days", "next 14 days"):
        return "forecast"
    if re.search(r"\b(top|bottom|best|worst|highest|lowest|most|least|fewest|biggest|"
                 r"smallest|largest)\b", text):
        return "top"
    if plan.compare_days is not None or _any(
            text, "compare", "compared", "change", "changed", "grow", "grew", "growth",
            "up or down", "increase", "decrease", "drop", "dropped", "rise", "rose", "fall",
            "fell"):
        return "comparison"
    if _any(text, "trend", "over time", "daily", "weekly", "monthly", "each day",
            "per day", "day by day", "by day", "by week", "by month", "hourly",
            "timeline", "time series"):
        return "trend"
    return "value"


#: a "why" without the word: "what changed in signups?", "what happened to orders on
#: android?", "what's behind the drop in revenue?" ask for the drivers, not the two totals
_WHAT_MOVED = re.compile(r"\bwhat(?: is|'s)? (?:caused|drove|explains|behind|changed "
                         r"(?:in|about|for|with)|happened (?:to|with))\b")


_DOWN = ("drop", "dropped", "drops", "fall", "fell", "falls", "decline", "declined",
         "decrease", "decreased", "dip", "dipped", "shrink", "shrank", "go down", "went down",
         "down", "lower", "less", "fewer", "slump", "slumped", "plunge", "plunged", "tank",
         "tanked")
_UP = ("rise", "rose", "rises", "grow", "grew", "grows", "increase", "increased", "jump",
       "jumped", "spike", "spiked", "climb", "climbed", "go up", "went up", "up", "higher",
       "more", "surge", "surged", "soar", "soared")


def _premise(text: str) -> str | None:
    """The direction a "why" question assumes (None when it names none, or both)."""
    text = re.sub(r"\b(?:sign|signed|set|follow|followed|pick|picked) up\b", " ", text)
    down, up = _any(text, *_DOWN), _any(text, *_UP)
    return "down" if down and not up else "up" if up and not down else None


def _grain(text: str, plan: Plan) -> str:
    for phrase in sorted(_GRAINS, key=len, reverse=True):
        m = _has(text, phrase)
        if m is not None:
            plan.grain = _GRAINS[phrase]
            return (text[: m.start()] + " " + text[m.end():]).strip()
    return text


def _top(text: str, plan: Plan) -> tuple[str, str | None]:
    """``text`` without its "top 3", "most"... (into ``plan.limit``), and those words."""
    m = re.search(r"\b(top|bottom|best|worst|highest|lowest|most|least|fewest|biggest|"
                  r"smallest|largest)(?: (\d+|one|two|three|four|five|ten))?\b", text)
    if m is None:
        return text, None
    words = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "ten": 10}
    n = m.group(2)
    plan.limit = (int(n) if n.isdigit() else words[n]) if n else 1
    if m.group(1) in ("bottom", "worst", "lowest", "least", "fewest", "smallest"):
        plan.direction = "asc"
    if plan.intent == "top" and not n and _any(text, "which", "what"):
        plan.limit = 1
    return (text[: m.start()] + " " + text[m.end():]).strip(), m.group(0)


#: words a question puts inside a metric's label ("lessons were completed" for the label
#: "Lessons completed"): left out when the label is not found as said
_AUXILIARIES = re.compile(r"\b(?:was|were|is|are|be|been|being|get|got|gotten|has|have|had"
                          r")\b ?")


def _metric(text: str, vocab: Vocabulary) -> tuple[str | None, str]:
    stemmed = _stems(text)
    for said in (stemmed, _AUXILIARIES.sub("", stemmed)):
        # the metric said first ("orders placed by customers" counts orders, not
        # customers); at one place the longest phrase ("revenue per user" over "revenue")
        found: tuple[re.Match[str], str] | None = None
        for phrase, name in _phrases(vocab):
            m = _has(said, phrase)
            if m is not None and (found is None or m.start() < found[0].start()):
                found = (m, name)
        if found is not None:
            m, name = found
            return name, (said[: m.start()] + " " + said[m.end():]).strip()
    # everyday words for common metrics, tried against the workspace's own names
    for word, phrases in _EVERYDAY.items():
        if _has(stemmed, word):
            for phrase in phrases:
                for known, name in _phrases(vocab):
                    if known == _stems(phrase):
                        return name, stemmed.replace(word, " ")
    # fuzzy: a misspelt word close to one metric word ("revnue")
    words = [w for w in stemmed.split() if w not in _STOP and len(w) > 3]
    single = {p: n for p, n in _phrases(vocab) if " " not in p}
    for word in words:
        close = difflib.get_close_matches(word, list(single), n=1, cutoff=0.85)
        if close:
            return single[close[0]], stemmed.replace(word, " ")
    return None, text


#: a question that counts people: "how many customers ...", "the number of users who ..."
_PEOPLE = re.compile(
    r"\b(?:how many|number of)(?: different| distinct| unique)? (?:people|persons|users|"
    r"customers|visitors|shoppers|buyers|players|members|riders|drivers|accounts|clients|"
    r"guests|patients|students|subscribers|readers|listeners|viewers)\b")


def _people(text: str, asked: re.Match[str], vocab: Vocabulary, plan: Plan) -> str:
    """For a question that counts people, the metric of the people behind what the rest
    of it names: "how many customers placed orders" is the distinct users of the events
    ``orders`` counts, not the count of orders. Sets ``plan.metric`` (or declines, when no
    metric counts those people) and returns the text left; leaves both alone when the rest
    names no counting metric ("how many users": the metric named by the word itself)."""
    rest = (text[: asked.start()] + " " + text[asked.end():]).strip()
    name, left = _metric(rest, vocab)
    counted = next((m for m in vocab.metrics if m.name == name), None)
    if counted is None or counted.counts != "events":
        return text
    people = [m.name for m in vocab.metrics
              if m.counts == "people" and m.over == counted.over]
    if people:
        plan.metric = people[0]
        return left
    plan.problems.append(
        f"the question asks how many people, but {counted.name} counts {counted.over} "
        "events, not the people behind them, and no metric counts those people (a metric "
        "with count_distinct over the same events would; for one event, `nerve trend "
        "<event> --measure users` counts them)")
    plan.suggestions = [m.name for m in vocab.metrics if m.counts == "people"]
    plan.intent = "unknown"
    return left


def _counting(event: str | None, people: bool, vocab: Vocabulary) -> str | None:
    """The metric that counts all of ``event``: its events, or with ``people`` the
    distinct users behind them (None when no metric does, or a filter narrows it)."""
    want = "people" if people else "events"
    return next((m.name for m in vocab.metrics
                 if event is not None and m.counts == want and m.over == event), None)


def _closest(text: str, vocab: Vocabulary, n: int = 3) -> list[str]:
    """The metrics whose names, synonyms or descriptions share most words with ``text``."""
    words = {w for w in _stems(text).split() if w not in _STOP and len(w) > 2}
    scored = []
    for m in vocab.metrics:
        bag = set(_stems(" ".join((m.name, m.label, m.description, *m.synonyms))).split())
        fuzzy = sum(1 for w in words if difflib.get_close_matches(w, bag, n=1, cutoff=0.8))
        scored.append((-(len(words & bag) * 2 + fuzzy), m.name))
    scored.sort()
    return [name for score, name in scored if score < 0][:n]


#: words a question puts between an event's words ("opened the app", "the app was
#: opened"): skipped when an event is matched from its words
_FILLERS = frozenset({"the", "a", "an", "my", "our", "your", "their", "his", "her", "its",
                      "was", "were", "is", "are", "be", "been", "being", "get", "got"})


def _event_matches(text: str, vocab: Vocabulary) -> list[tuple[int, int, str]]:
    """Where the cataloged events are named in ``text``, in order: by name
    (``app_opened``, "app opened", "app openeds"), or, for a name of several words, by
    those words in any order and form next to each other ("opened the app", "app opens",
    "the app was opened" for ``app_opened``). Every word of the name must be said:
    "the app" alone names no event; but a name whose verb only says its act happened
    (search_performed) is named by the act alone, in any form ("searched", "searches"),
    when no other event is."""
    found: list[tuple[int, int, str]] = []

    def take(start: int, end: int, event: str) -> None:
        if not any(a < end and start < b for a, b, _ in found):
            found.append((start, end, event))

    words = [(m.start(), m.end(), _root(m.group(0)))
             for m in re.finditer(r"[a-z0-9]+", text) if m.group(0) not in _FILLERS]
    events = sorted(vocab.events, key=len, reverse=True)
    for event in events:  # names as written first: they win over words matched loosely
        for form in {event.lower(), _norm(event)}:
            for m in re.finditer(rf"(?<![a-z0-9_]){re.escape(form)}s?(?![a-z0-9_])", text):
                take(m.start(), m.end(), event)
    for event in events:
        roots = sorted(_root(w) for w in _norm(event).split())
        if len(roots) < 2:
            continue
        for i in range(len(words) - len(roots) + 1):
            window = words[i: i + len(roots)]
            if sorted(w for _, _, w in window) == roots:
                take(window[0][0], window[-1][1], event)
    done = {event: _acted(event) for event in events}
    for start, end, root in words:  # "searched", "searches" for search_performed
        named = [event for event, acted in done.items() if acted == root]
        if len(named) == 1:  # two events of that act: which is meant is not said
            take(start, end, named[0])
    return sorted(found)


#: verbs that say only that the act of an event's other word happened
#: (search_performed, payment_made): the other word alone, in any form, names the event
_DONE = frozenset({"performed", "done", "made", "executed", "triggered", "occurred",
                   "happened", "conducted"})


def _acted(event: str) -> str | None:
    """The root of the act an event of two words names with a verb of :data:`_DONE`
    ("search" of search_performed): said as a verb or a noun ("who searched", "how many
    searches") it names the event. None for any other name: "session" alone does not
    name session_start."""
    words = _norm(event).split()
    acts = [w for w in words if w not in _DONE]
    return _root(acts[0]) if len(words) == 2 and len(acts) == 1 else None


def _root(word: str) -> str:
    """A crude root shared by a word's forms ("opened", "opens", "opening" -> "open";
    "purchases", "purchase" -> "purchas"; "failures", "failed" -> "fail"), to match an
    event's words as said."""
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    if word.endswith("e") and len(word) > 3:
        word = word[:-1]
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "lsz":
        word = word[:-1]  # "submitted" -> "submit"
    for noun in ("ur", "ion"):  # "failures", "failed" -> "fail"; "completion" -> "complet"
        if word.endswith(noun) and len(word) - len(noun) >= 4:
            return word[: -len(noun)]
    return word


def _event_named_instead(text: str, metric: str, vocab: Vocabulary) -> bool:
    """The metric was found only inside the words of an event it does not count: "how many
    meditations were started" names meditation_started, not the metric meditations (of
    meditation_completed), though it says the metric's name; "ride completions" names
    ride_completed, not the metric riders (its distinct users), though "ride" is close to
    "riders"."""
    info = next(m for m in vocab.metrics if m.name == metric)
    if not info.events:  # a metric of every event reads this one too
        return False
    phrases = [p for p, name in _phrases(vocab) if name == metric]
    for start, end, event in _event_matches(text, vocab):
        if event in info.events:
            if info.counts == "events" and info.over == event:
                continue  # the count of the event named: the same number either way
            if not _said_beside(text, start, end, metric, phrases, vocab):
                return True  # its users, a sum, a ratio: named by the event's words only
            continue
        parts = (_stems(text[:start]), _stems(text[end:]))
        if not any(_has(part, p) or _has(_AUXILIARIES.sub("", part), p)
                   for part in parts for p in phrases):
            return True
    return False


def _said_beside(text: str, start: int, end: int, metric: str, phrases: list[str],
                 vocab: Vocabulary) -> bool:
    """Whether ``metric`` is said in ``text`` beyond the event named at ``start:end``:
    in the words around it ("gross bookings of completed rides"), or by a phrase that
    reaches past the event's words ("payment failure rate" over payment_failed)."""
    if _metric(text[:start] + " " + text[end:], vocab)[0] == metric:
        return True
    stemmed, inside = _stems(text), _stems(text[start:end])
    return any((_has(stemmed, p) or _has(_AUXILIARIES.sub("", stemmed), p))
               and not _has(inside, p) for p in phrases)


def _event(text: str, vocab: Vocabulary) -> str | None:
    named = _event_matches(text, vocab)
    return named[0][2] if named else None


def _events_in_order(text: str, vocab: Vocabulary) -> list[str]:
    return [event for _, _, event in _event_matches(text, vocab)]


def _experiment(text: str, vocab: Vocabulary, plan: Plan) -> None:
    for key, name in vocab.experiments.items():
        if _has(text, _norm(key)) or (name and _has(text, _norm(name))):
            plan.experiment = key
            return
    if len(vocab.experiments) == 1:
        plan.experiment = next(iter(vocab.experiments))
        return
    words = set(text.split()) - _STOP
    best = [(len(words & set(_norm(f"{k} {n}").split())), k)
            for k, n in vocab.experiments.items()]
    best.sort(reverse=True)
    if best and best[0][0] > 0:
        plan.experiment = best[0][1]
        return
    plan.problems.append("which experiment? none is named in the question" if
                         vocab.experiments else "no experiments are defined (experiments/)")
    plan.suggestions = list(vocab.experiments)
