"""Crash test: SIGKILL the loader mid-load, again and again; every event lands once."""

from __future__ import annotations

import random
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

from nerve.log import LogWriter, list_segments
from nerve.warehouse import Warehouse

MakeBatch = Callable[..., pa.RecordBatch]

CHILD = textwrap.dedent("""
    import sys
    from pathlib import Path
    from nerve.loader import Loader
    from nerve.warehouse import Warehouse

    log_dir, url = Path(sys.argv[1]), sys.argv[2]
    warehouse = Warehouse.open(url)
    loader = Loader(log_dir, warehouse, max_rows=300)  # many small commits to land in
    print("ready", flush=True)
    while loader.load_once().batches:
        pass
    warehouse.close()
    print("done", flush=True)
""")


def segments_left(log_dir: Path) -> int:
    return len(list_segments(log_dir, "w0")) + len(list_segments(log_dir, "w1"))


def run_child(log_dir: Path, url: str, kill: bool, rng: random.Random) -> bool:
    """Run the loader in a subprocess. With ``kill``, SIGKILL it once it has finished a
    few segments (so surely mid-load), after a random extra moment. True when it
    finished on its own."""
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(log_dir), url],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert child.stdout is not None
    line = child.stdout.readline()
    assert line == b"ready\n", child.stderr.read() if child.stderr else line
    if not kill:
        _, err = child.communicate(timeout=120)
        assert child.returncode == 0, err.decode()
        return True
    before = segments_left(log_dir)
    deadline = time.monotonic() + 60
    while segments_left(log_dir) > before - 2 and child.poll() is None:
        assert time.monotonic() < deadline, "the loader made no progress"
        time.sleep(0.002)
    time.sleep(rng.uniform(0, 0.02))  # anywhere: mid-transaction, mid-delete, between
    child.kill()  # SIGKILL: no cleanup
    child.communicate()
    return child.returncode == 0


def test_sigkill_mid_load_neither_loses_nor_duplicates(tmp_path: Path,
                                                       make_batch: MakeBatch) -> None:
    log_dir = tmp_path / "log"
    url = f"duckdb://{tmp_path / 'wh.duckdb'}"
    expected: set[str] = set()
    resent = 0
    with LogWriter(log_dir, "w0", segment_bytes=16_000) as w0, \
            LogWriter(log_dir, "w1", segment_bytes=16_000) as w1:
        for i in range(120):
            batch = make_batch(60, start=60 * i)
            expected.update(batch.column("message_id").to_pylist())
            (w0 if i % 2 else w1).append(batch)
            if i % 7 == 0:  # a client retry: the whole batch again, through the other worker
                (w1 if i % 2 else w0).append(batch)
                resent += batch.num_rows
        w0.sync()
        w1.sync()
    assert segments_left(log_dir) > 20

    rng = random.Random(7)
    kills = 0
    for _ in range(5):
        if segments_left(log_dir) <= 4 or run_child(log_dir, url, True, rng):
            break
        kills += 1
    run_child(log_dir, url, False, rng)  # restart and finish

    assert kills >= 3
    with Warehouse.open(url) as warehouse:
        ids = warehouse.query("SELECT message_id FROM events").column(0).to_pylist()
        ledger = warehouse.query("SELECT sum(rows_in) AS rows_in, sum(loaded) AS loaded, "
                                 "sum(duplicates) AS duplicates FROM loads").to_pylist()[0]
    assert len(ids) == len(set(ids)) == len(expected)
    assert set(ids) == expected
    # every commit that made it counted its rows once: the ledger adds up
    assert ledger["loaded"] == len(expected)
    assert ledger["rows_in"] == len(expected) + resent
    # every segment was loaded and deleted, the writers' last ones too: they are closed
    assert len(list_segments(log_dir, "w0")) == len(list_segments(log_dir, "w1")) == 0
