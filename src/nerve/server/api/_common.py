"""Helpers for read-API handlers: who calls, JSON in and out, work off the event loop."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Callable
from decimal import Decimal
from typing import Any, TypeVar

import anyio.to_thread
import orjson
from starlette.requests import Request
from starlette.responses import Response

from nerve.audit import MAX_REQUEST_BYTES
from nerve.collector import RequestError
from nerve.errors import AuthError, InternalError, PayloadError
from nerve.server._readers import INVALID, MASKED_HEADER, Reader, identify, sees_masked
from nerve.server._state import NerveState

__all__ = ["caller", "error_for_caller", "for_caller", "in_thread", "json_response",
           "known_fields", "nerve_state", "read_json", "readable", "require_admin",
           "require_reader"]

T = TypeVar("T")


def known_fields(body: dict[str, Any], fields: tuple[str, ...], *, note: str = ""
                 ) -> dict[str, Any]:
    """``body``, refused (400, ``invalid_field``) when it has a field other than
    ``fields``: a misspelt optional field was ignored, and the request answered as if it
    had not been sent. ``note``: what the refusal means, e.g. that nothing was deleted.

    >>> known_fields({"query": "SELECT 1"}, ("query", "sql"))
    {'query': 'SELECT 1'}
    """
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise PayloadError(f"unknown field(s) {', '.join(unknown)}; expected "
                           f"{', '.join(fields)}{note}", code="invalid_field")
    return body


def nerve_state(request: Request) -> NerveState:
    """The server's shared state."""
    state: NerveState = request.app.state.nerve
    return state


def caller(request: Request) -> Reader:
    """Who calls: the reader its bearer token names; AuthError (401) for none or a wrong
    one."""
    state = nerve_state(request)
    found = identify(state.tokens(), request.headers.get("authorization"))
    if found is None:
        raise AuthError("this endpoint needs `Authorization: Bearer <token>`: the admin token "
                        "is in .nerve/server.json of the workspace; readers have their own "
                        "([[readers]] in nerve.toml)", scheme="Bearer")
    if found is INVALID:
        source = _write_key_source(state, request.headers.get("authorization", ""))
        if source is not None:  # the write keys sit next to [[readers]] in nerve.toml
            raise AuthError(f"that is the write key of source {source!r}: it sends events; "
                            "reading needs the admin token (in .nerve/server.json of the "
                            "workspace; `nerve console` opens the console with it) or a "
                            "reader's ([[readers]] in nerve.toml)", scheme="Bearer")
        # a stale admin token is the usual one: say so
        raise AuthError("the token is neither the admin's nor a reader's: the admin token is "
                        "made anew at each start of nerve serve (in .nerve/server.json of the "
                        "workspace; `nerve console` opens the console with it); readers have "
                        "their own ([[readers]] in nerve.toml)", scheme="Bearer")
    return found


def for_caller(request: Request, data: Any) -> Any:
    """``data`` as ``request``'s caller may see it: for a reader, the workspace's path
    taken out of every text (``metrics/shop.yaml:3``, where an admin gets the full path):
    where the server keeps the workspace is for admins."""
    if caller(request).role == "admin":
        return data
    return _relative(data, str(nerve_state(request).workspace.root) + os.sep)


def error_for_caller(request: Request, data: Any) -> Any:
    """``data`` of an error answer as ``request``'s caller may see it: as ``for_caller``,
    and a caller without a valid token (the error may be that) is not the admin either."""
    state = getattr(request.app.state, "nerve", None)
    if state is None:
        return data
    found = identify(state.tokens(), request.headers.get("authorization"))
    if found is not None and found is not INVALID and found.role == "admin":
        return data
    return _relative(data, str(state.workspace.root) + os.sep)


def _relative(value: Any, root: str) -> Any:
    """``value`` with every text's ``root`` prefix (the workspace's path and a separator)
    removed, in lists and objects too."""
    if isinstance(value, str):
        return value.replace(root, "")
    if isinstance(value, list):
        return [_relative(item, root) for item in value]
    if isinstance(value, dict):
        return {key: _relative(item, root) for key, item in value.items()}
    return value


