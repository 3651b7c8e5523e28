"""Helpers shared by the server tests: a shop-like catalog, auth headers, warehouse reads,
a byte search of the workspace's files, clients that send batches until told to stop."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
import orjson

from nerve.log._frame import Frame, decode_batch, decode_schema, iter_frames
from nerve.workspace import Workspace

ORDER_COMPLETED = """\
name: order_completed
description: A customer completes an order.
owner: commerce
purpose: analytics
version: 1
retention: 400d
properties:
  order_id: {type: string, required: true, pii: none}
  revenue: {type: number, required: true, minimum: 0, pii: none}
  currency: {type: string, pattern: "^[A-Z]{3}$", pii: none}
"""

IDENTIFY = """\
name: identify
type: identify
description: Who the user is.
owner: growth
purpose: analytics
version: 1
retention: 400d
properties:
  plan: {type: string, enum: [free, pro], pii: none}
"""

EVENTS = {"order_completed.yaml": ORDER_COMPLETED, "identify.yaml": IDENTIFY}


def write_key(ws: Workspace, source: str = "server") -> str:
    return next(s.write_key for s in ws.config.sources if s.name == source)


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def rows(ws: Workspace, sql: str) -> list[dict[str, Any]]:
    """Rows of a query on the workspace's warehouse, JSON columns parsed (server stopped)."""
    from nerve.warehouse import Warehouse, result_json

    warehouse = Warehouse.for_workspace(ws, read_only=True)
    try:
        return list(result_json(warehouse.query(sql))["rows"])
    finally:
        warehouse.close()


def files_below(root: Path) -> list[Path]:
    """Every file below ``root``."""
    return [p for p in root.rglob("*") if p.is_file()]


def written_nowhere(ws: Workspace, raw: Iterable[str],
                    segments: dict[Path, bytes] | None = None
                    ) -> tuple[dict[Path, bytes], str]:
    """Assert that no value of ``raw`` is in any file below the workspace, in the log's
    ``segments`` read while the server ran (its final drain deletes them), or in any
    table's values (DuckDB compresses its columns: a byte search alone could miss one).
    Returns what was searched, the files' contents and the tables' values as text, for
    the caller to show that the search sees the data (server stopped)."""
    contents = {**(segments or {}), **{p: searchable(p) for p in files_below(ws.root)}}
    tables = [r["table_name"] for r in rows(ws, "SELECT table_name FROM "
                                                "information_schema.tables")]
    assert {"events", "quarantine"} <= set(tables)
    stored = repr([rows(ws, f'SELECT * FROM "{table}"') for table in tables])
    for value in raw:
        holders = [str(p.relative_to(ws.root)) for p, data in contents.items()
                   if value.encode() in data]
        assert holders == [], f"{value!r} was written raw to {holders}"
        assert value not in stored, f"{value!r} is in the warehouse"
    return contents, stored


def searchable(path: Path) -> bytes:
    """A file's bytes, and for a log segment its frames' decompressed payloads too: LZ4
    may store a repeated value as a back-reference, which a byte search would miss."""
    data = path.read_bytes()
    if path.suffix != ".seg":
        return data
    frames = [f for f in iter_frames(data) if isinstance(f, Frame)]
    schema = decode_schema(frames[0].payload)
    return data + b"".join(decode_batch(f, schema).serialize().to_pybytes()
                           for f in frames[1:])


def order(i: int, prefix: str = "m", **fields: Any) -> dict[str, Any]:
    return {"type": "track", "event": "order_completed", "userId": f"u{i % 5}",
            "messageId": f"{prefix}-{i}", "timestamp": "2026-11-28T10:00:00Z",
            "properties": {"order_id": f"o{i}", "revenue": i, "currency": "EUR"}, **fields}


#: the tests' requests go through one client: ``httpx.get()`` and friends build a client,
#: and with it a TLS context, per call (~50 ms of CPU, paid on every poll of a wait loop).
#: No keep-alive and no pool limit, so each request still opens its own connection.
HTTP = httpx.Client(limits=httpx.Limits(max_connections=None, max_keepalive_connections=0))


SENDERS = 3
BATCH = 100


def sender(url: str, auth: dict[str, str], name: str, stop: threading.Event,
           acked: list[str], failed: list[bytes]) -> None:
    """Send batches until told to stop or the server dies; sort them by the answer."""
    with httpx.Client(base_url=url, headers=auth, timeout=10) as http:
        n = 0
        while not stop.is_set():
            ids = [f"{name}-{n}-{i}" for i in range(BATCH)]
            body = orjson.dumps({"batch": [order(i, f"{name}-{n}") for i in range(BATCH)]})
            n += 1
            try:
                status = http.post("/v1/batch", content=body).status_code
            except httpx.HTTPError:
                status = 0
            if status == 200:
                acked.extend(ids)
            else:  # refused or cut off: the client keeps it and resends later
                failed.append(body)
                if status == 0:
                    return


class Senders:
    """``SENDERS`` client threads sending batches; returns once ``until_acked`` events
    were acknowledged (or 20 s passed)."""

    def __init__(self, url: str, auth: dict[str, str], prefix: str, until_acked: int) -> None:
        self.halt = threading.Event()
        self.acked: list[str] = []
        self.failed: list[bytes] = []
        self.threads = [threading.Thread(target=sender, args=(url, auth, f"{prefix}{k}",
                                                              self.halt, self.acked,
                                                              self.failed))
                        for k in range(SENDERS)]
        for thread in self.threads:
            thread.start()
        deadline = time.monotonic() + 20
        while len(self.acked) < until_acked and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop(self) -> tuple[list[str], list[bytes]]:
        """Stop sending: (acknowledged message ids, bodies a client must send again)."""
        self.halt.set()
        for thread in self.threads:
            thread.join()
        return self.acked, self.failed
