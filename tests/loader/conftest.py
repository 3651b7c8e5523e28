"""Envelope batches for the loader tests: the log tests' helpers, and single envelopes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.log.conftest import envelope, make_batch

from nerve.envelope import Envelope
from nerve.warehouse import Warehouse

__all__ = ["make_batch", "make_envelope", "warehouse"]  # make_batch: the log tests', shared


@pytest.fixture
def warehouse(tmp_path: Path) -> Iterator[Warehouse]:
    """A DuckDB warehouse in the test's folder."""
    wh = Warehouse.open(f"duckdb://{tmp_path / 'wh.duckdb'}")
    yield wh
    wh.close()


@pytest.fixture
def make_envelope() -> Callable[..., Envelope]:
    """``make_envelope(i, **overrides)``: one valid envelope."""
    return envelope
