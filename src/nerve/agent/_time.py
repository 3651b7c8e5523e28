"""Time phrases in a question -> a local date range (and the range to compare with).

Pure: ``today`` is passed in. Ranges are whole local days, ``until`` included, which is
what ``MetricQuery`` takes (an ``until`` date is included there too).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

__all__ = ["PERIODS", "Span", "find_comparison", "find_span", "trend_grain", "unread_period"]

_MONTHS = {name: i + 1 for i, name in enumerate(
    ["january", "february", "march", "april", "may", "june", "july", "august",
     "september", "october", "november", "december"])}
_MONTHS.update({name[:3]: i for name, i in list(_MONTHS.items())})
_MONTHS["sept"] = 9
_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
          "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "fourteen": 14,
          "eighteen": 18, "twenty": 20, "thirty": 30, "sixty": 60, "ninety": 90, "a": 1}
_MONTH_RE = "|".join(sorted(_MONTHS, key=len, reverse=True))


@dataclass(frozen=True, slots=True)
class Span:
    """``[since, until]`` in local days (``until`` included; None = up to now)."""

    since: date | None
    until: date | None
    label: str
    #: the calendar unit the span is (``week``, ``month``, ``quarter``, ``year``: "last
    #: month") or runs to date in ("this month", "year to date"); None for a run of days
    unit: str | None = None
    #: whether it is the whole unit ("last month") rather than its start ("this month")
    whole: bool = True

    def days(self, today: date) -> int:
        """How many days it covers (to ``today`` when open-ended)."""
        start = self.since or today
        return ((self.until or today) - start).days + 1

    def before(self, today: date) -> Span:
        """The span to compare this one with: the calendar unit before a whole one ("last
        month": the month before it), the same days of the unit before for one to date
        ("this month" to the 2nd: the 1st and 2nd of last month), else the same number
        of days right before.

        >>> Span(date(2026, 12, 1), date(2026, 12, 1), "this month", "month", False
        ...      ).before(date(2026, 12, 2)).as_dict()
        {'since': '2026-11-01', 'until': '2026-11-01', 'label': 'the same days of the month before'}
        """
        if self.since is None:
            raise ValueError("an open span has nothing before it")
        if self.unit in _UNIT_MONTHS:
            months = _UNIT_MONTHS[self.unit]
            since = _shift(self.since, -months)
            if self.whole:
                until = self.since - timedelta(days=1)
                return Span(since, until, f"the {self.unit} before", self.unit)
            until = _shift(self.until or today, -months)
            return Span(since, until, f"the same days of the {self.unit} before", self.unit,
                        whole=False)
        if self.unit == "week" and not self.whole:  # "this week": last week's same days
            week = timedelta(days=7)
            return Span(self.since - week, (self.until or today) - week,
                        "the same days of the week before", "week", whole=False)
        n = self.days(today)
        end = self.since - timedelta(days=1)
        return Span(end - timedelta(days=n - 1), end, f"the {n} days before")

    def as_dict(self) -> dict[str, str | None]:
        return {"since": self.since.isoformat() if self.since else None,
                "until": self.until.isoformat() if self.until else None,
                "label": self.label}


_UNIT_MONTHS = {"month": 1, "quarter": 3, "year": 12}


def _shift(day: date, months: int) -> date:
    """``day`` moved by whole calendar months, kept inside its month (Mar 31 - 1 month
    is Feb 28)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(day.day, _month(year, month + 1)[1].day))


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


#: a day as said: ISO, "Nov 1", "1st of November", with a year or not ("March 2025" is a
#: month, not March 20: the day's digits end at a word's end)
_DATE = (rf"\d{{4}}-\d{{2}}-\d{{2}}|(?:{_MONTH_RE})\.? \d{{1,2}}(?:st|nd|rd|th)?\b(?:,? \d{{4}})?"
         rf"|\d{{1,2}}(?:st|nd|rd|th)? (?:of )?(?:{_MONTH_RE})\b(?:,? \d{{4}})?")
