"""Group commit at the event loop: many requests, one Arrow batch, one fsync, one thread hop.

Each request hands its envelope rows to ``GroupCommit.commit()`` and waits. Requests that
arrive while a round runs join the next one: a round turns every request's rows into ONE
record batch, appends it to the log and fsyncs, then answers them all. Only the round
leaves the event loop (to a worker thread), so a busy server pays one thread hop, one
Arrow build and one fsync per round, not per request.

Building the batch per round rather than per request matters: each ``pa.array`` call has
a fixed cost of several microseconds, which for 19 columns of a 100-event request was a
third of the collector's CPU; the log and the loader also handle fewer, larger frames.

Rounds start at most every ``min_interval`` seconds (10 ms by default), like a database's
commit delay. A round costs ~0.3 ms of CPU whatever its size (the thread hop, the batch's
fixed costs, and mostly the kernel's work in ``fdatasync``). Under steady load, requests
arrive spread out, and back-to-back rounds held one or two requests each; spaced rounds
gather several. A request that finds the server idle for longer than the interval is
written at once; others wait at most the interval more.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import anyio.to_thread

from nerve.collector import rows_to_record_batch
from nerve.log import Tally, tally_row

if TYPE_CHECKING:
    from nerve.server._state import EventLog

__all__ = ["DEFAULT_MIN_INTERVAL", "GroupCommit", "seal_old_segments"]

#: seconds between the starts of two rounds at least (``[collector] commit_interval_ms``)
DEFAULT_MIN_INTERVAL = 0.010
#: seconds a refusal's count waits for a round before one is run for it alone
TALLY_FLUSH_SECONDS = 1.0

_Waiter = asyncio.Future[None]

logger = logging.getLogger("nerve.server")


class GroupCommit:
    """Coalesces appends and ``log.sync()`` calls from concurrent requests on one loop."""

    def __init__(self, log: EventLog, min_interval: float = DEFAULT_MIN_INTERVAL) -> None:
        self.log = log
        #: the least time between the starts of two rounds (0: back to back)
        self.min_interval = min_interval
        self._last_round = float("-inf")
        #: requests waiting for the next round: their rows (may be empty) and future
        self._pending: list[tuple[Sequence[tuple[Any, ...]], _Waiter]] = []
        self._task: asyncio.Task[None] | None = None
        #: rounds run so far (each one fsync)
        self.rounds = 0
        #: what the next round records as not stored (``nerve.log._tally``): consent drops
        #: of the requests in it, and refusals since the last round
        self.tally: Tally = Counter()
        self._flush: asyncio.TimerHandle | None = None
        self._quiet: asyncio.Future[None] | None = None
        # pyarrow imports pandas on its first conversion of Python objects (~0.3 s):
        # pay it at start-up, not in the first round, whose clients would wait for it
        rows_to_record_batch(())

    async def commit(self, rows: Sequence[tuple[Any, ...]],
                     dropped: dict[tuple[str, str], int] | None = None,
                     source: str = "") -> None:
        """Append ``rows`` (envelope tuples) in the next round; return once durable.

        ``dropped`` (``Collected.dropped``: messages of ``source`` not stored, by reason
        and event) is recorded in the same round, as its tally row.

        Raises what the append or the fsync raised (OSError on a full disk): then nothing
        of this request may be acknowledged.
        """
        waiter: _Waiter = asyncio.get_running_loop().create_future()
        if dropped:
            for (reason, event), n in dropped.items():
                self.tally[reason, source, event] += n
        self._pending.append((rows, waiter))
        if self._task is None:
            self._task = asyncio.create_task(self._rounds())
        # a client that disconnects cancels only its own waiter: the round runs in its
        # own task, writes these rows anyway, and skips a waiter that is already done
        await waiter

    async def sync(self) -> None:
        """Return once everything appended to the log before this call is durable."""
        await self.commit(())

    def refused(self, status: int, code: str) -> None:
        """Count a refused request: the next round records it, and one runs for it
        within ``TALLY_FLUSH_SECONDS`` when no request comes meanwhile."""
        self.tally["refused", str(status), code] += 1
        if self._flush is None:
            loop = asyncio.get_running_loop()
            self._flush = loop.call_later(TALLY_FLUSH_SECONDS, self._flush_tally)

    def flush_tally(self) -> None:
        """Write and sync the pending tally now: at stop, before the log closes, when no
        round is left to carry the last refusals. A failure is logged, not raised."""
        tally, self.tally = self.tally, Counter()
        if not tally:
            return
        try:
            self.log.append(rows_to_record_batch([tally_row(tally)]))
            self.log.sync()
        except Exception as exc:  # noqa: BLE001 - stopping: the Prometheus counters keep them
            logger.warning("stopping: could not record the last refusals' counts: %s", exc)

    def _flush_tally(self) -> None:
        self._flush = None
        if self.tally and self._task is None:
            self._quiet = asyncio.ensure_future(self._sync_quietly())

    async def _sync_quietly(self) -> None:
        try:
            await self.sync()
        except Exception as exc:  # noqa: BLE001 - the log is failing: kept for the next round
            logger.debug("could not record the refusals' tally yet: %s", exc)

    async def _rounds(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                wait = self._last_round + self.min_interval - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)  # let more requests join this round
                self._last_round = loop.time()
                # everyone pending now joins this round; later arrivals wait for the next
                pending, self._pending = self._pending, []
                tally, self.tally = self.tally, Counter()
                try:
                    failed = await anyio.to_thread.run_sync(self._write, pending, tally)
                except BaseException as exc:  # handed to every waiter
                    # nothing was written: the next round records the refusals; the
                    # consent drops go, as their requests get a 503 and are sent again
                    self.tally.update({key: n for key, n in tally.items()
                                       if key[0] == "refused"})
                    for _, waiter in pending:
                        _settle(waiter, exc)
                    if not isinstance(exc, Exception):
                        raise
                else:
                    self.rounds += 1
                    for index, (_, waiter) in enumerate(pending):
                        _settle(waiter, failed.get(index))
        finally:
            self._task = None

    def _write(self, pending: list[tuple[Sequence[tuple[Any, ...]], _Waiter]],
               tally: Tally | None = None) -> dict[int, BaseException]:
        """Build, append and sync one round (in a worker thread); per-request failures.

        A request whose rows Arrow refuses (a bug upstream: the collector only emits
        typed values) must not fail the others of its round, so on such an error the
        round is rebuilt request by request and only the culprit gets the error.
        """
        failed: dict[int, BaseException] = {}
        parts = [rows for rows, _ in pending if rows]
        # one row for the round's counts, whatever the requests in it
        counts = [tally_row(tally)] if tally else []
        if counts:
            parts.append(counts)
        if parts:
            try:
                batches = [rows_to_record_batch(list(itertools.chain.from_iterable(parts)))]
            except Exception:  # noqa: BLE001 - isolate the request that caused it
                batches = []
                for index, (rows, _) in enumerate(pending):
                    if rows:
                        try:
                            batches.append(rows_to_record_batch(rows))
                        except Exception as exc:  # noqa: BLE001 - handed to its request
                            failed[index] = exc
                if counts:
                    batches.append(rows_to_record_batch(counts))
            for batch in batches:
                self.log.append(batch)
        self.log.sync()
        return failed


async def seal_old_segments(state: Any, every: float = 60.0) -> None:
    """Every ``every`` seconds, seal this process's log segment once it is an hour old
    (``LogWriter.seal_if_old``): a worker that receives nothing more would otherwise
    keep its loaded events in the log until its next event or restart."""
    while True:
        await asyncio.sleep(every)
        seal = getattr(state.log, "seal_if_old", None)
        if seal is not None:
            try:
                await anyio.to_thread.run_sync(seal)
            except OSError as exc:  # a full disk: the next append reports it to a client
                logger.warning("could not seal an old log segment: %s", exc)


def _settle(waiter: _Waiter, exc: BaseException | None) -> None:
    if waiter.done():
        return
    if exc is None:
        waiter.set_result(None)
    else:
        waiter.set_exception(exc)
