"""Segment files on disk: naming, listing, reading, cutting torn tails, acknowledgements.

Layout::

    log_dir/
      <writer_id>/                 one folder per writer (one per HTTP worker process)
        .lock                      held (flock) by the live writer; when no process
                                   holds it, the writer is gone and its newest segment
                                   is sealed too (``abandoned``)
        <ns:020d>-<hex>.seg        segments, in write order by name; only the newest is
                                   ever appended to
        ACK                        {segment: offset} loaded so far (written by the loader
                                   after each commit; advisory, for backlog_bytes)
        <segment>.corrupt          a segment whose tail did not verify, set aside
        <segment>.cut-<offset>     bytes cut from a corrupt tail, kept for inspection
        <segment>.rejected-<offset>.arrow
                                   a batch the warehouse refused (written by the loader)
        <segment>.partial          a salvage of frames after a damaged one, cut short
                                   by a crash before it became a segment

Segment names are unique forever (a nanosecond clock, never reused even after the loader
deleted every older segment), because the warehouse remembers offsets by name.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import re
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pyarrow as pa

from nerve._files import fsync_dir
from nerve.log._frame import (
    BATCH_KINDS,
    HEADER,
    MAGIC,
    MAX_PAYLOAD,
    Frame,
    FrameKind,
    Tail,
    decode_batch,
    decode_schema,
    iter_frames,
)

__all__ = [
    "Segment",
    "SegmentRead",
    "abandoned",
    "acknowledge",
    "backlog_bytes",
    "list_segments",
    "new_segment_name",
    "read_segment",
    "recover_segment",
    "salvage_sealed",
    "set_aside",
    "set_aside_files",
    "try_lock",
    "writer_ids",
]

log = logging.getLogger("nerve.log")

SUFFIX = ".seg"
_SEGMENT_NAME = re.compile(r"^\d{20}-[0-9a-f]{8}\.seg$")
ACK_FILE = "ACK"
LOCK_FILE = ".lock"


@dataclass(frozen=True, slots=True)
class Segment:
    writer: str
    name: str
    path: Path
    #: a later segment of the same writer exists, so nothing will be appended to this one
    sealed: bool


@dataclass(slots=True)
class SegmentRead:
    """Verified batches of a segment from some offset on."""

    schema: pa.Schema | None
    #: (end offset of the frame, batch), in order
    batches: list[tuple[int, pa.RecordBatch]] = field(default_factory=list)
    #: offset just past the last verified frame (where loading may resume)
    end: int = 0
    tail: Tail = Tail.CLEAN
    size: int = 0


def writer_ids(log_dir: Path) -> list[str]:
    """The writers that have a folder under ``log_dir``, sorted."""
    try:
        entries = list(os.scandir(log_dir))
    except FileNotFoundError:
        return []
    return sorted(e.name for e in entries if e.is_dir() and not e.name.startswith("."))


def list_segments(log_dir: Path, writer: str) -> list[Segment]:
    """The segments of one writer, oldest first; all but the newest are sealed."""
    folder = log_dir / writer
    try:
        names = sorted(e.name for e in os.scandir(folder) if _SEGMENT_NAME.match(e.name))
    except FileNotFoundError:
        return []
    last = len(names) - 1
    return [Segment(writer, n, folder / n, sealed=i < last) for i, n in enumerate(names)]


def try_lock(folder: Path) -> int | None:
    """Take a writer folder's lock (flock on ``.lock``) if no process holds it: the file
    descriptor holding it (closing it releases the lock), else None."""
    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            return None
        raise
    return fd


@contextmanager
def abandoned(log_dir: Path, writer: str) -> Iterator[bool]:
    """Whether ``writer`` is gone (stopped, or killed: no process holds its folder's lock),
    holding its lock meanwhile when it is, so that no writer starts in that folder until
    the block ends (a starting writer waits a little for the lock).

    A writer never appends to a segment after a restart, so the newest segment of a
    writer that is gone is sealed: nothing will be appended to it.
    """
    try:
        fd = try_lock(log_dir / writer)
    except FileNotFoundError:  # no folder: no writer, and no segment either
        fd = None
    try:
        yield fd is not None
    finally:
        if fd is not None:
            os.close(fd)


def new_segment_name(folder: Path) -> str:
    """A name that sorts after every existing segment and was never used before."""
    latest = 0
    for entry in os.scandir(folder):
        if _SEGMENT_NAME.match(entry.name):
            latest = max(latest, int(entry.name[:20]))
    stamp = max(time.time_ns(), latest + 1)
    return f"{stamp:020d}-{secrets.token_hex(4)}{SUFFIX}"


def read_segment(path: Path, offset: int = 0) -> SegmentRead:
    """Read the verified frames of a segment from ``offset`` (0: from the start).

    The schema comes from the segment's first frame; only the bytes from ``offset`` on
    are read after it, so polling a growing segment costs what was added since.
    Reading stops at the first frame that is incomplete or does not verify; ``tail``
    says which.
    """
    with path.open("rb") as f:
        size = os.fstat(f.fileno()).st_size
        result = SegmentRead(schema=None, size=size)
        head = f.read(HEADER.size)
        if len(head) < HEADER.size:
            result.tail = Tail.INCOMPLETE if size < HEADER.size else Tail.CORRUPT
            return result
        _, _, length, _ = HEADER.unpack(head)
        first = next(iter_frames(head + f.read(min(length, MAX_PAYLOAD))))
        if isinstance(first, Tail) or first.kind is not FrameKind.SCHEMA:
            result.tail = first if isinstance(first, Tail) else Tail.CORRUPT
            return result
        schema = decode_schema(first.payload)
        result.schema = schema
        start = max(offset, first.end)
        result.end = start
        if start >= size:
            # nothing new; or the warehouse remembers more than the file holds (the
            # unsynced tail of a segment lost in an OS crash after the loader read it)
            return result
        f.seek(start)
        data = f.read(size - start)
    for item in iter_frames(data, base=start):
        if isinstance(item, Tail):
            result.tail = item
            break
        try:
            if item.kind not in BATCH_KINDS:
                raise ValueError(f"a {item.kind.name} frame after the schema")
            batch = decode_batch(item, schema)
        except ValueError as e:
            log.warning("%s: %s", path, e)
            result.tail = Tail.CORRUPT
            break
        result.batches.append((item.end, batch))
        result.end = item.end
    return result


def valid_length(path: Path) -> tuple[int, Tail]:
    """Length of the verified prefix of a segment, and how the rest looks."""
    with path.open("rb") as f:
        data = f.read()
    end = 0
    for item in iter_frames(data):
        if isinstance(item, Tail):
            return end, item
        assert isinstance(item, Frame)
        end = item.end
    return end, Tail.CLEAN  # pragma: no cover - iter_frames always ends with a Tail


def recover_segment(path: Path) -> None:
    """Cut a torn or corrupt tail off a segment no one writes to (after a crash).

    Corrupt bytes are copied aside first (``<segment>.cut-<offset>``) so nothing is
    destroyed, and whole frames after a damaged one go to a new segment that the loader
    loads (``_salvage``); a torn tail (a write cut short) is simply dropped: it was never
    synced, so never acknowledged. A segment gone meanwhile (the loader deletes sealed segments
    once loaded, without the writer's lock) needs nothing. An empty segment (its writer
    died between creating it and writing its schema) holds nothing and is removed: the
    loader would otherwise set it aside as corrupt.
    """
    try:
        end, tail = valid_length(path)
    except FileNotFoundError:
        return
    if tail is Tail.CLEAN:
        if end == 0:  # no bytes at all
            path.unlink(missing_ok=True)
            fsync_dir(path.parent)
        return
    data = path.read_bytes()
    size = len(data)
    kept = None
    # a damaged length field reads as a frame cut short: look for whole frames after it
    # whatever the tail (a torn write has none)
    salvaged, frames = _salvage(path, data, end, path.parent / new_segment_name(path.parent))
    if tail is Tail.CORRUPT or salvaged is not None:
        kept = path.parent / f"{path.name}.cut-{end}"
        kept.write_bytes(data[end:])
    # the fields too, for whoever reads the JSON log (the message alone named them)
    message = "%s: %s tail of %d bytes at offset %d cut"
    args: tuple[object, ...] = (path, tail.value, size - end, end)
    if salvaged is not None:
        message += "; %d whole frames after the damaged one are loaded from %s"
        args += (frames, salvaged.name)
    log.warning(message, *args,
                extra={"segment": str(path), "tail": tail.value, "cut_bytes": size - end,
                       "offset": end, "kept_as": None if kept is None else str(kept),
                       "salvaged_frames": frames,
                       "salvaged_as": None if salvaged is None else str(salvaged)})
    if end == 0:
        path.unlink()
    else:
        with path.open("r+b") as f:
            f.truncate(end)
            os.fsync(f.fileno())
    fsync_dir(path.parent)


def salvage_sealed(path: Path, end: int) -> None:
    """Copy the whole frames after a damaged one in a sealed segment, which the loader
    found while the server runs, into a new segment the loader loads next.

    Start-up recovery (``recover_segment``) names its copy after every segment, as the
    writer is not running yet. Here the writer may be appending to its newest segment,
    which must stay the newest: the copy is named to sort between the damaged segment and
    the one after it. Without such a name (two segments a nanosecond apart), the frames
    stay in the segment set aside, and a warning says so.
    """
    folder = path.parent
    later = sorted(e.name for e in os.scandir(folder)
                   if _SEGMENT_NAME.match(e.name) and e.name > path.name)
    name = f"{int(path.name[:20]) + 1:020d}-{secrets.token_hex(4)}{SUFFIX}"
    if later and name >= later[0]:
        log.warning("%s: no segment name left between it and %s; whole frames after "
                    "offset %d stay in the segment set aside", path, later[0], end)
        return
    salvaged, frames = _salvage(path, path.read_bytes(), end, folder / name)
    if salvaged is not None:
        log.warning("%s: %d whole frames after the damaged one at offset %d are loaded "
                    "from %s", path, frames, end, salvaged.name,
                    extra={"segment": str(path), "offset": end, "salvaged_frames": frames,
                           "salvaged_as": str(salvaged)})


def _salvage(path: Path, data: bytes, end: int, salvaged: Path) -> tuple[Path | None, int]:
    """Copy the whole frames that follow a damaged one into a new segment ``salvaged``;
    its path and how many frames it holds (``None, 0`` when none verify).

    A flipped bit in one frame (a bad sector, not a crash: a torn write leaves no frame
    after it) used to cut every acknowledged batch written after it too. The frames after
    it are found by their header (``MAGIC``) and must verify and decode in the segment's
    schema; they go, behind a copy of its schema frame, into a new segment, which the
    loader loads like any other (a copy of a row it already holds is a duplicate of its
    message_id). It appears whole or not at all (written aside, then renamed). The cut
    bytes stay aside whole, as before.
    """
    view = memoryview(data)
    first = next(iter_frames(view[:end]))
    if isinstance(first, Tail) or first.kind is not FrameKind.SCHEMA:
        return None, 0  # no schema to read the frames with
    schema = decode_schema(first.payload)
    found: list[bytes] = []
    pos = data.find(MAGIC, end + 1)
    while pos != -1:
        item = next(iter_frames(view[pos:]))
        if isinstance(item, Frame) and _decodes(item, schema):
            found.append(data[pos : pos + item.end])
            pos = data.find(MAGIC, pos + item.end)
        else:
            pos = data.find(MAGIC, pos + 1)
    if not found:
        return None, 0
    partial = salvaged.with_name(salvaged.name + ".partial")
    with partial.open("wb") as f:
        f.write(data[: first.end])
        for frame in found:
            f.write(frame)
        f.flush()
        os.fsync(f.fileno())
    partial.rename(salvaged)
    fsync_dir(path.parent)
    return salvaged, len(found)


def _decodes(frame: Frame, schema: pa.Schema) -> bool:
    if frame.kind not in BATCH_KINDS:
        return False
    try:
        decode_batch(frame, schema)
    except ValueError:
        return False
    return True


#: names of the files kept for an operator beside the segments (see the layout above)
_SET_ASIDE = re.compile(r"\.(corrupt|cut-\d+|rejected-\d+\.arrow|seg\.partial)$")


def set_aside_files(log_dir: Path) -> list[Path]:
    """The files the log keeps for an operator to inspect and delete by hand: damaged
    segments (``.corrupt``), bytes cut from a corrupt tail (``.cut-<offset>``),
    batches the warehouse refused (``.rejected-<offset>.arrow``) and salvages cut short
    by a crash (``.partial``: the frames are still in the damaged segment), in every writer's
    folder. ``nerve status`` lists them: a recovery only said so in a worker's log."""
    if not log_dir.is_dir():
        return []
    return sorted(path for folder in log_dir.iterdir() if folder.is_dir()
                  for path in folder.iterdir() if _SET_ASIDE.search(path.name))


def set_aside(path: Path, reason: str) -> None:
    """Rename a segment that cannot be read to the end to ``<segment>.corrupt``."""
    log.warning("%s: %s; set aside as %s.corrupt", path, reason, path.name)
    path.rename(path.with_name(path.name + ".corrupt"))
    fsync_dir(path.parent)


def acknowledge(log_dir: Path, writer: str, offsets: dict[str, int]) -> None:
    """Record how far each segment of ``writer`` is loaded (for ``backlog_bytes``).

    Advisory: the warehouse holds the real offsets; this file only feeds backpressure,
    so it is replaced atomically but not fsynced.
    """
    folder = log_dir / writer
    tmp = folder / f".{ACK_FILE}.{os.getpid()}.tmp"
    tmp.write_bytes(orjson.dumps(offsets))
    os.replace(tmp, folder / ACK_FILE)


def _read_ack(folder: Path) -> dict[str, int]:
    try:
        value = orjson.loads((folder / ACK_FILE).read_bytes())
    except (FileNotFoundError, orjson.JSONDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


_backlog_cache: dict[Path, tuple[float, int]] = {}


def backlog_bytes(log_dir: Path, max_age: float = 0.0) -> int:
    """Bytes written to the log that the loader has not acknowledged yet.

    Cheap enough to call per request (a directory listing and one small file per
    writer, ~50 us): the collector answers 503 when it passes a bound. ``max_age``
    (seconds) reuses a figure computed that recently, for callers on a hot path.
    """
    if max_age > 0:
        cached = _backlog_cache.get(log_dir)
        now = time.monotonic()
        if cached is not None and now - cached[0] < max_age:
            return cached[1]
        value = _backlog(log_dir)
        _backlog_cache[log_dir] = (now, value)
        return value
    return _backlog(log_dir)


def _backlog(log_dir: Path) -> int:
    total = 0
    for writer in writer_ids(log_dir):
        folder = log_dir / writer
        acked = _read_ack(folder)
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            continue
        for entry in entries:
            if _SEGMENT_NAME.match(entry.name):
                try:
                    size = entry.stat().st_size
                except FileNotFoundError:  # deleted by the loader meanwhile
                    continue
                total += max(0, size - int(acked.get(entry.name, 0)))
    return total

