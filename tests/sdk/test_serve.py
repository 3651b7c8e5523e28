"""The SDK against the real `nerve serve`: rows read back from the warehouse."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from nerve.sdk import Client, RejectedError
from nerve.workspace import Workspace, init_workspace

PRODUCT_VIEWED = """\
name: product_viewed
description: A shopper looks at a product page.
owner: shop
purpose: analytics
version: 1
retention: 400d
properties:
  i: {type: integer, required: true, pii: none}
  sku: {type: string, pii: none}
"""

IDENTIFY = """\
name: identify
type: identify
description: Who the shopper is.
owner: growth
purpose: analytics
version: 1
retention: 400d
properties:
  age_group: {type: string, pii: none}
  country: {type: string, pii: none}
"""

FAST = {"backoff_base": 0.05, "backoff_max": 0.2, "flush_interval": 60}


CATALOG = {"product_viewed.yaml": PRODUCT_VIEWED, "identify.yaml": IDENTIFY}


@pytest.fixture
def shop(make_workspace: Callable[..., Workspace]) -> Workspace:
    return make_workspace(CATALOG)


@dataclass
class Shared:
    ws: Workspace
    url: str


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    """One real `nerve serve` for the tests that only send with the default limits.

    Each test reads back only its own message ids, so they share a warehouse safely.
    """
    root = tmp_path_factory.mktemp("sdk-serve") / "ws"
    init_workspace(root, "sdk")
    for name, text in CATALOG.items():
        (root / "events" / name).write_text(text)
    ws = Workspace.load(root)
    # a free port can be taken by a parallel test's server before ours binds it, and
    # then /health answers from that one: ready means OUR server wrote server.json
    for _attempt in range(5):
        url = f"http://127.0.0.1:{_free_port()}"
        with (root / "serve.log").open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "nerve", "--workspace", str(root), "serve", "--host",
                 "127.0.0.1", "--port", url.rsplit(":", 1)[1]], stdout=out,
                stderr=subprocess.STDOUT)
        if _ours_is_up(process, ws, url):
            break
    else:
        pytest.fail("nerve serve did not start:\n" + (root / "serve.log").read_text())
    try:
        yield Shared(ws, url)
    finally:
        process.terminate()
        process.wait(60)


def _ours_is_up(process: subprocess.Popen[bytes], ws: Workspace, url: str) -> bool:
    """Wait until this process serves ``url`` (True), or has exited (False: try a port
    again)."""
    server_file = ws.data_dir / "server.json"
    for _ in range(600):
        if process.poll() is not None:
            return False
        if server_file.exists():
            info = orjson.loads(server_file.read_bytes())
            if info["pid"] == process.pid and info["url"] == url:
                try:
                    if httpx.get(url + "/health", timeout=1).status_code == 200:
                        return True
                except httpx.HTTPError:
                    pass
        time.sleep(0.1)
    process.kill()
    pytest.fail("nerve serve did not become healthy")


def mine(ids: list[str | None]) -> str:
    """Every row (events and quarantine) with one of these message ids."""
    listed = ", ".join(f"'{i}'" for i in ids if i)
    return f"SELECT * FROM ({ALL_ROWS}) AS everything WHERE message_id IN ({listed})"


def key(ws: Workspace, source: str = "server") -> str:
    return next(s.write_key for s in ws.config.sources if s.name == source)


def sql(ws: Workspace, query: str) -> list[dict[str, Any]]:
    """Rows through the running server's admin SQL API (token from .nerve/server.json)."""
    info = orjson.loads((ws.data_dir / "server.json").read_bytes())
    answer = httpx.post(info["url"] + "/v1/admin/sql", json={"sql": query}, timeout=30,
                        headers={"Authorization": f"Bearer {info['admin_token']}"})
    assert answer.status_code == 200, answer.text
    return list(answer.json()["rows"])


def wait_rows(ws: Workspace, query: str, count: int) -> list[dict[str, Any]]:
    """Poll until the loader has put ``count`` rows in reach of ``query`` (it lags a bit)."""
    found: list[dict[str, Any]] = []
    for _ in range(300):
        found = sql(ws, query)
        if len(found) >= count:
            return found
        time.sleep(0.1)
    return found


ALL_ROWS = ("SELECT message_id, type, event, name, user_id, anonymous_id, group_id, "
            "previous_id, properties, traits, context, historical FROM events "
            "UNION ALL SELECT message_id, type, event, name, user_id, anonymous_id, group_id, "
            "previous_id, properties, traits, context, historical FROM quarantine")