_UNIT = r"(day|week|month|quarter|year)"
_RELATIVE = r"(yesterday|today|(?:last|previous|this|current) (?:week|month|quarter|year))"
_RULES: tuple[tuple[str, str], ...] = (
    (rf"\bbetween ({_DATE}) and ({_DATE})", "between"),
    (rf"\bfrom ({_DATE}) (?:to|until|till|through) ({_DATE})", "between"),
    (rf"\bsince ({_DATE})", "since"),
    (rf"\bsince (?:the (?:start|beginning) of )?(?:({_MONTH_RE})\b(?: (\d{{4}}))?|(\d{{4}}))\b",
     "since_month"),
    (rf"\bsince (?:the (?:start|beginning) of )?{_RELATIVE}\b", "since_relative"),
    (rf"\b(?:on|for) ({_DATE})", "on"),
    (rf"\b(?:in the |over the |during the |for the )?(?:past|last|previous|trailing) "
     rf"(\d+|[a-z]+) {_UNIT}s?\b", "last_n"),
    (r"\b(?:(?:in|over|during|for) the (?:last|past)|(?:the |this )?past) year\b", "past_year"),
    # "the past week": the 7 days before today, as "the past year" is the 12 months before
    # it ("last week" is the calendar week)
    (r"\b(?:(?:in|over|during|for) (?:the|this) |the |this )?past (week|month|quarter)\b",
     "past_unit"),
    (r"\b(?:the )?day before yesterday\b", "dby"),
    (r"\byesterday\b", "yesterday"),
    (r"\btoday\b", "today"),
    (r"\b(?:last|previous) week\b", "last_week"),
    (r"\bthis week\b", "this_week"),
    (r"\b(?:last|previous) month\b", "last_month"),
    (r"\b(?:this|current) month\b|\bmonth[ -]to[ -]date\b|\bmtd\b", "this_month"),
    (r"\b(?:last|previous) quarter\b", "last_quarter"),
    (r"\b(?:this|current) quarter\b|\bquarter[ -]to[ -]date\b|\bqtd\b", "this_quarter"),
    (r"\b(?:last|previous) year\b", "last_year"),
    (r"\b(?:this|current) year\b|\byear[ -]to[ -]date\b|\bytd\b|\bso far this year\b",
     "this_year"),
    (r"\b(?:in |during |for |of )?(?:the )?q([1-4])\b(?:,? (\d{4})\b)?", "in_quarter"),
    (rf"\b(?:in|during|for) ({_MONTH_RE})\b(?: (\d{{4}})\b)?", "in_month"),
    (r"\b(?:in|during|for|throughout|over) (\d{4})\b", "in_year"),
    (rf"\b({_DATE})", "on"),
)


def find_span(text: str, today: date) -> tuple[Span | None, str]:
    """The time range a question names, and the question without that phrase.

    >>> find_span("revenue yesterday", date(2026, 11, 28))[0].label
    'yesterday'
    >>> find_span("revenue last quarter", date(2026, 11, 28))[0].as_dict()
    {'since': '2026-07-01', 'until': '2026-09-30', 'label': 'last quarter'}
    """
    q = text.lower()
    for pattern, kind in _RULES:
        m = re.search(pattern, q)
        if m is None:
            continue
        span = _span(kind, m.groups(), today, m.group(0).strip())
        if span is not None:
            return span, (text[:m.start()] + " " + text[m.end():]).strip()
    return None, text


#: phrases for the periods nerve reads, named when it declines one it cannot
PERIODS = ("yesterday", "last week", "last 30 days", "last 12 months", "last month",
           "last quarter", "last year", "in 2025", "in March", "since March", "year to date",
           "between Nov 2 and Nov 8")

#: words that say a period, left in a question once its period is read: a period nerve
#: cannot read ("last fortnight", "since the launch", "in 2031"), or a second one
_PERIOD_WORDS = (r"(?:days?|weeks?|weekends?|fortnights?|months?|quarters?|years?|decades?"
                 rf"|hours?|seasons?|holidays?|q[1-4]|h[12]|halves|half|{_MONTH_RE})")
