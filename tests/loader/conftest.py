"""Envelope batches for the loader tests: the log tests' helpers, and single envelopes."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from tests.log.conftest import envelope, make_batch

from nerve.envelope import Envelope

__all__ = ["make_batch", "make_envelope"]  # make_batch: the log tests' fixture, shared


@pytest.fixture
def make_envelope() -> Callable[..., Envelope]:
    """``make_envelope(i, **overrides)``: one valid envelope."""
    return envelope
