"""The server's background threads (live anomaly monitor, scheduled checks) yield the CPU
to the worker processes taking events, as the loader does (docs/operations.md)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from nerve.anomaly import start_live
from nerve.quality import Scheduler


def _policy(native_id: int) -> int:
    """The scheduling policy of a thread of this process (Linux ``/proc`` stat)."""
    fields = Path(f"/proc/self/task/{native_id}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[38])  # stat field 41


def _settled_policy(native_id: int | None, idle: bool) -> int:
    """The thread's policy once it had the time to lower itself (when ``idle``)."""
    assert native_id is not None
    deadline = time.monotonic() + 5
    while idle and _policy(native_id) != os.SCHED_IDLE and time.monotonic() < deadline:
        time.sleep(0.01)
    return _policy(native_id)


@pytest.mark.parametrize("idle", [True, False])
def test_the_live_monitor_thread_yields_the_cpu_when_asked(idle: bool) -> None:
    state = SimpleNamespace()
    start_live(state, every=3600, idle=idle)
    runner = state.live_runner
    try:
        expected = os.SCHED_IDLE if idle else os.SCHED_OTHER
        assert _settled_policy(runner.thread.native_id, idle) == expected
        if idle:  # named in the OS too, for top -H and /proc
            comm = Path(f"/proc/self/task/{runner.thread.native_id}/comm").read_text()
            assert comm.strip() == "nerve-live"
    finally:
        runner.stop()
    assert not runner.thread.is_alive()
    assert _policy(threading.get_native_id()) == os.SCHED_OTHER  # the caller's


@pytest.mark.parametrize("idle", [True, False])
def test_the_checks_scheduler_thread_yields_the_cpu_when_asked(idle: bool) -> None:
    scheduler = Scheduler(SimpleNamespace(), every=3600, idle=idle).start()
    try:
        thread = scheduler._thread
        assert thread is not None
        expected = os.SCHED_IDLE if idle else os.SCHED_OTHER
        assert _settled_policy(thread.native_id, idle) == expected
    finally:
        scheduler.stop()


_POOL_PROBE = """
import os, sys, threading
import pyarrow as pa
from nerve._cpu import start_shared_pools, yield_cpu

def policies():
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            stat = open(f"/proc/self/task/{tid}/stat").read().rsplit(")", 1)[1].split()
        except FileNotFoundError:  # a thread that has just ended
            continue
        out[int(tid)] = int(stat[38])
    return out

if sys.argv[1] == "warm":
    start_shared_pools()

def idle_work():
    yield_cpu()
    pa.table({str(i): list(range(1000)) for i in range(8)}).to_pandas()  # uses the pool

before = set(policies())
worker = threading.Thread(target=idle_work, name="nerve-loader")
worker.start()
worker.join()
# the ended idle thread itself may linger in /proc for a moment: not counted
new_idle = [t for t, p in policies().items()
            if t not in before and t != worker.native_id and p == os.SCHED_IDLE]
print(len(new_idle))
"""


@pytest.mark.parametrize("warm", [True, False])
def test_pyarrow_threads_are_started_at_the_server_priority_not_the_loaders(
        warm: bool) -> None:
    """A thread inherits its creator's policy: pyarrow's pool, started lazily by an
    idle-priority thread, would serve the whole process at idle priority. Started first
    (``start_shared_pools``, as ``nerve serve --workers`` does), it keeps normal threads.
    Each case runs in a fresh interpreter: the pool is process-wide, started once."""
    done = subprocess.run([sys.executable, "-c", _POOL_PROBE, "warm" if warm else "cold"],
                          capture_output=True, text=True, timeout=120, check=True)
    idle_pool_threads = int(done.stdout.strip())
    if warm:
        assert idle_pool_threads == 0
    else:  # what the warm-up prevents: the pool's threads took the loader's policy
        assert idle_pool_threads > 0
