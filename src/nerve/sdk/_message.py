"""Segment-spec messages and batch bodies: pure functions, no I/O.

A call such as ``track("Order Completed", {...}, user_id="u1")`` becomes one message
dict with the spec's camelCase keys, encoded once to JSON bytes when it is queued (so a
caller mutating its dict afterwards changes nothing, and a bad value is reported at the
call). Batches are assembled from those bytes without parsing them again.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import orjson

from nerve import __version__
from nerve.sdk._errors import InvalidMessageError

__all__ = [
    "LIBRARY",
    "MAX_BATCH_BYTES",
    "MAX_MESSAGE_BYTES",
    "batch_body",
    "build_message",
    "encode_message",
    "iso_timestamp",
    "split_batch",
]

#: context.library on every message
LIBRARY = {"name": "nerve-python", "version": __version__}
#: Segment's limits, which nerve's collector shares: one event, one request body
MAX_MESSAGE_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024
#: the deepest nerve's collector stores a message's properties, traits or context (its
#: MAX_STORED_DEPTH): a deeper one refuses the whole batch with 400 too_deep
MAX_DEPTH = 240
# room for `{"batch":[`, `],"sentAt":"...","historical_import":true}` around the events
_BODY_OVERHEAD = 128

# numpy's scalars and arrays (what a pandas row or a model's output holds) as numbers and
# lists; orjson reads them without importing numpy
_JSON_OPTIONS = orjson.OPT_NAIVE_UTC | orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def iso_timestamp(value: datetime | date | str | None) -> str:
    """ISO-8601 with a time zone; naive datetimes are taken as UTC, None is now.

    >>> iso_timestamp(datetime(2024, 1, 2, 3, 4, 5))
    '2024-01-02T03:04:05.000000+00:00'
    """
    if value is None:
        moment = datetime.now(UTC)
    elif isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day, tzinfo=UTC)
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError as exc:
            raise InvalidMessageError(f"timestamp: not ISO-8601: {value!r}") from exc
    else:
        raise InvalidMessageError(
            f"timestamp: expected a datetime or an ISO-8601 string, got {type(value).__name__}"
        )
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    text = moment.isoformat(timespec="microseconds")
    if type(moment) is not datetime:  # a subclass: pandas.NaT is a datetime that says "NaT"
        try:
            datetime.fromisoformat(text)
        except ValueError:
            raise InvalidMessageError(f"timestamp: not a point in time: {text!r}") from None
    return text


def _default(value: Any) -> Any:
    """JSON for the types orjson leaves to us."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, set | frozenset):
        return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, datetime):  # a subclass orjson refuses (pandas.Timestamp, pendulum)
        try:
            return iso_timestamp(value)
        except InvalidMessageError:
            return None  # pandas.NaT, a missing time, is null as a NaN is
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _unencodable(value: Any, path: str) -> str | None:
    """The JSON path of the first value that cannot be encoded (``$.properties.price``),
    or None: the slow path of an error, so that it names the property to fix."""
    try:
        orjson.dumps(value, default=_default, option=_JSON_OPTIONS)
    except TypeError:
        pass
    else:
        return None
    if isinstance(value, Mapping):
        items: Any = ((f"{path}.{key}", item) for key, item in value.items())
    elif isinstance(value, list | tuple):
        items = ((f"{path}[{i}]", item) for i, item in enumerate(value))
    else:
        return path
    for where, item in items:
        found = _unencodable(item, where)
        if found is not None:
            return found
    return path


#: the Python argument of each camelCase key, named in errors as the caller wrote it
_ARGUMENTS = {"groupId": "group_id", "previousId": "previous_id", "userId": "user_id",
              "anonymousId": "anonymous_id", "messageId": "message_id"}
#: the most characters of an id or a name (event, page or screen): the collector refuses a
#: longer one with 400 invalid_field, and with it the whole batch (its MAX_ID_CHARS)
MAX_ID_CHARS = 1024


