"""The on-disk spool: the queue as append-only files, so unsent events survive a restart.

Layout of ``spool_dir``: segment files ``<time_ns>-<pid>-<random>.spool``, each a header
line (``{"nerve_spool": 1, "identity": ...}``, the write key's fingerprint) followed by
one encoded message per line, and beside each an ``.ack`` file holding, one per line, the
byte offsets up to which messages are settled (delivered, or refused by the server).

- ``put`` writes the line with one ``os.write`` on an O_APPEND descriptor: once the call
  returns, the event survives the process being killed; ``sync`` (fsync, run before each
  send and on flush) makes it survive the machine crashing too.
- A live client holds an exclusive ``flock`` on each segment it owns. A new client adopts
  every segment nobody holds and whose identity is its own: it reads it, stops at the
  first line that is torn or not a JSON object (a crash mid-write), and sends what lies
  between the last acknowledged offset and there.
- An ack written but lost in a crash only means a batch is sent again; the message ids
  are unchanged, and nerve's loader (like Segment) deduplicates on them.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson

from nerve._files import fsync_dir

__all__ = ["ROTATE_BYTES", "SpoolQueue"]

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no spool (the client refuses spool_dir)
    fcntl = None  # type: ignore[assignment]

#: start a new segment file beyond this size, so settled data can be deleted
ROTATE_BYTES = 4 * 1024 * 1024
_SUFFIX = ".spool"
_ACK = ".ack"
_CHUNK = 256 * 1024


@dataclass(slots=True)
class _Segment:
    path: Path
    fd: int
    committed: int  # offset of the first unsettled message
    end: int  # offset just after the last complete message
    pending: int
    writable: bool
    ack_fd: int = -1
    dirty: bool = False

    @property
    def ack_path(self) -> Path:
        return self.path.with_suffix(_ACK)


class SpoolQueue:
    """Encoded messages in segment files under ``directory``; see the module docstring."""

    durable = True

    def __init__(self, directory: Path | str, *, identity: str) -> None:
        if fcntl is None:  # pragma: no cover
            raise OSError("the on-disk spool needs POSIX file locks (fcntl)")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.identity = identity
        self._header = orjson.dumps({"nerve_spool": 1, "identity": identity}) + b"\n"
        self._segments: list[_Segment] = []
        #: messages found on disk from earlier processes, and torn lines skipped
        self.recovered = 0
        self.torn = 0
        for path in sorted(self.directory.glob("*" + _SUFFIX)):
            self._adopt(path)

    # ------------------------------------------------------------------ the queue interface

    def __len__(self) -> int:
        return sum(seg.pending for seg in self._segments)

    def put(self, message: bytes) -> None:
        seg = self._writable()
        data = message + b"\n"
        try:
            written = 0
            while written < len(data):
                written += os.write(seg.fd, data[written:])
        except OSError:
            os.ftruncate(seg.fd, seg.end)  # never leave half a line behind
            raise
        seg.end += len(data)
        seg.pending += 1
        seg.dirty = True

    def peek(self, max_items: int, max_bytes: int) -> tuple[list[bytes], object]:
        seg = next((s for s in self._segments if s.pending), None)
        if seg is None:
            return [], None
        lines: list[bytes] = []
        size = 0
        pos = seg.committed
        while len(lines) < max_items and pos < seg.end:
            chunk = os.pread(seg.fd, min(seg.end - pos, _CHUNK), pos)
            start = 0
            while len(lines) < max_items:
                newline = chunk.find(b"\n", start)
                if newline < 0:
                    break
                line = chunk[start:newline]
                if lines and size + len(line) + 1 > max_bytes:
                    return lines, (seg, pos + start, len(lines))
                lines.append(line)
                size += len(line) + 1
                start = newline + 1
            if start == 0:  # cannot happen: lines are under 32 KB and end on a newline
                break
            pos += start
        return lines, (seg, pos, len(lines))

    def commit(self, token: object) -> None:
        if token is None:
            return
        assert isinstance(token, tuple)
        seg, offset, count = token
        assert isinstance(seg, _Segment)
        assert isinstance(offset, int)
        assert isinstance(count, int)
        seg.committed = offset
        seg.pending -= count
        if seg.ack_fd < 0:
            seg.ack_fd = os.open(seg.ack_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.write(seg.ack_fd, b"%d\n" % offset)
        if seg.pending == 0 and (not seg.writable or seg.end >= ROTATE_BYTES):
            self._remove(seg)

    def durable_point(self) -> Callable[[], None]:
        # dup the descriptors: the segment may be closed by the time the fsync runs
        fds = []
        for seg in self._segments:
            if seg.dirty:
                fds.append(os.dup(seg.fd))
                seg.dirty = False

        def fsync() -> None:
            for fd in fds:
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)

        return fsync

    def sync(self) -> None:
        """fsync every segment written to since the last sync."""
        self.durable_point()()

    def close(self) -> None:
        """fsync, delete fully settled segments, and release the locks."""
        self.sync()
        for seg in list(self._segments):
            if seg.pending == 0:
                self._remove(seg)
            else:
                _close(seg)
        self._segments.clear()

    # ------------------------------------------------------------------ segments

    def _writable(self) -> _Segment:
        current = self._segments[-1] if self._segments else None
        if current is not None and current.writable and current.end < ROTATE_BYTES:
            return current
        if current is not None and current.writable:
            current.writable = False
            if current.pending == 0:
                self._remove(current)
        name = f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(4)}"
        tmp = self.directory / (name + ".tmp")
        fd = os.open(tmp, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600)
        # lock and write the header before the file gets the name others look for
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, self._header)
        os.fsync(fd)
        path = self.directory / (name + _SUFFIX)
        tmp.rename(path)
        fsync_dir(self.directory)
        seg = _Segment(path, fd, committed=len(self._header), end=len(self._header),
                       pending=0, writable=True)
        self._segments.append(seg)
        return seg

    def _adopt(self, path: Path) -> None:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:  # settled and deleted by its owner meanwhile
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.fstat(fd).st_ino != path.stat().st_ino:
                raise FileNotFoundError(path)  # replaced under us
        except (BlockingIOError, FileNotFoundError):  # a live client owns it, or it is gone
            os.close(fd)
            return
        data = _read_all(fd)
        header_end = data.find(b"\n") + 1
        if header_end == 0:  # torn before the header was complete: holds no events
            seg = _Segment(path, fd, 0, 0, 0, writable=False)
            self._remove(seg)
            return
        try:
            header = orjson.loads(data[:header_end])
        except orjson.JSONDecodeError:
            header = None
        if not isinstance(header, dict) or header.get("identity") != self.identity:
            os.close(fd)  # another write key's events: leave them for a client with that key
            return
        end, offsets = _complete_lines(data, header_end)
        self.torn += sum(1 for line in data[end:].split(b"\n") if line.strip())
        committed = _last_ack(path.with_suffix(_ACK), header_end, end)
        pending = sum(1 for offset in offsets if offset >= committed)
        seg = _Segment(path, fd, committed=committed, end=end, pending=pending,
                       writable=False)
        if pending == 0:
            self._remove(seg)
            return
        self.recovered += pending
        self._segments.append(seg)

    def _remove(self, seg: _Segment) -> None:
        # unlink while still holding the lock, so nobody adopts a settled segment
        for path in (seg.path, seg.ack_path):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        _close(seg)
        if seg in self._segments:
            self._segments.remove(seg)


def _close(seg: _Segment) -> None:
    for fd in (seg.fd, seg.ack_fd):
        if fd >= 0:
            os.close(fd)
    seg.fd = seg.ack_fd = -1


def _read_all(fd: int) -> bytes:
    parts = []
    pos = 0
    while chunk := os.pread(fd, 1 << 20, pos):
        parts.append(chunk)
        pos += len(chunk)
    return b"".join(parts)


def _complete_lines(data: bytes, start: int) -> tuple[int, list[int]]:
    """The offset after the last valid line, and each valid line's start offset.

    Stops at the first line that is torn (no newline) or not a JSON object: after a
    crash, nothing past it can be trusted.
    """
    offsets: list[int] = []
    pos = start
    while True:
        newline = data.find(b"\n", pos)
        if newline < 0:
            return pos, offsets
        try:
            ok = isinstance(orjson.loads(data[pos:newline]), dict)
        except orjson.JSONDecodeError:
            ok = False
        if not ok:
            return pos, offsets
        offsets.append(pos)
        pos = newline + 1


def _last_ack(path: Path, default: int, end: int) -> int:
    """The highest acknowledged offset in the .ack file (a torn last line is ignored)."""
    try:
        lines = path.read_bytes().split(b"\n")[:-1]  # the part after the last newline is torn
    except FileNotFoundError:
        return default
    best = default
    for line in lines:
        with contextlib.suppress(ValueError):
            value = int(line)
            if best < value <= end:
                best = value
    return best

