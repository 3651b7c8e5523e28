"""Hostile input against a real ``nerve serve``: each gets a clear 4xx or is cut off, and
the process lives (it answers /health and stores a good batch afterwards)."""

from __future__ import annotations

import contextlib
import gzip
import resource
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from serverkit import EVENTS, HTTP, basic, order, rows, write_key

from nerve.workspace import Workspace

LIMITS = "[collector]\nbody_timeout_seconds = 1\nmax_connections = 40\n"


def _nest(depth: int, message_id: bytes = b"") -> bytes:
    ids = b'"messageId":"%s",' % message_id if message_id else b""
    return (b'{"batch":[{"type":"track","event":"order_completed","userId":"u",' + ids
            + b'"properties":{"order_id":"o","revenue":1,"deep":' + b'{"a":' * depth + b"1"
            + b"}" * depth + b"}}]}")


def _json(**body: Any) -> bytes:
    import orjson

    return orjson.dumps(body)


def test_hostile_requests_get_clear_4xx_and_the_server_lives(
        make_workspace: Callable[..., Workspace], serve: Callable[..., Any]) -> None:
    ws = make_workspace(EVENTS)
    toml = ws.root / "nerve.toml"
    toml.write_text(toml.read_text().replace("[collector]\n", LIMITS))
    server = serve(ws)
    auth = basic(write_key(ws))
    bomb = gzip.compress(b"[" + b"0," * 20_000_000 + b"0]", compresslevel=9)
    cases: list[tuple[str, bytes, dict[str, str], int, str]] = [
        ("gzip bomb", bomb, {"Content-Encoding": "gzip"}, 413, "payload_too_large"),
        ("deep nesting (stored)", _nest(300), {}, 400, "too_deep"),
        # with an id, the validator meets the depth before the id's hash does
        ("deep nesting (validated)", _nest(300, b"deep-1"), {}, 400, "too_deep"),
        # storable, but no answer returning the row could be written: refused as well
        ("deep nesting (unreadable)", _nest(250, b"deep-2"), {}, 400, "too_deep"),
        ("deep nesting (parser)", _nest(5000), {}, 400, "invalid_json"),
        # (NaN, as analytics-python writes it, costs only its own event:
        # tests/collector/test_collect_big_integers.py)
        ("Infinity", b'{"batch":[{"properties":{"x":1e999}}]}', {}, 400, "invalid_json"),
        ("invalid UTF-8", b'{"batch":[{"type":"track","event":"\xff\xfe","userId":"u"}]}',
         {}, 400, "invalid_json"),
        # (a lone surrogate escape, as JSON.stringify writes half an emoji, is U+FFFD:
        # tests/collector/test_collect_big_integers.py)
        ("huge string", _json(batch=[order(1, properties={"s": "x" * 600_000})]), {}, 413,
         "payload_too_large"),
        ("huge array", _json(batch=[order(i) for i in range(3000)]), {}, 413,
         "payload_too_large"),
        ("many events", _json(batch=[{"type": "track"}] * 2600), {}, 400, "too_many_events"),
        # a form-urlencoded label is taken (RudderStack's Node SDK sends its JSON so):
        # the body decides, and a real form is no JSON
        ("form post", b"a=1&b=2", {"Content-Type": "application/x-www-form-urlencoded"},
         400, "invalid_json"),
        ("xml", b"<batch/>", {"Content-Type": "application/xml"}, 415,
         "unsupported_media_type"),
        # parameters without a media type are no JSON label (an empty header is none)
        ("no media type", b"{}", {"Content-Type": ";;;==="}, 415, "unsupported_media_type"),
    ]
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for name, body, headers, status, code in cases:
            answer = client.post("/v1/batch", content=body, headers={**auth, **headers})
            assert (answer.status_code, answer.json()["code"]) == (status, code), name
        # a slow body is cut off after body_timeout_seconds with 408
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.sendall(b"POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Type: "
                         b"application/json\r\nContent-Length: 1000\r\n"
                         + auth["Authorization"].join([b"Authorization: ".decode(), "\r\n"])
                         .encode() + b"\r\n" + b'{"batch": [')
            reply = b""
            while b"body_timeout" not in reply and (chunk := sock.recv(65536)):
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
        assert b"body_timeout" in reply
        # many idle connections: past max_connections the server sheds load with 503,
        # and recovers once they go
        idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(60)]
        try:
            for sock in idle:
                sock.sendall(b"POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")
            time.sleep(0.5)  # let the server take them in
            with httpx.Client(base_url=server.url, timeout=30) as fresh:
                crowded = fresh.get("/health")
            assert crowded.status_code in (200, 503)
        finally:
            for sock in idle:
                sock.close()
        # it recovers once it has seen them go (the closes reach it asynchronously)
        deadline = time.monotonic() + 15
        while (health := client.get("/health").status_code) != 200 \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        assert health == 200
        good = client.post("/v1/batch", json={"batch": [order(1, "ok")]}, headers=auth)
        assert good.status_code == 200
    assert server.stop() == 0
    assert [r["message_id"] for r in rows(ws, "SELECT message_id FROM events")] == ["ok-1"]


