"""Funnel benchmark: nerve on DuckDB against ClickHouse's ``windowFunnel`` (chdb).

Generates N events for M users in DuckDB with SQL (default 10M events, 1M users, 28 days,
the warehouse's ``events`` columns), then times a 5-step, 7-day sequential funnel:

- nerve: ``nerve.analytics.funnel`` over the DuckDB table through Ibis (``--method
  compiled``, the default on DuckDB: DuckDB scans and filters, numba kernels group and
  match; ``--method sql`` times the engine-agnostic SQL path instead);
- chdb: ``windowFunnel(7 days)`` over the same rows, loaded into a chdb MergeTree table
  once its background merges are done (neither is timed, as the DuckDB table is
  already there).

Each side runs in its own process, so its peak memory (max RSS) and its CPU time (all
threads, steadier than wall time on a busy machine) are its own. Each side makes one
warm-up call, then the two take turns for ``--repeat`` rounds (one timed call each, back
to back, the order alternating), so load from elsewhere on the machine weighs on both
alike; the best of each side counts, and the ratio per round is printed too. nerve's first call in a
fresh process (numba loading its compiled kernels from its disk cache) is printed too,
and, in another process with an empty numba cache, the very first call, compilation
included. The load average is printed before and after: on a shared machine, wall times
swing with it.

The per-step counts must be identical: nerve's sequential funnel uses the same greedy as
windowFunnel (latest start per step, events with equal timestamps taken in step order);
here every event matches at most one step, the case where the two are defined to agree
(with a row matching two steps windowFunnel lets one event fill both, nerve does not).

    pip install -e '.[bench]'
    python benchmarks/funnel.py                         # 10M events, 1M users
    python benchmarks/funnel.py --events 2000000 --users 200000 --repeat 1
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import ibis

from nerve.analytics import FunnelSpec, Step, funnel

STEPS = ["session_start", "search", "product_view", "add_to_cart", "purchase_complete"]
WINDOW = timedelta(days=7)


def generate(path: Path, events: int, users: int) -> None:
    """The events table: ~10 events per user over 28 days, 7 event names."""
    con = duckdb.connect(str(path))
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    con.execute(f"""
        CREATE OR REPLACE TABLE events AS
        WITH r AS (SELECT i, hash(i) AS h, hash(i + 1000000007) AS h2
                   FROM range({events}) t(i))
        SELECT
          'm' || i::VARCHAR AS message_id,
          'track' AS type,
          CASE WHEN h2 % 1000 < 200 THEN 'session_start'
               WHEN h2 % 1000 < 350 THEN 'search'
               WHEN h2 % 1000 < 650 THEN 'product_view'
               WHEN h2 % 1000 < 750 THEN 'add_to_cart'
               WHEN h2 % 1000 < 800 THEN 'checkout_start'
               WHEN h2 % 1000 < 830 THEN 'purchase_complete'
               ELSE 'app_error' END AS event,
          NULL::VARCHAR AS name,
          'u' || (h % {users})::VARCHAR AS user_id,
          NULL::VARCHAR AS anonymous_id,
          TIMESTAMPTZ '2026-11-01 00:00:00+00'
            + to_microseconds(((h2 >> 20) % (28::BIGINT * 86400 * 1000000))::BIGINT)
            AS timestamp,
          '{{"platform":"' || (['ios', 'android', 'web'])[1 + (h % 3)::INT] || '"}}'
            AS properties
        FROM r
    """)
    con.execute("CHECKPOINT")
    con.close()


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _serve(call: Any, conn: Any, **ready: Any) -> None:
    """Answer the parent: "run" times one ``call()`` (wall and CPU seconds, per-step
    counts), "stop" sends the peak memory and ends. One warm-up call first."""
    call()
    conn.send(ready)
    while conn.recv() == "run":
        start, cpu = time.perf_counter(), time.process_time()
        counts = call()
        conn.send((time.perf_counter() - start, time.process_time() - cpu, counts))
    conn.send(_peak_mb())


def run_nerve(path: str, method: str, cache_dir: str | None, conn: Any) -> None:
    if cache_dir:  # an empty numba cache: the first call compiles the kernels
        os.environ["NUMBA_CACHE_DIR"] = cache_dir
    con = ibis.duckdb.connect(path, read_only=True)
    con.raw_sql("SET enable_progress_bar = false")
    events = con.table("events")
    spec = FunnelSpec(tuple(Step(s) for s in STEPS), window=WINDOW)
    start = time.perf_counter()
    used = funnel(events, spec, method=method).extra["method"]  # type: ignore[arg-type]
    first = time.perf_counter() - start

    def call() -> list[int]:
        result = funnel(events, spec, method=method)  # type: ignore[arg-type]
        return [r["users"] for r in result.rows]

    _serve(call, conn, first=first, method=used)


def run_chdb(path: str, conn: Any) -> None:
    from chdb import session  # noqa: PLC0415 - the bench extra, only in this child

    parquet = Path(path).with_suffix(".parquet")
    con = duckdb.connect(path, read_only=True)
    con.execute("SET enable_progress_bar = false")
    con.execute(f"COPY (SELECT user_id, event, timestamp FROM events) TO '{parquet}' "
                "(FORMAT parquet)")
    con.close()
    with tempfile.TemporaryDirectory(prefix="nerve-chdb-") as tmp:
        sess = session.Session(tmp)
        sess.query("CREATE DATABASE IF NOT EXISTS b")
        sess.query("CREATE TABLE b.events (user_id String, event LowCardinality(String), "
                   "timestamp DateTime64(6, 'UTC')) ENGINE = MergeTree ORDER BY tuple()")
        sess.query(f"INSERT INTO b.events SELECT user_id, event, timestamp "
                   f"FROM file('{parquet}', Parquet)")
        parquet.unlink()
        # wait for the background merges of the inserted parts to end, so that none
        # runs during the timed calls of either side (forcing one part with OPTIMIZE
        # FINAL made chdb's funnel ~10% slower: it is not done)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and str(sess.query(
                "SELECT count() FROM system.merges", "CSV")).strip() != "0":
            time.sleep(0.2)
        conds = ", ".join(f"event = '{s}'" for s in STEPS)
        names = ", ".join(f"'{s}'" for s in STEPS)
        window_us = int(WINDOW.total_seconds() * 1_000_000)
        sql = f"""
            SELECT level, count() AS n FROM (
              SELECT user_id, windowFunnel({window_us})(
                       toUInt64(toUnixTimestamp64Micro(timestamp)), {conds}) AS level
              FROM b.events WHERE event IN ({names}) GROUP BY user_id)
            GROUP BY level ORDER BY level"""

        def call() -> list[int]:
            text = str(sess.query(sql, "JSONCompact"))
            levels = {int(a): int(b) for a, b in json.loads(text)["data"]}
            # windowFunnel gives each user's deepest level; a step's users reached it
            # or deeper
            return [sum(n for level, n in levels.items() if level >= k + 1)
                    for k in range(len(STEPS))]

        _serve(call, conn)
        sess.close()


class _Child:
    """One side of the benchmark in its own process, set up and warmed up."""

    def __init__(self, target: Any, *args: Any) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=target, args=(*args, child))
        self.proc.start()
        self.info: dict[str, Any] = self.conn.recv()
        self.times: list[float] = []
        self.cpu: list[float] = []
        self.counts: list[int] = []

    def run(self) -> None:
        self.conn.send("run")
        wall, cpu, self.counts = self.conn.recv()
        self.times.append(wall)
        self.cpu.append(cpu)

    def stop(self) -> float:
        """Ends the process; returns its peak memory in MB."""
        self.conn.send("stop")
        peak: float = self.conn.recv()
        self.proc.join()
        return peak


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3,
                        help="timed runs per engine after one warm-up; best counts")
    parser.add_argument("--method", choices=["compiled", "sql"], default="compiled")
    parser.add_argument("--skip-cold", action="store_true",
                        help="skip the run with an empty numba cache (compilation)")
    parser.add_argument("--data", type=Path, help="reuse/keep the generated DuckDB file here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="nerve-funnel-bench-") as tmp:
        path = args.data or Path(tmp) / "events.duckdb"
        if not path.exists():
            start = time.perf_counter()
            generate(path, args.events, args.users)
            print(f"generated {args.events:,} events for {args.users:,} users "
                  f"in {time.perf_counter() - start:.1f} s")
        print(f"load average (1, 5, 15 min) before: {_load()}")
        cold = None
        if args.method == "compiled" and not args.skip_cold:
            child = _Child(run_nerve, str(path), args.method, str(Path(tmp) / "numba"))
            cold = child.info["first"]
            child.stop()
        # both sides stay up and take turns (nerve first on even rounds, chdb on odd):
        # the machine's other load then weighs on both alike
        nerve, ch = _Child(run_nerve, str(path), args.method, None), _Child(run_chdb, str(path))
        for i in range(args.repeat):
            for side in (nerve, ch) if i % 2 == 0 else (ch, nerve):
                side.run()
        peak_n, peak_c = nerve.stop(), ch.stop()
        print(f"load average (1, 5, 15 min) after:  {_load()}")

    print(f"funnel: {' -> '.join(STEPS)}, window {WINDOW.days} days")
    print(f"{'step':<20}{'nerve':>12}{'chdb':>12}")
    for name, a, b in zip(STEPS, nerve.counts, ch.counts, strict=True):
        print(f"{name:<20}{a:>12,}{b:>12,}")
    same = nerve.counts == ch.counts
    best_n, best_c = min(nerve.times), min(ch.times)
    print(f"nerve (DuckDB, {nerve.info['method']}): best {best_n:.3f} s of "
          f"{len(nerve.times)} after a warm-up ({', '.join(f'{t:.2f}' for t in nerve.times)}),"
          f" peak memory {peak_n:.0f} MB")
    kernels = " (kernels from numba's disk cache)" if nerve.info["method"] == "compiled" else ""
    print(f"  first call in a fresh process{kernels}: {nerve.info['first']:.2f} s")
    if cold is not None:
        print(f"  first call with an empty numba cache (compiling the kernels): {cold:.2f} s")
    print(f"chdb windowFunnel: best {best_c:.3f} s of {len(ch.times)} after a warm-up "
          f"({', '.join(f'{t:.2f}' for t in ch.times)}), peak memory {peak_c:.0f} MB")
    print(f"ratio nerve/chdb (best wall times): {best_n / best_c:.2f} "
          f"({'no slower than' if best_n <= best_c else 'slower than'} chdb)")
    ratios = sorted(a / b for a, b in zip(nerve.times, ch.times, strict=True))
    print(f"ratio per round (each round runs both, back to back): median "
          f"{ratios[len(ratios) // 2]:.2f}, range {ratios[0]:.2f}-{ratios[-1]:.2f}")
    # CPU seconds (all threads of each process): steadier than wall time on a busy machine
    cpu_n, cpu_c = min(nerve.cpu), min(ch.cpu)
    print(f"CPU time, best run: nerve {cpu_n:.2f} s, chdb {cpu_c:.2f} s, "
          f"ratio {cpu_n / cpu_c:.2f}")
    print(f"per-step counts identical: {same}")
    if not same:
        print("FAIL: the per-step counts differ", file=sys.stderr)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
