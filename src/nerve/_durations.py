"""The spans of time nerve's files write: retentions (``400d``), durations (``5m``) and
windows (``24h`` or ``all``).

Pure parsers with no dependencies, so that ``nerve.workspace`` checks nerve.toml's values
with the same code that later reads them (the catalog, the checks, the loader), without
importing those stages. Each raises ValueError saying the accepted form; its caller adds
the file, line and key.
"""

from __future__ import annotations

import re
from datetime import timedelta

__all__ = ["parse_retention", "parse_seconds", "parse_window"]

_RETENTION = re.compile(r"(\d+)\s*([dwmy])")
_UNIT_DAYS = {"d": 1, "w": 7, "m": 30, "y": 365}
#: a retention written in words (``3 months``, ``1 year``): the short form meant
_RETENTION_WORDS = re.compile(r"(\d+)\s*(day|week|month|year)s?")
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d|w)\s*")
_NUMBER = re.compile(r"\s*\d+(?:\.\d+)?\s*")
_WINDOW = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_retention(value: object) -> int | None:
    """Days of retention from ``400d``, ``13w``, ``6m``, ``2y``; None for ``forever``.

    >>> parse_retention("400d"), parse_retention("2y"), parse_retention("forever")
    (400, 730, None)
    >>> try:
    ...     parse_retention("3 months")
    ... except ValueError as exc:
    ...     print(str(exc).split("; ")[-1])
    did you mean '3m'?
    """
    text = str(value).strip().lower()
    if text == "forever":
        return None
    match = _RETENTION.fullmatch(text)
    if not match:
        words = _RETENTION_WORDS.fullmatch(text)
        hint = f"; did you mean '{words.group(1)}{words.group(2)[0]}'?" if words else ""
        raise ValueError("expected a retention like 400d, 13w, 6m, 2y or forever, "
                         f"got {value!r}{hint}")
    return int(match.group(1)) * _UNIT_DAYS[match.group(2)]


def parse_seconds(value: object) -> float:
    """Seconds in ``30s``, ``5m``, ``1h``, ``7d``, ``2w`` (a bare number is seconds, quoted
    or not: ``every: '0'`` is ``every: 0``).

    >>> parse_seconds("90m"), parse_seconds("1.5h"), parse_seconds(30), parse_seconds("0")
    (5400.0, 5400.0, 30.0, 0.0)
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and _NUMBER.fullmatch(value):
        return float(value)
    match = _DURATION.fullmatch(str(value))
    if not match:
        raise ValueError(f"expected a duration like 30s, 5m, 1h, 7d, got {value!r}")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def parse_window(value: object) -> timedelta | None:
    """``"24h"``, ``"7d"``, ``"2w"`` as a timedelta; ``"all"`` as None (no bound).

    >>> parse_window("24h"), parse_window("all")
    (datetime.timedelta(days=1), None)
    """
    if isinstance(value, str) and value.strip().lower() == "all":
        return None
    match = _WINDOW.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"expected a duration like 24h, 7d or 2w, or all; got {value!r}")
    return timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])