def _write_key_source(state: NerveState, authorization: str) -> str | None:
    """The source whose write key a refused bearer token is (compared in constant time)."""
    given = authorization.partition(" ")[2].strip().encode()
    found = None
    for source in state.workspace.config.sources:
        if secrets.compare_digest(given, source.write_key.encode()):
            found = source.name
    return found


def require_reader(request: Request) -> NerveState:
    """Refuse (401) unless the request carries the token of a reader or of the admin."""
    caller(request)
    return nerve_state(request)


def readable(request: Request) -> tuple[NerveState, Any]:
    """The server's state and the warehouse as the caller may read it: with personal
    values masked for a reader (unless its entry says ``personal = "visible"``) and for
    any caller sending ``x-nerve-view: masked``, as stored for an admin (docs/privacy.md);
    401 without a valid token."""
    who = caller(request)
    state = nerve_state(request)
    if not sees_masked(who, request.headers.get(MASKED_HEADER)):
        return state, state.warehouse
    if state.reader_warehouse is None:  # never serve a reader the unmasked warehouse
        raise InternalError("this server has no masked view of the warehouse for readers")
    return state, state.reader_warehouse


def require_admin(request: Request) -> NerveState:
    """Refuse unless the caller's role is admin: 401 without a valid token, 403 for a
    reader (forget, expire and running the checks change data)."""
    who = caller(request)
    if who.role != "admin":
        raise PayloadError(f"{who.name} has the reader role; this endpoint needs an admin "
                           "token", status=403, code="forbidden")
    return nerve_state(request)


async def read_json(request: Request, *, limit: int | None = MAX_REQUEST_BYTES,
                    empty: dict[str, Any] | None = None) -> dict[str, Any]:
    """The request body as a JSON object; PayloadError (400) otherwise, and 413 for a body
    over ``limit`` bytes: the audit log keeps a read request whole up to that size, so a
    longer one (a query behind a long comment) would be read without its record saying
    what it read. ``empty``: what an empty body means (else it is refused as not JSON).

    The body is read as it comes and refused once past ``limit``: read whole first, a
    400 MB body to /v1/admin/sql grew the process by 400 MB before its 413.
    """
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding != "identity":  # read as JSON, a gzip body was "not valid UTF-8"
        raise PayloadError(f"Content-Encoding {encoding!r}: a read request takes its JSON "
                           "body uncompressed (only the collection endpoints take gzip)",
                           status=415, code="unsupported_encoding")
    body = await _body(request, limit)
    if not body and empty is not None:
        return empty
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise PayloadError(f"the body is not valid JSON: {exc}", code="invalid_json") from exc
    if not isinstance(data, dict):
        raise PayloadError("the body must be a JSON object", code="invalid_json")
    return data


async def _body(request: Request, limit: int | None) -> bytes:
    """The request's body, or PayloadError: 413 as soon as it is over ``limit`` bytes, 408
    when it takes longer than ``[collector] body_timeout_seconds`` to arrive (as ingest
    does: a caller with a token held its connection for as long as it dripped a body)."""
    seconds = nerve_state(request).body_timeout
    try:
        async with asyncio.timeout(seconds or None):
            return await _read_body(request, limit)
    except TimeoutError:
        raise RequestError(f"the request body took more than {seconds:g}s to arrive",
                           status=408, code="body_timeout",
                           details={"limit_seconds": seconds}) from None


async def _read_body(request: Request, limit: int | None) -> bytes:
    if limit is None:
        return await request.body()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            declared = request.headers.get("content-length", "")
            length = f"{declared} bytes" if declared.isdigit() else f"over {limit} bytes"
            raise PayloadError(
                f"the request is {length}; a read request may have at most {limit} "
                "(the audit log keeps each one whole: docs/privacy.md)",
                status=413, code="payload_too_large")
        chunks.append(chunk)
    return b"".join(chunks)


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def json_response(data: Any, status: int = 200) -> Response:
    """``data`` as JSON (datetimes as ISO 8601, decimals as numbers)."""
    body = orjson.dumps(data, default=_default, option=orjson.OPT_NON_STR_KEYS)
    return Response(body, status_code=status, media_type="application/json")


async def in_thread(func: Callable[..., T], *args: Any) -> T:
    """Run blocking work (a warehouse query) on a worker thread."""
    return await anyio.to_thread.run_sync(func, *args)
