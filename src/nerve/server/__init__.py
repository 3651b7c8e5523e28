"""``nerve serve``: the collector and the read APIs over HTTP, a thin shell over the stages.

>>> from nerve.server import serve
>>> serve(Workspace.load("."), port=8700)  # doctest: +SKIP

The names below are imported on first use: a worker process of ``nerve serve --workers
N`` imports only the collector's modules of this package, not the warehouse's.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nerve.server._app import create_app
    from nerve.server._metrics import pipeline_health
    from nerve.server._run import SERVER_FILE, read_server_file, serve
    from nerve.server._state import EventLog, Loader, NerveState, Warehouse

__all__ = [
    "SERVER_FILE",
    "EventLog",
    "Loader",
    "NerveState",
    "Warehouse",
    "create_app",
    "pipeline_health",
    "read_server_file",
    "serve",
]

_WHERE = {"SERVER_FILE": "_run", "EventLog": "_state", "Loader": "_state",
          "NerveState": "_state", "Warehouse": "_state", "create_app": "_app",
          "pipeline_health": "_metrics", "read_server_file": "_run", "serve": "_run"}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"nerve.server.{_WHERE[name]}"), name)
