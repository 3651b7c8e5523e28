"""The arguments a tool takes (its JSON Schema), for the agent's tools and the MCP server.

Kept apart from ``nerve.agent``: the MCP server checks a call's arguments on its event
loop, where importing the agent (seconds) would hold up every other agent's call.
"""

from __future__ import annotations

from typing import Any

from nerve.errors import QueryError, did_you_mean

__all__ = ["arguments_of", "check_arguments"]


def check_arguments(tool: str, schema: dict[str, Any], args: dict[str, Any]) -> None:
    """QueryError naming an argument ``tool`` does not take (its JSON Schema's
    properties): ignored, a misspelt ``filter`` for ``where`` answered for everyone."""
    known = list(schema.get("properties", {}))
    for key in args:
        if key not in known:
            raise QueryError(f"unknown argument {key!r}{did_you_mean(key, known)}; "
                             f"{tool} takes {arguments_of(schema)}")


def arguments_of(schema: dict[str, Any]) -> str:
    """The arguments a tool's JSON Schema takes, for a message: ``metrics (required),
    by, grain``, or ``no arguments``."""
    required = set(schema.get("required", []))
    names = [f"{k} (required)" if k in required else k for k in schema.get("properties", {})]
    return ", ".join(names) or "no arguments"
