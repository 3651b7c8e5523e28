"""``nerve serve``: the collector and the read APIs over HTTP, a thin shell over the stages.

>>> from nerve.server import serve
>>> serve(Workspace.load("."), port=8700)  # doctest: +SKIP

The names below are imported on first use: a worker process of ``nerve serve --workers
N`` imports only the collector's modules of this package, not the warehouse's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nerve._lazy import names_from

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

__getattr__ = names_from(__name__, {
    "_app": ("create_app",),
    "_metrics": ("pipeline_health",),
    "_run": ("SERVER_FILE", "read_server_file", "serve"),
    "_state": ("EventLog", "Loader", "NerveState", "Warehouse"),
})
