"""A check's result, and the small formatters that make its message read like a sentence."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = [
    "CheckResult",
    "Status",
    "fmt_count",
    "fmt_duration",
    "fmt_pct",
    "fmt_time",
    "worst",
]


class Status(enum.StrEnum):
    """How a check came out, from best to worst (``error``: the check itself could not run)."""

    passed = "pass"
    warn = "warn"
    fail = "fail"
    error = "error"

    @property
    def rank(self) -> int:
        return list(Status).index(self)


def worst(statuses: list[Status]) -> Status:
    """The worst of several statuses (``pass`` for none)."""
    return max(statuses, key=lambda s: s.rank, default=Status.passed)


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One finding: what was measured, for which event and dimensions, against what range.

    ``observed`` and ``expected`` share ``unit`` (``share``: a fraction 0..1; ``seconds``;
    ``events``: a count; ``events/h``). ``expected`` is ``{"min": ..., "max": ...}`` with
    null for an open bound. ``since`` is when the problem started, when known.
    """

    check: str
    status: Status
    message: str
    event: str | None = None
    dimensions: dict[str, str] = field(default_factory=dict)
    observed: float | None = None
    expected: dict[str, float | None] = field(default_factory=dict)
    unit: str = ""
    since: datetime | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """A stable identifier: ``volume:add_to_cart:platform=Android``."""
        parts = [self.check]
        if self.event:
            parts.append(self.event)
        parts.extend(f"{k}={v}" for k, v in sorted(self.dimensions.items()))
        return ":".join(parts)

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of ``nerve check --format json`` (one object per result)."""
        return {
            "check": self.check,
            "name": self.name,
            "status": str(self.status),
            "event": self.event,
            "dimensions": dict(self.dimensions),
            "observed": _clean(self.observed),
            "expected": {k: _clean(v) for k, v in self.expected.items()},
            "unit": self.unit,
            "since": self.since.isoformat() if self.since else None,
            "message": self.message,
            "details": self.details,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckResult:
        """Inverse of ``as_dict`` (for results that came over HTTP or from history)."""
        since = data.get("since")
        return cls(
            check=data["check"],
            status=Status(data["status"]),
            message=data["message"],
            event=data.get("event"),
            dimensions=dict(data.get("dimensions") or {}),
            observed=data.get("observed"),
            expected=dict(data.get("expected") or {}),
            unit=data.get("unit", ""),
            since=datetime.fromisoformat(since) if since else None,
            details=dict(data.get("details") or {}),
        )


def _clean(value: float | None) -> float | None:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    return float(value)


# ----------------------------------------------------------------------------- formatters


def fmt_count(value: float) -> str:
    """``12,345``; fractional values keep one decimal (``12.5``)."""
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.1f}"


def fmt_pct(share: float) -> str:
    """A share 0..1 as a percentage with useful precision: ``3.2%``, ``0.04%``, ``1%``."""
    pct = share * 100
    if pct == 0:
        return "0%"
    if abs(pct) >= 10:
        return f"{pct:.0f}%"
    if abs(pct) >= 1:
        return f"{pct:.1f}".removesuffix(".0") + "%"
    return f"{pct:.2g}%"


def fmt_duration(seconds: float) -> str:
    """``45 s``, ``12 min``, ``1 h``, ``3.5 h``, ``2.1 days``."""
    seconds = float(seconds)
    if abs(seconds) < 90:
        return f"{seconds:.0f} s"
    if abs(seconds) < 3600:
        return f"{seconds / 60:.0f} min"
    if abs(seconds) < 48 * 3600:
        hours = seconds / 3600
        return (f"{hours:.0f} h" if hours >= 10 else f"{hours:.1f}".removesuffix(".0") + " h")
    days = seconds / 86400
    return f"{days:.1f}".removesuffix(".0") + " days"


def fmt_time(moment: datetime) -> str:
    """``2026-11-27 14:00 UTC``."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def utc(moment: datetime) -> datetime:
    """A datetime in UTC (naive values are taken as UTC)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def hours_ago(now: datetime, hours: float) -> datetime:
    return now - timedelta(hours=hours)
