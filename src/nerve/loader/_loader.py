"""Loader: drain every writer's log segments into the warehouse, in micro-batches."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from nerve._cpu import yield_cpu
from nerve._durations import parse_window as parse_span
from nerve._files import fsync_dir
from nerve.errors import TransientError, WorkspaceError
from nerve.loader._commit import LoadStats, LogRange, commit_ranges, read_offsets
from nerve.loader._pace import Pace
from nerve.loader._recent import DEFAULT_CAPACITY, RecentIds, as_micros
from nerve.log import (
    Segment,
    SegmentRead,
    StreamSettings,
    Tail,
    abandoned,
    acknowledge,
    backlog_bytes,
    list_segments,
    read_segment,
    recover_segment,
    salvage_sealed,
    set_aside,
    writer_ids,
)
from nerve.warehouse import DATA_ERRORS

if TYPE_CHECKING:
    from nerve.warehouse import Warehouse
    from nerve.workspace import Workspace

__all__ = ["DEFAULT_DEDUP_WINDOW", "Loader", "parse_window"]

log = logging.getLogger("nerve.loader")

#: how far back a resent message_id is recognised as a duplicate (docs/storage.md)
DEFAULT_DEDUP_WINDOW = timedelta(days=7)
#: seconds between the background loader's looks at the log's backlog
_POLL_SECONDS = 0.25
#: a load of _SLOW_LOAD_SECONDS or more that spent _PROBE_SHARE of its time in the dedup
#: probe (which reads every row of the window the index does not hold) is worth a warning
_SLOW_LOAD_SECONDS = 1.0
_PROBE_SHARE = 0.5


class Loader:
    """Moves durable log batches into the warehouse, exactly once.

    Each commit holds the rows (deduplicated on ``message_id``), a ``loads`` ledger row
    and the segment's new offset, so a crash at any point leaves the warehouse at a
    frame boundary of the log; the next run resumes from there. Fully loaded segments
    that the writer has left behind are deleted.

    ``start`` runs it on a background thread; ``stop`` drains and stops it.

    >>> loader = Loader(ws.log_dir, warehouse)        # doctest: +SKIP
    >>> loader.start()                                # doctest: +SKIP
    """

    def __init__(self, log_dir: Path, warehouse: Warehouse, *,
                 dedup_window: timedelta | None = DEFAULT_DEDUP_WINDOW,
                 max_rows: int = 300_000, dedup_index_rows: int = DEFAULT_CAPACITY) -> None:
        self.log_dir = Path(log_dir)
        self.warehouse = warehouse
        self.dedup_window = dedup_window
        #: message_ids of the window kept in memory per table, to narrow the dedup probe
        #: (12 bytes each; 0: none, every probe reads the whole window)
        self.dedup_index_rows = dedup_index_rows
        self.max_rows = max_rows
        #: everything loaded since this loader was created
        self.totals = LoadStats()
        #: the last error the background thread met (it keeps retrying), or None
        self.last_error: BaseException | None = None
        #: seconds the background thread's last load took (None: none yet)
        self.last_load_seconds: float | None = None
        #: the share of that load spent in the dedup probe (0 to 1; None: none yet)
        self.last_probe_share: float | None = None
        self._warned_slow = False
        self._cursor: Any = None
        self._index: dict[str, RecentIds] | None = None
        self._acked: dict[str, dict[str, int]] = {}
        self._lock = threading.Lock()  # one load at a time
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def for_workspace(cls, ws: Workspace, warehouse: Warehouse) -> Loader:
        """A loader for the workspace's log (its own, or the NATS stream that ``[log] url``
        names: a ``StreamLoader``), with ``[loader] dedup_window`` from nerve.toml
        (``"24h"``, ``"7d"`` (the default), or ``"all"`` for the whole table) and
        ``dedup_index_rows`` (message_ids kept in memory per table, 12 bytes each)."""
        section = ws.config.raw.get("loader", {})
        section = section if isinstance(section, dict) else {}
        window: timedelta | None = DEFAULT_DEDUP_WINDOW
        if "dedup_window" in section:
            window = parse_window(section["dedup_window"],
                                  f"{ws.root / 'nerve.toml'}: [loader] dedup_window")
        rows = section.get("dedup_index_rows", DEFAULT_CAPACITY)
        if not isinstance(rows, int) or isinstance(rows, bool) or rows < 0:
            raise WorkspaceError(f"{ws.root / 'nerve.toml'}: [loader] dedup_index_rows: "
                                 f"expected a whole number >= 0, got {rows!r}")
        settings = StreamSettings.from_workspace(ws)
        if settings is not None:  # the log is a NATS JetStream stream
            from nerve.loader._stream import StreamLoader  # noqa: PLC0415 - avoids a cycle

            return StreamLoader(settings, warehouse, rejected_dir=ws.data_dir / "rejected",
                                dedup_window=window, dedup_index_rows=rows)
        return cls(ws.log_dir, warehouse, dedup_window=window, dedup_index_rows=rows)

    # ------------------------------------------------------------------ one pass

    def load_once(self) -> LoadStats:
        """Load everything durable in the log now; return what this pass did.

        Every writer's new frames go into the same commits (up to ``max_rows`` rows
        each): with one writer per server process, committing writers apart made each
        commit smaller, and DuckDB's cost per row grows as commits shrink.
        """
        with self._lock:
            self._prepare()
            stats = LoadStats()
            try:
                self._load(stats)
            finally:
                self.totals.add(stats)  # what committed counts, even if a later step failed
            return stats

    def backlog_bytes(self) -> int:
        """Bytes of the log not loaded yet (what the pace and the backlog bound see)."""
        return backlog_bytes(self.log_dir)

    def _load(self, stats: LoadStats) -> None:
        """One pass over every writer's segments (the lock is held)."""
        offsets = read_offsets(self._cursor)
        pending = _Pending()
        read_segments: list[tuple[Segment, SegmentRead]] = []
        acked: dict[str, dict[str, int]] = {}
        for writer in writer_ids(self.log_dir):
            acked[writer] = {}
            for segment in list_segments(self.log_dir, writer):
                start = offsets.get((writer, segment.name), 0)
                try:
                    read = read_segment(segment.path, start)
                except FileNotFoundError:  # the writer removed an empty torn segment
                    continue
                position = start  # where the next frame starts
                for end, batch in read.batches:
                    if pending.add(segment, position, end, batch) >= self.max_rows:
                        self._flush(pending, stats)
                    position = end
                # committed, or pending: a pass over a long backlog must not keep
                # every batch it read
                read.batches.clear()
                read_segments.append((segment, read))
                acked[writer][segment.name] = max(start, read.end)
        self._flush(pending, stats)
        for segment, read in read_segments:  # every frame read is committed now
            self._finish(segment, read, stats)
        for writer, acks in acked.items():
            if self._acked.get(writer) != acks:  # a file write: only on change
                acknowledge(self.log_dir, writer, acks)
                self._acked[writer] = acks

    def _flush(self, pending: _Pending, stats: LoadStats) -> None:
        """Commit the frames read so far, of every segment, in one transaction."""
        parts = pending.take()
        if not parts:
            return
        try:
            stats.add(self._commit([LogRange(segment.writer, segment.name, start,
                                             frames[-1][0], [b for _, b in frames])
                                    for segment, start, frames in parts]))
        except DATA_ERRORS:  # find the frames the warehouse refuses, segment by segment
            for segment, start, frames in parts:
                self._commit_frames(segment, frames, start, stats)

    def _finish(self, segment: Segment, read: SegmentRead, stats: LoadStats) -> None:
        """A sealed segment is done once loaded: delete it; or, with a damaged frame, copy
        the whole frames after it to a new segment (loaded next) and set it aside."""
        if not segment.sealed:
            self._finish_abandoned(segment, read, stats)
            return
        if read.tail is Tail.CLEAN:
            self._retire(segment)
            stats.segments_done += 1
        else:
            salvage_sealed(segment.path, read.end)
            set_aside(segment.path, f"{read.tail.value} frame at offset {read.end} "
                      "in a sealed segment (loaded up to there)")

    def _finish_abandoned(self, segment: Segment, read: SegmentRead,
                          stats: LoadStats) -> None:
        """The newest segment of a writer that is gone (stopped, or killed) is sealed too:
        once loaded, delete it, so that a stopped server's last events (a forgotten
        user's among them) do not stay in the log until the next start.

        Under the writer's lock (a writer starting meanwhile waits for it), a torn tail is
        cut first, as the writer would at its restart; a segment that grew since it was
        read (its writer appended, then stopped) is loaded by the next pass.
        """
        with abandoned(self.log_dir, segment.writer) as gone:
            if not gone:
                return
            if read.tail is not Tail.CLEAN:
                recover_segment(segment.path)
            try:
                size = segment.path.stat().st_size
            except FileNotFoundError:  # no whole frame in it: the recovery removed it
                size = 0
            if size <= read.end:
                self._retire(segment)
                stats.segments_done += 1
            elif read.tail is Tail.CORRUPT:  # frames that verify but do not decode
                set_aside(segment.path, f"{read.tail.value} frame at offset {read.end} "
                          "in the last segment of a writer that is gone (loaded up to there)")

    def _commit_frames(self, segment: Segment, frames: list[tuple[int, pa.RecordBatch]],
                       start: int, stats: LoadStats) -> int:
        """Commit frames of one segment read from ``start``; the offset reached.

        When the warehouse refuses the rows themselves (a value a column cannot take: a
        bug upstream), retrying cannot help and would stall the whole log behind them.
        The frames are then loaded one by one, and a frame that still fails is set aside
        as an Arrow file next to the log, counted as ``rejected`` in the ledger.
        """
        end = frames[-1][0]
        try:
            stats.add(self._commit([LogRange(segment.writer, segment.name, start, end,
                                             [b for _, b in frames])]))
        except DATA_ERRORS as exc:
            if len(frames) == 1:
                stats.add(self._reject(segment, frames[0][1], start, end, exc))
                return end
            position = start
            for frame in frames:
                position = self._commit_frames(segment, [frame], position, stats)
        return end

    @contextmanager
    def exclusive(self) -> Iterator[Any]:
        """The loader's warehouse cursor, with no load running meanwhile (for deletes:
        ``nerve.erasure``). Deleted rows' ids stay in the dedup index, which costs at
        most a needless probe (``_recent.py``)."""
        with self._lock:
            if self._cursor is None:
                self._cursor = self.warehouse.cursor()
            yield self._cursor

    @property
    def dedup_index_ids(self) -> int | None:
        """message_ids held in the index of the dedup window (None: not built yet)."""
        index = self._index
        return None if index is None else sum(r.size for r in index.values())

    def _prepare(self) -> None:
        """The loader's cursor, and its index of the window's message_ids (once)."""
        if self._cursor is None:
            self._cursor = self.warehouse.cursor()
        if not self._index and self.dedup_index_rows:  # emptied: a commit was not indexed
            self._index = self._build_index()

    def _commit(self, ranges: list[LogRange]) -> LoadStats:
        stats = commit_ranges(self._cursor, ranges, dedup_window=self.dedup_window,
                              index=self._index)
        log.debug("loaded %s: %s", ", ".join(f"{r.writer}/{r.segment} [{r.start_offset}, "
                                              f"{r.end_offset})" for r in ranges), stats)
        return stats

    def _build_index(self) -> dict[str, RecentIds]:
        """Index the message_ids received within the window, as of now (docs/storage.md)."""
        started = time.monotonic()
        # an hour more than the window: the window of rows received a little before now
        # (a backlog) is then indexed too, and their loads need no full probe of the rest
        since = (None if self.dedup_window is None
                 else as_micros(datetime.now(UTC) - self.dedup_window - timedelta(hours=1)))
        index = {table: RecentIds.build(self._cursor, table, since, self.dedup_index_rows)
                 for table in ("events", "quarantine")}
        log.info("loader: indexed the message_ids of the dedup window in %.1f s: %s",
                 time.monotonic() - started,
                 ", ".join(f"{t} {r.size:,}" + ("" if r.covered_from == since else
                                                 " (the window's older rows not indexed)")
                           for t, r in index.items()))
        return index

    def _reject(self, segment: Segment, batch: pa.RecordBatch, start: int, end: int,
                exc: BaseException) -> LoadStats:
        """Keep a batch the warehouse refuses in ``<segment>.rejected-<offset>.arrow``."""
        path = segment.path.with_name(f"{segment.name}.rejected-{start}.arrow")
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, batch.schema) as out:
            out.write_batch(batch)
        with path.open("rb+") as f:
            os.fsync(f.fileno())
        log.error("%s [%d, %d): the warehouse refused %d rows (%s); kept in %s",
                  segment.path, start, end, batch.num_rows, str(exc).splitlines()[0], path)
        return self._commit([LogRange(segment.writer, segment.name, start, end, [],
                                      rejected=batch.num_rows)])

    def _retire(self, segment: Segment) -> None:
        """Delete a fully loaded segment, then forget its offset."""
        segment.path.unlink(missing_ok=True)
        fsync_dir(segment.path.parent)  # gone for good before its offset is forgotten
        self._cursor.execute("DELETE FROM log_offsets WHERE writer = ? AND segment = ?",
                             [segment.writer, segment.name])

    # ------------------------------------------------------------------ background

    def start(self, interval: float = 0.25, *, pace: Pace | None = None,
              idle: bool = False) -> None:
        """Load in a background thread until ``stop``: every ``interval`` seconds while
        traffic is light, in bigger commits while the log grows fast (``Pace``).

        ``idle`` runs the thread under Linux's ``SCHED_IDLE`` policy (where that is
        refused, at nice 19): it gets only the CPU time that no other thread wants, so
        processes taking events come first and the loader catches up in their gaps.
        Only for a process that does not take events itself: a thread that holds the GIL
        while waiting for the CPU would stall the other threads of its process.
        """
        if self._thread is not None:
            raise RuntimeError("loader already started")
        self._stop.clear()
        pace = pace or Pace(interval=interval, max_delay=3 * interval)
        self._thread = threading.Thread(target=self._run, args=(pace, idle),
                                        name="nerve-loader", daemon=True)
        self._thread.start()

    def _run(self, pace: Pace, idle: bool) -> None:
        if idle:
            yield_cpu()
        poll = min(_POLL_SECONDS, pace.interval)
        backoff = poll
        try:  # before the first load, so that the pace does not count it as one
            with self._lock:
                self._prepare()
        except Exception:  # the first load tries again, and reports it
            log.exception("loader: indexing the dedup window failed")
        while not self._stop.is_set():
            try:
                if pace.due(self.backlog_bytes(), time.monotonic()):
                    started = time.monotonic()
                    stats = self.load_once()
                    finished = time.monotonic()
                    self.last_load_seconds = took = finished - started
                    self.last_probe_share = min(1.0, stats.probe_seconds / took) if took else 0.0
                    self._warn_if_slow(stats, took)
                    pace.loaded(finished, took=took)
                self.last_error, backoff = None, poll
            except TransientError as exc:  # an outage that says what it is: no traceback
                self.last_error = exc
                log.warning("loader: %s; retrying in %.1fs", exc, backoff)
                backoff = min(max(backoff, pace.interval) * 2, 30.0)
            except Exception as exc:
                self.last_error = exc
                if "No space left on device" in str(exc):  # DuckDB's IO errors carry no errno
                    # a known condition, not a bug: one line (a traceback every retry
                    # buried it), saying what to do
                    log.error("loader: the warehouse's disk is full (%s); the log keeps the "
                              "events until they load: free space on it, or move the "
                              "warehouse ([warehouse] url); retrying in %.1fs",
                              str(exc).splitlines()[0], backoff)
                else:
                    log.exception("loader: load failed; retrying in %.1fs", backoff)
                backoff = min(max(backoff, pace.interval) * 2, 30.0)
            self._stop.wait(backoff)

    def _warn_if_slow(self, stats: LoadStats, seconds: float) -> None:
        """Say once when the dedup probe is most of a slow load: the window holds many rows
        the index does not."""
        if (self._warned_slow or seconds < _SLOW_LOAD_SECONDS
                or stats.probe_seconds < _PROBE_SHARE * seconds):
            return
        self._warned_slow = True
        window = ("all: the whole table" if self.dedup_window is None
                  else f"{self.dedup_window.total_seconds() / 3600:g} hours")
        log.warning("loader: a load of %d rows took %.1f s, %.0f%% of it looking for copies of "
                    "its message_ids among the rows received within the dedup window (%s) "
                    "that its index of loaded ids does not hold: every one of them is read, "
                    "however few rows the load brings. Loads now wait longer between them "
                    "and rows reach the warehouse later. A shorter window ([loader] "
                    "dedup_window in nerve.toml) or a larger index ([loader] "
                    "dedup_index_rows, now %s; 12 bytes of memory each) makes loads "
                    "cheaper; docs/storage.md says how to size them", stats.rows_in, seconds,
                    100 * stats.probe_seconds / seconds, window, f"{self.dedup_index_rows:,}")

    def stop(self) -> None:
        """Stop the background thread after a final drain of the log."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        self.load_once()


class _Pending:
    """Frames read but not committed yet, per segment in reading order, and their rows."""

    def __init__(self) -> None:
        self.parts: list[tuple[Segment, int, list[tuple[int, pa.RecordBatch]]]] = []
        self.rows = 0

    def add(self, segment: Segment, start: int, end: int, batch: pa.RecordBatch) -> int:
        """Add the frame ``[start, end)`` of ``segment``; how many rows are held now."""
        if not self.parts or self.parts[-1][0] is not segment:
            self.parts.append((segment, start, []))
        self.parts[-1][2].append((end, batch))
        self.rows += batch.num_rows
        return self.rows

    def take(self) -> list[tuple[Segment, int, list[tuple[int, pa.RecordBatch]]]]:
        """Everything held, emptied."""
        parts, self.parts, self.rows = self.parts, [], 0
        return parts


def parse_window(value: object, where: str = "dedup_window") -> timedelta | None:
    """``"24h"``, ``"7d"``, ``"2w"`` as a timedelta; ``"all"`` as None (the whole table).

    >>> parse_window("24h"), parse_window("all")
    (datetime.timedelta(days=1), None)
    """
    try:
        return parse_span(value)
    except ValueError as exc:
        raise WorkspaceError(f"{where}: {exc}") from None

