"""What the loader hands DuckDB: small chunks combined, big ones kept, JSON tagged in place."""

from __future__ import annotations

import pyarrow as pa

from nerve.loader._commit import as_json, scannable


def chunked(rows_per_chunk: int, chunks: int) -> pa.Table:
    return pa.Table.from_batches([
        pa.record_batch({"message_id": [f"m{c}-{i}" for i in range(rows_per_chunk)],
                         "properties": [f'{{"i":{i}}}' for i in range(rows_per_chunk)]})
        for c in range(chunks)])


def test_many_small_chunks_become_one() -> None:
    table = chunked(3, 500)  # a quiet server: frames of a few rows
    combined = scannable(table)
    assert combined.column(0).num_chunks == 1
    assert combined.equals(table)


def test_big_chunks_are_kept_as_they_are() -> None:
    table = chunked(4000, 8)  # a busy server's frames
    kept = scannable(table)
    assert kept.column(0).num_chunks == 8
    assert kept.equals(table)


def test_json_columns_are_tagged_chunk_by_chunk_with_the_same_text() -> None:
    table = chunked(4000, 3)
    tagged = as_json(table)
    column = tagged.column("properties")
    assert column.type == pa.json_(pa.string())
    assert column.num_chunks == 3
    assert [c.storage for c in column.chunks] == list(table.column("properties").chunks)
    assert tagged.column("message_id").equals(table.column("message_id"))
