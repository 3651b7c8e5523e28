"""``GET /openapi.json``: the ingest API (and the SDKs' settings) as OpenAPI 3.1, for clients
and fuzzers.

It describes what the collector answers, including every refusal with its one error shape
(``{"code", "message", "details"}``), so that a schema-driven fuzzer (schemathesis, in
tests/server/test_fuzz_openapi.py) can check that no input gets anything undocumented.
The read APIs (``/v1/metrics``, ``/v1/admin/sql``...) are documented in docs/http-api.md.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from nerve import __version__
from nerve.collector._body import BATCH_PATHS, CALL_TYPES
from nerve.collector._map import MAX_ID_CHARS

__all__ = ["openapi_document", "openapi_endpoint"]

_CALLS = ("track", "identify", "page", "screen", "group", "alias")

_ERROR = {"$ref": "#/components/schemas/Error"}
_REFUSALS = {
    "400": "Malformed JSON, a message missing a required field, too many events, "
           "JSON nested too deeply",
    "401": "Missing or unknown write key",
    "408": "The body took longer than body_timeout_seconds to arrive (or the headers than "
           "header_timeout_seconds)",
    "413": "Body (after decompression) over its size limit",
    "415": "Not JSON, or an unknown Content-Encoding",
    "429": "The source is over its rate limit; retry after Retry-After seconds",
    "503": "The event log is behind, or could not be written; retry after Retry-After "
           "seconds (never 500)",
}

#: an id: numbers are turned into strings (as Segment does), null counts as absent
_ID = {"type": ["string", "number", "null"], "maxLength": MAX_ID_CHARS}
_PRESENT_ID = {"anyOf": [{"type": "string", "minLength": 1, "maxLength": MAX_ID_CHARS},
                         {"type": "number"}]}
#: a time as sent: one that does not parse is quarantined (invalid_timestamp), not refused
_TIME = {"description": "ISO 8601; anything else is stored and quarantined "
                        "(invalid_timestamp), not refused"}
_OBJECT = {"type": ["object", "null"], "description": "null counts as absent"}
_FIELDS: dict[str, Any] = {
    "event": {"type": "string", "maxLength": MAX_ID_CHARS},
    "userId": _ID,
    "anonymousId": _ID,
    "messageId": {"description": "a string; without one (or not a string or integer) a "
                                 "stable hash of the message", "maxLength": MAX_ID_CHARS},
    "timestamp": _TIME,
    "originalTimestamp": {**_TIME, "description": "RudderStack's name for timestamp, read "
                                                  "when timestamp is absent"},
    "sentAt": _TIME,
    "properties": _OBJECT,
    "traits": _OBJECT,
    "context": _OBJECT,
    "name": {"description": "page and screen calls: their name (a non-empty string)",
             "maxLength": MAX_ID_CHARS},
    "groupId": _ID,
    "previousId": _ID,
}
#: what the spec requires of every call: a user, by either id
_SOMEONE = {"anyOf": [{"required": ["userId"], "properties": {"userId": _PRESENT_ID}},
                      {"required": ["anonymousId"],
                       "properties": {"anonymousId": _PRESENT_ID}}]}
#: what each call requires besides a user
_CALL_REQUIRES: dict[str, dict[str, Any]] = {
    "track": {"required": ["event"], "properties": {"event": {
        "type": "string", "minLength": 1, "maxLength": MAX_ID_CHARS}}},
    "group": {"required": ["groupId"], "properties": {"groupId": _PRESENT_ID}},
    "alias": {"required": ["previousId"], "properties": {"previousId": _PRESENT_ID}},
}


#: fields only some calls read (the collector ignores them in the others)
_READ_BY = {"event": ("track",), "name": ("page", "screen"), "groupId": ("group",),
            "previousId": ("alias",),
            "properties": ("track", "page", "screen"), "traits": ("identify", "group")}


def _message(call: str, *, typed: bool) -> dict[str, Any]:
    """One ``call`` message; ``typed``: in a batch, where ``type`` names the call (on a
    one-call endpoint the path does, and ``type`` is ignored)."""
    fields = dict(_FIELDS)
    for field, owners in _READ_BY.items():
        if call not in owners:  # read by those calls only: any value passes the others
            fields[field] = {"description": f"read by {', '.join(owners)} calls only"}
    if typed:
        fields["type"] = {"const": call}
    return {"type": "object",
            "description": "A Segment message (docs/collector.md). Unknown fields are "
                           "ignored; properties and traits are judged by the catalog "
                           "(a violation is quarantined, not refused).",
            "properties": fields, "required": ["type"] if typed else [],
            "allOf": [_SOMEONE, _CALL_REQUIRES.get(call, {})]}


def _responses() -> dict[str, Any]:
    ok = {"description": "Every event is durable in the event log",
          "content": {"application/json": {"schema": {
              "type": "object", "properties": {"success": {"const": True}},
              "required": ["success"]}}}}
    refusals = {status: {"description": text,
                         "content": {"application/json": {"schema": _ERROR}}}
                for status, text in _REFUSALS.items()}
    return {"200": ok, **refusals}


def _operation(summary: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"post": {
        "summary": summary,
        "security": [{"writeKey": []}],
        "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
        "responses": _responses(),
    }}


def _settings_operation() -> dict[str, Any]:
    """``GET /v1/projects/{write_key}/settings`` (``_settings.py``)."""
    error = {"content": {"application/json": {"schema": _ERROR}}}
    segmentio = {"type": "object", "required": ["apiKey", "apiHost", "protocol"],
                 "properties": {"apiKey": {"type": "string"},
                                "apiHost": {"type": "string"},
                                "protocol": {"enum": ["http", "https"]}}}
    settings = {"type": "object", "required": ["integrations", "metrics"], "properties": {
        "integrations": {"type": "object", "required": ["Segment.io"],
                         "properties": {"Segment.io": segmentio}},
        "metrics": {"type": "object", "properties": {"sampleRate": {"const": 0}}}}}
    return {"get": {
        "summary": "The source settings Segment's SDKs (analytics.js: cdnURL) fetch first: "
                   "they send events to integrations['Segment.io'].apiHost, this server",
        "parameters": [{"name": "write_key", "in": "path", "required": True,
                        "schema": {"type": "string"}}],
        "responses": {
            "200": {"description": "Settings that send to the host the request came in on",
                    "content": {"application/json": {"schema": settings}}},
            "400": {"description": "The Host header is no host name", **error},
            "404": {"description": "Unknown write key (code unknown_write_key)", **error},
        },
    }}


def _source_config_operation() -> dict[str, Any]:
    """``GET /sourceConfig/`` (``_settings.py``)."""
    error = {"content": {"application/json": {"schema": _ERROR}}}
    source = {"type": "object", "required": ["id", "name", "enabled", "config", "destinations"],
              "properties": {"id": {"type": "string"}, "name": {"type": "string"},
                             "workspaceId": {"type": "string"},
                             "writeKey": {"type": "string"}, "enabled": {"const": True},
                             "config": {"type": "object"},
                             "destinations": {"type": "array", "maxItems": 0}}}
    return {"get": {
        "summary": "The source config RudderStack's browser SDK (configUrl) fetches first; "
                   "it sends to its dataPlaneUrl",
        "security": [{"writeKey": []}],
        "parameters": [{"name": "writeKey", "in": "query", "required": False,
                        "description": "the write key, when no Basic user carries it",
                        "schema": {"type": "string"}}],
        "responses": {
            "200": {"description": "The source of the write key, with no destinations",
                    "content": {"application/json": {"schema": {
                        "type": "object", "required": ["source"],
                        "properties": {"source": source}}}}},
            "401": {"description": "Missing or unknown write key", **error},
        },
    }}


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the collector's endpoints."""
    batch = {"type": "object", "required": ["batch"],
             "properties": {"batch": {"type": "array", "items": {"anyOf": [
                                _message(call, typed=True) for call in _CALLS]}},
                            "sentAt": _TIME,
                            "writeKey": {"type": ["string", "null"]},
                            "context": {"type": ["object", "null"], "description": "applies "
                                        "to each message, under its own context"}}}
    paths: dict[str, Any] = {}
    for path in sorted(BATCH_PATHS):
        paths[f"/v1/{path}"] = _operation("A batch of messages (Segment /v1/batch)", batch)
    for path, call in sorted(CALL_TYPES.items()):
        paths[f"/v1/{path}"] = _operation(f"One {call} message", _message(call, typed=False))
    paths["/v1/projects/{write_key}/settings"] = _settings_operation()
    paths["/sourceConfig/"] = _source_config_operation()
    paths["/health"] = {"get": {"summary": "Liveness", "responses": {"200": {
        "description": "ok, or overloaded while ingest answers 503",
        "content": {"application/json": {"schema": {"type": "object", "properties": {
            "status": {"enum": ["ok", "overloaded"]}, "version": {"type": "string"}}}}}}}}}
    paths["/ready"] = {"get": {"summary": "Readiness: whether this process takes events now",
                               "responses": {
        "200": {"description": "ready", "content": {"application/json": {"schema": {
            "type": "object", "properties": {"status": {"enum": ["ready"]}}}}}},
        "503": {"description": "the log's backlog is over its bound, the log cannot be "
                               "written (a full disk), or the NATS stream is out of reach; "
                               "Retry-After says when to look again",
                "content": {"application/json": {"schema": _ERROR}}}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "nerve collector", "version": __version__,
                 "description": "The Segment HTTP Tracking API as nerve serves it."},
        "paths": paths,
        "components": {
            "securitySchemes": {"writeKey": {"type": "http", "scheme": "basic",
                                             "description": "The write key as the user, "
                                             "no password"}},
            "schemas": {"Error": {
                "type": "object", "required": ["code", "message", "details"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                               "details": {}}}},
        },
    }


_DOCUMENT = orjson.dumps(openapi_document())


async def openapi_endpoint(request: Request) -> Response:
    """GET /openapi.json."""
    return Response(_DOCUMENT, media_type="application/json")
