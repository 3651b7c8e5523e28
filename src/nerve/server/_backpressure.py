"""Backpressure from the log: when the loader falls behind, ingest answers 503.

Every process that accepts events watches the log's unloaded bytes (all writers) and
flags its state overloaded above the bound; SDKs retry a 503 with Retry-After.
"""

from __future__ import annotations

import asyncio
import time

import anyio.to_thread

from nerve.log import backlog_bytes
from nerve.server._state import NerveState
from nerve.workspace import Workspace

__all__ = ["DEFAULT_MAX_BACKLOG", "max_backlog", "watch_backlog"]

#: unloaded log bytes above which ingest answers 503 (``[collector] max_backlog_bytes``)
DEFAULT_MAX_BACKLOG = 1 << 30
_BACKLOG_CHECK_SECONDS = 0.5


def max_backlog(workspace: Workspace) -> int:
    """The bound on unloaded log bytes: ``[collector] max_backlog_bytes`` (default 1 GiB)."""
    value = workspace.config.raw.get("collector", {}).get("max_backlog_bytes",
                                                           DEFAULT_MAX_BACKLOG)
    return int(value)


async def watch_backlog(state: NerveState, limit: int) -> None:
    """Flag overload while the unloaded log exceeds ``limit``: ingest answers 503."""
    while True:
        try:
            size = await anyio.to_thread.run_sync(backlog_bytes, state.workspace.log_dir)
        except OSError:  # a segment vanished mid-scan: the loader just finished it
            size = 0
        state.overloaded = size > limit
        state.backlog_bytes = size
        if size == 0:
            state.behind_since = None
        elif state.behind_since is None:
            state.behind_since = time.monotonic()
        await asyncio.sleep(_BACKLOG_CHECK_SECONDS)
