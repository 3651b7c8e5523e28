"""Per-source rate limits: token buckets, 429 with Retry-After, nothing stored."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from serverkit import EVENTS, basic, order, rows, write_key

from nerve.errors import WorkspaceError
from nerve.server._ratelimit import RateLimitedError, RateLimiter, rate_limiter_for
from nerve.workspace import Workspace


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_bucket_refills_at_the_rate_and_caps_at_the_burst() -> None:
    clock = Clock()
    limiter = RateLimiter(10, burst=20, clock=clock)
    assert limiter.wait("a", 20) == 0.0
    assert limiter.wait("a", 5) == pytest.approx(0.5)
    clock.now += 0.5
    assert limiter.wait("a", 5) == 0.0
    clock.now += 1000  # a long pause refills only up to the burst
    assert limiter.wait("a", 20) == 0.0
    assert limiter.wait("a", 1) > 0
    assert limiter.wait("b", 20) == 0.0  # each source has its own bucket


def test_a_batch_larger_than_the_burst_passes_on_a_full_bucket_then_owes() -> None:
    clock = Clock()
    limiter = RateLimiter(10, burst=10, clock=clock)
    assert limiter.wait("a", 50) == 0.0
    clock.now += 1.0  # 10 tokens back, still 30 owed
    assert limiter.wait("a", 1) == pytest.approx(3.1)
    with pytest.raises(RateLimitedError) as caught:
        limiter.check("a", 1)
    assert caught.value.status == 429
    assert caught.value.retry_after == 4


def test_config_is_checked_and_split_over_processes() -> None:
    assert rate_limiter_for({}) is None
    limiter = rate_limiter_for({"rate_limit_per_second": 1000, "rate_limit_burst": 4000}, 4)
    assert limiter is not None
    assert (limiter.rate, limiter.burst) == (250, 1000)
    for bad in ({"rate_limit_per_second": 0}, {"rate_limit_per_second": "fast"},
                {"rate_limit_per_second": 5, "rate_limit_burst": -1}):
        with pytest.raises(WorkspaceError, match="rate_limit_per_second"):
            rate_limiter_for(bad)


def test_server_answers_429_with_retry_after_and_stores_nothing_of_it(
        make_workspace: Callable[..., Workspace], serve: Callable[..., Any]) -> None:
    ws = make_workspace(EVENTS)
    toml = ws.root / "nerve.toml"
    toml.write_text(toml.read_text().replace(
        "[collector]\n", "[collector]\nrate_limit_per_second = 1\nrate_limit_burst = 10\n"))
    ws = Workspace.load(ws.root)
    server = serve(ws)
    sources = list(ws.config.sources)
    assert len(sources) >= 2, "the workspace template has two sources"
    with httpx.Client(base_url=server.url, timeout=30) as client:
        first = client.post("/v1/batch", json={"batch": [order(i) for i in range(10)]},
                            headers=basic(write_key(ws, sources[0].name)))
        assert first.status_code == 200
        over = client.post("/v1/batch", json={"batch": [order(i, "x") for i in range(5)]},
                           headers=basic(write_key(ws, sources[0].name)))
        assert over.status_code == 429
        assert int(over.headers["Retry-After"]) >= 1
        assert over.json()["code"] == "rate_limited"
        other = client.post("/v1/batch", json={"batch": [order(i, "y") for i in range(5)]},
                            headers=basic(write_key(ws, sources[1].name)))
        assert other.status_code == 200
    assert server.stop() == 0
    stored = rows(ws, "SELECT message_id FROM events")
    assert not any(r["message_id"].startswith("x-") for r in stored)
    assert len(stored) == 15


def test_the_429_names_the_configured_rate_and_each_workers_share() -> None:
    """With --workers 2 and 300/s configured, it said "its rate limit of 150 events/s"."""
    limiter = rate_limiter_for({"rate_limit_per_second": 300}, 2)
    assert limiter is not None
    assert limiter.wait("web", 150) == 0.0
    with pytest.raises(RateLimitedError) as caught:
        limiter.check("web", 100)
    message = str(caught.value)
    assert "rate limit of 300 events/s (150/s in each of the 2 worker processes" in message
    assert caught.value.details == {"source": "web", "limit_per_second": 300,
                                    "processes": 2}
    single = rate_limiter_for({"rate_limit_per_second": 300})
    assert single is not None
    single.wait("web", 300)
    with pytest.raises(RateLimitedError, match=r"rate limit of 300 events/s; retry in 1s$"):
        single.check("web", 100)


def test_a_burst_without_a_rate_is_refused() -> None:
    """It limited nothing, and nothing said so."""
    with pytest.raises(WorkspaceError, match="rate_limit_burst needs rate_limit_per_second"):
        rate_limiter_for({"rate_limit_burst": 10})
