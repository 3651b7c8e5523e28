"""Time phrases in a question -> a local date range (and the range to compare with).

Pure: ``today`` is passed in. Ranges are whole local days, ``until`` included, which is
what ``MetricQuery`` takes (an ``until`` date is included there too).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

__all__ = ["Span", "find_comparison", "find_span"]

_MONTHS = {name: i + 1 for i, name in enumerate(
    ["january", "february", "march", "april", "may", "june", "july", "august",
     "september", "october", "november", "december"])}
_MONTHS.update({name[:3]: i for name, i in list(_MONTHS.items())})
_MONTHS["sept"] = 9
_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
          "eight": 8, "nine": 9, "ten": 10, "fourteen": 14, "thirty": 30, "a": 1}
_MONTH_RE = "|".join(sorted(_MONTHS, key=len, reverse=True))


@dataclass(frozen=True, slots=True)
class Span:
    """``[since, until]`` in local days (``until`` included; None = up to now)."""

    since: date | None
    until: date | None
    label: str

    def days(self, today: date) -> int:
        """How many days it covers (to ``today`` when open-ended)."""
        start = self.since or today
        return ((self.until or today) - start).days + 1

    def before(self, today: date) -> Span:
        """The span of the same length right before this one."""
        if self.since is None:
            raise ValueError("an open span has nothing before it")
        n = self.days(today)
        end = self.since - timedelta(days=1)
        return Span(end - timedelta(days=n - 1), end, f"the {n} days before")

    def as_dict(self) -> dict[str, str | None]:
        return {"since": self.since.isoformat() if self.since else None,
                "until": self.until.isoformat() if self.until else None,
                "label": self.label}


def _month(year: int, month: int) -> tuple[date, date]:
    first = date(year, month, 1)
    nxt = date(year + (month == 12), month % 12 + 1, 1)
    return first, nxt - timedelta(days=1)


def _day(text: str, today: date) -> date | None:
    """``2026-11-01``, ``Nov 1``, ``1 November``, ``11/01`` -> a date (this year, or the
    year before when it would be in the future)."""
    text = text.strip().lower().rstrip(".,")
    try:
        return date.fromisoformat(text)
    except ValueError:
        pass
    m = re.fullmatch(rf"({_MONTH_RE})\.? (\d{{1,2}})(?:st|nd|rd|th)?(?:,? (\d{{4}}))?", text) \
        or re.fullmatch(rf"(\d{{1,2}})(?:st|nd|rd|th)? (?:of )?({_MONTH_RE})(?:,? (\d{{4}}))?",
                        text)
    if m is None:
        return None
    a, b, year_text = m.groups()
    month, day = (_MONTHS[a], int(b)) if a in _MONTHS else (_MONTHS[b], int(a))
    year = int(year_text) if year_text else today.year
    try:
        found = date(year, month, day)
    except ValueError:
        return None
    if not year_text and found > today:
        found = date(year - 1, month, day)
    return found


_DATE = (rf"\d{{4}}-\d{{2}}-\d{{2}}|(?:{_MONTH_RE})\.? \d{{1,2}}(?:st|nd|rd|th)?(?:,? \d{{4}})?"
         rf"|\d{{1,2}}(?:st|nd|rd|th)? (?:of )?(?:{_MONTH_RE})(?:,? \d{{4}})?")


def find_span(text: str, today: date) -> tuple[Span | None, str]:
    """The time range a question names, and the question without that phrase.

    >>> find_span("revenue yesterday", date(2026, 11, 28))[0]
    Span(since=datetime.date(2026, 11, 27), until=datetime.date(2026, 11, 27), label='yesterday')
    """
    q = text.lower()
    rules: list[tuple[str, object]] = [
        (rf"\bbetween ({_DATE}) and ({_DATE})", "between"),
        (rf"\bfrom ({_DATE}) (?:to|until|till|through) ({_DATE})", "between"),
        (rf"\bsince ({_DATE})", "since"),
        (rf"\b(?:on|for) ({_DATE})", "on"),
        (r"\b(?:in the |over the |during the )?(?:past|last|previous|trailing) "
         r"(\d+|[a-z]+) (day|week|month)s?\b", "last_n"),
        (r"\byesterday\b", "yesterday"),
        (r"\btoday\b", "today"),
        (r"\b(?:the )?day before yesterday\b", "dby"),
        (r"\b(?:last|previous) week\b", "last_week"),
        (r"\bthis week\b", "this_week"),
        (r"\b(?:last|previous) month\b", "last_month"),
        (r"\bthis month\b", "this_month"),
        (rf"\b(?:in|during|for) ({_MONTH_RE})\b(?: (\d{{4}}))?", "in_month"),
        (rf"\b({_DATE})", "on"),
    ]
    for pattern, kind in rules:
        m = re.search(pattern, q)
        if m is None:
            continue
        span = _span(kind, m.groups(), today, m.group(0).strip())
        if span is not None:
            return span, (text[:m.start()] + " " + text[m.end():]).strip()
    return None, text


def _span(kind: object, groups: tuple[str | None, ...], today: date,
          phrase: str) -> Span | None:
    yesterday = today - timedelta(days=1)
    monday = today - timedelta(days=today.weekday())
    if kind == "between":
        a, b = _day(groups[0] or "", today), _day(groups[1] or "", today)
        return Span(a, b, phrase) if a and b and a <= b else None
    if kind == "since":
        a = _day(groups[0] or "", today)
        return Span(a, None, phrase) if a else None
    if kind == "on":
        a = _day(groups[0] or "", today)
        return Span(a, a, phrase) if a else None
    if kind == "last_n":
        raw, unit = groups[0] or "", groups[1] or "day"
        n = int(raw) if raw.isdigit() else _WORDS.get(raw)
        if not n:
            return None
        days = n * {"day": 1, "week": 7, "month": 30}[unit]
        # complete days: "past 7 days" is the 7 days before today
        return Span(today - timedelta(days=days), yesterday, phrase)
    fixed = {
        "yesterday": (yesterday, yesterday),
        "today": (today, today),
        "dby": (today - timedelta(days=2), today - timedelta(days=2)),
        "last_week": (monday - timedelta(days=7), monday - timedelta(days=1)),
        "this_week": (monday, today),
        "last_month": _month(*((today.year - 1, 12) if today.month == 1
                               else (today.year, today.month - 1))),
        "this_month": (today.replace(day=1), today),
    }
    if kind in fixed:
        a, b = fixed[str(kind)]
        return Span(a, b, phrase)
    if kind == "in_month":
        month = _MONTHS[groups[0] or ""]
        year = int(groups[1]) if groups[1] else today.year
        if not groups[1] and month > today.month:
            year -= 1
        a, b = _month(year, month)
        return Span(a, min(b, today), phrase)
    return None


_COMPARE = {
    "week over week": 7, "wow": 7, "week-over-week": 7, "vs last week": 7,
    "versus last week": 7, "compared to last week": 7, "than last week": 7,
    "day over day": 1, "dod": 1, "vs the day before": 1, "than the day before": 1,
    "month over month": 30, "mom": 30, "month-over-month": 30, "vs last month": 30,
    "compared to last month": 30, "than last month": 30,
}


#: "vs the week before", "compared with the previous week", "than the prior 7 days": the
#: period just before, as "vs last week" (before find_span reads "previous week" as one)
_BEFORE = re.compile(
    r"\b(?:vs\.?|versus|compared (?:to|with)|than|against) (?:the )?"
    r"(?:(?:previous|prior|preceding) (?:(\d+) )?(day|week|month|period)s?"
    r"|(day|week|month|period) before)\b")
_BEFORE_DAYS = {"day": 1, "week": 7, "month": 30, "period": 7}


def find_comparison(text: str) -> tuple[int | None, str]:
    """A period-over-period phrase: the period length in days, and the rest of the text.

    ``week over week`` compares the last 7 complete days with the 7 days before.
    """
    q = text.lower()
    m = _BEFORE.search(q)
    if m is not None:
        n, unit = m.group(1), m.group(2) or m.group(3)
        days = _BEFORE_DAYS[unit] * (int(n) if n and unit != "period" else 1)
        return days, (text[:m.start()] + " " + text[m.end():]).strip()
    for phrase in sorted(_COMPARE, key=len, reverse=True):
        m = re.search(rf"\b{re.escape(phrase)}\b", q)
        if m is not None:
            return _COMPARE[phrase], (text[:m.start()] + " " + text[m.end():]).strip()
    return None, text