def _read_all(sock: socket.socket) -> bytes:
    sock.settimeout(10)
    reply = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            reply += chunk
    return reply


def test_connections_that_never_finish_their_headers_are_cut_off(
        make_workspace: Callable[..., Workspace], serve: Callable[..., Any]) -> None:
    """Idle and slowloris connections past max_connections would make every new client
    get 503 for as long as they stay: the server closes them itself, and serves again
    while their clients still hold them open."""
    ws = make_workspace(EVENTS)
    toml = ws.root / "nerve.toml"
    toml.write_text(toml.read_text().replace(
        "[collector]\n", "[collector]\nmax_connections = 40\nheader_timeout_seconds = 1\n"))
    server = serve(ws)
    auth = basic(write_key(ws))
    silent = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(25)]
    partial = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(25)]
    drip = socket.create_connection(("127.0.0.1", server.port))
    try:
        for sock in partial:
            sock.sendall(b"POST /v1/batch HTTP/1.1\r\nHost: x\r\n")
        time.sleep(0.3)
        assert HTTP.get(server.url + "/health", timeout=10).status_code == 503  # crowded
        # slowloris: a byte now and then never extends the deadline
        started = time.monotonic()
        with contextlib.suppress(OSError):  # the server closes it mid-drip
            for byte in b"POST /v1/batch HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 40:
                drip.sendall(bytes([byte]))
                time.sleep(0.1)
        assert time.monotonic() - started < 3.5  # cut off near 1 s, not after 6 s of drip
        deadline = time.monotonic() + 10
        while (health := HTTP.get(server.url + "/health", timeout=10).status_code) != 200 \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        assert health == 200  # recovered, with every idle client still connected
        for sock in [*partial, drip]:  # part of a request came: a clear 408
            reply = _read_all(sock)
            assert reply.startswith(b"HTTP/1.1 408"), reply[:100]
            assert orjson.loads(reply.split(b"\r\n\r\n", 1)[1])["code"] == "header_timeout"
        for sock in silent:  # nothing came: closed without an answer
            assert _read_all(sock) == b""
        # a client that keeps its connection and sends whole requests is not cut off
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for i in range(3):
                good = client.post("/v1/batch", json={"batch": [order(i, "kept")]},
                                   headers=auth)
                assert good.status_code == 200
                time.sleep(0.5)
    finally:
        for sock in [*silent, *partial, drip]:
            sock.close()
    assert server.stop() == 0
    assert len(rows(ws, "SELECT message_id FROM events")) == 3


