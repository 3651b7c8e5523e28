"""Backpressure from the log: when the loader falls behind, ingest answers 503.

Every process that accepts events watches the log's unloaded bytes (all writers, or the
NATS stream's bytes) and flags its state overloaded above the bound; SDKs retry a 503
with Retry-After.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import anyio.to_thread

from nerve.log import DEFAULT_MAX_BACKLOG, StreamWriter, backlog_bytes, max_backlog
from nerve.server._state import NerveState

__all__ = ["DEFAULT_MAX_BACKLOG", "backlog_details", "max_backlog", "watch_backlog"]

_BACKLOG_CHECK_SECONDS = 0.5

logger = logging.getLogger("nerve.server")


async def watch_backlog(state: NerveState, limit: int) -> None:
    """Flag overload while the unloaded log exceeds ``limit``: ingest answers 503.

    Each change is logged once (a warning as the 503s begin, then how long they lasted):
    the log said nothing while every event was refused, and only the metrics told.
    """
    since: float | None = None
    state.max_backlog_bytes = limit
    while True:
        size = await anyio.to_thread.run_sync(_unloaded, state)
        overloaded = size > limit
        if overloaded and since is None:
            since = time.monotonic()
            logger.warning("the warehouse is behind the event log: answering 503 to events "
                           "until the loader catches up", extra={
                               "backlog_bytes": size, "max_backlog_bytes": limit})
        elif not overloaded and since is not None:
            logger.info("the loader caught up: taking events again", extra={
                "backlog_bytes": size, "max_backlog_bytes": limit,
                "refused_seconds": round(time.monotonic() - since, 1)})
            since = None
        state.overloaded = overloaded
        state.backlog_bytes = size
        if size == 0:
            state.behind_since = None
        elif state.behind_since is None:
            state.behind_since = time.monotonic()
        await asyncio.sleep(_BACKLOG_CHECK_SECONDS)


def backlog_details(state: NerveState) -> dict[str, Any]:
    """The ``details`` of the 503 while overloaded: the bound and the backlog at the last
    check (bytes), how long the log has been behind, and which log: a JetStream stream's
    name (its backlog is the stream's bytes; the last figure while NATS is away)."""
    behind = state.behind_since
    details: dict[str, Any] = {
        "backlog_bytes": state.backlog_bytes, "max_backlog_bytes": state.max_backlog_bytes,
        "behind_seconds": None if behind is None else round(time.monotonic() - behind, 1),
        "log": "local"}
    if isinstance(state.log, StreamWriter):
        details.update(log="jetstream", stream=state.log.settings.stream)
    return details


def _unloaded(state: NerveState) -> int:
    """The log's unloaded bytes now (the last figure while the NATS server is away)."""
    if isinstance(state.log, StreamWriter):
        try:
            return state.log.backlog_bytes()
        except Exception:  # noqa: BLE001 - a publish meets the same trouble and says so
            return state.backlog_bytes
    try:
        return backlog_bytes(state.workspace.log_dir)
    except OSError:  # a segment vanished mid-scan: the loader just finished it
        return 0
