"""The loader of a log on NATS JetStream: by stream sequence, committed with the rows."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pyarrow as pa

from nerve.errors import TransientError, UserError
from nerve.loader._commit import LoadStats, LogRange, read_offsets
from nerve.loader._loader import Loader
from nerve.log import StreamLink, StreamReader, StreamSettings
from nerve.log._stream import StreamMessage
from nerve.warehouse import DATA_ERRORS

if TYPE_CHECKING:
    from nerve.warehouse import Warehouse

__all__ = ["LEASE_BUCKET", "LEASE_SECONDS", "StreamLoader"]

log = logging.getLogger("nerve.loader")

#: the key-value bucket where each stream's loader holds its claim
LEASE_BUCKET = "nerve_loaders"
#: seconds a claim lasts without renewal (the bucket's TTL); renewed every quarter of it
LEASE_SECONDS = 60.0


class StreamLoader(Loader):
    """Moves the stream's messages into the warehouse, exactly once.

    Its place is the next stream sequence to load, kept in ``log_offsets`` under
    (``jetstream``, the stream's name) and committed in the same transaction as the rows
    and their ``loads`` ledger row, so a crash anywhere resumes at a message boundary.
    Once a commit is done, the messages it loaded are purged from the stream: the
    stream then holds only what is not loaded yet, which is what the backlog bound and
    ``nerve forget`` rely on. A purge that fails is done by the next one.

    A message that does not decode (not written by nerve) is kept in
    ``rejected_dir/<stream>-<seq>.msg`` and skipped; rows the warehouse refuses are kept
    there as an Arrow file and counted as ``rejected`` in the ledger.

    A stream has one loader: two would each purge what the other has not loaded. So a
    loader claims the stream in a JetStream key-value bucket (``nerve_loaders``, key: the
    stream's name) before it loads, renews the claim while it runs, and gives it up when
    it stops. A claim names its warehouse (host and file), so the same server started
    again takes it back at once, while a loader of another warehouse is refused
    (``UserError``) until the claim lapses, ``LEASE_SECONDS`` after its holder stopped
    renewing it.
    """

    def __init__(self, settings: StreamSettings, warehouse: Warehouse, *,
                 rejected_dir: Path, **kwargs: Any) -> None:
        # the base class's log folder is only where rejected messages go: the log is the
        # stream, and the methods that read segments are replaced below
        super().__init__(rejected_dir, warehouse, **kwargs)
        self.settings = settings
        self.rejected_dir = Path(rejected_dir)
        self._reader: StreamReader | None = None
        self._connecting = threading.Lock()  # the pace's look and a load may race to it
        path = getattr(warehouse, "path", None) or getattr(warehouse, "url", "?")
        #: who holds the claim: this host and this warehouse (not the process, so that a
        #: restarted server takes its own claim back at once)
        self.owner = f"{socket.gethostname()}:{path}"
        self._claimed_at = float("-inf")
        #: when the stream this loader last saw was created: another time means made again
        self._created: Any = None

    def _stream(self) -> StreamReader:
        with self._connecting:
            if self._reader is None:
                self._reader = StreamReader(StreamLink(self.settings, name="nerve-loader"))
            return self._reader

    def backlog_bytes(self) -> int:
        # the pace looks several times a second, loads or not: the claim is renewed here
        link = self._reachable()
        try:
            if time.monotonic() - self._claimed_at > LEASE_SECONDS / 4:
                self.claim()
            return link.backlog_bytes()
        except TimeoutError as exc:  # the connection dropped after the look: the same
            raise self._unreachable() from exc

    def _reachable(self) -> StreamLink:
        """The stream's link; ``TransientError`` saying so while NATS is out of reach (a
        request then only ends in a timeout's traceback, after seconds)."""
        link = self._stream().link
        if not link.connected:
            raise self._unreachable()
        return link

    def _unreachable(self) -> TransientError:
        return TransientError(f"the NATS stream {self.settings.stream!r} is unreachable: "
                              "the connection is down (reconnecting); loading resumes once "
                              "NATS answers")

    def claim(self) -> None:
        """Claim the stream for this loader (or renew the claim); ``UserError`` naming the
        holder when another warehouse's loader has it."""
        link = self._stream().link
        link.run(self._claim(link), timeout=30)
        self._claimed_at = time.monotonic()

    async def _claim(self, link: StreamLink) -> None:
        from nats.js.errors import (  # noqa: PLC0415
            KeyDeletedError,
            KeyNotFoundError,
            KeyWrongLastSequenceError,
        )

        leases = await self._leases(link)
        key = self.settings.stream
        mine = orjson.dumps({"owner": self.owner, "pid": os.getpid(),
                             "since": datetime.now(UTC).isoformat(timespec="seconds")})
        for _ in range(3):  # a claim made between our look and our write: look again
            try:
                entry = await leases.get(key)
            except (KeyNotFoundError, KeyDeletedError):
                entry = None
            try:
                if entry is None or not entry.value:
                    await leases.create(key, mine)
                    return
                held = orjson.loads(entry.value)
                if held.get("owner") != self.owner:
                    raise UserError(
                        f"[log] stream {key!r} is loaded by another nerve serve "
                        f"({held.get('owner')}, pid {held.get('pid')}, since "
                        f"{held.get('since')}): a stream has one loading server, or each "
                        "would purge what the other has not loaded. Give this workspace "
                        "its own stream and subject in nerve.toml, or stop the other; "
                        f"its claim lapses {LEASE_SECONDS:g} s after it stops")
                await leases.update(key, mine, last=entry.revision)
                return
            except KeyWrongLastSequenceError:
                continue
        raise TransientError(f"[log] stream {key!r}: could not claim it for loading; "
                             "another loader keeps claiming it", retry_after=5)

    async def _leases(self, link: StreamLink) -> Any:
        from nats.js.api import KeyValueConfig  # noqa: PLC0415
        from nats.js.errors import BucketNotFoundError  # noqa: PLC0415

        try:
            return await link.js.key_value(LEASE_BUCKET)
        except BucketNotFoundError:
            return await link.js.create_key_value(KeyValueConfig(
                bucket=LEASE_BUCKET, ttl=LEASE_SECONDS, history=1,
                replicas=self.settings.replicas,
                description="which nerve serve loads each stream"))

    def _release(self) -> None:
        """Give the claim up (a successor need not wait for it to lapse)."""
        from nats.js.errors import (  # noqa: PLC0415
            KeyDeletedError,
            KeyNotFoundError,
            KeyWrongLastSequenceError,
        )

        async def release(link: StreamLink) -> None:
            leases = await self._leases(link)
            try:
                entry = await leases.get(self.settings.stream)
            except (KeyNotFoundError, KeyDeletedError):
                return  # lapsed already
            if entry.value and orjson.loads(entry.value).get("owner") == self.owner:
                # renewed or taken meanwhile: not ours to delete
                with contextlib.suppress(KeyWrongLastSequenceError):
                    await leases.delete(self.settings.stream, last=entry.revision)

        assert self._reader is not None
        try:
            self._reader.link.run(release(self._reader.link), timeout=10)
        except Exception as exc:  # noqa: BLE001 - it lapses by itself
            log.warning("loader: could not give up the claim on %s: %s",
                        self.settings.stream, exc)

    def _load(self, stats: LoadStats) -> None:
        self._reachable()
        self.claim()  # before any row: never load a stream another loader holds
        reader = self._stream()
        info = reader.link.stream_info()
        state = info.state
        # made again since the last look: its sequences restart at 1, and may already
        # have passed the committed one, which the checks below could not tell
        remade = info.created != self._created and self._created is not None
        self._created = info.created
        if not state.messages:
            return
        first, last = int(state.first_seq), int(state.last_seq)
        start = read_offsets(self._cursor).get(self.settings.offset_key)
        name = self.settings.stream
        if start is None:
            start = first
        elif remade:
            log.warning("loader: the stream %s was deleted and made again; loading it from "
                        "its start (message_ids already loaded are skipped as duplicates)",
                        name)
            start = first
        elif start > last + 1:
            log.warning("loader: the stream %s ends at sequence %d, before the %d it was "
                        "loaded up to: it was deleted and made again; loading it from its "
                        "start (message_ids already loaded are skipped as duplicates)",
                        name, last, start)
            start = first
        elif start < first:
            log.error("loader: messages %d to %d of the stream %s were removed before they "
                      "were loaded (purged by hand, or a limit of the stream's)",
                      start, first - 1, name)
            start = first
        while start <= last:
            messages = reader.read(start, last, self.max_rows)
            if not messages:
                break
            end = messages[-1].seq + 1
            self._commit_messages(start, end, messages, stats)
            try:
                reader.purge_below(end)
            except Exception as exc:  # noqa: BLE001 - loaded and committed: the next purge
                log.warning("loader: could not purge the loaded messages of %s: %s", name, exc)
            start = end

    def _commit_messages(self, start: int, end: int, messages: list[StreamMessage],
                         stats: LoadStats) -> None:
        """Commit the messages of sequences ``[start, end)``: all at once, or, when the
        warehouse refuses rows, one by one, setting aside what it still refuses."""
        writer, segment = self.settings.offset_key
        good = []
        for message in messages:
            if message.table is None:
                self._keep(message.seq, "msg", message.data)
                log.error("loader: message %d of %s is not a nerve batch; kept in %s",
                          message.seq, segment, self.rejected_dir)
            else:
                good.append(message)
        try:
            stats.add(self._commit([LogRange(writer, segment, start, end, _batches(good))]))
            return
        except DATA_ERRORS:
            pass
        position = start
        for message in good:
            assert message.table is not None
            upto = message.seq + 1
            try:
                stats.add(self._commit([LogRange(writer, segment, position, upto,
                                                 _batches([message]))]))
            except DATA_ERRORS as exc:
                path = self._keep(message.seq, "rejected.arrow", _arrow_file(message.table))
                log.error("loader: the warehouse refused the %d rows of message %d of %s "
                          "(%s); kept in %s", message.table.num_rows, message.seq, segment,
                          str(exc).splitlines()[0], path)
                stats.add(self._commit([LogRange(writer, segment, position, upto, [],
                                                 rejected=message.table.num_rows)]))
            position = upto
        if position < end:  # undecodable messages at the end: move past them
            stats.add(self._commit([LogRange(writer, segment, position, end, [])]))

    def _keep(self, seq: int, suffix: str, data: bytes) -> Path:
        """Write ``data`` for an operator to look at, durably, before moving past it."""
        self.rejected_dir.mkdir(parents=True, exist_ok=True)
        path = self.rejected_dir / f"{self.settings.stream}-{seq}.{suffix}"
        with path.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        return path

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            with self._connecting:
                if self._reader is not None:
                    if self._claimed_at > float("-inf"):
                        self._release()
                    self._reader.link.close()
                    self._reader = None


def _batches(messages: list[StreamMessage]) -> list[pa.RecordBatch]:
    return [batch for m in messages if m.table is not None for batch in m.table.to_batches()]


def _arrow_file(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as out:
        out.write_table(table)
    data: bytes = sink.getvalue().to_pybytes()
    return data
