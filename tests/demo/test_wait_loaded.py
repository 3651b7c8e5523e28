"""How `nerve demo` waits for the warehouse before it summarises: a count that stands
still while the server still has log to load (its loader resting after a slow load) is
not the end of loading."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from nerve.demo._run import DemoServer, prepare_workspace, wait_until_loaded


def counts(*values: int) -> Callable[[str], list[dict[str, Any]]]:
    """A fake ``sql``: each call returns the next count, the last one for ever after."""
    it: Iterator[int] = iter(values)
    last = values[-1]

    def sql(query: str) -> list[dict[str, Any]]:
        nonlocal last
        last = next(it, last)
        return [{"n": last}]

    return sql


def test_a_standing_count_with_log_left_to_load_is_waited_for() -> None:
    # the count stands still for many polls (longer than stall_seconds) while the server
    # says its loader still has rows in the log; then the rest lands
    sql = counts(*([90] * 20), 100)
    asked: list[bool] = []

    def loading() -> bool:
        asked.append(True)
        return True

    loaded = wait_until_loaded(sql, 100, stall_seconds=0.0, loading=loading,
                               poll_seconds=0.0)
    assert loaded == 100
    assert asked  # the stall was noticed and the server asked, not waited on blindly


def test_a_standing_count_with_nothing_left_to_load_ends_the_wait() -> None:
    # the server's log is empty (or its loader is failing): what is there is all there is
    loaded = wait_until_loaded(counts(90), 100, stall_seconds=0.0, loading=lambda: False,
                               poll_seconds=0.0)
    assert loaded == 90


def test_without_a_server_to_ask_a_stall_ends_the_wait() -> None:
    assert wait_until_loaded(counts(90), 100, stall_seconds=0.0, poll_seconds=0.0) == 90


def test_an_idle_demo_server_has_nothing_left_to_load(tmp_path: Path) -> None:
    # the real server's /v1/status, as the demo reads it
    server = DemoServer(prepare_workspace(tmp_path / "demo"))
    try:
        assert server.loading() is False
    finally:
        server.stop()
