"""The web console when the person signed in changes in one browser tab: nothing the
previous token read stays on the page."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from serverkit import HTTP, IDENTIFY, basic, write_key
from tests.conftest import node_script

from nerve.workspace import Workspace

READER = "a-reader-token-of-thirty-two-chars!"
#: a personal property kept as sent: an admin reads it, a reader its keyed hash
ORDER = """\
name: order_completed
properties:
  order_id: {type: string, pii: none}
  revenue: {type: number, pii: none}
  city: {type: string, pii: personal, handling: keep}
"""
CITIES = ("Zanzibarville", "Quahogtown")


@pytest.mark.node
@pytest.mark.timeout(300)
def test_a_reader_signing_in_after_an_admin_sees_nothing_the_admin_read(
    make_workspace: Callable[..., Workspace],
    serve: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An admin asked "orders by city" and signed out; a reader signed in in the same tab
    and had the admin's answer, cities unmasked, under Ask (the page cleared nothing on
    sign-out), and an answer still on its way when the admin signed out was drawn for the
    reader too."""
    monkeypatch.setenv("NERVE_TEST_TOKEN_READER", READER)
    ws = make_workspace(
        {"order_completed.yaml": ORDER, "identify.yaml": IDENTIFY},
        extra_toml='[[readers]]\nname = "ana"\nrole = "reader"\n'
        'token_env = "NERVE_TEST_TOKEN_READER"\n',
    )
    (ws.metrics_dir / "shop.yaml").write_text(
        "metrics:\n  orders:\n    label: Orders\n    measure: {event: order_completed}\n"
    )
    server = serve(ws)
    batch = [
        {
            "type": "track",
            "event": "order_completed",
            "userId": f"u{i}",
            "messageId": f"m{i}",
            "properties": {"order_id": f"o{i}", "revenue": 10 + i, "city": CITIES[i % 2]},
        }
        for i in range(6)
    ]
    assert (
        HTTP.post(
            server.url + "/v1/batch", json={"batch": batch}, headers=basic(write_key(ws))
        ).status_code
        == 200
    )
    admin = orjson.loads((ws.data_dir / "server.json").read_bytes())["admin_token"]
    deadline = time.monotonic() + 30
    while HTTP.get(server.url + "/v1/status", headers={"authorization": f"Bearer {admin}"}).json()[
        "warehouse"
    ]["events"] < len(batch):
        assert time.monotonic() < deadline, "the loader did not load the batch in 30 s"
        time.sleep(0.2)

    seen = node_script(
        "console_identity.mjs", f"{server.url}/ui", admin, READER, "orders by city", timeout=280
    )
    assert seen["errors"] == []
    assert all(city in seen["firstAnswer"] for city in CITIES)  # the admin saw them
    assert "6\nevents in the warehouse" in seen["secondSees"]  # the reader's own page
    for city in CITIES:
        assert city not in seen["html"]
        assert all(city not in value for value in seen["values"])
