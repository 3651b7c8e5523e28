"""The ASGI app: collector routes, SDK settings, /health and /ready, the read APIs, CORS, one
error shape."""

from __future__ import annotations

import gc
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import anyio.to_thread
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nerve import __version__
from nerve.audit import Audit
from nerve.errors import BackpressureError, NerveError, TransientError
from nerve.server._audit import AuditReads
from nerve.server._backpressure import backlog_details, overload_reason
from nerve.server._errors import (
    error_response,
    http_exception_handler,
    nerve_error_handler,
    unexpected_error_handler,
)
from nerve.server._ingest import INGEST_PATHS, IngestApp, ingest_routes
from nerve.server._metrics import metrics_endpoint
from nerve.server._openapi import openapi_endpoint
from nerve.server._settings import settings_routes
from nerve.server._state import NerveState

__all__ = ["create_app"]

#: what browsers may send cross-origin: analytics.js sets Authorization and X-Retry-Count;
#: RudderStack's browser SDK (@rudderstack/analytics-js) AnonymousId and SentAt on every
#: event and the Rsa-* headers on a retry, and a preflight that names one header not
#: listed here fails (400), so the browser sends none of its events
CORS_HEADERS = ["Authorization", "Content-Type", "Content-Encoding", "X-Retry-Count",
                "AnonymousId", "SentAt", "Rsa-Recovered", "Rsa-Retry-Attempt",
                "Rsa-Retry-Reason", "Rsa-Since-First-Attempt", "Rsa-Since-Last-Attempt"]


class _CORS(CORSMiddleware):
    """Starlette's CORS, with a refused preflight in nerve's one error shape, naming what
    was refused (Starlette answers a plain-text "Disallowed CORS headers")."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code != 400:
            return response
        method = request_headers["access-control-request-method"]
        requested = request_headers.get("access-control-request-headers")
        # as Starlette judges them: each name, stripped and lower-cased, must be allowed
        names = requested.split(",") if requested is not None else []
        headers = [name.strip() for name in names
                   if name.strip().lower() not in self.allow_headers]
        refused = []
        if headers:
            refused.append("header" + "s" * (len(headers) > 1) + " "
                           + ", ".join(repr(name[:40]) for name in headers[:10])
                           + (f" and {len(headers) - 10} more" if len(headers) > 10 else ""))
        if method not in self.allow_methods:
            refused.append(f"method {method[:20]!r}")
        if request_headers.get("access-control-request-private-network") is not None:
            refused.append("private network access")
        allowed = ", ".join(CORS_HEADERS)
        message = (f"CORS preflight refused: {' and '.join(refused) or 'the request'} not "
                   f"allowed; a browser may send {allowed} and the methods "
                   f"{', '.join(self.allow_methods)}")
        kept = {name: value for name, value in response.headers.items()
                if not name.startswith("content-")}
        return error_response(400, "cors_refused", message,
                              {"headers": headers, "method": method,
                               "allowed_headers": CORS_HEADERS}, headers=kept)


async def health(request: Request) -> Response:
    state: NerveState = request.app.state.nerve
    status = b"overloaded" if state.overloaded else b"ok"
    return Response(b'{"status":"' + status + b'","version":"' + __version__.encode() + b'"}',
                    media_type="application/json")


async def ready(request: Request) -> Response:
    """Readiness, for a load balancer: 200 while this process can take events, else the
    503 its ingest answers now (the log's backlog over its bound, a log that cannot be
    written, the NATS stream out of reach, the warehouse's disk short of the room that
    loading the log needs), so traffic goes to another collector until it
    recovers on its own. Liveness stays ``/health``: a process waiting for NATS must not be
    restarted for it."""
    state: NerveState = request.app.state.nerve
    if state.overloaded:
        until = "it has room" if state.short_of_room else "it is loaded"
        raise BackpressureError(f"{overload_reason(state)}: events are refused until {until}",
                                retry_after=2, details=backlog_details(state))
    if state.log_failing_since is not None:
        # the last write failed (a full disk). A load balancer sends no events to a
        # process that is not ready, so this probe, not the next event, says when the
        # disk takes writes again
        try:
            await anyio.to_thread.run_sync(state.probe_log)
        except OSError as exc:
            raise TransientError(f"the event log could not be written: {exc}; events are "
                                 "refused until it can be", retry_after=5) from None
        state.log_writable()
    link = getattr(state.log, "link", None)  # the NATS log's connection
    if link is not None and not link.connected:
        raise TransientError("the NATS stream is unreachable (reconnecting): events are "
                             "refused until it is back", retry_after=2)
    return Response(b'{"status":"ready"}', media_type="application/json")


class _NerveApp(Starlette):
    """Starlette, with the ingest POSTs answered before its middleware stack and router.

    At 100-event batches the generic stack (error middleware, exception middleware, a
    router trying ~30 routes, the endpoint wrapper) cost as much CPU per request as
    mapping a tenth of its events. Ingest requests go straight to ``_ingest.IngestApp``,
    a raw ASGI app with the same answers, CORS headers included; everything else
    (preflights, other methods, other paths) goes through Starlette as before.
    """

    def __init__(self, fast: ASGIApp, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._fast = fast

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] == "http" and scope["method"] == "POST"
                and scope["path"] in INGEST_PATHS):
            await self._fast(scope, receive, send)
            return
        if scope["type"] == "lifespan":
            await super().__call__(scope, receive, _after_startup(send, tune_gc))
            return
        await super().__call__(scope, receive, send)


def _after_startup(send: Send, action: Callable[[], None]) -> Send:
    """``send`` that runs ``action`` once the app has started (lifespan startup done)."""

    async def wrapped(message: Message) -> None:
        if message["type"] == "lifespan.startup.complete":
            action()
        await send(message)

    return wrapped


def tune_gc() -> None:
    """Garbage collection for a serving process, once it has started.

    Ingest allocates a few thousand short-lived containers per request (the parsed JSON),
    so the default thresholds run a young collection every few hundred events, and the
    older generations keep rescanning everything the process loaded at start-up.
    Freezing what exists after start-up (it lives as long as the process) and collecting
    the young generation every 10,000 allocations instead of 700 cost ~10-20% less CPU
    per event in-process (measured; docs/collector.md). Cycles are still collected.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 50, 100)


