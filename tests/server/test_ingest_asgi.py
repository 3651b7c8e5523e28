"""The raw ASGI ingest path (``_ingest.IngestApp``) answers byte for byte as the routed
Starlette endpoint under Starlette's CORSMiddleware: status, body, every header in order,
and the same metrics. Both run under a real uvicorn on loopback over one real state (log,
DuckDB); ``date`` and ``server`` headers are off so that whole answers compare."""

from __future__ import annotations

import gzip
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import anyio
import httpx
import orjson
import pytest
import uvicorn
from serverkit import EVENTS, basic, order, write_key
from starlette.applications import Starlette

from nerve.catalog import Catalog
from nerve.log import LogWriter
from nerve.server import NerveState, create_app
from nerve.warehouse import Warehouse
from nerve.workspace import Workspace

#: a small body limit and a short body timeout, in nerve.toml's [collector]
LIMITS = {"max_request_bytes = 512000": "max_request_bytes = 4096\nbody_timeout_seconds = 0.5"}
ORIGIN = {"Origin": "https://shop.example"}


@contextmanager
def _state(ws: Workspace) -> Iterator[NerveState]:
    warehouse = Warehouse.for_workspace(ws)
    log = LogWriter(ws.log_dir, "test")
    try:
        yield NerveState(workspace=ws, catalog=Catalog.load(ws.events_dir),
                         warehouse=warehouse, log=log, admin_token="token")
    finally:
        log.close()
        warehouse.close()


@pytest.fixture
def workspace(make_workspace: Callable[..., Workspace]) -> Workspace:
    toml = make_workspace(EVENTS).root / "nerve.toml"
    text = toml.read_text()
    for old, new in LIMITS.items():
        assert old in text
        text = text.replace(old, new)
    toml.write_text(text)
    return Workspace.load(toml.parent)


@pytest.fixture
def state(workspace: Workspace) -> Iterator[NerveState]:
    with _state(workspace) as each:
        yield each


def routed(app: Starlette) -> Any:
    """The same app, forced through Starlette's middleware, router and endpoint."""

    async def asgi(scope: Any, receive: Any, send: Any) -> None:
        await Starlette.__call__(app, scope, receive, send)

    return asgi


@contextmanager
def _uvicorn(app: Any) -> Iterator[int]:
    """Serve ``app`` with uvicorn (uvloop, httptools, as nerve serve) on a free port."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, lifespan="off", log_config=None, access_log=False, ws="none",
                            server_header=False, date_header=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]})
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.started, "uvicorn did not start"
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


@contextmanager
def _servers(state: NerveState) -> Iterator[tuple[int, int]]:
    """(fast, routed) ports: the nerve app, and the same app through Starlette."""
    app = create_app(state)
    with ExitStack() as stack:
        yield stack.enter_context(_uvicorn(app)), stack.enter_context(_uvicorn(routed(app)))


@pytest.fixture
def ports(state: NerveState) -> Iterator[tuple[int, int]]:
    with _servers(state) as both_ports:
        yield both_ports


def counters(state: NerveState) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every counter and the latency histogram's count (its sum is a timing)."""
    assert state.metrics is not None
    assert state.metrics.registry is not None  # metrics in this process, not in files
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in state.metrics.registry.collect() for s in family.samples
            if s.name.endswith(("_total", "_seconds_count"))}


Answer = tuple[int, bytes, list[tuple[bytes, bytes]]]


def post(state: NerveState, port: int, path: str, **kwargs: Any) -> tuple[Answer, Any]:
    """One POST over real HTTP: the whole answer, and what it changed in the metrics.

    ``content`` given as a list of chunks is sent with ``Transfer-Encoding: chunked``.
    """
    if isinstance(kwargs.get("content"), list):
        kwargs = {**kwargs, "content": iter(kwargs["content"])}
    before = counters(state)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        response = client.post(path, **kwargs)
    after = counters(state)
    changed = {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k, 0.0)}
    return (response.status_code, response.content, list(response.headers.raw)), changed


def both(state: NerveState, ports: tuple[int, int], path: str, **kwargs: Any) -> Answer:
    """POST to the fast and the routed path; assert identical answers and metrics."""
    fast, fast_metrics = post(state, ports[0], path, **kwargs)
    slow, slow_metrics = post(state, ports[1], path, **kwargs)
    assert fast == slow, (path, fast, slow)
    assert fast_metrics == slow_metrics, (path, fast_metrics, slow_metrics)
    requests = {k[1]: v for k, v in fast_metrics.items() if k[0] == "nerve_http_requests_total"}
    assert requests == {(("status", str(fast[0])),): 1.0}  # each answer counted once
    return fast


def batch(*events: dict[str, Any]) -> bytes:
    return orjson.dumps({"batch": list(events)})


