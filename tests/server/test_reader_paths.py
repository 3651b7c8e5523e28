"""A reader's token gets the workspace's files named relative to it (``metrics/shop.yaml:3``),
as ``/v1/status`` already gave them: where the server keeps the workspace is for admins.
Before, ``/v1/metrics``, ``/v1/metrics/query`` and ``/v1/ask/tool`` (``describe_metric``,
``query_metrics``: their ``defined_at``) gave a reader the server's full path."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest
from serverkit import EVENTS, HTTP

from nerve.workspace import Workspace

READER = "a-reader-token-of-thirty-two-chars!"


@pytest.fixture
def shop(make_workspace: Callable[..., Workspace], monkeypatch: pytest.MonkeyPatch
         ) -> Workspace:
    monkeypatch.setenv("NERVE_TEST_TOKEN_READER", READER)
    ws = make_workspace(EVENTS, extra_toml='[[readers]]\nname = "ana"\nrole = "reader"\n'
                                           'token_env = "NERVE_TEST_TOKEN_READER"\n')
    (ws.metrics_dir / "shop.yaml").write_text(
        "metrics:\n  orders:\n    label: Orders\n    measure: {event: order_completed}\n")
    return ws


def _reads(url: str, token: str) -> list[Any]:
    auth = {"authorization": f"Bearer {token}"}
    answers = [HTTP.get(url + "/v1/metrics", headers=auth),
               HTTP.post(url + "/v1/metrics/query", headers=auth,
                         json={"metrics": ["orders"]}),
               HTTP.post(url + "/v1/ask/tool", headers=auth,
                         json={"tool": "describe_metric", "args": {"name": "orders"}})]
    assert [a.status_code for a in answers] == [200, 200, 200], [a.text for a in answers]
    return [a.json() for a in answers]


def test_a_reader_gets_the_metrics_file_relative_to_the_workspace(
        shop: Workspace, serve: Callable[..., Any]) -> None:
    server = serve(shop)
    root = str(shop.root)
    admin = orjson.loads((shop.data_dir / "server.json").read_bytes())["admin_token"]
    listed, queried, described = _reads(server.url, READER)
    assert root not in orjson.dumps([listed, queried, described]).decode()
    assert listed[0]["defined_at"].startswith("metrics/shop.yaml:")
    assert described["result"]["defined_at"].startswith("metrics/shop.yaml:")
    assert queried["lineage"]["orders"]["defined_at"].startswith("metrics/shop.yaml:")
    # an admin keeps the full path, as the command line prints it
    listed, _, described = _reads(server.url, admin)
    assert listed[0]["defined_at"].startswith(f"{root}/metrics/shop.yaml:")
    assert described["result"]["defined_at"].startswith(f"{root}/metrics/shop.yaml:")


def test_a_reader_gets_errors_relative_to_the_workspace(
        shop: Workspace, serve: Callable[..., Any]) -> None:
    # a metrics file that does not load: the error gave a reader the server's full path
    server = serve(shop)
    root = str(shop.root)
    admin = orjson.loads((shop.data_dir / "server.json").read_bytes())["admin_token"]
    (shop.metrics_dir / "shop.yaml").write_text(
        "metrics:\n  orders:\n    label: Orders\n"
        "    measure: {event: order_completed, agg: nope}\n")

    def failed(token: str) -> dict[str, Any]:
        answer = HTTP.post(server.url + "/v1/metrics/query", json={"metrics": ["orders"]},
                           headers={"authorization": f"Bearer {token}"})
        assert answer.status_code == 400, answer.text
        return answer.json()  # type: ignore[no-any-return]

    seen = failed(READER)
    assert "metrics/shop.yaml:4" in seen["message"]
    assert root not in orjson.dumps(seen).decode()
    # the admin gets the full path, as the command line prints it
    assert f"{root}/metrics/shop.yaml:4" in failed(admin)["message"]
