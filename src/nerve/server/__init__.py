"""``nerve serve``: the collector and the read APIs over HTTP, a thin shell over the stages.

>>> from nerve.server import serve
>>> serve(Workspace.load("."), port=8700)  # doctest: +SKIP
"""

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