def test_answers_equal_the_routed_endpoint(state: NerveState, ports: tuple[int, int],
                                           workspace: Workspace) -> None:
    auth = basic(write_key(workspace))
    n = iter(range(1000))

    def good() -> bytes:  # one order, a fresh message id per call
        return batch(order(next(n), "a"))

    json = {"Content-Type": "application/json"}
    cases: list[tuple[str, str, dict[str, Any], int, str | None]] = [
        ("valid batch", "/v1/batch", {"content": good(), "headers": {**auth, **json}}, 200,
         None),
        ("one track call", "/v1/t", {"content": orjson.dumps(order(next(n), "t")),
                                     "headers": auth}, 200, None),
        ("bad JSON", "/v1/batch", {"content": b"{not json", "headers": auth}, 400,
         "invalid_json"),
        # what RudderStack's Node SDK (through axios) and `curl -d` label JSON with
        ("JSON labelled as a form", "/v1/batch", {"content": good(), "headers": {
            **auth, "Content-Type": "application/x-www-form-urlencoded"}}, 200, None),
        ("a form labelled as a form", "/v1/batch", {"content": b"a=1&b=2", "headers": {
            **auth, "Content-Type": "application/x-www-form-urlencoded"}}, 400,
         "invalid_json"),
        ("wrong content type", "/v1/batch", {"content": b"<b/>", "headers": {
            **auth, "Content-Type": "application/xml"}}, 415, "unsupported_media_type"),
        ("too large (Content-Length)", "/v1/batch", {"content": b" " * 5000,
                                                     "headers": auth}, 413,
         "payload_too_large"),
        ("too large (chunked)", "/v1/batch", {"content": [b" " * 3000] * 2,
                                              "headers": auth}, 413, "payload_too_large"),
        ("unknown key", "/v1/batch", {"content": good(), "headers": basic("nope")}, 401,
         None),
        ("no key", "/v1/batch", {"content": good()}, 401, None),
        ("gzip", "/v1/batch", {"content": gzip.compress(good()), "headers": {
            **auth, "Content-Encoding": "gzip"}}, 200, None),
        ("broken gzip", "/v1/batch", {"content": b"not gzip", "headers": {
            **auth, "Content-Encoding": "gzip"}}, 400, "invalid_encoding"),
        ("unknown encoding", "/v1/batch", {"content": good(), "headers": {
            **auth, "Content-Encoding": "br"}}, 415, "unsupported_encoding"),
        ("quarantined event", "/v1/batch", {"content": batch({
            "type": "track", "event": "order_completed", "userId": "u",
            "messageId": "q-1", "properties": {"revenue": "x"}}), "headers": auth}, 200,
         None),
    ]
    for name, path, kwargs, status, code in cases:
        for extra in ({}, ORIGIN):
            sent = {**kwargs, "headers": {**kwargs.get("headers", {}), **extra}}
            answer_status, body, headers = both(state, ports, path, **sent)
            assert answer_status == status, (name, body)
            if code is not None:
                assert orjson.loads(body)["code"] == code, name
            names = [k for k, _ in headers]
            assert headers[-1] == (b"vary", b"Origin"), name
            assert (b"access-control-allow-origin" in names) == bool(extra), name
    ok, body, headers = both(state, ports, "/v1/batch", content=good(), headers={**auth,
                                                                              **ORIGIN})
    assert (ok, body) == (200, b'{"success":true}')
    assert headers == [(b"content-length", b"16"), (b"content-type", b"application/json"),
                       (b"access-control-allow-origin", b"*"), (b"vary", b"Origin")]
    unauthorized = both(state, ports, "/v1/batch", content=good(), headers=basic("nope"))
    assert (b"www-authenticate", b'Basic realm="nerve"') in unauthorized[2]
    # a repeated header: the first one counts, as with Starlette's Headers.get
    keys = [auth["Authorization"], basic("nope")["Authorization"]]
    first_good = [("Authorization", key) for key in keys]
    assert both(state, ports, "/v1/batch", content=good(), headers=first_good)[0] == 200
    first_bad = [("Authorization", key) for key in reversed(keys)]
    assert both(state, ports, "/v1/batch", content=good(), headers=first_bad)[0] == 401


def test_backpressure_and_disk_failures_answer_alike(state: NerveState,
                                                     ports: tuple[int, int],
                                                     workspace: Workspace) -> None:
    auth = basic(write_key(workspace))
    state.overloaded = True
    status, body, headers = both(state, ports, "/v1/batch", content=batch(order(1)),
                                 headers={**auth, **ORIGIN})
    assert (status, headers[0]) == (503, (b"retry-after", b"2"))
    state.overloaded = False
    state.log = state.commit.log = FullDisk()
    status, body, headers = both(state, ports, "/v1/batch", content=batch(order(2)),
                                 headers=auth)
    assert (status, headers[0]) == (503, (b"retry-after", b"5"))
    assert b"No space left on device" in body


class FullDisk:
    """An event log on a disk that refuses writes (test_faults.py fills a real tmpfs)."""

    def append(self, batch: Any) -> None:
        raise OSError(28, "No space left on device")

    def sync(self) -> None:
        raise OSError(28, "No space left on device")

    def close(self) -> None:
        pass


