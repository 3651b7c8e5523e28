"""uvicorn's HTTP protocol with a deadline for each request's headers.

uvicorn times out a keep-alive connection that sends nothing after a response, and nerve
times out a slow body (``body_timeout_seconds``), but nothing bounds the wait for a
request's headers: a connection that sends nothing after connecting, or a few bytes now
and then (slowloris), keeps its place until the client goes. Past ``max_connections``
every new client then gets 503, for as long as the idle ones stay. Here a connection
whose request headers are not complete ``header_timeout_seconds`` after it opened (or
after its previous response) is closed: with a 408 when part of a request came, silently
when nothing did (as the keep-alive timeout closes).
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["DEFAULT_HEADER_TIMEOUT", "with_header_timeout"]

#: seconds a connection may take to send a request's headers (``[collector]
#: header_timeout_seconds``); real clients send them in one write
DEFAULT_HEADER_TIMEOUT = 10.0


def _answer(seconds: float) -> bytes:
    body = orjson.dumps({"code": "header_timeout", "message": "the request headers took "
                         f"more than {seconds:g}s to arrive",
                         "details": {"limit_seconds": seconds}})
    return (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body) + body)


class _HeaderDeadline(HttpToolsProtocol):
    """``HttpToolsProtocol`` closing a connection whose request headers come too late."""

    header_timeout = DEFAULT_HEADER_TIMEOUT
    timeout_answer = _answer(DEFAULT_HEADER_TIMEOUT)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        #: part of a request has come, its headers not all: a late one gets 408
        self._in_headers = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = True

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._disarm()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # the next request's headers are due now, unless it already came (pipelined)
        if not self.transport.is_closing() and not self.pipeline:
            self._arm()

    def _arm(self) -> None:
        self._disarm()
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
        self.transport.close()


def with_header_timeout(seconds: float) -> type[HttpToolsProtocol]:
    """The protocol class for uvicorn's ``Config(http=...)``, with this deadline (0: none,
    uvicorn's own protocol)."""
    if not seconds:
        return HttpToolsProtocol
    return type("HeaderDeadlineProtocol", (_HeaderDeadline,),
                {"header_timeout": seconds, "timeout_answer": _answer(seconds)})