@pytest.mark.parametrize(("key", "expected"), [
    ("header_timeout_seconds", "a number >= 0"),
    ("max_connections", "a whole number >= 1"),  # 0 answered every request 503
])
def test_a_bad_connection_limit_names_the_setting(make_workspace: Callable[..., Workspace],
                                                  serve: Callable[..., Any], key: str,
                                                  expected: str) -> None:
    ws = make_workspace(EVENTS)
    toml = ws.root / "nerve.toml"
    toml.write_text(toml.read_text().replace("[collector]\n", f'[collector]\n{key} = "lots"\n'))
    with pytest.raises(RuntimeError, match=rf"nerve.toml(:\d+)?: \[collector\] {key}: "
                                           f"expected {expected}, got 'lots'"):
        serve(ws)


def test_endless_headers_get_431_before_they_fill_memory(
        make_workspace: Callable[..., Workspace], serve: Callable[..., Any]) -> None:
    ws = make_workspace(EVENTS)
    toml = ws.root / "nerve.toml"  # the size limit holds without a deadline too
    toml.write_text(toml.read_text().replace(
        "[collector]\n", "[collector]\nheader_timeout_seconds = 0\n"))
    server = serve(ws)
    auth = basic(write_key(ws))
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"POST /v1/batch HTTP/1.1\r\nHost: x\r\nX-Endless: ")
        sent = 0
        with contextlib.suppress(OSError):  # the server closes it mid-header
            while sent < 64 << 20:
                sock.sendall(b"a" * 65536)
                sent += 65536
        reply = _read_all(sock)
    assert sent < 16 << 20  # refused early: not after the whole 64 MiB
    assert reply.startswith(b"HTTP/1.1 431"), reply[:100]
    assert orjson.loads(reply.split(b"\r\n\r\n", 1)[1])["code"] == "headers_too_large"
    # headers under the limit, however many, are fine
    big = {f"X-Pad-{i}": "p" * 1000 for i in range(50)}
    answer = HTTP.post(server.url + "/v1/batch", json={"batch": [order(1, "padded")]},
                       headers={**auth, **big}, timeout=10)
    assert answer.status_code == 200
    assert server.stop() == 0
    assert [r["message_id"] for r in rows(ws, "SELECT message_id FROM events")] == ["padded-1"]


def _open_files_limit(pid: int) -> tuple[str, str]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return soft, hard
    raise AssertionError(f"no open files limit for pid {pid}")


@pytest.mark.skipif(not Path("/proc/self/limits").exists(), reason="reads /proc")
def test_large_headers_sent_in_one_write_get_431_too(
        make_workspace: Callable[..., Workspace], serve: Callable[..., Any]) -> None:
    """Headers were counted only while incomplete after a read: 70 KB of them sent in one
    write (one read, up to 256 KiB) were accepted, and a 100 KB URL got 400 invalid_http."""
    ws = make_workspace(EVENTS)
    server = serve(ws)
    auth = basic(write_key(ws))
    body = orjson.dumps({"batch": [order(1, "big-head")]})
    head = (b"POST /v1/batch HTTP/1.1\r\nHost: x\r\nAuthorization: "
            + auth["Authorization"].encode() + b"\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n" % len(body))
    sent = {
        "a 70 KB header": head + b"X-Big: " + b"a" * 70_000 + b"\r\n\r\n" + body,
        "a 200 KB header": head + b"X-Big: " + b"a" * 200_000 + b"\r\n\r\n" + body,
        "100 KB of small headers": head + b"X-P: pad\r\n" * 10_000 + b"\r\n" + body,
        "a 100 KB URL": b"GET /v1/" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    }
    for name, request_bytes in sent.items():
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            with contextlib.suppress(OSError):
                sock.sendall(request_bytes)
            reply = _read_all(sock)
        assert reply.startswith(b"HTTP/1.1 431"), (name, reply[:100])
        assert orjson.loads(reply.split(b"\r\n\r\n", 1)[1])["code"] == "headers_too_large"
    # just under the limit in one write, with a body in the same write: stored
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(head + b"Connection: close\r\nX-Big: " + b"a" * 65_000 + b"\r\n\r\n"
                     + body)
        assert _read_all(sock).startswith(b"HTTP/1.1 200")
    # a body larger than the limit in the first read is no header
    large = [order(i, "large", context={"pad": "x" * 20_000}) for i in range(10)]
    answer = HTTP.post(server.url + "/v1/batch", json={"batch": large}, headers=auth,
                       timeout=10)
    assert answer.status_code == 200
    assert server.stop() == 0
    assert len(rows(ws, "SELECT message_id FROM events")) == 11


