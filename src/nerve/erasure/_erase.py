"""Delete a user's rows, or rows past their retention, and keep a ledger of what went."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from nerve._cpu import yield_cpu
from nerve._files import fsync_dir
from nerve.audit import expire_audit
from nerve.catalog import Catalog, parse_retention
from nerve.errors import InternalError, PayloadError
from nerve.pipeline import HASH_PREFIX, PrivacyPolicy, pseudonymise
from nerve.warehouse import TABLES
from nerve.workspace import Workspace

__all__ = ["ERASURES_TABLE", "Erasure", "RetentionJob", "compact", "expire", "expire_rows",
           "forget", "forget_users", "retention_enforced", "uncataloged_retention"]

log = logging.getLogger("nerve.erasure")

#: one row per forget or expire: when (erased_at), what kind, rows deleted, and counts (never an id)
ERASURES_TABLE = "erasures"
_TABLES = ("events", "quarantine")
#: how often ``nerve serve`` enforces retention, and how long after start it first does
EXPIRE_EVERY = timedelta(days=1)
EXPIRE_FIRST_DELAY = timedelta(minutes=1)
#: after a failed run (a full disk, a locked file) the job tries again this soon, not a day
#: later: the rows past their retention stay, and the failing alert fires, until a run
#: succeeds
EXPIRE_RETRY_AFTER = timedelta(hours=1)
#: how many alias merges away from a forgotten user ``forget`` follows (a longer chain is
#: refused: nothing is deleted)
ALIAS_HOPS = 16


@dataclass
class Erasure:
    """What one ``forget`` or ``expire`` deleted (or would delete, with ``dry_run``)."""

    kind: str
    at: datetime
    #: rows deleted, by table (``events``, ``quarantine``)
    rows: dict[str, int] = field(default_factory=dict)
    #: forget: how many ids of each kind; expire: per rule, its retention and rows
    detail: dict[str, Any] = field(default_factory=dict)
    dry_run: bool = False
    #: expire: audit log files deleted (``[privacy] audit_retention``)
    audit_files: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "at": self.at.isoformat(), "rows": self.rows,
                "detail": self.detail, "dry_run": self.dry_run,
                "audit_files": self.audit_files}


def _ensure_ledger(cursor: Any) -> None:
    """The ``erasures`` table (``nerve.warehouse.TABLES``), for a warehouse whose tables
    were made before it was one of them."""
    columns = ", ".join(f"{name} {kind}" for name, kind in TABLES[ERASURES_TABLE])
    cursor.execute(f"CREATE TABLE IF NOT EXISTS {ERASURES_TABLE} ({columns})")


def _record(cursor: Any, erasure: Erasure) -> None:
    cursor.execute(f"INSERT INTO {ERASURES_TABLE} VALUES (?, ?, ?, ?, ?)",
                   [erasure.at, erasure.kind, erasure.rows.get("events", 0),
                    erasure.rows.get("quarantine", 0), orjson.dumps(erasure.detail).decode()])


def _in_one_transaction(cursor: Any, statements: Iterable[tuple[str, Any]]) -> list[int]:
    """Run deletes in one transaction; the rows each one deleted."""
    counts = []
    cursor.execute("BEGIN TRANSACTION")
    try:
        for sql, params in statements:
            counts.append(int(cursor.execute(sql, params).fetchone()[0]))
    except BaseException:
        cursor.execute("ROLLBACK")
        raise
    return counts


def _checkpoint(cursor: Any) -> None:
    """Write the deletes into the database file, so its write-ahead log keeps no copy of
    the deleted rows; best effort (DuckDB refuses while another transaction writes)."""
    try:
        cursor.execute("CHECKPOINT")
    except Exception as exc:  # noqa: BLE001 - the deletes are committed either way
        log.info("erasure: no checkpoint now (%s); DuckDB makes one within its threshold",
                 str(exc).splitlines()[0])


# ---------------------------------------------------------------------------- forget


def _forms(ids: Iterable[str], secret: bytes) -> list[str]:
    """Each id as it may be stored: as sent, and as the keyed hash that ``[privacy]
    user_id = "hash"`` stores. Both, whatever the policy is now: rows stored before the
    policy changed hold the other form."""
    return sorted({form for i in ids for form in (i, pseudonymise(i, secret))})


def _ids(values: Iterable[Any], what: str) -> list[str]:
    found = []
    for value in values:
        if not isinstance(value, str) or not value.strip():
            raise PayloadError(f"{what}: expected non-empty strings, got {value!r}",
                               code="invalid_field")
        found.append(value)
    return found


def _found(cursor: Any, column: str, where: str, params: list[Any]) -> set[str]:
    """The distinct non-null values of ``column`` on the rows of both tables matching."""
    return {row[0] for table in _TABLES for row in cursor.execute(
        f"SELECT DISTINCT {column} FROM {table} WHERE {column} IS NOT NULL AND {where}",
        params).fetchall()}


def _aliased(cursor: Any, users: list[str], secret: bytes) -> set[str]:
    """The ids merged into ``users`` by ``alias`` calls (their ``previous_id``), and the
    ids merged into those, as stored; up to ``ALIAS_HOPS`` merges away."""
    def earlier(frontier: list[str], seen: set[str]) -> set[str]:
        merged = _found(cursor, "previous_id", "type = 'alias' AND user_id IN "
                        "(SELECT unnest(?::VARCHAR[]))", [frontier]) - seen
        hashed = {m for m in merged if m.startswith(HASH_PREFIX)}
        return merged | (_unhashed(cursor, hashed, secret) - seen if hashed else set())

    return _follow(users, earlier, secret)


def _newer(cursor: Any, users: list[str], secret: bytes) -> set[str]:
    """The ids ``users`` were merged into by ``alias`` calls from them (a login changed:
    an alias from the old id to the new), and the ids those were merged into, as stored;
    up to ``ALIAS_HOPS`` merges away. Followed from user ids only: an alias from a device
    names whoever signed in on it, who may be someone else."""
    def later(frontier: list[str], seen: set[str]) -> set[str]:
        return _found(cursor, "user_id", "type = 'alias' AND previous_id IN "
                      "(SELECT unnest(?::VARCHAR[]))", [frontier]) - seen

    return _follow(users, later, secret)


def _follow(users: list[str], step: Callable[[list[str], set[str]], set[str]],
            secret: bytes) -> set[str]:
    """Every id ``step`` reaches from ``users``, one merge at a time (``step(frontier,
    seen)``: the ids one merge from ``frontier`` not in ``seen``), up to ``ALIAS_HOPS``
    merges; a longer chain is refused."""
    found: set[str] = set()
    seen = set(users)
    frontier = users
    for hop in range(ALIAS_HOPS + 1):
        merged = step(frontier, seen)
        if not merged:
            return found
        if hop == ALIAS_HOPS:
            break
        found |= merged
        frontier = [f for f in _forms(merged, secret) if f not in seen]
        seen.update(frontier)
    raise _chain_too_long()


def _chain_too_long() -> PayloadError:
    return PayloadError(
        f"the alias calls linking these users to other ids go on for more than "
        f"{ALIAS_HOPS} merges (alias from an id, to an id that was aliased from another, "
        "...): nothing was deleted. Look at the chain with `nerve sql \"SELECT user_id, "
        "previous_id FROM events WHERE type = 'alias'\"` and name ids further along it "
        "as well (--user-id)", code="alias_chain_too_long")


def _unhashed(cursor: Any, hashes: set[str], secret: bytes) -> set[str]:
    """The ids stored as sent whose keyed hash is one of ``hashes``.

    Under ``[privacy] user_id = "hash"`` an alias's ``previous_id`` is stored hashed, while
    the device it may name keeps its anonymous id as sent, and rows stored before the
    policy changed keep their user id as sent. A keyed hash cannot be reversed: every
    distinct user id (and anonymous id of a row without one) is hashed to find them.
    """
    found: set[str] = set()
    for table in _TABLES:
        result = cursor.execute(f"SELECT DISTINCT coalesce(user_id, anonymous_id) FROM {table}")
        while chunk := result.fetchmany(100_000):
            found.update(v for (v,) in chunk
                         if v is not None and pseudonymise(v, secret) in hashes)
    return found


def _not_found(cursor: Any, ids: list[str], secret: bytes) -> int:
    """How many of ``ids`` no row of either table holds, as sent or as its keyed hash, as
    a user id, an anonymous id or an alias's previous id: most often a misspelt id."""
    if not ids:
        return 0
    forms = _forms(ids, secret)
    held: set[str] = set()
    for column in ("user_id", "anonymous_id", "previous_id"):
        held |= _found(cursor, column, f"{column} IN (SELECT unnest(?::VARCHAR[]))", [forms])
    return sum(1 for i in set(ids) if i not in held and pseudonymise(i, secret) not in held)