def _mapping(kind: str, name: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidMessageError(
            f"{kind}: {name}: expected a dict, got {type(value).__name__}")
    return dict(value)


def _id(kind: str, name: str, value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str | int | uuid.UUID) and not isinstance(value, bool):
        text = str(value)
        return text or None
    raise InvalidMessageError(f"{kind}: {name}: expected a string, got {type(value).__name__}")


def build_message(
    kind: str,
    *,
    user_id: Any = None,
    anonymous_id: Any = None,
    context: Mapping[str, Any] | None = None,
    default_context: Mapping[str, Any] | None = None,
    timestamp: datetime | date | str | None = None,
    message_id: Any = None,
    integrations: Mapping[str, Any] | None = None,
    required: Iterable[str] = (),
    **fields: Any,
) -> dict[str, Any]:
    """One Segment-spec message of type ``kind`` (track, identify, page, screen, group, alias).

    ``fields`` are the type's own keys already in camelCase (``event``, ``properties``,
    ``traits``, ``name``, ``category``, ``groupId``, ``previousId``); ``required`` names
    those that must be non-empty. Raises InvalidMessageError, naming the call and the
    field as the Python caller wrote it (``group: group_id is required``).

    >>> m = build_message("track", event="Signed Up", user_id="u1", properties={"plan": "pro"})
    >>> m["type"], m["userId"], m["context"]["library"]["name"]
    ('track', 'u1', 'nerve-python')
    """
    message: dict[str, Any] = {"type": kind}
    for key, value in fields.items():
        if key in ("properties", "traits"):
            message[key] = _mapping(kind, key, value)
        elif value is not None:
            if not isinstance(value, str | int) or isinstance(value, bool):
                raise InvalidMessageError(
                    f"{kind}.{_ARGUMENTS.get(key, key)}: expected a string, "
                    f"got {type(value).__name__}"
                )
            message[key] = str(value)
    for key in required:
        if not message.get(key):
            raise InvalidMessageError(f"{kind}: {_ARGUMENTS.get(key, key)} is required")
    user = _id(kind, "user_id", user_id)
    anonymous = _id(kind, "anonymous_id", anonymous_id)
    if user is None and anonymous is None:
        raise InvalidMessageError(f"{kind}: user_id or anonymous_id is required")
    if user is not None:
        message["userId"] = user
    if anonymous is not None:
        message["anonymousId"] = anonymous
    merged = {**_mapping(kind, "client context", default_context),
              **_mapping(kind, "context", context)}
    merged["library"] = dict(LIBRARY)
    message["context"] = merged
    if integrations is not None:
        message["integrations"] = _mapping(kind, "integrations", integrations)
    try:
        message["timestamp"] = iso_timestamp(timestamp)
    except InvalidMessageError as exc:
        raise InvalidMessageError(f"{kind}: {exc}") from None
    message["messageId"] = _id(kind, "message_id", message_id) or str(uuid.uuid4())
    for key in ("event", "name", "userId", "anonymousId", "groupId", "previousId", "messageId"):
        value = message.get(key)
        if value is not None and len(value) > MAX_ID_CHARS:
            raise InvalidMessageError(
                f"{kind}: {_ARGUMENTS.get(key, key)}: {len(value)} characters, over the "
                f"collector's limit of {MAX_ID_CHARS} (it would refuse the whole batch)")
    return message


def encode_message(message: Mapping[str, Any]) -> bytes:
    """The message as compact JSON; InvalidMessageError if it cannot be or is over 32 KB."""
    try:
        data = orjson.dumps(message, default=_default, option=_JSON_OPTIONS)
    except TypeError as exc:  # orjson.JSONEncodeError is a TypeError
        where = _unencodable(message, "$") or "$"
        raise InvalidMessageError(
            f"{message.get('type', 'message')}: not JSON-serializable at {where}: {exc}"
        ) from exc
    if len(data) > MAX_MESSAGE_BYTES:
        raise InvalidMessageError(
            f"{message.get('type', 'message')}: {len(data)} bytes of JSON, over the "
            f"{MAX_MESSAGE_BYTES}-byte limit per event"
        )
    # the usual message has fewer brackets than that in all: only the rare one is walked
    if data.count(b"{") + data.count(b"[") > MAX_DEPTH:
        for key in ("properties", "traits", "context"):
            depth = _nesting(message.get(key))
            if depth > MAX_DEPTH:
                raise InvalidMessageError(
                    f"{message.get('type', 'message')}: {key} nests {depth} levels deep, "
                    f"over the collector's limit of {MAX_DEPTH} (it would refuse the "
                    "whole batch)"
                )
    return data


def _nesting(value: Any) -> int:
    """How many levels of JSON objects and arrays ``value`` nests (a scalar: 0).

    >>> _nesting({"a": [1, {"b": 2}]}), _nesting("x")
    (3, 0)
    """
    if isinstance(value, Mapping):
        return 1 + max((_nesting(v) for v in value.values()), default=0)
    if isinstance(value, list | tuple | set | frozenset):
        return 1 + max((_nesting(v) for v in value), default=0)
    return 0


def split_batch(
    messages: list[bytes], *, max_items: int, max_bytes: int = MAX_BATCH_BYTES
) -> list[list[bytes]]:
    """Cut encoded messages into batches of at most ``max_items`` and ``max_bytes`` each.

    >>> [len(b) for b in split_batch([b"{}"] * 5, max_items=2)]
    [2, 2, 1]
    """
    batches: list[list[bytes]] = []
    current: list[bytes] = []
    size = _BODY_OVERHEAD
    for item in messages:
        if current and (len(current) >= max_items or size + len(item) + 1 > max_bytes):
            batches.append(current)
            current, size = [], _BODY_OVERHEAD
        current.append(item)
        size += len(item) + 1
    if current:
        batches.append(current)
    return batches


def batch_body(
    messages: list[bytes], *, sent_at: datetime | None = None, historical: bool = False
) -> bytes:
    """The ``POST /v1/batch`` body: ``{"batch": [...], "sentAt": ...}``.

    ``historical`` adds ``"historical_import": true``, which nerve's collector reads as a
    backfill; other Segment-spec servers ignore the unknown key.
    """
    tail = b'],"sentAt":' + orjson.dumps(iso_timestamp(sent_at))
    if historical:
        tail += b',"historical_import":true'
    return b'{"batch":[' + b",".join(messages) + tail + b"}"
