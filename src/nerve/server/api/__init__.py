"""Pluggable read APIs on ``nerve serve``.

Each module named in ``API_MODULES`` (under ``nerve.server.api``) exposes
``routes() -> list[starlette.routing.BaseRoute]``. Handlers reach the shared state as
``request.app.state.nerve`` (a ``NerveState``) and raise ``nerve.errors`` exceptions,
which the app turns into the one JSON error shape. docs/http-api.md says how to add one.
"""

from __future__ import annotations

import importlib

from starlette.routing import BaseRoute

__all__ = ["API_MODULES", "routes"]

#: modules under nerve.server.api that add routes; each has routes()
API_MODULES = [
    "sql",
    "checks",
    "metrics",
    "funnels",
    "experiments",
    "anomalies",
    "ask",
    "erasure",
    "console",
]


def routes() -> list[BaseRoute]:
    """Every route of every module in ``API_MODULES``."""
    found: list[BaseRoute] = []
    for name in API_MODULES:
        found.extend(importlib.import_module(f"nerve.server.api.{name}").routes())
    return found
