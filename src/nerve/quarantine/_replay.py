"""Replay: judge quarantined events against the current catalog, load those that pass.

``judge_rows`` is pure (rows in, decisions out) and judges exactly as the collector does
(``nerve.collector.Validator``: the version the event declares in
``context.event_version``, else the latest). ``replay`` runs it over the warehouse's
``quarantine`` table and, in one transaction, inserts the events that now pass into
``events`` (skipping any ``message_id`` already there, so replaying twice never
duplicates) and deletes them from the quarantine. ``preview`` is the dry run: it judges
the rows of ``preview_query`` (read from the file, or through the running server) and
counts what a replay would load and what it would skip as already loaded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import pyarrow as pa

from nerve.catalog import PAYLOAD_FIELD, Catalog
from nerve.collector import Validator
from nerve.pipeline import Guard, PrivacyPolicy
from nerve.warehouse import EVENT_COLUMNS, Warehouse

__all__ = ["Decision", "ReplayReport", "judge_rows", "preview", "preview_query", "replay"]

#: violation paths the catalog judges; others (a bad ``$.timestamp``) stay as they were
_CATALOG_PATHS = ("$.properties", "$.traits", "$.event", "$.context.event_version")
#: a value the collector pseudonymised (``nerve.pipeline.privacy.pseudonymise``)
_PSEUDONYM = re.compile(r"h:[0-9a-f]{32}")
_STEP = re.compile(r"\.([^.\[]+)|\[(\d+)\]")


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict on one quarantined event under the current catalog."""

    message_id: str
    ok: bool
    #: the catalog version that now accepts it (None when it still fails)
    schema_version: str | None
    #: what still fails, each as {path, rule, message, file, line}
    violations: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class ReplayReport:
    """What a replay did: how many were judged, loaded, already loaded, still failing."""

    judged: int
    loaded: int
    duplicates: int
    still_failing: int
    decisions: list[Decision]
    #: passing events whose ``context.consent`` does not cover the purpose of the spec
    #: now accepting them: the collector would not store them, so the replay removes
    #: them from the quarantine without loading them (counted once per ``message_id``)
    withheld: int = 0


def _json(text: Any) -> Any:
    if text is None or text == "":
        return None
    if isinstance(text, str | bytes):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            return None
    return text


def judge_rows(catalog: Catalog, rows: Iterable[Mapping[str, Any]]) -> list[Decision]:
    """Judge quarantine rows (``message_id``, ``type``, ``event``, ``properties``,
    ``traits``, ``context``, ``violations``; JSON as text) against ``catalog``."""
    validator = Validator(catalog)
    decisions = []
    for row in rows:
        type_ = str(row.get("type") or "track")
        context = _json(row.get("context")) or {}
        declared = context.get("event_version") if isinstance(context, dict) else None
        field = PAYLOAD_FIELD.get(type_, "properties")
        payload = _json(row.get(field))
        if payload is None:
            payload = {}
        version, violations_json = validator.judge(
            type_, row.get("event"), payload, None if declared is None else str(declared))
        earlier = [v for v in _json(row.get("violations")) or [] if isinstance(v, dict)]
        problems = _unhash(list(_json(violations_json) or []), payload, field, earlier)
        # problems the collector found outside the catalog (a malformed timestamp) remain
        problems += [v for v in earlier
                     if not str(v.get("path", "")).startswith(_CATALOG_PATHS)]
        decisions.append(Decision(str(row["message_id"]), not problems,
                                  version if not problems else None, problems))
    return decisions


