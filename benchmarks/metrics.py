"""Time the demo's metrics over generated shop traffic on DuckDB.

    python benchmarks/metrics.py [--events 2000000] [--users 100000]

The data is generated with SQL inside an in-memory DuckDB: 28 days of events with the
demo catalog's names, JSON properties and context (three platforms), and two identify
calls per user (their age and age group change half way). Then it times a handful of
typical semantic-layer queries (each compiled through Ibis and run once after a
warm-up) and prints the seconds per query.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

import ibis

from nerve.catalog import Catalog
from nerve.demo import SHOP_DIR
from nerve.semantic import MetricQuery, SemanticLayer

NOW = datetime(2026, 11, 28, tzinfo=UTC)

GENERATE = """
CREATE TABLE events AS
WITH base AS (
  SELECT i,
         'u' || (hash(i) % {users}) AS user_id,
         TIMESTAMPTZ '2026-10-31 00:00:00+00'
           + to_microseconds((hash(i * 7) % (28 * 86400000000))::BIGINT) AS ts,
         hash(i * 13) % 100 AS r
  FROM range({events}) t(i)
)
SELECT 'm' || i AS message_id, 'track' AS type,
       CASE WHEN r < 20 THEN 'session_start' WHEN r < 55 THEN 'product_view'
            WHEN r < 70 THEN 'add_to_cart' WHEN r < 80 THEN 'checkout_start'
            WHEN r < 86 THEN 'payment_submitted' WHEN r < 87 THEN 'payment_failed'
            WHEN r < 92 THEN 'purchase_complete' ELSE 'product_search' END AS event,
       NULL::VARCHAR AS name, user_id, NULL::VARCHAR AS anonymous_id, ts AS timestamp,
       ts AS received_at,
       json_object('session_id', 's_' || (i // 20), 'revenue', (hash(i) % 20000) / 100.0,
                   'price', (hash(i) % 20000) / 100.0, 'currency', 'USD',
                   'is_first_session', r % 7 = 0, 'results_count', r % 5)::JSON AS properties,
       NULL::JSON AS traits,
       json_object('device', json_object(
         'type', ['ios', 'android', 'web'][(1 + hash(user_id) % 3)::BIGINT]))::JSON AS context,
       'web' AS source, false AS historical, '1.0.0' AS schema_version
FROM base
UNION ALL
SELECT 'i' || u || '-' || k, 'identify', NULL, NULL, 'u' || u, NULL,
       TIMESTAMPTZ '2026-10-01 00:00:00+00' + INTERVAL (k * 30) DAY,
       TIMESTAMPTZ '2026-10-01 00:00:00+00',
       NULL::JSON,
       json_object('age', 18 + (hash(u) % 60) + k, 'age_group',
                   CASE WHEN 18 + (hash(u) % 60) + k >= 65 THEN '65+' ELSE 'under 65' END,
                   'country', ['DE', 'US', 'FR'][(1 + hash(u) % 3)::BIGINT], 'plan', 'free')::JSON,
       NULL::JSON, 'web', false, '1.0.0'
FROM range({users}) a(u), range(2) b(k)
"""

QUERIES = {
    "revenue, orders, aov by week": MetricQuery(
        ("revenue", "orders", "average_order_value"), grain="week", since="4w"),
    "revenue by platform by day": MetricQuery(("revenue",), by=("platform",), grain="day",
                                             since="28d"),
    "active users by day": MetricQuery(("active_users",), grain="day", since="28d"),
    "wau (7-day window) by day": MetricQuery(("wau",), grain="day", since="28d"),
    "checkout conversion by week": MetricQuery(("checkout_conversion",), grain="week",
                                               since="4w"),
    "revenue by age group (as-of trait)": MetricQuery(("revenue",), by=("age_group",),
                                                      grain="week", since="4w"),
    "revenue wow, seniors": MetricQuery(("revenue_wow",), grain="week", since="4w",
                                        segments=("seniors",)),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--users", type=int, default=100_000)
    args = parser.parse_args()
    con = ibis.duckdb.connect()
    started = time.perf_counter()
    con.raw_sql(GENERATE.format(events=args.events, users=args.users))
    print(f"generated {args.events:,} events and {2 * args.users:,} identifies "
          f"in {time.perf_counter() - started:.1f} s")
    layer = SemanticLayer.from_folder(SHOP_DIR / "metrics", Catalog.load(SHOP_DIR / "events"))
    table = con.table("events")
    total = 0.0
    for label, query in QUERIES.items():
        layer.query(query, table, now=NOW)  # warm-up
        started = time.perf_counter()
        result = layer.query(query, table, now=NOW)
        seconds = time.perf_counter() - started
        total += seconds
        print(f"{seconds:7.2f} s  {result.table.num_rows:4d} rows  {label}")
    print(f"{total:7.2f} s  total")


if __name__ == "__main__":
    main()
