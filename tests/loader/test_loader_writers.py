"""Several writers' frames go into shared commits: the outcome must be the one of loading
every segment on its own, one after the other (rows, duplicates, quarantine, ledger)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nerve.envelope import to_record_batch
from nerve.loader import Loader
from nerve.loader._commit import commit_load
from nerve.log import LogWriter, list_segments, read_segment, writer_ids
from nerve.warehouse import Warehouse

VIOLATION = '[{"path": "$", "rule": "unplanned", "message": "x", "file": null, "line": null}]'

# per writer, its batches; one event: (id from a small pool shared by the writers, invalid?)
events = st.tuples(st.integers(min_value=0, max_value=12), st.booleans())
writers = st.lists(st.lists(st.lists(events, max_size=6), min_size=1, max_size=5),
                   min_size=1, max_size=3)


def _write(log_dir: Path, per_writer: list[list[list[tuple[int, bool]]]],
           make_envelope: Callable[..., Any], segment_bytes: int) -> None:
    for w, batches in enumerate(per_writer):
        with LogWriter(log_dir, f"w{w}", segment_bytes=segment_bytes) as writer:
            for n, batch in enumerate(batches):
                writer.append(to_record_batch([
                    make_envelope(ident, message_id=f"m{ident}", received_at=1_000 + n,
                                  properties=f'{{"w": {w}, "n": {n}, "k": {k}}}',
                                  violations=VIOLATION if invalid else None)
                    for k, (ident, invalid) in enumerate(batch)]))
            writer.sync()


def _one_by_one(log_dir: Path, wh: Warehouse) -> None:
    """The reference: each segment in its own transaction, writers and segments in order."""
    for writer in writer_ids(log_dir):
        for segment in list_segments(log_dir, writer):
            read = read_segment(segment.path)
            if read.batches:
                commit_load(wh.cursor(), [b for _, b in read.batches], writer=writer,
                            segment=segment.name, start_offset=0, end_offset=read.end,
                            dedup_window=None)


def _outcome(wh: Warehouse) -> tuple[Any, ...]:
    tables = tuple(wh.query(f"SELECT message_id, properties::VARCHAR AS p FROM {t} "
                            "ORDER BY message_id").to_pylist() for t in ("events", "quarantine"))
    ledger = wh.query("SELECT writer, segment, max(\"offset\") AS o, sum(rows_in) AS r, "
                      "sum(loaded) AS l, sum(duplicates) AS d, sum(quarantined) AS q "
                      "FROM loads GROUP BY ALL ORDER BY ALL").to_pylist()
    return (*tables, ledger)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(per_writer=writers, max_rows=st.integers(min_value=1, max_value=30),
       segment_bytes=st.sampled_from([4_000, 64 << 20]))
def test_shared_commits_equal_loading_each_segment_alone(
    make_envelope: Callable[..., Any], per_writer: list[list[list[tuple[int, bool]]]],
    max_rows: int, segment_bytes: int,
) -> None:
    with (tempfile.TemporaryDirectory() as tmp, Warehouse.open("duckdb://:memory:") as shared,
          Warehouse.open("duckdb://:memory:") as alone):
        log_dir = Path(tmp)
        _write(log_dir, per_writer, make_envelope, segment_bytes)
        _one_by_one(log_dir, alone)  # before the loader deletes finished segments
        Loader(log_dir, shared, max_rows=max_rows, dedup_window=None).load_once()
        assert _outcome(shared) == _outcome(alone)


def test_writers_share_one_commit(tmp_path: Path, make_batch: Callable[..., Any]) -> None:
    log_dir = tmp_path / "log"
    with (LogWriter(log_dir, "w0") as w0, LogWriter(log_dir, "w1") as w1,
          Warehouse.open("duckdb://:memory:") as wh):
        w0.append(make_batch(3))
        w1.append(make_batch(4, start=100))
        w0.sync()
        w1.sync()
        assert Loader(log_dir, wh).load_once().loaded == 7
        # one ledger row per writer's range, both written by the same transaction
        ledger = wh.query("SELECT writer, rows_in, \"at\" FROM loads ORDER BY writer").to_pylist()
        assert [(r["writer"], r["rows_in"]) for r in ledger] == [("w0", 3), ("w1", 4)]
        assert ledger[0]["at"] == ledger[1]["at"]  # now() is the transaction's start
