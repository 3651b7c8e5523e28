"""`nerve metrics ...` on a real workspace and warehouse, directly and through `nerve serve`."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from tests.semantic.conftest import EVENTS, METRICS
from tests.semantic.test_engines import HISTORY
from typer.testing import CliRunner

from nerve.cli import ExitCode, app
from nerve.envelope import to_record_batch
from nerve.loader import Loader
from nerve.log import LogWriter
from nerve.warehouse import Warehouse
from nerve.workspace import Workspace

runner = CliRunner()


def _micros(moment: Any) -> int:
    return int(moment.timestamp() * 1_000_000)


def _envelope(i: int, row: dict[str, Any]) -> dict[str, Any]:
    def text(key: str) -> str | None:
        value = row.get(key)
        return orjson.dumps(value).decode() if value is not None else None

    return {
        "message_id": f"m{i}", "type": row.get("type", "track"), "event": row.get("event"),
        "name": None, "user_id": row.get("user_id"), "anonymous_id": row.get("anonymous_id"),
        "group_id": None, "previous_id": None, "timestamp": _micros(row["timestamp"]),
        "original_timestamp": None, "sent_at": None,
        "received_at": _micros(row["timestamp"]), "properties": text("properties"),
        "traits": text("traits"), "context": text("context"), "source": "web",
        "historical": True, "schema_version": "1.0.0", "violations": None,
    }


@pytest.fixture
def shop(make_workspace: Callable[..., Workspace]) -> Workspace:
    """A workspace with the test shop's catalog, metrics and history in its warehouse."""
    ws = make_workspace(EVENTS)
    (ws.metrics_dir / "shop.yaml").write_text(METRICS, encoding="utf-8")
    with LogWriter(ws.log_dir) as writer:
        writer.append(to_record_batch([_envelope(i, r) for i, r in enumerate(HISTORY)]))
        writer.sync()
    with Warehouse.for_workspace(ws) as warehouse:
        Loader(ws.log_dir, warehouse).load_once()
    return ws


def nerve(ws: Workspace, *args: str) -> Any:
    return runner.invoke(app, ["--workspace", str(ws.root), "metrics", *args])


WEEKLY = ["query", "revenue", "aov", "checkout_conversion", "--grain", "week",
          "--since", "2026-03-02", "--until", "2026-03-15", "--format", "json"]
EXPECTED = [
    {"week": "2026-03-02", "revenue": 70.0, "aov": 35.0, "checkout_conversion": 0.5},
    {"week": "2026-03-09", "revenue": 130.0, "aov": 65.0, "checkout_conversion": None},
]


def test_query_json_is_an_array_of_rows(shop: Workspace) -> None:
    result = nerve(shop, *WEEKLY)
    assert result.exit_code == ExitCode.OK, result.output
    assert json.loads(result.stdout) == EXPECTED


def test_query_by_a_dimension_with_a_segment_as_csv(shop: Workspace) -> None:
    result = nerve(shop, "query", "orders", "--by", "platform", "--segment", "seniors",
                   "--since", "2026-03-01", "--until", "2026-03-31", "--format", "csv")
    assert result.exit_code == ExitCode.OK, result.output
    assert result.stdout.splitlines() == ["platform,orders", "Android,1", "iOS,1"]


def test_a_breakdown_over_a_range_without_events_says_so(shop: Workspace) -> None:
    """No breakdown value is seen in a range without events, so there is no row: the
    table said nothing at all (an empty line) and the CSV had no header for a script."""
    args = ("query", "orders", "revenue", "--by", "platform", "--grain", "week",
            "--since", "2025-01-06", "--until", "2025-01-19")
    result = nerve(shop, *args, "--format", "csv")
    assert result.exit_code == ExitCode.OK, result.output
    assert result.stdout.splitlines() == ["week,platform,orders,revenue"]
    result = nerve(shop, *args)
    assert result.exit_code == ExitCode.OK, result.output
    assert "no rows" in result.stdout, result.stdout
    assert "platform" in result.stdout
    assert "2025-01-06" in result.stdout  # the range it looked at
    result = nerve(shop, *args, "--format", "json")
    assert json.loads(result.stdout) == []


