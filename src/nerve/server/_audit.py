"""Audit every read-API request the main process answers (``nerve.audit``).

Worker processes forward read requests to the main process, naming the client's address
in ``CLIENT_HEADER``; the main process believes that header only when workers are its
only callers (``trust_forwarded``: it then listens on a private loopback port).
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any
from urllib.parse import parse_qsl

import anyio.to_thread
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nerve.audit import MAX_REQUEST_BYTES, Audit
from nerve.collector._body import write_key_from_header
from nerve.server._errors import error_response
from nerve.server._readers import INVALID, MASKED_HEADER, identify, sees_masked
from nerve.server._settings import SETTINGS_PREFIX
from nerve.server._state import NerveState

__all__ = ["CLIENT_HEADER", "AuditReads"]

#: the original client's address, as a worker forwarding a request saw it
CLIENT_HEADER = "x-nerve-client"
#: request bytes kept for the record (``nerve.audit`` parses up to this); beyond it only
#: the size is recorded (the read APIs refuse such a request: ``read_json``)
MAX_BODY_BYTES = MAX_REQUEST_BYTES


def _who(headers: dict[bytes, bytes], state: NerveState) -> tuple[str, bool]:
    """The reader a bearer token names, or the source a write key names (SDKs fetching
    experiment definitions), or ``anonymous``; and whether it reads the masked view."""
    authorization = headers.get(b"authorization", b"").decode("latin-1")
    found = identify(state.tokens(), authorization)
    if found is not None:
        view = headers.get(MASKED_HEADER.encode(), b"").decode("latin-1")
        return found.name, found is not INVALID and sees_masked(found, view)
    key = write_key_from_header(authorization)
    source = state.workspace.source_for_key(key) if key and key.isascii() else None
    return ("anonymous" if source is None else f"source {source.name}"), False


def _request(scope: Scope, body: bytes) -> Any:
    """The body (parsed by ``nerve.audit``), or a GET's query parameters."""
    if body:
        return body
    query = scope.get("query_string", b"").decode("latin-1")
    return dict(parse_qsl(query)) if query else None


async def _unrecorded(scope: Scope, receive: Receive, send: Send) -> None:
    """The answer to a read the audit log could not record: 503, and none of its rows."""
    await error_response(
        503, "audit_unavailable", "the read was not answered: the audit log could not "
        "record it (the server's log says why: a full disk, or .nerve/audit/ not "
        "writable); every read is recorded (docs/privacy.md)",
        headers={"Retry-After": "60"})(scope, receive, send)


class AuditReads:
    """ASGI middleware: one audit record per ``/v1/...`` request (ingest never gets here:
    ``_app._NerveApp`` answers it before the middleware stack), except the SDK settings
    (``_settings``): every page view with analytics.js fetches them, and they read no data."""

    def __init__(self, app: ASGIApp, audit: Audit, state: NerveState,
                 trust_forwarded: bool) -> None:
        self.app = app
        self.audit = audit
        self.state = state
        self.trust_forwarded = trust_forwarded

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or not scope["path"].startswith("/v1/")
                or scope["path"].startswith(SETTINGS_PREFIX) or scope["method"] == "OPTIONS"):
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        body: list[bytes] = []
        size = 0
        status: int | str = "no answer"

        async def tee() -> Message:
            nonlocal size
            message = await receive()
            if message["type"] == "http.request":
                chunk = message.get("body", b"")
                size += len(chunk)
                if size <= MAX_BODY_BYTES:
                    body.append(chunk)
            return message

        recorded: bool | None = None  # None: not yet; else whether the record was written

        async def record() -> bool:
            nonlocal recorded
            if recorded is not None:
                return recorded
            recorded = False
            headers = dict(scope["headers"])
            client = scope.get("client")
            address = client[0] if client else None
            if self.trust_forwarded and CLIENT_HEADER.encode() in headers:
                address = headers[CLIENT_HEADER.encode()].decode("latin-1")
            request = {"bytes": size} if size > MAX_BODY_BYTES else _request(
                scope, b"".join(body))
            who, masked = _who(headers, self.state)
            recorded = await anyio.to_thread.run_sync(partial(
                self.audit.record, via="http", who=who, action=scope["path"],
                request=request, status=status, seconds=time.monotonic() - started,
                client=address, masked=masked))
            return recorded

        held: Message | None = None

        async def watch(message: Message) -> None:
            nonlocal status, held
            if message["type"] == "http.response.start":
                status = message["status"]
                held = message  # sent with the body, once the read is recorded
                return
            last = message["type"] == "http.response.body" and not message.get("more_body")
            # recorded before the answer's last bytes leave: a client that has its answer
            # finds the read in the log; one the log cannot record is not answered (a
            # whole answer is one message: its rows never leave)
            if last and not await record() and held is not None:
                held = None
                await _unrecorded(scope, receive, send)
                return
            if held is not None:
                await send(held)
                held = None
            await send(message)

        try:
            await self.app(scope, tee, watch)
        finally:
            await record()  # no answer (the client left, or the app failed)
