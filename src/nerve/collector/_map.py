"""Segment messages to envelopes: snake_case fields, JSON columns, clock-skew correction.

This is the hot path (every event passes through it once), so it is one flat loop over
plain dicts that emits one tuple per event in ``ENVELOPE_FIELDS`` order (columns are cut
from those tuples in C), with per-request caches for what batches repeat (timestamp
strings, catalog rules). The common case takes no function call it can avoid; the rare
shapes (numeric ids, missing fields, bad timestamps) fall back to small helpers.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from nerve.collector._errors import RequestError, json_kind, message_error
from nerve.collector._validate import Rule, TooDeepError, Validator
from nerve.pipeline import Guard

__all__ = ["Row", "map_messages", "parse_timestamp"]

#: one envelope as a tuple, in ``nerve.envelope.ENVELOPE_FIELDS`` order
Row = tuple[Any, ...]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)
_TYPES = frozenset({"track", "identify", "page", "screen", "group", "alias"})
#: calls whose own ``traits`` are the payload (others may carry ``context.traits``)
_TRAIT_CALLS = frozenset({"identify", "group"})
_PROPERTY_CALLS = frozenset({"track", "page", "screen"})
#: the deepest nesting orjson serialises; deeper messages are refused with 400
MAX_DEPTH = 254
#: the deepest a stored JSON column may nest: a read's answer puts each column a few levels
#: further down (a list of rows, a row), and orjson writes no more than MAX_DEPTH, so a
#: column stored deeper would make every query that returns its row fail
MAX_STORED_DEPTH = 240
#: the shortest JSON text that can nest deeper than MAX_STORED_DEPTH
_DEEP_BYTES = 2 * (MAX_STORED_DEPTH + 1)
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKETS = re.compile(r"[\[\]{}]")
_ID_FIELDS = (("userId", "user_id"), ("anonymousId", "anonymous_id"),
              ("groupId", "group_id"), ("previousId", "previous_id"))
#: the most characters an id (``messageId``, ``userId``, ``anonymousId``, ``groupId``,
#: ``previousId``) or a name (a track's ``event``, a page's or screen's ``name``) may have:
#: the JSON columns are bounded by ``max_event_bytes``, these only by the request's size,
#: and a 450 KB id is a client's bug, not an id (docs/collector.md, Limits)
MAX_ID_CHARS = 1024
#: characters of a refused or quarantined value quoted back
_QUOTED_CHARS = 100
#: the times a client may give, and the clock-skew correction may give: from 1970 to the
#: end of 2099 (microseconds since the epoch). Outside, the clock or the value is wrong,
#: and a year the correction pushes out of Python's range would make the row unreadable
EARLIEST, LATEST = 0, (datetime(2100, 1, 1, tzinfo=UTC) - _EPOCH) // _MICRO


def _without_echoed_ids(traits: dict[str, Any], user_id: str | None,
                        anonymous_id: str | None) -> dict[str, Any]:
    """An identify's traits less the message's own ids, where the SDK copied them in.

    analytics-android (and its forks) keeps the user's ids among the traits it sends with
    every identify (``{"anonymousId": ..., "userId": ..., "plan": ...}``): they are the
    message's ``anonymousId`` and ``userId`` again, not traits, and a catalog that does not
    declare them quarantined every such identify. A value that differs from the message's
    id is the app's own and stays."""
    echoed = {key for key, own in (("anonymousId", anonymous_id), ("userId", user_id))
              if own is not None and traits.get(key) == own}
    return {key: value for key, value in traits.items() if key not in echoed} \
        if echoed else traits


