"""Identity stitching: a device's anonymous rows belong to the first user seen on it.

The expression runs on DuckDB, PostgreSQL and Spark (the ``engine`` fixture); the CLI
test shows a funnel and a metric counting one person across a sign-in, while the stored
rows keep their ids as sent.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.analytics.conftest import at
from typer.testing import CliRunner

from nerve.analytics import FunnelSpec, RetentionSpec, Step, TrendSpec, funnel, retention, trend
from nerve.catalog import Catalog, EventSpec, Version
from nerve.cli import app
from nerve.semantic import MetricQuery, SemanticLayer, query
from nerve.warehouse import Warehouse, stitch_identities
from nerve.workspace import Workspace


def row(minutes: float, user: str | None, device: str | None, *, type_: str = "track",
        event: str | None = "product_view", previous: str | None = None) -> dict[str, Any]:
    return {"timestamp": at(minutes), "user_id": user, "anonymous_id": device,
            "type": type_, "event": event if type_ == "track" else None,
            "previous_id": previous, "message_id": f"m{minutes}-{user}-{device}"}


ROWS = [
    # a1: browses anonymously, signs in as u1, goes on signed in
    row(0, None, "a1"), row(1, None, "a1"),
    row(2, "u1", "a1", type_="identify"), row(3, "u1", "a1", event="purchase"),
    # a2: never signs in
    row(0, None, "a2"),
    # a3: a shared device, u2 first and u3 later; its anonymous rows are u2's
    row(5, None, "a3"), row(6, "u2", "a3", type_="identify"),
    row(7, "u3", "a3", type_="identify"), row(8, "u3", "a3", event="purchase"),
    # a4: linked by an alias call only (its rows never carry both ids)
    row(0, None, "a4"), row(9, "u4", None, type_="alias", previous="a4"),
    # a server-side call with a user id and no device
    row(4, "u5", None, event="purchase"),
]


def test_anonymous_rows_take_the_first_user_seen_on_their_device(
        engine: Any, events_table: Any) -> None:
    events = engine.load("identity_events", events_table(ROWS))
    stitched = stitch_identities(events).select("message_id", "user_id").to_pyarrow()
    got = dict(zip(stitched["message_id"].to_pylist(), stitched["user_id"].to_pylist(),
                   strict=True))
    want = {r["message_id"]: r["user_id"] for r in ROWS}
    want.update({"m0-None-a1": "u1", "m1-None-a1": "u1", "m5-None-a3": "u2",
                 "m0-None-a4": "u4"})
    assert got == want  # a2 stays anonymous; u3's own rows stay u3's


def test_a_table_without_alias_columns_is_linked_by_rows_with_both_ids() -> None:
    import ibis

    rows = [row(0, None, "a1"), row(1, "u1", "a1"), row(2, None, "a2")]
    table = ibis.memtable([{k: r[k] for k in ("user_id", "anonymous_id", "timestamp")}
                           for r in rows])
    stitched = stitch_identities(table).order_by("timestamp").to_pyarrow()
    assert stitched["user_id"].to_pylist() == ["u1", "u1", None]
    no_device = ibis.memtable([{"user_id": "u1", "timestamp": at(0)}])
    assert stitch_identities(no_device) is no_device


SHOP = [
    row(0, None, "a1"), row(1, "u1", "a1", type_="identify"),
    row(2, "u1", "a1", event="purchase"),
    row(0, None, "a2"),
    row(3, "u3", "a3"),
]


def test_a_funnel_and_a_metric_count_one_person_across_a_sign_in(
        make_workspace: Callable[..., Workspace], events_table: Any) -> None:
    ws = make_workspace({"product_view.yaml": "name: product_view\n",
                         "purchase.yaml": "name: purchase\n"})
    (ws.metrics_dir / "shop.yaml").write_text(
        "metrics:\n  viewers:\n    measure: {agg: count_distinct, event: product_view}\n")
    with Warehouse.for_workspace(ws) as wh:
        cur = wh.cursor()
        cur.register("rows", events_table(SHOP))
        cur.execute("INSERT INTO events SELECT * FROM rows")

    def run(*args: str) -> Any:
        result = CliRunner().invoke(app, ["--workspace", str(ws.root), *args, "--format",
                                          "json"])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    funnel = run("funnel", "product_view", "purchase", "--window", "1h")
    assert [(r["users"], r["conversion"]) for r in funnel] == [(3, 1.0), (1, 1 / 3)]
    metric = run("metrics", "query", "viewers", "--since", "2026-11-02", "--until",
                 "2026-11-03")
    assert [r["viewers"] for r in metric] == [3]  # u1 (a1 before sign-in), a2, u3
    # the warehouse keeps the rows as they were sent
    stored = run("sql", "SELECT count(*) AS n FROM events WHERE user_id IS NULL")
    assert stored == [{"n": 2}]


def test_the_python_api_stitches_by_default_as_the_cli_does(
        engine: Any, events_table: Any) -> None:
    events = engine.load("identity_python_api", events_table(SHOP))
    spec = FunnelSpec((Step("product_view"), Step("purchase")), window=timedelta(hours=1))
    # u1 (a1 before sign-in), a2, u3; without stitching a1 is a person of its own
    assert [r["users"] for r in funnel(events, spec).rows] == [3, 1]
    assert [r["users"] for r in funnel(events, spec, stitch=False).rows] == [3, 0]
    assert funnel(events, spec).users(2) == ["u1"]

    cohort = RetentionSpec(start_event="product_view", return_event="purchase", periods=1)
    # one cohort of 3 on 2026-11-02; u1 bought that day, a1 did not (day 1: no data yet)
    assert [(r["cohort_size"], r["users"])
            for r in retention(events, cohort, now=at(60 * 48))] == [(3, 1), (3, None)]
    assert [(r["cohort_size"], r["users"]) for r in retention(
        events, cohort, now=at(60 * 48), stitch=False)] == [(3, 0), (3, None)]

    # every track event: u1 (a1's view and u1's purchase), a2, u3
    day = TrendSpec(since=datetime(2026, 11, 2, tzinfo=UTC),
                    until=datetime(2026, 11, 3, tzinfo=UTC),
                    measure="users", compare=False)
    assert [r["value"] for r in trend(events, day, now=at(60 * 48))] == [3]
    assert [r["value"] for r in trend(events, day, now=at(60 * 48), stitch=False)] == [4]



def test_the_semantic_layer_stitches_by_default_as_the_cli_does(
        engine: Any, events_table: Any, tmp_path: Path) -> None:
    events = engine.load("identity_semantic_api", events_table(SHOP))
    catalog = Catalog.from_specs([EventSpec(name=n, version=Version(1))
                                  for n in ("product_view", "purchase")])
    (tmp_path / "shop.yaml").write_text(
        "metrics:\n  people:\n    measure: {agg: count_distinct, event: '*'}\n")
    layer = SemanticLayer.from_folder(tmp_path, catalog)
    day = MetricQuery(("people",), since="2026-11-02", until="2026-11-02")
    # u1 (a1 before sign-in), a2, u3; without stitching a1 is a person of its own
    assert layer.query(day, events).rows() == [{"people": 3}]
    assert layer.query(day, events, stitch=False).rows() == [{"people": 4}]
    assert query("people", layer=layer, table=events, since="2026-11-02",
                 until="2026-11-02").rows() == [{"people": 3}]

def test_a_stitched_table_is_not_stitched_again(events_table: Any) -> None:
    import ibis

    events = ibis.duckdb.connect().create_table("events", events_table(SHOP))
    stitched = stitch_identities(events)
    assert stitch_identities(stitched) is stitched  # no second join on analysis_events'
    assert stitch_identities(events) is not events
