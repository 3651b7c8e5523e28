"""When the background loader commits: soon when traffic is light, in big commits when not.

DuckDB writes the rows of a small commit twice (to its WAL, then again when it
checkpoints), while commits of a few row groups (122,880 rows each) go to the database
file once. Measured on the ingest benchmark's rows, one process and one DuckDB thread: the
loader spent ~4.3 us per row in commits of 120k rows and ~3.5 us in commits of 240k.

So the loader waits, within bounds, for a commit worth its fixed costs:

- under light traffic it loads every ``interval`` (rows are queryable within ~1 s);
- when the log grows fast enough to fill ``batch_bytes`` within ``max_delay``, it waits
  for that (or for ``max_delay``), and loads one big commit;
- a backlog of ``batch_bytes`` or more is loaded at once.

A load's cost is not only its rows: each one also looks for copies of its message_ids
among every row received within the dedup window (docs/storage.md), and that costs in
proportion to the window's rows, however few the load brings: ~33 ns per row in the
window on this machine, so ~2 s per load with 60 million rows in it (100 events/s over
the default 7 days). Loading a trickle every ``interval`` would then keep a core busy. So
after a load that took ``t`` seconds, a backlog smaller than ``batch_bytes`` waits
``t * (1 / duty - 1)`` more: under light traffic the loader spends at most ``duty`` of
its time loading, and rows wait longer (here ~8 s instead of ~1 s) rather than cost more.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Pace"]


@dataclass
class Pace:
    """Decides, from the unloaded backlog over time, whether to load now.

    >>> pace = Pace(interval=1.0, max_delay=3.0, batch_bytes=100)
    >>> pace.due(backlog=10, now=0.0), pace.due(backlog=12, now=1.0)  # a trickle
    (False, True)
    >>> pace.loaded(now=1.2)
    >>> pace.due(backlog=40, now=1.5), pace.due(backlog=80, now=2.5)  # a flood
    (False, False)
    >>> pace.due(backlog=100, now=2.75)  # a full batch
    True
    >>> pace.loaded(now=3.0, took=0.5)  # a slow load: rest 1.5 s (duty 0.25)
    >>> pace.due(backlog=10, now=4.4), pace.due(backlog=10, now=4.5)
    (False, True)
    """

    #: seconds the oldest unloaded row waits under light traffic
    interval: float = 1.0
    #: seconds it waits at most for a full batch under heavy traffic
    max_delay: float = 3.0
    #: a backlog this large is loaded at once: ~230k rows of typical events in the log's
    #: compressed frames (~140 bytes each), ~450k of the ingest benchmark's (short ids)
    batch_bytes: int = 32 << 20
    #: under light traffic, the largest share of the time spent loading
    duty: float = 0.25
    #: no load before this (a slow load's rest), unless a full batch is waiting
    _rest_until: float = field(default=float("-inf"), repr=False)
    #: when the backlog was first seen non-empty since the last load (None: empty)
    _since: float | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not 0 < self.duty <= 1:
            raise ValueError(f"Pace duty must be in (0, 1], got {self.duty}")

    def due(self, backlog: int, now: float) -> bool:
        """Whether to load now, given the unloaded bytes (``nerve.log.backlog_bytes``)."""
        if backlog <= 0:
            self._since = None
            return False
        if backlog >= self.batch_bytes:
            return True
        if self._since is None:
            self._since = now
        if now < self._rest_until:
            return False
        waited = now - self._since
        if waited >= self.max_delay:
            return True
        if waited < self.interval:
            return False
        # the backlog built up over ``waited``: at that rate, would a full batch be there
        # before max_delay? Then wait for it; otherwise the rows have waited long enough
        rate = backlog / waited
        return backlog + rate * (self.max_delay - waited) < self.batch_bytes

    def loaded(self, now: float, took: float = 0.0) -> None:
        """A load that took ``took`` seconds finished at ``now``: what the log holds now
        arrived during it."""
        self._since = now
        self._rest_until = now + took * (1 / self.duty - 1)
