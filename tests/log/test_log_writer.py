"""LogWriter: appends, group commit, segment rolls, and recovery after a crash."""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nerve.errors import TransientError
from nerve.log import LogWriter, Tail, backlog_bytes, list_segments, read_segment
from nerve.log._frame import HEADER, encode_batch

MakeBatch = Callable[..., pa.RecordBatch]


def read_all(log_dir: Path, writer: str = "w0") -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for segment in list_segments(log_dir, writer):
        for _, batch in read_segment(segment.path).batches:
            rows.extend(batch.to_pylist())
    return rows


def test_appended_and_synced_batches_read_back_in_order(tmp_path: Path,
                                                        make_batch: MakeBatch) -> None:
    batches = [make_batch(5, start=10 * i) for i in range(4)]
    with LogWriter(tmp_path, "w0") as writer:
        for batch in batches:
            writer.append(batch)
        writer.sync()
        assert read_all(tmp_path) == [r for b in batches for r in b.to_pylist()]
    segments = list_segments(tmp_path, "w0")
    assert len(segments) == 1
    assert not segments[0].sealed
    assert read_segment(segments[0].path).tail is Tail.CLEAN


def test_segments_roll_by_size_and_only_the_newest_is_open(tmp_path: Path,
                                                          make_batch: MakeBatch) -> None:
    with LogWriter(tmp_path, "w0", segment_bytes=4_000) as writer:
        for i in range(30):
            writer.append(make_batch(10, start=100 * i))
        writer.sync()
    segments = list_segments(tmp_path, "w0")
    assert len(segments) > 3
    assert [s.sealed for s in segments] == [True] * (len(segments) - 1) + [False]
    assert len(read_all(tmp_path)) == 300
    assert [r["user_id"] for r in read_all(tmp_path)][:3] == ["u0", "u1", "u2"]


def test_a_segment_rolls_at_the_first_append_after_its_max_age(
        tmp_path: Path, make_batch: MakeBatch) -> None:
    with LogWriter(tmp_path, "w0", max_age=0.2) as writer:
        writer.append(make_batch(2))
        writer.append(make_batch(2, start=2))
        writer.sync()
        assert len(list_segments(tmp_path, "w0")) == 1  # younger than max_age
        time.sleep(0.3)
        writer.append(make_batch(2, start=4))
        writer.sync()
    first, second = list_segments(tmp_path, "w0")
    assert first.sealed
    assert not second.sealed
    assert [r["user_id"] for r in read_all(tmp_path)] == [f"u{i}" for i in range(6)]


def test_an_idle_writer_seals_its_old_segment_when_asked(tmp_path: Path,
                                                          make_batch: MakeBatch) -> None:
    with LogWriter(tmp_path, "w0", max_age=0.2) as writer:
        assert not writer.seal_if_old()  # no segment yet
        writer.append(make_batch(2))
        writer.sync()
        assert not writer.seal_if_old()  # younger than max_age
        time.sleep(0.3)
        assert writer.seal_if_old()
        assert not writer.seal_if_old()  # the new segment holds no batch
        first, second = list_segments(tmp_path, "w0")
        assert first.sealed
        assert read_segment(second.path).batches == []
    assert not writer.seal_if_old()  # closed


def test_a_new_schema_starts_a_new_segment(tmp_path: Path, make_batch: MakeBatch) -> None:
    other = pa.RecordBatch.from_pydict({"x": [1, 2]})
    with LogWriter(tmp_path, "w0") as writer:
        writer.append(make_batch(2))
        writer.append(other)
        writer.sync()
    first, second = list_segments(tmp_path, "w0")
    assert read_segment(first.path).batches[0][1].num_rows == 2
    assert read_segment(second.path).batches[0][1].to_pylist() == [{"x": 1}, {"x": 2}]


def test_a_restart_appends_to_a_new_segment(tmp_path: Path, make_batch: MakeBatch) -> None:
    for i in range(3):
        with LogWriter(tmp_path, "w0") as writer:
            writer.append(make_batch(1, start=i))
            writer.sync()
    names = [s.name for s in list_segments(tmp_path, "w0")]
    assert len(names) == 3
    assert names == sorted(names)
    assert [r["user_id"] for r in read_all(tmp_path)] == ["u0", "u1", "u2"]


def test_one_writer_per_folder(tmp_path: Path) -> None:
    with LogWriter(tmp_path, "w0"), pytest.raises(TransientError, match="another process"):
        LogWriter(tmp_path, "w0", lock_timeout=0.1)
    LogWriter(tmp_path, "w0").close()  # released on close


def test_writer_ids_are_plain_folder_names(tmp_path: Path) -> None:
    for bad in ("", "../x", ".hidden"):
        with pytest.raises(ValueError, match="writer_id"):
            LogWriter(tmp_path, bad)


