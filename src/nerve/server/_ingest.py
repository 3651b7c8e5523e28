"""The Segment HTTP Tracking API routes: read the body, collect, append, sync, answer 200."""

from __future__ import annotations

import asyncio
import logging
import time

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from nerve.collector import ENDPOINTS, RequestError
from nerve.errors import BackpressureError, NerveError, TransientError
from nerve.server._errors import nerve_error_response, unexpected_error_handler
from nerve.server._state import NerveState

__all__ = ["INGEST_PATHS", "client_ip", "fast_ingest", "ingest_routes"]

logger = logging.getLogger("nerve.server")

#: exactly 200 with a small JSON body: several SDKs treat 202/204 as failures and retry
_OK = b'{"success":true}'


async def _read_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing more than ``limit`` bytes before reading them all."""
    length = request.headers.get("content-length")
    too_large = RequestError(f"request body is larger than {limit} bytes", status=413,
                             code="payload_too_large", details={"limit": limit})
    if length is not None and length.isdigit() and int(length) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


#: media types a JSON body may be labelled with (analytics.js sends text/plain; some
#: clients send none or octet-stream); anything else is surely not a Segment request
_JSON_TYPES = frozenset({"application/json", "text/plain", "application/octet-stream", ""})


def _check_content_type(value: str | None) -> None:
    if value is None:
        return
    media = value.split(";", 1)[0].strip().lower()
    if media in _JSON_TYPES or media.endswith("+json"):
        return
    raise RequestError(f"Content-Type {media!r} is not accepted: send JSON "
                       "(application/json or text/plain)", status=415,
                       code="unsupported_media_type", details={"content_type": media})


def client_ip(request: Request, proxy_header: str | None) -> str | None:
    """The sender's address: the connection's, or what the trusted proxy says it saw.

    With ``[collector] trusted_proxy_header = "X-Forwarded-For"`` the LAST address of the
    header is used: it is the one the trusted proxy appended, while earlier entries are
    whatever the client claimed.
    """
    if proxy_header:
        forwarded = request.headers.get(proxy_header)
        if forwarded:
            last = forwarded.rsplit(",", 1)[-1].strip()
            if last:
                return last
    return request.client.host if request.client else None


async def ingest(request: Request) -> Response:
    """POST /v1/{batch,b,import,track,t,...}: 200 only once the events are durable."""
    state: NerveState = request.app.state.nerve
    started = time.perf_counter()
    response = await _ingest(request, state)
    if state.metrics is not None:
        state.metrics.answered(response.status_code, time.perf_counter() - started)
    return response


async def _ingest(request: Request, state: NerveState) -> Response:
    endpoint = request.scope["path"].rsplit("/", 1)[-1]  # request.url parses the Host too
    try:
        if state.overloaded:
            raise BackpressureError("the event log is behind the warehouse; retry shortly",
                                    retry_after=2)
        headers = request.headers
        _check_content_type(headers.get("content-type"))
        try:
            async with asyncio.timeout(state.body_timeout):
                body = await _read_body(request, state.collector.limits.max_request_bytes)
        except TimeoutError:
            raise RequestError(f"the request body took more than {state.body_timeout:g}s to "
                               "arrive", status=408, code="body_timeout",
                               details={"limit_seconds": state.body_timeout}) from None
        collected = state.collector.collect(
            body, endpoint=endpoint, authorization=headers.get("authorization"),
            content_encoding=headers.get("content-encoding"),
            client_ip=client_ip(request, state.proxy_header),
            user_agent=headers.get("user-agent"))
        if state.limiter is not None:
            state.limiter.check(collected.source.name, len(collected.rows))
        if collected.rows:
            if state.log_failed:
                state.reopen_log()
            # concurrent requests share one group commit: one Arrow batch, one fsync,
            # built and synced off the event loop
            await state.commit.commit(collected.rows)
    except NerveError as exc:
        return nerve_error_response(exc)
    except OSError as exc:  # a full or failing disk: retryable, and nothing was acknowledged
        logger.error("event log write failed; answering 503",
                     extra={"error": str(exc), "errno": exc.errno})
        if not state.log_failed:
            state.after_write_failure()
        return nerve_error_response(TransientError(
            f"the event log could not be written: {exc}", retry_after=5))
    if state.metrics is not None:
        state.metrics.observe(collected.source.name, collected.rows, collected.dropped)
    return Response(_OK, media_type="application/json")


#: the paths ``fast_ingest`` answers (POST only)
INGEST_PATHS = frozenset(f"/v1/{endpoint}" for endpoint in ENDPOINTS)


def ingest_routes() -> list[Route]:
    return [Route(path, ingest, methods=["POST"]) for path in sorted(INGEST_PATHS)]


async def fast_ingest(scope: Scope, receive: Receive, send: Send) -> None:
    """ASGI app for ``POST /v1/<endpoint>``: ``ingest`` without Starlette's router.

    Answers exactly as the routed endpoint does; an unexpected exception gets the same
    500 body as Starlette's handler gives it, and is logged.
    """
    request = Request(scope, receive)
    try:
        response = await ingest(request)
    except ClientDisconnect:
        return  # nobody to answer; nothing was acknowledged
    except Exception as exc:
        logger.exception("unexpected error in %s", scope["path"])
        response = await unexpected_error_handler(request, exc)
    await response(scope, receive, send)
