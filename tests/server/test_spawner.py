"""Worker processes outlive the pool threads around them.

A worker dies with the *thread* that started it (``PR_SET_PDEATHSIG``). anyio ends a pool
thread that has been idle for ``MAX_IDLE_TIME`` when another call comes, and a running
server makes such calls every second (the catalog watcher): workers started from the
pool were SIGKILLed in the middle of the ingest benchmark. ``Spawner`` starts them from a
thread of its own.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio
import anyio.to_thread
import pytest
from anyio._backends import _asyncio

from nerve.server._workers import Spawner

#: a child that, like a worker, dies with the thread that started it
CHILD = ("import ctypes, signal, time; ctypes.CDLL(None).prctl(1, signal.SIGKILL); "
         "print('ready', flush=True); time.sleep(60)")


def start(_indexes: Sequence[int] | None) -> list[subprocess.Popen[bytes]]:
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE)
    assert child.stdout is not None
    child.stdout.readline()  # prctl has run
    return [child]


async def started_then_pool_pruned(
        starter: Callable[[Sequence[int] | None], Awaitable[list[subprocess.Popen[bytes]]]],
) -> subprocess.Popen[bytes]:
    """Start a child through ``starter`` while another pool thread is busy; let both go
    idle; then one more pool call, which ends the longest-idle pool thread."""
    started: list[subprocess.Popen[bytes]] = []

    async def run_start() -> None:
        started.extend(await starter(None))

    async with anyio.create_task_group() as group:
        group.start_soon(run_start)
        group.start_soon(anyio.to_thread.run_sync, time.sleep, 0.5)
    await asyncio.sleep(0.3)
    await anyio.to_thread.run_sync(time.sleep, 0)
    await asyncio.sleep(0.5)
    return started[0]


@pytest.fixture
def quick_pruning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_asyncio.WorkerThread, "MAX_IDLE_TIME", 0.1)


def test_a_worker_started_by_the_spawner_outlives_pruned_pool_threads(
        quick_pruning: None) -> None:
    children: list[subprocess.Popen[bytes]] = []

    async def main() -> None:
        async def pooled(indexes: Sequence[int] | None) -> list[Any]:
            return await anyio.to_thread.run_sync(start, indexes)

        # what happened before: started from the pool, killed with its thread
        children.append(await started_then_pool_pruned(pooled))
        spawner = Spawner(start)
        children.append(await started_then_pool_pruned(spawner))
        # while the spawner is open: closing it ends its thread, and the child with it
        # (the server closes it only once its workers have stopped)
        assert children[1].poll() is None
        spawner.close()

    try:
        asyncio.run(main())
        assert children[0].wait(10) == -signal.SIGKILL
    finally:
        for child in children:
            child.kill()
            child.wait()
