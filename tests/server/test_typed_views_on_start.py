"""nerve serve creates the typed per-event views, so analysts can query them at once."""

import time
from collections.abc import Callable
from typing import Any

import orjson
from serverkit import HTTP

from nerve.workspace import Workspace

EVENT = ("name: add_to_cart\nproperties:\n  price: {type: number, required: true}\n"
         "  sku: {type: string}\n")


def test_serve_refreshes_typed_views(make_workspace: Callable[..., Workspace],
                                     serve: Callable[..., Any]) -> None:
    ws = make_workspace({"add_to_cart.yaml": EVENT})
    server = serve(ws)
    batch = {"batch": [{"type": "track", "event": "add_to_cart", "userId": "u1",
                        "messageId": "m1", "properties": {"price": 9.5, "sku": "A"}}]}
    key = ws.config.sources[0].write_key
    assert HTTP.post(server.url + "/v1/batch", json=batch, auth=(key, "")).status_code == 200
    info = orjson.loads((ws.data_dir / "server.json").read_bytes())
    headers = {"Authorization": f"Bearer {info['admin_token']}"}
    rows: list[Any] = []
    for _ in range(100):
        answer = HTTP.post(server.url + "/v1/admin/sql", headers=headers,
                           json={"query": "SELECT price, sku FROM evt_add_to_cart"})
        assert answer.status_code == 200, answer.text
        rows = answer.json()["rows"]
        if rows:
            break
        time.sleep(0.2)
    assert rows == [{"price": 9.5, "sku": "A"}]