_UNREAD = re.compile(
    r"\bsince\b(?: [a-z0-9-]+){1,3}"
    r"|\b(?:last|past|previous|prior|trailing|this|current|in|during|over|for|from|between"
    rf"|before|after|until|till|through|throughout|within)(?: the)?(?: [a-z0-9-]+)? "
    rf"{_PERIOD_WORDS}\b(?: (?:19|20)\d{{2}}\b)?"
    r"|\b(?:in|during|for|since|from|until|till|through|throughout|before|after)"
    r"(?: the year)? (?:19|20)\d{2}\b"
    r"|\b(?:ytd|mtd|qtd|wtd|to date|so far)\b")
#: words that make such a phrase something else: a grain ("for each day"), a forecast
#: ("for the next 7 days"), a funnel's window ("within a day")
_NOT_A_PERIOD = frozenset({"each", "every", "per", "next", "coming", "a", "one", "same"})


def unread_period(text: str) -> str | None:
    """A period phrase left in ``text`` after ``find_span`` took the one it reads: one
    it cannot read ("last fortnight"), or a second period ("revenue last week and last
    month"). None when there is none.

    >>> unread_period("revenue last fortnight")
    'last fortnight'
    >>> unread_period("daily revenue for each day") is None
    True
    """
    for m in _UNREAD.finditer(text.lower()):
        if not _NOT_A_PERIOD & set(m.group(0).split()):
            return m.group(0)
    return None


def _since_month(groups: tuple[str | None, ...], today: date) -> date | None:
    """"since March" (its 1st, this year unless it is still to come), "since March
    2025", "since 2025" (its January 1st); None when that is after ``today``."""
    month_name, year_text, year_only = groups
    if year_only:
        found = date(int(year_only), 1, 1)
    else:
        month = _MONTHS[month_name or ""]
        found = date(int(year_text) if year_text else today.year, month, 1)
        if not year_text and found > today:
            found = date(found.year - 1, month, 1)
    return found if found <= today else None


def _quarter(year: int, quarter: int) -> tuple[date, date]:
    return date(year, 3 * quarter - 2, 1), _month(year, 3 * quarter)[1]


def _span(kind: str, groups: tuple[str | None, ...], today: date,
          phrase: str) -> Span | None:
    yesterday = today - timedelta(days=1)
    monday = today - timedelta(days=today.weekday())
    this_quarter = (today.month - 1) // 3 + 1
    if kind == "between":
        a, b = _day(groups[0] or "", today), _day(groups[1] or "", today)
        return Span(a, b, phrase) if a and b and a <= b else None
    if kind == "since":
        a = _day(groups[0] or "", today)
        return Span(a, None, phrase) if a else None
    if kind == "since_month":
        a = _since_month(groups, today)
        return Span(a, None, phrase) if a else None
    if kind == "since_relative":  # "since last week": its start, up to now
        inner = _span(_RELATIVE_KIND[" ".join((groups[0] or "").split())], (), today,
                      phrase)
        return Span(inner.since, None, phrase) if inner else None
    if kind == "on":
        a = _day(groups[0] or "", today)
        return Span(a, a, phrase) if a else None
    if kind in ("last_n", "past_year", "past_unit"):
        raw, unit = (groups[0] or "", groups[1] or "day") if kind == "last_n" \
            else ("1", groups[0] or "week") if kind == "past_unit" else ("1", "year")
        n = int(raw) if raw.isdigit() else _WORDS.get(raw)
        if not n:
            return None
        # complete days: "past 7 days" is the 7 days before today; "last 12 months" the
        # 12 calendar months before today (from the same day of month 12 months ago)
        if unit in _UNIT_MONTHS:
            return Span(_shift(today, -n * _UNIT_MONTHS[unit]), yesterday, phrase)
        days = n * {"day": 1, "week": 7}[unit]
        return Span(today - timedelta(days=days), yesterday, phrase)
    last_month = (today.year - 1, 12) if today.month == 1 else (today.year, today.month - 1)
    last_quarter = (today.year - 1, 4) if this_quarter == 1 \
        else (today.year, this_quarter - 1)
    fixed: dict[str, tuple[date, date, str | None, bool]] = {
        "yesterday": (yesterday, yesterday, None, True),
        "today": (today, today, None, True),
        "dby": (today - timedelta(days=2), today - timedelta(days=2), None, True),
        "last_week": (monday - timedelta(days=7), monday - timedelta(days=1), None, True),
        "this_week": (monday, today, "week", False),
        "last_month": (*_month(*last_month), "month", True),
        "this_month": (today.replace(day=1), today, "month", False),
        "last_quarter": (*_quarter(*last_quarter), "quarter", True),
        "this_quarter": (_quarter(today.year, this_quarter)[0], today, "quarter", False),
        "last_year": (date(today.year - 1, 1, 1), date(today.year - 1, 12, 31), "year", True),
        "this_year": (date(today.year, 1, 1), today, "year", False),
    }
    if kind in fixed:
        a, b, calendar, whole = fixed[kind]
        return Span(a, b, phrase, calendar, whole)
    if kind == "in_quarter":  # "Q3": this year's, or last year's while it is to come
        quarter = int(groups[0] or 1)
        year = int(groups[1]) if groups[1] else today.year
        if not groups[1] and (year, quarter) > (today.year, this_quarter):
            year -= 1
        a, b = _quarter(year, quarter)
        return Span(a, min(b, today), phrase, "quarter", b <= today) if a <= today else None
    if kind == "in_month":
        month = _MONTHS[groups[0] or ""]
        year = int(groups[1]) if groups[1] else today.year
        if not groups[1] and month > today.month:
            year -= 1
        a, b = _month(year, month)
        return Span(a, min(b, today), phrase, "month", b <= today) if a <= today else None
    if kind == "in_year":  # "in 2025": the calendar year (to today while it runs)
        year = int(groups[0] or 0)
        if not 1970 <= year <= today.year:
            return None
        b = date(year, 12, 31)
        return Span(date(year, 1, 1), min(b, today), phrase, "year", b <= today)
    return None


