"""The server's background threads (live anomaly monitor, scheduled checks) yield the CPU
to the worker processes taking events, as the loader does (docs/operations.md)."""

from __future__ import annotations

import os
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
