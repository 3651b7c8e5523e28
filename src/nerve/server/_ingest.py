"""The Segment HTTP Tracking API: read the body, collect, append, sync, answer 200.

In ``nerve serve`` ingest POSTs skip Starlette (``_app._NerveApp``) and reach ``IngestApp``,
a raw ASGI app: it reads the headers once from the scope, the body straight from
``receive``, and answers with prebuilt header lists. Starlette's request, response and
CORS middleware around the same work cost ~23 us of CPU per request, ~2.5% of a worker's
event-loop thread at 100-event batches (docs/collector.md). The routed endpoint
(``ingest_routes``: what Starlette's router sees) runs the same ``_ingest``;
tests/server/test_ingest_asgi.py pins that both answer byte for byte alike.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from nerve._proxies import Networks, within
from nerve.collector import ENDPOINTS, RequestError, write_key_from_header
from nerve.errors import BackpressureError, NerveError, TransientError
from nerve.server._backpressure import backlog_details, overload_reason
from nerve.server._errors import nerve_error_response, unexpected_error_handler
from nerve.server._state import NerveState

__all__ = ["INGEST_PATHS", "OVERLOAD_ANSWER_DELAY", "IngestApp", "client_ip", "forwarded_address",
           "ingest_routes"]

logger = logging.getLogger("nerve.server")

#: exactly 200 with a small JSON body: several SDKs treat 202/204 as failures and retry
_OK = b'{"success":true}'
#: the 200's headers as Starlette's ``Response(_OK, media_type="application/json")`` has them
_OK_HEADERS = ((b"content-length", b"%d" % len(_OK)), (b"content-type", b"application/json"))
#: what the app's CORS policy (``_app.create_app``: any origin, no credentials) adds to a
#: response, as Starlette's CORSMiddleware does for a simple request: the origin header
#: only when the request has an Origin, ``Vary: Origin`` always. nerve's answers carry
#: neither header themselves, so appending them is what the middleware's update does.
_ANY_ORIGIN = (b"access-control-allow-origin", b"*")
_VARY = (b"vary", b"Origin")

#: seconds before a 503 for an overloaded log is sent. In a 40 s run of the ingest
#: benchmark, whose client does not back off, answering at once made ~550,000 refusals
#: that kept both cores busy and the loader starved, 60k events/s acknowledged.
OVERLOAD_ANSWER_DELAY = 0.5

#: request headers by lower-case name (ASGI servers lower-case them)
Headers = dict[bytes, bytes]


def _headers(scope: Scope) -> Headers:
    # reversed: the first of a repeated header wins, as with Starlette's Headers.get
    return dict(reversed(scope["headers"]))


def _text(headers: Headers, name: bytes) -> str | None:
    value = headers.get(name)
    return None if value is None else value.decode("latin-1")


def _too_large(limit: int) -> RequestError:
    return RequestError(f"request body is larger than {limit} bytes", status=413,
                        code="payload_too_large", details={"limit": limit})


async def _read_body(receive: Receive, length: bytes | None, limit: int) -> bytes:
    """The raw body, refusing more than ``limit`` bytes before reading them all.

    Raises ``ClientDisconnect`` when the client goes before its body has arrived.
    """
    if length is not None and length.isdigit() and int(length) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.request":
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)  # one chunk: that chunk, not a copy
        elif message["type"] == "http.disconnect":
            raise ClientDisconnect


#: media types a JSON body may be labelled with (analytics.js sends text/plain; some
#: clients send none, an empty header, or octet-stream). RudderStack's Node SDK posts its
#: gzipped batches without a Content-Type, which axios then labels as a form post, and
#: `curl -d` does the same: the body decides (a real form is `400 invalid_json`).
#: Anything else is surely not a Segment request
_JSON_TYPES = frozenset({"application/json", "text/plain", "application/octet-stream",
                         "application/x-www-form-urlencoded"})


#: characters of a refused Content-Type quoted back (a header may be 64 KiB)
_QUOTED_CHARS = 100


def _check_content_type(value: str | None) -> None:
    if value is None or not value.strip():
        return
    media = value.split(";", 1)[0].strip().lower()
    if media in _JSON_TYPES or media.endswith("+json"):
        return
    # the header as sent, not its media type: that is empty in "; charset=utf-8"
    sent = value.strip()
    if len(sent) > _QUOTED_CHARS:
        sent = sent[:_QUOTED_CHARS] + "..."
    raise RequestError(f"Content-Type {sent!r} is not accepted: send JSON "
                       "(application/json or text/plain)", status=415,
                       code="unsupported_media_type", details={"content_type": sent})


def client_ip(scope: Scope, proxy_header: str | None,
              proxies: Networks | None = None) -> str | None:
    """The sender's address: the connection's, or what the trusted proxy says it saw.

    With ``[collector] trusted_proxy_header = "X-Forwarded-For"`` the LAST address of the
    header is used (``forwarded_address``): it is the one the trusted proxy appended, while
    earlier entries are whatever the client claimed. The header's lines are read as one
    list, in order (HAProxy appends a line of its own: taking the first line took the
    client's). A header with no item at all is as if absent; one whose last item is not
    an address (``unknown``) gives no address, not the proxy's own.

    With ``trusted_proxies`` the header is believed only from a peer in those networks
    (any other's is a client's claim: the connection's address is used), and addresses
    of those networks at its end (proxies in a chain) are passed over.
    """
    client = scope.get("client")
    peer = str(client[0]) if client else None
    if proxy_header and (proxies is None or within(peer, proxies)):
        name = proxy_header.lower().encode("latin-1")
        forwarded = b",".join(v for k, v in scope["headers"] if k == name).decode("latin-1")
        if forwarded.replace(",", "").strip():
            return forwarded_address(forwarded, proxies)
    return peer


def forwarded_address(value: str, proxies: Networks | None = None) -> str | None:
    """The last address of a forwarding header: empty items skipped, a port and IPv6
    brackets taken off (``203.0.113.7:51234``, ``[2001:db8::7]:443``, as some proxies
    write it); None when that item is no IP address. Once per request, not per event.
    With ``proxies``, an address in them is passed over for the one before it (the
    first item is taken even so: a proxy's own request).

    >>> forwarded_address("10.0.0.1, [2001:db8::7]:443, "), forwarded_address("unknown")
    ('2001:db8::7', None)
    >>> forwarded_address("203.0.113.7, 10.0.0.9", (ipaddress.ip_network("10.0.0.0/8"),))
    '203.0.113.7'
    """
    items = [item for item in (part.strip() for part in value.split(",")) if item]
    for position in range(len(items) - 1, -1, -1):
        host = _address(items[position])
        if proxies is None or host is None or position == 0 or not within(host, proxies):
            return host
    return None


def _address(host: str) -> str | None:
    """One item of a forwarding header as an address, without port or brackets."""
    if host.startswith("["):  # [v6] or [v6]:port
        host, _, rest = host[1:].partition("]")
        if rest and not (rest[:1] == ":" and rest[1:].isdigit()):
            return None
    elif host.count(":") == 1:  # a.b.c.d:port (an IPv6 address has two colons or more)
        host, _, port = host.partition(":")
        if not port.isdigit():
            return None
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None
    return host  # as written: Python writes ::ffff:1.2.3.4 as ::ffff:102:304


async def _ingest(state: NerveState, scope: Scope, headers: Headers,
                  receive: Receive) -> Response | None:
    """Answer one ingest request: None for 200 (its events are durable), or the refusal.

    Raises ``ClientDisconnect`` when there is nobody left to answer (nothing was
    acknowledged); an unexpected exception is a bug and propagates.
    """
    started = time.perf_counter()
    response = await _collect(state, scope, headers, receive)
    if state.metrics is not None:
        status = 200 if response is None else response.status_code
        state.metrics.answered(status, time.perf_counter() - started)
    return response


async def _collect(state: NerveState, scope: Scope, headers: Headers,
                   receive: Receive) -> Response | None:
    endpoint = scope["path"].rsplit("/", 1)[-1]
    try:
        if state.overloaded:
            # a header key is known or not as cheaply: a wrong one is told so (401), not
            # to retry into the backlog (the body, which may hold the key, is not read)
            header_key = write_key_from_header(_text(headers, b"authorization"))
            if header_key:
                state.collector.authenticate(header_key)
            # why now: the watcher may change it during the wait below
            reason, details = overload_reason(state), backlog_details(state)
            # a client that retries at once would otherwise keep the workers busy
            # refusing it, and the loader, which only gets the CPU they leave, would
            # never catch up: the refusal comes slowly
            await asyncio.sleep(OVERLOAD_ANSWER_DELAY)
            raise BackpressureError(reason + "; retry shortly", retry_after=2,
                                    details=details)
        _check_content_type(_text(headers, b"content-type"))
        try:
            # 0: no deadline, as for header_timeout_seconds (not a deadline of 0 s)
            async with asyncio.timeout(state.body_timeout or None):
                body = await _read_body(receive, headers.get(b"content-length"),
                                        state.collector.limits.max_request_bytes)
        except TimeoutError:
            raise RequestError(f"the request body took more than {state.body_timeout:g}s to "
                               "arrive", status=408, code="body_timeout",
                               details={"limit_seconds": state.body_timeout}) from None
        collected = state.collector.collect(
            body, endpoint=endpoint, authorization=_text(headers, b"authorization"),
            content_encoding=_text(headers, b"content-encoding"),
            client_ip=client_ip(scope, state.proxy_header, state.trusted_proxies),
            user_agent=_text(headers, b"user-agent"))
        if state.limiter is not None:
            state.limiter.check(collected.source.name, len(collected.rows))
        # a request whose every event consent withheld still commits: its count is
        # recorded (a tally row of the round, nerve.log._tally) before its 200
        if collected.rows or collected.dropped:
            if state.log_failed:  # after a failed write (a full disk): a fresh writer
                state.reopen_log()
                await state.commit.commit(collected.rows, collected.dropped,
                                          collected.source.name)
                state.log_writable()
            else:
                # concurrent requests share one group commit: one Arrow batch, one fsync,
                # built and synced off the event loop
                await state.commit.commit(collected.rows, collected.dropped,
                                          collected.source.name)
    except NerveError as exc:
        response = _refused(state, exc)
        status = response.status_code
        if 400 <= status < 500 and status not in (408, 429):  # dropped, not retried
            state.client_refusals.refused(status, exc.code, str(exc),
                                          _text(headers, b"user-agent"))
        return response
    except OSError as exc:  # a full or failing disk: retryable, and nothing was acknowledged
        state.log_write_failed(exc)  # logged when it begins, then once a minute at most
        return _refused(state, TransientError(
            f"the event log could not be written: {exc}", retry_after=5))
    if state.metrics is not None:
        state.metrics.observe(collected.source.name, collected.rows, collected.dropped)
    return None


def _refused(state: NerveState, exc: NerveError) -> Response:
    """The answer to a refused request, counted by its code."""
    response = nerve_error_response(exc)
    if state.metrics is not None:
        state.metrics.refusal(response.status_code, exc.code)
    state.commit.refused(response.status_code, exc.code)  # for `nerve check` (refusals)
    return response


class IngestApp:
    """ASGI app for ``POST /v1/<endpoint>`` over ``state``: 200 once the events are durable.

    Answers as the routed endpoint under Starlette's CORS middleware does; an unexpected
    exception gets the same 500 body as Starlette's handler gives it, and is logged.
    """

    def __init__(self, state: NerveState) -> None:
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = _headers(scope)
        started = time.perf_counter()
        try:
            response = await _ingest(self.state, scope, headers, receive)
        except ClientDisconnect:
            return  # nobody to answer; nothing was acknowledged
        except Exception as exc:
            logger.exception("unexpected error in %s", scope["path"])
            response = await unexpected_error_handler(Request(scope, receive), exc)
            if self.state.metrics is not None:  # a bug's 500 is counted, for alerts to see
                self.state.metrics.answered(response.status_code,
                                            time.perf_counter() - started)
                self.state.metrics.refusal(response.status_code, "internal")
            self.state.commit.refused(response.status_code, "internal")
        cors = (_ANY_ORIGIN, _VARY) if b"origin" in headers else (_VARY,)
        if response is None:
            await send({"type": "http.response.start", "status": 200,
                        "headers": [*_OK_HEADERS, *cors]})
            await send({"type": "http.response.body", "body": _OK})
            return
        await send({"type": "http.response.start", "status": response.status_code,
                    "headers": [*response.raw_headers, *cors]})
        await send({"type": "http.response.body", "body": response.body})


async def ingest(request: Request) -> Response:
    """``POST /v1/<endpoint>`` as a Starlette endpoint: the same answers as ``IngestApp``."""
    response = await _ingest(request.app.state.nerve, request.scope,
                             _headers(request.scope), request.receive)
    return Response(_OK, media_type="application/json") if response is None else response


#: the paths ``IngestApp`` answers (POST only)
INGEST_PATHS = frozenset(f"/v1/{endpoint}" for endpoint in ENDPOINTS)


def ingest_routes() -> list[Route]:
    return [Route(path, ingest, methods=["POST"]) for path in sorted(INGEST_PATHS)]
