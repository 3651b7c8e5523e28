"""Request bytes to Segment messages: decompress (capped), parse JSON, find the write key."""

from __future__ import annotations

import base64
import math
import re
import zlib
from dataclasses import dataclass
from typing import Any

import orjson

from nerve.collector._errors import RequestError, json_kind
from nerve.workspace import CollectorLimits

__all__ = ["ParsedBody", "decompress", "parse_body", "write_key_from_header"]

#: the one-call endpoints, long and short, mapped to the message type they carry
CALL_TYPES = {
    "track": "track", "t": "track",
    "identify": "identify", "i": "identify",
    "page": "page", "p": "page",
    "screen": "screen", "s": "screen",
    "group": "group", "g": "group",
    "alias": "alias", "a": "alias",
}
#: endpoints that carry ``{"batch": [...]}``
BATCH_PATHS = frozenset({"batch", "b", "import"})


@dataclass(frozen=True, slots=True)
class ParsedBody:
    """What a request body says, before mapping: its messages and request-level fields."""

    messages: list[Any]
    write_key: str | None
    #: the batch-level ``sentAt`` (a message's own ``sentAt`` wins over it)
    sent_at: Any
    #: ``"historical_import": true`` at the top of a batch: a backfill
    historical: bool


def _too_large(limit: int) -> RequestError:
    return RequestError(f"request body is larger than {limit} bytes (after decompression)",
                        status=413, code="payload_too_large", details={"limit": limit})


#: the UTF-8 byte-order mark (U+FEFF), which some clients write before the JSON
_BOM = b"\xef\xbb\xbf"

#: the first bytes of a gzip member
_GZIP_MAGIC = b"\x1f\x8b"
#: gzip members one body may hold: each member's leftover input is copied whole, so
#: 20,000 empty ones in 400 KB cost a worker ~0.9 s of CPU (before the write key is
#: known, when it is the body's writeKey); clients send one, or a few concatenated
MAX_GZIP_MEMBERS = 100


def decompress(body: bytes, content_encoding: str | None, limit: int) -> bytes:
    """The body with gzip/deflate removed; never more than ``limit`` bytes (gzip bombs)."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding in ("", "identity"):
        if len(body) > limit:
            raise _too_large(limit)
        return body
    if encoding in ("gzip", "x-gzip"):
        wbits = 16 + zlib.MAX_WBITS
    elif encoding == "deflate":
        return _inflate(body, limit)
    else:
        raise RequestError(f"Content-Encoding {content_encoding!r} is not supported; "
                           "send gzip, deflate or identity", status=415,
                           code="unsupported_encoding", details={"encoding": content_encoding})
    parts: list[bytes] = []
    size, rest, members = 0, body, 1
    while True:  # gzip: one member after another (RFC 1952), each inflated in turn
        inflater = zlib.decompressobj(wbits)
        try:
            # max_length caps what one call may produce, so a bomb never reaches memory
            part = inflater.decompress(rest, limit + 1 - size)
        except zlib.error as exc:
            raise RequestError(f"the body is not valid {encoding}: {exc}",
                               code="invalid_encoding", details={"encoding": encoding}) from exc
        size += len(part)
        if size > limit:
            raise _too_large(limit)
        if not inflater.eof:
            raise RequestError(f"the {encoding} body is truncated", code="invalid_encoding",
                               details={"encoding": encoding})
        parts.append(part)
        rest = inflater.unused_data
        if not rest:
            return b"".join(parts)  # one part: that part, not a copy
        if not rest.startswith(_GZIP_MAGIC):
            raise RequestError(f"the {encoding} body has {len(rest)} bytes after its end",
                               code="invalid_encoding", details={"encoding": encoding})
        members += 1
        if members > MAX_GZIP_MEMBERS:
            raise RequestError(f"the gzip body has more than {MAX_GZIP_MEMBERS} gzip members "
                               "one after another; send the batch as one member",
                               code="invalid_encoding",
                               details={"encoding": encoding, "limit": MAX_GZIP_MEMBERS})


def _inflate(body: bytes, limit: int) -> bytes:
    """A deflate body: the zlib format (RFC 1950), as HTTP defines ``deflate``, else raw
    deflate (RFC 1951), which some clients send under that name."""
    try:
        inflater = zlib.decompressobj(zlib.MAX_WBITS)
        part = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        try:
            inflater = zlib.decompressobj(-zlib.MAX_WBITS)
            part = inflater.decompress(body, limit + 1)
        except zlib.error:  # neither format: the zlib format's error, as before
            raise RequestError(f"the body is not valid deflate: {exc}",
                               code="invalid_encoding", details={"encoding": "deflate"}
                               ) from exc
    if len(part) > limit:
        raise _too_large(limit)
    if not inflater.eof:
        raise RequestError("the deflate body is truncated", code="invalid_encoding",
                           details={"encoding": "deflate"})
    if inflater.unused_data:
        raise RequestError(f"the deflate body has {len(inflater.unused_data)} bytes after "
                           "its end", code="invalid_encoding", details={"encoding": "deflate"})
    return part


def write_key_from_header(authorization: str | None) -> str | None:
    """The write key of an HTTP Basic ``Authorization`` header (``key:`` base64), or None."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except ValueError:  # binascii.Error, UnicodeDecodeError, and a header byte beyond ASCII
        return None
    key, _, _password = decoded.partition(":")
    return key or None


