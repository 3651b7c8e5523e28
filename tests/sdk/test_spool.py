"""The on-disk spool: unsent events survive a killed process and are sent exactly once."""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nerve.sdk import Client, DeliveryError, QueueFullError, _spool
from nerve.sdk._spool import SpoolQueue

Scripted = Callable[..., Any]
KEY = "test-write-key"
FAST = {"backoff_base": 0.01, "backoff_max": 0.05, "flush_interval": 60}


def dead_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def queue_in_a_child_and_kill_it(spool: Path, count: int, *, key: str = KEY) -> list[str]:
    """A child process queues events while the server is down, then dies by SIGKILL."""
    code = textwrap.dedent(f"""
        import sys, time
        from nerve.sdk import Client
        client = Client({key!r}, {dead_url()!r}, spool_dir={str(spool)!r}, max_retries=0,
                        flush_interval=0.05, backoff_max=0.05, on_error=lambda e, b: None)
        for i in range({count}):
            print(client.track("Offline Event", {{"i": i}}, user_id="u1"), flush=True)
        print("queued", flush=True)
        time.sleep(600)
    """)
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    ids = []
    for line in child.stdout:
        if line.strip() == "queued":
            break
        ids.append(line.strip())
    child.kill()  # SIGKILL: no atexit, no flush, no close
    child.wait()
    child.stdout.close()
    assert len(ids) == count
    return ids


def test_events_of_a_killed_process_are_sent_once_by_the_next_client(
        tmp_path: Path, scripted: Scripted) -> None:
    spool = tmp_path / "spool"
    ids = queue_in_a_child_and_kill_it(spool, 250)
    server = scripted()
    client = Client(KEY, server.url, spool_dir=spool, max_batch_size=100, **FAST)
    assert client.stats().recovered == 250
    assert client.flush()
    assert [e["messageId"] for e in server.events()] == ids  # all, once, in order
    assert [e["properties"]["i"] for e in server.events()] == list(range(250))
    client.shutdown()
    assert list(spool.iterdir()) == []  # settled segments are deleted
    again = Client(KEY, server.url, spool_dir=spool, **FAST)
    assert again.stats().recovered == 0
    again.shutdown()
    assert len(server.events()) == 250


def test_a_torn_last_line_is_ignored(tmp_path: Path, scripted: Scripted) -> None:
    spool = tmp_path / "spool"
    queue_in_a_child_and_kill_it(spool, 3)
    (segment,) = spool.glob("*.spool")
    with segment.open("ab") as f:  # a crash in the middle of writing a fourth event
        f.write(b'{"type":"track","event":"Offline Ev')
    server = scripted()
    with Client(KEY, server.url, spool_dir=spool, **FAST) as client:
        assert client.stats().recovered == 3
    assert [e["properties"]["i"] for e in server.events()] == [0, 1, 2]


def test_acknowledged_events_are_not_sent_again(tmp_path: Path) -> None:
    first = SpoolQueue(tmp_path, identity="k")
    for i in range(5):
        first.put(orjson.dumps({"i": i}))
    lines, token = first.peek(2, 1 << 20)
    assert [orjson.loads(x)["i"] for x in lines] == [0, 1]
    first.commit(token)
    first.sync()
    assert len(first) == 3
    first.close()  # like a process that stopped with events unsent
    second = SpoolQueue(tmp_path, identity="k")
    assert (second.recovered, len(second)) == (3, 3)
    lines, token = second.peek(10, 1 << 20)
    assert [orjson.loads(x)["i"] for x in lines] == [2, 3, 4]
    second.commit(token)
    second.close()
    assert list(tmp_path.iterdir()) == []


def test_a_live_client_keeps_its_segments(tmp_path: Path) -> None:
    owner = SpoolQueue(tmp_path, identity="k")
    owner.put(b'{"i":0}')
    other = SpoolQueue(tmp_path, identity="k")  # another process's client, same folder
    assert other.recovered == 0  # the owner's flock keeps its segment
    other.close()
    owner.close()
    heir = SpoolQueue(tmp_path, identity="k")
    assert heir.recovered == 1
    heir.close()


def test_another_write_keys_segments_are_left_alone(tmp_path: Path, scripted: Scripted) -> None:
    spool = tmp_path / "spool"
    queue_in_a_child_and_kill_it(spool, 2, key="some-other-key")
    server = scripted()
    with Client(KEY, server.url, spool_dir=spool, **FAST) as client:
        assert client.stats().recovered == 0
    assert server.requests == []
    assert len(list(spool.glob("*.spool"))) == 1


