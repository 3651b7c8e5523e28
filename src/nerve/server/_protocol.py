"""uvicorn's HTTP protocol with a deadline and a size limit for each request's headers.

uvicorn times out a keep-alive connection that sends nothing after a response, and nerve
times out a slow body (``body_timeout_seconds``), but nothing bounds the wait for a
request's headers: a connection that sends nothing after connecting, or a few bytes now
and then (slowloris), keeps its place until the client goes. Past ``max_connections``
every new client then gets 503, for as long as the idle ones stay. Here a connection
whose request headers are not complete ``header_timeout_seconds`` after it opened (or
after its previous response) is closed: with a 408 when part of a request came, silently
when nothing did (as the keep-alive timeout closes).

Nor does anything bound their size: httptools hands uvicorn a header's value whole, so
one header that never ends is held, and copied as it grows, until the deadline (a client
on loopback pushed ~80 MB in 8 s, and the worker grew by 155 MB). Headers past
``MAX_HEADER_BYTES`` are refused with 431 and the connection is closed: while they come,
by the bytes read so far, and when they are complete, by their size (headers that came in
one read with their end were never counted as they came; a read is up to 256 KiB).

uvicorn's own refusals are in nerve's one error shape too: a request its parser cannot
read (both Content-Length and chunked framing, a malformed length, an unknown method or
version) gets 400 ``invalid_http``; one whose Content-Length is a number past 2^64 - 1,
which the parser refuses as an overflow, gets 413 ``payload_too_large`` naming ``[collector]
max_request_bytes``, as a length under 2^64 over that limit does; and a request past
``max_connections`` gets 503 ``overloaded`` with ``Retry-After``, like every nerve 503
(uvicorn answered both in text/plain, the 503 without ``Retry-After``). Those 503s are counted in
``nerve_http_requests_total`` like the ingest path's, and logged at most once a minute
(uvicorn logged a warning for each one: a line per request under a flood).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sys
import time
from typing import Any

from uvicorn.protocols.http.flow_control import service_unavailable
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from nerve.server._errors import error_response
from nerve.workspace import CollectorLimits

#: ``[collector] max_request_bytes`` unless the workspace sets it
_DEFAULT_MAX_REQUEST_BYTES: int = CollectorLimits().max_request_bytes

__all__ = ["DEFAULT_HEADER_TIMEOUT", "MAX_HEADER_BYTES", "with_header_limits"]

#: seconds a connection may take to send a request's headers (``[collector]
#: header_timeout_seconds``); real clients send them in one write
DEFAULT_HEADER_TIMEOUT = 10.0
#: bytes a request's line and headers may take (nginx allows 32 KiB, Node.js 16 KiB)
MAX_HEADER_BYTES = 64 << 10


def _refusal(status: bytes, code: str, message: str, details: dict[str, Any] | None) -> bytes:
    """A whole HTTP answer in nerve's one error shape, written before any ASGI app runs."""
    body = bytes(error_response(int(status.split()[0]), code, message, details).body)
    return (b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body) + body)


def _answer(seconds: float) -> bytes:
    return _refusal(b"408 Request Timeout", "header_timeout", "the request headers took "
                    f"more than {seconds:g}s to arrive", {"limit_seconds": seconds})


_TOO_LARGE = _refusal(b"431 Request Header Fields Too Large", "headers_too_large",
                      f"the request line and headers are over {MAX_HEADER_BYTES} bytes",
                      {"limit": MAX_HEADER_BYTES})

_NOT_HTTP = _refusal(b"400 Bad Request", "invalid_http", "the request is not valid HTTP/1.1 "
                     "(its request line, a header, or its framing: Content-Length and "
                     "Transfer-Encoding both set, or a length that is not a number)", None)

#: what httptools (llhttp) says of a Content-Length past 2^64 - 1: a number, too large
_LENGTH_OVERFLOW = "Content-Length overflow"


def _too_long(limit: int) -> bytes:
    return _refusal(b"413 Content Too Large", "payload_too_large", "the request's "
                    "Content-Length is over 2^64 - 1 bytes; a request body may be at most "
                    f"{limit} bytes ([collector] max_request_bytes)", {"limit": limit})

#: the request line's bytes besides its method and URL, and the blank line ending headers
_LINE_FRAMING = len(b"  HTTP/1.1\r\n\r\n")
#: a header's bytes besides its name and value
_HEADER_FRAMING = len(b": \r\n")


class _HeadersTooLargeError(Exception):
    """Raised in a parser callback to stop parsing a request answered with 431."""


#: seconds a client refused past ``max_connections`` is asked to wait
CROWDED_RETRY_AFTER = 1


#: seconds between two warnings about requests refused past ``max_connections``
CROWDED_LOG_SECONDS = 60.0

logger = logging.getLogger("nerve.server")


def _count(app: Any, status: int, code: str) -> None:
    """Count a refusal answered here, before nerve's app saw the request."""
    metrics = getattr(getattr(getattr(app, "state", None), "nerve", None), "metrics", None)
    if metrics is not None:
        metrics.refused(status, code)


class _Refusals:
    """One kind of request a process refuses here: counted, and logged once a minute at
    most (the first at once) with how many since, not a line each (a flood of them would
    otherwise fill the log)."""

    def __init__(self, message: str, status: int, code: str) -> None:
        self.message, self.status, self.code = message, status, code
        self.unlogged = 0
        self.logged_at = float("-inf")

    def refused(self, app: Any, **extra: Any) -> None:
        _count(app, self.status, self.code)
        self.unlogged += 1
        now = time.monotonic()
        if now - self.logged_at >= CROWDED_LOG_SECONDS:
            logger.warning(self.message, extra={**extra, "refused": self.unlogged})
            self.logged_at, self.unlogged = now, 0


