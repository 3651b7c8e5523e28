"""The client against a real HTTP server on loopback: batching, gzip, threads, the queue."""

from __future__ import annotations

import gzip
import math
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

import nerve.sdk
from nerve.sdk import (
    Client,
    ClosedError,
    ConfigError,
    InvalidMessageError,
    QueueFullError,
)

Errors = list[tuple[Exception, list[dict[str, Any]]]]
KEY = "test-write-key"
Scripted = Callable[..., Any]  # the scripted fixture (tests/sdk/conftest.py)


def collect() -> tuple[Errors, Callable[[Exception, list[dict[str, Any]]], None]]:
    errors: Errors = []
    return errors, lambda exc, batch: errors.append((exc, batch))


@pytest.mark.parametrize(("n", "size"), [(1, 100), (100, 100), (250, 100), (57, 10)])
def test_n_events_arrive_in_ceil_n_over_size_requests(
        scripted: Scripted, n: int, size: int) -> None:
    server = scripted()
    # a long interval: only full batches go before flush(), so the count is exact
    client = Client(KEY, server.url, max_batch_size=size, flush_interval=60)
    ids = [client.track("Product Viewed", {"i": i}, user_id=f"u{i % 7}") for i in range(n)]
    assert client.flush()
    assert len(server.requests) == math.ceil(n / size)
    assert all(len(r.batch) <= size for r in server.requests)
    assert [e["messageId"] for e in server.events()] == ids
    assert [e["properties"]["i"] for e in server.events()] == list(range(n))
    client.shutdown()


def test_requests_are_gzipped_and_authenticated(scripted: Scripted) -> None:
    server = scripted()
    with Client(KEY, server.url) as client:
        client.track("e", user_id="u")
    (request,) = server.requests
    assert request.path == "/v1/batch"
    assert request.headers["Content-Encoding"] == "gzip"
    assert orjson.loads(gzip.decompress(request.raw)) == request.body
    assert request.headers["Authorization"] == "Basic dGVzdC13cml0ZS1rZXk6"  # "test-write-key:"
    assert request.headers["User-Agent"].startswith("nerve-python/")
    assert request.headers["Content-Type"] == "application/json"
    sent_at = datetime.fromisoformat(request.body["sentAt"])
    assert sent_at.tzinfo is not None
    assert sent_at >= datetime.fromisoformat(request.batch[0]["timestamp"])
    assert "historical_import" not in request.body


def test_gzip_can_be_turned_off(scripted: Scripted) -> None:
    server = scripted()
    with Client(KEY, server.url, gzip=False) as client:
        client.track("e", user_id="u")
    assert "Content-Encoding" not in server.requests[0].headers
    assert orjson.loads(server.requests[0].raw)["batch"][0]["event"] == "e"


def test_historical_clients_mark_every_batch(scripted: Scripted) -> None:
    server = scripted()
    with Client(KEY, server.url, historical=True, max_batch_size=2) as client:
        for i in range(3):
            client.track("e", user_id="u", timestamp=datetime(2024, 1, i + 1, tzinfo=UTC))
    assert len(server.requests) == 2
    assert all(r.body["historical_import"] is True for r in server.requests)
    assert server.events()[2]["timestamp"] == "2024-01-03T00:00:00.000000+00:00"


def test_the_interval_sends_a_partial_batch_without_flush(
        scripted: Scripted) -> None:
    server = scripted()
    client = Client(KEY, server.url, flush_interval=0.05)
    client.track("e", user_id="u")
    arrived = threading.Event()
    for _ in range(200):  # up to 10 s, usually one interval
        if server.requests:
            arrived.set()
            break
        threading.Event().wait(0.05)
    assert arrived.is_set()
    client.shutdown()


def test_shutdown_flushes_everything(scripted: Scripted) -> None:
    server = scripted()
    client = Client(KEY, server.url, flush_interval=60, max_batch_size=50)
    for i in range(120):
        client.identify(f"u{i}", {"age_group": "65+"})
    assert client.shutdown()
    assert len(server.events()) == 120
    stats = client.stats()
    assert (stats.delivered, stats.queued, stats.requests) == (120, 0, 3)


def test_all_six_calls_on_the_wire(scripted: Scripted) -> None:
    server = scripted()
    with Client(KEY, server.url, context={"app": {"name": "shop"}}) as client:
        client.track("Order Completed", {"revenue": 9.99}, user_id="u1")
        client.identify("u1", {"country": "DE"})
        client.page("Install", {"url": "https://x/docs"}, category="Docs", anonymous_id="a1")
        client.screen("Home", category="App", user_id="u1")
        client.group("g9", {"name": "ACME"}, user_id="u1")
        client.alias("a1", "u1")
    events = server.events()
    assert [e["type"] for e in events] == ["track", "identify", "page", "screen", "group",
                                           "alias"]
    assert events[1]["traits"] == {"country": "DE"}
    assert (events[2]["name"], events[2]["category"], events[2]["anonymousId"]) == (
        "Install", "Docs", "a1")
    assert events[4]["groupId"] == "g9"
    assert (events[5]["previousId"], events[5]["userId"]) == ("a1", "u1")
    assert all(e["context"]["app"] == {"name": "shop"} for e in events)


