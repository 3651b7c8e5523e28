"""Per-source rate limits: a token bucket of events per write key, answered 429.

``[collector] rate_limit_per_second = 5000`` lets each source (write key) send that many
events per second on average, with bursts up to ``rate_limit_burst`` events (default: one
second's worth). A request that would overdraw its bucket is refused whole with 429 and a
``Retry-After`` saying when it would fit; nothing of it is stored, so the SDK's retry is
safe. A batch larger than the burst is let through when the bucket is full (it then owes
the difference), so no valid batch is refused forever.

With ``--workers N`` each process keeps its own buckets with 1/N of the rate: connections
are spread over the processes, so the sum stays close to the configured rate without any
cross-process lock on the hot path.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from nerve.collector import RequestError
from nerve.errors import WorkspaceError

__all__ = ["RateLimitedError", "RateLimiter", "rate_limiter_for"]


class RateLimitedError(RequestError):
    """429: the source sent more events than its rate limit; retry after ``retry_after``.

    ``rate`` is what nerve.toml sets; with ``processes`` > 1 each process holds
    ``rate / processes`` of it, and the message says so (it named only the share: an
    operator who set 300 read "its rate limit of 150 events/s").
    """

    def __init__(self, source: str, rate: float, retry_after: float,
                 processes: int = 1) -> None:
        share = (f" ({rate / processes:g}/s in each of the {processes} worker processes, "
                 "and this connection is served by one)" if processes > 1 else "")
        super().__init__(f"source {source!r} is over its rate limit of {rate:g} events/s"
                         f"{share}; retry in {retry_after:g}s", status=429,
                         code="rate_limited",
                         details={"source": source, "limit_per_second": rate,
                                  "processes": processes})
        self.retry_after = retry_after


class RateLimiter:
    """Token buckets keyed by source name; ``clock`` is injectable for tests.

    >>> limiter = RateLimiter(10, clock=lambda: 0.0)
    >>> limiter.wait("web", 10), limiter.wait("web", 1)
    (0.0, 0.1)
    """

    def __init__(self, rate: float, burst: float | None = None,
                 clock: Callable[[], float] = time.monotonic, processes: int = 1) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = burst if burst is not None else rate
        self.clock = clock
        #: the processes sharing the configured rate (this one holds ``rate`` of it)
        self.processes = processes
        #: source -> (tokens, time of last refill)
        self._buckets: dict[str, tuple[float, float]] = {}

    def wait(self, source: str, events: int) -> float:
        """Take ``events`` tokens and return 0.0, or return the seconds until they fit."""
        now = self.clock()
        tokens, then = self._buckets.get(source, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.rate)
        needed = min(events, self.burst)  # an oversized batch needs a full bucket
        if tokens >= needed:
            self._buckets[source] = (tokens - events, now)
            return 0.0
        self._buckets[source] = (tokens, now)
        return (needed - tokens) / self.rate

    def check(self, source: str, events: int) -> None:
        """Raise RateLimitedError (429) when ``source`` may not send ``events`` now."""
        wait = self.wait(source, events)
        if wait > 0:
            raise RateLimitedError(source, self.rate * self.processes, max(1, math.ceil(wait)),
                                   self.processes)


def rate_limiter_for(section: dict[str, Any], processes: int = 1) -> RateLimiter | None:
    """The limiter ``[collector] rate_limit_per_second`` asks for (None: unlimited)."""
    rate = section.get("rate_limit_per_second")
    burst = section.get("rate_limit_burst")
    if rate is None:
        if burst is not None:  # it limited nothing, silently
            raise WorkspaceError("nerve.toml: [collector] rate_limit_burst needs "
                                 "rate_limit_per_second: without it no rate is limited")
        return None
    if (isinstance(rate, bool) or not isinstance(rate, int | float) or rate <= 0
            or (burst is not None and (isinstance(burst, bool)
                                       or not isinstance(burst, int | float) or burst <= 0))):
        raise WorkspaceError("nerve.toml: [collector] rate_limit_per_second and "
                             "rate_limit_burst must be positive numbers (events)")
    share = max(1, processes)
    return RateLimiter(rate / share, None if burst is None else burst / share,
                       processes=share)
