"""Ingest POSTs skip Starlette's router (``_app._NerveApp``); everything else still goes
through it, and the app tunes the GC once started. That the fast path answers exactly as
the routed endpoint does is tests/server/test_ingest_asgi.py's job (over real uvicorn)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest

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


def test_other_methods_and_paths_still_go_through_the_router(state: NerveState) -> None:
    app = create_app(state)
    assert call(app, "GET", "/v1/batch").status_code == 405
    assert call(app, "POST", "/v1/nope", content=b"{}").json()["code"] == "not_found"
    preflight = call(app, "OPTIONS", "/v1/batch", headers={
        "Origin": "https://shop.example", "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "*"


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