def _with_batch_context(messages: list[Any], shared: Any) -> list[Any]:
    """The messages with a batch's own ``context`` under theirs (a message's keys win).

    Segment's HTTP API applies a batch-level context to every message of the batch; left
    out, its consent (or locale, or device) was silently lost.
    """
    if not isinstance(shared, dict):
        raise RequestError(f"context: must be an object, got {json_kind(shared)}",
                           code="invalid_field", details={"field": "context"})
    merged: list[Any] = []
    for message in messages:
        own = message.get("context") if isinstance(message, dict) else False
        if own is None:
            merged.append({**message, "context": dict(shared)})
        elif isinstance(own, dict):
            merged.append({**message, "context": {**shared, **own}})
        else:  # not a message, or a context that is no object: the mapping refuses it
            merged.append(message)
    return merged


def parse_body(body: bytes, endpoint: str, limits: CollectorLimits) -> ParsedBody:
    """Parse a decompressed body sent to ``/v1/<endpoint>`` into its messages.

    JSON sent as text/plain (analytics.js) parses like any other: the content type is
    not consulted. A leading UTF-8 byte-order mark is skipped (RFC 8259 lets a parser
    ignore it; .NET's UTF8Encoding and some Windows clients write one), and positions
    in errors still count from the body's first byte.
    """
    skipped = 0
    if body.startswith(_BOM):  # rare: the copy is paid only by the bodies that have one
        body, skipped = body[len(_BOM):], len(_BOM)
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        data = _with_non_finite_numbers(body, exc)
        if data is None:
            raise _not_json(body, exc, skipped) from exc
    if not isinstance(data, dict):
        raise RequestError(f"the body must be a JSON object, got {json_kind(data)}",
                           code="invalid_json", details={"field": "$"})
    write_key = data.get("writeKey")
    if write_key is not None and not isinstance(write_key, str):
        raise RequestError("writeKey: must be a string", code="invalid_field",
                           details={"field": "writeKey"})
    if endpoint in BATCH_PATHS:
        messages = data.get("batch")
        if not isinstance(messages, list):
            got = _sent_keys(data) if "batch" not in data else f"got {json_kind(messages)}"
            raise RequestError(f"batch: required, a list of messages ({got})",
                               code="missing_field" if messages is None else "invalid_field",
                               details={"field": "batch"})
        if len(messages) > limits.max_batch_events:
            raise RequestError(f"batch: {len(messages)} messages, more than the limit of "
                               f"{limits.max_batch_events}", code="too_many_events",
                               details={"field": "batch", "limit": limits.max_batch_events,
                                        "count": len(messages)})
        shared = data.get("context")
        if shared is not None:  # rare: Segment's batch-level context, for every message
            messages = _with_batch_context(messages, shared)
        return ParsedBody(messages, write_key, data.get("sentAt"),
                          data.get("historical_import") is True)
    # a single call: the body is the message itself; its type comes from the path
    data["type"] = CALL_TYPES[endpoint]
    return ParsedBody([data], write_key, None, data.get("historical_import") is True)