def test_batches_land_in_the_warehouse(shared: Shared) -> None:
    client = Client(key(shared.ws), shared.url, max_batch_size=100, **FAST)
    ids = [client.track("product_viewed", {"i": i, "sku": f"SNK-{i % 9}"}, user_id=f"u{i % 13}")
           for i in range(250)]
    assert client.flush()
    assert client.stats().requests == 3  # ceil(250 / 100), none retried
    client.shutdown()
    rows = wait_rows(shared.ws, mine(ids), 250)
    assert sorted(r["message_id"] for r in rows) == sorted(ids)
    by_id = {r["message_id"]: r for r in rows}
    assert by_id[ids[7]]["event"] == "product_viewed"
    assert by_id[ids[7]]["properties"] == {"i": 7, "sku": "SNK-7"}
    assert by_id[ids[7]]["context"]["library"]["name"] == "nerve-python"
    valid = sql(shared.ws, f"SELECT count(*) AS n FROM events WHERE message_id IN "
                           f"({', '.join(repr(i) for i in ids)})")
    assert valid == [{"n": 250}]  # validated against the catalog, none quarantined


def test_every_call_type_lands_with_its_fields(shared: Shared) -> None:
    with Client(key(shared.ws), shared.url, gzip=False, **FAST) as client:
        ids = [
            client.identify("u1", {"age_group": "65+", "country": "DE"}),
            client.page("Pricing", {"path": "/pricing"}, category="Docs", user_id="u1"),
            client.screen("Home", anonymous_id="anon-1"),
            client.group("acme", {"name": "ACME"}, user_id="u1"),
            client.alias("anon-1", "u1"),
            client.track("Unplanned Thing", anonymous_id="anon-1"),
        ]
    rows = {r["message_id"]: r for r in wait_rows(shared.ws, mine(ids), 6)}
    assert set(rows) == set(ids)
    identify, page, screen, group, alias, unplanned = (rows[i] for i in ids)
    assert identify["traits"] == {"age_group": "65+", "country": "DE"}
    assert (page["type"], page["name"], page["user_id"]) == ("page", "Pricing", "u1")
    assert (screen["type"], screen["anonymous_id"]) == ("screen", "anon-1")
    assert group["group_id"] == "acme"
    assert (alias["previous_id"], alias["user_id"]) == ("anon-1", "u1")
    assert unplanned["event"] == "Unplanned Thing"  # quarantined, not lost


def test_historical_clients_import_backfills(shared: Shared) -> None:
    with Client(key(shared.ws), shared.url, historical=True, **FAST) as client:
        old = client.track("product_viewed", {"i": 1}, user_id="u1",
                           timestamp="2026-01-05T10:00:00+00:00")
    with Client(key(shared.ws), shared.url, **FAST) as client:
        live = client.track("product_viewed", {"i": 2}, user_id="u1")
    rows = {r["message_id"]: r for r in wait_rows(shared.ws, mine([old, live]), 2)}
    assert rows[old]["historical"] is True
    assert rows[live]["historical"] is False


def test_shutdown_flushes(shared: Shared) -> None:
    client = Client(key(shared.ws), shared.url, max_batch_size=1000, **FAST)
    ids = [client.track("product_viewed", {"i": i}, user_id="u") for i in range(30)]
    assert client.stats().requests == 0  # nothing sent yet: the batch is not full
    assert client.shutdown()
    assert len(wait_rows(shared.ws, mine(ids), 30)) == 30


def test_an_unknown_write_key_is_refused_once(shared: Shared) -> None:
    errors: list[Any] = []
    client = Client("not-a-key-of-this-workspace", shared.url, on_error=lambda e, b:
                    errors.append(e), **FAST)
    client.track("product_viewed", {"i": 1}, user_id="u")
    assert client.flush()
    assert client.stats().requests == 1
    ((error,),) = [errors]
    assert isinstance(error, RejectedError)
    assert error.status == 401
    client.shutdown()


def with_collector_limit(ws: Workspace, name: str, value: float) -> Workspace:
    """The workspace with ``[collector] name = value`` in its nerve.toml."""
    path = ws.root / "nerve.toml"
    text = path.read_text()
    line = f"{name} = {value}"
    if re.search(rf"^{name} *=", text, flags=re.MULTILINE):
        text = re.sub(rf"^{name} *=.*$", line, text, flags=re.MULTILINE)
    else:
        text = text.replace("[collector]\n", f"[collector]\n{line}\n")
    path.write_text(text)
    return Workspace.load(ws.root)


