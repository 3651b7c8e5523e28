"""Ingest POSTs skip Starlette's router (``_app._NerveApp``): they must answer exactly as
the routed endpoint does, CORS and error bodies included. Real app, real log, real DuckDB."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import orjson
import pytest
from serverkit import basic, order, write_key
from starlette.applications import Starlette

from nerve.catalog import Catalog
from nerve.log import LogWriter
from nerve.server import NerveState, create_app
from nerve.warehouse import Warehouse
from nerve.workspace import Workspace


@pytest.fixture
def state(shop: Workspace) -> Iterator[NerveState]:
    warehouse = Warehouse.for_workspace(shop)
    log = LogWriter(shop.log_dir, "test")
    yield NerveState(workspace=shop, catalog=Catalog.load(shop.events_dir),
                     warehouse=warehouse, log=log, admin_token="token")
    log.close()
    warehouse.close()


def call(app: Any, method: str, url: str, **kwargs: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)

    async def send() -> httpx.Response:
        async with httpx.AsyncClient(transport=transport, base_url="http://nerve.test") as c:
            return await c.request(method, url, **kwargs)

    return anyio.run(send)


def routed(app: Starlette) -> Any:
    """The same app, forced through Starlette's middleware and router."""

    async def asgi(scope: Any, receive: Any, send: Any) -> None:
        await Starlette.__call__(app, scope, receive, send)

    return asgi


def comparable(response: httpx.Response) -> tuple[int, bytes, dict[str, str]]:
    headers = {k: v for k, v in response.headers.items() if k not in ("date", "server")}
    return response.status_code, response.content, headers


def test_fast_and_routed_answers_are_identical(state: NerveState, shop: Workspace) -> None:
    app = create_app(state)
    key = write_key(shop)
    cases: list[tuple[str, dict[str, Any]]] = [
        ("/v1/batch", {"content": orjson.dumps({"batch": [order(1, "a")]}),
                       "headers": basic(key)}),
        ("/v1/t", {"content": orjson.dumps(order(2, "b")), "headers": basic(key)}),
        ("/v1/batch", {"content": orjson.dumps({"batch": [order(3, "c")]}),
                       "headers": {**basic(key), "Origin": "https://shop.example"}}),
        ("/v1/batch", {"content": b"{not json", "headers": basic(key)}),
        ("/v1/batch", {"content": orjson.dumps({"batch": []}),
                       "headers": {"Authorization": "Basic bm9wZTo="}}),
        ("/v1/batch", {"content": b"{}", "headers": {"Content-Type": "image/png"}}),
        ("/v1/batch", {"content": orjson.dumps({"batch": [{"type": "track"}]}),
                       "headers": {**basic(key), "Origin": "https://x.example"}}),
    ]
    for path, kwargs in cases:
        fast = call(app, "POST", path, **kwargs)
        slow = call(routed(app), "POST", path, **kwargs)
        assert comparable(fast) == comparable(slow), (path, fast.text)
    ok = call(app, "POST", "/v1/batch", content=orjson.dumps({"batch": [order(9, "d")]}),
              headers={**basic(key), "Origin": "https://shop.example"})
    assert ok.status_code == 200
    assert ok.content == b'{"success":true}'
    assert ok.headers["access-control-allow-origin"] == "*"


def test_other_methods_and_paths_still_go_through_the_router(state: NerveState) -> None:
    app = create_app(state)
    assert call(app, "GET", "/v1/batch").status_code == 405
    assert call(app, "POST", "/v1/nope", content=b"{}").json()["code"] == "not_found"
    preflight = call(app, "OPTIONS", "/v1/batch", headers={
        "Origin": "https://shop.example", "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "*"


class Broken:
    """A collector with a bug: what a 500 looks like on the fast path."""

    def __init__(self, real: Any) -> None:
        self.limits = real.limits

    def collect(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")


def test_an_unexpected_error_is_the_one_500_shape(state: NerveState, shop: Workspace) -> None:
    app = create_app(state)
    state.collector = Broken(state.collector)
    response = call(app, "POST", "/v1/batch", content=b"{}", headers=basic(write_key(shop)))
    assert response.status_code == 500
    body = response.json()
    assert set(body) == {"code", "message", "details"}
    assert body["code"] == "internal"
    assert "boom" in body["message"]


def test_gc_is_tuned_once_the_app_has_started(state: NerveState) -> None:
    app = create_app(state)
    messages = [{"type": "lifespan.shutdown"}, {"type": "lifespan.startup"}]
    sent: list[str] = []
    before = gc.get_threshold()

    async def receive() -> dict[str, Any]:
        return messages.pop()

    async def send(message: Any) -> None:
        sent.append(message["type"])
        if message["type"] == "lifespan.startup.complete":
            sent.append(f"threshold {gc.get_threshold()[0]}")

    try:
        anyio.run(app, {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}},
                  receive, send)
        assert sent == ["lifespan.startup.complete", "threshold 10000",
                        "lifespan.shutdown.complete"]
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
