"""Durable file-system steps shared by the log, the loader, the SDK's spool and erasure."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["fsync_dir"]


def fsync_dir(folder: Path) -> None:
    """Flush ``folder``'s entries: a file created, renamed or deleted in it survives a
    crash only once its directory is synced (POSIX)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