def create_app(
    state: NerveState,
    lifespan: Callable[[Starlette], AbstractAsyncContextManager[Any]] | None = None,
    *,
    read_routes: list[BaseRoute] | None = None,
    metrics: bool = True,
    audit: Audit | None = None,
) -> Starlette:
    """The nerve HTTP app over ``state``; ``lifespan`` opens and closes what it needs.

    ``read_routes`` default to every module of ``nerve.server.api``. ``metrics``: answer
    ``GET /metrics`` here (worker processes forward it to the main one instead).
    ``audit``: record every read-API request there (the process that answers them).
    """
    routes: list[BaseRoute] = [Route("/health", health, methods=["GET"]),
                               Route("/ready", ready, methods=["GET"]),
                               Route("/openapi.json", openapi_endpoint, methods=["GET"]),
                               *ingest_routes(),
                               # before read_routes: a collect-only server's catch-all is there
                               *settings_routes()]
    if metrics:
        routes.append(Route("/metrics", metrics_endpoint, methods=["GET"]))
    if read_routes is None:
        # imported here: a worker process passes its forwarding routes instead, and so
        # never imports the read APIs' DuckDB and Ibis (it starts sooner and smaller)
        from nerve.server import api  # noqa: PLC0415

        read_routes = api.routes()
    routes.extend(read_routes)
    cors: dict[str, Any] = {"allow_origins": ["*"], "allow_methods": ["GET", "POST", "OPTIONS"],
                            "allow_headers": CORS_HEADERS, "max_age": 86400}
    app = _NerveApp(
        IngestApp(state),  # answers as the routes below under this CORS policy do
        routes=routes,
        middleware=[Middleware(_CORS, **cors),
                    *([Middleware(AuditReads, audit=audit, state=state,
                                  trust_forwarded=state.processes > 1)] if audit else [])],
        exception_handlers={
            NerveError: nerve_error_handler,
            HTTPException: http_exception_handler,
            Exception: unexpected_error_handler,
        },
        lifespan=lifespan,
    )
    app.state.nerve = state
    return app