def _unhash(problems: list[dict[str, Any]], payload: Any, field: str,
            earlier: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Judge pseudonymised values by what the collector said of their raw value.

    The quarantine keeps a keyed hash where the raw value was personal, so ``h:3f...``
    would fail an email format or an integer type it once met, and could pass a rule its
    raw value broke. The collector judged the raw value before hashing it, so that verdict
    stands for those paths, whatever the catalog says now.
    """
    def hashed(problem: dict[str, Any]) -> bool:
        value = _at(payload, str(problem.get("path", "")).removeprefix(f"$.{field}"))
        return isinstance(value, str) and _PSEUDONYM.fullmatch(value) is not None

    kept = [p for p in problems if not hashed(p)]
    kept += [{**p, "message": f"{p.get('message', '')} (judged at collection: the value "
              "is pseudonymised now and cannot be judged again)"}
             for p in earlier if hashed(p)]
    return kept


def _at(payload: Any, path: str) -> Any:
    """The value at a violation path relative to the payload (``.a.b[2]``), or None."""
    value = payload
    for key, index in _STEP.findall(path):
        if key and isinstance(value, dict):
            value = value.get(key)
        elif index and isinstance(value, list) and int(index) < len(value):
            value = value[int(index)]
        else:
            return None
    return value


def preview_query(event: str | None = None) -> str:
    """The read-only query a dry run judges: the quarantine (or one event's part), each
    row flagged ``already_loaded`` when its ``message_id`` is in ``events``.

    Plain SQL text (the event as a quoted literal), so a dry run can send it through the
    running server's ``/v1/admin/sql`` as well as run it on the file.
    """
    sql = ("SELECT q.message_id, q.type, q.event, q.user_id, q.anonymous_id, q.previous_id, "
           "q.properties, q.traits, q.context, "
           "q.violations, q.message_id IN (SELECT message_id FROM events) AS already_loaded "
           "FROM quarantine q")
    if event is None:
        return sql
    return sql + " WHERE q.event = '" + event.replace("'", "''") + "'"


def preview(catalog: Catalog, rows: Iterable[Mapping[str, Any]],
            policy: PrivacyPolicy | None = None) -> ReplayReport:
    """What ``replay`` would do with the rows of ``preview_query``, changing nothing.

    Counts as the real replay does: each passing ``message_id`` once, as loaded, or as a
    duplicate when ``events`` already has it, or (with ``policy``) as withheld when its
    consent does not cover the purpose of the spec now accepting it.
    """
    listed = list(rows)
    decisions = judge_rows(catalog, listed)
    loaded_before = {str(r["message_id"]) for r in listed if r.get("already_loaded")}
    passing = _passing(decisions)
    protected = _protected(catalog, listed, passing, policy)
    withheld = {m for m, columns in protected.items() if columns is None}
    duplicates = sum(1 for m in passing if m in loaded_before and m not in withheld)
    failing = sum(1 for d in decisions if not d.ok)
    return ReplayReport(len(decisions), len(passing) - duplicates - len(withheld),
                        duplicates, failing, decisions, len(withheld))


def _passing(decisions: list[Decision]) -> dict[str, str | None]:
    """The catalog version accepting each passing ``message_id`` (retried copies once)."""
    passing: dict[str, str | None] = {}
    for decision in decisions:
        if decision.ok:
            passing.setdefault(decision.message_id, decision.schema_version)
    return passing


def _rows(cursor: Any, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    result = cursor.execute(sql, params or [])
    names = [d[0] for d in result.description or []]
    return [dict(zip(names, r, strict=True)) for r in result.fetchall()]


def _select(event: str | None) -> tuple[str, list[Any]]:
    sql = ("SELECT message_id, type, event, user_id, anonymous_id, previous_id, properties, "
           "traits, context, violations FROM quarantine")
    if event is None:
        return sql, []
    return sql + " WHERE event = ?", [event]


def replay(warehouse: Warehouse, catalog: Catalog, *, event: str | None = None,
           policy: PrivacyPolicy | None, dry_run: bool = False) -> ReplayReport:
    """Re-judge the quarantine (or one event's part of it) and load what now passes.

    The insert into ``events`` and the delete from ``quarantine`` commit together, so a
    crash leaves either both or neither. A ``message_id`` already in ``events`` is not
    inserted again (it is still removed from the quarantine, as a duplicate).
    ``dry_run`` only reads (``preview``); it works on a read-only warehouse.

    ``policy`` is required, so that no caller loads the quarantine's values unprotected
    by forgetting it: ``PrivacyPolicy.from_config(...).with_catalog(catalog)`` as ``nerve
    serve`` builds it (None loads the rows as the quarantine holds them, for tests and
    quarantines written by a collector with the same policy and catalog).

    With ``policy`` (the workspace's ``[privacy]``), each event loaded goes through the
    collector's own privacy step (``nerve.pipeline.Guard.message``) under the spec that
    now accepts it, so it is stored as the same message sent now would be: its
    properties or traits by that spec's classes (an uncataloged event's values were
    stored as sent, but for names that look personal), ``context.traits`` by identify's,
    ``context.ip``, URLs and ids by the policy (which may have changed since it was
    collected). Values hashed already stay as they are. An event whose consent does not
    cover the new spec's purpose is not loaded: it leaves the quarantine as ``withheld``.
    """
    cursor = warehouse.cursor()
    try:
        if dry_run:
            return preview(catalog, _rows(cursor, preview_query(event)), policy)
        rows = _rows(cursor, *_select(event))
        decisions = judge_rows(catalog, rows)
        passing = _passing(decisions)
        failing = sum(1 for d in decisions if not d.ok)
        if not passing:
            return ReplayReport(len(decisions), 0, 0, failing, decisions)
        protected = _protected(catalog, rows, passing, policy)
        withheld = [m for m, columns in protected.items() if columns is None]
        ok = pa.table({
            "message_id": list(passing),
            "schema_version": pa.array(list(passing.values()), pa.string()),
            "nerve_store": pa.array([protected.get(m, ()) is not None for m in passing]),
            "nerve_protected": pa.array([m in protected for m in passing]),
            **{column: pa.array([(protected.get(m) or (None,) * len(_PROTECTED))[i]
                                 for m in passing], pa.string())
               for i, column in enumerate(_PROTECTED)}})
        cursor.register("nerve_replay_ok", ok)
        # the privacy step's columns when it ran (a replay without a policy keeps the
        # quarantine's values), the quarantine's for the rest
        select = ", ".join(
            "r.schema_version" if c == "schema_version"
            else f'CASE WHEN r.nerve_protected THEN r."{c}"::JSON ELSE q."{c}" END'
            if c in _JSON_PROTECTED
            else f'CASE WHEN r.nerve_protected THEN r."{c}" ELSE q."{c}" END'
            if c in _PROTECTED
            else f'q."{c}"' for c in EVENT_COLUMNS)
        columns = ", ".join(f'"{c}"' for c in EVENT_COLUMNS)
        cursor.execute("BEGIN TRANSACTION")
        try:
            before = _count(cursor, "SELECT count(*) FROM events")
            cursor.execute(
                f"INSERT INTO events ({columns}, loaded_at) "
                f"SELECT {select}, current_timestamp FROM ("
                "  SELECT * FROM quarantine"
                "  WHERE message_id IN (SELECT message_id FROM nerve_replay_ok)"
                "  QUALIFY row_number() OVER (PARTITION BY message_id"
                "                             ORDER BY quarantined_at) = 1"
                ") q JOIN nerve_replay_ok r USING (message_id) "
                "WHERE r.nerve_store "
                "AND NOT EXISTS (SELECT 1 FROM events e WHERE e.message_id = q.message_id)")
            loaded = _count(cursor, "SELECT count(*) FROM events") - before
            cursor.execute("DELETE FROM quarantine WHERE message_id IN "
                           "(SELECT message_id FROM nerve_replay_ok)")
            cursor.execute("COMMIT")
        except BaseException:
            cursor.execute("ROLLBACK")
            raise
        finally:
            cursor.unregister("nerve_replay_ok")
        return ReplayReport(len(decisions), loaded, len(passing) - loaded - len(withheld),
                            failing, decisions, len(withheld))
    finally:
        cursor.close()


#: the columns the privacy step (``Guard.message``) decides for a replayed event
_PROTECTED = ("context", "properties", "traits", "user_id", "previous_id")
_JSON_PROTECTED = ("context", "properties", "traits")


def _protected(catalog: Catalog, rows: Sequence[Mapping[str, Any]], passing: dict[str, str | None],
               policy: PrivacyPolicy | None) -> dict[str, tuple[str | None, ...] | None]:
    """``message_id`` -> the ``_PROTECTED`` columns of each passing event (JSON as text) as
    the collector's privacy step (``Guard.message``) stores the same message now, under
    the spec accepting it; None for an event its consent no longer lets be stored."""
    if policy is None:
        return {}
    guard = Guard(policy, catalog.get("identify") if "identify" in catalog else None, catalog)
    out: dict[str, tuple[str | None, ...] | None] = {}
    for row in rows:
        message_id = str(row["message_id"])
        if message_id not in passing or message_id in out:
            continue
        type_ = str(row.get("type") or "track")
        field = PAYLOAD_FIELD.get(type_)
        payload = None
        if field is not None:
            payload = _json(row.get(field))
            payload = payload if isinstance(payload, dict) else {}
        context = _json(row.get("context"))
        spec = None if field is None else catalog.get(
            str(row.get("event") or "") if type_ == "track" else type_, passing[message_id])
        done = guard.message(type_, context if isinstance(context, dict) else {}, payload,
                             spec, None, row.get("user_id"), row.get("previous_id"),
                             row.get("anonymous_id"))
        out[message_id] = None if done is None else (
            orjson.dumps(done.context).decode(), _text(done.properties), _text(done.traits),
            done.user_id, done.previous_id)
    return out


def _text(payload: dict[str, Any] | None) -> str | None:
    return None if payload is None else orjson.dumps(payload).decode()


def _count(cursor: Any, sql: str) -> int:
    row = cursor.execute(sql).fetchone()
    return int(row[0]) if row else 0
