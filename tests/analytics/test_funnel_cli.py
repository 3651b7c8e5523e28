"""`nerve funnel|retention|trend` on a workspace's warehouse, alone and through a real
`nerve serve` (the CLI posts to its HTTP API while it holds the DuckDB file)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from tests.analytics.conftest import ev
from typer.testing import CliRunner

from nerve.cli import app
from nerve.cli._common import console
from nerve.warehouse import Warehouse
from nerve.workspace import Workspace

ROWS = [
    ev("u1", "add_to_cart", 0, platform="ios"), ev("u1", "purchase_complete", 5),
    ev("u2", "add_to_cart", 0, platform="android"),
    ev("u2", "purchase_complete", 3 * 1440),  # too late for a 1-day window
    ev("u3", "add_to_cart", 1, platform="ios"), ev("u3", "purchase_complete", 2),
    ev("u4", "add_to_cart", 1, platform="ios"),
]


def _insert(ws: Workspace, rows: Any) -> None:
    """Put ``rows`` (an Arrow table shaped like ``events``) in the workspace's warehouse."""
    with Warehouse.for_workspace(ws) as wh:
        cur = wh.cursor()
        cur.register("rows", rows)
        cur.execute("INSERT INTO events SELECT * FROM rows")


@pytest.fixture
def workspace(make_workspace: Callable[..., Workspace], events_table: Any) -> Workspace:
    ws = make_workspace()
    _insert(ws, events_table(ROWS))
    return ws


def _run(ws: Workspace, *args: str) -> Any:
    return CliRunner().invoke(app, ["--workspace", str(ws.root), *args])