def forget(cursor: Any, policy: PrivacyPolicy, *, user_ids: Iterable[Any] = (),
           anonymous_ids: Iterable[Any] = (), now: datetime | None = None,
           dry_run: bool = False) -> Erasure:
    """Delete every row of these users from ``events`` and ``quarantine``, in one
    transaction, and record the forget (counts only) in ``erasures``.

    ``user_ids`` are the ids the product sent. An ``alias`` of one of them from an
    earlier id (``previous_id``: an old login, a device) says that id is the same person:
    it is forgotten too, as are the ids aliased into it; so is a later id one of them was
    aliased to (a changed login), and the ids aliased into that. A row goes when its
    ``user_id`` is one of these; or its ``previous_id`` is one named here; or its
    ``anonymous_id`` is one given in ``anonymous_ids`` (every row of that device). The
    devices found on the users' rows (used before signing in) and the ids linked by an
    alias go only where a row has no user id: a device shared with someone else keeps
    that person's rows. Each id is looked for as sent and as its keyed hash, so rows
    stored under either ``[privacy] user_id`` policy are found. The caller holds the
    loader's lock and has drained the log first, so no row received before the call is
    still on its way to the warehouse. With ``dry_run`` nothing is deleted: the counts
    say what would be.
    """
    secret = policy.secret
    users = _ids(user_ids, "user_ids")
    given = _ids(anonymous_ids, "anonymous_ids")
    if not users and not given:
        raise PayloadError("name at least one user id or anonymous id to forget",
                           code="missing_field")
    _ensure_ledger(cursor)
    newer = _newer(cursor, _forms(users, secret), secret)
    aliased = newer | _aliased(cursor, _forms(set(users) | newer, secret), secret)
    theirs = _forms(set(users) | aliased, secret)
    devices = _found(cursor, "anonymous_id", "user_id IN (SELECT unnest(?::VARCHAR[]))",
                     [theirs]) - set(given)
    where = ("user_id IN (SELECT unnest($theirs::VARCHAR[])) "
             "OR previous_id IN (SELECT unnest($named::VARCHAR[])) "
             "OR anonymous_id IN (SELECT unnest($given::VARCHAR[])) "
             "OR (user_id IS NULL AND anonymous_id IN (SELECT unnest($linked::VARCHAR[])))")
    params = {"theirs": theirs, "named": _forms(users + given, secret),
              "given": _forms(given, secret), "linked": _forms(devices | aliased, secret)}
    erasure = Erasure("forget", now or datetime.now(UTC), dry_run=dry_run, detail={
        "user_ids": len(users), "anonymous_ids": len(given),
        "linked_anonymous_ids": len(devices), "aliased_ids": len(aliased),
        "ids_not_found": _not_found(cursor, users + given, secret)})
    verb = "SELECT count(*) FROM" if dry_run else "DELETE FROM"
    counts = _in_one_transaction(cursor, [(f"{verb} {t} WHERE {where}", params)
                                          for t in _TABLES])
    erasure.rows = dict(zip(_TABLES, counts, strict=True))
    if dry_run:
        cursor.execute("ROLLBACK")
        return erasure
    _record(cursor, erasure)
    cursor.execute("COMMIT")
    _checkpoint(cursor)
    log.info("forgot %d user ids (and %d linked by alias), %d anonymous ids (and %d found "
             "on their rows): deleted %d rows from events, %d from the quarantine",
             len(users), len(aliased), len(given), len(devices), erasure.rows["events"],
             erasure.rows["quarantine"], extra={"erasure": erasure.as_dict()})
    return erasure