def test_many_threads_each_event_exactly_once(scripted: Scripted) -> None:
    server = scripted()
    client = Client(KEY, server.url, max_batch_size=37, flush_interval=0.01)

    def work(t: int) -> None:
        for i in range(200):
            client.track("e", {"t": t, "i": i}, user_id=f"u{t}")

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert client.shutdown()
    seen = [(e["properties"]["t"], e["properties"]["i"]) for e in server.events()]
    assert sorted(seen) == [(t, i) for t in range(8) for i in range(200)]
    for t in range(8):  # each thread's events keep their order
        assert [i for tt, i in seen if tt == t] == list(range(200))


def test_bad_calls_never_raise_and_are_reported(scripted: Scripted) -> None:
    server = scripted()
    errors, on_error = collect()
    with Client(KEY, server.url, on_error=on_error) as client:
        assert client.track("no ids") is None
        assert client.track("", user_id="u") is None
        assert client.track("e", {"f": object()}, user_id="u") is None
        assert client.alias("a1", "") is None
        assert client.group("", user_id="u") is None
        assert client.track("fine", user_id="u") is not None
    assert [type(exc) for exc, _ in errors] == [InvalidMessageError] * 5
    assert errors[0][1] == [{"type": "track", "event": "no ids"}]
    assert "user_id or anonymous_id is required" in str(errors[0][0])
    # named as the Python caller wrote them: the call first, group_id and not groupId
    assert [str(exc) for exc, _ in errors[3:]] == ["alias: user_id is required",
                                                   "group: group_id is required"]
    assert [e["event"] for e in server.events()] == ["fine"]
    assert client.stats().dropped_invalid == 5


def test_a_full_queue_drops_the_newest_and_counts(
        scripted: Scripted) -> None:
    server = scripted()
    errors, on_error = collect()
    # sync_mode=False with a huge interval and batch: nothing leaves until flush()
    client = Client(KEY, server.url, max_queue_size=5, max_batch_size=100, flush_interval=60,
                    on_error=on_error)
    # a full queue also wakes the sender, which sends a partial batch and makes room: the
    # test holds the client's lock (re-entrant) so that the eight calls come first (under
    # load the sender got in after the sixth call, and two more calls fitted)
    with client._lock:
        ids = [client.track("e", {"i": i}, user_id="u") for i in range(8)]
    assert ids[5:] == [None, None, None]
    assert [type(exc) for exc, _ in errors] == [QueueFullError] * 3
    assert [b[0]["properties"]["i"] for _, b in errors] == [5, 6, 7]
    assert client.stats().dropped_queue_full == 3
    assert client.shutdown()
    assert [e["properties"]["i"] for e in server.events()] == [0, 1, 2, 3, 4]


def test_sync_mode_sends_in_the_call(scripted: Scripted) -> None:
    server = scripted()
    client = Client(KEY, server.url, sync_mode=True)
    client.track("e", user_id="u")
    assert len(server.requests) == 1  # no flush needed
    client.shutdown()


def test_calls_after_shutdown_are_refused(scripted: Scripted) -> None:
    server = scripted()
    errors, on_error = collect()
    client = Client(KEY, server.url, on_error=on_error)
    client.shutdown()
    assert client.track("late", user_id="u") is None
    assert isinstance(errors[0][0], ClosedError)
    assert client.shutdown()  # idempotent


def test_a_raising_on_error_does_not_reach_the_caller(
        scripted: Scripted) -> None:
    def explode(exc: Exception, batch: list[dict[str, Any]]) -> None:
        raise RuntimeError("the host's bug")

    with Client(KEY, scripted().url, on_error=explode) as client:
        assert client.track("no ids") is None


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [({"write_key": ""}, "write_key"), ({"host": "127.0.0.1:8700"}, "host"),
     ({"max_batch_size": 0}, "max_batch_size"), ({"flush_interval": 0}, "flush_interval"),
     ({"max_retries": -1}, "max_retries"), ({"context": "x"}, "context"),
     # an option read from an environment variable or a config file, left a string
     ({"flush_interval": "0.5"}, r"flush_interval: expected a number, got str '0\.5'"),
     ({"max_batch_size": "100"}, "max_batch_size: expected a number"),
     # the endpoint's URL instead of the base: every batch would go to /v1/batch/v1/batch
     ({"host": "http://127.0.0.1:8700/v1/batch"},
      "host: the collector's base URL, without /v1/batch .*'http://127.0.0.1:8700'"),
     ({"host": "https://api.segment.io/v1/"}, "without /v1 .*'https://api.segment.io'"),
     ({"host": "https://[::1"}, "host: not a URL"), ({"host": "http://"}, "no host name"),
     ({"host": "http://127.0.0.1:99999"}, "host: not a URL")],
)
def test_impossible_options_fail_at_construction(kwargs: dict[str, Any], says: str) -> None:
    options: dict[str, Any] = {"write_key": KEY, "host": "http://127.0.0.1:1", **kwargs}
    with pytest.raises(ConfigError, match=says):
        Client(options.pop("write_key"), options.pop("host"), **options)