_RELATIVE_KIND = {"yesterday": "yesterday", "today": "today", "last week": "last_week",
                  "previous week": "last_week", "this week": "this_week",
                  "current week": "this_week", "last month": "last_month",
                  "previous month": "last_month", "this month": "this_month",
                  "current month": "this_month", "last quarter": "last_quarter",
                  "previous quarter": "last_quarter", "this quarter": "this_quarter",
                  "current quarter": "this_quarter", "last year": "last_year",
                  "previous year": "last_year", "this year": "this_year",
                  "current year": "this_year"}


#: the most rows a trend lists: a finer grain over a longer range is grouped coarser
MAX_TREND_ROWS = 31
_GRAIN_DAYS = {"hour": 1 / 24, "day": 1, "week": 7, "month": 30}


def trend_grain(asked: str, days: int) -> str:
    """The grain a trend over ``days`` days is shown by: the one asked, or the first
    coarser one (hour, day, week, month) that gives at most ``MAX_TREND_ROWS`` rows, so
    a daily trend over a quarter is by week and over a year by month.

    >>> trend_grain("day", 14), trend_grain("day", 92), trend_grain("day", 365)
    ('day', 'week', 'month')
    """
    ladder = list(_GRAIN_DAYS)
    if asked not in ladder:
        return asked
    for grain in ladder[ladder.index(asked):]:
        # a week or month the range starts inside of is one row more
        rows = days / _GRAIN_DAYS[grain] + (grain in ("week", "month"))
        if rows <= MAX_TREND_ROWS:
            return grain
    return "month"


_COMPARE = {
    "week over week": 7, "wow": 7, "week-over-week": 7, "vs last week": 7,
    "versus last week": 7, "compared to last week": 7, "than last week": 7,
    "day over day": 1, "dod": 1, "vs the day before": 1, "than the day before": 1,
    "month over month": 30, "mom": 30, "month-over-month": 30, "vs last month": 30,
    "compared to last month": 30, "than last month": 30,
    "quarter over quarter": 91, "qoq": 91, "quarter-over-quarter": 91,
    "vs last quarter": 91, "versus last quarter": 91, "compared to last quarter": 91,
    "than last quarter": 91,
    "year over year": 365, "yoy": 365, "year-over-year": 365, "vs last year": 365,
    "versus last year": 365, "compared to last year": 365, "than last year": 365,
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
