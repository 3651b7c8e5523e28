"""Benchmark the storage path: log append+sync, loading into DuckDB, and dedup cost.

    python benchmarks/load.py                  # default: 300k events, ~1 minute
    python benchmarks/load.py --rows 1000000 --existing 5000000 --index
    python benchmarks/load.py --window 0 --window 10000000 --window 30000000

Prints rows/s for
1. log append + fsync, as HTTP workers do it: several threads, each appending a
   100-event batch and syncing before it would answer (group commit coalesces fsyncs);
2. loading the log into a DuckDB file through Arrow (Loader.load_once), with dedup;
3. the cost of deduplicating one 100k-row load against an ``events`` table that already
   holds ``--existing`` rows over 30 days: a received_at window (the default, 7 days)
   versus the whole table (and, with --index, a primary-key index table of message_ids);
4. with --trickle N: the background loader's CPU under a trickle of 100 events/s, with N
   rows in the dedup window: with the loader's index of the window's message_ids (the
   default) and without it (``[loader] dedup_index_rows = 0``: each load's probe reads
   every row in the window);
5. with --window N (repeatable): heavy traffic against a window that already holds N
   rows: full 300k-row loads, their CPU per row and the dedup probe's share of each
   (what docs/storage.md's "Sizing the window" is measured with; --no-dedup-index for
   the probe without the index).
Goal (issue 2): >= 200k rows/s loading through Arrow.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa

from nerve.envelope import Envelope, to_record_batch
from nerve.loader import Loader, Pace
from nerve.loader._commit import as_json, commit_load, conform
from nerve.loader._recent import DEFAULT_CAPACITY
from nerve.log import LogWriter
from nerve.warehouse import EVENT_COLUMNS, Warehouse

T0 = time.time_ns() // 1000  # now: the rows are within a live loader's dedup window
PLATFORMS = ["ios", "android", "web"]


def envelope(i: int) -> Envelope:
    """A realistic track event (about 600 bytes of JSON across its fields)."""
    ts = T0 + i * 1000
    props = {"product_id": f"sku-{i % 5000}", "price": 19.99 + i % 50, "currency": "EUR",
             "category": "sneakers", "position": i % 20, "query": "running shoes"}
    context = {"library": {"name": "analytics-python", "version": "2.3.3"},
               "device": {"type": PLATFORMS[i % 3], "model": "Pixel 8"},
               "os": {"name": PLATFORMS[i % 3], "version": "14"},
               "app": {"version": "5.2.0", "build": "520"}, "locale": "de-DE",
               "ip": "203.0.113.7", "userAgent": "Mozilla/5.0 (Linux; Android 14)"}
    return {
        "message_id": str(uuid.uuid4()), "type": "track", "event": "product_viewed",
        "name": None, "user_id": f"user-{i % 20000}", "anonymous_id": str(uuid.uuid4()),
        "group_id": None, "previous_id": None, "timestamp": ts, "original_timestamp": ts,
        "sent_at": ts + 50, "received_at": ts + 80,
        "properties": orjson.dumps(props).decode(), "traits": None,
        "context": orjson.dumps(context).decode(), "source": "web", "historical": False,
        "schema_version": "1.0.0", "violations": None,
    }


class Clock:
    """Wall and CPU seconds (this process, all threads) of a block: on a machine shared
    with other work the wall figure varies, the CPU figure much less."""

    def __enter__(self) -> Clock:
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall0
        self.cpu = time.process_time() - self.cpu0


def make_batches(rows: int, size: int) -> list[pa.RecordBatch]:
    return [to_record_batch([envelope(i) for i in range(start, min(rows, start + size))])
            for start in range(0, rows, size)]


def bench_append(log_dir: Path, batches: list[pa.RecordBatch], threads: int) -> None:
    writer = LogWriter(log_dir, "w0")
    chunks = [batches[t::threads] for t in range(threads)]

    def work(mine: list[pa.RecordBatch]) -> None:
        for batch in mine:
            writer.append(batch)
            writer.sync()  # what a worker does before answering 200

    workers = [threading.Thread(target=work, args=(c,)) for c in chunks]
    with Clock() as clock:
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    writer.close()
    rows = sum(b.num_rows for b in batches)
    print(f"log append+sync   {rows:>9,} rows  {clock.wall:6.2f} s  "
          f"{rows / clock.wall:>10,.0f} rows/s  (CPU {clock.cpu:.2f} s; {len(batches)} syncs "
          f"by {threads} threads -> {writer.fsyncs} fsyncs)")


def bench_load(log_dir: Path, db: Path, threads: int | None, max_rows: int) -> None:
    """Drain the log in commits of up to ``max_rows`` (the server commits what arrived in
    the last 0.25 s: small commits when it keeps up)."""
    with Warehouse.open(f"duckdb://{db}", threads=threads) as warehouse:
        loader = Loader(log_dir, warehouse, max_rows=max_rows)
        with Clock() as clock:
            stats = loader.load_once()
            warehouse.cursor().execute("CHECKPOINT")  # the deferred work, counted too
    print(f"load into DuckDB  {stats.rows_in:>9,} rows  {clock.wall:6.2f} s  "
          f"{stats.rows_in / clock.wall:>10,.0f} rows/s  (CPU {clock.cpu:.2f} s; commits of "
          f"<= {max_rows:,} rows; DuckDB threads: {threads or 'default'})")


def fill(cur: Any, existing: int, days: int) -> None:
    """``existing`` rows with random message_ids spread over ``days`` before T0, in
    received order."""
    cur.execute(f"""
        INSERT INTO events (message_id, type, event, timestamp, received_at, source,
                            historical, properties, context, loaded_at)
        SELECT uuid()::VARCHAR, 'track', 'product_viewed', ts, ts, 'web', false,
               '{{"price": 1}}', '{{}}', ts
        FROM (SELECT make_timestamp({T0}) - INTERVAL {days} DAY
                     + to_microseconds((i * ({days} * 86400 * 1e6 / {existing}))::BIGINT)
                     AS ts FROM range({existing}) t(i))
    """)
    cur.execute("CHECKPOINT")


def bench_dedup(db: Path, existing: int, load_rows: int, with_index: bool) -> None:
    """One load of ``load_rows`` new events into a table of ``existing`` rows."""
    with Warehouse.open(f"duckdb://{db}") as warehouse:
        cur = warehouse.cursor()
        fill(cur, existing, days=30)
        offset = 10_000_000
        # the dedup probe alone, as the loader runs it: which of these ids are loaded?
        batch = as_json(conform(pa.Table.from_batches(
            [to_record_batch([envelope(offset + i) for i in range(load_rows)])])))
        lo = batch.column("received_at")[0].as_py()
        cur.register("b", batch)
        windows = (("24-hour window", timedelta(hours=24)), ("7-day window", timedelta(days=7)),
                   ("whole table", None))
        for label, window in windows:
            where = "" if window is None else "received_at >= $lo AND "
            params = {} if window is None else {"lo": lo - window}
            best = cpu = float("inf")
            for _ in range(5):
                with Clock() as clock:
                    cur.execute(f"SELECT DISTINCT message_id FROM events WHERE {where}"
                                "message_id IN (SELECT message_id FROM b)", params).fetchall()
                best, cpu = min(best, clock.wall), min(cpu, clock.cpu)
            print(f"dedup probe vs {existing:>10,} rows, {label:<14} {load_rows:>7,} ids  "
                  f"{best * 1000:8.1f} ms  (CPU {cpu * 1000:.0f} ms)")
        cur.unregister("b")
        # one whole load with the default window, for scale
        offset += load_rows
        batches = [to_record_batch([envelope(offset + i) for i in range(10_000)])
                   for _ in range(load_rows // 10_000)]
        with Clock() as clock:
            commit_load(cur, batches, writer="bench", segment="s", start_offset=0,
                        end_offset=1, dedup_window=timedelta(days=7))
        print(f"one whole load of {load_rows:,} rows (7-day window)  {clock.wall * 1000:8.1f} ms"
              f"  (CPU {clock.cpu * 1000:.0f} ms)")
        if not with_index:
            return
        # the third option: a persistent index of every message_id (an ART primary key)
        with Clock() as clock:
            cur.execute("CREATE TABLE seen (message_id VARCHAR PRIMARY KEY)")
            cur.execute("INSERT INTO seen SELECT message_id FROM events")
        built = clock.wall
        columns = ", ".join(f'"{c}"' for c in EVENT_COLUMNS)
        best = cpu = float("inf")
        for _ in range(2):
            offset += load_rows
            table = as_json(conform(pa.Table.from_batches(
                [to_record_batch([envelope(offset + i) for i in range(load_rows)])])))
            with Clock() as clock:
                cur.execute("BEGIN")
                cur.register("b", table)
                cur.execute("INSERT INTO seen SELECT message_id FROM b ON CONFLICT DO NOTHING")
                cur.execute(f"INSERT INTO events ({columns}, loaded_at) "
                            f"SELECT {columns}, now() FROM b")
                cur.execute("COMMIT")
                cur.unregister("b")
            best, cpu = min(best, clock.wall), min(cpu, clock.cpu)
        print(f"dedup vs {existing:>10,} rows, {'index table':<14} {load_rows:>7,} rows  "
              f"{best * 1000:8.1f} ms  {load_rows / best:>10,.0f} rows/s  "
              f"(CPU {cpu * 1000:.0f} ms; building the index took {built:.1f} s)")


def bench_trickle(scratch: Path, in_window: int, seconds: float, index_rows: int) -> None:
    """The background loader, paced as ``nerve serve`` paces it, under 100 events/s
    while ``in_window`` rows were received within the 7-day dedup window."""
    db = scratch / f"trickle-{index_rows}.duckdb"
    log_dir = scratch / f"trickle-{index_rows}"
    with Warehouse.open(f"duckdb://{db}", threads=1) as warehouse:
        fill(warehouse.cursor(), in_window, days=6)
        loader = Loader(log_dir, warehouse, dedup_index_rows=index_rows)
        with Clock() as build:
            loader.load_once()  # nothing to load yet: builds the index of the window's ids
        if index_rows:
            print(f"index of {loader.dedup_index_ids:,} ids built in {build.wall:.1f} s "
                  f"(CPU {build.cpu:.1f} s)")
        with LogWriter(log_dir, "trickle") as writer, Clock() as clock:
            loader.start(pace=Pace(interval=1.0, max_delay=3.0))
            sent = 0
            while time.perf_counter() - clock.wall0 < seconds:  # 10 events every 0.1 s
                writer.append(to_record_batch([envelope(50_000_000 + sent + k)
                                               for k in range(10)]))
                writer.sync()
                sent += 10
                time.sleep(0.1)
            loaded = loader.totals.loaded
            cpu = time.process_time() - clock.cpu0
        loader.stop()
        loads = warehouse.query("SELECT count(*) AS n FROM loads").column("n")[0].as_py()
    index = "index" if index_rows else "no index"
    print(f"trickle 100 events/s, {in_window:>11,} rows in the window, {index:<8}  "
          f"{loads:3} loads in {seconds:.0f} s, {sent - loaded:4} rows waiting at the end, "
          f"CPU {cpu:5.1f} s = {cpu / seconds:4.0%} of a core")


def bench_window(scratch: Path, in_window: int, index_rows: int, loads: int = 3,
                 rows: int = 300_000) -> None:
    """Full loads (as a loader that is behind commits them) while ``in_window`` rows were
    received within the 7-day dedup window: each load's probe reads all of them."""
    db = scratch / f"window-{in_window}.duckdb"
    log_dir = scratch / f"window-{in_window}"
    frame = to_record_batch([envelope(60_000_000 + i) for i in range(10_000)])
    with Warehouse.open(f"duckdb://{db}", threads=1) as warehouse:
        if in_window:
            fill(warehouse.cursor(), in_window, days=6)
        loader = Loader(log_dir, warehouse, dedup_index_rows=index_rows)
        with LogWriter(log_dir, "w0") as writer:
            for _ in range(loads):
                for _ in range(rows // frame.num_rows):  # fresh ids: every row is new
                    ids = pa.array([str(uuid.uuid4()) for _ in range(frame.num_rows)])
                    writer.append(frame.set_column(0, "message_id", ids))
                writer.sync()
                with Clock() as clock:
                    stats = loader.load_once()
                print(f"window {in_window:>11,} rows  load of {stats.rows_in:,} rows  "
                      f"{clock.wall:5.2f} s  CPU {clock.cpu / stats.rows_in * 1e6:5.2f} us "
                      f"per row  probe {stats.probe_seconds:5.2f} s = "
                      f"{stats.probe_seconds / clock.wall:4.0%} of the load")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--batch", type=int, default=100, help="events per append")
    parser.add_argument("--threads", type=int, default=4, help="appending threads")
    parser.add_argument("--existing", type=int, default=2_000_000,
                        help="rows already in events for the dedup comparison")
    parser.add_argument("--duckdb-threads", type=int, default=None,
                        help="cap DuckDB's threads for the load ([warehouse] threads)")
    parser.add_argument("--index", action="store_true",
                        help="also time an index table of message_ids (slow: minutes)")
    parser.add_argument("--trickle", type=int, default=0, metavar="N",
                        help="also time the background loader under 100 events/s with N "
                        "rows in the dedup window (20000000: ~2 minutes)")
    parser.add_argument("--trickle-seconds", type=float, default=30.0)
    parser.add_argument("--window", type=int, action="append", metavar="N",
                        help="full loads against N rows already in the dedup window "
                        "(repeat for several N)")
    parser.add_argument("--no-dedup-index", action="store_true",
                        help="with --window: the loader without its index of the window's "
                        "message_ids ([loader] dedup_index_rows = 0)")
    parser.add_argument("--dir", type=Path, default=None, help="scratch folder (default: tmp)")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="nerve-bench-", dir=args.dir))
    try:
        if args.window:
            for in_window in args.window:
                bench_window(scratch, in_window, 0 if args.no_dedup_index else DEFAULT_CAPACITY)
            return
        if args.trickle:
            for index_rows in (DEFAULT_CAPACITY, 0):
                bench_trickle(scratch, args.trickle, args.trickle_seconds, index_rows)
            return
        print(f"generating {args.rows:,} events in batches of {args.batch} ...")
        batches = make_batches(args.rows, args.batch)
        bench_append(scratch / "log", batches, args.threads)
        shutil.copytree(scratch / "log", scratch / "log-copy")  # loading deletes segments
        bench_load(scratch / "log", scratch / "load.duckdb", args.duckdb_threads, 200_000)
        bench_load(scratch / "log-copy", scratch / "small.duckdb", args.duckdb_threads, 10_000)
        print("  (goal: >= 200,000 rows/s loading through Arrow)")
        bench_dedup(scratch / "dedup.duckdb", args.existing, 100_000, args.index)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
