"""One request, start to finish, without I/O: bytes and headers in, a source and envelopes out."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

import pyarrow as pa

from nerve.catalog import Catalog
from nerve.collector._body import BATCH_PATHS, CALL_TYPES, decompress, parse_body
from nerve.collector._body import write_key_from_header as _header_key
from nerve.collector._errors import RequestError
from nerve.collector._map import Row, map_messages
from nerve.collector._validate import Validator
from nerve.envelope import ENVELOPE_FIELDS, ENVELOPE_SCHEMA, Envelope
from nerve.errors import AuthError
from nerve.pipeline import Guard, PrivacyPolicy
from nerve.workspace import Source, Workspace

__all__ = ["ENDPOINTS", "Collected", "Collector", "rows_to_record_batch"]

#: every ``/v1/<endpoint>`` the collector answers
ENDPOINTS = tuple(sorted(BATCH_PATHS | CALL_TYPES.keys()))


_VIOLATIONS = ENVELOPE_FIELDS.index("violations")
#: an envelope row as Arrow reads it: a struct of the envelope's fields
_ROW_TYPE = pa.struct(list(ENVELOPE_SCHEMA))


@dataclass(frozen=True, slots=True)
class Collected:
    """A request's outcome: who sent it and its envelopes (valid and quarantined alike).

    ``rows`` hold one tuple per envelope in ``ENVELOPE_FIELDS`` order: the hot path turns
    them into a record batch column by column, without building a dict per event.
    """

    source: Source
    rows: list[Row]
    #: messages not stored, by (reason, event): ``("consent", "order_completed")``
    dropped: dict[tuple[str, str], int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def envelopes(self) -> list[Envelope]:
        """The envelopes as dicts (``nerve.envelope.Envelope``)."""
        return [cast(Envelope, dict(zip(ENVELOPE_FIELDS, row, strict=True)))
                for row in self.rows]

    @property
    def quarantined(self) -> int:
        """How many envelopes carry violations (and will land in the quarantine)."""
        return sum(1 for row in self.rows if row[_VIOLATIONS] is not None)

    def record_batch(self) -> pa.RecordBatch:
        """The envelopes as one Arrow batch in ``ENVELOPE_SCHEMA``, ready for the log.

        Equal to ``nerve.envelope.to_record_batch(self.envelopes)``, built from columns.
        """
        return rows_to_record_batch(self.rows)


def rows_to_record_batch(rows: Sequence[Row]) -> pa.RecordBatch:
    """Rows (``ENVELOPE_FIELDS`` order) as one Arrow batch in ``ENVELOPE_SCHEMA``.

    Arrow reads the tuples as one struct array, whose children are the columns: ~20%
    cheaper than transposing the rows into columns in Python first. Each conversion has
    a fixed cost of several microseconds per column, so the server builds one batch per
    group-commit round from every request in it, not one per request.
    """
    return pa.RecordBatch.from_struct_array(pa.array(rows, type=_ROW_TYPE))


class Collector:
    """The Segment HTTP Tracking API as a pure function of a request.

    >>> collector = Collector(workspace, catalog)  # doctest: +SKIP
    >>> collector.collect(b'{"batch": [...]}', endpoint="batch", authorization="Basic ...")
    ... # doctest: +SKIP
    """

    def __init__(self, workspace: Workspace, catalog: Catalog, *,
                 privacy: bool = True) -> None:
        self.workspace = workspace
        self.limits = workspace.config.collector
        self.validator = Validator(catalog)
        #: enrichment and the ``[privacy]`` policy (docs/privacy.md); None only in tests
        #: and benchmarks that measure the bare collector
        self.guard: Guard | None = None
        if privacy:
            policy = PrivacyPolicy.from_config(workspace.config.raw.get("privacy", {}),
                                               workspace.secret()).with_catalog(catalog)
            self.guard = Guard(policy, catalog.get("identify") if "identify" in catalog
                               else None, catalog)

    def authenticate(self, write_key: str | None) -> Source:
        """The source a write key belongs to; AuthError (401) when none does."""
        if not write_key:
            raise AuthError("missing write key: send it as the HTTP Basic user "
                            "(`Authorization: Basic base64(key:)`) or as the body's writeKey")
        # keys are ASCII (nerve.toml); compare_digest refuses other text with a TypeError
        source = self.workspace.source_for_key(write_key) if write_key.isascii() else None
        if source is None:
            raise AuthError("unknown write key: it matches no [[sources]] in nerve.toml"
                            + self.spaced_key_hint(write_key))
        return source

    def authenticate_without_header(self, authorization: str | None, write_key: str | None,
                                    *, where: str = "the body's writeKey") -> Source:
        """The source of a request whose ``Authorization`` header held no write key:
        ``write_key`` (sent ``where`` else), or AuthError (401). With neither, a header
        that was sent is named as what failed (not base64, another scheme), as ingest and
        ``GET /sourceConfig/`` both say it.

        Call it after ``write_key_from_header(authorization)`` gave None.
        """
        if not write_key and authorization and authorization.strip():
            raise _unreadable_authorization(authorization, where)
        return self.authenticate(write_key)

    def spaced_key_hint(self, write_key: str) -> str:
        """Why a refused key is a source's all the same: white space around it (a key read
        from a secret file keeps its newline), or "". Ingest and the SDK settings say it."""
        stripped = write_key.strip()
        if stripped == write_key or not stripped.isascii():
            return ""
        source = self.workspace.source_for_key(stripped)
        if source is None:
            return ""
        return (f"; it is the key of source {source.name!r} with white space around it (a "
                "newline kept from a secret file?): strip it where the client reads it")

    def collect(self, body: bytes, *, endpoint: str, authorization: str | None = None,
                content_encoding: str | None = None,
                received_at: int | None = None, client_ip: str | None = None,
                user_agent: str | None = None) -> Collected:
        """Authenticate, parse, map, validate and protect one request to ``/v1/<endpoint>``.

        ``client_ip`` and ``user_agent`` are the request's (connection or trusted proxy
        header, and the User-Agent header): they enrich messages that lack their own.

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
            source = self.authenticate_without_header(authorization, parsed.write_key)
        dropped: dict[tuple[str, str], int] = {}
        rows = map_messages(
            parsed.messages,
            source=source.name,
            historical=parsed.historical or source.historical,
            received_at=received_at,
            batch_sent_at=parsed.sent_at,
            validator=self.validator,
            max_event_bytes=self.limits.max_event_bytes,
            batch=endpoint in BATCH_PATHS,
            guard=self.guard,
            client_ip=client_ip,
            user_agent=user_agent,
            dropped=dropped,
        )
        return Collected(source, rows, dropped)


def _unreadable_authorization(authorization: str, where: str) -> AuthError:
    """401 for an ``Authorization`` header that holds no write key (another scheme, or
    not base64), naming the scheme only: the rest may be a credential. ``where``: the
    other place the request may carry its key."""
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() == "basic" and value.strip():
        problem = "its Basic credentials are not base64 of `key:`"
    elif scheme.lower() == "basic":
        problem = "its Basic credentials are empty"
    else:
        problem = f"it is {scheme[:20]!r}, not Basic"
    return AuthError(f"the Authorization header holds no write key: {problem}; send "
                     "`Authorization: Basic base64(key:)` with a source's write key "
                     f"(nerve.toml [[sources]]), or {where}")
