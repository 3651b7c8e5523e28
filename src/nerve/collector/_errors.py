"""The collector's refusals: a PayloadError that also carries structured ``details``.

Every refusal becomes one JSON body over HTTP, ``{"code", "message", "details"}``; the
details say where (``{"index": 3, "field": "event"}``) so a client author can fix it.
"""

from __future__ import annotations

from typing import Any

from nerve.errors import PayloadError

__all__ = ["RequestError", "json_kind", "message_error"]


class RequestError(PayloadError):
    """A request the collector refuses: HTTP status, a stable code, a message, details."""

    def __init__(self, message: str, *, status: int = 400, code: str = "bad_request",
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message, status=status, code=code)
        self.details = details


def message_error(index: int | None, field: str, problem: str, *,
                  code: str = "missing_field", status: int = 400) -> RequestError:
    """A refusal about one message of a batch, naming its index and field."""
    where = f"batch[{index}].{field}" if index is not None else field
    return RequestError(f"{where}: {problem}", status=status, code=code,
                        details={"index": index, "field": field})


def json_kind(value: object) -> str:
    """What a value is in JSON's words (``an array``, ``a string``), as a refusal names
    what was sent: the client wrote JSON, not Python's ``list`` or ``str``."""
    if value is None:
        return "null"
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)