def test_a_refused_content_type_is_quoted_as_sent(
        make_workspace: Callable[..., Workspace], serve: Callable[..., Any]) -> None:
    """The 415 quoted the media type alone: ``; charset=utf-8`` was quoted as ''."""
    ws = make_workspace(EVENTS)
    server = serve(ws)
    auth = basic(write_key(ws))
    long = "application/x-" + "y" * 5000
    sent = {"; charset=utf-8": "'; charset=utf-8'",
            "Text/HTML; charset=utf-8": "'Text/HTML; charset=utf-8'",
            long: repr(long[:100] + "...")}
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for content_type, quoted in sent.items():
            answer = client.post("/v1/batch", content=b"{}",
                                 headers={**auth, "Content-Type": content_type})
            assert answer.status_code == 415, content_type
            error = answer.json()
            assert error["message"].startswith(f"Content-Type {quoted} is not accepted")
            assert error["details"] == {"content_type": quoted[1:-1]}
    assert server.stop() == 0


def test_serve_raises_its_open_files_limit_for_its_workers_too(
        make_workspace: Callable[..., Workspace], serve: Callable[..., Any]) -> None:
    # each connection is a file: at the usual soft limit (1024) a flood of connections
    # (max_connections is 1000 per process) left the loader with "Too many open files"
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= 1024:
        pytest.skip("the hard limit leaves nothing to raise")
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))  # what nerve serve inherits
    try:
        server = serve(make_workspace(EVENTS), "--workers", "2")
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert server.process is not None
    main = server.process.pid
    # the workers are started from one of the main process's threads
    children = [pid for task in Path(f"/proc/{main}/task").iterdir()
                for pid in (task / "children").read_text().split()]
    assert len(children) == 2
    for pid in [main, *map(int, children)]:
        got_soft, got_hard = _open_files_limit(pid)
        assert got_soft == got_hard != "1024", (pid, got_soft, got_hard)
    assert server.stop() == 0


@pytest.mark.parametrize("request_bytes", [
    # both framings: the request smuggling shape a proxy and nerve might read differently
    b"POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
    b"POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Length: 12x\r\n\r\n{",
    b"FOO /v1/batch HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /v1/batch HTTP/9.9\r\nHost: x\r\n\r\n",
], ids=["content-length and chunked", "content-length not a number", "unknown method",
        "bad version"])
def test_requests_that_are_not_http_get_the_one_error_shape(
        make_workspace: Callable[..., Workspace], serve: Callable[..., Any],
        request_bytes: bytes) -> None:
    """uvicorn answered these with a text/plain "Invalid HTTP request received."."""
    server = serve(make_workspace(EVENTS))
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(request_bytes)
        reply = _read_all(sock)
    head, body = reply.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 400"), reply[:200]
    assert b"content-type: application/json" in head.lower()
    answer = orjson.loads(body)
    assert answer["code"] == "invalid_http"
    assert answer["message"].startswith("the request is not valid HTTP/1.1")
    assert HTTP.get(server.url + "/health", timeout=10).status_code == 200
    assert server.stop() == 0


