"""The final drain at a stop, when the warehouse cannot take the log (a full disk)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from nerve.server._run import _drain


class Recorder:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


class FullWarehouseLoader:
    """The loader at a stop whose final load fails as DuckDB's COMMIT did on a full disk."""

    def stop(self) -> None:
        raise OSError(28, 'Could not write file "warehouse.duckdb.wal": No space left on device')

    def backlog_bytes(self) -> int:
        return 2_055_843


class State:
    def __init__(self) -> None:
        self.log, self.warehouse = Recorder(), Recorder()
        self.loader: Any = FullWarehouseLoader()


def test_a_failed_final_drain_is_one_clear_error_and_the_stop_goes_on(
        caplog: pytest.LogCaptureFixture) -> None:
    """It was a traceback and "Application shutdown failed. Exiting.": server.json stayed
    and the warehouse was not closed. Nothing acknowledged is lost (the log keeps it),
    and the operator must read that, with what to do."""
    caplog.set_level(logging.INFO, logger="nerve.server")
    state = State()
    _drain(state)  # type: ignore[arg-type]
    assert state.log.closed
    assert state.warehouse.closed
    [error] = [r for r in caplog.records if r.levelno == logging.ERROR]
    message = error.getMessage()
    assert "No space left on device" in message
    assert "2,055,843 bytes" in message
    assert "next start" in message
    assert error.__dict__["backlog_bytes"] == 2_055_843


class NatsDownLoader:
    """The loader at a stop while its NATS stream is out of reach."""

    def stop(self) -> None:
        from nerve.errors import TransientError

        raise TransientError("the NATS stream 'EV' is unreachable: the connection is down "
                             "(reconnecting); loading resumes once NATS answers")

    def backlog_bytes(self) -> int:
        raise OSError("no figure either")


def test_a_final_drain_without_nats_does_not_blame_the_warehouse(
        caplog: pytest.LogCaptureFixture) -> None:
    """A stop while NATS was down told the operator to "make room or fix the warehouse",
    which was fine: the stream was out of reach."""
    caplog.set_level(logging.INFO, logger="nerve.server")
    state = State()
    state.loader = NatsDownLoader()
    _drain(state)  # type: ignore[arg-type]
    assert state.warehouse.closed
    [error] = [r for r in caplog.records if r.levelno == logging.ERROR]
    message = error.getMessage()
    assert "'EV' is unreachable" in message
    assert "next start" in message
    assert "warehouse before" not in message