def test_query_full_json_has_sql_and_lineage(shop: Workspace) -> None:
    result = nerve(shop, "query", "eur_revenue", "--where", "user.country = 'DE'",
                   "--since", "2026-03-01", "--until", "2026-03-31", "--format", "json",
                   "--full")
    assert result.exit_code == ExitCode.OK, result.output
    body = json.loads(result.stdout)
    assert body["rows"] == [{"eur_revenue": 150.0}]
    assert "->> '$.revenue'" in body["sql"]  # DuckDB's json_extract_string
    lineage = body["lineage"]["eur_revenue"]
    assert lineage["events"] == ["purchase_complete"]
    assert "purchase_complete.properties.revenue" in lineage["fields"]
    assert any("currency = 'EUR'" in f for f in lineage["filters"])
    assert any("user.country = 'DE'" in f for f in lineage["filters"])
    # the answer has the fields docs/metrics.md lists, no more (a `notes` that nothing
    # filled was documented and always [])
    docs = (Path(__file__).resolve().parents[2] / "docs" / "metrics.md").read_text()
    [line] = [text for text in docs.splitlines() if text.startswith("| `POST /v1/metrics/query`")]
    assert set(body) == set(re.findall(r'"(\w+)"', line.split("{", 1)[1]))
    assert [key for key, value in body.items() if value in ([], {}, "")] == []


def test_query_table_formats_values(shop: Workspace) -> None:
    result = nerve(shop, "query", "revenue", "checkout_conversion", "--since", "2026-03-01",
                   "--until", "2026-03-07")
    assert result.exit_code == ExitCode.OK, result.output
    assert "70.00 EUR" in result.stdout
    assert "50.0%" in result.stdout


def test_query_table_keeps_the_digits_of_a_plain_number(shop: Workspace) -> None:
    """A `number` metric that is not a whole number shows its value to the cent, with
    thousands separators: not `7e+04` (four significant digits) for 70,000.70."""
    (shop.metrics_dir / "big.yaml").write_text(
        "metrics:\n  revenue_scaled:\n    type: derived\n    expr: revenue * 1000.01\n",
        encoding="utf-8")
    args = ("query", "revenue_scaled", "--since", "2026-03-01", "--until", "2026-03-07")
    value = json.loads(nerve(shop, *args, "--format", "json").stdout)[0]["revenue_scaled"]
    assert value >= 10_000
    assert not value.is_integer()
    result = nerve(shop, *args)
    assert result.exit_code == ExitCode.OK, result.output
    assert f"{round(value, 2):,}" in result.stdout
    assert "e+" not in result.stdout


def test_a_synonym_keeps_the_asked_name(shop: Workspace) -> None:
    result = nerve(shop, "query", "actives", "--since", "2026-03-01", "--until",
                   "2026-03-31", "--format", "json", "--full")
    assert result.exit_code == ExitCode.OK, result.output
    body = json.loads(result.stdout)
    assert body["rows"] == [{"actives": 4}]
    assert body["lineage"]["actives"]["metric"] == "active_users"


def test_query_errors_exit_invalid(shop: Workspace) -> None:
    result = nerve(shop, "query", "profit", "--format", "json")
    assert result.exit_code == ExitCode.INVALID
    assert "unknown metric 'profit'" in result.stderr
    # nothing alike: it lists the metrics there are (it said only "unknown")
    assert "; metrics: " in result.stderr
    assert "revenue" in result.stderr
    assert result.stdout == ""


def test_a_misspelt_grain_gets_a_did_you_mean(shop: Workspace) -> None:
    result = nerve(shop, "query", "orders", "--grain", "weak", "--format", "json")
    assert result.exit_code == ExitCode.INVALID
    assert "unknown grain 'weak'" in result.stderr
    assert "did you mean week?" in result.stderr


def test_equals_null_reads_as_is_null(shop: Workspace) -> None:
    """`= NULL` and `!= NULL` match nothing in SQL; a filter reads them as IS NULL and
    IS NOT NULL (docs/metrics.md, "Filters"), on either side. u3's product view has no
    platform."""
    def events(where: str) -> Any:
        result = nerve(shop, "query", "events", "--where", where, "--since", "2026-03-01",
                       "--until", "2026-03-31", "--format", "json")
        assert result.exit_code == ExitCode.OK, result.output
        return json.loads(result.stdout)[0]["events"]

    missing, present = events("platform IS NULL"), events("platform IS NOT NULL")
    assert missing > 0
    assert present > 0
    assert events("platform = NULL") == events("NULL = platform") == missing
    assert events("platform != NULL") == events("NULL <> platform") == present
    refused = nerve(shop, "query", "events", "--where", "platform < NULL")
    assert refused.exit_code == ExitCode.INVALID
    assert "IS NULL" in refused.stderr


@pytest.mark.parametrize("where", ["platform = 'iOS'; DROP TABLE events",
                                   "platform = 'iOS'; user.country = 'BR'"])
def test_a_filter_of_several_statements_is_refused(shop: Workspace, where: str) -> None:
    """Not the first statement's figure with exit 0: the CLI and the MCP tool say why."""
    from nerve.errors import QueryError
    from nerve.mcp._server import call

    result = nerve(shop, "query", "orders", "--where", where, "--since", "2026-03-01",
                   "--until", "2026-03-31", "--format", "json")
    assert result.exit_code == ExitCode.INVALID, result.output
    assert "query where" in result.stderr
    assert "2 statements" in result.stderr
    assert result.stdout == ""
    with pytest.raises(QueryError, match=r"query where: .*2 statements"):
        call(shop, "query_metrics", {"metrics": ["orders"], "where": where})