@pytest.mark.parametrize("length", [b"18446744073709551616", b"9" * 40])
def test_a_content_length_past_2_64_is_a_413_naming_the_limit(
        make_workspace: Callable[..., Workspace], serve: Callable[..., Any],
        length: bytes) -> None:
    """The parser refuses a length past 2^64 - 1 as an overflow: it was 400 invalid_http,
    "a length that is not a number", though it is one, and too large."""
    ws = make_workspace(EVENTS)
    toml = ws.root / "nerve.toml"
    toml.write_text(toml.read_text().replace("max_request_bytes = 512000",
                                             "max_request_bytes = 300000"))
    server = serve(ws)
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Length: " + length
                     + b"\r\n\r\n{")
        reply = _read_all(sock)
    head, body = reply.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 413"), reply[:200]
    assert b"content-type: application/json" in head.lower()
    answer = orjson.loads(body)
    assert answer == {"code": "payload_too_large", "details": {"limit": 300000},
                      "message": "the request's Content-Length is over 2^64 - 1 bytes; a "
                                 "request body may be at most 300000 bytes ([collector] "
                                 "max_request_bytes)"}
    metrics = HTTP.get(server.url + "/metrics", timeout=10).text
    assert _refusals(metrics) == {("413", "payload_too_large"): 1.0}
    assert server.stop() == 0


def _crowded_server(make_workspace: Callable[..., Workspace], serve: Callable[..., Any]
                    ) -> tuple[Workspace, Any]:
    """A server of ``max_connections = 3``."""
    ws = make_workspace(EVENTS)
    toml = ws.root / "nerve.toml"
    toml.write_text(toml.read_text().replace("[collector]\n", "[collector]\nmax_connections = 3\n"))
    return ws, serve(ws)


@contextlib.contextmanager
def _all_connections_taken(server: Any) -> Iterator[None]:
    """Three idle connections hold every one the server allows, while the block runs."""
    idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(3)]
    try:
        time.sleep(0.3)
        yield
    finally:
        for sock in idle:
            sock.close()


def test_past_max_connections_the_503_has_the_error_shape_and_retry_after(
        make_workspace: Callable[..., Workspace], serve: Callable[..., Any]) -> None:
    """uvicorn's own 503 was text/plain, without the Retry-After every nerve 503 has."""
    ws, server = _crowded_server(make_workspace, serve)
    with _all_connections_taken(server):
        crowded = HTTP.post(server.url + "/v1/batch", json={"batch": [order(1, "x")]},
                            headers=basic(write_key(ws)), timeout=10)
    assert crowded.status_code == 503
    assert crowded.headers["content-type"] == "application/json"
    assert crowded.json()["code"] == "overloaded"
    assert int(crowded.headers["Retry-After"]) >= 1
    # the limit and the connections open, as the backlog's 503 names its bound (its
    # details were null)
    details = crowded.json()["details"]
    assert details["max_connections"] == 3
    assert details["connections"] >= 3  # the three idle ones (and this one)
    assert "max_connections = 3" in crowded.json()["message"]
    assert server.stop() == 0


def test_refusals_past_max_connections_are_counted_and_logged_once(
        make_workspace: Callable[..., Workspace], serve: Callable[..., Any]) -> None:
    """They were answered 503 but missing from ``nerve_http_requests_total`` (so the
    alert on its 503s stayed quiet), and uvicorn logged a warning for each of them."""
    ws, server = _crowded_server(make_workspace, serve)
    with _all_connections_taken(server):
        statuses = [HTTP.post(server.url + "/v1/batch", json={"batch": [order(i, "x")]},
                              headers=basic(write_key(ws)), timeout=10).status_code
                    for i in range(5)]
    assert statuses == [503] * 5
    time.sleep(0.3)
    metrics = HTTP.get(server.url + "/metrics", timeout=10).text
    assert 'nerve_http_requests_total{status="503"} 5.0' in metrics
    assert server.stop() == 0
    log = server.output()
    assert "Exceeded concurrency limit." not in log
    warnings = [line for line in log.splitlines() if "max_connections" in line]
    assert len(warnings) == 1, warnings
    assert '"max_connections":3' in warnings[0]