def test_concurrent_appends_and_syncs_lose_nothing(tmp_path: Path,
                                                  make_batch: MakeBatch) -> None:
    writer = LogWriter(tmp_path, "w0", segment_bytes=15_000)
    errors: list[Exception] = []

    def work(t: int) -> None:
        try:
            for i in range(40):
                writer.append(make_batch(3, start=t * 1000 + i * 3))
                writer.sync()
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.close()
    assert not errors
    users = [r["user_id"] for r in read_all(tmp_path)]
    assert sorted(users) == sorted(f"u{t * 1000 + n}" for t in range(4) for n in range(120))
    assert writer.fsyncs <= 4 * 40  # never more disk flushes than sync calls


def _last_segment(log_dir: Path) -> Path:
    return list_segments(log_dir, "w0")[-1].path


def test_a_torn_tail_is_cut_and_appends_continue(tmp_path: Path, make_batch: MakeBatch,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    with LogWriter(tmp_path, "w0") as writer:
        writer.append(make_batch(4))
        writer.sync()
    path = _last_segment(tmp_path)
    good = path.stat().st_size
    with path.open("ab") as f:  # the first bytes of a frame: a write cut short by a crash
        f.write(encode_batch(make_batch(4, start=50))[: HEADER.size + 10])
    assert read_segment(path).tail is Tail.INCOMPLETE
    with caplog.at_level(logging.WARNING, logger="nerve.log"), \
            LogWriter(tmp_path, "w0") as writer:
        writer.append(make_batch(2, start=100))
        writer.sync()
    assert "incomplete tail of 26 bytes" in caplog.text
    assert path.stat().st_size == good
    assert [r["user_id"] for r in read_all(tmp_path)] == ["u0", "u1", "u2", "u3",
                                                          "u100", "u101"]


def test_a_corrupt_last_frame_is_cut_and_kept_aside(tmp_path: Path, make_batch: MakeBatch,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    with LogWriter(tmp_path, "w0") as writer:
        writer.append(make_batch(3))
        writer.sync()
        path = _last_segment(tmp_path)
        good = path.stat().st_size
        writer.append(make_batch(3, start=10))
        writer.sync()
    data = bytearray(path.read_bytes())
    data[-20] ^= 0xFF  # a bit flip in the last frame's payload
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="nerve.log"), \
            LogWriter(tmp_path, "w0") as writer:
        writer.append(make_batch(1, start=20))
        writer.sync()
    assert "corrupt tail" in caplog.text
    assert path.stat().st_size == good
    aside = path.with_name(f"{path.name}.cut-{good}")
    assert aside.read_bytes() == bytes(data[good:])
    assert [r["user_id"] for r in read_all(tmp_path)] == ["u0", "u1", "u2", "u20"]


def test_whole_frames_after_a_damaged_one_are_salvaged(tmp_path: Path, make_batch: MakeBatch,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    """A bit flip in one frame (a bad sector) used to cut every acknowledged batch after
    it too; the frames after it that verify are now loaded from a new segment."""
    with LogWriter(tmp_path, "w0") as writer:
        for i in range(4):
            writer.append(make_batch(2, start=10 * i))
            writer.sync()
            if i == 0:
                path = _last_segment(tmp_path)
                good = path.stat().st_size
    data = bytearray(path.read_bytes())
    data[good + HEADER.size + 5] ^= 0xFF  # in the second frame's payload
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="nerve.log"), LogWriter(tmp_path, "w0"):
        pass
    assert "2 whole frames after the damaged one" in caplog.text
    assert path.with_name(f"{path.name}.cut-{good}").read_bytes() == bytes(data[good:])
    assert [r["user_id"] for r in read_all(tmp_path)] == ["u0", "u1", "u20", "u21", "u30", "u31"]


def test_a_damaged_length_field_is_not_taken_for_a_torn_write(tmp_path: Path,
                                                              make_batch: MakeBatch) -> None:
    """A length field damaged to run past the end reads as a frame cut short; the whole
    frames after it are acknowledged batches, kept aside and loaded, not dropped."""
    with LogWriter(tmp_path, "w0") as writer:
        for i in range(3):
            writer.append(make_batch(2, start=10 * i))
            writer.sync()
            if i == 0:
                path = _last_segment(tmp_path)
                good = path.stat().st_size
    data = bytearray(path.read_bytes())
    data[good + 11] = 0x7F  # the length's top byte: far past the end of the file
    path.write_bytes(bytes(data))
    LogWriter(tmp_path, "w0").close()
    assert path.with_name(f"{path.name}.cut-{good}").exists()
    assert [r["user_id"] for r in read_all(tmp_path)] == ["u0", "u1", "u20", "u21"]


def test_a_torn_last_frame_is_cut_without_a_copy(tmp_path: Path, make_batch: MakeBatch) -> None:
    with LogWriter(tmp_path, "w0") as writer:
        writer.append(make_batch(2))
        writer.sync()
        writer.append(make_batch(2, start=10))
        writer.sync()
    path = _last_segment(tmp_path)
    path.write_bytes(path.read_bytes()[:-7])
    LogWriter(tmp_path, "w0").close()
    assert [p.name for p in tmp_path.joinpath("w0").iterdir() if ".cut-" in p.name] == []
    assert [r["user_id"] for r in read_all(tmp_path)] == ["u0", "u1"]


def test_backlog_counts_unacknowledged_bytes(tmp_path: Path, make_batch: MakeBatch) -> None:
    assert backlog_bytes(tmp_path / "missing") == 0
    with LogWriter(tmp_path, "w0") as writer:
        writer.append(make_batch(10))
        writer.sync()
        first = backlog_bytes(tmp_path)
        writer.append(make_batch(10))
        assert backlog_bytes(tmp_path) > first > 0


# ----------------------------------------------------------------------------- property


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    sizes=st.lists(st.integers(min_value=0, max_value=6), min_size=1, max_size=12),
    syncs=st.lists(st.booleans(), min_size=12, max_size=12),
    cut=st.floats(min_value=0, max_value=1),
    flip=st.booleans(),
)
def test_what_survives_a_crash_is_an_exact_prefix_covering_every_sync(
    make_batch: MakeBatch, sizes: list[int], syncs: list[bool], cut: float, flip: bool
) -> None:
    """Random appends and syncs, then a crash: the bytes after the last sync are torn
    off at a random point (and maybe damaged). Reading back after recovery gives
    exactly a prefix of the appended batches holding at least everything synced."""
    with tempfile.TemporaryDirectory() as tmp:
        log_dir = Path(tmp)
        appended: list[list[dict[str, object]]] = []
        synced_batches, synced_size = 0, 0
        with LogWriter(log_dir, "w0") as writer:
            for n, (size, do_sync) in enumerate(zip(sizes, syncs, strict=False)):
                batch = make_batch(size, start=100 * n)
                writer.append(batch)
                appended.append(batch.to_pylist())
                if do_sync:
                    writer.sync()
                    synced_batches = len(appended)
                    synced_size = _last_segment(log_dir).stat().st_size
        # the crash: what was not synced may be lost from any byte on, or damaged
        path = _last_segment(log_dir)
        data = path.read_bytes()
        keep = synced_size + int((len(data) - synced_size) * cut)
        torn = bytearray(data[:keep])
        if flip and keep > synced_size:
            torn[keep - 1] ^= 0x55
        path.write_bytes(bytes(torn))

        LogWriter(log_dir, "w0").close()  # recovery
        got = read_all(log_dir)
        batches_back, rows = 0, 0
        while batches_back < len(appended) and rows + len(appended[batches_back]) <= len(got):
            rows += len(appended[batches_back])
            batches_back += 1
        assert got == [r for b in appended[:batches_back] for r in b]
        assert batches_back >= synced_batches


