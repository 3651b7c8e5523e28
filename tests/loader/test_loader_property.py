"""Property: whatever the batches, duplicates, chunking and passes, each message_id is
loaded once, as its first copy in log order."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nerve.envelope import to_record_batch
from nerve.loader import Loader
from nerve.log import LogWriter
from nerve.warehouse import Warehouse

VIOLATION = '[{"path": "$", "rule": "unplanned", "message": "x", "file": null, "line": null}]'

# one event: (id drawn from a small pool so copies are common, invalid?)
events = st.tuples(st.integers(min_value=0, max_value=15), st.booleans())
batches = st.lists(st.lists(events, min_size=0, max_size=8), min_size=1, max_size=10)


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=batches, max_rows=st.integers(min_value=1, max_value=20),
       passes=st.sets(st.integers(min_value=0, max_value=9), max_size=4),
       segment_bytes=st.sampled_from([4_000, 64 << 20]))
def test_each_message_is_loaded_once_as_its_first_copy(
    make_envelope: Callable[..., Any], batches: list[list[tuple[int, bool]]], max_rows: int,
    passes: set[int], segment_bytes: int,
) -> None:
    with tempfile.TemporaryDirectory() as tmp, Warehouse.open("duckdb://:memory:") as wh:
        log_dir = Path(tmp)
        loader = Loader(log_dir, wh, max_rows=max_rows)
        first_valid: dict[str, str] = {}
        first_invalid: dict[str, str] = {}
        rows_in = 0
        with LogWriter(log_dir, "w0", segment_bytes=segment_bytes) as writer:
            for n, batch in enumerate(batches):
                rows: list[Any] = []
                for k, (ident, invalid) in enumerate(batch):
                    mid = f"m{ident}"
                    payload = f'{{"batch": {n}, "k": {k}}}'
                    rows.append(make_envelope(ident, message_id=mid, properties=payload,
                                         violations=VIOLATION if invalid else None))
                    (first_invalid if invalid else first_valid).setdefault(mid, payload)
                rows_in += len(rows)
                writer.append(to_record_batch(rows))
                writer.sync()
                if n in passes:  # load while the writer is still appending
                    loader.load_once()
        loader.load_once()
        loaded = {r["message_id"]: r["p"] for r in wh.query(
            "SELECT message_id, properties::VARCHAR AS p FROM events").to_pylist()}
        quarantined = {r["message_id"]: r["p"] for r in wh.query(
            "SELECT message_id, properties::VARCHAR AS p FROM quarantine").to_pylist()}
        ledger = wh.query("SELECT sum(rows_in) AS r, sum(loaded) AS l, sum(quarantined) AS q, "
                          "sum(duplicates) AS d FROM loads").to_pylist()[0]
    assert {k: v.replace(" ", "") for k, v in loaded.items()} == {
        k: v.replace(" ", "") for k, v in first_valid.items()}
    assert {k: v.replace(" ", "") for k, v in quarantined.items()} == {
        k: v.replace(" ", "") for k, v in first_invalid.items()}
    assert loader.totals.rows_in == rows_in
    assert (ledger["l"] or 0) == len(first_valid)
    assert (ledger["q"] or 0) == len(first_invalid)
    assert (ledger["r"] or 0) == rows_in
