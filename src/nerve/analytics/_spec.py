"""What a funnel, a retention table or a trend asks for: plain, validated dataclasses.

Also the small text syntaxes the CLI and the HTTP API share: durations (``30m``, ``1d``,
``2w``) and steps with filters (``add_to_cart:platform=ios,price>=20``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any, Literal

from nerve.analytics._periods import bound, zone
from nerve.errors import QueryError

__all__ = [
    "ATTRIBUTIONS",
    "ORDERS",
    "Exclusion",
    "Filter",
    "FunnelSpec",
    "Step",
    "parse_duration",
    "parse_filter",
    "parse_step",
]

Order = Literal["sequential", "strict", "any"]
ORDERS: tuple[str, ...] = ("sequential", "strict", "any")
#: how an entity with several breakdown values is put in one group
ATTRIBUTIONS: tuple[str, ...] = ("first_touch", "last_touch", "step")
OPS: tuple[str, ...] = ("=", "!=", ">=", "<=", ">", "<")
MIN_STEPS, MAX_STEPS = 2, 20
#: the funnel's entity (``entity()``: the user id, else the anonymous id), by its names
ENTITY_FIELDS = ("user", "user_id", "anonymous_id")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|min|h|d|w|mo|m|y)\s*$", re.IGNORECASE)
#: months as 30 days and years as 365, as the semantic layer's ``Duration.seconds`` takes them
_UNITS = {"s": 1, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "mo": 30 * 86400,
          "y": 365 * 86400}
_FILTER = re.compile(r"^\s*([A-Za-z_$][\w.$-]*)\s*(!=|>=|<=|=|>|<)\s*(.*?)\s*$")


def parse_duration(text: str | timedelta | float, *, what: str = "duration") -> timedelta:
    """``"30min"``, ``"1d"``, ``"2w"``, ``"6mo"`` (or seconds, or a timedelta) as a timedelta.

    A bare ``m`` is refused: it means months in metrics (``--since 3m``) and catalog
    retention, and minutes in most other tools, so either reading would surprise someone.

    >>> parse_duration("1d")
    datetime.timedelta(days=1)
    """
    if isinstance(text, timedelta):
        value = text
    elif isinstance(text, int | float):
        value = timedelta(seconds=float(text))
    else:
        match = _DURATION.match(text)
        if not match:
            raise QueryError(f"{what}: {text!r} is not a duration; write a number and a unit "
                             "s, min, h, d, w, mo (30 days) or y (365 days), e.g. 30min, 1d, "
                             "2w, 6mo, 1y")
        count, unit = match.group(1), match.group(2).lower()
        if unit == "m":
            raise QueryError(f"{what}: {text!r} is ambiguous: write {count}min for minutes or "
                             f"{count}mo for months")
        value = timedelta(seconds=float(count) * _UNITS[unit])
    if value <= timedelta(0):
        raise QueryError(f"{what}: must be positive, got {text!r}")
    return value


@dataclass(frozen=True, slots=True)
class Filter:
    """``field op value`` on an event: ``Filter("platform", "=", "ios")``.

    ``field`` is a property name (``price``), or a path into ``properties.``,
    ``context.`` or ``traits.``, or an envelope column (``source``). Numbers compare as
    numbers, everything else as text.
    """

    field: str
    op: str
    value: Any

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise QueryError(f"filter on {self.field!r}: unknown operator {self.op!r} "
                             f"(use one of {', '.join(OPS)})")
        if self.op not in ("=", "!=") and not _is_number(self.value):
            raise QueryError(f"filter {self.field} {self.op} {self.value!r}: "
                             "ordering operators need a number")

    def __str__(self) -> str:
        return f"{self.field}{self.op}{self.value}"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _coerce(text: str) -> Any:
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def parse_filter(text: str) -> Filter:
    """``"price>=20"`` as a Filter (numbers and true/false are typed, quotes force text)."""
    match = _FILTER.match(text)
    if not match:
        raise QueryError(f"filter {text!r}: write FIELD OP VALUE, e.g. platform=ios or "
                         "price>=20 (operators: = != > >= < <=)")
    return Filter(match.group(1), match.group(2), _coerce(match.group(3)))


@dataclass(frozen=True, slots=True)
class Step:
    """One funnel step: an event name and filters on it.

    ``optional``: the funnel may skip this step. ``within``: the longest time allowed
    between the previous step done and this one (on top of the funnel's window).
    """

    event: str
    where: tuple[Filter, ...] = ()
    optional: bool = False
    within: timedelta | None = None
    label: str | None = None

    @property
    def name(self) -> str:
        if self.label:
            return self.label
        if not self.where:
            return self.event
        return f"{self.event}[{','.join(str(f) for f in self.where)}]"


def parse_step(text: str) -> Step:
    """``"add_to_cart"`` or ``"add_to_cart:platform=ios,price>=20"`` as a Step."""
    event, _, rest = text.partition(":")
    event = event.strip()
    if not event:
        raise QueryError(f"step {text!r}: needs an event name, e.g. add_to_cart:platform=ios")
    filters = tuple(parse_filter(part) for part in rest.split(",") if part.strip())
    return Step(event, filters)


@dataclass(frozen=True, slots=True)
class Exclusion:
    """Drop a chain when ``event`` happens between steps ``after`` and ``before``
    (0-based; ``before=None`` is the last step)."""

    event: str
    where: tuple[Filter, ...] = ()
    after: int = 0
    before: int | None = None


@dataclass(frozen=True, slots=True)
class FunnelSpec:
    """Everything a funnel needs. ``validate()`` raises QueryError naming the bad field."""

    steps: tuple[Step, ...]
    window: timedelta = timedelta(days=1)
    order: Order = "sequential"
    exclusions: tuple[Exclusion, ...] = ()
    by: str | None = None
    attribution: str = "first_touch"
    attribution_step: int | None = None
    hold: tuple[str, ...] = ()
    #: the first step's range ``[since, until)``; a date is a whole local day (an
    #: ``until`` date is included, as in metrics)
    since: datetime | date | None = None
    until: datetime | date | None = None
    percentiles: tuple[float, ...] = (0.5, 0.9)
    bins: int = 10
    extra: dict[str, Any] = field(default_factory=dict)
    #: the workspace's time zone: a naive ``since``/``until`` is wall-clock time there
    timezone: str = "UTC"

    def validate(self) -> FunnelSpec:
        """This spec, checked, with ``since``/``until`` as UTC instants."""
        n = len(self.steps)
        if not MIN_STEPS <= n <= MAX_STEPS:
            raise QueryError(f"steps: a funnel has {MIN_STEPS} to {MAX_STEPS} steps, got {n}")
        if self.order not in ORDERS:
            raise QueryError(f"order: {self.order!r} is not one of {', '.join(ORDERS)}")
        if self.window <= timedelta(0):
            raise QueryError("window: must be positive")
        if self.by in ENTITY_FIELDS:
            # each user would be a group of one, converting 0% or 100%: no breakdown
            raise QueryError(f"by {self.by!r}: a funnel counts users, so a breakdown by "
                             "the user puts each one in a group of their own; break down "
                             "by something users share (platform, country, "
                             "user.age_group)")
        # steps are named as people count them (the CLI's and the HTTP API's numbers),
        # with their event, so that a 0-based Python index is not taken for one
        if self.steps[0].optional:
            raise QueryError(f"{self._step(0)}: the first step cannot be optional")
        if self.steps[-1].optional:
            raise QueryError(f"{self._step(n - 1)}: the last step cannot be optional")
        if self.steps[0].within is not None:
            raise QueryError(f"{self._step(0)}: the first step has no previous step to "
                             "have a per-step window from")
        if self.order == "any":
            if any(s.optional or s.within for s in self.steps):
                raise QueryError("order any: optional steps and per-step windows need an "
                                 "order; use sequential or strict")
            if self.exclusions:
                raise QueryError("order any: exclusions need an order between steps")
            names = [s.event for s in self.steps]
            if len(set(names)) != len(names):
                raise QueryError("order any: each step must be a different event, so that "
                                 "one event never counts for two steps")
        for i, ex in enumerate(self.exclusions):
            before = n - 1 if ex.before is None else ex.before
            if not 0 <= ex.after < before <= n - 1:
                raise QueryError(f"exclusions[{i}] ({ex.event}): between "
                                 f"{self._step(ex.after)} and {self._step(before)} is not "
                                 f"a range of steps 1..{n} (the first must come before the "
                                 "second)")
        if self.attribution not in ATTRIBUTIONS:
            raise QueryError(f"attribution: {self.attribution!r} is not one of "
                             f"{', '.join(ATTRIBUTIONS)}")
        if self.attribution == "step" and (self.attribution_step is None
                                           or not 0 <= self.attribution_step < n):
            raise QueryError(f"attribution_step: a step number 0..{n - 1} is needed with "
                             "attribution 'step'")
        tz = zone(self.timezone)
        since = None if self.since is None else bound(self.since, tz)
        until = None if self.until is None else bound(self.until, tz, end=True)
        if since and until and since >= until:
            raise QueryError("since/until: since must be before until")
        for p in self.percentiles:
            if not 0 < p < 1:
                raise QueryError(f"percentiles: {p} is not between 0 and 1")
        if not 1 <= self.bins <= 100:
            raise QueryError("bins: 1 to 100 histogram bins")
        return replace(self, since=since, until=until)

    def _step(self, k: int) -> str:
        """Step ``k`` (0-based) as people count it, with its event: ``step 2 (cart)``."""
        if 0 <= k < len(self.steps):
            return f"step {k + 1} ({self.steps[k].event})"
        return f"step {k + 1}"
