"""The index of loaded message_ids: a dedup probe reads only the hours that may hold a copy,
and loads with it leave the warehouse exactly as loads without it."""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nerve.envelope import to_record_batch
from nerve.loader import Loader
from nerve.loader._recent import HOUR_US, RecentIds
from nerve.log import LogWriter
from nerve.warehouse import Warehouse

H = HOUR_US
NOW = (datetime.now(UTC) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
VIOLATION = '[{"path": "$", "rule": "unplanned", "message": "x", "file": null, "line": null}]'


def u64(*values: int) -> np.ndarray:
    return np.array(values, np.uint64)


def spread(values: Iterable[int], shift: int = 0) -> np.ndarray:
    """Small ints as hashes spread over the low ``64 - shift`` bits: over the whole 64-bit
    range (shift 0), or packed close together (so that many share a run's neighbourhood)."""
    return np.array([(v * 0x9E3779B97F4A7C15 % (1 << 64)) >> shift for v in values],
                    np.uint64)


def at(*hours: float) -> np.ndarray:
    return np.array([int(h * H) for h in hours], np.int64)


def test_ids_found_nowhere_need_no_probe() -> None:
    recent = RecentIds(covered_from=0)
    recent.add(u64(1, 2, 3), at(10.5, 11.5, 11.6))
    assert recent.scopes(u64(4, 5), since=0) == []


def test_a_found_id_is_probed_in_its_hour_only() -> None:
    recent = RecentIds(covered_from=0)
    recent.add(u64(1, 2, 3), at(10.5, 11.5, 12.5))
    assert recent.scopes(u64(9, 2), since=0) == [(11 * H, 12 * H)]
    # hours found side by side are probed in one range
    assert recent.scopes(u64(2, 3), since=0) == [(11 * H, 13 * H)]
    # the window starts within the hour: the probe starts with it
    assert recent.scopes(u64(2), since=int(11.25 * H)) == [(int(11.25 * H), 12 * H)]


def test_what_is_not_indexed_is_probed_in_full() -> None:
    recent = RecentIds(covered_from=10 * H)
    recent.add(u64(1), at(10.5))
    assert recent.scopes(u64(7), since=8 * H) == [(8 * H, 10 * H)]
    assert recent.scopes(u64(7), since=None) == [(None, 10 * H)]
    assert recent.scopes(u64(1), since=9 * H) == [(9 * H, 11 * H)]


def test_hours_out_of_the_window_are_forgotten_and_no_longer_claimed() -> None:
    recent = RecentIds(covered_from=None)
    recent.add(u64(1, 2), at(10.5, 12.5))
    assert recent.scopes(u64(1), since=12 * H) == []  # hour 10 expired with this window
    assert recent.size == 1
    # a later load with an older window must read what was forgotten
    assert recent.scopes(u64(1), since=9 * H) == [(9 * H, 12 * H)]


def test_past_its_capacity_the_oldest_hours_are_dropped_and_probed_in_full() -> None:
    recent = RecentIds(covered_from=0, capacity=3)
    recent.add(u64(1, 2), at(1.5, 1.6))
    recent.add(u64(3, 4), at(2.5, 2.6))
    assert recent.size == 2
    assert recent.covered_from == 2 * H
    assert recent.scopes(u64(9), since=0) == [(0, 2 * H)]
    assert recent.scopes(u64(3), since=0) == [(0, 3 * H)]


@settings(max_examples=200, deadline=None)
@given(adds=st.lists(st.lists(st.tuples(st.integers(0, 60), st.integers(0, 30 * H)),
                              max_size=30), min_size=1, max_size=40),
       probe=st.lists(st.integers(0, 60), min_size=1, max_size=10),
       since=st.one_of(st.none(), st.integers(0, 30 * H)),
       capacity=st.integers(1, 2000), shift=st.sampled_from([0, 10, 20]))
def test_every_indexed_copy_in_the_window_lies_in_a_probed_range(
        adds: list[list[tuple[int, int]]], probe: list[int], since: int | None,
        capacity: int, shift: int) -> None:
    """No false negative, whatever the adds, the window and the capacity: a copy
    received since ``since`` is inside some scope."""
    recent = RecentIds(covered_from=None, capacity=capacity)
    rows: list[tuple[int, int]] = []
    for chunk in adds:
        recent.add(spread((h for h, _ in chunk), shift),
                   np.array([t for _, t in chunk], np.int64))
        rows.extend(chunk)
    scopes = recent.scopes(spread(probe, shift), since)
    for hashed, received in rows:
        if hashed in probe and (since is None or received >= since):
            assert any((lo is None or lo <= received) and (hi is None or received < hi)
                       for lo, hi in scopes), (hashed, received, scopes)


# -- loads with the index leave what loads without it leave ---------------------------

events = st.tuples(st.integers(0, 15), st.booleans(), st.integers(-60, 0))  # id, bad, hours
loads = st.lists(st.lists(events, max_size=8), min_size=1, max_size=8)


def _load_all(make_envelope: Callable[..., Any], batches: list[list[tuple[int, bool, int]]],
              window: timedelta, index_rows: int, already: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, Warehouse.open("duckdb://:memory:") as wh:
        for i in range(already):  # rows loaded before this loader existed (indexed on start)
            wh.cursor().execute(
                "INSERT INTO events (message_id, type, timestamp, received_at, source, "
                "historical, loaded_at) VALUES ($id, 'track', now(), $t, 'web', false, now())",
                {"id": f"m{i}", "t": datetime.now(UTC) - timedelta(hours=i * 7)})
        loader = Loader(Path(tmp), wh, max_rows=7, dedup_window=window,
                        dedup_index_rows=index_rows)
        with LogWriter(Path(tmp), "w0", segment_bytes=4_000) as writer:
            for n, batch in enumerate(batches):
                rows = [make_envelope(ident, message_id=f"m{ident}",
                                      properties=f'{{"n": {n}, "k": {k}}}',
                                      received_at=NOW + hours * H + n,
                                      violations=VIOLATION if bad else None)
                        for k, (ident, bad, hours) in enumerate(batch)]
                writer.append(to_record_batch(rows))
                writer.sync()
                if n % 2:
                    loader.load_once()
        loader.load_once()
        return {table: sorted(wh.query(
                    f"SELECT message_id, properties::VARCHAR AS p FROM {table}").to_pylist(),
                    key=str) for table in ("events", "quarantine")} | {
                "ledger": wh.query("SELECT sum(loaded) AS l, sum(duplicates) AS d, "
                                   "sum(quarantined) AS q FROM loads").to_pylist()}


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=loads, window_hours=st.sampled_from([3, 24, 24 * 7]),
       index_rows=st.sampled_from([1, 5, 1 << 20]), already=st.integers(0, 12))
def test_loads_with_the_index_equal_loads_without_it(
        make_envelope: Callable[..., Any], batches: list[list[tuple[int, bool, int]]],
        window_hours: int, index_rows: int, already: int) -> None:
    window = timedelta(hours=window_hours)
    assert (_load_all(make_envelope, batches, window, index_rows, already)
            == _load_all(make_envelope, batches, window, 0, already))


def test_a_new_loader_finds_copies_loaded_before_it_from_its_index(
        tmp_path: Path, warehouse: Warehouse, make_envelope: Callable[..., Any]) -> None:
    """A restarted server builds the index from the warehouse: a copy of a row loaded
    three hours ago by the previous loader is a duplicate, and only hours are probed."""
    now = time.time_ns() // 1000  # not the module's: this test may run minutes later
    old = [make_envelope(i, message_id=f"m{i}", received_at=now - 3 * H + i)
           for i in range(1000)]
    with LogWriter(tmp_path / "log", "w0") as writer:
        writer.append(to_record_batch(old))
        writer.sync()
        Loader(tmp_path / "log", warehouse).load_once()
        loader = Loader(tmp_path / "log", warehouse)
        writer.append(to_record_batch([
            make_envelope(5, message_id="m5", received_at=now),
            make_envelope(2000, message_id="fresh", received_at=now)]))
        writer.sync()
        stats = loader.load_once()
    assert (stats.loaded, stats.duplicates) == (1, 1)
    assert loader._index is not None
    [m5] = [r["h"] for r in warehouse.query(
        "SELECT hash(message_id) AS h FROM events WHERE message_id = 'm5'").to_pylist()]
    scopes = loader._index["events"].scopes(u64(m5), now - 24 * 7 * H)
    # the hour of the row loaded 3 hours ago and the copy's own (indexed with its commit);
    # the loader indexed an hour more than the window, so nothing else is read in full
    assert any(lo <= now - 3 * H + 5 < hi for lo, hi in scopes)  # type: ignore[operator]
    assert all(lo is not None and hi is not None for lo, hi in scopes)
    assert sum(hi - lo for lo, hi in scopes) <= 2 * H  # type: ignore[operator]
    assert warehouse.query("SELECT count(*) AS n FROM events").column("n")[0].as_py() == 1001


def test_resent_copies_are_dropped_and_not_indexed_again(
        tmp_path: Path, warehouse: Warehouse, make_envelope: Callable[..., Any]) -> None:
    """An SDK that resends a batch it got no answer for: the copies are duplicates, and
    the index (its size is the ``nerve_loader_dedup_index_ids`` gauge, and its memory)
    holds each loaded id once, not once per copy."""
    now = time.time_ns() // 1000
    with LogWriter(tmp_path / "log", "w0") as writer:
        writer.append(to_record_batch([make_envelope(i, message_id=f"m{i}", received_at=now + i)
                                       for i in range(10)]))
        writer.sync()
        loader = Loader(tmp_path / "log", warehouse)
        assert loader.load_once().loaded == 10
        assert loader.dedup_index_ids == 10
        for resend in range(1, 3):  # twice: copies of 6 of them, and one new message
            writer.append(to_record_batch(
                [make_envelope(i, message_id=f"m{i}", received_at=now + resend * H + i)
                 for i in range(6)]
                + [make_envelope(99, message_id=f"new{resend}", received_at=now + resend * H)]))
            writer.sync()
            stats = loader.load_once()
            assert (stats.loaded, stats.duplicates) == (1, 6)
            assert loader.dedup_index_ids == 10 + resend
    assert warehouse.query("SELECT count(*) AS n FROM events").column("n")[0].as_py() == 12


def test_a_failed_commit_leaves_the_index_as_it_was(
        tmp_path: Path, warehouse: Warehouse, make_batch: Callable[..., Any],
        caplog: pytest.LogCaptureFixture) -> None:
    """A commit the warehouse refuses adds nothing to the index, and the index is not
    rebuilt for it (a warehouse that fails for an hour must not cost a rebuild a retry):
    it holds exactly the rows that were loaded."""
    now = time.time_ns() // 1000
    rows = make_batch(2, start=10, received_at=now).to_pylist()
    rows[1]["message_id"] = None  # NOT NULL in the warehouse: the commit fails
    good = make_batch(3, received_at=now)
    poison = pa.RecordBatch.from_pylist(rows, schema=good.schema)
    with LogWriter(tmp_path / "log") as writer, \
            caplog.at_level(logging.INFO, logger="nerve.loader"):
        writer.append(good)
        writer.append(poison)
        writer.append(make_batch(2, start=20, received_at=now))
        writer.sync()
        loader = Loader(tmp_path / "log", warehouse)
        stats = loader.load_once()
    assert (stats.loaded, stats.rejected) == (5, 2)
    assert loader.dedup_index_ids == 5
    assert len([r for r in caplog.records if "indexed the message_ids" in r.getMessage()]) == 1


def test_a_commit_of_rows_far_apart_in_time_indexes_them_all(
        tmp_path: Path, warehouse: Warehouse, make_envelope: Callable[..., Any]) -> None:
    """One commit holds an old writer's rows and a new writer's, further apart than the
    window, with a copy among them (so each range is probed on its own): the old rows
    are indexed too, and a later copy of one of them, as old, is found."""
    now = time.time_ns() // 1000
    window = timedelta(hours=3)
    log_dir = tmp_path / "log"
    with LogWriter(log_dir, "old") as old, LogWriter(log_dir, "new") as new:
        old.append(to_record_batch([make_envelope(i, message_id=f"old{i}",
                                                  received_at=now - 10 * H + i)
                                    for i in range(3)]))
        new.append(to_record_batch([make_envelope(i, message_id=f"new{i % 2}",
                                                  received_at=now + i) for i in range(3)]))
        old.sync()
        new.sync()
        loader = Loader(log_dir, warehouse, dedup_window=window)
        assert loader.load_once().loaded == 5
        old.append(to_record_batch([make_envelope(9, message_id="old1",
                                                  received_at=now - 10 * H + 9)]))
        old.sync()
        stats = loader.load_once()
    assert (stats.loaded, stats.duplicates) == (0, 1)


def test_a_commit_the_index_could_not_take_makes_the_loader_rebuild_it(
        tmp_path: Path, warehouse: Warehouse, make_envelope: Callable[..., Any],
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Should indexing a committed load fail (memory), the index would miss its rows: the
    loader throws it away and builds it again from the warehouse, which finds them."""
    now = time.time_ns() // 1000
    merge = RecentIds.merge
    failed: list[bool] = []

    def fails_once(self: RecentIds, other: RecentIds) -> None:
        if not failed:
            failed.append(True)
            raise MemoryError
        merge(self, other)

    monkeypatch.setattr(RecentIds, "merge", fails_once)
    with LogWriter(tmp_path / "log") as writer, \
            caplog.at_level(logging.INFO, logger="nerve.loader"):
        writer.append(to_record_batch([make_envelope(i, message_id=f"m{i}", received_at=now)
                                       for i in range(3)]))
        writer.sync()
        loader = Loader(tmp_path / "log", warehouse)
        with pytest.raises(MemoryError):
            loader.load_once()
        assert warehouse.query("SELECT count(*) AS n FROM events").column("n")[0].as_py() == 3
        writer.append(to_record_batch([make_envelope(1, message_id="m1", received_at=now)]))
        writer.sync()
        stats = loader.load_once()
    assert (stats.loaded, stats.duplicates) == (0, 1)
    assert loader.dedup_index_ids == 3  # rebuilt: the 3 rows; the copy is not indexed
    assert len([r for r in caplog.records if "indexed the message_ids" in r.getMessage()]) == 2
