"""The commands on a demo workspace's file, and the same answers through `nerve serve`
(the CLI goes through the server while it holds the warehouse)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from click.testing import Result
from tests.anomaly.conftest import load_demo
from tests.conftest import Server, free_port, run_nerve

from nerve.cli._anomaly import table_row
from nerve.workspace import Workspace

NOW = "2026-11-20T12:00"


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    demo = load_demo(tmp_path_factory.mktemp("cli") / "shop", days=14, users=600)
    demo.warehouse.close()
    return demo.root


def nerve(root: Path, *args: str) -> Result:
    return run_nerve(root, *args)


def test_commands_on_the_warehouse_file(shop: Path) -> None:
    result = nerve(shop, "anomalies", "add_to_cart", "--by", "platform", "--backtest", "7d",
                   "--now", NOW, "--format", "json")
    assert result.exit_code in (0, 1), result.stderr
    rows = json.loads(result.stdout)
    assert isinstance(rows, list)
    assert all(r["target"] == "add_to_cart" for r in rows)
    assert result.exit_code == (1 if rows else 0)

    points = json.loads(nerve(shop, "anomalies", "add_to_cart", "--points", "--now", NOW,
                              "-f", "json").stdout)
    assert {p["value"] for p in points} >= {None, "android", "ios"}
    assert all(p["low"] <= p["expected"] <= p["high"] for p in points)

    explained = nerve(shop, "explain", "revenue", "--period", "7d", "--vs", "previous",
                      "--now", NOW, "-f", "json")
    assert explained.exit_code == 0, explained.stderr
    body = json.loads(explained.stdout)
    assert set(body) >= {"target", "period", "baseline", "observed", "change", "drivers",
                         "related", "caveats", "summary"}
    assert all(set(d) >= {"dimension", "value", "contribution", "observed", "expected"}
               for d in body["drivers"])

    forecast = nerve(shop, "forecast", "orders", "--horizon", "7d", "--now", NOW,
                     "-f", "json")
    assert forecast.exit_code == 0, forecast.stderr
    rows = json.loads(forecast.stdout)
    assert [r["kind"] for r in rows].count("forecast") == 7
    assert "inside the 90% interval" in " ".join(forecast.stderr.split())

    daily = nerve(shop, "anomalies", "add_to_cart", "--grain", "day", "--now", NOW)
    assert daily.exit_code in (0, 1), daily.stderr
    assert "add_to_cart (daily), " in " ".join(daily.stderr.split())  # it read "(dayly)"

    unknown = nerve(shop, "anomalies", "no_such_thing", "--now", NOW)
    assert unknown.exit_code != 0
    assert "neither a cataloged event nor a metric" in unknown.stderr

    # a --by no event carries (a typo) is refused, not judged as nothing ("No anomalies")
    typo = nerve(shop, "anomalies", "add_to_cart", "--by", "platfrom", "--now", NOW)
    assert typo.exit_code == 4, typo.stderr
    assert "--by 'platfrom' (did you mean platform?): no add_to_cart event" in typo.stderr


def test_the_server_answers_the_same_and_exposes_live_alerts(shop: Path) -> None:
    direct = json.loads(nerve(shop, "explain", "add_to_cart", "--period", "24h", "--now",
                              NOW, "-f", "json").stdout)
    server = Server(Workspace.load(shop), free_port()).start()
    try:
        through = json.loads(nerve(shop, "explain", "add_to_cart", "--period", "24h",
                                   "--now", NOW, "-f", "json").stdout)
        assert through == direct
        token = json.loads((shop / ".nerve" / "server.json").read_text())["admin_token"]
        headers = {"Authorization": f"Bearer {token}"}
        live = httpx.get(f"{server.url}/v1/anomalies/live", headers=headers, timeout=30)
        assert live.status_code == 200
        assert set(live.json()) >= {"open", "recent", "alerts_total"}
        text = httpx.get(f"{server.url}/v1/anomalies/metrics", headers=headers, timeout=30)
        assert "# TYPE nerve_anomaly_alerts_total counter" in text.text
        refused = httpx.get(f"{server.url}/v1/anomalies/live", timeout=30)
        assert refused.status_code == 401
        bad = httpx.post(f"{server.url}/v1/anomalies", headers=headers, timeout=30,
                         json={"target": "add_to_cart", "sensitivty": 3})
        assert bad.status_code == 400
        assert "sensitivty" in bad.json()["message"]
    finally:
        server.stop()



def test_the_table_shows_the_change_in_percent_and_times_to_the_minute() -> None:
    """`nerve anomalies` printed change -0.7134 (a 71% drop, or 0.7%?) and observed
    1.6111, expected 4.7608, with times as 2026-11-25T12:00:00+00:00 wrapped over lines."""
    row = {"target": "payment_failure_rate", "dimension": "payment_provider",
           "value": "adyen", "direction": "up", "start": "2026-11-28T20:00:00+00:00",
           "end": "2026-11-28T21:00:00+01:00", "observed": 0.428571, "expected": 0.029412,
           "change": 13.5613, "score": 9.1}
    shown = table_row(row)
    assert shown["change"] == "+1356.1%"
    assert (shown["observed"], shown["expected"]) == ("0.4286", "0.02941")
    assert shown["start"] == "2026-11-28 20:00"
    assert shown["end"] == "2026-11-28 21:00 +01:00"  # an offset other than UTC's is kept
    assert "score" not in shown


def test_the_related_table_reads_like_the_summary() -> None:
    """explain's Related table: "recipe_view up 101%" in the summary, a change of
    1.01116 and a z of 19.3175 in the table; CSV keeps every digit."""
    from nerve.cli._anomaly import related_rows
    from nerve.cli._common import Format

    related = [{"event": "recipe_view", "observed": 1442, "expected": 717,
                "change": 1.01116, "z": 19.3175}]
    assert related_rows(related, Format.table)[0] == {
        "event": "recipe_view", "observed": 1442, "expected": 717, "change": "+101.1%",
        "z": 19.3}
    assert related_rows(related, Format.csv) == related


def test_the_drivers_table_leaves_out_values_that_score_nothing() -> None:
    """A value that moved with the change but scores 0 (FR kept its usual share of a drop
    that sits on iOS) is no driver: the table titled "Drivers" does not list it, says how
    many it left out, and shows each row's score; CSV keeps every row."""
    from nerve.cli._anomaly import effect_rows, scored_drivers
    from nerve.cli._common import Format

    drivers = [{"dimension": "platform", "value": "ios", "score": 0.529, "z": -31.98},
               {"dimension": "country", "value": "FR", "score": 0.0, "z": -6.21}]
    kept, left = scored_drivers(drivers, Format.table)
    assert [d["value"] for d in kept] == ["ios"]
    assert left == 1
    assert effect_rows(kept, Format.table)[0]["score"] == 0.53
    assert scored_drivers(drivers, Format.csv) == (drivers, 0)
