"""What every check receives: the inputs, the configuration, the catalog and the clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from nerve.catalog import Catalog
from nerve.quality._config import ChecksConfig
from nerve.quality._engine import Inputs
from nerve.quality._result import CheckResult, Status

__all__ = ["Context", "grade", "moment"]


@dataclass
class Context:
    """One run of the checks. ``now`` is seconds since the epoch; ``cache`` shares scans."""

    inputs: Inputs
    cfg: ChecksConfig
    now: float
    catalog: Catalog | None = None
    cache: dict[str, Any] = field(default_factory=dict)

    def scan(self, name: str, build: Any) -> pd.DataFrame:
        """Run ``build()`` once per run and keep its frame for the other checks."""
        if name not in self.cache:
            self.cache[name] = build()
        return self.cache[name]

    def cataloged(self) -> list[str]:
        return self.catalog.names() if self.catalog is not None else []

    def result(self, check: str, status: Status, message: str, **fields: Any) -> CheckResult:
        return CheckResult(check=check, status=status, message=message, **fields)


def grade(value: float, warn: float, fail: float) -> Status:
    """``fail`` above the fail threshold, ``warn`` above the warn threshold, else ``pass``."""
    if value > fail:
        return Status.fail
    if value > warn:
        return Status.warn
    return Status.passed


def moment(seconds: float | None) -> datetime | None:
    """A UTC datetime from epoch seconds (None stays None, NaN too)."""
    if seconds is None or pd.isna(seconds):
        return None
    return datetime.fromtimestamp(float(seconds), tz=UTC)