def test_list_show_and_lint(shop: Workspace) -> None:
    listed = json.loads(nerve(shop, "list", "--format", "json").stdout)
    assert {"metric": "aov", "type": "ratio", "label": "aov", "format": "currency",
            "owner": "", "description": "", "synonyms": ""} in listed
    shown = nerve(shop, "show", "actives", "--format", "json")
    assert shown.exit_code == ExitCode.OK, shown.output
    info = json.loads(shown.stdout)
    assert (info["name"], info["events"]) == ("active_users", [])
    assert info["formula"] == "count_distinct(user) of any event"
    lint = nerve(shop, "lint")
    assert lint.exit_code == ExitCode.OK, lint.output
    assert "18 metrics, no problems" in lint.stdout


def test_lint_fails_with_file_and_line(shop: Workspace) -> None:
    (shop.metrics_dir / "broken.yaml").write_text(
        "metrics:\n  refunds:\n    measure: {agg: count, event: refund}\n", encoding="utf-8")
    result = nerve(shop, "lint", "--format", "json")
    assert result.exit_code == ExitCode.FAILED
    rows = json.loads(result.stdout)
    assert rows == [{"file": "metrics/broken.yaml", "line": 3, "severity": "error",
                     "message": "refunds.measure.event: 'refund' is not in the catalog"}]


def test_query_on_a_broken_file_names_every_problem_as_lint_does(shop: Workspace) -> None:
    (shop.metrics_dir / "broken.yaml").write_text(
        "metrics:\n  orders:\n    measure: {agg: count, event: purchase_complete}\n"
        "  refunds:\n    kind: simple\n    measure: {agg: count, event: refund}\n",
        encoding="utf-8")
    lint = json.loads(nerve(shop, "lint", "--format", "json").stdout)
    result = nerve(shop, "query", "orders", "--format", "json")
    assert result.exit_code == ExitCode.INVALID
    assert result.stdout == ""
    assert "already defined in metrics/broken.yaml:2" in result.stderr
    assert str(shop.root) not in result.stderr
    reported = [line.removeprefix("error: ") for line in result.stderr.splitlines()]
    assert reported == [f"{r['file']}:{r['line']}: {r['message']}" for r in lint]
    assert len(reported) == 3


def test_a_short_form_dimension_takes_its_type_from_the_catalog(shop: Workspace) -> None:
    """``years: user.age`` is the catalog's integer, as the long form with a type is."""
    (shop.metrics_dir / "ages.yaml").write_text(
        "dimensions:\n  years: user.age\n  shown_age: {expr: user.age, description: Age}\n",
        encoding="utf-8")
    # seniors when they bought: u2 on 2026-03-03 (70) and u1 on 2026-03-11 (66)
    for dimension in ("years", "shown_age", "age"):
        result = nerve(shop, "query", "orders", "revenue", "--where", f"{dimension} >= 65",
                       "--since", "2026-03-01", "--until", "2026-03-31", "--format", "json")
        assert result.exit_code == ExitCode.OK, result.output
        assert json.loads(result.stdout) == [{"orders": 2, "revenue": 120.0}]
    result = nerve(shop, "query", "orders", "--by", "years", "--since", "2026-03-01",
                   "--until", "2026-03-31", "--format", "json")
    assert result.exit_code == ExitCode.OK, result.output
    assert json.loads(result.stdout) == [{"years": 30, "orders": 2}, {"years": 66, "orders": 1},
                                         {"years": 70, "orders": 1}]


def test_a_property_typed_differently_by_two_events_needs_the_long_form(
        shop: Workspace) -> None:
    (shop.events_dir / "refund.yaml").write_text(
        "name: refund\nproperties:\n  price: {type: string}\n", encoding="utf-8")
    (shop.metrics_dir / "prices.yaml").write_text(
        "dimensions:\n  list_price: properties.price\n"
        "  typed_price: {expr: properties.price, type: number}\n", encoding="utf-8")
    result = nerve(shop, "lint", "--format", "json")
    assert result.exit_code == ExitCode.FAILED
    rows = json.loads(result.stdout)
    assert [(r["file"], r["line"]) for r in rows] == [("metrics/prices.yaml", 2)]
    message = rows[0]["message"]
    assert message.startswith("dimensions.list_price: 'properties.price' is ")
    for part in ("number in add_to_cart", "string in refund",
                 "{expr: properties.price, type: ...}"):
        assert part in message, message


