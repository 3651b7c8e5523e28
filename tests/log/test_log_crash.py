"""Crash test of the write side: SIGKILL a writer process between and during appends;
every batch it reported synced is loaded exactly once, and nothing torn is loaded."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

from nerve.loader import Loader
from nerve.warehouse import Warehouse

CHILD = textwrap.dedent("""
    import sys
    from pathlib import Path
    from nerve.envelope import to_record_batch
    sys.path.insert(0, sys.argv[3])
    from conftest import envelope
    from nerve.log import LogWriter

    log_dir, run = Path(sys.argv[1]), sys.argv[2]
    writer = LogWriter(log_dir, "w0", segment_bytes=12_000)
    print("ready", flush=True)
    n = 0
    while True:
        batch = to_record_batch([envelope(i, message_id=f"{run}-{n}-{i}") for i in range(20)])
        writer.append(batch)
        if n % 3 == 2:  # some batches are appended but not synced when the kill lands
            writer.sync()
            print(f"synced {n}", flush=True)
        n += 1
""")


def run_writer(log_dir: Path, run: str, seconds: float) -> tuple[int, int]:
    """Run a writer for ``seconds`` then SIGKILL it; (last synced batch, batches seen)."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(log_dir), run, str(Path(__file__).parent)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert child.stdout is not None
    assert child.stdout.readline() == b"ready\n", child.stderr.read() if child.stderr else ""
    first = child.stdout.readline().decode()  # it is writing: let it run, then kill it
    assert first.startswith("synced "), child.stderr.read() if child.stderr else first
    time.sleep(seconds)
    child.kill()
    out, _ = child.communicate()
    synced = [int(line.split()[1]) for line in (first + out.decode()).splitlines()
              if line.startswith("synced ")]
    return (synced[-1] if synced else -1), len(synced)


def test_sigkilled_writers_lose_nothing_synced(tmp_path: Path) -> None:
    log_dir = tmp_path / "log"
    last_synced: dict[str, int] = {}
    for run in ("a", "b", "c"):
        last, count = run_writer(log_dir, run, 0.4)
        assert count > 0
        last_synced[run] = last
    with Warehouse.open(f"duckdb://{tmp_path / 'wh.duckdb'}") as wh:
        # the last writer is gone: the loader cuts its torn tail, as a restarting writer
        # would, and deletes its segments once loaded
        Loader(log_dir, wh).load_once()
        ids = wh.query("SELECT message_id FROM events").column(0).to_pylist()
    assert len(ids) == len(set(ids))
    by_run: dict[str, set[int]] = {}
    for message_id in ids:
        run, batch, _ = message_id.split("-")
        by_run.setdefault(run, set()).add(int(batch))
    for run, last in last_synced.items():
        # every synced batch is there, and what is there is a prefix of what was written
        loaded = by_run.get(run, set())
        assert set(range(last + 1)) <= loaded
        assert loaded == set(range(len(loaded)))
    # whole batches only: a torn frame never produces part of a batch
    assert len(ids) % 20 == 0
    assert [p.name for p in (log_dir / "w0").iterdir() if ".seg" in p.name] == []