#: what Python's json module (analytics-python, any ``json.dumps``) writes for a float
#: that is not finite, JSON having no such number
_NON_FINITE = (b"NaN", b"Infinity", b"-Infinity")


#: a UTF-16 surrogate that json left alone: it had no partner in its ``\\uXXXX`` escape
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _with_non_finite_numbers(body: bytes, exc: orjson.JSONDecodeError) -> Any:
    """The body parsed with each ``NaN``/``Infinity``/``-Infinity`` as that text (a
    string), and each lone surrogate escape as U+FFFD, or None when it fails for another
    reason.

    analytics-python sends ``float("nan")`` as ``NaN``, which is not JSON: refusing the
    body (a 400, which SDKs do not retry) lost every event of the batch for one value.
    As a string, a value declared ``number`` sends only its own event to the quarantine
    (``"NaN" is not of type "number"``). A browser's ``JSON.stringify`` writes half of an
    emoji cut by ``slice()`` as ``"\\ud83d"``: JSON's grammar allows it, orjson does not,
    and the 400 lost the whole batch; Segment's API (Go) reads it as U+FFFD, and so does
    nerve. Only bodies orjson refuses take this path.
    """
    if not (any(body.startswith(token, exc.pos) for token in _NON_FINITE)
            or "surrogate" in str(exc)):
        return None
    import json  # noqa: PLC0415 - only for the rare body with a non-finite number

    def whole(text: str) -> int | float:
        number = int(text)  # beyond 64 bits, as orjson reads it: the nearest float
        return number if -(2**63) <= number < 2**64 else float(number)

    def finite(text: str) -> float:
        number = float(text)
        if math.isinf(number):  # 1e400: a 400, as orjson refuses it on its own
            raise ValueError(text)
        return number

    try:
        data = json.loads(bytes(body), parse_constant=str, parse_int=whole,
                          parse_float=finite)
        try:
            orjson.dumps(data)
        except orjson.JSONEncodeError:  # lone surrogates, which json takes and orjson not
            text = json.dumps(data, ensure_ascii=False)
            data = orjson.loads(_LONE_SURROGATE.sub("\ufffd", text).encode("utf-8"))
    # OverflowError: an integer past a float's range, as orjson refuses it on its own
    except (ValueError, OverflowError, RecursionError, orjson.JSONEncodeError):
        return None
    return data


def _not_json(body: bytes, exc: orjson.JSONDecodeError, skipped: int = 0) -> RequestError:
    """The 400 for a body orjson refused. Its words for any byte that is not UTF-8 are
    "surrogates not allowed" (a Latin-1 "é" too): such a body is named by its first bad
    byte instead. ``skipped``: the bytes of a byte-order mark before ``body``, counted in
    the position the error names."""
    try:
        bytes(body).decode("utf-8")
    except UnicodeDecodeError as bad:
        offset = bad.start + skipped
        return RequestError(f"the body is not valid UTF-8: byte 0x{bad.object[bad.start]:02x} "
                            f"at offset {offset} ({bad.reason}); send JSON encoded as "
                            "UTF-8", code="invalid_json", details={"position": offset})
    return RequestError(f"the body is not valid JSON: {exc}", code="invalid_json",
                        details={"position": exc.pos + skipped})


def _sent_keys(data: dict[str, Any]) -> str:
    """What a body without ``batch`` has instead: ``the body has messages, not batch``."""
    if not data:
        return "the body is an empty object"
    keys = [key if len(key) <= 40 else key[:40] + "..." for key in data]  # a hostile key
    shown = ", ".join(keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
    return f"the body has {shown}, not batch"

