"""The durable event log: Arrow batches in checksummed frames, fsynced before a 200.

Each writer (one per HTTP worker process) appends to its own segment files under
``log_dir/<writer_id>/``; the loader drains every writer's segments into the warehouse
and deletes the ones it has fully loaded. The on-disk format is described in
``nerve.log._frame`` and ``nerve.log._segments``, and in docs/storage.md.

With ``[log] url = "nats://..."`` the log is a NATS JetStream stream instead
(``nerve.log._stream``): ``open_log`` returns the writer the workspace asks for.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from nerve.errors import WorkspaceError
from nerve.log._frame import Tail
from nerve.log._segments import (
    Segment,
    SegmentRead,
    abandoned,
    acknowledge,
    backlog_bytes,
    list_segments,
    read_segment,
    recover_segment,
    salvage_sealed,
    set_aside,
    set_aside_files,
    writer_ids,
)
from nerve.log._stream import (
    DEFAULT_MAX_BACKLOG,
    StreamLink,
    StreamReader,
    StreamSettings,
    StreamWriter,
    max_backlog,
)
from nerve.log._tally import TALLY_TYPE, Tally, merge_tallies, split_tallies, tally_row
from nerve.log._writer import LogClosedError, LogWriter

if TYPE_CHECKING:
    from nerve.workspace import Workspace

__all__ = [
    "DEFAULT_MAX_BACKLOG",
    "TALLY_TYPE",
    "LogClosedError",
    "LogWriter",
    "Segment",
    "SegmentRead",
    "StreamLink",
    "StreamReader",
    "StreamSettings",
    "StreamWriter",
    "Tail",
    "Tally",
    "abandoned",
    "acknowledge",
    "backlog_bytes",
    "list_segments",
    "max_backlog",
    "merge_tallies",
    "open_log",
    "read_segment",
    "recover_segment",
    "salvage_sealed",
    "set_aside",
    "set_aside_files",
    "split_tallies",
    "tally_row",
    "write_problem",
    "writer_ids",
]


def open_log(workspace: Workspace, writer_id: str) -> LogWriter | StreamWriter:
    """The workspace's log writer: on its own folder, or on the NATS stream of ``[log]``."""
    settings = StreamSettings.from_workspace(workspace)
    if settings is None:
        return LogWriter(workspace.log_dir, writer_id)
    writer = StreamWriter(settings, writer_id)
    largest = workspace.config.collector.max_event_bytes
    if largest + (64 << 10) > writer.link.max_payload:  # one event must fit one message
        writer.close()
        raise WorkspaceError(
            f"{workspace.root / 'nerve.toml'}: [collector] max_event_bytes ({largest}) "
            f"does not fit the NATS server's max_payload ({writer.link.max_payload} bytes) "
            "with 64 KiB to spare: lower it, or raise max_payload in the server's "
            "configuration")
    return writer


def write_problem(workspace: Workspace) -> str | None:
    """Why the workspace's own log could not take a request now (None: it can, or the
    log is a NATS stream): its folder is read-only, or the disk has less room than one
    request (``[collector] max_request_bytes``). For ``nerve status``: every worker
    answers 503 then, and a reader should see why without reading the server's log."""
    folder = workspace.log_dir
    while not folder.exists() and folder != folder.parent:  # not made yet: its parent
        folder = folder.parent
    if not os.access(folder, os.W_OK):
        return f"{folder} is not writable"
    disk = os.statvfs(folder)
    free, need = disk.f_bavail * disk.f_frsize, workspace.config.collector.max_request_bytes
    if free < need:
        return f"the disk of {folder} is full ({free:,} bytes free, a request may need {need:,})"
    return None
