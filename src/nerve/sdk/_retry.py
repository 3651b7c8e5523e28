"""When to retry a batch and how long to wait: pure functions, no I/O.

Retried: 408, 429, every 5xx except 501 (Not Implemented) and 505 (HTTP Version Not
Supported), and network errors. Not retried: every other status, which would fail the
same way again. Waits grow exponentially with full jitter (AWS's "Exponential Backoff
And Jitter"), and a server's ``Retry-After`` is a lower bound on the wait.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

__all__ = ["MAX_RETRY_AFTER", "RetryPolicy", "is_retryable_status", "parse_retry_after"]

#: a guard against an absurd Retry-After header (seconds)
MAX_RETRY_AFTER = 300.0


def is_retryable_status(status: int) -> bool:
    """Whether a batch answered with ``status`` may succeed if sent again.

    >>> [s for s in (200, 400, 408, 413, 429, 500, 501, 503, 505) if is_retryable_status(s)]
    [408, 429, 500, 503]
    """
    if status in (408, 429):
        return True
    return 500 <= status <= 599 and status not in (501, 505)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date.

    None when absent or unreadable; capped at MAX_RETRY_AFTER; never negative.

    >>> parse_retry_after("2"), parse_retry_after("soon")
    (2.0, None)
    >>> parse_retry_after("Sat, 28 Nov 2026 07:00:10 GMT",
    ...                   now=datetime(2026, 11, 28, 7, 0, 0, tzinfo=UTC))
    10.0
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # "-0000" parses naive; HTTP dates are always GMT
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``max_retries`` retries after the first attempt, waiting full-jitter backoff."""

    max_retries: int = 10
    backoff_base: float = 0.5
    backoff_max: float = 10.0

    def delay(self, retry: int, retry_after: float | None = None,
              rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1-based).

        Full jitter: uniform in [0, min(backoff_max, backoff_base * 2**(retry-1))], then
        at least ``retry_after`` when the server sent one.
        """
        ceiling = min(self.backoff_max, self.backoff_base * 2 ** (retry - 1))
        jittered = (rng or random).uniform(0.0, ceiling)
        return max(jittered, retry_after or 0.0)
