"""The semantic layer's typed objects: measures, metrics, dimensions, segments.

They are what ``metrics/*.yaml`` files load into (``_load.py``), immutable and free of
any engine: the compiler (``_compile.py``) turns them into Ibis expressions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

__all__ = [
    "AGGREGATIONS",
    "ANY_EVENT",
    "FORMATS",
    "GRAINS",
    "MEASURED_TYPES",
    "METRIC_TYPES",
    "ConversionSpec",
    "Dimension",
    "Measure",
    "Metric",
    "MetricInput",
    "Segment",
]

#: how a measure aggregates its events
AGGREGATIONS = ("count", "count_distinct", "sum", "avg", "min", "max", "percentile")
#: aggregations whose value over no events is 0 (the others have no value: null)
ADDITIVE = frozenset({"count", "count_distinct", "sum"})
METRIC_TYPES = ("simple", "ratio", "derived", "cumulative", "conversion")
FORMATS = ("number", "currency", "percent")
GRAINS = ("hour", "day", "week", "month")
#: ``event: "*"``: every track, page and screen event
ANY_EVENT = "*"
#: the calls whose events metrics measure
MEASURED_TYPES = ("track", "page", "screen")

Aggregation = Literal["count", "count_distinct", "sum", "avg", "min", "max", "percentile"]
MetricType = Literal["simple", "ratio", "derived", "cumulative", "conversion"]
Grain = Literal["hour", "day", "week", "month"]


@dataclass(frozen=True, slots=True)
class Measure:
    """An aggregation over events: ``sum of purchase_complete.revenue where currency = 'EUR'``.

    ``of`` names what is aggregated: a property of the event, a dimension, or ``user``;
    ``count`` needs none, ``count_distinct`` defaults to ``user``.
    """

    agg: Aggregation
    events: tuple[str, ...]
    of: str | None = None
    #: the fraction for ``percentile`` (0.5 is the median)
    percentile: float | None = None
    #: a filter expression over the event's dimensions (docs/metrics.md#filters)
    filter: str | None = None
    file: Path | None = None
    line: int | None = None

    @property
    def any_event(self) -> bool:
        return self.events == (ANY_EVENT,)

    def describe(self) -> str:
        """A short human form: ``count_distinct(user) of add_to_cart``."""
        what = self.of or ("*" if self.agg == "count" else "user")
        text = f"{self.agg}({what})"
        if self.agg == "percentile":
            text = f"p{self.percentile:g}({what})"
        text += " of " + ("any event" if self.any_event else " | ".join(self.events))
        if self.filter:
            text += f" where {self.filter}"
        return text


@dataclass(frozen=True, slots=True)
class MetricInput:
    """One input of a derived metric: a metric, optionally shifted back in time."""

    metric: str
    #: the name the expression uses (default: the metric's name)
    alias: str
    #: how far back, like ``1w`` or ``1m`` (week over week, month over month); None = same period
    offset: str | None = None


@dataclass(frozen=True, slots=True)
class ConversionSpec:
    """Base event -> conversion event by the same entity within a window."""

    base: Measure
    conversion: Measure
    #: the entity that must do both: ``user`` or a dimension such as a session id
    entity: str = "user"
    #: a duration like ``1d`` or ``30m``; the conversion must follow the base event within it
    window: str = "1d"
    #: ``conversion_rate`` (converted / base) or ``conversions`` (the count of converted)
    calculation: Literal["conversion_rate", "conversions"] = "conversion_rate"


@dataclass(frozen=True, slots=True)
class Metric:
    """One metric, as defined in ``metrics/*.yaml`` (see docs/metrics.md for each field)."""

    name: str
    type: MetricType
    label: str = ""
    description: str = ""
    owner: str = ""
    synonyms: tuple[str, ...] = ()
    format: Literal["number", "currency", "percent"] = "number"
    currency: str | None = None
    up_is_good: bool = True
    #: a filter applied to every event the metric reads
    filter: str | None = None
    # simple and cumulative
    measure: Measure | None = None
    # ratio: each side a metric name or an inline measure
    numerator: str | Measure | None = None
    denominator: str | Measure | None = None
    # derived
    expr: str | None = None
    inputs: tuple[MetricInput, ...] = ()
    # cumulative: either a trailing window, or grain-to-date, or neither (all time)
    window: str | None = None
    grain_to_date: Grain | None = None
    # conversion
    conversion: ConversionSpec | None = None
    file: Path | None = None
    line: int | None = None
    #: 1-based line of each field in ``file``
    lines: dict[str, int] = field(default_factory=dict, compare=False, hash=False)

    @property
    def title(self) -> str:
        return self.label or self.name.replace("_", " ")

    @property
    def is_count(self) -> bool:
        """Whether the metric counts events or people (a simple ``count`` or
        ``count_distinct``): its values are whole numbers, its noise Poisson's, and
        ``nerve ask`` and ``nerve explain`` write its amounts and effects as whole numbers
        when its format is ``number``."""
        return self.type == "simple" and self.measure is not None \
            and self.measure.agg in ("count", "count_distinct")

    def where(self, key: str) -> str:
        """``metrics/revenue.yaml:12`` for one field of this metric, for messages."""
        line = self.lines.get(key, self.line)
        if self.file is None:
            return self.name
        return f"{self.file}:{line}" if line else str(self.file)

    def referenced_metrics(self) -> tuple[str, ...]:
        """Names of the other metrics this one is built from."""
        names = [side for side in (self.numerator, self.denominator) if isinstance(side, str)]
        names.extend(i.metric for i in self.inputs)
        return tuple(dict.fromkeys(names))


@dataclass(frozen=True, slots=True)
class Dimension:
    """A named way to slice events: ``platform: context.os.name``.

    ``expr`` is a reference (docs/metrics.md#references): ``properties.x``, ``context.a.b``,
    ``user.trait``, or a built-in column.
    """

    name: str
    expr: str
    #: as written; None takes the catalog's type (a trait's or property's; context: string)
    type: str | None = None
    description: str = ""
    file: Path | None = None
    line: int | None = None


@dataclass(frozen=True, slots=True)
class Segment:
    """A named filter over events and their users: ``seniors: user.age >= 65``."""

    name: str
    where: str
    description: str = ""
    file: Path | None = None
    line: int | None = None
