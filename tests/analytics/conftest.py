"""Helpers for the analytics tests: short event rows and a DuckDB loader."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    """T0 plus some minutes."""
    return T0 + timedelta(minutes=minutes)


def ev(user: str, event: str, minutes: float, *, mid: str | None = None,
       type_: str = "track", **props: Any) -> dict[str, Any]:
    """One track event row for ``events_table``."""
    row: dict[str, Any] = {"user_id": user, "event": event if type_ == "track" else None,
                           "timestamp": at(minutes), "type": type_,
                           "properties": props or None}
    if type_ != "track":
        row["name"] = event
    if mid is not None:
        row["message_id"] = mid
    return row
