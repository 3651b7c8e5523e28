"""A small demo workspace (21 days, 300 shoppers), built once per test session and shared
by the xdist workers (a file lock: the first builds it, the others wait and reuse it)."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from nerve.agent import Context
from nerve.warehouse import Warehouse
from nerve.workspace import Workspace

DAYS, USERS = 21, 300


def build_demo(base: Path) -> Path:
    """``nerve demo --no-serve`` into ``base/ask-demo`` unless a finished one is there."""
    root = base / "ask-demo"
    with (base / "ask-demo.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / ".ask-ready").exists():
            subprocess.run(
                [sys.executable, "-m", "nerve", "demo", "--dir", str(root), "--days",
                 str(DAYS), "--users", str(USERS), "--no-serve"],
                check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=600)
            (root / ".ask-ready").write_text(datetime.now(UTC).isoformat())
    return root


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # shared by every worker of this run
    return build_demo(base)


@pytest.fixture(scope="session")
def demo_ctx(demo_root: Path) -> Iterator[Context]:
    """A Context on the demo warehouse, opened read-only, with ``now`` fixed at the end of
    the simulated data (so "yesterday" is the same day for the agent and the truth)."""
    ws = Workspace.load(demo_root)
    now = datetime.fromisoformat((demo_root / ".ask-ready").read_text().strip())
    with Warehouse.for_workspace(ws, read_only=True) as wh:
        yield Context.open(ws, wh, now=now)


def orders_on(root: Path, day: str) -> int:
    """``purchase_complete`` events of a UTC day in the workspace's warehouse, by SQL."""
    con = duckdb.connect(str(root / ".nerve" / "warehouse.duckdb"), read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")
        row = con.execute("SELECT count(*) FROM events WHERE event = 'purchase_complete' "
                          "AND CAST(timestamp AS DATE) = ?", [day]).fetchone()
    finally:
        con.close()
    assert row is not None
    return int(row[0])
