"""Group commit: concurrent requests share one Arrow batch and one fsync; failures stay
with the request (or the round) that caused them. Real LogWriter, real files."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import anyio
import pyarrow as pa
import pytest

from nerve.collector import rows_to_record_batch
from nerve.envelope import ENVELOPE_FIELDS
from nerve.log import LogWriter, list_segments, read_segment
from nerve.server._commit import GroupCommit


def row(message_id: str, **fields: Any) -> tuple[Any, ...]:
    values: dict[str, Any] = dict.fromkeys(ENVELOPE_FIELDS)
    values.update(message_id=message_id, type="track", event="e", user_id="u",
                  timestamp=1_790_000_000_000_000, received_at=1_790_000_000_000_000,
                  properties="{}", context="{}", source="server", historical=False)
    values.update(fields)
    return tuple(values[name] for name in ENVELOPE_FIELDS)


def logged(log_dir: Path, writer: str = "w") -> list[pa.RecordBatch]:
    batches = []
    for segment in list_segments(log_dir, writer):
        batches += [batch for _, batch in read_segment(segment.path, 0).batches]
    return batches


def test_concurrent_requests_share_rounds_and_every_row_is_durable(tmp_path: Path) -> None:
    log = LogWriter(tmp_path / "log", "w")
    commit = GroupCommit(log)

    async def main() -> None:
        await asyncio.gather(*(commit.commit([row(f"r{r}-{i}") for i in range(10)])
                               for r in range(30)))

    anyio.run(main)
    assert log.fsyncs == commit.rounds  # one fsync per round
    assert commit.rounds < 30  # requests that arrived during a round shared the next
    batches = logged(tmp_path / "log")
    assert len(batches) == commit.rounds  # one frame per round, not per request
    ids = [m for b in batches for m in b.column("message_id").to_pylist()]
    assert sorted(ids) == sorted(f"r{r}-{i}" for r in range(30) for i in range(10))
    log.close()


def test_a_request_arrow_refuses_fails_alone(tmp_path: Path) -> None:
    log = LogWriter(tmp_path / "log", "w")
    commit = GroupCommit(log)
    outcomes: dict[str, BaseException | None] = {}

    async def send(name: str, rows: list[tuple[Any, ...]]) -> None:
        try:
            await commit.commit(rows)
            outcomes[name] = None
        except Exception as exc:  # noqa: BLE001 - recorded for the assertions
            outcomes[name] = exc

    async def main() -> None:
        # all three join one round: the first starts it, the others wait behind it
        await asyncio.gather(send("good-1", [row("g1")]),
                             send("bad", [row("b1", timestamp="not a time")]),
                             send("good-2", [row("g2")]))

    anyio.run(main)
    assert outcomes["good-1"] is None
    assert outcomes["good-2"] is None
    assert isinstance(outcomes["bad"], pa.ArrowException | TypeError | ValueError)
    ids = [m for b in logged(tmp_path / "log") for m in b.column("message_id").to_pylist()]
    assert sorted(ids) == ["g1", "g2"]  # nothing of the refused request was written
    log.close()


class FailingSync:
    """A log whose fsync fails (a real full disk is the fault tests' job)."""

    def __init__(self) -> None:
        self.appended: list[pa.RecordBatch] = []

    def append(self, batch: pa.RecordBatch) -> None:
        self.appended.append(batch)

    def sync(self) -> None:
        raise OSError(28, "No space left on device")

    def close(self) -> None:
        pass


def test_a_failed_fsync_fails_every_request_of_its_round() -> None:
    log = FailingSync()
    commit = GroupCommit(log)

    async def main() -> list[BaseException | None]:
        return list(await asyncio.gather(*(commit.commit([row(f"m{i}")]) for i in range(5)),
                                         return_exceptions=True))

    results = anyio.run(main)
    assert all(isinstance(r, OSError) and r.errno == 28 for r in results)
    assert commit.rounds == 0


def test_the_round_batch_equals_the_per_request_batches(tmp_path: Path) -> None:
    parts = [[row(f"a{i}", event=None, type="identify", traits='{"plan":"pro"}')
              for i in range(3)], [row("b0", violations='[{"rule":"x"}]')]]
    merged = rows_to_record_batch([r for part in parts for r in part])
    separate = pa.Table.from_batches([rows_to_record_batch(p) for p in parts])
    assert pa.Table.from_batches([merged]).equals(separate)


@pytest.mark.parametrize("rows", [[], [row("only")]])
def test_a_round_without_rows_still_syncs(tmp_path: Path, rows: list[tuple[Any, ...]]) -> None:
    log = LogWriter(tmp_path / "log", "w")
    commit = GroupCommit(log)

    async def main() -> None:
        await commit.commit(rows)
        await commit.sync()  # a round with nothing to append still syncs

    anyio.run(main)
    ids = [m for b in logged(tmp_path / "log") for m in b.column("message_id").to_pylist()]
    assert ids == [r[0] for r in rows]
    log.close()


@pytest.mark.parametrize("interval", [0.0, 0.3])
def test_rounds_are_spaced_so_staggered_requests_share_one(tmp_path: Path,
                                                           interval: float) -> None:
    """Requests arriving one after another while a round is being spaced join it; with
    no spacing each finds the writer idle and gets a round (and an fsync) of its own."""
    log = LogWriter(tmp_path / "log", "w")
    commit = GroupCommit(log, min_interval=interval)

    async def main() -> None:
        await commit.commit([row("first")])  # its round starts the interval
        later = []
        for i in range(5):  # arrive one by one, each after the previous was written
            later.append(asyncio.create_task(commit.commit([row(f"later-{i}")])))
            await asyncio.sleep(0.02 if interval else 0)
            if not interval:
                await later[-1]
        await asyncio.gather(*later)

    anyio.run(main)
    assert commit.rounds == (2 if interval else 6)
    assert log.fsyncs == commit.rounds
    ids = [m for b in logged(tmp_path / "log") for m in b.column("message_id").to_pylist()]
    assert sorted(ids) == sorted(["first", *(f"later-{i}" for i in range(5))])
    log.close()


def test_an_idle_writer_writes_at_once(tmp_path: Path) -> None:
    """The spacing only delays a round that follows another closely: a request after a
    quiet spell longer than the interval is not held back."""
    log = LogWriter(tmp_path / "log", "w")
    commit = GroupCommit(log, min_interval=60.0)

    async def main() -> None:
        with anyio.fail_after(30):  # a held-back first round would wait 60 s
            await commit.commit([row("alone")])

    anyio.run(main)
    assert commit.rounds == 1
    log.close()


def test_a_request_cancelled_mid_round_leaves_the_round_to_the_others(tmp_path: Path) -> None:
    """A client that goes away cancels its own wait, not the round: the others are
    answered, and its rows (handed over already) are written all the same."""
    log = LogWriter(tmp_path / "log", "w")
    commit = GroupCommit(log)
    answered: list[str] = []

    async def send(name: str) -> None:
        await commit.commit([row(f"{name}-{i}") for i in range(5)])
        answered.append(name)

    async def main() -> None:
        tasks = {name: asyncio.create_task(send(name)) for name in ("a", "gone", "b")}
        await asyncio.sleep(0)  # all three are pending in the round now
        tasks["gone"].cancel()
        await asyncio.gather(tasks["a"], tasks["b"])
        with pytest.raises(asyncio.CancelledError):
            await tasks["gone"]
        await commit.sync()  # the round is over, and the next one works

    asyncio.run(main())
    assert sorted(answered) == ["a", "b"]
    ids = [m for b in logged(tmp_path / "log") for m in b.column("message_id").to_pylist()]
    assert sorted(ids) == sorted(f"{n}-{i}" for n in ("a", "gone", "b") for i in range(5))
    log.close()


def _tallies(log_dir: Path) -> list[dict[str, Any]]:
    import orjson

    return [orjson.loads(text) for batch in logged(log_dir) for type_, text in
            zip(batch.column("type").to_pylist(), batch.column("properties").to_pylist(),
                strict=True) if type_ == "nerve:tally"]


def test_consent_drops_ride_in_their_round_and_refusals_in_the_next(tmp_path: Path) -> None:
    log = LogWriter(tmp_path / "log", "w")
    commit = GroupCommit(log)

    async def main() -> None:
        commit.refused(401, "unauthorized")
        await asyncio.gather(
            commit.commit([row("a")], {("consent", "signup"): 2}, "web"),
            commit.commit([], {("consent", "app_opened"): 3}, "ios"))  # all withheld
        commit.refused(429, "rate_limited")
        commit.flush_tally()  # at stop: no round is left to carry it

    asyncio.run(main())
    log.close()
    assert _tallies(tmp_path / "log") == [
        {"consent": {"ios": {"app_opened": 3}, "web": {"signup": 2}},
         "refused": {"401": {"unauthorized": 1}}},
        {"refused": {"429": {"rate_limited": 1}}}]
    assert commit.rounds == 1  # one row for the round's counts, not one per request


def test_a_refusal_alone_is_written_within_a_second(tmp_path: Path) -> None:
    log = LogWriter(tmp_path / "log", "w")
    commit = GroupCommit(log)

    async def main() -> None:
        commit.refused(401, "unauthorized")
        commit.refused(401, "unauthorized")
        while commit.rounds == 0:  # the flush runs a round of its own
            await asyncio.sleep(0.05)

    asyncio.run(asyncio.wait_for(main(), 30))
    log.close()
    assert _tallies(tmp_path / "log") == [{"refused": {"401": {"unauthorized": 2}}}]
