"""One request, start to finish, without I/O: bytes and headers in, a source and envelopes out."""

from __future__ import annotations

import time
from dataclasses import dataclass

from nerve.catalog import Catalog
from nerve.collector._body import BATCH_PATHS, CALL_TYPES, decompress, parse_body
from nerve.collector._body import write_key_from_header as _header_key
from nerve.collector._errors import RequestError
from nerve.collector._map import map_messages
from nerve.collector._validate import Validator
from nerve.envelope import Envelope
from nerve.errors import AuthError
from nerve.workspace import Source, Workspace

__all__ = ["ENDPOINTS", "Collected", "Collector"]

#: every ``/v1/<endpoint>`` the collector answers
ENDPOINTS = tuple(sorted(BATCH_PATHS | CALL_TYPES.keys()))


@dataclass(frozen=True, slots=True)
class Collected:
    """A request's outcome: who sent it and its envelopes (valid and quarantined alike)."""

    source: Source
    envelopes: list[Envelope]

    @property
    def quarantined(self) -> int:
        return sum(1 for e in self.envelopes if e["violations"] is not None)


class Collector:
    """The Segment HTTP Tracking API as a pure function of a request.

    >>> collector = Collector(workspace, catalog)  # doctest: +SKIP
    >>> collector.collect(b'{"batch": [...]}', endpoint="batch", authorization="Basic ...")
    ... # doctest: +SKIP
    """

    def __init__(self, workspace: Workspace, catalog: Catalog) -> None:
        self.workspace = workspace
        self.limits = workspace.config.collector
        self.validator = Validator(catalog)

    def authenticate(self, write_key: str | None) -> Source:
        """The source a write key belongs to; AuthError (401) when none does."""
        if not write_key:
            raise AuthError("missing write key: send it as the HTTP Basic user "
                            "(`Authorization: Basic base64(key:)`) or as the body's writeKey")
        source = self.workspace.source_for_key(write_key)
        if source is None:
            raise AuthError("unknown write key: it matches no [[sources]] in nerve.toml")
        return source

    def collect(self, body: bytes, *, endpoint: str, authorization: str | None = None,
                content_encoding: str | None = None,
                received_at: int | None = None) -> Collected:
        """Authenticate, parse, map and validate one request to ``/v1/<endpoint>``.

        Raises RequestError/AuthError (a 4xx) for what the client must fix; catalog
        problems do not raise, they ride along in the envelopes' ``violations``.
        """
        if endpoint not in BATCH_PATHS and endpoint not in CALL_TYPES:
            raise RequestError(f"/v1/{endpoint}: no such endpoint", status=404,
                               code="not_found", details={"endpoint": endpoint})
        if received_at is None:
            received_at = time.time_ns() // 1000
        header_key = _header_key(authorization)
        # a header key is checked before the body is even parsed: unknown keys cost nothing
        source = self.authenticate(header_key) if header_key else None
        raw = decompress(body, content_encoding, self.limits.max_request_bytes)
        parsed = parse_body(raw, endpoint, self.limits)
        if source is None:
            source = self.authenticate(parsed.write_key)
        envelopes = map_messages(
            parsed.messages,
            source=source.name,
            historical=parsed.historical or source.historical,
            received_at=received_at,
            batch_sent_at=parsed.sent_at,
            validator=self.validator,
            max_event_bytes=self.limits.max_event_bytes,
            batch=endpoint in BATCH_PATHS,
        )
        return Collected(source, envelopes)