def _crowding() -> _Refusals:
    return _Refusals("past max_connections: answering 503 to new requests", 503, "overloaded")


def _unreadable() -> _Refusals:
    return _Refusals("requests that are not HTTP/1.1 nerve can read: answering 400 "
                     "invalid_http", 400, "invalid_http")


#: uvicorn's warnings for each request, said by ``_Refusals`` once a minute instead
_QUIETED = frozenset({"Exceeded concurrency limit.", "Invalid HTTP request received."})


class _QuietCrowding(logging.Filter):
    """Drops uvicorn's warning for each request past ``limit_concurrency`` or that its
    parser refused (``_Refusals`` says them once a minute instead)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg not in _QUIETED


async def _crowded(details: dict[str, Any], scope: Any, receive: Any, send: Any) -> None:
    """uvicorn's answer past ``limit_concurrency``, in nerve's shape and with Retry-After;
    ``details`` name the limit (per process) and the connections open, as the backlog's
    503 names its bound and the backlog."""
    response = error_response(
        503, "overloaded", "this server process serves as many connections or requests as "
        f"it may ([collector] max_connections = {details['max_connections']}); retry shortly",
        details,
        headers={"Retry-After": str(CROWDED_RETRY_AFTER), "Connection": "close"})
    await response(scope, receive, send)


class _HeaderLimits(HttpToolsProtocol):
    """``HttpToolsProtocol`` closing a connection whose request headers come too late
    (``header_timeout`` seconds; 0: no deadline) or grow too large."""

    header_timeout = DEFAULT_HEADER_TIMEOUT
    timeout_answer = _answer(DEFAULT_HEADER_TIMEOUT)
    too_long_answer = _too_long(_DEFAULT_MAX_REQUEST_BYTES)
    crowding = _crowding()
    unreadable = _unreadable()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        #: part of a request has come, its headers not all: a late one gets 408
        self._in_headers = False
        #: bytes received since the request began, while its headers were incomplete
        self._header_bytes = 0
        #: bytes of the read being parsed: with ``_header_bytes``, a bound on the headers'
        self._read_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._read_bytes = len(data)
        super().data_received(data)
        if self._in_headers and not self.transport.is_closing():
            self._header_bytes += len(data)
            if self._header_bytes > MAX_HEADER_BYTES:
                self.transport.write(_TOO_LARGE)
                self.transport.close()
                _count(self.app, 431, "headers_too_large")

    def send_400_response(self, msg: str) -> None:
        """A request the parser refused: nerve's error shape instead of uvicorn's text."""
        if self.transport.is_closing():
            return  # answered already: its headers were too large (``on_headers_complete``)
        # uvicorn calls this in its ``except HttpParserError``: the parser's own words
        if str(sys.exc_info()[1]) == _LENGTH_OVERFLOW:
            self.transport.write(self.too_long_answer)
            self.transport.close()
            _count(self.app, 413, "payload_too_large")
            return
        self.transport.write(_NOT_HTTP)
        self.transport.close()
        self.unreadable.refused(self.app)

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        if app is service_unavailable:
            self.crowding.refused(self.app, max_connections=self.limit_concurrency)
            app = functools.partial(_crowded, {"max_connections": self.limit_concurrency,
                                               "connections": len(self.connections)})
        super()._start_asgi_task(cycle, app)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = True
        self._header_bytes = 0

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._disarm()
        # the reads since the request began bound its headers' size: measured only when
        # that bound is over the limit (a read of more than 64 KiB, or headers in several)
        if (self._header_bytes + self._read_bytes > MAX_HEADER_BYTES
                and self._head_bytes() > MAX_HEADER_BYTES):
            self.transport.write(_TOO_LARGE)
            self.transport.close()
            _count(self.app, 431, "headers_too_large")
            # stops the parser before uvicorn reads the URL (one over 64 KiB is a 400 there)
            # or starts the app; uvicorn then calls send_400_response, which sees it closed
            raise _HeadersTooLargeError
        super().on_headers_complete()

    def _head_bytes(self) -> int:
        """The request line's and headers' bytes (less any optional whitespace)."""
        return (len(self.parser.get_method()) + len(self.url) + _LINE_FRAMING
                + sum(len(name) + len(value) + _HEADER_FRAMING for name, value in self.headers))

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # the next request's headers are due now, unless it already came (pipelined)
        if not self.transport.is_closing() and not self.pipeline:
            self._arm()

    def _arm(self) -> None:
        self._disarm()
        if self.header_timeout:
            self._deadline = self.loop.call_later(self.header_timeout, self._late)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _late(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a request is being answered: its headers came
        if self._in_headers:
            self.transport.write(self.timeout_answer)
            _count(self.app, 408, "header_timeout")
        self.transport.close()


def with_header_limits(seconds: float, max_request_bytes: int = _DEFAULT_MAX_REQUEST_BYTES
                       ) -> type[HttpToolsProtocol]:
    """The protocol class for uvicorn's ``Config(http=...)``: headers within ``seconds``
    (0: no deadline) and ``MAX_HEADER_BYTES``; past ``max_connections``, nerve's 503,
    counted, and logged once a minute at most. ``max_request_bytes``: the limit a 413
    for a Content-Length past 2^64 - 1 names."""
    uvicorn_logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _QuietCrowding) for f in uvicorn_logger.filters):
        uvicorn_logger.addFilter(_QuietCrowding())
    return type("HeaderLimitsProtocol", (_HeaderLimits,),
                {"header_timeout": seconds, "timeout_answer": _answer(seconds),
                 "too_long_answer": _too_long(max_request_bytes),
                 "crowding": _crowding(), "unreadable": _unreadable()})