def test_a_worker_forwards_paths_with_escaped_control_characters_without_a_500(
        make_workspace: Callable[..., Workspace], serve: Callable[..., Any]) -> None:
    """With ``--workers``, a worker forwards non-ingest requests to the main process by
    their decoded path: ``%1B`` (what a fuzzer sends as the settings endpoint's write key)
    made httpx refuse the URL, and the client got a 500 with a traceback in the log."""
    ws = make_workspace(EVENTS)
    server = serve(ws, "--workers", "2")
    paths = ["/v1/projects/%1B/settings", "/v1/projects/a%00b/settings", "/%1b",
             "/v1/projects/%E2%9C%93/settings", "/v1/projects/a%2Fb/settings"]
    for path in paths:
        # several connections, so that both workers (SO_REUSEPORT) get some
        for _ in range(6):
            answer = HTTP.get(server.url + path, timeout=10)
            assert answer.status_code == 404, (path, answer.status_code, answer.text)
            assert answer.json()["code"] in ("unknown_write_key", "not_found"), answer.text
    # the settings of a real key still come through the forward
    got = HTTP.get(f"{server.url}/v1/projects/{write_key(ws)}/settings", timeout=10)
    assert got.status_code == 200, got.text
    assert server.stop() == 0
    assert "Traceback" not in server.output()