def test_a_real_400_is_not_retried(shop: Workspace, serve: Callable[..., Any]) -> None:
    ws = with_collector_limit(shop, "max_batch_events", 5)
    server = serve(ws)
    errors: list[Any] = []
    client = Client(key(ws), server.url, max_batch_size=8, on_error=lambda e, b:
                    errors.append((e, b)), **FAST)
    for i in range(8):
        client.track("product_viewed", {"i": i}, user_id="u")
    assert client.flush()
    ((error, batch),) = errors
    assert isinstance(error, RejectedError)
    assert error.status == 400
    assert "too_many_events" in str(error)
    assert len(batch) == 8
    assert client.stats().requests == 1
    client.shutdown()


def test_a_real_429_with_retry_after_is_retried_no_sooner(
        shop: Workspace, serve: Callable[..., Any]) -> None:
    # one event every 2 s: the second batch, sent at once, gets 429 with Retry-After: 2
    # (the SDK retries 429 and 503 alike: a lower bound on its wait, tests/sdk/test_retry)
    ws = with_collector_limit(shop, "rate_limit_per_second", 0.5)
    ws = with_collector_limit(ws, "rate_limit_burst", 1)
    server = serve(ws)
    errors: list[Any] = []
    client = Client(key(ws), server.url, max_retries=1, on_error=lambda e, b:
                    errors.append(e), **FAST)
    first = client.track("product_viewed", {"i": 1}, user_id="u")
    assert client.flush()
    second = client.track("product_viewed", {"i": 2}, user_id="u")
    started = time.monotonic()
    assert client.flush()
    assert time.monotonic() - started >= 2.0  # waited out the server's Retry-After
    assert errors == []
    assert client.stats().requests == 3  # the first, the refused one, its retry
    client.shutdown()
    rows = wait_rows(ws, "SELECT message_id FROM events", 2)
    assert sorted(r["message_id"] for r in rows) == sorted([first, second])


def test_a_real_413_splits_the_batch_until_it_fits(shop: Workspace,
                                                   serve: Callable[..., Any]) -> None:
    ws = with_collector_limit(shop, "max_request_bytes", 4000)
    server = serve(ws)
    errors: list[Any] = []
    with Client(key(ws), server.url, gzip=False, max_batch_size=16, on_error=lambda e, b:
                errors.append(e), **FAST) as client:
        ids = [client.track("product_viewed", {"i": i, "sku": "S" * 300}, user_id="u")
               for i in range(16)]
        client.flush()
        assert client.stats().requests > 1
    assert errors == []
    rows = wait_rows(ws, "SELECT message_id FROM events", 16)
    assert sorted(r["message_id"] for r in rows) == sorted(ids)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_events_wait_for_a_server_that_starts_late(shop: Workspace,
                                                   serve: Callable[..., Any]) -> None:
    port = _free_port()
    client = Client(key(shop), f"http://127.0.0.1:{port}", max_retries=200, **FAST)
    message_id = client.track("product_viewed", {"i": 1}, user_id="u")
    starter = threading.Timer(0.5, lambda: serve(shop, port=port))
    starter.start()
    assert client.flush()  # retried through connection errors until the server was up
    starter.join()
    client.shutdown()
    assert client.stats().requests > 1
    assert [r["message_id"] for r in wait_rows(shop, "SELECT message_id FROM events", 1)] == [
        message_id]


def test_spool_survives_a_killed_process_and_delivers_exactly_once(
        shop: Workspace, serve: Callable[..., Any], tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    port = _free_port()  # the server is down while the child queues
    code = textwrap.dedent(f"""
        import time
        from nerve.sdk import Client
        client = Client({key(shop)!r}, "http://127.0.0.1:{port}", spool_dir={str(spool)!r},
                        max_retries=0, flush_interval=0.05, backoff_max=0.05,
                        on_error=lambda e, b: None)
        for i in range(120):
            print(client.track("product_viewed", {{"i": i}}, user_id="u1"), flush=True)
        print("queued", flush=True)
        time.sleep(600)
    """)
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    ids = []
    for line in child.stdout:
        if line.strip() == "queued":
            break
        ids.append(line.strip())
    child.kill()  # SIGKILL, mid-life: nothing flushed, nothing closed
    child.wait()
    child.stdout.close()
    assert len(ids) == 120

    server = serve(shop, port=port)
    heir = Client(key(shop), server.url, spool_dir=spool, **FAST)
    assert heir.stats().recovered == 120
    assert heir.shutdown()
    again = Client(key(shop), server.url, spool_dir=spool, **FAST)
    assert again.stats().recovered == 0
    again.shutdown()
    assert server.stop() == 0  # drains the log into the warehouse
    from nerve.warehouse import Warehouse, result_json

    warehouse = Warehouse.for_workspace(shop, read_only=True)
    try:
        rows = result_json(warehouse.query("SELECT message_id FROM events"))["rows"]
    finally:
        warehouse.close()
    assert sorted(r["message_id"] for r in rows) == sorted(ids)  # each exactly once
