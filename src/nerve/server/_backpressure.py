"""Backpressure from the log: when the loader falls behind, ingest answers 503.

Every process that accepts events watches the log's unloaded bytes (all writers, or the
NATS stream's bytes) and flags its state overloaded above the bound; SDKs retry a 503
with Retry-After.

It watches the room left on the local warehouse's disk too, on the same look: on a small
disk shared with the log, ingest used to fill the room the warehouse needed to load what
the log held, and the loader then failed every commit ("No space left on device") while
the log kept the events it could not load. Ingest now stops first, while the loader can
still load what the log holds.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

import anyio.to_thread

from nerve.log import DEFAULT_MAX_BACKLOG, StreamWriter, backlog_bytes, max_backlog
from nerve.server._state import BEHIND, SHORT_OF_ROOM, NerveState
from nerve.workspace import Workspace

__all__ = ["DEFAULT_MAX_BACKLOG", "backlog_details", "max_backlog", "overload_reason",
           "room_problem", "warehouse_room", "watch_backlog"]

_BACKLOG_CHECK_SECONDS = 0.5
#: free bytes the warehouse's disk keeps beyond what loading the log needs: DuckDB's
#: metadata and temporary files, the audit log, a query's spill
LOAD_ROOM_MARGIN = 16 << 20
#: warehouse bytes to keep free per unloaded log byte. The log's frames are
#: LZ4-compressed and DuckDB's WAL holds the rows uncompressed: on a 64 MiB tmpfs, 70,000
#: events (~7 MB of log, ~100 bytes each) took 34 MB of WAL
LOAD_ROOM_PER_LOG_BYTE = 6
#: once short of room, ingest resumes only with this much more than needed, so that a
#: disk at the edge does not switch it on and off (and log each switch) every look
_ROOM_HYSTERESIS = 4 << 20
#: while short of room, the loading process checkpoints the warehouse at most this often
_CHECKPOINT_SECONDS = 10.0

logger = logging.getLogger("nerve.server")


async def watch_backlog(state: NerveState, limit: int) -> None:
    """Flag overload while the unloaded log exceeds ``limit``: ingest answers 503.

    Each change is logged once (a warning as the 503s begin, then how long they lasted):
    the log said nothing while every event was refused, and only the metrics told.
    """
    since: float | None = None
    checkpointed = float("-inf")
    state.max_backlog_bytes = limit
    while True:
        size = await anyio.to_thread.run_sync(_unloaded, state)
        _watch_room(state, await anyio.to_thread.run_sync(warehouse_room, state.workspace,
                                                          size))
        if state.short_of_room and time.monotonic() - checkpointed >= _CHECKPOINT_SECONDS:
            checkpointed = time.monotonic()
            await anyio.to_thread.run_sync(_checkpoint, state)
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
        state.overloaded = overloaded or state.short_of_room
        state.backlog_bytes = size
        if size == 0:
            state.behind_since = None
        elif state.behind_since is None:
            state.behind_since = time.monotonic()
        await asyncio.sleep(_BACKLOG_CHECK_SECONDS)


def warehouse_room(workspace: Workspace, backlog: int) -> tuple[int, int] | None:
    """The free bytes of the local warehouse's disk, and the bytes it needs free to load a
    log of ``backlog`` unloaded bytes and then checkpoint (None: no local DuckDB file).

    What DuckDB writes before a checkpoint sits in its WAL (the ``.wal`` file beside the
    database), uncompressed; the checkpoint writes it into the database, so the WAL's size
    is kept free as well: the last checkpoint, when the server stops, needs it.
    """
    path = workspace.warehouse_file
    if path is None or not path.exists():
        return None
    disk = os.statvfs(path.parent)
    try:
        wal = path.with_name(path.name + ".wal").stat().st_size
    except FileNotFoundError:
        wal = 0
    needed = LOAD_ROOM_MARGIN + LOAD_ROOM_PER_LOG_BYTE * backlog + wal
    return disk.f_bavail * disk.f_frsize, needed


def room_problem(workspace: Workspace, free: int, needed: int) -> str:
    """What an operator reads when the warehouse's disk is short of room: the figures, and
    what to do."""
    folder = workspace.warehouse_file.parent if workspace.warehouse_file else "?"
    return (f"the disk of {folder} has {free:,} bytes free, and loading what the event log "
            f"holds needs {needed:,} there; free space on that disk, or move the warehouse "
            "to a larger volume ([warehouse] url, docs/operations.md)")


def _watch_room(state: NerveState, room: tuple[int, int] | None) -> None:
    """Set ``state.short_of_room`` from the warehouse's disk; log each change once."""
    if room is None:
        state.warehouse_free_bytes = state.warehouse_needs_bytes = None
        short = False
    else:
        free, needed = room
        if state.short_of_room:
            # what taking events again needs, and so the figure the 503s, /ready and
            # nerve status give: they said "20,238,336 bytes free, needs 16,777,216"
            # while refusing every event
            needed += _ROOM_HYSTERESIS
        state.warehouse_free_bytes, state.warehouse_needs_bytes = free, needed
        short = free < needed
    if short and not state.short_of_room:
        state.short_since = time.monotonic()
        logger.warning(SHORT_OF_ROOM + ": answering 503 to events until it has room; "
                       + room_problem(state.workspace, free, needed), extra={
                           "free_bytes": free, "needed_bytes": needed})
    elif not short and state.short_of_room:
        logger.info("the warehouse's disk has room again: taking events", extra={
            "free_bytes": state.warehouse_free_bytes,
            "refused_seconds": round(time.monotonic() - state.short_since, 1)})
    state.short_of_room = short


def _checkpoint(state: NerveState) -> None:
    """Checkpoint the warehouse (the loading process only): DuckDB keeps committed rows in
    its WAL, uncompressed, until the WAL reaches ``checkpoint_threshold`` (256 MB), which a
    small disk never holds. A checkpoint writes them compressed into the database and
    empties the WAL: on a 64 MiB tmpfs a 34 MB WAL became ~6 MB of database."""
    exclusive = getattr(state.loader, "exclusive", None)
    path = state.workspace.warehouse_file
    if exclusive is None or path is None:
        return
    wal = path.with_name(path.name + ".wal")
    before = wal.stat().st_size if wal.exists() else 0
    try:
        with exclusive() as cursor:
            cursor.execute("CHECKPOINT")
    except Exception as exc:  # noqa: BLE001 - tried again later; the 503s go on meanwhile
        logger.warning("the warehouse's disk is short of room and checkpointing the "
                       "warehouse failed", extra={"error": str(exc).splitlines()[0]})
        return
    after = wal.stat().st_size if wal.exists() else 0
    logger.info("the warehouse's disk is short of room: checkpointed the warehouse's WAL "
                "into the database", extra={"wal_bytes_before": before,
                                            "wal_bytes_after": after})


def overload_reason(state: NerveState) -> str:
    """Why ingest answers 503 while ``state.overloaded``."""
    return SHORT_OF_ROOM if state.short_of_room else BEHIND


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
    if state.short_of_room:
        details.update(warehouse_free_bytes=state.warehouse_free_bytes,
                       warehouse_needs_bytes=state.warehouse_needs_bytes)
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
