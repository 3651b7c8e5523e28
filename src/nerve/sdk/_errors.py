"""What the SDK reports through ``on_error`` (it never raises these into the caller).

The tree, under nerve.errors::

    NerveError
    ├── UserError
    │   ├── ConfigError              Client(...) options that cannot work (raised by Client())
    │   ├── ClosedError              a call on a client after shutdown(): dropped
    │   ├── InvalidMessageError      a track()/identify()/... call the SDK refused
    │   └── PayloadError
    │       └── RejectedError        the server refused a batch (4xx, 501, 505): not retried
    └── TransientError
        ├── DeliveryError            retries exhausted (429, 5xx, network errors)
        └── BackpressureError
            └── QueueFullError       the bounded queue was full: the newest event was dropped

Terminal errors (``UserError``) mean the same input fails the same way again; transient
ones mean the events could get through later (with a spool they stay on disk and do).
"""

from __future__ import annotations

from nerve.errors import BackpressureError, PayloadError, TransientError, UserError

__all__ = [
    "ClosedError",
    "ConfigError",
    "DeliveryError",
    "InvalidMessageError",
    "QueueFullError",
    "RejectedError",
]


class ConfigError(UserError, ValueError):
    """An option passed to ``Client(...)`` that cannot work."""

    code = "config"


class ClosedError(UserError):
    """A call on a client after ``shutdown()``; the event was dropped."""

    code = "closed"


class InvalidMessageError(UserError, ValueError):
    """A call the SDK refused and dropped (missing ids, not JSON-serializable, too big)."""

    code = "invalid_message"


class RejectedError(PayloadError):
    """The server answered a batch with a status that retrying cannot fix."""

    code = "rejected"

    def __init__(self, message: str, *, status: int, body: str = "") -> None:
        super().__init__(message, status=status, code="rejected")
        self.body = body


class DeliveryError(TransientError):
    """Every attempt failed with a retryable status or a network error.

    ``status`` is the last HTTP status, or None when the last attempt got no response;
    ``attempts`` counts the requests made.
    """

    code = "delivery_failed"

    def __init__(self, message: str, *, status: int | None, attempts: int) -> None:
        super().__init__(message, retry_after=0.0)
        self.status = status
        self.attempts = attempts


class QueueFullError(BackpressureError):
    """The queue held ``max_queue_size`` events; the newest one was dropped."""

    code = "queue_full"