def _funnel_json(ws: Workspace) -> list[dict[str, Any]]:
    result = _run(ws, "funnel", "add_to_cart", "purchase_complete", "--window", "1d",
                  "--by", "platform", "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # type: ignore[no-any-return]


EXPECTED = [
    {"step": 1, "event": "add_to_cart", "platform": "ios", "users": 3, "conversion": 1.0},
    {"step": 2, "event": "purchase_complete", "platform": "ios", "users": 2,
     "conversion": 2 / 3},
    {"step": 1, "event": "add_to_cart", "platform": "android", "users": 1,
     "conversion": 1.0},
    {"step": 2, "event": "purchase_complete", "platform": "android", "users": 0,
     "conversion": 0.0},
]


def _short(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    keys = ("step", "event", "platform", "users", "conversion")
    return [{k: r[k] for k in keys} for r in rows]


def test_cli_without_server(workspace: Workspace) -> None:
    assert _short(_funnel_json(workspace)) == EXPECTED
    users = _run(workspace, "funnel", "add_to_cart", "purchase_complete",
                 "--users", "1:dropped", "--format", "json")
    assert json.loads(users.stdout) == [{"user": "u2"}, {"user": "u4"}]
    assert "'add_to_cart' is not in the catalog" in users.stderr  # an empty catalog here
    bad = _run(workspace, "funnel", "add_to_cart", "--format", "json")
    assert bad.exit_code == 4
    assert "2 to 20 steps" in bad.stderr
    ret = _run(workspace, "retention", "--start", "add_to_cart", "--return",
               "purchase_complete", "--periods", "3", "--format", "json")
    assert ret.exit_code == 0, ret.output
    assert [r["users"] for r in json.loads(ret.stdout)] == [2, 0, 0, 1]
    # trend and retention warn about an event the catalog lacks, as the funnel does
    assert "'purchase_complete' is not in the catalog" in ret.stderr
    trend = _run(workspace, "trend", "add_to_cart", "--since", "2026-11-02",
                 "--until", "2026-11-02", "--format", "csv")
    assert trend.stdout.splitlines()[1].startswith("2026-11-02T00:00:00+00:00,4,2026-11-01T")
    assert "'add_to_cart' is not in the catalog" in trend.stderr
    # a name in neither the catalog nor the warehouse (a typo) is refused, not zeros
    for args, what in [(("funnel", "add_to_cart", "purchase_complet"), "step 2"),
                       (("retention", "--start", "add_to_crt"), "start_event"),
                       (("trend", "purchase_complet"), "event")]:
        typo = _run(workspace, *args, "--format", "json")
        assert typo.exit_code == 4, args
        assert (f"{what}: no event '{args[-1]}' in the catalog or the warehouse"
                in typo.stderr), typo.stderr
        assert "warning" not in typo.stderr


def test_cli_and_http_through_server(workspace: Workspace, serve: Any) -> None:
    server = serve(workspace)
    assert _short(_funnel_json(workspace)) == EXPECTED  # the file is locked: via HTTP
    token = json.loads((workspace.data_dir / "server.json").read_text())["admin_token"]
    headers = {"Authorization": f"Bearer {token}"}
    body = {"steps": ["add_to_cart:platform=ios", "purchase_complete"], "window": "1h",
            "users": {"step": 2, "status": "converted"}}
    response = httpx.post(server.url + "/v1/funnels", json=body, headers=headers)
    assert response.status_code == 200
    assert response.json()["users"] == ["u1", "u3"]
    assert [r["users"] for r in response.json()["rows"]] == [3, 2]
    refused = httpx.post(server.url + "/v1/funnels", json=body)
    assert refused.status_code == 401
    wrong = httpx.post(server.url + "/v1/funnels", json={**body, "order": "sideways"},
                       headers=headers)
    assert wrong.status_code == 400
    assert "order" in wrong.json()["message"]
    typo = httpx.post(server.url + "/v1/funnels", headers=headers,
                      json={**body, "steps": ["add_to_cart", "purchase_complet"]})
    assert typo.status_code == 400
    assert typo.json()["message"].startswith(
        "step 2: no event 'purchase_complet' in the catalog or the warehouse")
    trend = httpx.post(server.url + "/v1/trends", headers=headers, json={
        "event": "purchase_complete", "since": "2026-11-02", "until": "2026-11-05",
        "grain": "day"})
    assert [r["value"] for r in trend.json()["rows"]] == [2.0, 0.0, 0.0, 1.0]  # u2 on day 3


# Los Angeles (PDT, UTC-7, from 2026-03-08): u2's cart is on 03-09 there but 03-10 in UTC,
# u3's and u4's are on 03-10 there but 03-11 in UTC
LA_ROWS = [
    {"user_id": user, "event": "add_to_cart", "timestamp": when}
    for user, when in [("u1", datetime(2026, 3, 10, 7, 30, tzinfo=UTC)),
                       ("u2", datetime(2026, 3, 10, 6, 30, tzinfo=UTC)),
                       ("u3", datetime(2026, 3, 11, 6, 30, tzinfo=UTC)),
                       ("u4", datetime(2026, 3, 11, 3, 0, tzinfo=UTC))]
] + [{"user_id": "u1", "event": "purchase_complete",
      "timestamp": datetime(2026, 3, 10, 8, tzinfo=UTC)}]


@pytest.fixture
def la_workspace(make_workspace: Callable[..., Workspace], events_table: Any) -> Workspace:
    ws = make_workspace()
    toml = ws.root / "nerve.toml"
    text = toml.read_text(encoding="utf-8")
    assert 'timezone = "UTC"' in text
    toml.write_text(text.replace('timezone = "UTC"', 'timezone = "America/Los_Angeles"', 1),
                    encoding="utf-8")
    ws = Workspace.load(ws.root)
    assert ws.config.timezone == "America/Los_Angeles"
    _insert(ws, events_table(LA_ROWS))
    return ws


def _carts_on(day: str) -> int:
    """Users with a cart on ``day`` in Los Angeles, worked out with zoneinfo."""
    zone = ZoneInfo("America/Los_Angeles")
    return len({r["user_id"] for r in LA_ROWS if r["event"] == "add_to_cart"
                and r["timestamp"].astimezone(zone).date().isoformat() == day})


def _la_answers(ws: Workspace) -> tuple[Any, Any, Any]:
    """The funnel, trend and retention of one LA day through the CLI, as JSON."""
    out = []
    for args in (["funnel", "add_to_cart", "purchase_complete"],
                 ["trend", "add_to_cart", "--measure", "users", "--no-compare"],
                 ["retention", "--start", "add_to_cart", "--periods", "1"]):
        result = _run(ws, *args, "--since", "2026-03-10", "--until", "2026-03-10",
                      "--format", "json")
        assert result.exit_code == 0, result.output
        out.append(json.loads(result.stdout))
    return out[0], out[1], out[2]


def test_every_consumer_counts_the_workspace_days(la_workspace: Workspace,
                                                  serve: Any) -> None:
    """The CLI, the MCP/agent tool and the HTTP API read dates as days of the
    workspace's time zone and label periods with its offset."""
    from nerve.agent import Context, run_tool

    ws = la_workspace
    expected = _carts_on("2026-03-10")
    assert expected == 3  # u1, u3, u4 (UTC's 03-10 has u1 and u2)
    funnel_rows, trend_rows, retention_rows = _la_answers(ws)
    assert [r["users"] for r in funnel_rows] == [expected, 1]
    assert trend_rows == [{"period": "2026-03-10T00:00:00-07:00", "value": expected,
                           "partial": False}]
    assert {r["cohort"] for r in retention_rows} == {"2026-03-10T00:00:00-07:00"}
    assert retention_rows[0]["cohort_size"] == expected
    with Warehouse.for_workspace(ws, read_only=True) as wh:
        tool = run_tool(Context.open(ws, wh), "run_funnel", {
            "steps": ["add_to_cart", "purchase_complete"], "since": "2026-03-10",
            "until": "2026-03-10"})
    assert [r["users"] for r in tool["rows"]] == [expected, 1]
    serve(ws)
    assert _la_answers(ws) == (funnel_rows, trend_rows, retention_rows)  # over HTTP


# A catalog for ROWS: add_to_cart sends a platform (and may send a coupon, which no row
# has yet); purchase_complete sends neither
CATALOG = {
    "add_to_cart.yaml": "name: add_to_cart\nproperties:\n  platform: {type: string}\n"
                        "  coupon: {type: string}\n",
    "purchase_complete.yaml": "name: purchase_complete\nproperties:\n"
                              "  revenue: {type: number}\n",
    "identify.yaml": "name: identify\ntype: identify\nproperties:\n  plan: {type: string}\n",
}
READER = "ana-" + "r" * 28
# (`nerve` arguments, or None where the CLI has no option for it; the HTTP request; what
# the refusal says)
UNDECLARED: list[tuple[list[str] | None, str, dict[str, Any], str]] = [
    (["funnel", "add_to_cart", "purchase_complete:platform=ios"],
     "/v1/funnels", {"steps": ["add_to_cart", "purchase_complete:platform=ios"]},
     "step 2 (purchase_complete) filter platform=ios: 'properties.platform': "
     "purchase_complete has no property 'platform' (its properties: revenue; 'platform' "
     "is a property of add_to_cart), so it would match no event and count 0"),
    (["funnel", "add_to_cart:platfrom=ios", "purchase_complete"],
     "/v1/funnels", {"steps": ["add_to_cart:platfrom=ios", "purchase_complete"]},
     "step 1 (add_to_cart) filter platfrom=ios: 'properties.platfrom': add_to_cart has "
     "no property 'platfrom' (did you mean 'platform'?"),
    (["funnel", "add_to_cart", "purchase_complete", "--hold", "platform"],
     "/v1/funnels", {"steps": ["add_to_cart", "purchase_complete"], "hold": ["platform"]},
     "step 2 (purchase_complete) hold platform: 'properties.platform': purchase_complete "
     "has no property 'platform'"),
    (["trend", "add_to_cart", "--where", "cuntry=DE"],
     "/v1/trends", {"event": "add_to_cart", "filters": ["cuntry=DE"]},
     "filter cuntry=DE: 'properties.cuntry': add_to_cart has no property 'cuntry'"),
    (["trend", "--where", "traits.pln=pro"], "/v1/trends", {"filters": ["traits.pln=pro"]},
     "filter traits.pln=pro: 'user.pln': identify has no trait 'pln' (did you mean "
     "'plan'?"),
    (None, "/v1/retention",
     {"start_event": "add_to_cart", "start_where": ["propertis.plan=pro"]},
     "start_where filter propertis.plan=pro: 'properties.propertis.plan': add_to_cart has "
     "no property 'propertis.plan'"),
]


@pytest.fixture
def cataloged(make_workspace: Callable[..., Workspace], events_table: Any,
              monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.setenv("NERVE_TEST_TOKEN_ANA", READER)
    ws = make_workspace(CATALOG, extra_toml='[[readers]]\nname = "ana"\n'
                                            'token_env = "NERVE_TEST_TOKEN_ANA"\n')
    _insert(ws, events_table(ROWS))
    return ws


def _refusals(ws: Workspace) -> None:
    for args, _, _, message in UNDECLARED:
        if args is not None:
            result = _run(ws, *args, "--format", "json")
            assert result.exit_code == 4, (args, result.output)
            assert message in " ".join(result.stderr.split()), args


def test_a_filter_on_a_field_the_catalog_does_not_declare_is_refused(
        cataloged: Workspace, serve: Any) -> None:
    """It would count 0 (no event has the field), where a metric's filter on it is
    refused: the CLI, and the HTTP API with the admin's and a reader's token, refuse it
    too, naming the field, the event and the closest declared field."""
    ws = cataloged
    _refusals(ws)
    # declared fields are answered; one that no row has yet is a real zero
    ios = _run(ws, "funnel", "add_to_cart:platform=ios", "purchase_complete", "-f", "json")
    assert [r["users"] for r in json.loads(ios.stdout)] == [3, 2]
    coupon = _run(ws, "trend", "add_to_cart", "--where", "coupon=SPRING", "--since",
                  "2026-11-02", "--until", "2026-11-02", "--no-compare", "-f", "json")
    assert coupon.exit_code == 0, coupon.output
    assert [r["value"] for r in json.loads(coupon.stdout)] == [0.0]

    server = serve(ws)
    _refusals(ws)  # the CLI posts to the server now
    admin = json.loads((ws.data_dir / "server.json").read_text())["admin_token"]
    for token in (admin, READER):
        headers = {"Authorization": f"Bearer {token}"}
        for _, path, body, message in UNDECLARED:
            answer = httpx.post(server.url + path, json=body, headers=headers, timeout=60)
            assert answer.status_code == 400, (path, answer.text)
            assert answer.json()["code"] == "query"
            assert message in answer.json()["message"], path
        ios_body = {"steps": ["add_to_cart:platform=ios", "purchase_complete"]}
        answer = httpx.post(server.url + "/v1/funnels", json=ios_body, headers=headers,
                            timeout=60)
        assert [r["users"] for r in answer.json()["rows"]] == [3, 2]


@pytest.mark.parametrize("args", [
    ("trend", "add_to_cart"),
    ("retention", "--start", "add_to_cart", "--return", "purchase_complete")])
def test_a_misspelt_grain_gets_a_did_you_mean(workspace: Workspace,
                                              args: tuple[str, ...]) -> None:
    result = _run(workspace, *args, "--grain", "weak", "--format", "json")
    assert result.exit_code == 4, result.output
    said = " ".join(result.stderr.split())
    assert "'weak'" in said
    assert "did you mean week?" in said


def test_retention_leaves_periods_the_data_has_not_reached_empty(workspace: Workspace
                                                                 ) -> None:
    """The last event is on 11-05: days 4 and 5 after the 11-02 cohort (11-06, 11-07)
    are not observed, so they are null in JSON, empty in CSV and blank in the table,
    not 0 (which would read as everyone gone)."""
    args = ["retention", "--start", "add_to_cart", "--return", "purchase_complete",
            "--periods", "5"]
    rows = json.loads(_run(workspace, *args, "--format", "json").stdout)
    assert [(r["users"], r["retention"]) for r in rows] == [
        (2, 0.5), (0, 0.0), (0, 0.0), (1, 0.25), (None, None), (None, None)]
    csv_lines = _run(workspace, *args, "--format", "csv").stdout.splitlines()
    assert csv_lines[0] == "cohort,cohort_size,period,users,retention"
    assert csv_lines[5:] == ["2026-11-02T00:00:00+00:00,4,4,,",
                             "2026-11-02T00:00:00+00:00,4,5,,"]
    table = [line for line in _run(workspace, *args).stdout.splitlines() if "│" in line]
    cells = [[c.strip() for c in line.split("│")[1:-1]] for line in table]
    assert [c[2:] for c in cells[-2:]] == [["4", "", ""], ["5", "", ""]]


CARTS = ("metrics:\n  carts:\n    description: Products added to a cart.\n"
         "    owner: shop\n    measure: {agg: count, event: add_to_cart}\n")


def test_a_metric_trend_applies_where_and_refuses_event_fields(cataloged: Workspace,
                                                               serve: Any) -> None:
    """`--where` on a metric's trend is the layer's filter (it was dropped: the trend
    printed every platform's figure); an event, `--measure` or an event's `filters` next
    to a metric would be ignored, so they are refused."""
    ws = cataloged
    (ws.root / "metrics" / "carts.yaml").write_text(CARTS, encoding="utf-8")
    day = ["--since", "2026-11-02", "--until", "2026-11-02", "--no-compare", "-f", "json"]
    ios_carts = sum(1 for r in ROWS if r["event"] == "add_to_cart"
                    and r["properties"]["platform"] == "ios")
    assert ios_carts == 3  # of 4 carts, all on 11-02

    def values(*args: str) -> list[Any]:
        result = _run(ws, "trend", "--metric", "carts", *args, *day)
        assert result.exit_code == 0, result.output
        return [r["value"] for r in json.loads(result.stdout)]

    def refusal(*args: str) -> str:
        result = _run(ws, "trend", *args, *day)
        assert result.exit_code == 4, result.output
        return " ".join(result.stderr.split())

    server = None
    for served in (False, True):  # alone, then through the server's HTTP API
        if served:
            server = serve(ws)
        assert values() == [4.0]
        assert values("--where", "platform = 'ios'") == [float(ios_carts)]
        assert values("--where", "platform = 'ios'", "--where", "platform != 'ios'") == [0.0]
        assert "has no property 'platfrom'" in refusal("--metric", "carts", "--where",
                                                       "platfrom = 'ios'")
        assert "an event or of a metric, not both" in refusal("add_to_cart", "--metric",
                                                              "carts")
        assert "a metric has its own measure" in refusal("--metric", "carts", "--measure",
                                                         "users")
    assert server is not None
    token = json.loads((ws.data_dir / "server.json").read_text())["admin_token"]
    body = {"metric": "carts", "since": "2026-11-02", "until": "2026-11-02",
            "compare": False}
    for extra, message in (({"filters": ["platform=ios"]}, "takes `where`"),
                           ({"event": "add_to_cart"}, "not both")):
        answer = httpx.post(server.url + "/v1/trends", json=body | extra,
                            headers={"Authorization": f"Bearer {token}"}, timeout=60)
        assert answer.status_code == 400, answer.text
        assert message in answer.json()["message"]


def test_a_body_field_of_the_wrong_type_is_a_400_naming_it(workspace: Workspace,
                                                           serve: Any) -> None:
    """A string or null where a number or a flag goes was a 500 ("a bug in nerve"), and
    `"compare": "false"` compared (any non-empty string is true)."""
    server = serve(workspace)
    token = json.loads((workspace.data_dir / "server.json").read_text())["admin_token"]
    funnel = {"steps": ["add_to_cart", "purchase_complete"]}
    trend = {"event": "add_to_cart", "since": "2026-11-02", "until": "2026-11-02"}
    for path, body, message in [
            ("/v1/retention", {"periods": "abc"}, "periods: expected a whole number, got 'abc'"),
            ("/v1/retention", {"periods": None}, "periods: expected a whole number, got None"),
            ("/v1/retention", {"start_event": 5}, "start_event: expected a name, got 5"),
            ("/v1/funnels", funnel | {"users": {"step": 1, "limit": "x"}},
             "limit: expected a whole number, got 'x'"),
            ("/v1/trends", trend | {"compare": "false"},
             "compare: expected true or false, got 'false'"),
            ("/v1/trends", trend | {"where": "platform = 'ios'"}, "takes `filters`")]:
        answer = httpx.post(server.url + path, json=body,
                            headers={"Authorization": f"Bearer {token}"}, timeout=60)
        assert answer.status_code == 400, (path, body, answer.text)
        assert answer.json()["code"] == "query"
        assert message in answer.json()["message"], answer.text
    ok = httpx.post(server.url + "/v1/trends", json=trend | {"compare": False},
                    headers={"Authorization": f"Bearer {token}"}, timeout=60)
    assert [set(r) for r in ok.json()["rows"]] == [{"period", "value", "partial"}]


def test_an_unknown_body_field_is_a_400_naming_it(workspace: Workspace, serve: Any) -> None:
    """A misspelt field (`windw`) was ignored: the answer used the default window and
    looked like the one asked for. /v1/metrics/query refused it; now these do too."""
    server = serve(workspace)
    token = json.loads((workspace.data_dir / "server.json").read_text())["admin_token"]
    funnel = {"steps": ["add_to_cart", "purchase_complete"]}
    for path, body, field in [
            ("/v1/funnels", funnel | {"windw": "7d"}, "windw"),
            ("/v1/retention", {"start_event": "add_to_cart", "period": 3}, "period"),
            ("/v1/trends", {"event": "add_to_cart", "filter": ["platform=ios"]}, "filter")]:
        answer = httpx.post(server.url + path, json=body,
                            headers={"Authorization": f"Bearer {token}"}, timeout=60)
        assert answer.status_code == 400, (path, answer.text)
        assert answer.json()["code"] == "invalid_field"
        assert answer.json()["message"].startswith(f"unknown field(s) {field}; expected ")
    ok = httpx.post(server.url + "/v1/funnels", json=funnel | {"window": "7d"},
                    headers={"Authorization": f"Bearer {token}"}, timeout=60)
    assert ok.status_code == 200, ok.text
    assert [r["users"] for r in ok.json()["rows"]] == [4, 3]  # u2's purchase, 3 days on


def test_table_and_csv_print_the_same_with_and_without_the_server(
        la_workspace: Workspace, serve: Any) -> None:
    """Periods and cohorts are the ISO 8601 labels the docs show
    (`2026-03-10T00:00:00-07:00`) either way; read locally, the table and CSV printed
    Python's `2026-03-10 00:00:00-07:00` while the server's answer gave the ISO text."""
    ws = la_workspace
    commands = [["trend", "add_to_cart", "--since", "2026-03-10", "--until", "2026-03-10"],
                ["retention", "--start", "add_to_cart", "--periods", "1", "--since",
                 "2026-03-10", "--until", "2026-03-10"]]

    def printed() -> list[str]:
        out = []
        for args in commands:
            for fmt in ("csv", "table"):
                result = _run(ws, *args, "--format", fmt)
                assert result.exit_code == 0, result.output
                out.append(result.stdout)
        return out

    alone = printed()
    assert alone[0].splitlines()[1].startswith("2026-03-10T00:00:00-07:00,3,2026-03-09T")
    assert alone[2].splitlines()[1].startswith("2026-03-10T00:00:00-07:00,3,0,3,")
    serve(ws)
    assert printed() == alone


def test_funnel_table_shows_percentages_and_times(workspace: Workspace,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The table reads as a person would: 2 of 3 ios users is 66.7%, u1's and u3's
    purchases came 5 and 1 minutes after the cart (median 3 min); json keeps the numbers."""
    # a row on one line: COLUMNS alone left the table 80 wide in some runs of the suite
    monkeypatch.setattr(console, "_width", 200)
    result = CliRunner().invoke(app, ["--workspace", str(workspace.root), "funnel",
                                      "add_to_cart", "purchase_complete", "--window", "1d",
                                      "--by", "platform"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    ios = next((line for line in result.stdout.splitlines()
                if "purchase_complete" in line and "ios" in line), result.stdout)
    assert "66.7%" in ios
    assert "3 min" in ios
    assert "0.666" not in result.stdout
    rows = _funnel_json(workspace)
    assert rows[1]["conversion"] == 2 / 3
    assert rows[1]["median_seconds"] == 180


def test_retention_and_trend_tables_show_percentages(workspace: Workspace,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Of the 4 users whose first cart was on day 0, 2 bought that day and 1 on day 3:
    retention 50.0% and 25.0%; the 2 purchases of day 0 became 0 on day 1: -100.0%.
    The table printed the fractions (0.5, -1.0); json keeps them."""
    monkeypatch.setattr(console, "_width", 200)
    retention = ["retention", "--start", "add_to_cart", "--return", "purchase_complete",
                 "--periods", "3"]
    table = _run(workspace, *retention)
    assert table.exit_code == 0, table.output
    assert [line.count("%") for line in table.stdout.splitlines() if "│" in line] == [
        1, 1, 1, 1], table.stdout
    assert "50.0%" in table.stdout, table.stdout
    assert "25.0%" in table.stdout, table.stdout
    assert "0.25" not in table.stdout
    rows = json.loads(_run(workspace, *retention, "--format", "json").stdout)
    assert [r["retention"] for r in rows] == [0.5, 0.0, 0.0, 0.25]

    trend = ["trend", "purchase_complete", "--since", "2026-11-03", "--until", "2026-11-03"]
    table = _run(workspace, *trend)
    assert table.exit_code == 0, table.output
    assert "-100.0%" in table.stdout, table.stdout
    (row,) = json.loads(_run(workspace, *trend, "--format", "json").stdout)
    assert (row["value"], row["previous"], row["change"]) == (0, 2, -1.0)