def test_backlog_can_reuse_a_recent_figure(tmp_path: Path, make_batch: MakeBatch) -> None:
    with LogWriter(tmp_path, "w0") as writer:
        writer.append(make_batch(10))
        writer.sync()
        first = backlog_bytes(tmp_path, max_age=3600)
        writer.append(make_batch(10))
        assert backlog_bytes(tmp_path, max_age=3600) == first  # cached
        assert backlog_bytes(tmp_path) > first  # fresh


def test_a_writer_starts_when_the_loader_deletes_a_segment_during_its_recovery(
        tmp_path: Path, make_batch: MakeBatch, monkeypatch: pytest.MonkeyPatch) -> None:
    """The loader deletes a sealed, loaded segment without the writer's lock: a writer
    restarting at that moment listed it, then found it gone, and failed to start."""
    with LogWriter(tmp_path, "w0", segment_bytes=4_000) as writer:
        for i in range(10):
            writer.append(make_batch(10, start=100 * i))
        writer.sync()
    listed = list_segments(tmp_path, "w0")
    assert len(listed) > 2
    listed[0].path.unlink()  # loaded and deleted after the restarting writer listed it
    monkeypatch.setattr("nerve.log._writer.list_segments", lambda *_: listed)
    with LogWriter(tmp_path, "w0") as writer:
        writer.append(make_batch(1, start=5000))
        writer.sync()
    assert read_all(tmp_path)[-1]["user_id"] == "u5000"
