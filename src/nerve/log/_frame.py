"""Frames: the unit of the event log on disk.

A segment file is a sequence of frames. Each frame is a 16-byte header followed by its
payload::

    magic  4 bytes  b"NRVF"
    kind   1 byte   1 = schema (Arrow IPC schema message), 2 = batch (Arrow IPC record
                    batch message, read with the segment's schema), 3 = compressed batch
                    (the batch message's length as 4 bytes little-endian, then the
                    message as one LZ4 frame)
    pad    3 bytes  zero
    length 4 bytes  little-endian payload length
    crc    4 bytes  little-endian CRC-32 of kind, length and payload

The first frame of every segment is its schema; every later frame is a record batch in
that schema, so the loader hands Arrow buffers to the warehouse without parsing anything
twice. Writers compress every batch (kind 3): events repeat their names, keys and
contexts, so LZ4 makes a batch 3-6x smaller, which the checksum, the write, the disk and
the backlog bound all see. Kind 2 is still read: earlier versions wrote it.

A frame whose header or checksum does not verify, or that is cut short, ends the
readable part of the segment: everything from there on is a torn or corrupt tail.
"""

from __future__ import annotations

import enum
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa

__all__ = [
    "BATCH_KINDS",
    "HEADER",
    "MAGIC",
    "Frame",
    "FrameKind",
    "Tail",
    "decode_batch",
    "decode_schema",
    "encode_batch",
    "encode_schema",
    "iter_frames",
]

MAGIC = b"NRVF"
HEADER = struct.Struct("<4sB3xII")
_CRC_PREFIX = struct.Struct("<BI")
#: a frame larger than this is a corrupt length field, not a real batch
MAX_PAYLOAD = 1 << 30


class FrameKind(enum.IntEnum):
    SCHEMA = 1
    BATCH = 2
    LZ4_BATCH = 3


BATCH_KINDS = frozenset({FrameKind.BATCH, FrameKind.LZ4_BATCH})
_SIZE = struct.Struct("<I")
_KINDS = frozenset(FrameKind)


class Tail(enum.Enum):
    """How the readable part of a byte range ends."""

    CLEAN = "clean"  # exactly at a frame boundary
    INCOMPLETE = "incomplete"  # a frame cut short: a torn write, or one still being written
    CORRUPT = "corrupt"  # a full-length frame that does not verify


@dataclass(frozen=True, slots=True)
class Frame:
    kind: FrameKind
    start: int  # offset of the header
    end: int  # offset just past the payload
    payload: memoryview


def _crc(kind: int, payload: bytes | memoryview) -> int:
    return zlib.crc32(payload, zlib.crc32(_CRC_PREFIX.pack(kind, len(payload))))


def _encode(kind: FrameKind, payload: bytes | memoryview) -> bytes:
    return HEADER.pack(MAGIC, kind, len(payload), _crc(kind, payload)) + payload


def encode_schema(schema: pa.Schema) -> bytes:
    """The schema frame that opens a segment."""
    return _encode(FrameKind.SCHEMA, memoryview(schema.serialize()))


def encode_batch(batch: pa.RecordBatch, *, compress: bool = True) -> bytes:
    """One record batch as a frame (Arrow IPC message, without the schema), compressed
    unless ``compress`` is false."""
    message = batch.serialize()
    if not compress:
        return _encode(FrameKind.BATCH, memoryview(message))
    packed = _SIZE.pack(message.size) + pa.compress(message, codec="lz4", asbytes=True)
    return _encode(FrameKind.LZ4_BATCH, memoryview(packed))


def decode_schema(payload: memoryview) -> pa.Schema:
    return pa.ipc.read_schema(pa.py_buffer(payload))


def decode_batch(frame: Frame, schema: pa.Schema) -> pa.RecordBatch:
    """The record batch of a batch frame (either kind).

    Raises ``ValueError`` if the payload is not a batch in ``schema``: a frame that
    verifies but does not decode (written by something else, or damaged in a way the
    checksum missed).
    """
    message = pa.py_buffer(frame.payload)
    try:
        if frame.kind is FrameKind.LZ4_BATCH:
            (size,) = _SIZE.unpack_from(frame.payload)
            if size > MAX_PAYLOAD:  # a damaged size: do not allocate it
                raise ValueError(f"says its batch has {size} bytes")
            message = pa.decompress(message[_SIZE.size:], size, codec="lz4")
        return pa.ipc.read_record_batch(message, schema)
    except pa.ArrowMemoryError:
        raise  # the process is short of memory; the frame may be fine
    except (pa.ArrowException, ValueError, OSError, struct.error) as e:  # LZ4's is an OSError
        raise ValueError(f"{frame.kind.name} frame at offset {frame.start}: {e}") from e


def iter_frames(data: bytes | memoryview, base: int = 0) -> Iterator[Frame | Tail]:
    """Yield every verified frame in ``data``, then how the data ends (a ``Tail``).

    ``base`` is the file offset of ``data[0]``; frames carry file offsets.
    """
    view = memoryview(data)
    pos = 0
    size = len(view)
    while pos < size:
        if size - pos < HEADER.size:
            yield Tail.INCOMPLETE if _plausible_prefix(view[pos:]) else Tail.CORRUPT
            return
        magic, kind, length, crc = HEADER.unpack_from(view, pos)
        if magic != MAGIC or kind not in _KINDS or length > MAX_PAYLOAD:
            yield Tail.CORRUPT
            return
        end = pos + HEADER.size + length
        if end > size:
            yield Tail.INCOMPLETE
            return
        payload = view[pos + HEADER.size : end]
        if _crc(kind, payload) != crc:
            yield Tail.CORRUPT
            return
        yield Frame(FrameKind(kind), base + pos, base + end, payload)
        pos = end
    yield Tail.CLEAN


def _plausible_prefix(rest: memoryview) -> bool:
    """Whether a short tail could be the start of a header still being written."""
    head = bytes(rest[: len(MAGIC)])
    return MAGIC.startswith(head)
