"""The semantic layer: metrics as code (``metrics/*.yaml``), compiled through Ibis.

One definition of each business metric, checked against the catalog, answered on every
engine Ibis reaches (DuckDB, PostgreSQL, Spark), with the SQL and the lineage of every
number. Format and API: docs/metrics.md.

>>> from nerve.semantic import SemanticLayer, MetricQuery
>>> layer = SemanticLayer.load(workspace)                                 # doctest: +SKIP
>>> layer.query(MetricQuery(("revenue",), by=("platform",), grain="week", since="8w"),
...             table=warehouse_events).table                             # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nerve._lazy import names_from

if TYPE_CHECKING:
    from nerve.semantic._compile import CompiledQuery
    from nerve.semantic._layer import SemanticLayer
    from nerve.semantic._load import Definitions, MetricsError
    from nerve.semantic._model import (
        AGGREGATIONS,
        FORMATS,
        GRAINS,
        METRIC_TYPES,
        ConversionSpec,
        Dimension,
        Measure,
        Metric,
        MetricInput,
        Segment,
    )
    from nerve.semantic._query import Lineage, MetricQuery, MetricResult
    from nerve.semantic._readiness import (
        ChecksHealth,
        Health,
        HealthSource,
        Readiness,
        Requirement,
        health_from_checks,
        readiness,
    )
    from nerve.semantic._time import parse_duration

__all__ = [
    "AGGREGATIONS",
    "FORMATS",
    "GRAINS",
    "METRIC_TYPES",
    "ChecksHealth",
    "CompiledQuery",
    "ConversionSpec",
    "Definitions",
    "Dimension",
    "Health",
    "HealthSource",
    "Lineage",
    "Measure",
    "Metric",
    "MetricInput",
    "MetricQuery",
    "MetricResult",
    "MetricsError",
    "Readiness",
    "Requirement",
    "Segment",
    "SemanticLayer",
    "health_from_checks",
    "parse_duration",
    "query",
    "readiness",
]

__getattr__ = names_from(__name__, {
    "_compile": ("CompiledQuery",),
    "_layer": ("SemanticLayer",),
    "_load": ("Definitions", "MetricsError"),
    "_model": ("AGGREGATIONS", "FORMATS", "GRAINS", "METRIC_TYPES", "ConversionSpec",
               "Dimension", "Measure", "Metric", "MetricInput", "Segment"),
    "_query": ("Lineage", "MetricQuery", "MetricResult"),
    "_readiness": ("ChecksHealth", "Health", "HealthSource", "Readiness", "Requirement",
                   "health_from_checks", "readiness"),
    "_time": ("parse_duration",),
})


def query(metrics: str | list[str] | tuple[str, ...], *, layer: SemanticLayer,
          table: object, now: object = None, stitch: bool = True,
          **options: object) -> MetricResult:
    """Compute metrics: ``query(["revenue"], by="platform", grain="week", since="8w",
    layer=layer, table=events)``; options are MetricQuery's fields, ``stitch`` is
    ``SemanticLayer.query``'s."""
    from datetime import datetime  # noqa: PLC0415

    from nerve.semantic._query import MetricQuery  # noqa: PLC0415 - names here are lazy

    built = MetricQuery.build(metrics, **options)
    return layer.query(built, table,
                       now=now if isinstance(now, datetime) else None, stitch=stitch)
