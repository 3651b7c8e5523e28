"""One JSON error shape for every HTTP error: ``{"code", "message", "details"}``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from nerve.errors import (
    AuthError,
    NerveError,
    PayloadError,
    TransientError,
    UserError,
    did_you_mean,
)

__all__ = ["error_response", "http_exception_handler", "nerve_error_handler",
           "unexpected_error_handler"]

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 400: "bad_request",
               401: "unauthorized", 413: "payload_too_large", 429: "rate_limited"}


def error_response(status: int, code: str, message: str, details: Any = None,
                   headers: Mapping[str, str] | None = None) -> Response:
    """The one error body every nerve endpoint answers with."""
    body = orjson.dumps({"code": code, "message": message, "details": details})
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def nerve_error_response(exc: NerveError,
                         view: Callable[[Any], Any] | None = None) -> Response:
    """A nerve error as HTTP: 4xx for the caller's mistakes, 503 for retry-later.
    ``view``: the message and details as the caller may see them."""
    details = getattr(exc, "details", None)
    message = str(exc)
    if view is not None:
        message, details = view(message), view(details)
    if isinstance(exc, AuthError):
        # Bearer for the read APIs: a Basic challenge there made browsers (the console's
        # fetch) stop on a password dialog
        return error_response(401, exc.code, message, details,
                              headers={"WWW-Authenticate": f'{exc.scheme} realm="nerve"'})
    if isinstance(exc, PayloadError):
        retry_after = getattr(exc, "retry_after", None)  # 429: when the client may retry
        headers = None if retry_after is None else {"Retry-After": str(round(retry_after))}
        return error_response(exc.status, exc.code, message, details, headers=headers)
    if isinstance(exc, UserError):
        return error_response(400, exc.code, message, details)
    if isinstance(exc, TransientError):
        # never a 500 to mean "try again": 503 with Retry-After is what SDKs retry on
        retry = max(1, round(exc.retry_after))
        return error_response(503, exc.code, message, details,
                              headers={"Retry-After": str(retry)})
    return error_response(500, exc.code, message, details)


async def nerve_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, NerveError)
    # a reader gets the workspace's files relative to it, in errors as in answers
    # (a metrics file that does not load named the server's full path)
    from nerve.server.api._common import error_for_caller  # noqa: PLC0415 - avoids a cycle

    return nerve_error_response(exc, view=lambda text: error_for_caller(request, text))


async def http_exception_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = str(exc.detail)
    allow = (exc.headers or {}).get("Allow")
    if exc.status_code == 404:
        message = f"{request.url.path}: no such endpoint{_nearest_path(request)}"
    elif exc.status_code == 405 and allow:
        message = f"{request.method} {request.url.path}: not allowed; it takes {allow}"
    return error_response(exc.status_code, code, message, None, headers=exc.headers)


def _nearest_path(request: Request) -> str:
    """`` (did you mean /v1/batch?)`` for a path that misspells an endpoint's, or names
    one under a host given with its ``/v1`` (an SDK's host is the server's base URL: one
    given as ``http://host:8700/v1`` posts to ``/v1/v1/batch``)."""
    path = request.url.path
    if path.startswith("/v1/v1/"):
        return (f" (did you mean {path[3:]}? an SDK's host is the server's base URL, "
                "without /v1)")
    paths = [route.path for route in getattr(request.app, "routes", [])
             if isinstance(getattr(route, "path", None), str) and "{" not in route.path]
    return did_you_mean(path, paths)


async def unexpected_error_handler(request: Request, exc: Exception) -> Response:
    return error_response(500, "internal", f"a bug in nerve: {type(exc).__name__}: {exc}",
                          None)
