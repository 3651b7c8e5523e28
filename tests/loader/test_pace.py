"""The background loader's pace: soon under a trickle, big commits under a flood."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.log.conftest import T0

from nerve.loader import Loader, Pace
from nerve.loader import _commit as commit_module
from nerve.loader import _loader as loader_module
from nerve.log import LogWriter
from nerve.warehouse import Warehouse

MakeBatch = Callable[..., pa.RecordBatch]
MB = 1 << 20


def test_a_trickle_is_loaded_once_it_is_interval_old() -> None:
    pace = Pace(interval=1.0, max_delay=3.0, batch_bytes=100 * MB)
    assert not pace.due(1 * MB, now=10.0)
    assert not pace.due(1 * MB, now=10.9)
    assert pace.due(2 * MB, now=11.0)  # 2 MB/s would take 50 s to fill a batch


def test_a_flood_waits_for_a_full_batch_but_not_past_max_delay() -> None:
    pace = Pace(interval=1.0, max_delay=3.0, batch_bytes=100 * MB)
    assert not pace.due(10 * MB, now=0.0)
    assert not pace.due(40 * MB, now=1.0)  # 40 MB/s: 100 MB by 2.5 s, within max_delay
    assert not pace.due(80 * MB, now=2.0)
    assert pace.due(100 * MB, now=2.5)  # a full batch
    pace.loaded(now=3.0)
    assert not pace.due(30 * MB, now=3.5)
    assert pace.due(60 * MB, now=6.0)  # max_delay reached, however fast it grows


def test_after_a_slow_load_a_trickle_waits_so_loading_takes_at_most_duty() -> None:
    """A load made slow by a big dedup window: the next one waits 3x as long (duty 1/4)."""
    pace = Pace(interval=1.0, max_delay=3.0, batch_bytes=100 * MB, duty=0.25)
    pace.loaded(now=10.0, took=2.0)
    assert not pace.due(1 * MB, now=13.0)  # max_delay alone would load here
    assert not pace.due(1 * MB, now=15.9)
    assert pace.due(1 * MB, now=16.0)  # 2 s loading, 6 s resting


def test_a_full_batch_is_loaded_even_while_the_loader_rests() -> None:
    pace = Pace(interval=1.0, max_delay=3.0, batch_bytes=100 * MB, duty=0.25)
    pace.loaded(now=10.0, took=2.0)
    assert not pace.due(99 * MB, now=11.0)
    assert pace.due(100 * MB, now=11.0)


@pytest.mark.parametrize("duty", [0.0, -0.5, 1.5])
def test_a_duty_outside_zero_to_one_is_refused(duty: float) -> None:
    with pytest.raises(ValueError, match="duty"):
        Pace(duty=duty)


def test_a_fast_load_does_not_delay_the_next() -> None:
    pace = Pace(interval=1.0, max_delay=3.0, batch_bytes=100 * MB, duty=0.25)
    pace.loaded(now=10.0, took=0.01)
    assert not pace.due(1 * MB, now=10.5)
    assert pace.due(1 * MB, now=11.0)  # interval old, as if the load had been instant


@given(steps=st.lists(st.tuples(st.integers(1, 99 * MB), st.floats(0.01, 2.0),
                                st.floats(0.0, 5.0)), min_size=1, max_size=40),
       duty=st.sampled_from([0.1, 0.25, 0.5, 1.0]))
def test_under_light_traffic_the_loader_loads_at_most_duty_of_the_time(
        steps: list[tuple[int, float, float]], duty: float) -> None:
    """Backlogs below a full batch: between loads, each of ``took`` seconds, the loader
    rests so that loading is at most ``duty`` of the time from the first load on."""
    pace = Pace(interval=1.0, max_delay=3.0, batch_bytes=100 * MB, duty=duty)
    now, loading, first = 0.0, 0.0, None
    for backlog, step, took in steps:
        now += step
        if pace.due(backlog, now):
            first = now if first is None else first
            assert loading <= duty * (now - first) + 1e-9
            now += took
            loading += took
            pace.loaded(now, took=took)


def test_an_empty_log_is_never_due_and_resets_the_clock() -> None:
    pace = Pace(interval=1.0, max_delay=3.0, batch_bytes=100 * MB)
    assert not pace.due(5, now=0.0)
    assert not pace.due(0, now=5.0)  # loaded meanwhile (by someone else): forget the age
    assert not pace.due(5, now=5.5)
    assert pace.due(5, now=6.5)


@given(steps=st.lists(st.tuples(st.integers(0, 300 * MB), st.floats(0.01, 2.0)),
                      min_size=1, max_size=40))
def test_no_row_waits_longer_than_max_delay(steps: list[tuple[int, float]]) -> None:
    """Whatever the traffic, a non-empty backlog is due once it is max_delay old."""
    pace = Pace(interval=1.0, max_delay=3.0, batch_bytes=100 * MB)
    now, since = 0.0, None
    for backlog, step in steps:
        now += step
        due = pace.due(backlog, now)
        if backlog == 0:
            assert not due
            since = None
            continue
        since = now if since is None else since
        if now - since >= 3.0 or backlog >= 100 * MB:
            assert due
        if now - since < 1.0 and backlog < 100 * MB:
            assert not due
        if due:
            pace.loaded(now)
            since = now


def test_the_background_loader_keeps_rows_fresh_under_a_trickle(
        tmp_path: Path, warehouse: Warehouse, make_batch: MakeBatch) -> None:
    log_dir = tmp_path / "log"
    loader = Loader(log_dir, warehouse)
    with LogWriter(log_dir) as writer:
        loader.start(pace=Pace(interval=0.05, max_delay=60.0, batch_bytes=1 << 40))
        for i in range(3):  # a batch a while apart: each is loaded without max_delay
            writer.append(make_batch(2, start=2 * i))
            writer.sync()
            deadline = time.monotonic() + 20
            while loader.totals.loaded < 2 * (i + 1) and time.monotonic() < deadline:
                time.sleep(0.02)
            assert loader.totals.loaded == 2 * (i + 1)
        loader.stop()
    assert warehouse.query("SELECT count(*) AS n FROM events").column("n")[0].as_py() == 6
    assert loader.last_error is None


def test_the_background_loader_tells_the_pace_how_long_each_load_took(
        tmp_path: Path, warehouse: Warehouse, make_batch: MakeBatch) -> None:
    class Recording(Pace):
        def loaded(self, now: float, took: float = 0.0) -> None:
            durations.append(took)
            super().loaded(now, took)

    durations: list[float] = []
    log_dir = tmp_path / "log"
    loader = Loader(log_dir, warehouse)
    with LogWriter(log_dir) as writer:
        writer.append(make_batch(5))
        writer.sync()
        started = time.monotonic()
        loader.start(pace=Recording(interval=0.05, max_delay=60.0, batch_bytes=1 << 40))
        deadline = started + 20
        while not durations and time.monotonic() < deadline:
            time.sleep(0.02)
        loader.stop()
        elapsed = time.monotonic() - started
    assert loader.totals.loaded == 5
    assert durations
    assert 0 < durations[0] < elapsed


def fill_window(warehouse: Warehouse, rows: int, t0: int = T0) -> None:
    """``rows`` loaded events received an hour before ``t0`` (in its window)."""
    warehouse.cursor().execute(
        "INSERT INTO events (message_id, type, timestamp, received_at, source, historical, "
        "loaded_at) SELECT uuid()::VARCHAR, 'track', t, t, 'web', false, now() FROM "
        "(SELECT make_timestamp($t0 - 3600000000 + range)::TIMESTAMPTZ AS t FROM range($n))",
        {"t0": t0, "n": rows})


def load_in_background(loader: Loader, log_dir: Path, make_batch: MakeBatch,
                       rows: int = 2, **overrides: Any) -> None:
    """Two loads of ``rows`` rows by the background loader, each waited for."""
    with LogWriter(log_dir) as writer:
        loader.start(pace=Pace(interval=0.05, max_delay=60.0, batch_bytes=1 << 40))
        for i in range(2):
            writer.append(make_batch(rows, start=rows * i, **overrides))
            writer.sync()
            deadline = time.monotonic() + 30
            while loader.totals.loaded < rows * (i + 1) and time.monotonic() < deadline:
                time.sleep(0.02)
        loader.stop()
    assert loader.totals.loaded == 2 * rows


def test_a_load_spent_in_the_dedup_probe_is_measured_and_explained_once(
        tmp_path: Path, warehouse: Warehouse, make_batch: MakeBatch,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Without the index of loaded ids, with 6M rows in the window, a load of two rows is
    mostly the probe reading them: the loader measures that share and points the
    operator at the window, once."""
    monkeypatch.setattr(loader_module, "_SLOW_LOAD_SECONDS", 0.0)  # any load is long enough
    # the probe is ~70% of such a load here; a lower bar keeps a loaded CI machine's slow
    # fsyncs (the rest of the load) from deciding the outcome
    monkeypatch.setattr(loader_module, "_PROBE_SHARE", 0.4)
    fill_window(warehouse, 6_000_000)
    loader = Loader(tmp_path / "log", warehouse, dedup_index_rows=0)
    with caplog.at_level(logging.WARNING, logger="nerve.loader"):
        load_in_background(loader, tmp_path / "log", make_batch)
    assert loader.totals.probe_seconds > 0
    assert loader.last_probe_share is not None
    assert loader.last_probe_share > 0.4
    warnings = [r.getMessage() for r in caplog.records if "dedup window" in r.getMessage()]
    assert len(warnings) == 1
    assert "dedup_window" in warnings[0]
    assert "dedup_index_rows" in warnings[0]
    assert "(168 hours)" in warnings[0]  # the default window, 7 days