def test_rate_limited_answers_alike(make_workspace: Callable[..., Workspace]) -> None:
    ws = make_workspace(EVENTS, extra_toml="rate_limit_per_second = 1\nrate_limit_burst = 1\n")
    auth = basic(write_key(ws))
    with _state(ws) as state, _servers(state) as ports:
        first, _ = post(state, ports[0], "/v1/batch", content=batch(order(1)), headers=auth)
        assert first[0] == 200  # the bucket's one token
        status, body, headers = both(state, ports, "/v1/batch", content=batch(order(2)),
                                     headers={**auth, **ORIGIN})
        assert (status, orjson.loads(body)["code"]) == (429, "rate_limited")
        assert (b"retry-after", b"1") in headers


def _exchange(port: int, request: bytes) -> bytes:
    """Send raw bytes, then read one Content-Length framed response."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request)
        reply = b""
        while b"\r\n\r\n" not in reply and (chunk := sock.recv(65536)):
            reply += chunk
        head, _, body = reply.partition(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        while len(body) < length and (chunk := sock.recv(65536)):
            body += chunk
    return head + b"\r\n\r\n" + body


def test_a_slow_body_gets_the_same_408(state: NerveState, ports: tuple[int, int],
                                       workspace: Workspace) -> None:
    auth = basic(write_key(workspace))["Authorization"].encode()
    request = (b"POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n"
               b"Origin: https://shop.example\r\nAuthorization: " + auth + b"\r\n\r\n{\"ba")
    fast, slow = _exchange(ports[0], request), _exchange(ports[1], request)
    assert fast == slow
    assert fast.startswith(b"HTTP/1.1 408 ")
    assert b'"code":"body_timeout"' in fast
    assert b"access-control-allow-origin: *" in fast


def _call(app: Any, headers: list[tuple[bytes, bytes]],
          messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One POST /v1/batch straight through ASGI; the messages the app sent."""
    scope = {"type": "http", "method": "POST", "path": "/v1/batch", "client": None,
             "headers": headers}
    pending, sent = list(reversed(messages)), []

    async def receive() -> Any:
        return pending.pop()

    async def send(message: Any) -> None:
        sent.append(message)

    anyio.run(app, scope, receive, send)
    return sent


def test_a_client_gone_before_its_body_gets_no_answer(state: NerveState,
                                                      workspace: Workspace) -> None:
    before = counters(state)
    auth = (b"authorization", basic(write_key(workspace))["Authorization"].encode())
    sent = _call(create_app(state), [auth, (b"content-length", b"100")],
                 [{"type": "http.request", "body": b"{", "more_body": True},
                  {"type": "http.disconnect"}])
    assert sent == []
    assert counters(state) == before  # not answered, not counted


def test_body_timeout_seconds_0_is_no_deadline(make_workspace: Callable[..., Workspace]) -> None:
    """As for header_timeout_seconds, 0 is no deadline: it was a deadline of 0 s, so every
    body that came in more than one read (any batch over a TCP segment) got 408, which
    SDKs retry for ever."""
    ws = make_workspace(EVENTS)
    toml = ws.root / "nerve.toml"
    toml.write_text(toml.read_text().replace("[collector]\n",
                                             "[collector]\nbody_timeout_seconds = 0\n"))
    body = orjson.dumps({"batch": [order(1)]})
    auth = (b"authorization", basic(write_key(ws))["Authorization"].encode())
    parts = [body[:10], body[10:]]
    sent: list[Any] = []

    async def receive() -> Any:
        await anyio.sleep(0.01)  # the second part comes later, as over a network
        part = parts.pop(0)
        return {"type": "http.request", "body": part, "more_body": bool(parts)}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v1/batch", "client": None,
             "headers": [auth, (b"content-length", str(len(body)).encode())]}
    with _state(Workspace.load(ws.root)) as state:
        anyio.run(create_app(state), scope, receive, send)
    assert sent[0]["status"] == 200, sent


class Broken:
    """A collector with a bug: what the fast path answers to an unexpected exception."""

    def __init__(self, real: Any) -> None:
        self.limits = real.limits

    def collect(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")


def test_a_bug_gets_the_one_500_shape_with_cors_headers(state: NerveState) -> None:
    state.collector = Broken(state.collector)  # type: ignore[assignment]
    before = counters(state)
    sent = _call(create_app(state), [(b"origin", b"https://shop.example")],
                 [{"type": "http.request", "body": b"{}"}])
    after = counters(state)
    # counted, so that an alert on 5xx answers sees a bug
    assert after[("nerve_http_requests_total", (("status", "500"),))] == before.get(
        ("nerve_http_requests_total", (("status", "500"),)), 0.0) + 1
    body = orjson.dumps({"code": "internal", "message": "a bug in nerve: RuntimeError: boom",
                         "details": None})
    assert sent == [{"type": "http.response.start", "status": 500, "headers": [
        (b"content-length", b"%d" % len(body)), (b"content-type", b"application/json"),
        (b"access-control-allow-origin", b"*"), (b"vary", b"Origin")]},
                    {"type": "http.response.body", "body": body}]
