"""`nerve funnel|retention|trend` on a workspace's warehouse, alone and through a real
`nerve serve` (the CLI posts to its HTTP API while it holds the DuckDB file)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from tests.analytics.conftest import ev
from typer.testing import CliRunner

from nerve.cli import app
from nerve.warehouse import Warehouse
from nerve.workspace import Workspace

ROWS = [
    ev("u1", "add_to_cart", 0, platform="ios"), ev("u1", "purchase_complete", 5),
    ev("u2", "add_to_cart", 0, platform="android"),
    ev("u2", "purchase_complete", 3 * 1440),  # too late for a 1-day window
    ev("u3", "add_to_cart", 1, platform="ios"), ev("u3", "purchase_complete", 2),
    ev("u4", "add_to_cart", 1, platform="ios"),
]


@pytest.fixture
def workspace(make_workspace: Callable[..., Workspace], events_table: Any) -> Workspace:
    ws = make_workspace()
    with Warehouse.for_workspace(ws) as wh:
        cur = wh.cursor()
        cur.register("rows", events_table(ROWS))
        cur.execute("INSERT INTO events SELECT * FROM rows")
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
                 "--until", "2026-11-03", "--format", "csv")
    assert trend.stdout.splitlines()[1].startswith("2026-11-02 00:00:00+00:00,4,2026-11-01")
    assert "'add_to_cart' is not in the catalog" in trend.stderr


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
    trend = httpx.post(server.url + "/v1/trends", headers=headers, json={
        "event": "purchase_complete", "since": "2026-11-02", "until": "2026-11-06",
        "grain": "day"})
    assert [r["value"] for r in trend.json()["rows"]] == [2.0, 0.0, 0.0, 1.0]  # u2 on day 3
