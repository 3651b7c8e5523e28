"""Fixtures for the server tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from serverkit import EVENTS

from nerve.workspace import Workspace


@pytest.fixture
def shop(make_workspace: Callable[..., Workspace]) -> Workspace:
    """A workspace with order_completed and identify in its catalog."""
    return make_workspace(EVENTS)
