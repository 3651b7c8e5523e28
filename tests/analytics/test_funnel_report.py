"""The funnel report's time statistics: percentiles and histogram bins against numpy's
plain definitions (the report computes them in one selection pass and with numpy's
equal-width histogram, which must bin exactly as the explicit edges do)."""

from __future__ import annotations

import numpy as np
import pytest

from nerve.analytics import FunnelSpec, Step
from nerve.analytics._funnel import _time_stats

SPEC = FunnelSpec((Step("a"), Step("b")), percentiles=(0.25, 0.9), bins=7)


@pytest.mark.parametrize("seconds", [
    [5.0],
    [0.0, 0.0, 0.0],
    [1.0, 2.0, 2.0, 3.0, 10.0, 10.0],
    # values on the bin edges, and the maximum itself
    [i * 10.0 / 7 for i in range(8)] * 3,
    list(np.random.default_rng(7).exponential(900.0, 5_000).round(3)),
])
def test_time_stats_match_numpy(seconds: list[float]) -> None:
    values = np.array(seconds, dtype=np.float64)
    stats = _time_stats(values, SPEC)
    assert stats["median_seconds"] == float(np.median(values))
    assert stats["p25_seconds"] == float(np.quantile(values, 0.25))
    assert stats["p90_seconds"] == float(np.quantile(values, 0.9))
    hi = float(values.max())
    edges = np.linspace(0.0, hi if hi > 0 else 1.0, SPEC.bins + 1)
    counts, _ = np.histogram(values, bins=edges)
    assert [b["users"] for b in stats["histogram"]] == counts.tolist()
    assert [b["from_seconds"] for b in stats["histogram"]] == edges[:-1].tolist()
    assert [b["to_seconds"] for b in stats["histogram"]] == edges[1:].tolist()
    assert sum(b["users"] for b in stats["histogram"]) == len(values)


def test_time_stats_empty() -> None:
    stats = _time_stats(np.zeros(0), SPEC)
    assert stats == {"median_seconds": None, "p25_seconds": None, "p90_seconds": None,
                     "histogram": []}
