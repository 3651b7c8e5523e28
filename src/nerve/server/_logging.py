"""Structured logs: one JSON object per line on stderr, for log shippers.

Each line has ``ts`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, the fields
passed as ``extra={...}`` and, for exceptions, ``exc``. uvicorn's own loggers go through
the same handler, so one parser reads everything ``nerve serve`` says.

>>> logging.getLogger("nerve.server").warning("backlog", extra={"bytes": 10})  # doctest: +SKIP
{"ts":"2026-11-28T08:40:00.123Z","level":"warning","logger":"nerve.server","message":"backlog","bytes":10}
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import orjson

__all__ = ["JsonFormatter", "setup_json_logging"]

#: LogRecord attributes that are not user fields
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message", "asctime", "color_message", "taskName"}


class JsonFormatter(logging.Formatter):
    """A record as one line of JSON: time, level, logger, message, extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        created = time.gmtime(record.created)
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", created) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        entry.update({key: value for key, value in record.__dict__.items()
                      if key not in _STANDARD and not key.startswith("_")})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def setup_json_logging(level: int = logging.INFO) -> None:
    """Send nerve's and uvicorn's logs to stderr as JSON lines (replacing their handlers)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)  # libraries: warnings and errors only
    for name in ("nerve", "uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
        logger.setLevel(level)
    logging.getLogger("uvicorn.access").disabled = True  # one line per request is noise
