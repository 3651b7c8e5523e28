"""Demo data for the anomaly suite: the pure simulator, mapped and validated by the real
collector code, loaded into a real DuckDB warehouse (no server: the suite stays fast)."""

from __future__ import annotations

import fcntl
import hashlib
import inspect
import os
import pickle
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from nerve.catalog import Catalog
from nerve.collector import Validator, map_messages
from nerve.demo import SimConfig, simulate
from nerve.demo._run import prepare_workspace
from nerve.envelope import ENVELOPE_SCHEMA
from nerve.loader._commit import commit_load
from nerve.semantic import SemanticLayer
from nerve.warehouse import Warehouse
from nerve.workspace import Workspace

END = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


class Demo:
    """A loaded simulation: its warehouse, ground truth, catalog and semantic layer."""

    def __init__(self, root: Path, warehouse: Warehouse, truth: dict[str, Any],
                 catalog: Catalog, end: datetime) -> None:
        self.root = root
        self.warehouse = warehouse
        self.truth = truth
        self.catalog = catalog
        self.end = end
        self.layer = SemanticLayer.from_folder(root / "metrics", catalog)

    @property
    def events(self) -> Any:
        return self.warehouse.ibis().table("events")


def load_demo(folder: Path, *, days: int = 14, users: int = 3000, seed: int = 1,
              incidents: bool = True, end: datetime = END) -> Demo:
    """A demo workspace in ``folder``: simulate, validate with the collector's own mapping,
    load with the loader's own commit (no server: the suite stays fast)."""
    ws = prepare_workspace(folder)
    catalog = Catalog.load(ws.events_dir)
    validator = Validator(catalog)
    sim = simulate(SimConfig(end=end, days=days, users=users, seed=seed, incidents=incidents,
                             faults=False))
    rows = []
    for message in sim:
        rows.extend(map_messages([message.message], source=message.source,
                                 historical=not message.live,
                                 received_at=message.at * 1000 + 500_000, batch_sent_at=None,
                                 validator=validator, max_event_bytes=1 << 20))
    columns = list(zip(*rows, strict=True))
    batch = pa.RecordBatch.from_arrays(
        [pa.array(c, type=f.type) for c, f in zip(columns, ENVELOPE_SCHEMA, strict=True)],
        schema=ENVELOPE_SCHEMA)
    warehouse = Warehouse.for_workspace(ws)
    commit_load(warehouse.cursor(), [batch], writer="w0", segment="s0", start_offset=0,
                end_offset=1, dedup_window=None)
    return Demo(ws.root, warehouse, sim.ground_truth, catalog, end)


def shared_demo(tmp_path_factory: pytest.TempPathFactory, **options: Any) -> Demo:
    """``load_demo(folder, **options)``, simulated and loaded once per test run: the xdist
    workers, and the folders asking for the same options (tests/quality's big shop is
    tests/anomaly's ``big_demo``), share it through a file lock (the first builds it, the
    others wait). Each caller gets a copy of its own, so a test may write to its warehouse."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # shared by every worker of this run
    defaults = {name: p.default for name, p in inspect.signature(load_demo).parameters.items()
                if p.kind is p.KEYWORD_ONLY}
    key = hashlib.sha256(repr(sorted({**defaults, **options}.items())).encode()).hexdigest()[:12]
    built = base / f"demo-{key}"
    with (base / f"demo-{key}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (built / "ready").exists():
            demo = load_demo(built / "shop", **options)
            demo.warehouse.close()
            (built / "truth.pickle").write_bytes(pickle.dumps((demo.truth, demo.end)))
            (built / "ready").touch()
    root = tmp_path_factory.mktemp(f"demo-{key}") / "shop"
    shutil.copytree(built / "shop", root)
    truth, end = pickle.loads((built / "truth.pickle").read_bytes())
    ws = Workspace.load(root)
    return Demo(root, Warehouse.for_workspace(ws), truth, Catalog.load(ws.events_dir), end)


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    """Two weeks of the demo shop with its incidents (about 75k events)."""
    return shared_demo(tmp_path_factory)


@pytest.fixture(scope="session")
def clean_demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    """The same weeks with no incidents and no faults: nothing may alert."""
    return shared_demo(tmp_path_factory, incidents=False)


#: enough shoppers for the adyen outage to be provable: about 23 adyen payments in its
#: four hours, 10 of them failed, against 3% usually (at 3000 shoppers: 8 and 3)
BIG_USERS = 8000


@pytest.fixture(scope="session")
def big_demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    """Two weeks of 8000 shoppers with the incidents (about 200k events)."""
    return shared_demo(tmp_path_factory, users=BIG_USERS, seed=3)


@pytest.fixture(scope="session")
def big_clean_demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    """The same at 8000 shoppers with no incidents: more power, still no alert."""
    return shared_demo(tmp_path_factory, users=BIG_USERS, seed=3, incidents=False)



def envelope_batch(rows: list[dict[str, Any]]) -> pa.RecordBatch:
    """Envelope rows from short dicts: event, at (datetime), platform, user, props."""
    import orjson

    full = []
    for i, row in enumerate(rows):
        at = row["at"]
        full.append({"message_id": f"{row.get('tag', 'm')}-{i}", "type": "track",
                     "event": row["event"], "name": None, "user_id": row.get("user", "u1"),
                     "anonymous_id": None, "group_id": None, "previous_id": None,
                     "timestamp": at, "original_timestamp": at, "sent_at": at,
                     "received_at": at,
                     "properties": orjson.dumps(row.get("props", {})).decode(),
                     "traits": None,
                     "context": orjson.dumps({"device": {"type": row["platform"]}}).decode(),
                     "source": "ios", "historical": False, "schema_version": "1",
                     "violations": None})
    return pa.RecordBatch.from_pylist(full, schema=ENVELOPE_SCHEMA)


def load_rows(warehouse: Warehouse, rows: list[dict[str, Any]], offset: int = 0) -> None:
    """Commit rows the way the loader does (``loaded_at`` set by the commit)."""
    tagged = [{"tag": f"load{offset}", **row} for row in rows]
    commit_load(warehouse.cursor(), [envelope_batch(tagged)], writer="w", segment="s",
                start_offset=offset, end_offset=offset + 1, dedup_window=None)
