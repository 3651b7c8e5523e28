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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import pyarrow as pa

from nerve.catalog import PAYLOAD_FIELD, Catalog
from nerve.collector import Validator
from nerve.pipeline import PrivacyPolicy, protect_payload
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
    sql = ("SELECT q.message_id, q.type, q.event, q.properties, q.traits, q.context, "
           "q.violations, q.message_id IN (SELECT message_id FROM events) AS already_loaded "
           "FROM quarantine q")
    if event is None:
        return sql
    return sql + " WHERE q.event = '" + event.replace("'", "''") + "'"


def preview(catalog: Catalog, rows: Iterable[Mapping[str, Any]]) -> ReplayReport:
    """What ``replay`` would do with the rows of ``preview_query``, changing nothing.

    Counts as the real replay does: each passing ``message_id`` once, as loaded, or as a
    duplicate when ``events`` already has it.
    """
    rows = list(rows)
    decisions = judge_rows(catalog, rows)
    loaded_before = {str(r["message_id"]) for r in rows if r.get("already_loaded")}
    passing = _passing(decisions)
    duplicates = sum(1 for message_id in passing if message_id in loaded_before)
    failing = sum(1 for d in decisions if not d.ok)
    return ReplayReport(len(decisions), len(passing) - duplicates, duplicates, failing,
                        decisions)


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
    sql = ("SELECT message_id, type, event, properties, traits, context, violations "
           "FROM quarantine")
    if event is None:
        return sql, []
    return sql + " WHERE event = ?", [event]


def replay(warehouse: Warehouse, catalog: Catalog, *, event: str | None = None,
           dry_run: bool = False, policy: PrivacyPolicy | None = None) -> ReplayReport:
    """Re-judge the quarantine (or one event's part of it) and load what now passes.

    The insert into ``events`` and the delete from ``quarantine`` commit together, so a
    crash leaves either both or neither. A ``message_id`` already in ``events`` is not
    inserted again (it is still removed from the quarantine, as a duplicate).
    ``dry_run`` only reads (``preview``); it works on a read-only warehouse.

    With ``policy`` (the workspace's ``[privacy]``), the properties or traits of each
    event loaded are protected by the classes of the spec that now accepts it, as the
    collector would have: an uncataloged event's values were stored as sent (but for
    names that look personal), and a property its new spec hashes or drops was loaded
    raw beside the collector's hashes. Values hashed already stay as they are.
    """
    cursor = warehouse.cursor()
    try:
        if dry_run:
            return preview(catalog, _rows(cursor, preview_query(event)))
        rows = _rows(cursor, *_select(event))
        decisions = judge_rows(catalog, rows)
        passing = _passing(decisions)
        failing = sum(1 for d in decisions if not d.ok)
        if not passing:
            return ReplayReport(len(decisions), 0, 0, failing, decisions)
        protected = _protected(catalog, rows, passing, policy)
        ok = pa.table({"message_id": list(passing),
                       "schema_version": pa.array(list(passing.values()), pa.string()),
                       **{field: pa.array([protected.get((m, field)) for m in passing],
                                          pa.string()) for field in _PAYLOADS}})
        cursor.register("nerve_replay_ok", ok)
        select = ", ".join(
            "r.schema_version" if c == "schema_version"
            else f'coalesce(r."{c}"::JSON, q."{c}")' if c in _PAYLOADS
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
                "WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.message_id = q.message_id)")
            loaded = _count(cursor, "SELECT count(*) FROM events") - before
            cursor.execute("DELETE FROM quarantine WHERE message_id IN "
                           "(SELECT message_id FROM nerve_replay_ok)")
            cursor.execute("COMMIT")
        except BaseException:
            cursor.execute("ROLLBACK")
            raise
        finally:
            cursor.unregister("nerve_replay_ok")
        return ReplayReport(len(decisions), loaded, len(passing) - loaded, failing, decisions)
    finally:
        cursor.close()


#: the columns a replay may protect again
_PAYLOADS = ("properties", "traits")


def _protected(catalog: Catalog, rows: list[dict[str, Any]], passing: dict[str, str | None],
               policy: PrivacyPolicy | None) -> dict[tuple[str, str], str]:
    """(``message_id``, column) -> the payload (JSON) of each passing event whose values
    ``policy`` changes under the spec accepting it: a track's, page's or screen's
    properties, an identify's or group's traits."""
    if policy is None:
        return {}
    changed: dict[tuple[str, str], str] = {}
    seen: set[str] = set()
    for row in rows:
        message_id = str(row["message_id"])
        if message_id not in passing or message_id in seen:
            continue
        seen.add(message_id)
        type_ = str(row.get("type") or "track")
        field = PAYLOAD_FIELD.get(type_, "properties")
        payload = _json(row.get(field))
        spec = catalog.get(str(row.get("event") or "") if type_ == "track" else type_,
                           passing[message_id])
        if isinstance(payload, dict) and spec is not None:
            new, n = protect_payload(payload, spec, policy)
            if n:
                changed[message_id, field] = orjson.dumps(new).decode()
    return changed


def _count(cursor: Any, sql: str) -> int:
    row = cursor.execute(sql).fetchone()
    return int(row[0]) if row else 0
