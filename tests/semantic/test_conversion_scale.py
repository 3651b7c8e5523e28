"""A conversion over thousands of people on PostgreSQL, identities stitched as analyses
read them: it must not compare every base event with every event.

PostgreSQL guesses one row for filtered identity-stitched events; a conversion written
as a join on the entity then ran as a nested loop (45k events, 12k checkouts: 100+ s).
The statement timeout is generous (the query takes well under a second): it fails the
test on such a plan without timing anything.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from tests.semantic.conftest import track, ts

from nerve.semantic import MetricQuery, SemanticLayer
from nerve.warehouse import stitch_identities

PEOPLE = 3000
#: per person 15 events, 20 minutes apart: the first two signed out (device a<g> only),
#: a checkout at k = 1, 5, 9, 13 and, for even people only, a purchase 20 minutes later
FILL = """
INSERT INTO {table} (type, event, user_id, anonymous_id, message_id, "timestamp",
                     received_at, loaded_at, source, historical, properties)
SELECT 'track',
       CASE WHEN k % 4 = 1 THEN 'checkout_start'
            WHEN k % 4 = 2 AND g % 2 = 0 THEN 'purchase_complete'
            ELSE 'product_view' END,
       CASE WHEN k <= 2 THEN NULL ELSE 'u' || g END, 'a' || g, g || '-' || k, at, at, at,
       'web', false, '{{"revenue": 10}}'
FROM generate_series(1, {people}) AS g, generate_series(1, 15) AS k,
     LATERAL (SELECT TIMESTAMPTZ '2026-03-01 00:00:00+00'
                     + (g * 7 % 40000) * INTERVAL '1 minute'
                     + k * INTERVAL '20 minutes' AS at) AS times
"""


@pytest.fixture
def postgres() -> Any:
    url = os.environ.get("NERVE_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("PostgreSQL: set NERVE_TEST_POSTGRES_URL (.ci/run does)")
    import ibis

    con = ibis.connect(url)
    yield con
    con.disconnect()


def test_a_conversion_over_stitched_events_runs_without_a_cross_join(
        make_layer: Callable[..., SemanticLayer], postgres: Any,
        events_table: Callable[[list[dict[str, Any]]], Any]) -> None:
    name = f"conversion_scale_{uuid.uuid4().hex[:8]}"
    shape = events_table([track("product_view", ts(2026, 3, 1), "u0")])
    postgres.create_table(name, shape.slice(0, 0))
    try:
        postgres.raw_sql(FILL.format(table=name, people=PEOPLE)).close()
        postgres.raw_sql(f"ANALYZE {name}").close()
        postgres.raw_sql("SET statement_timeout = '10s'").close()
        layer = make_layer()
        events = stitch_identities(postgres.table(name))
        query = MetricQuery.build(["checkout_conversion", "checkout_conversions"],
                                  since="2026-03-01", until="2026-03-31")
        rows = layer.query(query, events, now=datetime(2026, 4, 1, tzinfo=UTC)).rows()
        # every person checked out (signed out first: stitched to u<g>); the even half
        # bought 20 minutes after each of their 4 checkouts
        assert rows == [{"checkout_conversion": 0.5, "checkout_conversions": PEOPLE // 2}]
    finally:
        postgres.raw_sql("RESET statement_timeout").close()
        postgres.drop_table(name, force=True)
