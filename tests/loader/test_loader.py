"""Loader: exactly once into events, quarantine routing, offsets committed with rows."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from nerve.envelope import to_record_batch
from nerve.errors import WorkspaceError
from nerve.loader import Loader, LoadStats
from nerve.log import LogWriter, backlog_bytes, list_segments
from nerve.log._frame import HEADER, FrameKind, _encode, encode_batch, encode_schema
from nerve.warehouse import Warehouse

MakeBatch = Callable[..., pa.RecordBatch]

VIOLATION = '[{"path": "$.properties.price", "rule": "type", "message": "expected number", ' \
            '"file": "events/x.yaml", "line": 3}]'


def count(wh: Warehouse, sql: str) -> int:
    return int(wh.query(sql).column(0)[0].as_py())


def test_loads_valid_events_and_acknowledges_them(tmp_path: Path, warehouse: Warehouse,
                                                 make_batch: MakeBatch) -> None:
    log_dir = tmp_path / "log"
    with LogWriter(log_dir, "w0") as writer:
        writer.append(make_batch(5))
        writer.append(make_batch(5, start=5))
        writer.sync()
        assert backlog_bytes(log_dir) > 0
        stats = Loader(log_dir, warehouse).load_once()
        assert stats == LoadStats(batches=2, rows_in=10, loaded=10)
        assert backlog_bytes(log_dir) == 0
    rows = warehouse.query("SELECT user_id, properties.i::INT AS i, loaded_at FROM events "
                           "ORDER BY i").to_pylist()
    assert [r["user_id"] for r in rows] == [f"u{i}" for i in range(10)]
    assert all(r["loaded_at"] is not None for r in rows)
    ledger = warehouse.query("SELECT * FROM loads").to_pylist()
    assert [(r["rows_in"], r["loaded"], r["duplicates"], r["quarantined"]) for r in ledger] \
        == [(10, 10, 0, 0)]


def test_properties_are_json_in_the_warehouse(tmp_path: Path, warehouse: Warehouse,
                                              make_batch: MakeBatch) -> None:
    with LogWriter(tmp_path / "log") as writer:
        writer.append(make_batch(1, properties='{"price": 12.5, "tags": ["a"]}'))
        writer.sync()
    Loader(tmp_path / "log", warehouse).load_once()
    types = {r["column_name"]: r["data_type"] for r in warehouse.query(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = 'events'").to_pylist()}
    assert types["properties"] == types["traits"] == types["context"] == "JSON"
    assert types["timestamp"] == types["loaded_at"] == "TIMESTAMP WITH TIME ZONE"
    assert "violations" not in types
    price = warehouse.query("SELECT properties->>'$.price' AS p, properties->'$.tags'->>0 AS t "
                            "FROM events").to_pylist()
    assert price == [{"p": "12.5", "t": "a"}]
    assert warehouse.table("events").count().execute() == 1


def test_replaying_the_log_loads_each_message_once(tmp_path: Path, warehouse: Warehouse,
                                                   make_batch: MakeBatch) -> None:
    """Clients resend whole batches; copies within a batch and across batches collapse."""
    first = make_batch(6)
    ids = first.column("message_id").to_pylist()
    # a batch with an internal duplicate of its own, then the whole first batch resent
    again = pa.RecordBatch.from_pylist([*first.to_pylist()[:2], first.to_pylist()[0]],
                                       schema=first.schema)
    with LogWriter(tmp_path / "log") as writer:
        writer.append(first)
        writer.append(again)
        writer.append(first)
        writer.sync()
    loader = Loader(tmp_path / "log", warehouse)
    stats = loader.load_once()
    assert (stats.rows_in, stats.loaded, stats.duplicates) == (15, 6, 9)
    # the same bytes loaded again from scratch (the offsets forgotten): still once
    with LogWriter(tmp_path / "log2") as writer:
        writer.append(first)
        writer.sync()
    assert Loader(tmp_path / "log2", warehouse).load_once().duplicates == 6
    assert warehouse.query("SELECT message_id FROM events ORDER BY user_id") \
        .column(0).to_pylist() == sorted(ids, key=ids.index)
    assert count(warehouse, "SELECT sum(duplicates) FROM loads") == 15


def test_the_ledger_counts_each_sources_duplicates(
        tmp_path: Path, warehouse: Warehouse, make_envelope: Callable[..., Any]) -> None:
    """The duplicates check grades each source's share (docs/quality.md): the ledger
    says whose rows were copies, among the table's and within the load, valid or not."""
    def rows(source: str, ids: range, **extra: Any) -> list[Any]:
        return [make_envelope(i, message_id=f"{source}{i}", source=source, **extra)
                for i in ids]

    with LogWriter(tmp_path / "log") as writer:
        writer.append(to_record_batch(rows("app", range(5)) + rows("crm", range(3))))
        writer.sync()
        loader = Loader(tmp_path / "log", warehouse)
        loader.load_once()
        writer.append(to_record_batch(
            rows("app", range(4))                                  # 4 copies of loaded rows
            + rows("app", range(10, 12)) * 2                       # 2 copies within the load
            + rows("backfill", range(50))                          # new rows only
            + rows("crm", range(20, 21), violations='[{"rule": "x"}]') * 2))  # 1, quarantined
        writer.sync()
        stats = loader.load_once()
    assert (stats.duplicates, stats.loaded, stats.quarantined) == (7, 52, 1)
    ledger = warehouse.query("SELECT duplicates, duplicate_sources FROM loads "
                             'ORDER BY "at", start_offset').to_pylist()
    assert ledger == [{"duplicates": 0, "duplicate_sources": None},
                      {"duplicates": 7, "duplicate_sources": '{"app":6,"crm":1}'}]


