"""Background threads that must not slow the processes taking events."""

from __future__ import annotations

import logging
import os
import threading

__all__ = ["yield_cpu"]

log = logging.getLogger("nerve")


def yield_cpu(what: str) -> None:
    """Put the calling thread below every other: ``SCHED_IDLE``, else nice 19 (Linux).

    For the background work of a server whose worker processes take the events (the
    loader, the live anomaly monitor, the scheduled checks): it then runs only on CPU
    time no other thread wants. On Linux both calls change only the calling thread (pid
    0, its thread id). At nice 10 the loader still took ~0.25 of 2 cores from the ingest
    benchmark's maximum-rate run; under ``SCHED_IDLE``, 0.10-0.17 (docs/collector.md,
    fourth round). ``what`` names the thread in the log.
    """
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        return
    except (AttributeError, OSError) as exc:  # not Linux, or refused (a container's seccomp)
        log.info("%s: SCHED_IDLE unavailable (%s); lowering its priority instead", what, exc)
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except (AttributeError, OSError) as exc:
        log.warning("%s: could not lower its priority: %s", what, exc)