# ---------------------------------------------------------------------------- expire


def uncataloged_retention(section: dict[str, Any], key: str = "uncataloged_retention"
                          ) -> int | None:
    """Days to keep rows of events the catalog does not describe: ``[privacy]
    uncataloged_retention`` (default forever: nothing the catalog does not describe is
    deleted unless the workspace says so). ``key="audit_retention"``: the same for the
    audit log's files. The workspace checked the value's form when it loaded."""
    return parse_retention(section.get(key, "forever"))


def _rules(catalog: Catalog) -> list[tuple[str, str, str, int]]:
    """(label, SQL condition, its parameter, days) per cataloged event with a retention.

    An event's latest version sets its retention. A track event matches by name; an
    identify, page, screen or group spec matches the calls of its type.
    """
    rules = []
    for name in catalog.names():
        spec = catalog.get(name)
        if spec is None or spec.retention_days is None:
            continue
        if spec.type == "track":
            rules.append((name, "type = 'track' AND event = ?", name, spec.retention_days))
        else:
            rules.append((name, "type = ? AND event IS NULL", spec.type,
                          spec.retention_days))
    return rules


#: rows of events (or call types) the catalog does not describe, with ``$known`` its names
_UNCATALOGED = ("NOT (type = 'track' AND event IN (SELECT unnest($known::VARCHAR[]))) "
                "AND NOT (type <> 'track' AND type IN (SELECT unnest($known::VARCHAR[])))")