def test_invalid_events_go_to_quarantine_with_their_violations(
    tmp_path: Path, warehouse: Warehouse, make_batch: MakeBatch
) -> None:
    with LogWriter(tmp_path / "log") as writer:
        writer.append(make_batch(3))
        bad = make_batch(2, start=10, violations=VIOLATION)
        writer.append(bad)
        writer.append(bad)  # resent: quarantined once
        writer.sync()
    stats = Loader(tmp_path / "log", warehouse).load_once()
    assert (stats.loaded, stats.quarantined, stats.duplicates) == (3, 2, 2)
    rows = warehouse.query("SELECT user_id, violations, quarantined_at FROM quarantine "
                           "ORDER BY user_id").to_pylist()
    assert [r["user_id"] for r in rows] == ["u10", "u11"]
    assert all(r["quarantined_at"] is not None for r in rows)
    assert warehouse.query("SELECT violations->0->>'rule' AS rule FROM quarantine") \
        .column(0).to_pylist() == ["type", "type"]
    assert count(warehouse, "SELECT count(*) FROM events WHERE user_id LIKE 'u1_'") == 0


def test_offsets_commit_with_the_rows(tmp_path: Path, warehouse: Warehouse,
                                      make_batch: MakeBatch) -> None:
    log_dir = tmp_path / "log"
    writer = LogWriter(log_dir)
    writer.append(make_batch(4))
    writer.sync()
    loader = Loader(log_dir, warehouse)
    loader.load_once()
    (segment,) = list_segments(log_dir, "w0")
    offsets = warehouse.query('SELECT writer, segment, "offset" FROM log_offsets').to_pylist()
    assert offsets == [{"writer": "w0", "segment": segment.name,
                        "offset": segment.path.stat().st_size}]
    ledger = warehouse.query('SELECT segment, "offset", loaded FROM loads').to_pylist()
    assert ledger == [{"segment": segment.name, "offset": segment.path.stat().st_size,
                       "loaded": 4}]
    # a failed transaction leaves neither rows nor offset behind
    writer.append(make_batch(2, start=10))
    writer.sync()
    warehouse.cursor().execute("DROP TABLE loads")  # the ledger insert will fail mid-transaction
    with pytest.raises(Exception, match="loads"):
        loader.load_once()
    assert count(warehouse, "SELECT count(*) FROM events") == 4
    assert warehouse.query('SELECT "offset" FROM log_offsets').column(0).to_pylist() == [
        offsets[0]["offset"]]
    writer.close()


