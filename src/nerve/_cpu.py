"""Background threads that must not slow the processes taking events."""

from __future__ import annotations

import ctypes
import logging
import os
import threading

__all__ = ["start_shared_pools", "yield_cpu"]

log = logging.getLogger("nerve")

_PR_SET_NAME = 15


def yield_cpu() -> None:
    """Put the calling thread below every other: ``SCHED_IDLE``, else nice 19 (Linux).

    For the background work of a server whose worker processes take the events (the
    loader, the live anomaly monitor, the scheduled checks): it then runs only on CPU
    time no other thread wants. On Linux both calls change only the calling thread (pid
    0, its thread id). At nice 10 the loader still took ~0.25 of 2 cores from the ingest
    benchmark's maximum-rate run; under ``SCHED_IDLE``, 0.10-0.17 (docs/collector.md,
    fourth round). The thread's Python name (``nerve-loader``...) also becomes its name in
    the OS, so ``top -H`` and ``/proc/<pid>/task/*/comm`` show it, and names it in the log.
    """
    name = threading.current_thread().name
    _name_os_thread(name)
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        return
    except (AttributeError, OSError) as exc:  # not Linux, or refused (a container's seccomp)
        log.info("%s: SCHED_IDLE unavailable (%s); lowering its priority instead", name, exc)
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except (AttributeError, OSError) as exc:
        log.warning("%s: could not lower its priority: %s", name, exc)


def start_shared_pools() -> None:
    """Start pyarrow's CPU thread pool from the calling thread, before ``yield_cpu`` threads.

    A thread inherits its creator's scheduling policy, and pyarrow starts its pool's
    threads on first use: if an idle-priority thread (the loader) used it first, every
    later pyarrow conversion of the process, a read API's included, would run on
    ``SCHED_IDLE`` threads and wait whenever the workers keep the CPUs busy. Converting a
    small table with a column per CPU starts them all here, at this thread's priority.
    """
    import pyarrow as pa  # noqa: PLC0415 - only processes with idle-priority threads

    pa.table({str(i): [0] for i in range(2 * pa.cpu_count())}).to_pandas()


def _name_os_thread(name: str) -> None:
    """Name the calling thread in the OS (Linux ``prctl(PR_SET_NAME)``, 15 bytes at most)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_NAME, name.encode()[:15], 0, 0, 0)
    except (AttributeError, OSError):  # not Linux: the name only helps the operator
        pass
