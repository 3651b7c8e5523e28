"""The key dimensions of the anomaly scans and the live monitor, apart from ``_series`` so
that the server starts its live monitor without importing Ibis (it does at the first poll).
"""

from __future__ import annotations

from nerve.quality._config import DEFAULT_DIMENSIONS

__all__ = ["CHURNING", "KEY_DIMENSIONS"]

#: the live stream's and the all-events detector's key dimensions: name -> JSON paths
KEY_DIMENSIONS: dict[str, tuple[str, ...]] = {
    "platform": ("context.device.type", "context.os.name"),
    "os": ("context.os.name",),
    "app_version": DEFAULT_DIMENSIONS["app_version"],
    "country": DEFAULT_DIMENSIONS["country"],
}

#: key dimensions whose values are replaced at every release: an old app version falling
#: to zero is the release working, a change of mix (judged by the quality volume check's
#: mix test and by ``nerve explain``), so scans without ``--by`` report only their spikes
CHURNING = frozenset({"app_version"})
