"""Tally rows (``nerve.log._tally``: what the collector did not store) go to the ledger's
``withheld`` column, in the load's transaction, and never into ``events`` or
``quarantine``; several ranges in one commit keep their own counts."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson
import pyarrow as pa

from nerve.collector import rows_to_record_batch
from nerve.envelope import ENVELOPE_FIELDS, Envelope, to_record_batch
from nerve.loader._commit import LogRange, commit_ranges
from nerve.log import split_tallies, tally_row
from nerve.log._tally import MAX_TALLY_KEYS, OTHER
from nerve.warehouse import Warehouse


def _tally(**counts: int) -> Any:
    return rows_to_record_batch([tally_row(Counter(
        {("consent", "web", event): n for event, n in counts.items()}
        | {("refused", "401", "unauthorized"): 1}))])


def test_tally_rows_reach_the_ledger_of_their_range_only(
        warehouse: Warehouse, make_envelope: Callable[..., Envelope]) -> None:
    events = to_record_batch([make_envelope(i) for i in range(3)])
    ranges = [LogRange("w0", "a.seg", 0, 10, [events, _tally(signup=2)]),
              LogRange("w1", "b.seg", 0, 20, [_tally(signup=1, app_opened=4)]),
              LogRange("w2", "c.seg", 0, 30, [to_record_batch([make_envelope(9)])])]
    stats = commit_ranges(warehouse.cursor(), ranges, dedup_window=None)
    assert (stats.rows_in, stats.loaded) == (4, 4)  # the tallies are no rows
    ledger = warehouse.query('SELECT writer, rows_in, withheld FROM loads ORDER BY writer'
                             ).to_pylist()
    assert [(r["writer"], r["rows_in"]) for r in ledger] == [("w0", 3), ("w1", 0), ("w2", 1)]
    assert orjson.loads(ledger[0]["withheld"]) == {
        "consent": {"web": {"signup": 2}}, "refused": {"401": {"unauthorized": 1}}}
    assert orjson.loads(ledger[1]["withheld"]) == {
        "consent": {"web": {"app_opened": 4, "signup": 1}},
        "refused": {"401": {"unauthorized": 1}}}
    assert ledger[2]["withheld"] is None
    stored = warehouse.query("SELECT count(*) AS n FROM events WHERE type = 'nerve:tally'"
                             ).to_pylist()
    assert stored == [{"n": 0}]


def test_a_tally_of_made_up_names_stays_one_small_row() -> None:
    tally = Counter({("consent", "web", f"e{i:05d}"): 1 for i in range(MAX_TALLY_KEYS + 300)})
    row = tally_row(tally, received_at=0)
    assert row[ENVELOPE_FIELDS.index("type")] == "nerve:tally"
    table, counts = split_tallies(
        pa.Table.from_batches([rows_to_record_batch([row, row])]))
    assert table.num_rows == 0
    assert counts is not None
    web = counts["consent"]["web"]
    assert len(web) == MAX_TALLY_KEYS + 1
    assert web[OTHER] == 2 * 300
    assert sum(web.values()) == 2 * (MAX_TALLY_KEYS + 300)