def test_a_long_backlog_is_not_held_in_memory_at_once(
    tmp_path: Path, warehouse: Warehouse, make_batch: MakeBatch,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    log_dir = tmp_path / "log"
    with LogWriter(log_dir, "w0", segment_bytes=20_000) as writer:
        for i in range(60):
            writer.append(make_batch(100, start=100 * i))
        writer.sync()
    assert len(list_segments(log_dir, "w0")) > 10
    decoded = make_batch(100).nbytes * 60
    loader = Loader(log_dir, warehouse, max_rows=300)
    held: list[int] = []
    flush = loader._flush

    def spy(pending: Any, stats: LoadStats) -> None:
        held.append(pa.total_allocated_bytes())
        flush(pending, stats)

    monkeypatch.setattr(loader, "_flush", spy)
    before = pa.total_allocated_bytes()
    assert loader.load_once().loaded == 6000
    # what was read is released once committed: at most a few segments' worth is held
    assert max(held) - before < decoded / 4, (max(held) - before, decoded)


def test_sealed_segments_are_deleted_once_loaded(tmp_path: Path, warehouse: Warehouse,
                                                 make_batch: MakeBatch) -> None:
    log_dir = tmp_path / "log"
    with LogWriter(log_dir, "w0", segment_bytes=6_000) as writer:
        for i in range(20):
            writer.append(make_batch(5, start=5 * i))
        writer.sync()
        before = len(list_segments(log_dir, "w0"))
        stats = Loader(log_dir, warehouse).load_once()
    assert before > 2
    assert stats.segments_done == before - 1
    assert len(list_segments(log_dir, "w0")) == 1  # the open one stays
    assert count(warehouse, "SELECT count(*) FROM events") == 100
    # forgotten offsets of deleted segments: only the open segment remains
    assert count(warehouse, "SELECT count(*) FROM log_offsets") == 1


HOLDER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from nerve.envelope import to_record_batch
    sys.path.insert(0, sys.argv[2])
    from conftest import envelope
    from nerve.log import LogWriter

    writer = LogWriter(Path(sys.argv[1]), "w0")
    writer.append(to_record_batch([envelope(i) for i in range(4)]))
    writer.sync()
    print("ready", flush=True)
    sys.stdin.readline()
    writer.close()
""")


def test_a_writers_last_segment_is_deleted_once_loaded_when_the_writer_is_gone(
        tmp_path: Path, warehouse: Warehouse, make_batch: MakeBatch) -> None:
    log_dir = tmp_path / "log"
    loader = Loader(log_dir, warehouse)
    with LogWriter(log_dir, "w0") as writer:
        writer.append(make_batch(3))
        writer.sync()
        assert loader.load_once().segments_done == 0
        assert len(list_segments(log_dir, "w0")) == 1  # its writer appends to it
    stats = loader.load_once()  # closed: no writer will append to it again
    assert (stats.loaded, stats.segments_done) == (0, 1)
    assert list_segments(log_dir, "w0") == []
    assert count(warehouse, "SELECT count(*) FROM log_offsets") == 0

    # a writer in another process: its segment stays while it runs
    child = subprocess.Popen([sys.executable, "-c", HOLDER, str(log_dir),
                              str(Path(__file__).parents[1] / "log")],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    assert child.stdout is not None
    assert child.stdin is not None
    assert child.stdout.readline() == b"ready\n", child.communicate()[1]
    try:
        assert loader.load_once().loaded == 4
        assert len(list_segments(log_dir, "w0")) == 1
        assert loader.load_once().segments_done == 0
    finally:
        child.communicate(b"\n", timeout=30)
    assert child.returncode == 0
    assert loader.load_once().segments_done == 1
    assert list_segments(log_dir, "w0") == []
    with LogWriter(log_dir, "w0") as writer:  # the folder takes a writer again
        writer.append(make_batch(2, start=100))
        writer.sync()
    assert loader.load_once().loaded == 2
    assert count(warehouse, "SELECT count(*) FROM events") == 9
    assert [p.name for p in (log_dir / "w0").iterdir() if ".seg" in p.name] == []


def test_several_writers_are_drained(tmp_path: Path, warehouse: Warehouse,
                                     make_batch: MakeBatch) -> None:
    log_dir = tmp_path / "log"
    with LogWriter(log_dir, "w0") as w0, LogWriter(log_dir, "w1") as w1:
        w0.append(make_batch(3))
        w1.append(make_batch(4, start=100))
        w0.sync()
        w1.sync()
        assert Loader(log_dir, warehouse).load_once().loaded == 7
    assert warehouse.query("SELECT DISTINCT writer FROM loads ORDER BY 1").column(0) \
        .to_pylist() == ["w0", "w1"]


def test_a_sealed_segment_with_a_corrupt_frame_is_loaded_up_to_it_and_set_aside(
    tmp_path: Path, warehouse: Warehouse, make_batch: MakeBatch
) -> None:
    log_dir = tmp_path / "log"
    with LogWriter(log_dir, "w0") as writer:
        writer.append(make_batch(2))
        writer.append(make_batch(2, start=10))
        writer.sync()
    path = list_segments(log_dir, "w0")[0].path
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    with LogWriter(log_dir, "w1") as other:  # w0 never comes back; seal it by hand
        del other
    (log_dir / "w0" / "99999999999999999999-00000000.seg").write_bytes(b"")
    Loader(log_dir, warehouse).load_once()
    assert count(warehouse, "SELECT count(*) FROM events") == 2
    assert path.with_name(path.name + ".corrupt").exists()


def test_whole_frames_after_a_damaged_one_in_a_sealed_segment_are_loaded_while_its_writer_runs(
    tmp_path: Path, warehouse: Warehouse, make_batch: MakeBatch,
    caplog: pytest.LogCaptureFixture
) -> None:
    """A flipped byte in a sealed segment, found by the loader while the server runs, cost
    every acknowledged batch after it in that segment; now only the damaged frame's. The
    copy of the frames after it sorts before the writer's newest segment, which the writer
    goes on appending to."""
    log_dir = tmp_path / "log"
    with LogWriter(log_dir, "w0", max_age=3600) as writer:
        for i in range(4):
            writer.append(make_batch(2, start=10 * i))
            writer.sync()
            if i == 0:
                damaged = list_segments(log_dir, "w0")[0].path
                good = damaged.stat().st_size
        writer.max_age = 0
        assert writer.seal_if_old()
        writer.max_age = 3600
        data = bytearray(damaged.read_bytes())
        data[good + HEADER.size + 5] ^= 0xFF  # in the second frame's payload
        damaged.write_bytes(bytes(data))
        loader = Loader(log_dir, warehouse)
        with caplog.at_level(logging.WARNING, logger="nerve.log"):
            loader.load_once()  # up to the damage; the frames after it are copied
        assert "2 whole frames after the damaged one" in caplog.text
        loader.load_once()  # the copy
        writer.append(make_batch(2, start=40))  # the writer's newest segment is still its own
        writer.sync()
        loader.load_once()
    assert warehouse.query("SELECT user_id FROM events ORDER BY user_id").column(0) \
        .to_pylist() == ["u0", "u1", "u20", "u21", "u30", "u31", "u40", "u41"]
    assert damaged.with_name(damaged.name + ".corrupt").exists()


def test_a_verified_frame_that_does_not_decode_ends_a_sealed_segment(
    tmp_path: Path, warehouse: Warehouse, make_batch: MakeBatch,
    caplog: pytest.LogCaptureFixture
) -> None:
    log_dir = tmp_path / "log"
    with LogWriter(log_dir, "w0") as writer:
        writer.append(make_batch(2))
        writer.sync()
    path = list_segments(log_dir, "w0")[0].path
    end = path.stat().st_size
    with path.open("ab") as f:  # its checksum verifies; its LZ4 does not
        f.write(_encode(FrameKind.LZ4_BATCH, b"\x40\x00\x00\x00" + b"not lz4" * 8))
        f.write(encode_batch(make_batch(2, start=10)))
    (log_dir / "w0" / "99999999999999999999-00000000.seg").write_bytes(b"")
    with caplog.at_level(logging.WARNING):
        Loader(log_dir, warehouse).load_once()
    assert count(warehouse, "SELECT count(*) FROM events") == 2
    assert path.with_name(path.name + ".corrupt").exists()
    assert f"LZ4_BATCH frame at offset {end}" in caplog.text


def test_segments_of_uncompressed_frames_still_load(
    tmp_path: Path, warehouse: Warehouse, make_batch: MakeBatch
) -> None:
    folder = tmp_path / "log" / "w0"
    folder.mkdir(parents=True)
    batch = make_batch(3)
    (folder / "00000000000000000001-00000000.seg").write_bytes(
        encode_schema(batch.schema) + encode_batch(batch, compress=False)
        + encode_batch(make_batch(2, start=3)))
    assert Loader(tmp_path / "log", warehouse).load_once().loaded == 5
    assert count(warehouse, "SELECT count(DISTINCT message_id) FROM events") == 5


def test_a_dedup_window_limits_how_far_back_copies_are_found(
    tmp_path: Path, warehouse: Warehouse, make_batch: MakeBatch
) -> None:
    old = make_batch(2)
    resent = pa.RecordBatch.from_pylist(
        [{**r, "received_at": r["received_at"] + timedelta(days=30)} for r in old.to_pylist()],
        schema=old.schema,
    )
    with LogWriter(tmp_path / "log") as writer:
        writer.append(old)
        writer.sync()
        Loader(tmp_path / "log", warehouse).load_once()
        writer.append(resent)
        writer.sync()
        stats = Loader(tmp_path / "log", warehouse, dedup_window=timedelta(days=7)).load_once()
    assert stats.loaded == 2  # outside the window: not recognised
    with LogWriter(tmp_path / "log3") as writer:
        writer.append(resent)
        writer.sync()
    assert Loader(tmp_path / "log3", warehouse, dedup_window=None).load_once().loaded == 0


def _thread_sched(native_id: int) -> tuple[int, int]:
    """(scheduling policy, nice) of a thread of this process (Linux ``/proc`` stat)."""
    fields = Path(f"/proc/self/task/{native_id}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[38]), int(fields[16])  # stat fields 41 and 19


@pytest.mark.parametrize(("idle", "refused", "expected"), [
    (False, False, (os.SCHED_OTHER, 0)),
    (True, False, (os.SCHED_IDLE, 0)),
    # as in a container whose seccomp profile refuses sched_setscheduler
    (True, True, (os.SCHED_OTHER, 19)),
])
def test_background_thread_loads_and_stop_drains(
        tmp_path: Path, warehouse: Warehouse, make_batch: MakeBatch, idle: bool,
        refused: bool, expected: tuple[int, int], monkeypatch: pytest.MonkeyPatch) -> None:
    """``start(idle=True)`` lowers the loader's own thread only: SCHED_IDLE, else nice 19."""
    if refused:
        def refuse(*_: Any) -> None:
            raise PermissionError(1, "Operation not permitted")

        monkeypatch.setattr("os.sched_setscheduler", refuse)
    log_dir = tmp_path / "log"
    loader = Loader(log_dir, warehouse)
    with LogWriter(log_dir) as writer:
        loader.start(interval=0.05, idle=idle)
        writer.append(make_batch(3))
        writer.sync()
        deadline = time.monotonic() + 20
        while loader.totals.loaded < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert loader.totals.loaded == 3
        thread = loader._thread
        assert thread is not None
        assert thread.native_id is not None
        assert _thread_sched(thread.native_id) == expected
        writer.append(make_batch(2, start=3))
        writer.sync()
        loader.stop()  # the final drain picks up the last batch
    assert count(warehouse, "SELECT count(*) FROM events") == 5
    assert loader.last_error is None
    assert _thread_sched(threading.get_native_id()) == (os.SCHED_OTHER, 0)  # the caller's


def test_rows_the_warehouse_refuses_are_set_aside_not_blocking(
    tmp_path: Path, warehouse: Warehouse, make_batch: MakeBatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A collector bug (a null message_id) must not stall the log behind it."""
    good = make_batch(3)
    rows = make_batch(2, start=10).to_pylist()
    rows[1]["message_id"] = None
    poison = pa.RecordBatch.from_pylist(rows, schema=good.schema)
    log_dir = tmp_path / "log"
    with LogWriter(log_dir) as writer:
        writer.append(good)
        writer.append(poison)
        writer.append(make_batch(2, start=20))
        writer.sync()
        with caplog.at_level(logging.ERROR, logger="nerve.loader"):
            stats = Loader(log_dir, warehouse).load_once()
    assert (stats.loaded, stats.rejected, stats.rows_in) == (5, 2, 7)
    assert "refused 2 rows" in caplog.text
    (kept,) = (log_dir / "w0").glob("*.rejected-*.arrow")
    assert pa.ipc.open_file(kept).read_all().to_pylist() == rows
    assert count(warehouse, "SELECT count(*) FROM events") == 5
    assert count(warehouse, "SELECT sum(rejected) FROM loads") == 2
    assert backlog_bytes(log_dir) == 0


def test_the_dedup_window_comes_from_nerve_toml(make_workspace: Callable[..., Any],
                                                warehouse: Warehouse) -> None:
    ws = make_workspace(extra_toml='[loader]\ndedup_window = "24h"\n')
    assert Loader.for_workspace(ws, warehouse).dedup_window == timedelta(hours=24)
    ws = make_workspace(extra_toml='[loader]\ndedup_window = "all"\n')
    assert Loader.for_workspace(ws, warehouse).dedup_window is None
    assert Loader.for_workspace(make_workspace(), warehouse).dedup_window == timedelta(days=7)
    with pytest.raises(WorkspaceError, match=r"\[loader\] dedup_window: expected a duration"):
        make_workspace(extra_toml='[loader]\ndedup_window = "soon"\n')  # refused at load


def test_the_dedup_index_size_comes_from_nerve_toml(make_workspace: Callable[..., Any],
                                                    warehouse: Warehouse) -> None:
    ws = make_workspace(extra_toml="[loader]\ndedup_index_rows = 1000\n")
    assert Loader.for_workspace(ws, warehouse).dedup_index_rows == 1000
    ws = make_workspace(extra_toml="[loader]\ndedup_index_rows = 0\n")
    assert Loader.for_workspace(ws, warehouse).dedup_index_rows == 0
    assert Loader.for_workspace(make_workspace(), warehouse).dedup_index_rows == 64 << 20
    for bad in ("-1", '"lots"', "true"):
        ws = make_workspace(extra_toml=f"[loader]\ndedup_index_rows = {bad}\n")
        with pytest.raises(WorkspaceError, match=r"nerve.toml: \[loader\] dedup_index_rows: "
                                                 r"expected a whole number >= 0"):
            Loader.for_workspace(ws, warehouse)