def expire(cursor: Any, catalog: Catalog, *, uncataloged_days: int | None = None,
           now: datetime | None = None, dry_run: bool = False) -> Erasure:
    """Delete rows whose ``timestamp`` is older than their event's retention.

    Applies to ``events`` and to the quarantine's rows of cataloged events. Rows of
    events the catalog does not describe follow ``uncataloged_days`` (None: kept): in
    the quarantine, unplanned events; in ``events``, those of an event removed from the
    catalog (a track event, or another call whose ``schema_version`` says a spec judged
    it; calls the catalog never described, such as ``alias``, are not its to expire).
    With ``dry_run`` nothing is deleted: the counts say what would be.
    """
    now = now or datetime.now(UTC)
    rules = _rules(catalog)
    verb = "SELECT count(*) FROM" if dry_run else "DELETE FROM"
    statements: list[tuple[str, Any]] = [
        (f"{verb} {table} WHERE {condition} AND timestamp < ?",
         [param, now - timedelta(days=days)])
        for _, condition, param, days in rules for table in _TABLES]
    if uncataloged_days is not None:
        params = {"known": catalog.names(), "cutoff": now - timedelta(days=uncataloged_days)}
        statements += [
            (f"{verb} events WHERE (type = 'track' OR schema_version IS NOT NULL) AND "
             f"{_UNCATALOGED} AND timestamp < $cutoff", params),
            (f"{verb} quarantine WHERE {_UNCATALOGED} AND timestamp < $cutoff", params)]
    counts = _in_one_transaction(cursor, statements)
    erasure = Erasure("expire", now, dry_run=dry_run)
    for i, (label, _, _, days) in enumerate(rules):
        found = {"retention_days": days, "events": counts[2 * i],
                 "quarantine": counts[2 * i + 1]}
        if found["events"] or found["quarantine"]:
            erasure.detail[label] = found
    if uncataloged_days is not None and any(counts[-2:]):
        erasure.detail["(uncataloged)"] = {"retention_days": uncataloged_days,
                                           "events": counts[-2], "quarantine": counts[-1]}
    erasure.rows = {t: sum(d[t] for d in erasure.detail.values()) for t in _TABLES}
    if dry_run:
        cursor.execute("ROLLBACK")
        return erasure
    _record(cursor, erasure)
    cursor.execute("COMMIT")
    if any(erasure.rows.values()):
        _checkpoint(cursor)
    log.info("retention: deleted the rows past their retention: %d from events, %d from "
             "the quarantine", erasure.rows["events"], erasure.rows["quarantine"],
             extra={"erasure": erasure.as_dict()})
    return erasure


# ---------------------------------------------------------------------------- compact


def compact(path: Path) -> tuple[int, int]:
    """Rewrite a DuckDB warehouse file without the space its deleted rows took.

    DuckDB marks deleted rows and reuses their blocks later; until then their bytes stay
    in the file. This copies every table and view into a new file (``COPY FROM
    DATABASE``) and puts it in the old one's place with an atomic rename, so a crash
    leaves either file whole. It needs the file to itself (no server running). Returns
    the file's size before and after.
    """
    import duckdb  # noqa: PLC0415 - a maintenance step

    before = path.stat().st_size
    fresh = path.with_name(path.name + ".compact")
    for leftover in (fresh, fresh.with_name(fresh.name + ".wal")):
        leftover.unlink(missing_ok=True)  # an earlier compact that did not finish
    con = duckdb.connect(str(path))
    try:
        con.execute("CHECKPOINT")  # everything in the file, nothing left in its WAL
        (name,) = con.execute("SELECT current_database()").fetchone()  # type: ignore[misc]
        literal = str(fresh).replace("'", "''")
        con.execute(f"ATTACH '{literal}' AS compacted")
        con.execute(f'COPY FROM DATABASE "{name}" TO compacted')
        con.execute("DETACH compacted")
    except BaseException:
        con.close()
        fresh.unlink(missing_ok=True)
        raise
    con.close()
    if path.with_name(path.name + ".wal").exists():
        fresh.unlink(missing_ok=True)
        raise InternalError(f"{path}: its write-ahead log is not empty after a checkpoint; "
                            "not compacted")
    with fresh.open("rb+") as f:
        os.fsync(f.fileno())
    os.replace(fresh, path)
    fsync_dir(path.parent)
    return before, path.stat().st_size


