"""Segment messages to envelopes: snake_case fields, JSON columns, clock-skew correction.

This is the hot path (every event passes through it once), so it is one flat loop over
plain dicts, with per-request caches for what batches repeat (timestamp strings).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from nerve.collector._errors import message_error
from nerve.collector._validate import Validator
from nerve.envelope import Envelope

__all__ = ["map_messages", "parse_timestamp"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)
_TYPES = frozenset({"track", "identify", "page", "screen", "group", "alias"})
#: calls whose own ``traits`` are the payload (others may carry ``context.traits``)
_TRAIT_CALLS = frozenset({"identify", "group"})
_PROPERTY_CALLS = frozenset({"track", "page", "screen"})
_ID_FIELDS = (("userId", "user_id"), ("anonymousId", "anonymous_id"),
              ("groupId", "group_id"), ("previousId", "previous_id"))


def parse_timestamp(value: Any) -> int | None:
    """Microseconds since the epoch (UTC) of an ISO 8601 string; a naive time is UTC.

    Raises ValueError for anything else.

    >>> parse_timestamp("1970-01-01T00:00:01.5Z")
    1500000
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"expected an ISO 8601 string, got {type(value).__name__}")
    dt = datetime.fromisoformat(value)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (dt - _EPOCH) // _MICRO


def _id(message: dict[str, Any], key: str, index: int | None) -> str | None:
    value = message.get(key)
    if value is None or isinstance(value, str):
        return value or None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)  # Segment coerces numeric ids to strings; so do we
    raise message_error(index, key, f"must be a string, got {type(value).__name__}",
                        code="invalid_field")


def _object(message: dict[str, Any], key: str, index: int | None) -> dict[str, Any] | None:
    value = message.get(key)
    if value is None or isinstance(value, dict):
        return value
    raise message_error(index, key, f"must be an object, got {type(value).__name__}",
                        code="invalid_field")