def test_readiness(shop: Workspace) -> None:
    result = nerve(shop, "readiness", "--format", "json")
    assert result.exit_code == ExitCode.OK, result.output
    found = {r["metric"]: r for r in json.loads(result.stdout)}
    assert found["aov"]["status"] == "ready"
    assert found["aov"]["events"] == ["purchase_complete"]
    assert found["aov"]["health"]["purchase_complete"]["status"] == "unknown"
    # a quality-check run recorded in the warehouse feeds the health column
    from nerve.quality import CheckResult, Status, record_results

    with Warehouse.for_workspace(shop) as warehouse:
        record_results(warehouse.ibis(), [
            CheckResult("volume", Status.fail, "purchase_complete fell 90%",
                        event="purchase_complete")])
    found = {r["metric"]: r for r in json.loads(nerve(shop, "readiness", "--format",
                                                      "json").stdout)}
    assert found["aov"]["status"] == "unhealthy"
    assert found["aov"]["health"]["purchase_complete"] == {
        "status": "fail", "detail": "purchase_complete fell 90%"}
    assert found["sessions"]["status"] == "ready"
    (shop.metrics_dir / "gap.yaml").write_text(
        "metrics:\n  refunds:\n    measure: {agg: count, event: refund}\n", encoding="utf-8")
    result = nerve(shop, "readiness", "--format", "json")
    assert result.exit_code == ExitCode.FAILED
    found = {r["metric"]: r for r in json.loads(result.stdout)}
    assert found["refunds"]["status"] == "missing"


def test_through_the_server(shop: Workspace, serve: Callable[..., Any]) -> None:
    server = serve(shop)
    # the server holds the DuckDB file: the CLI answers only by going through it
    result = nerve(shop, *WEEKLY)
    assert result.exit_code == ExitCode.OK, result.output
    assert json.loads(result.stdout) == EXPECTED
    token = json.loads((shop.data_dir / "server.json").read_text())["admin_token"]
    auth = {"Authorization": f"Bearer {token}"}
    body = {"metrics": ["orders"], "by": ["age_group"], "since": "2026-03-01",
            "until": "2026-03-31"}
    answer = httpx.post(server.url + "/v1/metrics/query", json=body, headers=auth)
    assert answer.status_code == 200, answer.text
    payload = answer.json()
    assert payload["rows"] == [{"age_group": "25-34", "orders": 2},
                               {"age_group": "65+", "orders": 2}]
    assert payload["lineage"]["orders"]["fields"] == ["user.age_group"]
    assert httpx.post(server.url + "/v1/metrics/query", json=body).status_code == 401
    bad = httpx.post(server.url + "/v1/metrics/query", json={"metrics": ["profit"]},
                     headers=auth)
    assert bad.status_code == 400
    assert bad.json()["code"] == "query"
    assert "unknown metric 'profit'" in bad.json()["message"]
    two = httpx.post(server.url + "/v1/metrics/query", headers=auth, json={
        **body, "where": "platform = 'iOS'; DROP TABLE events"})
    assert (two.status_code, two.json()["code"]) == (400, "query")
    assert "2 statements" in two.json()["message"]
    wrong = httpx.post(server.url + "/v1/metrics/query", json={"metric": "orders"},
                       headers=auth)
    assert (wrong.status_code, wrong.json()["code"]) == (400, "invalid_field")
    listed = httpx.get(server.url + "/v1/metrics", headers=auth).json()
    assert "revenue_wow" in [m["name"] for m in listed]
    one = httpx.get(server.url + "/v1/metrics/aov", headers=auth).json()
    assert one["formula"] == "(revenue) / (orders)"
    ready = httpx.get(server.url + "/v1/metrics/readiness", headers=auth).json()
    assert {r["status"] for r in ready} == {"ready"}
    # the CLI asks the server while it holds the warehouse
    result = nerve(shop, "readiness", "--format", "json")
    assert result.exit_code == ExitCode.OK, result.output
    assert json.loads(result.stdout) == ready


def test_the_running_week_is_marked_partial(shop: Workspace) -> None:
    """The last of `--since 2w --grain week` is the week under way: its figures are so
    far, and the table says so rather than showing a drop."""
    result = nerve(shop, "query", "orders", "--grain", "week", "--since", "2w",
                   "--format", "json", "--full")
    assert result.exit_code == ExitCode.OK, result.output
    body = json.loads(result.stdout)
    weeks = [r["week"] for r in body["rows"]]
    assert len(weeks) == 2
    assert body["partial"] == weeks[1]
    table = nerve(shop, "query", "orders", "--grain", "week", "--since", "2w")
    assert table.exit_code == ExitCode.OK, table.output
    assert f"{weeks[1]} (partial)" in table.stdout
    assert f"{weeks[0]} (partial)" not in table.stdout