@pytest.mark.parametrize("host", ["http://127.0.0.1:8700/", "https://proxy.example/nerve",
                                  "http://[::1]:8700", "https://events.example/v1batch"])
def test_base_urls_with_a_path_of_their_own_are_accepted(host: str) -> None:
    Client(KEY, host, sync_mode=True).shutdown()


def test_module_level_shortcuts(scripted: Scripted,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    server = scripted()
    monkeypatch.setattr(nerve.sdk, "write_key", KEY)
    monkeypatch.setattr(nerve.sdk, "host", server.url)
    monkeypatch.setattr(nerve.sdk, "default_client", None)
    message_id = nerve.sdk.track("Signed Up", {"plan": "pro"}, user_id="u1")
    nerve.sdk.identify("u1", {"country": "DE"})
    assert nerve.sdk.default_client is not None
    assert nerve.sdk.flush()
    assert nerve.sdk.shutdown()
    assert nerve.sdk.default_client is None
    assert server.events()[0]["messageId"] == message_id
    assert [e["type"] for e in server.events()] == ["track", "identify"]


def test_shortcuts_without_a_write_key_report_instead_of_raising(
        monkeypatch: pytest.MonkeyPatch) -> None:
    errors, on_error = collect()
    monkeypatch.setattr(nerve.sdk, "write_key", None)
    monkeypatch.setattr(nerve.sdk, "on_error", on_error)
    monkeypatch.setattr(nerve.sdk, "default_client", None)
    assert nerve.sdk.track("e", user_id="u") is None
    assert isinstance(errors[0][0], ConfigError)


def test_flush_returns_while_other_threads_keep_tracking(scripted: Scripted) -> None:
    server = scripted()
    # a small bound: the chatter's excess is dropped, so shutdown has little to send
    client = Client(KEY, server.url, max_batch_size=10, flush_interval=60, max_queue_size=200,
                    on_error=lambda exc, batch: None)
    stop = threading.Event()

    def chatter() -> None:
        while not stop.wait(0.001):
            client.track("background", user_id="u")

    for i in range(25):
        client.track("before", {"i": i}, user_id="u")
    thread = threading.Thread(target=chatter)
    thread.start()
    try:
        assert client.flush()  # what was queued at the call is out, whatever came after
        before = [e["properties"]["i"] for e in server.events() if e["event"] == "before"]
        assert before == list(range(25))
    finally:
        stop.set()
        thread.join()
    assert client.shutdown()


def test_events_queued_at_exit_are_sent(scripted: Scripted) -> None:
    server = scripted()
    code = (
        "from nerve.sdk import Client\n"
        f"client = Client({KEY!r}, {server.url!r}, flush_interval=60)\n"
        "for i in range(7):\n"
        "    client.track('e', {'i': i}, user_id='u')\n"
        "# no flush(), no shutdown(): the atexit hook sends them\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert [e["properties"]["i"] for e in server.events()] == list(range(7))


def test_exit_does_not_wait_the_whole_retry_budget(scripted: Scripted) -> None:
    server = scripted([(503, {"Retry-After": "120"})] * 5)
    code = (
        "from nerve.sdk import Client\n"
        f"client = Client({KEY!r}, {server.url!r}, flush_interval=60, exit_timeout=0.2,\n"
        "                on_error=lambda exc, batch: print(type(exc).__name__))\n"
        "client.track('e', user_id='u')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, timeout=60,
                         capture_output=True, text=True)
    assert len(server.requests) == 1  # it did not wait 120 s for a second attempt
    assert "DeliveryError" in out.stdout


def test_the_wire_matches_segments_own_python_sdk(scripted: Scripted) -> None:
    """The same six calls as a captured segment-analytics-python request, key for key."""
    captured = orjson.loads((Path(__file__).parent / "segment_python_batch.json").read_bytes())
    theirs = captured["body"]
    server = scripted()
    with Client(KEY, server.url) as client:
        client.identify("user-1", {"email": "a@b.c", "plan": "pro"})
        client.track("Order Completed", {"revenue": 9.99, "currency": "USD"}, user_id="user-1",
                     context={"ip": "1.2.3.4"}, timestamp="2024-01-02T03:04:05+00:00")
        client.page("Install", {"url": "https://x/docs"}, category="Docs", user_id="user-1")
        client.screen("Home", {"k": 1}, category="App", user_id="user-1")
        client.group("group-9", {"name": "ACME"}, user_id="user-1")
        client.alias("user-1", "prev-anon-1")
        client.track("Anon Event", {}, anonymous_id="anon-7")
    (request,) = server.requests
    ours = request.body
    assert set(theirs) - set(ours) == {"writeKey"}  # we authenticate by the header only
    assert set(ours) <= set(theirs)
    for mine, segment in zip(ours["batch"], theirs["batch"], strict=True):
        # Segment's SDK also sends an empty "integrations" and null ids; we omit them
        present = {k for k, v in segment.items() if v is not None and k != "integrations"}
        assert set(mine) == present, segment["type"]
        for key in present - {"messageId", "timestamp", "context"}:
            assert mine[key] == segment[key], (segment["type"], key)
        assert set(mine["context"]) == set(segment["context"])
        assert mine["context"]["library"]["name"] == "nerve-python"
    assert ours["batch"][1]["timestamp"].startswith("2024-01-02T03:04:05")


def test_a_forked_child_sends_its_own_events_only(scripted: Scripted) -> None:
    server = scripted()
    client = Client(KEY, server.url, flush_interval=60)
    client.track("parent before fork", user_id="u")  # queued, and the worker is running
    pid = os.fork()
    if pid == 0:  # the child: like a gunicorn worker forked from a preloaded app
        ok = client.track("child", user_id="u") is not None and client.flush()
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    client.track("parent after fork", user_id="u")
    assert client.shutdown()
    assert sorted(e["event"] for e in server.events()) == [
        "child", "parent after fork", "parent before fork"]  # nothing sent twice


def test_a_multiprocessing_child_sends_what_it_queued_before_it_ends(
        scripted: Scripted) -> None:
    """multiprocessing ends a forked child with os._exit(), skipping atexit."""
    server = scripted()
    code = (
        "import multiprocessing\n"
        "from nerve.sdk import Client\n"
        f"client = Client({KEY!r}, {server.url!r}, flush_interval=60)\n"
        "def work(k):\n"
        "    for i in range(3):\n"
        "        client.track('child', {'k': k, 'i': i}, user_id='u')\n"
        "    # no flush(): the child ends as soon as work() returns\n"
        "if __name__ == '__main__':\n"
        "    ctx = multiprocessing.get_context('fork')\n"
        "    children = [ctx.Process(target=work, args=(k,)) for k in range(2)]\n"
        "    for child in children:\n"
        "        child.start()\n"
        "    for child in children:\n"
        "        child.join()\n"
        "    assert [c.exitcode for c in children] == [0, 0]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert sorted((e["properties"]["k"], e["properties"]["i"]) for e in server.events()) == [
        (k, i) for k in range(2) for i in range(3)]


def test_block_when_full_waits_for_room_instead_of_dropping(scripted: Scripted) -> None:
    """A backfill loop outpaces the sender: with ``block_when_full`` each call waits for
    room, so nothing is dropped; the first batch is refused once (503), so the queue stays
    full while the sender waits to retry."""
    server = scripted([(503, {"Retry-After": "0.2"})])
    errors, on_error = collect()
    client = Client(KEY, server.url, max_queue_size=5, max_batch_size=5, flush_interval=60,
                    block_when_full=30, on_error=on_error)
    ids = [client.track("e", {"i": i}, user_id="u") for i in range(23)]
    assert None not in ids
    assert client.shutdown()
    assert errors == []
    assert client.stats().dropped_queue_full == 0
    assert [e["properties"]["i"] for e in server.events()[5:]] == list(range(23))


def test_block_when_full_drops_once_its_time_is_up(scripted: Scripted) -> None:
    """A server that keeps refusing holds the queue full: a call waits ``block_when_full``
    seconds, then drops its event as a queue without it would."""
    server = scripted([(503, {"Retry-After": "5"})] * 3)
    errors, on_error = collect()
    client = Client(KEY, server.url, max_queue_size=2, max_batch_size=2, flush_interval=60,
                    block_when_full=0.2, on_error=on_error)
    ids = [client.track("e", {"i": i}, user_id="u") for i in range(3)]
    assert ids[2] is None
    assert [type(exc) for exc, _ in errors] == [QueueFullError]
    assert client.stats().dropped_queue_full == 1
    client.shutdown(timeout=0.1)


def test_block_when_full_must_be_seconds(scripted: Scripted) -> None:
    with pytest.raises(ConfigError, match="block_when_full"):
        Client(KEY, scripted().url, block_when_full=-1)
