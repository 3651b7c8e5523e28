"""Helpers shared by the server tests: a shop-like catalog, auth headers, warehouse reads."""

from __future__ import annotations

import base64
from typing import Any

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


def order(i: int, prefix: str = "m", **fields: Any) -> dict[str, Any]:
    return {"type": "track", "event": "order_completed", "userId": f"u{i % 5}",
            "messageId": f"{prefix}-{i}", "timestamp": "2026-11-28T10:00:00Z",
            "properties": {"order_id": f"o{i}", "revenue": i, "currency": "EUR"}, **fields}
