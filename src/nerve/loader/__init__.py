"""The loader: drains the durable event log into the warehouse, exactly once.

Micro-batches go through Arrow (no per-row inserts), deduplicated on ``message_id``;
each commit carries the log offset it reached (docs/storage.md).
"""

from __future__ import annotations

from nerve.loader._commit import LoadStats
from nerve.loader._loader import DEFAULT_DEDUP_WINDOW, Loader, parse_window
from nerve.loader._pace import Pace
from nerve.loader._stream import StreamLoader

__all__ = ["DEFAULT_DEDUP_WINDOW", "LoadStats", "Loader", "Pace", "StreamLoader", "parse_window"]
