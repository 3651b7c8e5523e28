"""The audit log: one line per read of the warehouse, through the server or on the file.

Every read API call ``nerve serve`` answers (SQL, metrics, funnels, checks, the agent,
the MCP server's tools...) and every command that reads the warehouse file itself when
no server runs appends one JSON line to ``.nerve/audit/reads-<UTC date>.jsonl``: when,
how (``http`` or ``local``), who (the reader a token names, or the OS user), from where, what
(the API path and its request), the answer's status and how long it took. Lines are
appended with one ``write`` each (``O_APPEND``) and fsynced, so the server and a command
can share a file. ``nerve audit`` prints them (docs/privacy.md).

A request is kept whole, as sent (the server refuses a read request larger than
``MAX_REQUEST_BYTES``, so what it read is always in its record), except what would defeat
its purpose: ``forget`` requests keep how many ids they named, never the ids.
"""

from __future__ import annotations

import getpass
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from nerve.workspace import Workspace

__all__ = ["AUDIT_DIR", "MAX_REQUEST_BYTES", "Audit", "audit_dir", "expire_audit", "local_read",
           "os_user", "read_records", "record"]

log = logging.getLogger("nerve.audit")

AUDIT_DIR = "audit"
#: the largest request a record keeps whole: the server refuses a larger read request
#: (413), since a record cut short could hide what was read behind a long comment; a
#: larger one (a forget's ids, which are never kept) is recorded by its size only
MAX_REQUEST_BYTES = 1 << 20
_MAX_PARSED_BYTES = MAX_REQUEST_BYTES
#: requests whose ids must not outlive them: how many of each list (ids) are kept, and
#: the flags (plain values) as sent; anything else is withheld, the way it was sent too
#: (a single id instead of a list, an id under a misspelt field)
_REDACTED = {"/v1/admin/forget": (("user_ids", "anonymous_ids"), ("dry_run",))}


def audit_dir(workspace: Workspace) -> Path:
    return workspace.data_dir / AUDIT_DIR


def _request(action: str, request: Any) -> Any:
    """What the record keeps of a request: a JSON value, or a raw body (bytes) parsed."""
    if isinstance(request, bytes | bytearray):
        size = len(request)
        if size > _MAX_PARSED_BYTES:
            return {"bytes": size}
        try:
            request = orjson.loads(request) if request else None
        except orjson.JSONDecodeError:
            return {"unparsed_bytes": size}
    if action in _REDACTED:
        request = _redacted(request, *_REDACTED[action])
    text = orjson.dumps(request, default=str)
    if len(text) <= MAX_REQUEST_BYTES:
        return request
    if action in _REDACTED:  # never a cut of its text
        return {"bytes": len(text)}
    return {"truncated": text[:MAX_REQUEST_BYTES].decode(errors="ignore"), "bytes": len(text)}


def _redacted(request: Any, ids: tuple[str, ...], flags: tuple[str, ...]) -> Any:
    """A request that names people, as the record keeps it: each list of ids by its
    length, each flag if it is a boolean; any other value, and the fields the endpoint
    does not know (a misspelt field's value may be an id, and so may its name), withheld."""
    if not isinstance(request, dict):
        return None if request is None else {"withheld": type(request).__name__}
    kept: dict[str, Any] = {}
    for key, value in request.items():
        if key in ids:
            kept[key] = len(value) if isinstance(value, list) else "withheld"
        elif key in flags:
            kept[key] = value if isinstance(value, bool) else "withheld"
    others = len(set(request) - set(ids) - set(flags))
    if others:
        kept["other_fields"] = others
    return kept


@dataclass(frozen=True, slots=True)
class Audit:
    """Where records go: a workspace's audit folder."""

    folder: Path

    def record(self, *, via: str, who: str, action: str, request: Any, status: int | str,
               seconds: float, client: str | None = None, masked: bool = False) -> bool:
        """Append one record; False when it could not be written (logged, never raised:
        the server then answers the read with a 503 instead of its rows)."""
        now = datetime.now(UTC)
        line = orjson.dumps({
            "at": now.isoformat(timespec="milliseconds"), "via": via, "who": who,
            "client": client, "action": action, "request": _request(action, request),
            "masked": masked, "status": status, "ms": round(seconds * 1000, 1)},
            default=str) + b"\n"
        path = self.folder / f"reads-{now:%Y-%m-%d}.jsonl"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                end = os.fstat(fd).st_size
                if end and os.pread(fd, 1, end - 1) != b"\n":
                    line = b"\n" + line  # after a torn write: start a line of our own
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            log.error("audit: could not record a read of %s: %s", action, exc)
            return False
        return True


def record(workspace: Workspace, **fields: Any) -> None:
    """``Audit(audit_dir(workspace)).record(**fields)``."""
    Audit(audit_dir(workspace)).record(**fields)


@contextmanager
def local_read(workspace: Workspace, action: str, request: Any, *, masked: bool = False,
               who: str | None = None, via: str = "local", client: str | None = None
               ) -> Iterator[None]:
    """Record a command's own read of the warehouse file (no server), with its outcome
    (``masked``: it read the reader's view): as the OS user's, or as ``who``'s (a reader
    that ``nerve mcp`` authenticated, ``via="mcp"``, from the address ``client``)."""
    started = time.monotonic()
    status: int | str = "ok"
    try:
        yield
    except BaseException as exc:
        status = type(exc).__name__
        raise
    finally:
        record(workspace, via=via, who=who or os_user(), action=action, request=request,
               status=status, seconds=time.monotonic() - started, masked=masked,
               client=client)


def os_user() -> str:
    """The OS user a command's own reads are recorded as."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        return f"uid {os.getuid()}"


def read_records(workspace: Workspace, since: datetime | None = None) -> list[dict[str, Any]]:
    """Every record (oldest first), or those at or after ``since``."""
    folder = audit_dir(workspace)
    records: list[dict[str, Any]] = []
    for path in sorted(folder.glob("reads-*.jsonl")) if folder.is_dir() else []:
        if since is not None and path.stem[len("reads-"):] < f"{since:%Y-%m-%d}":
            continue
        for number, line in enumerate(path.read_bytes().splitlines(), 1):
            try:
                entry = orjson.loads(line)
            except orjson.JSONDecodeError:
                log.warning("%s:%d: not a JSON record (a torn write?); skipped", path, number)
                continue
            if not isinstance(entry, dict) or not isinstance(entry.get("at"), str):
                log.warning("%s:%d: not an audit record; skipped", path, number)
            elif since is None or datetime.fromisoformat(entry["at"]) >= since:
                records.append(entry)
    return records


def expire_audit(workspace: Workspace, days: int, now: datetime, *,
                 dry_run: bool = False) -> int:
    """Delete the audit log's daily files older than ``days`` (whole UTC days before
    ``now``); how many (with ``dry_run``, would be)."""
    folder = audit_dir(workspace)
    cutoff = f"reads-{(now - timedelta(days=days)):%Y-%m-%d}"
    old = [p for p in sorted(folder.glob("reads-*.jsonl")) if p.stem < cutoff] \
        if folder.is_dir() else []
    if not dry_run:
        for path in old:
            path.unlink(missing_ok=True)
    return len(old)
