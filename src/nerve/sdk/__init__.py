"""nerve's Python SDK: send Segment-spec events to nerve (or Segment, or RudderStack).

A client object::

    from nerve.sdk import Client

    client = Client("WRITE_KEY", "http://127.0.0.1:8700")
    client.identify("u1", {"age_group": "65+", "country": "DE"})
    client.track("Product Viewed", {"sku": "SNK-42"}, user_id="u1")
    client.shutdown()          # flushes; also runs at interpreter exit

or the module-level shortcuts on a default client, like Segment's ``analytics``::

    import nerve.sdk as nerve

    nerve.write_key = "WRITE_KEY"
    nerve.host = "http://127.0.0.1:8700"
    nerve.track("Product Viewed", {"sku": "SNK-42"}, user_id="u1")

Importing this package loads httpx and orjson, never the server, DuckDB, Ibis or Arrow.
Experiments: ``client.get_variant(key, user_id, attributes=...)`` (docs/experiments.md).
Options, retry and spool semantics: docs/sdk.md.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

from nerve import __version__
from nerve.sdk._client import DEFAULT_HOST, Client, ClientStats, ErrorCallback
from nerve.sdk._errors import (
    ClosedError,
    ConfigError,
    DeliveryError,
    InvalidMessageError,
    QueueFullError,
    RejectedError,
)

__all__ = [
    "DEFAULT_HOST",
    "Client",
    "ClientStats",
    "ClosedError",
    "ConfigError",
    "DeliveryError",
    "ErrorCallback",
    "InvalidMessageError",
    "QueueFullError",
    "RejectedError",
    "__version__",
    "alias",
    "default_client",
    "flush",
    "get_variant",
    "group",
    "identify",
    "page",
    "screen",
    "shutdown",
    "track",
]

# Settings of the default client, read when the first shortcut call creates it.
write_key: str | None = None
host: str = DEFAULT_HOST
on_error: ErrorCallback | None = None
sync_mode: bool = False
spool_dir: Path | str | None = None
#: the client the shortcuts use; created on first use, or assign your own
default_client: Client | None = None

_lock = threading.Lock()
_P = ParamSpec("_P")
_R = TypeVar("_R")


def _default() -> Client | None:
    global default_client  # noqa: PLW0603 - the shortcuts' whole point is one shared client
    with _lock:
        if default_client is None:
            try:
                default_client = Client(write_key or "", host, on_error=on_error,
                                        sync_mode=sync_mode, spool_dir=spool_dir)
            except ConfigError as exc:  # e.g. write_key never set: report, never raise
                logging.getLogger("nerve.sdk").error(
                    "nerve.sdk: %s (set nerve.sdk.write_key and nerve.sdk.host)", exc)
                if on_error is not None:
                    with contextlib.suppress(Exception):
                        on_error(exc, [])
                return None
        return default_client


def _shortcut(method: Callable[Concatenate[Client, _P], _R]) -> Callable[_P, _R | None]:
    @functools.wraps(method)
    def call(*args: _P.args, **kwargs: _P.kwargs) -> _R | None:
        client = _default()
        return None if client is None else method(client, *args, **kwargs)

    return call


track = _shortcut(Client.track)
identify = _shortcut(Client.identify)
page = _shortcut(Client.page)
screen = _shortcut(Client.screen)
group = _shortcut(Client.group)
alias = _shortcut(Client.alias)
get_variant = _shortcut(Client.get_variant)


def flush() -> bool:
    """Flush the default client (True when nothing is left to send)."""
    return True if default_client is None else default_client.flush()


def shutdown(timeout: float | None = None) -> bool:
    """Flush and stop the default client; the next shortcut call starts a new one."""
    global default_client
    with _lock:
        client, default_client = default_client, None
    return True if client is None else client.shutdown(timeout)
