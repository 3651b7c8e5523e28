"""Group commit at the event loop: many requests, one fsync, one thread hop.

Each request appends its batch to the log (cheap), then awaits ``GroupCommit.sync()``.
Requests that arrive while an fsync runs share the next one: one round syncs every batch
appended before it started. Only the round itself leaves the event loop (to a worker
thread), so a busy server pays one thread hop per fsync, not one per request.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import anyio.to_thread

if TYPE_CHECKING:
    from nerve.server._state import EventLog

__all__ = ["GroupCommit"]


class GroupCommit:
    """Coalesces ``log.sync()`` calls from concurrent requests on one event loop."""

    def __init__(self, log: EventLog) -> None:
        self.log = log
        self._next: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None

    async def sync(self) -> None:
        """Return once everything appended before this call is durable; raise if not."""
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
        waiter = self._next
        if self._task is None:
            self._task = asyncio.create_task(self._rounds())
        # shield: a client that disconnects must not cancel the round others wait on
        await asyncio.shield(waiter)

    async def _rounds(self) -> None:
        try:
            while self._next is not None:
                # everyone waiting now appended before this round's sync starts
                waiter, self._next = self._next, None
                try:
                    await anyio.to_thread.run_sync(self.log.sync)
                except BaseException as exc:  # handed to every waiter
                    waiter.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
                else:
                    waiter.set_result(None)
        finally:
            self._task = None
