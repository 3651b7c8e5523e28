"""``nerve mcp``: the Model Context Protocol server (docs/ask.md#mcp-server).

>>> from nerve.mcp import build_server                               # doctest: +SKIP
>>> build_server(Workspace.load(".")).run("stdio")                   # doctest: +SKIP
"""

from nerve.mcp._server import build_server, call

__all__ = ["build_server", "call"]
