"""Retries against a real scripted HTTP server: which statuses, how many times, how long.

Delays are asserted only as lower bounds (Retry-After honoured), never as upper bounds.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest

from nerve.sdk import Client, DeliveryError, RejectedError

Scripted = Callable[..., Any]
KEY = "test-write-key"
FAST = {"backoff_base": 0.01, "backoff_max": 0.05, "flush_interval": 60}


def client_for(url: str, errors: list[tuple[Exception, list[dict[str, Any]]]],
               **options: Any) -> Client:
    return Client(KEY, url, on_error=lambda exc, batch: errors.append((exc, batch)),
                  **{**FAST, **options})


def test_503_with_retry_after_seconds_then_200(scripted: Scripted) -> None:
    server = scripted([(503, {"Retry-After": "1"})])
    errors: list[Any] = []
    client = client_for(server.url, errors)
    message_id = client.track("e", user_id="u")
    assert client.flush()
    first, second = server.requests
    assert second.at - first.at >= 1.0  # Retry-After is a floor under the jittered backoff
    assert [e["messageId"] for e in second.batch] == [message_id]  # the same batch again
    assert "X-Retry-Count" not in first.headers
    assert second.headers["X-Retry-Count"] == "1"
    assert second.body["sentAt"] > first.body["sentAt"]  # sentAt is set per attempt
    assert errors == []
    assert client.stats().delivered == 1
    client.shutdown()


def test_retry_after_as_an_http_date(scripted: Scripted) -> None:
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
    server = scripted([(429, {"Retry-After": format_datetime(until, usegmt=True)})])
    errors: list[Any] = []
    with client_for(server.url, errors) as client:
        client.track("e", user_id="u")
    _first, second = server.requests
    assert second.wall >= until.timestamp() - 0.02  # not before the date the server named
    assert errors == []


def test_429_and_5xx_without_retry_after_back_off_and_succeed(scripted: Scripted) -> None:
    server = scripted([429, 500, 502, 504])
    errors: list[Any] = []
    with client_for(server.url, errors) as client:
        client.track("e", user_id="u")
    assert len(server.requests) == 5
    assert [r.headers.get("X-Retry-Count") for r in server.requests] == [
        None, "1", "2", "3", "4"]
    assert errors == []


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422, 501, 505])
def test_terminal_statuses_are_not_retried_and_reported(scripted: Scripted,
                                                        status: int) -> None:
    server = scripted([status])
    errors: list[Any] = []
    client = client_for(server.url, errors)
    message_id = client.track("refused", user_id="u")
    assert client.flush()  # settled: nothing left to send
    assert len(server.requests) == 1
    ((exc, batch),) = errors
    assert isinstance(exc, RejectedError)
    assert exc.status == status
    assert "scripted" in str(exc)  # the server's JSON error message is passed on
    assert [m["messageId"] for m in batch] == [message_id]
    # the client carries on with the next batch
    client.track("next", user_id="u")
    assert client.flush()
    assert [r.batch[0]["event"] for r in server.requests] == ["refused", "next"]
    assert client.stats().rejected == 1
    client.shutdown()


def test_400_once_then_the_following_batches_go_through(scripted: Scripted) -> None:
    server = scripted([400])
    errors: list[Any] = []
    with client_for(server.url, errors, max_batch_size=2) as client:
        for i in range(6):
            client.track("e", {"i": i}, user_id="u")
    assert len(server.requests) == 3  # the refused batch was not sent twice
    assert len(errors) == 1
    assert [e["properties"]["i"] for e in errors[0][1]] == [0, 1]


def test_network_errors_are_retried(scripted: Scripted) -> None:
    server = scripted(["drop", "drop"])
    errors: list[Any] = []
    with client_for(server.url, errors) as client:
        client.track("e", user_id="u")
    assert len(server.requests) == 3
    assert errors == []


def test_retries_run_out_and_are_reported(scripted: Scripted) -> None:
    server = scripted([500] * 10)
    errors: list[Any] = []
    client = client_for(server.url, errors, max_retries=2)
    client.track("e", user_id="u")
    assert not client.flush()
    assert len(server.requests) == 3  # the first attempt and two retries
    ((exc, batch),) = errors
    assert isinstance(exc, DeliveryError)
    assert (exc.status, exc.attempts) == (500, 3)
    assert batch[0]["event"] == "e"
    assert client.stats().undelivered == 1
    assert client.stats().queued == 0  # without a spool, the batch is dropped
    client.shutdown()


def test_an_unreachable_server_is_a_delivery_error() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    errors: list[Any] = []
    client = client_for(f"http://127.0.0.1:{port}", errors, max_retries=1)
    client.track("e", user_id="u")
    assert not client.flush()
    ((exc, _),) = errors
    assert isinstance(exc, DeliveryError)
    assert (exc.status, exc.attempts) == (None, 2)
    assert "ConnectError" in str(exc)
    client.shutdown()


def test_413_on_a_batch_splits_it(scripted: Scripted) -> None:
    server = scripted([413])
    errors: list[Any] = []
    with client_for(server.url, errors) as client:
        for i in range(4):
            client.track("e", {"i": i}, user_id="u")
    assert [len(r.batch) for r in server.requests] == [4, 2, 2]
    assert [e["properties"]["i"] for r in server.requests[1:] for e in r.batch] == [0, 1, 2, 3]
    assert errors == []


def test_after_a_413_split_each_half_is_counted_and_reported_as_it_ended(
        scripted: Scripted) -> None:
    # the first half is delivered, the second refused: only the second is an error
    server = scripted([413, 200, 400])
    errors: list[Any] = []
    client = client_for(server.url, errors)
    for i in range(4):
        client.track("e", {"i": i}, user_id="u")
    assert client.flush()
    assert [len(r.batch) for r in server.requests] == [4, 2, 2]
    ((exc, batch),) = errors
    assert isinstance(exc, RejectedError)
    assert exc.status == 400
    assert [e["properties"]["i"] for e in batch] == [2, 3]
    stats = client.stats()
    assert (stats.delivered, stats.rejected, stats.undelivered) == (2, 2, 0)
    client.shutdown()


def test_after_a_413_split_a_delivered_half_is_not_reported_undelivered(
        scripted: Scripted) -> None:
    server = scripted([413, 200, 503, 503])
    errors: list[Any] = []
    client = client_for(server.url, errors, max_retries=1)
    for i in range(4):
        client.track("e", {"i": i}, user_id="u")
    assert not client.flush()
    ((exc, batch),) = errors
    assert isinstance(exc, DeliveryError)
    assert [e["properties"]["i"] for e in batch] == [2, 3]
    stats = client.stats()
    assert (stats.delivered, stats.rejected, stats.undelivered) == (2, 0, 2)
    client.shutdown()


def test_shutdown_with_a_timeout_gives_up_a_long_retry_after(scripted: Scripted) -> None:
    server = scripted([(503, {"Retry-After": "120"})] * 5)
    errors: list[Any] = []
    client = client_for(server.url, errors)
    client.track("e", user_id="u")
    assert not client.shutdown(timeout=0.3)
    assert len(server.requests) == 1  # it did not wait the 120 s for a second attempt
    assert any(isinstance(exc, DeliveryError) for exc, _ in errors)


def test_after_retries_run_out_the_worker_pauses(scripted: Scripted) -> None:
    server = scripted([503] * 100)
    errors: list[Any] = []
    client = client_for(server.url, errors, max_batch_size=1, max_retries=0,
                        backoff_max=60, flush_interval=0.01)
    for i in range(3):
        client.track("e", {"i": i}, user_id="u")
    for _ in range(200):
        if server.requests:
            break
        threading.Event().wait(0.01)
    threading.Event().wait(0.2)  # the worker would try the next batch here if it did not pause
    assert len(server.requests) == 1
    assert not client.shutdown()  # shutdown tries again at once, then gives up
    assert len(server.requests) == 2
    assert [type(exc) for exc, _ in errors] == [DeliveryError] * 3  # 1 batch + 2 at shutdown
    assert sum(len(batch) for _, batch in errors) == 3


def test_the_worker_pauses_after_flush_gives_up_too(scripted: Scripted, tmp_path: Path) -> None:
    # flush() runs a batch out of retries while the worker waits for the send lock (its
    # flush_interval passed meanwhile): the worker must pause backoff_max like after its
    # own failure, not send the spooled batch again at once. It did, so each flush() with
    # the collector down cost two rounds of retries (and two DeliveryErrors).
    server = scripted([(503, {"Retry-After": "1"})] * 100)
    errors: list[Any] = []
    client = client_for(server.url, errors, max_retries=1, backoff_max=60,
                        flush_interval=0.3, spool_dir=tmp_path)
    client.track("e", user_id="u")
    assert not client.flush()  # two attempts, >= 1 s apart: the worker is waiting by then
    assert len(server.requests) == 2
    threading.Event().wait(0.5)  # the worker would send the batch again here
    assert len(server.requests) == 2
    assert [type(exc) for exc, _ in errors] == [DeliveryError]
    assert client.stats().undelivered == 1
    client.shutdown(timeout=0)


def test_stats_count_requests_while_a_batch_is_still_retrying(scripted: Scripted) -> None:
    """``ClientStats.requests`` stayed 0 until the batch settled: a dashboard watching a
    client retry against a failing collector saw no requests at all."""
    server = scripted([(503, {"Retry-After": "1"})] * 100)
    errors: list[Any] = []
    client = client_for(server.url, errors, max_retries=50, flush_interval=0.01)
    client.track("e", user_id="u")
    for _ in range(1000):  # the first retry waits at least a second (Retry-After)
        if len(server.requests) >= 2:
            break
        threading.Event().wait(0.01)
    assert len(server.requests) >= 2
    stats = client.stats()
    assert (stats.delivered, stats.undelivered) == (0, 0)  # still retrying
    assert stats.requests >= 2
    client.shutdown(timeout=0)


def test_stats_count_each_request_once(scripted: Scripted) -> None:
    server = scripted([503, 503])
    client = client_for(server.url, [])
    client.track("e", user_id="u")
    assert client.flush()
    assert len(server.requests) == 3
    assert client.stats().requests == 3
    client.shutdown()