def test_with_the_index_a_small_load_does_not_read_the_window(
        tmp_path: Path, warehouse: Warehouse, make_batch: MakeBatch,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The same 6M rows, received an hour ago: the loader's index of the window's ids
    finds none of the loads' ids among them, so no probe query reads any of them."""
    probes: list[tuple[Any, ...]] = []
    original = commit_module._Probes._probe

    def counted(*args: Any) -> Any:
        probes.append(args[-1])  # the range of received_at it reads
        return original(*args)

    monkeypatch.setattr(commit_module._Probes, "_probe", staticmethod(counted))
    now = time.time_ns() // 1000
    fill_window(warehouse, 6_000_000, t0=now)
    loader = Loader(tmp_path / "log", warehouse)
    load_in_background(loader, tmp_path / "log", make_batch, received_at=now)
    assert probes == []
    assert loader.dedup_index_ids == 6_000_000 + 4
    # without the index, the same loads read the window: the spy sees one probe each
    plain = Loader(tmp_path / "log2", warehouse, dedup_index_rows=0)
    load_in_background(plain, tmp_path / "log2", make_batch, received_at=now)
    assert len(probes) == 2


def test_a_load_with_an_empty_window_is_not_the_probe(
        tmp_path: Path, warehouse: Warehouse, make_batch: MakeBatch,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Against an empty window the probe is a small share of a load, and nothing is logged.

    The loads carry 20,000 rows each: in a load of two rows the probe's fixed cost (one
    query) can be half of it against an empty window too, and that says nothing of the
    window."""
    monkeypatch.setattr(loader_module, "_SLOW_LOAD_SECONDS", 0.0)
    loader = Loader(tmp_path / "log", warehouse)
    with caplog.at_level(logging.WARNING, logger="nerve.loader"):
        load_in_background(loader, tmp_path / "log", make_batch, rows=20_000)
    assert loader.last_probe_share is not None
    assert loader.last_probe_share < 0.5
    assert not [r for r in caplog.records if "dedup window" in r.getMessage()]


def test_a_full_warehouse_disk_is_one_error_line_that_says_what_to_do(
        tmp_path: Path, make_batch: MakeBatch, caplog: pytest.LogCaptureFixture) -> None:
    """The loader logged a whole traceback on every retry of a commit that found the
    warehouse's disk full."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root: cannot fill the warehouse's disk")
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(disk)],
                      capture_output=True, check=False).returncode != 0:
        pytest.skip("mount -t tmpfs is not permitted here")
    try:
        warehouse = Warehouse.open(f"duckdb://{disk / 'warehouse.duckdb'}")
        (disk / "filler").write_bytes(b"\0" * shutil.disk_usage(disk).free)
        loader = Loader(tmp_path / "log", warehouse)
        with LogWriter(tmp_path / "log") as writer, \
                caplog.at_level(logging.ERROR, logger="nerve.loader"):
            writer.append(make_batch(2000))
            writer.sync()
            loader.start(pace=Pace(interval=0.05, max_delay=0.05))
            deadline = time.monotonic() + 30
            while loader.last_error is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert loader.last_error is not None
            (disk / "filler").unlink()  # room again: the stop's drain loads the batch
            loader.stop()
        assert loader.totals.loaded == 2000
        errors = [r for r in caplog.records if r.name == "nerve.loader"]
        assert errors
        assert errors[0].exc_info is None
        assert "the warehouse's disk is full" in errors[0].getMessage()
        assert "[warehouse] url" in errors[0].getMessage()
        warehouse.close()
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