def test_undelivered_batches_stay_in_the_spool(tmp_path: Path, scripted: Scripted) -> None:
    spool = tmp_path / "spool"
    down = scripted([503] * 100)
    errors: list[Any] = []
    client = Client(KEY, down.url, spool_dir=spool, max_retries=1,
                    on_error=lambda exc, batch: errors.append(exc), **FAST)
    message_id = client.track("e", user_id="u")
    assert not client.flush()
    assert isinstance(errors[0], DeliveryError)
    assert client.stats().queued == 1  # kept, unlike the in-memory queue
    assert not client.shutdown()
    up = scripted()
    with Client(KEY, up.url, spool_dir=spool, **FAST) as heir:
        assert heir.stats().recovered == 1
    assert [e["messageId"] for e in up.events()] == [message_id]


def test_segments_rotate_and_all_are_delivered(tmp_path: Path, scripted: Scripted,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_spool, "ROTATE_BYTES", 2_000)
    spool = tmp_path / "spool"
    server = scripted()
    client = Client(KEY, dead_url(), spool_dir=spool, max_retries=0, **FAST,
                    on_error=lambda exc, batch: None)
    for i in range(60):
        client.track("e", {"i": i}, user_id="u")
    assert len(list(spool.glob("*.spool"))) > 2
    client.shutdown()
    with Client(KEY, server.url, spool_dir=spool, **FAST) as heir:
        assert heir.stats().recovered == 60
    assert [e["properties"]["i"] for e in server.events()] == list(range(60))
    assert list(spool.iterdir()) == []


def test_the_bound_applies_to_the_spool(tmp_path: Path) -> None:
    errors: list[Any] = []
    client = Client(KEY, dead_url(), spool_dir=tmp_path, max_queue_size=3, max_retries=0,
                    on_error=lambda exc, batch: errors.append(exc), **FAST)
    for i in range(5):
        client.track("e", {"i": i}, user_id="u")
    assert [type(e) for e in errors] == [QueueFullError, QueueFullError]
    assert client.stats().queued == 3
    client.shutdown()


def crash(queue: SpoolQueue) -> None:
    """Drop a queue as a killed process would: descriptors closed, nothing tidied up."""
    for seg in list(queue._segments):
        _spool._close(seg)
    queue._segments.clear()


operations = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.integers(1, 30)),
        st.tuples(st.just("send"), st.integers(1, 40)),
        st.tuples(st.just("crash"), st.booleans()),  # with or without a torn line
        st.tuples(st.just("close"), st.just(0)),
    ),
    max_size=25,
)


@settings(max_examples=40, deadline=None)
@given(ops=operations)
def test_the_spool_always_holds_exactly_the_unsettled_messages(
        ops: list[tuple[str, Any]]) -> None:
    rotate = _spool.ROTATE_BYTES
    _spool.ROTATE_BYTES = 300  # a new segment every few messages
    try:
        with tempfile.TemporaryDirectory() as folder:
            queue = SpoolQueue(folder, identity="k")
            pending: list[int] = []  # the model: unsettled message numbers, oldest first
            counter = 0
            for op, arg in ops:
                if op == "put":
                    for _ in range(arg):
                        queue.put(orjson.dumps({"n": counter}))
                        pending.append(counter)
                        counter += 1
                elif op == "send":
                    lines, token = queue.peek(arg, 1 << 20)
                    assert [orjson.loads(x)["n"] for x in lines] == pending[:len(lines)]
                    assert lines or not pending
                    queue.commit(token)
                    del pending[:len(lines)]
                else:
                    if op == "crash":
                        writable = [s for s in queue._segments if s.writable]
                        crash(queue)
                        if arg and writable:
                            with writable[0].path.open("ab") as f:
                                f.write(b'{"n": 99999, "torn')
                    else:
                        queue.close()
                    queue = SpoolQueue(folder, identity="k")
                    assert queue.recovered == len(pending)
                assert len(queue) == len(pending)
            queue.close()
    finally:
        _spool.ROTATE_BYTES = rotate


def test_a_split_batch_with_an_undelivered_half_stays_whole_in_the_spool(
        scripted: Scripted, tmp_path: Path) -> None:
    server = scripted([413, 200, 503, 503])  # first half delivered, second half not
    errors: list[Any] = []
    client = Client(KEY, server.url, spool_dir=tmp_path / "spool", max_retries=1,
                    on_error=lambda exc, batch: errors.append((exc, batch)), **FAST)
    for i in range(4):
        client.track("e", {"i": i}, user_id="u")
    assert not client.flush()
    ((exc, batch),) = errors
    assert isinstance(exc, DeliveryError)
    assert [e["properties"]["i"] for e in batch] == [2, 3]  # only the undelivered half
    stats = client.stats()
    assert (stats.queued, stats.delivered, stats.undelivered) == (4, 0, 2)
    assert client.flush()  # the whole batch again: the delivered half keeps its ids
    assert [e["properties"]["i"] for e in server.requests[-1].batch] == [0, 1, 2, 3]
    stats = client.stats()
    assert (stats.queued, stats.delivered, stats.undelivered) == (0, 4, 2)
    assert client.shutdown()
