"""Anomalies, explanations and forecasts on metrics and event counts (docs/anomalies.md).

>>> from nerve.anomaly import Request, find_anomalies, explain, forecast  # doctest: +SKIP
>>> detection, about = find_anomalies(events, Request("add_to_cart", by=("platform",)),
...                                   layer=layer, catalog_events=catalog.names())
...                                                                   # doctest: +SKIP

Event counts and rates are judged by the seasonal count model the quality volume and
rate checks use (``nerve.quality._seasonal``); metric values by the robust model in
``_model``. The live monitor counts per minute from the loader side (``LiveMonitor``).
"""

from nerve.anomaly._detect import Anomaly, Detection, Window, detect
from nerve.anomaly._explain import Period, explain, parse_period
from nerve.anomaly._forecast import backtest, daily_values, forecast
from nerve.anomaly._live import (
    LiveAlert,
    LiveMonitor,
    prometheus_collector,
    prometheus_text,
    start_live,
)
from nerve.anomaly._model import Band, Settings, poisson_z, robust_fit, seasonal_fit
from nerve.anomaly._run import Request, find_anomalies, resolve_target
from nerve.anomaly._series import KEY_DIMENSIONS, event_counts, metric_series

__all__ = [
    "KEY_DIMENSIONS",
    "Anomaly",
    "Band",
    "Detection",
    "LiveAlert",
    "LiveMonitor",
    "Period",
    "Request",
    "Settings",
    "Window",
    "backtest",
    "daily_values",
    "detect",
    "event_counts",
    "explain",
    "find_anomalies",
    "forecast",
    "metric_series",
    "parse_period",
    "poisson_z",
    "prometheus_collector",
    "prometheus_text",
    "resolve_target",
    "robust_fit",
    "seasonal_fit",
    "start_live",
]
