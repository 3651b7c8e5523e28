"""LogWriter: append Arrow batches to one writer's segments, fsync with group commit."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from types import TracebackType

import pyarrow as pa

from nerve._files import fsync_dir
from nerve.errors import TransientError
from nerve.log._frame import encode_batch, encode_schema
from nerve.log._segments import (
    list_segments,
    new_segment_name,
    recover_segment,
    try_lock,
)

__all__ = ["LogClosedError", "LogWriter"]

_fdatasync = getattr(os, "fdatasync", os.fsync)
#: a segment rolls over past this size: compressed, ~120-230k typical events, which the
#: loader decodes at once (~100 MB of Arrow) and deletes once they are loaded
SEGMENT_BYTES = 16 << 20
#: ... or once it is this old (seconds) and holds a batch: the loader deletes a segment only
#: once it is sealed and loaded, so at low traffic this bounds how long loaded events stay
#: in the log as a second copy (a forgotten user's rows among them; docs/privacy.md)
SEGMENT_MAX_AGE = 3600.0


class LogClosedError(TransientError, ValueError):
    """An append to a closed writer: the server closed it after a failed write (a full
    disk) and reopens it for the next request, or it is stopping. Retryable: nothing of
    the request was written, so the collector answers 503 with ``Retry-After``."""


class LogWriter:
    """The write side of the event log for one writer (one per HTTP worker process).

    ``append`` is cheap and not durable; ``sync`` makes everything appended before it
    durable. Concurrent ``sync`` calls coalesce: while one thread fsyncs, the others
    wait, and one fsync then serves every batch appended before it started (group
    commit), so many requests share the cost of one disk flush.

    At start, the writer cuts torn or corrupt tails left by a crash from its existing
    segments, then appends to a new segment: a segment is never appended to after a
    restart. The writer's folder is locked (flock) so two processes cannot share it.

    >>> writer = LogWriter(tmp / "log", "w0")          # doctest: +SKIP
    >>> writer.append(batch); writer.sync()            # doctest: +SKIP
    """

    def __init__(self, log_dir: Path, writer_id: str = "w0", *,
                 segment_bytes: int = SEGMENT_BYTES, max_age: float = SEGMENT_MAX_AGE,
                 lock_timeout: float = 2.0) -> None:
        if not writer_id or "/" in writer_id or writer_id.startswith("."):
            raise ValueError(f"writer_id {writer_id!r}: a plain folder name is required")
        self.log_dir = Path(log_dir)
        self.writer_id = writer_id
        self.segment_bytes = segment_bytes
        self.max_age = max_age
        self.folder = self.log_dir / writer_id
        self.folder.mkdir(parents=True, exist_ok=True)
        # a restarting server may briefly overlap the old one: wait a little for the lock
        self._lock_fd = _lock_folder(self.folder, lock_timeout)
        try:
            for segment in list_segments(self.log_dir, writer_id):
                recover_segment(segment.path)
        except BaseException:
            os.close(self._lock_fd)
            raise
        self._lock = threading.Lock()  # guards the file, sizes and counters below
        self._fd: int | None = None
        self._schema: pa.Schema | None = None
        self._size = 0
        self._header_size = 0
        self._opened = 0.0  # time.monotonic() when the current segment started
        self._appended = 0  # batches appended so far
        self._sync_cond = threading.Condition()
        self._synced = 0  # batches known durable
        self._syncing = False
        self._closed = False
        #: disk flushes done so far (fewer than sync calls when group commit coalesces)
        self.fsyncs = 0

    # ------------------------------------------------------------------ appending

    def append(self, batch: pa.RecordBatch) -> None:
        """Append one batch to the current segment (buffered in the OS, not yet durable)."""
        frame = encode_batch(batch)  # serialise outside the lock: it is the costly part
        with self._lock:
            if self._closed:
                raise LogClosedError(
                    f"the event log's writer {self.writer_id} is closed (after a failed "
                    "write it is reopened for the next request; or the server is "
                    "stopping): nothing of this request was written", retry_after=1)
            if (
                self._fd is None
                or self._schema is None
                or not batch.schema.equals(self._schema, check_metadata=False)
                or (self._size + len(frame) > self.segment_bytes and self._size > 0)
                or (self._size > self._header_size
                    and time.monotonic() - self._opened > self.max_age)
            ):
                self._roll(batch.schema)
            assert self._fd is not None
            try:
                _write_all(self._fd, frame)
            except OSError:
                # a short write (disk full, file size limit) leaves part of a frame: cut
                # it, so the next append starts on a frame boundary and nothing after a
                # torn frame is lost when the segment is read
                os.ftruncate(self._fd, self._size)
                raise
            self._size += len(frame)
            self._appended += 1

    def seal_if_old(self) -> bool:
        """Start a new segment if the current one holds batches and is older than
        ``max_age``, so that the loader, which deletes only sealed segments, can delete it
        once loaded even when nothing more is appended. True if it did."""
        with self._lock:
            if (self._closed or self._fd is None or self._schema is None
                    or self._size <= self._header_size
                    or time.monotonic() - self._opened <= self.max_age):
                return False
            self._roll(self._schema)
            return True

    def _roll(self, schema: pa.Schema) -> None:
        """Seal the current segment (durably) and start a new one. Holds ``_lock``."""
        if self._fd is not None:
            _fdatasync(self._fd)
            os.close(self._fd)
            self._fd = None
        path = self.folder / new_segment_name(self.folder)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        header = encode_schema(schema)
        try:
            _write_all(fd, header)
            _fdatasync(fd)
            fsync_dir(self.folder)  # the new name must survive a crash before any sync
        except BaseException:
            # a full disk: nothing was appended to it, so it goes, with its descriptor
            # (each refused request tries again: one of each per 503 otherwise)
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        self._fd, self._schema, self._size = fd, schema, len(header)
        self._header_size, self._opened = len(header), time.monotonic()

    # ------------------------------------------------------------------ durability

    def sync(self) -> None:
        """Return once every batch appended before this call is on disk (fsynced)."""
        with self._lock:
            target = self._appended
        with self._sync_cond:
            while self._synced < target:
                if not self._syncing:
                    self._syncing = True
                    break
                self._sync_cond.wait()
            else:
                return
        try:
            with self._lock:
                upto = self._appended
                fd = os.dup(self._fd) if self._fd is not None else None
            if fd is not None:  # a roll already synced everything before the new segment
                try:
                    _fdatasync(fd)
                    self.fsyncs += 1
                finally:
                    os.close(fd)
        except BaseException:
            with self._sync_cond:
                self._syncing = False
                self._sync_cond.notify_all()
            raise
        with self._sync_cond:
            self._synced = max(self._synced, upto)
            self._syncing = False
            self._sync_cond.notify_all()

    def close(self) -> None:
        """Sync, close the segment and release the writer's folder."""
        if self._closed:
            return
        self.sync()
        with self._lock:
            self._closed = True
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            os.close(self._lock_fd)

    def __enter__(self) -> LogWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _lock_folder(folder: Path, wait: float = 2.0) -> int:
    deadline = time.monotonic() + wait
    busy = TransientError(f"{folder}: another process is writing to this log folder "
                          "(is another `nerve serve` running on this workspace?)")
    while True:
        try:
            fd = try_lock(folder)
        except OSError as exc:
            raise busy from exc
        # held by another writer, or for a moment by the loader deleting the newest
        # segment of a writer that is gone (``abandoned``)
        if fd is not None:
            return fd
        if time.monotonic() > deadline:
            raise busy
        time.sleep(0.05)
