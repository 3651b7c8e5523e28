"""Every error nerve raises on purpose.

The tree::

    NerveError                       root: catch this to catch everything nerve means to raise
    ├── UserError                    the user's input is wrong; the message says where and what
    │   ├── WorkspaceError           nerve.toml missing or invalid, wrong folder
    │   ├── CatalogError             an events/*.yaml file is invalid (file, line, field)
    │   ├── QueryError               a query, metric or option that cannot be answered
    │   └── PayloadError             an HTTP request body the collector refuses (4xx)
    │       └── AuthError            unknown or missing write key (401)
    ├── TransientError               worth retrying later: overload, a lock held, a slow disk
    │   ├── BackpressureError        the log or loader is behind (503 + Retry-After)
    │   └── WarehouseLockedError     another process holds the DuckDB file (its pid)
    └── InternalError                a bug in nerve: please report it

User errors are terminal (retrying the same input fails the same way); transient errors
are retryable. The SDK, the loader and the CLI decide from the class, never from the
message.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "AuthError",
    "BackpressureError",
    "CatalogError",
    "InternalError",
    "Location",
    "NerveError",
    "PayloadError",
    "QueryError",
    "TransientError",
    "UserError",
    "WarehouseLockedError",
    "WorkspaceError",
    "close_match",
    "did_you_mean",
    "redact_url",
]


@dataclass(frozen=True, slots=True)
class Location:
    """Where in a file a problem is: `events/add_to_cart.yaml:14`."""

    file: Path | str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        text = str(self.file)
        if self.line is not None:
            text += f":{self.line}"
            if self.column is not None:
                text += f":{self.column}"
        return text


class NerveError(Exception):
    """Root of every error nerve raises on purpose."""

    #: a short machine-readable code, used in HTTP error bodies and JSON output
    code = "error"


class UserError(NerveError):
    """The input is wrong; fixing the input fixes the error."""

    code = "invalid"


class WorkspaceError(UserError):
    code = "workspace"


class CatalogError(UserError, ValueError):
    """An invalid catalog file. ``problems`` lists every problem found, not just the first."""

    code = "catalog"

    def __init__(self, problems: list[tuple[Location, str]]) -> None:
        self.problems = problems
        super().__init__("\n".join(f"{where}: {what}" for where, what in problems))


class QueryError(UserError, ValueError):
    code = "query"


class PayloadError(UserError, ValueError):
    """A request the collector refuses, with the HTTP status to answer."""

    code = "bad_request"

    def __init__(self, message: str, *, status: int = 400, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        if code is not None:
            self.code = code


class AuthError(PayloadError):
    """Unknown or missing credentials (401). ``scheme`` is what the answer's
    ``WWW-Authenticate`` asks for: ``Basic`` (a write key, ingest) or ``Bearer`` (a
    token, the read APIs)."""

    code = "unauthorized"

    def __init__(self, message: str, *, scheme: str = "Basic") -> None:
        super().__init__(message, status=401)
        self.scheme = scheme


class TransientError(NerveError):
    """Retry later; ``retry_after`` is a hint in seconds."""

    code = "unavailable"

    def __init__(self, message: str, *, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class WarehouseLockedError(TransientError):
    """Another process holds the warehouse's DuckDB file: ``pid``, when DuckDB says it.
    The CLI waits for a starting ``nerve serve`` to name itself (``cli._remote``)."""

    def __init__(self, message: str, *, pid: int | None = None) -> None:
        super().__init__(message)
        self.pid = pid


class BackpressureError(TransientError):
    """Retry later: events are refused while the log's backlog is over its bound;
    ``details`` says the bound and the backlog."""

    code = "overloaded"

    def __init__(self, message: str, *, retry_after: float = 1.0,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message, retry_after=retry_after)
        self.details = details


class InternalError(NerveError):
    code = "internal"


_URL_PASSWORD = re.compile(r"^([a-z][a-z0-9+.-]*://[^/@:]*):[^/@]*@", re.IGNORECASE)


def redact_url(url: str) -> str:
    """``url`` as a message may show it: a password in it is ``***``.

    >>> redact_url("postgres://bob:s3cret@db:5432/shop")
    'postgres://bob:***@db:5432/shop'
    """
    return _URL_PASSWORD.sub(r"\1:***@", url)


def close_match(name: str, known: Iterable[str]) -> str | None:
    """The one of ``known`` that ``name`` most likely misspells, or None.

    >>> close_match("recipe_openned", ["recipe_opened", "recipe_saved"])
    'recipe_opened'
    """
    close = difflib.get_close_matches(name, list(known), n=1)
    return close[0] if close else None


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """`` (did you mean X?)`` for a message about ``name``, or "" when nothing is close."""
    close = close_match(name, known)
    return f" (did you mean {close}?)" if close else ""
