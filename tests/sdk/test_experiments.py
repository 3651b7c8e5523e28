"""get_variant against a real nerve serve: definitions, targeting, assignment, exposures."""

import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson

from nerve.experiments import choose_variant
from nerve.sdk import Client
from nerve.workspace import Workspace

EVENTS = {"experiment_viewed.yaml": "name: experiment_viewed\nproperties:\n"
                                    "  experiment_id: {type: string}\n"
                                    "  variant_id: {type: string}\n"}
EXPERIMENT = """\
key: simple_checkout
variants:
  - {key: control, weight: 1}
  - {key: simple, weight: 3}
targeting:
  attributes: {age: {gte: 65}}
primary: orders
"""
ENDED = "key: old\nvariants: [a, b]\nprimary: orders\nend: 2020-01-01\n"


def rows(ws: Workspace, query: str, count: int) -> list[dict[str, Any]]:
    info = orjson.loads((ws.data_dir / "server.json").read_bytes())
    deadline = time.monotonic() + 30
    while True:
        answer = httpx.post(info["url"] + "/v1/admin/sql", json={"query": query}, timeout=30,
                            headers={"Authorization": f"Bearer {info['admin_token']}"})
        found: list[dict[str, Any]] = answer.json()["rows"]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.3)


def test_get_variant_assigns_targets_and_exposes_once(
        make_workspace: Callable[..., Workspace], serve: Callable[..., Any]) -> None:
    ws = make_workspace(EVENTS)
    folder = ws.root / "experiments"
    folder.mkdir()
    (folder / "simple_checkout.yaml").write_text(EXPERIMENT)
    (folder / "old.yaml").write_text(ENDED)
    server = serve(ws)
    errors: list[Exception] = []
    client = Client(ws.config.sources[1].write_key, server.url,
                    on_error=lambda exc, batch: errors.append(exc))
    seen = {}
    for i in range(40):
        seen[f"u{i}"] = client.get_variant("simple_checkout", f"u{i}", attributes={"age": 70})
        # asking again gives the same answer and logs no second exposure
        assert client.get_variant("simple_checkout", f"u{i}", attributes={"age": 70}) == (
            seen[f"u{i}"])
    assert seen == {u: choose_variant("simple_checkout", u, ["control", "simple"], [1, 3])
                    for u in seen}
    assert client.get_variant("simple_checkout", "young", attributes={"age": 30}) is None
    assert client.get_variant("simple_checkout", "unknown-age") is None
    assert client.get_variant("old", "u1") is None  # ended
    assert client.get_variant("nope", "u1") is None
    assert client.flush()
    client.shutdown()
    assert errors == []
    exposures = rows(ws, "SELECT user_id, properties->>'variant_id' AS variant FROM events "
                         "WHERE event = 'experiment_viewed' ORDER BY user_id", 40)
    assert len(exposures) == 40
    assert {r["user_id"]: r["variant"] for r in exposures} == seen


def test_definitions_need_a_write_key(make_workspace: Callable[..., Workspace],
                                      serve: Callable[..., Any]) -> None:
    ws = make_workspace(EVENTS)
    (ws.root / "experiments").mkdir()
    (ws.root / "experiments" / "e.yaml").write_text(EXPERIMENT)
    server = serve(ws)
    assert httpx.get(server.url + "/v1/experiments").status_code == 401
    answer = httpx.get(server.url + "/v1/experiments", auth=(ws.config.sources[0].write_key, ""))
    assert answer.status_code == 200
    assert answer.json()[0]["key"] == "simple_checkout"
    assert answer.json()[0]["attributes"] == {"age": {"gte": 65}}


def test_unreachable_server_gives_none_not_an_exception() -> None:
    client = Client("k" * 20, "http://127.0.0.1:9", timeout=0.5)
    assert client.get_variant("x", "u1") is None
    client.shutdown(timeout=1)