# ---------------------------------------------------------------------------- workspace


def forget_users(workspace: Workspace, loader: Any, *, user_ids: Iterable[Any] = (),
                 anonymous_ids: Iterable[Any] = (), dry_run: bool = False) -> Erasure:
    """``forget`` in a workspace: drain the log into the warehouse, then delete.

    ``loader`` is the workspace's ``nerve.loader.Loader`` (the server's, or one the CLI
    opened): the drain loads every row acknowledged before the call, so none of the
    user's rows is still in the log on its way to the warehouse once this returns.
    """
    policy = PrivacyPolicy.from_config(_privacy(workspace), workspace.secret())
    loader.load_once()
    with loader.exclusive() as cursor:
        return forget(cursor, policy, user_ids=user_ids, anonymous_ids=anonymous_ids,
                      dry_run=dry_run)


def expire_rows(workspace: Workspace, catalog: Catalog, loader: Any, *,
                dry_run: bool = False) -> Erasure:
    """``expire`` in a workspace, with its ``[privacy] uncataloged_retention``; then the
    audit log's files older than ``[privacy] audit_retention`` (default: kept).

    The log is drained first, as ``forget_users`` does: rows past their retention that
    were still in it are deleted too, and loaded segments leave the log.
    """
    section = _privacy(workspace)
    days = uncataloged_retention(section)
    audit_days = uncataloged_retention(section, "audit_retention")
    loader.load_once()
    with loader.exclusive() as cursor:
        erasure = expire(cursor, catalog, uncataloged_days=days, dry_run=dry_run)
    if audit_days is not None:
        erasure.audit_files = expire_audit(workspace, audit_days, erasure.at, dry_run=dry_run)
    return erasure


def retention_enforced(workspace: Workspace) -> bool:
    """Whether ``nerve serve`` runs the daily retention job: ``[privacy] enforce_retention``
    (default true; the workspace checked it is a boolean when it loaded)."""
    return bool(_privacy(workspace).get("enforce_retention", True))


def _privacy(workspace: Workspace) -> dict[str, Any]:
    section = workspace.config.raw.get("privacy", {})
    return section if isinstance(section, dict) else {}


class RetentionJob:
    """A daemon thread of ``nerve serve`` that enforces retention every ``every``."""

    def __init__(self, state: Any, every: timedelta = EXPIRE_EVERY,
                 first_delay: timedelta = EXPIRE_FIRST_DELAY, *, idle: bool = False,
                 retry_after: timedelta = EXPIRE_RETRY_AFTER) -> None:
        self.state = state
        self.every = every
        self.first_delay = first_delay
        #: the wait after a failed run (at most ``every``)
        self.retry_after = min(retry_after, every)
        #: run at idle priority (``nerve._cpu.yield_cpu``), as the loader does
        self.idle = idle
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last: Erasure | None = None
        #: why the latest scheduled run failed, and when; None once a run succeeds
        #: (``GET /v1/status`` and ``nerve status`` show it)
        self.last_error: str | None = None
        self.failed_at: datetime | None = None

    def start(self) -> RetentionJob:
        self._thread = threading.Thread(target=self._loop, name="nerve-retention",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run_once(self) -> Erasure:
        state = self.state
        self.last = expire_rows(state.workspace, state.catalog, state.loader)
        return self.last

    def _loop(self) -> None:
        if self.idle:
            yield_cpu()
        wait = self.first_delay
        while not self._stop.wait(wait.total_seconds()):
            try:
                self.run_once()
            except Exception as exc:  # a failed run is logged and retried soon
                self.last_error = str(exc).strip().splitlines()[0] if str(exc).strip() \
                    else type(exc).__name__
                self.failed_at = datetime.now(UTC)
                wait = self.retry_after
                log.exception("retention: enforcing failed; retrying in %s", _words(wait),
                              extra={"retry_in_seconds": wait.total_seconds()})
            else:
                self.last_error = self.failed_at = None
                wait = self.every


def _words(span: timedelta) -> str:
    """A span as people write it.

    >>> _words(timedelta(days=1)), _words(timedelta(hours=2)), _words(timedelta(seconds=0.5))
    ('1 day', '2 hours', '0.5 seconds')
    """
    seconds = span.total_seconds()
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return f"{seconds:g} seconds"
