"""Loader: drain every writer's log segments into the warehouse, in micro-batches."""

from __future__ import annotations

import logging
import os
import re
import threading
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from nerve.errors import WorkspaceError
from nerve.loader._commit import LoadStats, commit_load, read_offsets
from nerve.log import Segment, Tail, acknowledge, list_segments, read_segment, set_aside, writer_ids
from nerve.warehouse import DATA_ERRORS

if TYPE_CHECKING:
    from nerve.warehouse import Warehouse
    from nerve.workspace import Workspace

__all__ = ["DEFAULT_DEDUP_WINDOW", "Loader", "parse_window"]

log = logging.getLogger("nerve.loader")

#: how far back a resent message_id is recognised as a duplicate (docs/storage.md)
DEFAULT_DEDUP_WINDOW = timedelta(days=7)


class Loader:
    """Moves durable log batches into the warehouse, exactly once.

    Each commit holds the rows (deduplicated on ``message_id``), a ``loads`` ledger row
    and the segment's new offset, so a crash at any point leaves the warehouse at a
    frame boundary of the log; the next run resumes from there. Fully loaded segments
    that the writer has left behind are deleted.

    >>> loader = Loader(ws.log_dir, warehouse)        # doctest: +SKIP
    >>> loader.start()   # a background thread; loader.stop() drains and stops
    """

    def __init__(self, log_dir: Path, warehouse: Warehouse, *,
                 dedup_window: timedelta | None = DEFAULT_DEDUP_WINDOW,
                 max_rows: int = 200_000) -> None:
        self.log_dir = Path(log_dir)
        self.warehouse = warehouse
        self.dedup_window = dedup_window
        self.max_rows = max_rows
        #: everything loaded since this loader was created
        self.totals = LoadStats()
        #: the last error the background thread met (it keeps retrying), or None
        self.last_error: BaseException | None = None
        self._cursor: Any = None
        self._acked: dict[str, dict[str, int]] = {}
        self._lock = threading.Lock()  # one load at a time
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def for_workspace(cls, ws: Workspace, warehouse: Warehouse) -> Loader:
        """A loader for the workspace's log, with ``[loader] dedup_window`` from nerve.toml
        (``"24h"``, ``"7d"`` (the default), or ``"all"`` for the whole table)."""
        section = ws.config.raw.get("loader", {})
        window: timedelta | None = DEFAULT_DEDUP_WINDOW
        if isinstance(section, dict) and "dedup_window" in section:
            window = parse_window(section["dedup_window"],
                                  f"{ws.root / 'nerve.toml'}: [loader] dedup_window")
        return cls(ws.log_dir, warehouse, dedup_window=window)

    # ------------------------------------------------------------------ one pass

    def load_once(self) -> LoadStats:
        """Load everything durable in the log now; return what this pass did."""
        with self._lock:
            if self._cursor is None:
                self._cursor = self.warehouse.cursor()
            stats = LoadStats()
            try:
                offsets = read_offsets(self._cursor)
                for writer in writer_ids(self.log_dir):
                    acked: dict[str, int] = {}
                    for segment in list_segments(self.log_dir, writer):
                        start = offsets.get((writer, segment.name), 0)
                        end = self._load_segment(segment, start, stats)
                        if end is not None:
                            acked[segment.name] = end
                    if self._acked.get(writer) != acked:  # a file write: only on change
                        acknowledge(self.log_dir, writer, acked)
                        self._acked[writer] = acked
            finally:
                self.totals.add(stats)  # what committed counts, even if a later step failed
            return stats

    def _load_segment(self, segment: Segment, start: int, stats: LoadStats) -> int | None:
        """Load one segment from ``start``; the offset reached, or None if it is gone."""
        try:
            read = read_segment(segment.path, start)
        except FileNotFoundError:  # the writer removed an empty torn segment meanwhile
            return None
        position = start
        frames: list[tuple[int, pa.RecordBatch]] = []
        rows = 0
        for end, batch in read.batches:
            frames.append((end, batch))
            rows += batch.num_rows
            if rows >= self.max_rows:
                position = self._commit_frames(segment, frames, position, stats)
                frames, rows = [], 0
        if frames:
            position = self._commit_frames(segment, frames, position, stats)
        if segment.sealed:
            # nothing more will be appended: finish the segment
            if read.tail is Tail.CLEAN:
                self._retire(segment)
                stats.segments_done += 1
            else:
                set_aside(segment.path, f"{read.tail.value} frame at offset {read.end} "
                          "in a sealed segment (loaded up to there)")
        return max(position, read.end)

    def _commit_frames(self, segment: Segment, frames: list[tuple[int, pa.RecordBatch]],
                       start: int, stats: LoadStats) -> int:
        """Commit frames read from ``start``; the offset reached.

        When the warehouse refuses the rows themselves (a value a column cannot take: a
        bug upstream), retrying cannot help and would stall the whole log behind them.
        The frames are then loaded one by one, and a frame that still fails is set aside
        as an Arrow file next to the log, counted as ``rejected`` in the ledger.
        """
        end = frames[-1][0]
        try:
            stats.add(self._commit(segment, [b for _, b in frames], start, end))
        except DATA_ERRORS as exc:
            if len(frames) == 1:
                stats.add(self._reject(segment, frames[0][1], start, end, exc))
                return end
            position = start
            for frame in frames:
                position = self._commit_frames(segment, [frame], position, stats)
        return end

    def _commit(self, segment: Segment, batches: list[pa.RecordBatch], start: int,
                end: int, rejected: int = 0) -> LoadStats:
        stats = commit_load(self._cursor, batches, writer=segment.writer,
                            segment=segment.name, start_offset=start, end_offset=end,
                            dedup_window=self.dedup_window, rejected=rejected)
        log.debug("loaded %s/%s [%d, %d): %s", segment.writer, segment.name, start, end, stats)
        return stats

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
        return self._commit(segment, [], start, end, rejected=batch.num_rows)

    def _retire(self, segment: Segment) -> None:
        """Delete a fully loaded segment, then forget its offset."""
        segment.path.unlink(missing_ok=True)
        _fsync_dir(segment.path.parent)  # gone for good before its offset is forgotten
        self._cursor.execute("DELETE FROM log_offsets WHERE writer = ? AND segment = ?",
                             [segment.writer, segment.name])

    # ------------------------------------------------------------------ background

    def start(self, interval: float = 0.25) -> None:
        """Load in a background thread every ``interval`` seconds until ``stop``."""
        if self._thread is not None:
            raise RuntimeError("loader already started")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(interval,),
                                        name="nerve-loader", daemon=True)
        self._thread.start()

    def _run(self, interval: float) -> None:
        backoff = interval
        while not self._stop.is_set():
            try:
                self.load_once()
                self.last_error, backoff = None, interval
            except Exception as exc:
                self.last_error = exc
                log.exception("loader: load failed; retrying in %.1fs", backoff)
                backoff = min(backoff * 2, 30.0)
            self._stop.wait(backoff)

    def stop(self) -> None:
        """Stop the background thread after a final drain of the log."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        self.load_once()


_WINDOW = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_window(value: object, where: str = "dedup_window") -> timedelta | None:
    """``"24h"``, ``"7d"``, ``"2w"`` as a timedelta; ``"all"`` as None (the whole table).

    >>> parse_window("24h"), parse_window("all")
    (datetime.timedelta(days=1), None)
    """
    if isinstance(value, str) and value.strip().lower() == "all":
        return None
    match = _WINDOW.match(value) if isinstance(value, str) else None
    if match is None:
        raise WorkspaceError(f"{where}: expected a duration like 24h, 7d or 2w, or all; "
                             f"got {value!r}")
    return timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