def parse_timestamp(value: Any) -> int | None:
    """Microseconds since the epoch (UTC) of an ISO 8601 string; a naive time is UTC.

    Raises ValueError for anything else.

    >>> parse_timestamp("1970-01-01T00:00:01.5Z")
    1500000
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"expected an ISO 8601 string, got {json_kind(value)}")
    dt = datetime.fromisoformat(value)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (dt - _EPOCH) // _MICRO


def _id(message: dict[str, Any], key: str, index: int | None) -> str | None:
    value = message.get(key)
    if value is None or isinstance(value, str):
        if value is not None and len(value) > MAX_ID_CHARS:
            raise _too_long(index, key, value)
        return value or None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)  # Segment coerces numeric ids to strings; so do we
    raise message_error(index, key, f"must be a string, got {json_kind(value)}",
                        code="invalid_field")


def _too_long(index: int | None, field: str, value: str) -> RequestError:
    """The refusal of an id or a name longer than MAX_ID_CHARS (only for the error; the
    value is not quoted: an id may be personal)."""
    return message_error(index, field, f"{len(value)} characters, more than the "
                         f"{MAX_ID_CHARS} an id or a name (of an event, page or screen) may "
                         "have", code="invalid_field")


def _cut_to_size(size: int, limit: int, properties: str | None, traits: str | None,
                 context: str, violations: str | None
                 ) -> tuple[str | None, str | None, str, str]:
    """An event whose JSON columns are over ``max_event_bytes``, made fit for the
    quarantine: its largest columns are left out (``{}`` for the context, null for the
    others) until the rest fits, and a violation names them.

    The request's other events are kept. A ``413`` for the request lost them all: SDKs
    drop a refused batch whole, and analytics-node sends events over Segment's 32 KB.
    The event cannot be replayed (its path is ``$``, not the catalog's): what was left
    out is not stored anywhere.
    """
    columns = {"properties": properties, "traits": traits, "context": context}
    sizes = {name: len(text) for name, text in columns.items() if text is not None}
    left_out, total = [], size
    for name in sorted(sizes, key=sizes.__getitem__, reverse=True):
        if total <= limit:
            break
        columns[name] = "{}" if name == "context" else None
        total -= sizes[name] - len(columns[name] or "")
        left_out.append(f"{name} ({sizes[name]} bytes)")
    problem = {"path": "$", "rule": "event_too_large", "file": None, "line": None,
               "message": f"the message's context, properties and traits are {size} bytes "
                          f"of JSON, more than [collector] max_event_bytes ({limit}): "
                          f"{' and '.join(left_out)} not kept, so it cannot be replayed"}
    listed = orjson.loads(violations) if violations else []
    return (columns["properties"], columns["traits"], columns["context"] or "{}",
            orjson.dumps([*listed, problem]).decode())


def _quoted(value: Any) -> str:
    """``repr(value)``, cut to about _QUOTED_CHARS characters: a refused or quarantined
    value is quoted back, and it may be as long as the request."""
    text = repr(value)
    return text if len(text) <= _QUOTED_CHARS else text[:_QUOTED_CHARS] + "..."


def _object(message: dict[str, Any], key: str, index: int | None) -> dict[str, Any] | None:
    value = message.get(key)
    if value is None or isinstance(value, dict):
        return value
    raise message_error(index, key, f"must be an object, got {json_kind(value)}",
                        code="invalid_field")


def _derived_message_id(message: dict[str, Any]) -> str:
    """A stable id for a message sent without one, so that a client's retry dedupes."""
    stable = {k: v for k, v in message.items() if k not in ("sentAt", "writeKey", "_metadata")}
    digest = hashlib.sha256(orjson.dumps(stable, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return f"nerve-{digest[:32]}"


def _timestamp(value: Any, field: str, cache: dict[Any, int | None],
               problems: list[dict[str, Any]]) -> int | None:
    """A client timestamp in microseconds (cached per request); a problem if unparseable."""
    try:
        parsed = parse_timestamp(value)
    except (ValueError, OverflowError) as exc:
        # the parser's message quotes the value whole, which may be as long as the request
        reason = f" ({exc})" if len(str(exc)) <= 2 * _QUOTED_CHARS else ""
        problems.append(_bad_time(field, f"{_quoted(value)} is not an ISO 8601 time{reason}"))
        return None
    if parsed is not None and not EARLIEST <= parsed < LATEST:
        problems.append(_bad_time(field, f"{_quoted(value)} is not between 1970 and 2099"))
        return None
    if value.__class__ is str:
        cache[value] = parsed
    return parsed


def _bad_time(field: str, problem: str) -> dict[str, Any]:
    return {"path": f"$.{field}", "rule": "invalid_timestamp", "message": f"{field}: {problem}",
            "file": None, "line": None}


def _too_deep(text: str) -> bool:
    """Whether a JSON text nests deeper than MAX_STORED_DEPTH (brackets inside strings do
    not count). The usual text has fewer brackets than that in all: two counts in C.

    >>> _too_deep("[" * 241 + "]" * 241), _too_deep('["' + "[" * 300 + '"]'), _too_deep("[]" * 300)
    (True, False, False)
    """
    if text.count("{") + text.count("[") <= MAX_STORED_DEPTH:
        return False
    depth = 0
    for bracket in _BRACKETS.findall(_STRINGS.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        if depth > MAX_STORED_DEPTH:
            return True
    return False


def _deep_field(message: Any) -> str:
    """The field of a message refused as nested too deep (its ``context``,
    ``properties``, ``traits`` or any other): the first whose JSON cannot be written or
    nests deeper than MAX_STORED_DEPTH; ``$`` if none does alone. Only for the error."""
    if message.__class__ is dict:
        for key, value in message.items():
            try:
                text = orjson.dumps(value).decode()
            except orjson.JSONEncodeError:
                return str(key)
            if _too_deep(text):
                return str(key)
    return "$"


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
    guard: Guard | None = None,
    client_ip: str | None = None,
    user_agent: str | None = None,
    dropped: dict[tuple[str, str], int] | None = None,
) -> list[Row]:
    """Map and validate a request's messages; raise RequestError naming the first bad one.

    Returns one ``Row`` per message, fields in ``ENVELOPE_FIELDS`` order.
    ``received_at`` is the collector's clock in microseconds. Structural problems (no user
    id, no event name, a wrong type for an id) refuse the request: the client must fix
    them. Catalog problems (unknown event, invalid properties, a bad timestamp) do not:
    the envelope carries its ``violations`` and goes to the quarantine.

    With a ``guard`` (docs/privacy.md), each message is enriched (``client_ip``,
    ``user_agent``: the request's), validated raw, then protected: hashed or dropped
    values never reach a row, not even quoted in a violation. Messages whose consent does
    not cover their event's purpose (or, with no purpose, grants nothing at all) get no
    row; ``dropped[("consent", event)]`` counts them.
    """
    rows: list[Row] = []
    times: dict[Any, int | None] = {None: None}  # batches repeat timestamp strings
    rules: dict[tuple[str, Any, str | None], Rule] = {}
    dumps = orjson.dumps
    no_problems: list[dict[str, Any]] = []
    max_id = MAX_ID_CHARS  # a local: read once per id in the loop below

    index = 0
    # orjson writes at most 254 levels of nesting: deeper JSON parses but cannot be stored
    try:
        for index, message in enumerate(messages):
            at = index if batch else None
            if message.__class__ is not dict:
                raise message_error(at, "$", "each message must be a JSON object",
                                    code="invalid_field")
            get = message.get
            type_ = get("type")
            if type_.__class__ is not str or type_ not in _TYPES:
                problem = ("required" if type_ is None else f"{type_!r} is not one of "
                           "track, identify, page, screen, group, alias")
                raise message_error(at, "type", problem,
                                    code="missing_field" if type_ is None else "invalid_field")
            user_id = get("userId")
            # each id's check costs one len() (MAX_ID_CHARS); _id refuses a long one
            if user_id.__class__ is not str or not user_id or len(user_id) > max_id:
                user_id = _id(message, "userId", at)
            anonymous_id = get("anonymousId")
            if (anonymous_id.__class__ is not str or not anonymous_id
                    or len(anonymous_id) > max_id):
                anonymous_id = _id(message, "anonymousId", at)
            if user_id is None and anonymous_id is None:
                raise message_error(at, "userId", "userId or anonymousId is required")
            event = name = group_id = previous_id = None
            if type_ == "track":
                event = get("event")
                if event.__class__ is not str or not event or len(event) > max_id:
                    if event.__class__ is str and event:
                        raise _too_long(at, "event", event)
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
            message_id = get("messageId")
            if (message_id.__class__ is not str or not message_id
                    or len(message_id) > max_id):
                if message_id.__class__ is str and message_id:
                    raise _too_long(at, "messageId", message_id)
                if isinstance(message_id, int) and not isinstance(message_id, bool):
                    message_id = str(message_id)
                else:
                    message_id = _derived_message_id(message)

            context = get("context")
            if context.__class__ is not dict:
                context = _object(message, "context", at) or {}
            context_traits = context.get("traits")
            properties = traits = None
            if type_ in _PROPERTY_CALLS:
                properties = get("properties")
                if properties.__class__ is not dict:
                    properties = _object(message, "properties", at) or {}
                if type_ != "track":
                    raw_name = get("name")
                    name = raw_name if raw_name.__class__ is str and raw_name else None
                    if name is not None and len(name) > max_id:
                        raise _too_long(at, "name", name)
                    category = get("category")
                    if category is not None and "category" not in properties:
                        properties = {**properties, "category": category}
                payload = properties
                if context_traits.__class__ is dict:
                    traits = context_traits
            elif type_ in _TRAIT_CALLS:
                traits = get("traits")
                if traits.__class__ is not dict:
                    traits = _object(message, "traits", at) or {}
                # an identify's user traits: the call's own win. A group's traits are
                # the group's; the user's traits stay in the context
                if type_ == "identify":
                    if context_traits.__class__ is dict and context_traits:
                        traits = {**context_traits, **traits}
                    if "anonymousId" in traits or "userId" in traits:
                        traits = _without_echoed_ids(traits, user_id, anonymous_id)
                payload = traits
            else:
                payload = None
                if context_traits.__class__ is dict:
                    traits = context_traits

            problems = no_problems
            raw = get("timestamp")
            try:
                original = times[raw]
            except (KeyError, TypeError):
                problems = []
                original = _timestamp(raw, "timestamp", times, problems)
            if raw is None and "originalTimestamp" in message:
                # RudderStack's SDKs send the device's time as originalTimestamp, and no
                # timestamp: without this their queued events took the receive time
                problems = problems or []
                original = _timestamp(get("originalTimestamp"), "originalTimestamp", times,
                                      problems)
            raw = get("sentAt", batch_sent_at)
            try:
                sent_at = times[raw]
            except (KeyError, TypeError):
                problems = problems or []
                sent_at = _timestamp(raw, "sentAt", times, problems)
            if original is None:
                timestamp = received_at
            elif sent_at is None:
                timestamp = original
            else:
                # the client's clock may be wrong, but its differences are right
                timestamp = received_at - (sent_at - original)
                if not EARLIEST <= timestamp < LATEST:
                    sent = get("sentAt", batch_sent_at)
                    field = "timestamp" if get("timestamp") is not None else "originalTimestamp"
                    problems = [*problems, _bad_time(field, (
                        f"{_quoted(get(field))} sent at {_quoted(sent)}: corrected for the "
                        "client's clock, before 1970 or after 2099"))]
                    timestamp = received_at

            if payload is None:
                schema_version = violations = None
            else:
                declared = context.get("event_version")
                version = None if declared is None else str(declared)
                key = (type_, event, version)
                rule = rules.get(key)
                if rule is None:
                    rule = rules[key] = validator.rule(type_, event, version)
                if rule.check is None or rule.check(payload):
                    schema_version, violations = rule.verdict
                else:
                    schema_version, violations = validator.explain(rule, payload)
            if guard is not None:
                protected = guard.message(
                    type_, context, payload, None if payload is None or rule is None
                    else rule.spec, violations, user_id, previous_id, anonymous_id,
                    client_ip, user_agent)
                if protected is None:  # its consent does not cover it
                    if dropped is not None:
                        what = ("consent", event or type_)
                        dropped[what] = dropped.get(what, 0) + 1
                    continue
                context, properties, traits, violations, user_id, previous_id = protected
            if problems:
                listed = orjson.loads(violations) if violations else []
                violations = dumps(problems + listed).decode()

            properties_json = None if properties is None else dumps(properties).decode()
            traits_json = None if traits is None else dumps(traits).decode()
            context_json = dumps(context).decode()
            size = (len(context_json) + (len(properties_json) if properties_json else 0)
                    + (len(traits_json) if traits_json else 0))
            if size > max_event_bytes:  # quarantined, without what made it too large
                properties_json, traits_json, context_json, violations = _cut_to_size(
                    size, max_event_bytes, properties_json, traits_json, context_json,
                    violations)
            # a column shorter than _DEEP_BYTES cannot nest that deep: most pay 3 compares
            if ((len(context_json) >= _DEEP_BYTES and _too_deep(context_json))
                    or (properties_json is not None and len(properties_json) >= _DEEP_BYTES
                        and _too_deep(properties_json))
                    or (traits_json is not None and len(traits_json) >= _DEEP_BYTES
                        and _too_deep(traits_json))):
                field = ("context" if _too_deep(context_json) else "properties"
                         if properties_json is not None and _too_deep(properties_json)
                         else "traits")
                raise message_error(at, field, f"JSON nested more than {MAX_STORED_DEPTH} "
                                    "levels deep cannot be stored", code="too_deep")
            rows.append((message_id, type_, event, name, user_id, anonymous_id, group_id,
                         previous_id, timestamp, original, sent_at, received_at, properties_json,
                         traits_json, context_json, source, historical, schema_version,
                         violations))
    except (orjson.JSONEncodeError, TooDeepError) as exc:
        # the same words as the stored-depth check above: only the depth that tripped
        # the encoder differs, and a client must read one limit (docs/collector.md)
        raise message_error(index if batch else None, _deep_field(messages[index]),
                            f"JSON nested more than {MAX_STORED_DEPTH} levels deep cannot "
                            f"be stored ({exc})", code="too_deep") from exc
    return rows
