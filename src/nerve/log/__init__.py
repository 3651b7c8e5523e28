"""The durable event log: Arrow batches in checksummed frames, fsynced before a 200.

Each writer (one per HTTP worker process) appends to its own segment files under
``log_dir/<writer_id>/``; the loader drains every writer's segments into the warehouse
and deletes the ones it has fully loaded. The on-disk format is described in
``nerve.log._frame`` and ``nerve.log._segments``, and in docs/storage.md.
"""

from __future__ import annotations

from nerve.log._frame import Tail
from nerve.log._segments import (
    Segment,
    SegmentRead,
    acknowledge,
    backlog_bytes,
    list_segments,
    read_segment,
    set_aside,
    writer_ids,
)
from nerve.log._writer import LogWriter

__all__ = [
    "LogWriter",
    "Segment",
    "SegmentRead",
    "Tail",
    "acknowledge",
    "backlog_bytes",
    "list_segments",
    "read_segment",
    "set_aside",
    "writer_ids",
]
