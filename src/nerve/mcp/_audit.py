"""What ``nerve mcp`` records itself, and what it keeps out of an operator's log.

A tool call that reaches nerve's read door (``nerve.cli._remote.answer``) is recorded
there, through ``nerve serve`` or on the file. Two kinds of call never got that far and
left no record: a request the SDK's bearer authentication refused (``401``: no token, or
one nobody holds), and a tool call the SDK refused before the tool ran (an unknown tool,
arguments that do not fit its schema). ``RecordRefusals`` and ``refused_call`` record
those, with who, what and the outcome (docs/privacy.md).

``QuietDisconnects``: the SDK logs a client that leaves (its SSE stream closed under it)
as an error with a traceback; that is one debug line here, and real errors stay errors.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from contextvars import ContextVar
from functools import partial
from typing import Any

import anyio
import anyio.to_thread
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nerve.audit import MAX_REQUEST_BYTES, Audit
from nerve.server._readers import Reader, identify

__all__ = ["QuietDisconnects", "RecordRefusals", "quiet_disconnects", "reached", "tool_call"]

log = logging.getLogger("nerve.mcp")

#: set for each tool call: whether its body handed it to nerve's read door, which
#: records it (a one-item list, so a body run in a copied context still sets it)
_REACHED: ContextVar[list[bool] | None] = ContextVar("nerve_mcp_reached", default=None)
#: how long a refused request's unread body is waited for, to record it
_BODY_WAIT_SECONDS = 5.0


def reached() -> None:
    """Say that this tool call reached nerve's read door (which records it)."""
    flag = _REACHED.get()
    if flag is not None:
        flag[0] = True


def tool_call() -> list[bool]:
    """Start watching one tool call; the list's item says whether it was ``reached``."""
    flag = [False]
    _REACHED.set(flag)
    return flag


class RecordRefusals:
    """ASGI middleware: a request refused with ``401`` or ``403`` (the SDK's bearer
    authentication) leaves one audit record, ``via: "mcp"``, as the server's refusals do:
    ``who`` is ``anonymous`` (no token) or ``invalid token``, with the client's address
    and the request as sent (its JSON-RPC method, the tool and its arguments)."""

    def __init__(self, app: ASGIApp, audit: Audit, readers: Mapping[str, Reader]) -> None:
        self.app = app
        self.audit = audit
        self.readers = dict(readers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        body: list[bytes] = []
        size = 0
        done = False
        status = 0

        async def tee() -> Message:
            nonlocal size, done
            message = await receive()
            if message["type"] == "http.request":
                chunk = message.get("body", b"")
                size += len(chunk)
                if size <= MAX_REQUEST_BYTES:
                    body.append(chunk)
                done = not message.get("more_body", False)
            elif message["type"] == "http.disconnect":
                done = True
            return message

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if status in (401, 403):
                    # the refused request's body was never read: read it before the
                    # answer (after it, the server no longer gives it), to record it
                    with anyio.move_on_after(_BODY_WAIT_SECONDS):
                        while not done:
                            await tee()
            await send(message)

        await self.app(scope, tee, watch)
        if status not in (401, 403):
            return
        headers = dict(scope["headers"])
        found = identify(self.readers, headers.get(b"authorization", b"").decode("latin-1"))
        client = scope.get("client")
        request: Any = {"bytes": size} if size > MAX_REQUEST_BYTES else b"".join(body)
        if not request:
            request = None  # a GET (the SSE stream) has no body
        await anyio.to_thread.run_sync(partial(
            self.audit.record, via="mcp", who="anonymous" if found is None else found.name,
            action=scope["path"], request=request, status=status,
            seconds=time.monotonic() - started, client=client[0] if client else None))


def _disconnected(exc: BaseException | None) -> bool:
    """Whether ``exc`` only says the client went away (its stream closed under us)."""
    if isinstance(exc, BaseExceptionGroup):
        return all(_disconnected(inner) for inner in exc.exceptions)
    return isinstance(exc, anyio.ClosedResourceError | anyio.BrokenResourceError
                      | anyio.EndOfStream)


class QuietDisconnects(logging.Filter):
    """A log filter for the SDK's HTTP transport: an error whose exception only says the
    client disconnected becomes one debug line of ``nerve.mcp``; anything else passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if record.levelno >= logging.ERROR and _disconnected(exc):
            log.debug("mcp: a client disconnected (%s: %s)", record.getMessage(),
                      type(exc).__name__)
            return False
        return True


def quiet_disconnects() -> None:
    """Install ``QuietDisconnects`` on the SDK's HTTP transport loggers (once)."""
    for name in ("mcp.server.streamable_http", "mcp.server.streamable_http_manager"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, QuietDisconnects) for f in logger.filters):
            logger.addFilter(QuietDisconnects())
