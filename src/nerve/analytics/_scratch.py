"""Work memory of the funnel fast path, kept between funnels for a short while.

A funnel over 10M step events needs ~400 MB of work arrays (hashes, the partitioned
rows, per-entity results) for a fraction of a second. Allocated fresh each time, every
page of them is faulted in again, and on a virtual machine that hands freed memory back
to its host (Firecracker's free-page reporting, as here) that cost 0.1-0.7 s of a ~0.7 s
funnel, varying from run to run. ClickHouse's allocator keeps such memory; so does this:
the arrays of the last funnel stay mapped, and are released ``KEEP_SECONDS`` after it.

One funnel at a time uses the kept arrays (``scratch()``); a funnel that runs while
another holds them allocates its own, as before.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import numpy as np

__all__ = ["KEEP_SECONDS", "Scratch", "scratch"]

#: seconds the arrays of the last funnel are kept for the next one
KEEP_SECONDS = 60.0


class Scratch:
    """Named work arrays: ``take(name, shape, dtype)`` returns an uninitialised array,
    reusing the memory of the last array of that name when it is large enough."""

    def __init__(self, keep: bool) -> None:
        self._keep = keep
        self._buffers: dict[str, np.ndarray[Any, np.dtype[np.uint8]]] = {}

    def take(self, name: str, shape: int | tuple[int, ...], dtype: Any) -> np.ndarray[Any, Any]:
        kind = np.dtype(dtype)
        dims = (shape,) if isinstance(shape, int) else shape
        size = int(np.prod(dims)) * kind.itemsize
        buffer = self._buffers.get(name)
        if buffer is None or len(buffer) < size:
            buffer = np.empty(max(size, 1), dtype=np.uint8)
            if self._keep:
                self._buffers[name] = buffer
        array: np.ndarray[Any, Any] = buffer[:size].view(kind).reshape(dims)
        return array

    def release(self) -> None:
        self._buffers.clear()


class _Kept:
    """The process's kept arrays: one funnel at a time, released when idle."""

    def __init__(self) -> None:
        self.arrays = Scratch(keep=True)
        self.lock = threading.Lock()
        self.timer: threading.Timer | None = None

    def release_if_idle(self) -> None:
        if self.lock.acquire(blocking=False):  # a funnel running now keeps them
            try:
                self.arrays.release()
            finally:
                self.lock.release()

    @contextmanager
    def claim(self) -> Iterator[Scratch]:
        if not self.lock.acquire(blocking=False):
            yield Scratch(keep=False)
            return
        try:
            if self.timer is not None:
                self.timer.cancel()
            yield self.arrays
        finally:
            self.timer = threading.Timer(KEEP_SECONDS, self.release_if_idle)
            self.timer.daemon = True
            self.timer.start()
            self.lock.release()


_kept = _Kept()


def scratch() -> AbstractContextManager[Scratch]:
    """The kept work arrays if no other funnel holds them, else fresh ones. Arrays taken
    from it must not outlive the block (copy what the result keeps)."""
    return _kept.claim()