def _derived_message_id(message: dict[str, Any]) -> str:
    """A stable id for a message sent without one, so that a client's retry dedupes."""
    stable = {k: v for k, v in message.items() if k not in ("sentAt", "writeKey", "_metadata")}
    digest = hashlib.sha256(orjson.dumps(stable, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return f"nerve-{digest[:32]}"


def map_messages(
    messages: list[Any],
    *,
    source: str,
    historical: bool,
    received_at: int,
    batch_sent_at: Any,
    validator: Validator,
    max_event_bytes: int,
    batch: bool = True,
) -> list[Envelope]:
    """Map and validate a request's messages; raise RequestError naming the first bad one.

    ``received_at`` is the collector's clock in microseconds. Structural problems (no user
    id, no event name, a wrong type for an id) refuse the request: the client must fix
    them. Catalog problems (unknown event, invalid properties, a bad timestamp) do not:
    the envelope carries its ``violations`` and goes to the quarantine.
    """
    out: list[Envelope] = []
    times: dict[Any, int | None] = {}  # batches repeat timestamp strings; parse each once
    dumps = orjson.dumps
    judge = validator.judge

    def when(value: Any, field: str, problems: list[dict[str, Any]]) -> int | None:
        try:
            return times[value]
        except KeyError:
            pass
        except TypeError:  # an unhashable value: not a timestamp anyway
            value = repr(value)
        try:
            parsed = parse_timestamp(value)
        except (ValueError, OverflowError) as exc:
            problems.append({"path": f"$.{field}", "rule": "invalid_timestamp",
                             "message": f"{field}: {value!r} is not an ISO 8601 time ({exc})",
                             "file": None, "line": None})
            return None
        times[value] = parsed
        return parsed

    for index, message in enumerate(messages):
        at = index if batch else None
        if not isinstance(message, dict):
            raise message_error(at, "$", "each message must be a JSON object",
                                code="invalid_field")
        type_ = message.get("type")
        if type_ not in _TYPES:
            problem = ("required" if type_ is None else f"{type_!r} is not one of "
                       "track, identify, page, screen, group, alias")
            raise message_error(at, "type", problem,
                                code="missing_field" if type_ is None else "invalid_field")
        user_id = _id(message, "userId", at)
        anonymous_id = _id(message, "anonymousId", at)
        if user_id is None and anonymous_id is None:
            raise message_error(at, "userId", "userId or anonymousId is required")
        event = name = group_id = previous_id = None
        if type_ == "track":
            event = message.get("event")
            if not isinstance(event, str) or not event:
                raise message_error(at, "event", "required for track, a non-empty string",
                                    code="missing_field" if event is None else "invalid_field")
        elif type_ == "group":
            group_id = _id(message, "groupId", at)
            if group_id is None:
                raise message_error(at, "groupId", "required for group")
        elif type_ == "alias":
            previous_id = _id(message, "previousId", at)
            if previous_id is None:
                raise message_error(at, "previousId", "required for alias")
        message_id = message.get("messageId")
        if not isinstance(message_id, str) or not message_id:
            if isinstance(message_id, int) and not isinstance(message_id, bool):
                message_id = str(message_id)
            else:
                message_id = _derived_message_id(message)

        context = _object(message, "context", at) or {}
        properties = traits = None
        payload: dict[str, Any] | None = None
        if type_ in _PROPERTY_CALLS:
            properties = _object(message, "properties", at) or {}
            if type_ != "track":
                raw_name = message.get("name")
                name = raw_name if isinstance(raw_name, str) and raw_name else None
                category = message.get("category")
                if category is not None and "category" not in properties:
                    properties = {**properties, "category": category}
            payload = properties
            context_traits = context.get("traits")
            if isinstance(context_traits, dict):
                traits = context_traits
        elif type_ in _TRAIT_CALLS:
            traits = _object(message, "traits", at) or {}
            context_traits = context.get("traits")
            if isinstance(context_traits, dict) and context_traits:
                traits = {**context_traits, **traits}  # the call's own traits win
            payload = traits
        else:
            context_traits = context.get("traits")
            if isinstance(context_traits, dict):
                traits = context_traits

        problems: list[dict[str, Any]] = []
        original = when(message.get("timestamp"), "timestamp", problems)
        sent_raw = message.get("sentAt", batch_sent_at)
        sent_at = when(sent_raw, "sentAt", problems)
        if original is None:
            timestamp = received_at
        elif sent_at is None:
            timestamp = original
        else:
            # the client's clock may be wrong, but its differences are right
            timestamp = received_at - (sent_at - original)

        declared = context.get("event_version")
        version = None if declared is None else str(declared)
        if payload is not None:
            schema_version, violations = judge(type_, event, payload, version)
        else:
            schema_version, violations = None, None
        if problems:
            listed = orjson.loads(violations) if violations else []
            violations = dumps(problems + listed).decode()

        properties_json = None if properties is None else dumps(properties).decode()
        traits_json = None if traits is None else dumps(traits).decode()
        context_json = dumps(context).decode()
        size = (len(context_json) + (len(properties_json) if properties_json else 0)
                + (len(traits_json) if traits_json else 0))
        if size > max_event_bytes:
            raise message_error(at, "$", f"the message is {size} bytes of JSON, more than "
                                f"the limit of {max_event_bytes}", code="event_too_large",
                                status=413)
        out.append({
            "message_id": message_id,
            "type": type_,
            "event": event,
            "name": name,
            "user_id": user_id,
            "anonymous_id": anonymous_id,
            "group_id": group_id,
            "previous_id": previous_id,
            "timestamp": timestamp,
            "original_timestamp": original,
            "sent_at": sent_at,
            "received_at": received_at,
            "properties": properties_json,
            "traits": traits_json,
            "context": context_json,
            "source": source,
            "historical": historical,
            "schema_version": schema_version,
            "violations": violations,
        })
    return out

