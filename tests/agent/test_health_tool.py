"""The agent's data_health tool: an event name the catalog does not have is an error
that names it, not a health of "unknown" that reads like an event no check has judged."""

from __future__ import annotations

from pathlib import Path

import pytest

from nerve.errors import QueryError
from nerve.mcp import call
from nerve.workspace import Workspace


def test_data_health_of_an_unknown_event_is_refused_with_the_closest(demo_root: Path) -> None:
    ws = Workspace.load(demo_root)
    with pytest.raises(QueryError, match=r"'purchase_compelte' is not in the catalog.*"
                                         r"did you mean purchase_complete"):
        call(ws, "data_health", {"event": "purchase_compelte"})
    known = call(ws, "data_health", {"event": "purchase_complete"})
    assert known["checks"] > 0
    assert known["status"] != "unknown"


def test_describe_event_of_a_misspelt_event_names_the_closest(demo_root: Path) -> None:
    # was: "event 'purchase_compelte' is not in the catalog", with no hint, while
    # data_health named the closest event for the same typo
    ws = Workspace.load(demo_root)
    with pytest.raises(QueryError, match=r"'purchase_compelte' is not in the catalog.*"
                                         r"did you mean purchase_complete"):
        call(ws, "describe_event", {"name": "purchase_compelte"})
    assert call(ws, "describe_event", {"name": "purchase_complete"})["name"] == \
        "purchase_complete"
