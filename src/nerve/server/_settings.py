"""The source settings browser SDKs fetch before they send: Segment's
``GET /v1/projects/{write_key}/settings`` and RudderStack's ``GET /sourceConfig/``.

analytics.js (``@segment/analytics-next``) loads a source's settings from its CDN before
it sends anything, and takes the host to send to from them (``integrations['Segment.io']
.apiHost`` and ``.protocol``); the mobile SDKs fetch the same path from their cdn host.
Answering it is what lets a browser app point at nerve by setting only ``cdnURL``
(docs/collector.md, "Browsers: analytics.js").

The answer is the smallest settings object that sends every event to this server and
nothing anywhere else: no device-mode destinations, remote plugins or middleware (each
would load code from Segment's CDN), and ``metrics.sampleRate`` 0 (analytics-next
otherwise beacons its own counters to api.segment.io).

The host events go to is the one the request came in on: its ``Host`` header and scheme.
Behind a proxy that terminates TLS those are the proxy's view only when
``[collector] trusted_proxy_header`` says a proxy is trusted (as for the client IP,
``_ingest.client_ip``): then ``X-Forwarded-Host`` and ``X-Forwarded-Proto`` win.

RudderStack's browser SDK (``@rudderstack/analytics-js``) fetches its source's config from
``{configUrl}/sourceConfig/`` (the write key as the HTTP Basic user, and in the query
string) and sends to the ``dataPlaneUrl`` of its page: the config names no host. The
answer is the smallest config it loads with: the source, enabled, with no destinations
(device mode loads their code from RudderStack's CDN) and an empty ``config`` (its
``statsCollection`` would send the SDK's errors and metrics to the data plane).
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from nerve.collector import RequestError, write_key_from_header
from nerve.errors import AuthError
from nerve.server._state import NerveState

__all__ = ["SETTINGS_PATH", "SETTINGS_PREFIX", "SOURCE_CONFIG_PATH", "api_host",
           "rudderstack_source_config", "segment_settings", "settings_routes"]

SETTINGS_PATH = "/v1/projects/{write_key}/settings"
#: what every settings path starts with (``_audit`` leaves them out: no data is read)
SETTINGS_PREFIX = "/v1/projects/"
#: RudderStack's browser SDK: ``{configUrl}/sourceConfig/?p=...&writeKey=...``
SOURCE_CONFIG_PATH = "/sourceConfig/"

#: what a ``host[:port]`` may hold (names, IPv4, bracketed IPv6): anything else in a Host
#: header would end up in the URL every event is sent to
_HOST = re.compile(r"^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$")


def _forwarded(request: Request, name: str) -> str | None:
    """The last value of a proxy header: the one the trusted (nearest) proxy added (its
    lines read as one list, in order: a proxy may add a line of its own)."""
    value = ",".join(request.headers.getlist(name))
    if not value:
        return None
    return value.rsplit(",", 1)[-1].strip() or None


def api_host(request: Request, trust_proxy: bool) -> tuple[str, str]:
    """``(host[:port], scheme)`` the client reached this server on.

    Raises RequestError (400) for a Host that is no host name, so that nothing else ever
    lands in the URL the SDK sends events to.
    """
    host = _forwarded(request, "x-forwarded-host") if trust_proxy else None
    scheme = _forwarded(request, "x-forwarded-proto") if trust_proxy else None
    host = host or request.headers.get("host") or request.url.netloc
    scheme = (scheme or request.url.scheme).lower()
    if not _HOST.match(host):
        raise RequestError(f"Host {host!r} is not a host name: the settings name the host "
                           "events are sent to", code="bad_host", details={"host": host})
    return host, "https" if scheme == "https" else "http"


def segment_settings(write_key: str, host: str, scheme: str) -> dict[str, Any]:
    """The settings object analytics.js and the mobile SDKs read, sending to ``host``."""
    return {
        "integrations": {"Segment.io": {"apiKey": write_key, "apiHost": f"{host}/v1",
                                        "protocol": scheme}},
        # the keys Segment's own answer always has, empty: typed SDK decoders expect them
        "plan": {},
        "edgeFunction": {},
        "middlewareSettings": {},
        "enabledMiddleware": {},
        "remotePlugins": [],
        "legacyVideoPluginsEnabled": False,
        "metrics": {"sampleRate": 0},
    }


async def project_settings(request: Request) -> Response:
    """``GET /v1/projects/{write_key}/settings``: 404 ``unknown_write_key`` for a key no
    ``[[sources]]`` has (the SDK could not send with it anyway)."""
    state: NerveState = request.app.state.nerve
    write_key = request.path_params["write_key"]
    workspace = state.collector.workspace
    if not write_key.isascii() or workspace.source_for_key(write_key) is None:
        message = ("unknown write key: it matches no [[sources]] in nerve.toml"
                   + state.collector.spaced_key_hint(write_key))
        # analytics.js says so in each visitor's browser console only: a page with a
        # wrong key sent nothing, and the server said nothing either
        if state.metrics is not None:
            state.metrics.refusal(404, "unknown_write_key")
        state.client_refusals.refused(  # not the key itself: it may be another's secret
            404, "unknown_write_key", f"GET /v1/projects/{{write_key}}/settings: {message}",
            request.headers.get("user-agent"))
        raise RequestError(message, status=404, code="unknown_write_key")
    host, scheme = api_host(request, trust_proxy=state.trusts_proxy(
        request.client.host if request.client else None))
    return Response(orjson.dumps(segment_settings(write_key, host, scheme)),
                    media_type="application/json")


def rudderstack_source_config(source_name: str, write_key: str) -> dict[str, Any]:
    """The source config RudderStack's browser SDK reads: ``source.id``, an object
    ``source.config`` and a ``source.destinations`` list, and ``enabled`` not false."""
    return {"source": {"id": source_name, "name": source_name, "workspaceId": "nerve",
                       "writeKey": write_key, "enabled": True, "config": {},
                       "destinations": []}}


async def source_config(request: Request) -> Response:
    """``GET /sourceConfig/``: the key is the Basic user, else the ``writeKey`` parameter;
    401 for a key no ``[[sources]]`` has, or a header that holds none (not base64, another
    scheme), in ingest's words."""
    state: NerveState = request.app.state.nerve
    authorization = request.headers.get("authorization")
    header_key = write_key_from_header(authorization)
    try:
        if header_key:
            source = state.collector.authenticate(header_key)
        else:
            source = state.collector.authenticate_without_header(
                authorization, request.query_params.get("writeKey"),
                where="the writeKey query parameter")
    except AuthError as exc:
        if state.metrics is not None:
            state.metrics.refusal(401, exc.code)
        state.client_refusals.refused(  # the message names no key
            401, exc.code, f"GET {SOURCE_CONFIG_PATH}: {exc}", request.headers.get("user-agent"))
        raise
    return Response(orjson.dumps(rudderstack_source_config(source.name, source.write_key)),
                    media_type="application/json")


def settings_routes() -> list[Route]:
    """The settings routes (GET, and HEAD with them); CORS preflights are the app's."""
    return [Route(SETTINGS_PATH, project_settings, methods=["GET"]),
            Route(SOURCE_CONFIG_PATH, source_config, methods=["GET"]),
            Route(SOURCE_CONFIG_PATH.rstrip("/"), source_config, methods=["GET"])]
