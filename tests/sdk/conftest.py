"""A scripted Segment-spec endpoint on loopback, for what a real nerve serve won't do on cue.

``scripted([(503, {"Retry-After": "1"}), 400, "drop"])`` starts a real HTTP server
(http.server in a thread) that answers POSTs with the scripted replies in order (a
status, a status with headers, or "drop": close the connection unanswered), then 200;
every request is recorded with its arrival time, headers and decoded body.
"""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest


@dataclass(frozen=True)
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b'{"success":true}'
    drop: bool = False  # close the connection without answering: a network error


@dataclass
class Request:
    at: float  # time.monotonic() on arrival
    wall: float  # time.time() on arrival
    path: str
    headers: dict[str, str]
    raw: bytes  # the body as sent (gzip or not)
    body: dict[str, Any]  # decoded JSON

    @property
    def batch(self) -> list[dict[str, Any]]:
        return list(self.body["batch"])


class ScriptedServer:
    def __init__(self, script: list[Reply]) -> None:
        self.script = list(script)
        self.requests: list[Request] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else each keep-alive reply waits 40 ms

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                data = gzip.decompress(raw) if self.headers.get("Content-Encoding") == "gzip" \
                    else raw
                with outer.lock:
                    outer.requests.append(Request(time.monotonic(), time.time(), self.path,
                                                  dict(self.headers), raw, orjson.loads(data)))
                    reply = outer.script.pop(0) if outer.script else Reply()
                if reply.drop:
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self.send_response(reply.status)
                for key, value in {"Content-Type": "application/json", **reply.headers}.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # the "drop" replies reset connections on purpose

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def events(self) -> list[dict[str, Any]]:
        """Every event received, in arrival order (resent ones more than once)."""
        return [event for request in self.requests for event in request.batch]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _reply(item: Any) -> Reply:
    if item == "drop":
        return Reply(drop=True)
    if isinstance(item, int):
        return Reply(item, body=b"{}" if item == 200 else b'{"code":"x","message":"scripted"}')
    status, headers = item
    return Reply(status, headers, body=b'{"code":"x","message":"scripted"}')


@pytest.fixture
def scripted() -> Iterator[Callable[..., ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def start(script: list[Any] | None = None) -> ScriptedServer:
        server = ScriptedServer([_reply(item) for item in script or []])
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()