def _resident_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def test_a_worker_does_not_hold_a_forwarded_body_in_memory(
        make_workspace: Callable[..., Workspace], serve: Callable[..., Any]) -> None:
    """A worker read a non-ingest request's body whole before forwarding it: 400 MB posted
    to an unknown path, with no token, grew it by 400 MB (kept after the answer). It now
    streams the body to the main process, which refuses it or answers without reading it."""
    server = serve(make_workspace(EVENTS), "--workers", "2")
    assert server.process is not None
    main = server.process.pid
    workers = [int(pid) for task in Path(f"/proc/{main}/task").iterdir()
               for pid in (task / "children").read_text().split()]
    before = {pid: _resident_bytes(pid) for pid in workers}
    size = 200 << 20
    host, port = server.url.removeprefix("http://").split(":")
    for _ in range(2):  # two connections: SO_REUSEPORT may give both to one worker
        with socket.create_connection((host, int(port)), timeout=60) as sock:
            sock.sendall(b"POST /v1/nothing HTTP/1.1\r\nHost: x\r\nContent-Type: "
                         b"application/json\r\nContent-Length: %d\r\n\r\n" % size)
            chunk = b"a" * (1 << 20)
            for _ in range(size // len(chunk)):
                sock.sendall(chunk)
            assert sock.recv(200).startswith(b"HTTP/1.1 404 ")
    grown = max(_resident_bytes(pid) - before[pid] for pid in workers)
    assert grown < size // 2, f"a worker grew by {grown >> 20} MiB for a {size >> 20} MiB body"
    assert HTTP.get(server.url + "/health", timeout=10).status_code == 200
    assert server.stop() == 0


def test_a_worker_cuts_off_a_forwarded_body_that_drips(
        make_workspace: Callable[..., Workspace], serve: Callable[..., Any]) -> None:
    """A worker sends a forwarded body whole before it reads the main process's answer,
    so a client dripping a body to any read path, no token needed, held its connection
    (and a place under max_connections) for as long as it liked: body_timeout_seconds
    applied to ingest only."""
    ws = make_workspace(EVENTS)
    toml = ws.root / "nerve.toml"
    toml.write_text(toml.read_text().replace("[collector]\n", LIMITS))
    server = serve(ws, "--workers", "2")
    host, port = server.url.removeprefix("http://").split(":")
    for _ in range(4):  # several connections, so that both workers get some
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            sock.sendall(b"POST /v1/admin/sql HTTP/1.1\r\nHost: x\r\nContent-Type: "
                         b"application/json\r\nContent-Length: 1000\r\n\r\n{")
            reply = b""
            while b"body_timeout" not in reply and (chunk := sock.recv(65536)):
                reply += chunk
            assert reply.startswith(b"HTTP/1.1 408 "), reply
            assert b'"code":"body_timeout"' in reply
            assert b'"details":{"limit_seconds":1.0}' in reply
    assert server.stop() == 0
    assert "Traceback" not in server.output()


def test_a_client_gone_in_the_middle_of_a_forwarded_body_is_no_error(
        make_workspace: Callable[..., Workspace], serve: Callable[..., Any]) -> None:
    """A client that closed its connection before its read request's body had all come
    left a worker an "Exception in ASGI application" traceback in the log."""
    server = serve(make_workspace(EVENTS), "--workers", "2")
    host, port = server.url.removeprefix("http://").split(":")
    for _ in range(4):  # several connections, so that both workers get some
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(b"POST /v1/admin/sql HTTP/1.1\r\nHost: x\r\nContent-Type: "
                         b"application/json\r\nContent-Length: 100000\r\n\r\n" + b"a" * 5000)
            time.sleep(0.2)
    assert HTTP.get(server.url + "/health", timeout=10).status_code == 200
    assert server.stop() == 0
    assert "Traceback" not in server.output()

def _refusals(metrics: str) -> dict[tuple[str, str], float]:
    from prometheus_client.parser import text_string_to_metric_families

    return {(s.labels["status"], s.labels["code"]): s.value
            for family in text_string_to_metric_families(metrics)
            for s in family.samples if s.name == "nerve_http_refusals_total"}


def test_metrics_count_every_refusal_by_its_code(
        make_workspace: Callable[..., Workspace], serve: Callable[..., Any]) -> None:
    """``nerve_http_requests_total`` counted refusals by status alone (a 400 of bad JSON
    and one of a missing field looked the same), and the answers given before a request
    reached nerve (400 invalid_http, 431, 408 header_timeout) were not counted at all."""
    ws = make_workspace(EVENTS)
    toml = ws.root / "nerve.toml"
    toml.write_text(toml.read_text().replace(
        "[collector]\n", "[collector]\nheader_timeout_seconds = 1\n"))
    server = serve(ws)
    auth = basic(write_key(ws))
    url = server.url + "/v1/batch"
    for _ in range(2):
        assert HTTP.post(url, content=b"{nope", headers=auth, timeout=10).status_code == 400
    assert HTTP.post(url, json={"batch": [{"type": "track"}]}, headers=auth,
                     timeout=10).status_code == 400
    assert HTTP.post(url, json={"batch": []}, timeout=10).status_code == 401
    assert HTTP.post(url, content=b"{}", headers={**auth, "Content-Type": "text/html"},
                     timeout=10).status_code == 415
    sent = {
        b"FOO /v1/batch HTTP/1.1\r\nHost: x\r\n\r\n": b"HTTP/1.1 400",
        b"POST /v1/batch HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000: b"HTTP/1.1 431",
        b"POST /v1/batch HTTP/1.1\r\nHost: x\r\n": b"HTTP/1.1 408",  # never finished
    }
    for request_bytes, status in sent.items():
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            with contextlib.suppress(OSError):
                sock.sendall(request_bytes)
            reply = _read_all(sock)
        assert reply.startswith(status), reply[:100]
    assert HTTP.post(url, json={"batch": [order(1, "fine")]}, headers=auth,
                     timeout=10).status_code == 200
    metrics = HTTP.get(server.url + "/metrics", timeout=10).text
    assert _refusals(metrics) == {
        ("400", "invalid_json"): 2.0, ("400", "missing_field"): 1.0,
        ("401", "unauthorized"): 1.0, ("415", "unsupported_media_type"): 1.0,
        ("400", "invalid_http"): 1.0, ("431", "headers_too_large"): 1.0,
        ("408", "header_timeout"): 1.0}
    # and the answers by status count them too
    assert 'nerve_http_requests_total{status="431"} 1.0' in metrics
    assert 'nerve_http_requests_total{status="400"} 4.0' in metrics
    assert server.stop() == 0


def test_requests_that_are_not_http_are_logged_once_a_minute_not_once_each(
        make_workspace: Callable[..., Workspace], serve: Callable[..., Any]) -> None:
    """uvicorn logged "Invalid HTTP request received." for each one: a client sending
    garbage in a loop wrote a log line per request (and named neither what nor how many)."""
    server = serve(make_workspace(EVENTS))
    for _ in range(20):
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http\r\n\r\n")
            assert _read_all(sock).startswith(b"HTTP/1.1 400")
    metrics = HTTP.get(server.url + "/metrics", timeout=10).text
    assert _refusals(metrics) == {("400", "invalid_http"): 20.0}
    assert server.stop() == 0
    log = server.output()
    assert "Invalid HTTP request received." not in log
    warnings = [line for line in log.splitlines() if "invalid_http" in line]
    assert len(warnings) == 1, warnings
    assert '"refused":1' in warnings[0]  # the first at once; the next one says how many


def test_a_forwarded_answer_has_each_header_once(
        make_workspace: Callable[..., Workspace], serve: Callable[..., Any]) -> None:
    """A worker passed on the main process's headers and its own stack added the same again:
    two ``date`` headers and ``vary: Origin, Origin`` on /v1/status and every read API."""
    server = serve(make_workspace(EVENTS), "--workers", "2")
    host, port = server.url.removeprefix("http://").split(":")
    for path in ("/v1/status", "/v1/nothing"):
        for _ in range(4):  # several connections, so that both workers get some
            with socket.create_connection((host, int(port)), timeout=10) as sock:
                sock.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\nOrigin: http://shop.example\r\n"
                             b"Connection: close\r\n\r\n" % path.encode())
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = sock.recv(4096)
                    if not chunk:
                        break
                    head += chunk
            lines = head.split(b"\r\n\r\n")[0].decode().split("\r\n")[1:]
            names = [line.split(":", 1)[0].lower() for line in lines]
            repeated = {name for name in names if names.count(name) > 1}
            assert not repeated, (path, lines)
            vary = [line.split(":", 1)[1].strip() for line in lines
                    if line.lower().startswith("vary:")]
            assert vary == ["Origin"], (path, lines)
            assert "date" in names, lines
            assert "access-control-allow-origin" in names, lines
    assert server.stop() == 0


def test_a_read_request_over_the_limit_is_refused_before_its_body_has_all_come(
        make_workspace: Callable[..., Workspace], serve: Callable[..., Any]) -> None:
    """One process (no workers) read a read request's body whole before checking its
    1 MiB limit: 400 MB to /v1/admin/sql, with the admin token, were all held in memory
    before the 413. It now refuses the body once past the limit, without waiting for the
    rest."""
    ws = make_workspace(EVENTS)
    server = serve(ws)
    token = orjson.loads((ws.data_dir / "server.json").read_bytes())["admin_token"]
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(b"POST /v1/admin/sql HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                     + token.encode() + b"\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % (400 << 20))
        sock.sendall(b" " * (2 << 20))  # the rest never comes: the answer must not wait
        reply = b""
        while b"\r\n\r\n" not in reply or not reply.endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 413 "), reply[:200]
    answer = orjson.loads(reply.split(b"\r\n\r\n", 1)[1])
    assert answer["code"] == "payload_too_large", answer
    assert str(400 << 20) in answer["message"], answer
    assert HTTP.get(server.url + "/health", timeout=10).status_code == 200
    assert server.stop() == 0
