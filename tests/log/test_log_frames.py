"""Frames: encode, decode, and how a byte range ends."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pyarrow as pa
import pytest

from nerve.envelope import ENVELOPE_SCHEMA
from nerve.log._frame import (
    HEADER,
    Frame,
    FrameKind,
    Tail,
    _encode,
    decode_batch,
    decode_schema,
    encode_batch,
    encode_schema,
    iter_frames,
)


def test_schema_and_batches_round_trip(make_batch: Callable[..., pa.RecordBatch]) -> None:
    batches = [make_batch(3), make_batch(1, start=10), make_batch(0)]
    data = encode_schema(ENVELOPE_SCHEMA) + b"".join(encode_batch(b) for b in batches)
    items = list(iter_frames(data))
    assert items[-1] is Tail.CLEAN
    frames = [f for f in items if isinstance(f, Frame)]
    assert [f.kind for f in frames] == [FrameKind.SCHEMA] + [FrameKind.LZ4_BATCH] * 3
    schema = decode_schema(frames[0].payload)
    assert schema.equals(ENVELOPE_SCHEMA)
    decoded = [decode_batch(f, schema) for f in frames[1:]]
    assert [b.to_pylist() for b in decoded] == [b.to_pylist() for b in batches]
    assert frames[-1].end == len(data)
    assert all(a.end == b.start for a, b in itertools.pairwise(frames))


def test_frame_offsets_carry_the_base(make_batch: Callable[..., pa.RecordBatch]) -> None:
    data = encode_batch(make_batch(2))
    (frame, tail) = list(iter_frames(data, base=1000))
    assert isinstance(frame, Frame)
    assert (frame.start, frame.end, tail) == (1000, 1000 + len(data), Tail.CLEAN)


@pytest.mark.parametrize("cut", [1, 3, HEADER.size - 1, HEADER.size, HEADER.size + 5, -1])
def test_a_frame_cut_short_is_incomplete(make_batch: Callable[..., pa.RecordBatch],
                                         cut: int) -> None:
    whole = encode_batch(make_batch(1))
    first = encode_batch(make_batch(2))
    items = list(iter_frames(first + whole[:cut]))
    assert isinstance(items[0], Frame)
    assert items[1:] == [Tail.INCOMPLETE]


def test_a_flipped_payload_byte_is_corrupt(make_batch: Callable[..., pa.RecordBatch]) -> None:
    data = bytearray(encode_batch(make_batch(2)) + encode_batch(make_batch(2)))
    data[-7] ^= 0x40
    items = list(iter_frames(bytes(data)))
    assert isinstance(items[0], Frame)
    assert items[1:] == [Tail.CORRUPT]


@pytest.mark.parametrize("position", [0, 4, 8, 12])  # magic, kind, length, crc
def test_a_damaged_header_is_corrupt(make_batch: Callable[..., pa.RecordBatch],
                                     position: int) -> None:
    data = bytearray(encode_batch(make_batch(2)))
    data[position] ^= 0x01
    assert list(iter_frames(bytes(data)))[-1] is not Tail.CLEAN
    assert not any(isinstance(i, Frame) for i in iter_frames(bytes(data)))


def test_garbage_is_not_a_frame() -> None:
    assert list(iter_frames(b"\x00" * 64)) == [Tail.CORRUPT]
    assert list(iter_frames(b"")) == [Tail.CLEAN]


def test_batches_are_compressed_and_the_plain_kind_still_reads(
        make_batch: Callable[..., pa.RecordBatch]) -> None:
    batch = make_batch(50)
    compressed, plain = encode_batch(batch), encode_batch(batch, compress=False)
    assert len(compressed) < len(plain) / 2
    frames = [f for f in iter_frames(compressed + plain) if isinstance(f, Frame)]
    assert [f.kind for f in frames] == [FrameKind.LZ4_BATCH, FrameKind.BATCH]
    assert all(decode_batch(f, batch.schema).equals(batch) for f in frames)


@pytest.mark.parametrize("payload", [b"", b"\x10\x00", b"\xff\xff\x00\x00not lz4 at all",
                                     b"\x08\x00\x00\x00\x04\x22\x4d\x18garbage",
                                     b"\xff\xff\xff\x7fa size past the frame limit"])
def test_a_verified_frame_that_does_not_decode_is_a_value_error(payload: bytes) -> None:
    (frame, _) = iter_frames(_encode(FrameKind.LZ4_BATCH, payload))
    assert isinstance(frame, Frame)
    with pytest.raises(ValueError, match="LZ4_BATCH frame at offset 0"):
        decode_batch(frame, ENVELOPE_SCHEMA)
