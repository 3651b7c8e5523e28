"""Analytics over the warehouse's events: funnels, retention and trends (docs/analytics.md).

Every function takes an Ibis ``events`` table (any engine: DuckDB, PostgreSQL, Spark) and
a plain spec; the engine filters and sorts, numpy does the per-entity matching.

>>> from nerve.analytics import FunnelSpec, Step, funnel
>>> from nerve.warehouse import analysis_events
>>> spec = FunnelSpec((Step("add_to_cart"), Step("purchase_complete")), by="platform")
>>> funnel(analysis_events(warehouse), spec).rows  # identities stitched  # doctest: +SKIP
"""

from __future__ import annotations

from nerve.analytics._funnel import FunnelResult, funnel
from nerve.analytics._requests import (
    breakdown_layer,
    funnel_request,
    funnel_spec,
    parse_time,
    retention_request,
    retention_spec,
    trend_filters,
    trend_request,
)
from nerve.analytics._retention import RETENTION_MODES, RetentionSpec, retention
from nerve.analytics._spec import (
    Exclusion,
    Filter,
    FunnelSpec,
    Step,
    parse_duration,
    parse_filter,
    parse_step,
)
from nerve.analytics._trends import MEASURES, TrendSpec, metric_trend, trend

__all__ = [
    "MEASURES",
    "RETENTION_MODES",
    "Exclusion",
    "Filter",
    "FunnelResult",
    "FunnelSpec",
    "RetentionSpec",
    "Step",
    "TrendSpec",
    "breakdown_layer",
    "funnel",
    "funnel_request",
    "funnel_spec",
    "metric_trend",
    "parse_duration",
    "parse_filter",
    "parse_step",
    "parse_time",
    "retention",
    "retention_request",
    "retention_spec",
    "trend",
    "trend_filters",
    "trend_request",
]
