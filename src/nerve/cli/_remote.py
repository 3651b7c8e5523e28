"""One way for every command to reach the data: through `nerve serve` when it runs.

DuckDB lets one process hold a database file. While ``nerve serve`` runs it names itself
in ``.nerve/server.json`` (url, pid, admin token) and commands send their request to its
HTTP API; otherwise they open the warehouse file read-only themselves.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson

from nerve.audit import local_read
from nerve.errors import (
    InternalError,
    QueryError,
    TransientError,
    UserError,
    WarehouseLockedError,
)
from nerve.workspace import Workspace

__all__ = ["answer", "call", "post", "running_server", "wait_for_server"]

SERVER_FILE = "server.json"
#: seconds to wait for a starting nerve serve, which holds the warehouse, to name itself
SERVER_WAIT = 30.0


def running_server(ws: Workspace) -> dict[str, Any] | None:
    """The live server of ``ws`` (url, pid, admin_token), or None."""
    path = ws.data_dir / SERVER_FILE
    try:
        info = orjson.loads(path.read_bytes())
    except (FileNotFoundError, orjson.JSONDecodeError):
        return None  # no server, or a half-written file
    if not isinstance(info, dict) or not isinstance(info.get("url"), str):
        return None
    pid = info.get("pid")
    if isinstance(pid, int) and not _alive(pid):
        return None
    return info


def wait_for_server(ws: Workspace, holder: int | None, timeout: float = SERVER_WAIT
                    ) -> dict[str, Any] | None:
    """The server of ``ws`` once it has written server.json, when ``holder`` (the process
    holding the warehouse's lock) is a live ``nerve serve`` that has not yet: it opens the
    warehouse a moment before it names itself. None for any other holder, or after
    ``timeout`` seconds (a server stopping, draining its log, no longer names itself).
    """
    if holder is None or not _is_nerve_serve(holder):
        return None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(holder):
        server = running_server(ws)
        if server is not None:
            return server
        time.sleep(0.1)
    return None


def _is_nerve_serve(pid: int) -> bool:
    """Whether process ``pid`` runs ``nerve serve`` (its command line, on Linux)."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    named = any(arg == b"nerve" or arg.endswith((b"/nerve", b".nerve")) for arg in args)
    return named and b"serve" in args


def _note_stale_settings(ws: Workspace, server: dict[str, Any]) -> None:
    """Say on stderr when nerve.toml changed after the server started: it answers with
    the settings it started with (``[privacy]`` retention for ``nerve expire``...), which
    otherwise differed silently from what the same command does without a server."""
    try:
        edited = (ws.root / "nerve.toml").stat().st_mtime
        started = (ws.data_dir / SERVER_FILE).stat().st_mtime
    except OSError:
        return
    if edited > started:
        print(f"note: nerve.toml changed after nerve serve (pid {server.get('pid')}) "
              "started; it answers with the settings it started with: restart it to "
              "apply the edit", file=sys.stderr)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def call(server: dict[str, Any], method: str, path: str, body: Any = None, *,
         timeout: float = 600, masked: bool = False, token: str | None = None) -> Any:
    """One API call to the running server, with its admin token (or a reader's
    ``token``); its JSON answer, errors by status.

    Raises httpx.ConnectError when nothing listens (the server died since it wrote
    server.json), so the caller can fall back to the file.
    """
    url = str(server["url"]).rstrip("/") + path
    headers = {"Authorization": f"Bearer {token or server.get('admin_token', '')}"}
    if masked:  # only agents ask for it, and they load the server's modules anyway
        from nerve.server._readers import MASKED_HEADER  # noqa: PLC0415

        headers[MASKED_HEADER] = "masked"
    try:
        response = httpx.request(method, url, json=body, headers=headers, timeout=timeout)
    except httpx.ConnectError:
        raise
    except httpx.HTTPError as exc:
        raise TransientError(f"{url}: the server did not answer ({exc})") from exc
    try:
        answer_body = response.json()
    except ValueError:
        answer_body = None
    if response.status_code == 200 and answer_body is not None:
        return answer_body
    message = answer_body.get("message") if isinstance(answer_body, dict) else None
    message = message or response.text[:500] or f"HTTP {response.status_code}"
    if response.status_code in (401, 403) and token:
        raise UserError(f"{url}: nerve serve refused this reader's token ({message}): it "
                        "reads the [[readers]] tokens of nerve.toml when it starts; start it "
                        "with the same token variables as nerve mcp")
    if response.status_code in (401, 403):
        raise UserError(f"{url}: the server refused the admin token ({message}); "
                        "is .nerve/server.json from another server?")
    if response.status_code in (429, 503):
        raise TransientError(f"{url}: {message}")
    if 400 <= response.status_code < 500:
        raise QueryError(message)
    raise InternalError(f"{url}: HTTP {response.status_code}: {message}")


def post(server: dict[str, Any], path: str, body: dict[str, Any], *,
         timeout: float = 600, masked: bool = False, token: str | None = None
         ) -> dict[str, Any]:
    """POST ``body`` and expect a JSON object back."""
    found = call(server, "POST", path, body, timeout=timeout, masked=masked, token=token)
    if not isinstance(found, dict):
        raise InternalError(f"{server['url']}{path}: expected a JSON object")
    return found


def answer(ws: Workspace, path: str, body: dict[str, Any],
           local: Callable[[Any], dict[str, Any]], *, write: bool = False,
           masked: bool = False, reader: tuple[str, str] | None = None,
           client: str | None = None) -> dict[str, Any]:
    """The server's answer to ``body`` at ``path``, else ``local(warehouse)`` on the file
    (opened read-only, or for writing with ``write``: ``nerve forget``, ``nerve expire``).
    ``masked``: with personal values masked, as a reader sees them (docs/privacy.md).
    ``reader``: (name, token) of the reader asking (``nerve mcp`` over HTTP): the server
    gets their token instead of its admin token, and a read of the file is audited as theirs,
    from ``client`` (the agent's address; through the server, the server records the
    address that reached it).
    """
    server = running_server(ws)
    if server is not None:
        _note_stale_settings(ws, server)
        try:
            return post(server, path, body, masked=masked,
                        token=reader[1] if reader else None)
        except httpx.ConnectError:
            pass  # the server died since it wrote server.json: open the file ourselves
    try:
        return _local_answer(ws, path, body, local, write=write, masked=masked, reader=reader,
                             client=client)
    except WarehouseLockedError as exc:
        # a nerve serve that has opened the warehouse but not yet written server.json
        # (it starts): wait for it to name itself instead of failing
        server = wait_for_server(ws, exc.pid)
        if server is None:
            raise
        return post(server, path, body, masked=masked, token=reader[1] if reader else None)


def _local_answer(ws: Workspace, path: str, body: dict[str, Any],
                  local: Callable[[Any], dict[str, Any]], *, write: bool, masked: bool,
                  reader: tuple[str, str] | None, client: str | None) -> dict[str, Any]:
    """``local(warehouse)`` on the warehouse file, the read audited as the caller's."""
    from nerve.warehouse import Warehouse  # noqa: PLC0415 - DuckDB only when needed

    path_on_disk = Warehouse.file_of(ws.warehouse_url)
    if (path_on_disk is not None and not path_on_disk.exists()
            and path_on_disk.is_relative_to(ws.data_dir)):
        # a fresh workspace: create the empty tables. A file named elsewhere that is not
        # there is a typo or a volume not mounted: creating it answered "0 events"
        Warehouse.for_workspace(ws).close()
    with (local_read(ws, path, body, masked=masked, who=reader[0] if reader else None,
                     via="mcp" if reader else "local", client=client),
          Warehouse.for_workspace(ws, read_only=not write) as warehouse):
        if masked:
            from nerve.catalog import Catalog  # noqa: PLC0415
            from nerve.warehouse import MaskedWarehouse  # noqa: PLC0415

            return local(MaskedWarehouse(warehouse, Catalog.load(ws.events_dir),
                                         ws.secret()))
        return local(warehouse)
