"""Fixtures for the semantic layer: a small shop catalog, test metrics, a layer builder."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from nerve.catalog import Catalog
from nerve.semantic import SemanticLayer

EVENTS = {
    "identify.yaml": """
name: identify
type: identify
properties:
  age: {type: integer}
  age_group: {type: string}
  country: {type: string}
  plan: {type: string}
""",
    "session_start.yaml": """
name: session_start
properties:
  session_id: {type: string, required: true}
  channel: {type: string}
""",
    "product_view.yaml": """
name: product_view
properties:
  session_id: {type: string}
  category: {type: string}
  price: {type: number}
""",
    "add_to_cart.yaml": """
name: add_to_cart
properties:
  session_id: {type: string}
  category: {type: string}
  price: {type: number}
  quantity: {type: integer}
""",
    "checkout_start.yaml": """
name: checkout_start
properties:
  session_id: {type: string}
""",
    "purchase_complete.yaml": """
name: purchase_complete
properties:
  session_id: {type: string}
  revenue: {type: number, required: true}
  currency: {type: string}
  item_count: {type: integer}
""",
}

METRICS = """
metrics:
  events:
    description: Every tracked event.
    measure: {agg: count, event: "*"}
  active_users:
    description: Distinct people with any event.
    synonyms: [actives]
    measure: {agg: count_distinct, event: "*"}
  orders:
    measure: {agg: count, event: purchase_complete}
  revenue:
    format: currency
    currency: EUR
    measure: {agg: sum, event: purchase_complete, of: revenue}
  eur_revenue:
    measure: {agg: sum, event: purchase_complete, of: revenue, filter: "currency = 'EUR'"}
  avg_order:
    measure: {agg: avg, event: purchase_complete, of: revenue}
  max_order:
    measure: {agg: max, event: purchase_complete, of: revenue}
  median_order:
    measure: {agg: percentile, percentile: 0.5, event: purchase_complete, of: revenue}
  sessions:
    measure: {agg: count_distinct, event: session_start, of: session_id}
  aov:
    type: ratio
    format: currency
    numerator: revenue
    denominator: orders
  cart_rate:
    type: ratio
    format: percent
    numerator: {agg: count_distinct, event: add_to_cart}
    denominator: {agg: count_distinct, event: product_view}
  revenue_wow:
    type: derived
    format: percent
    expr: (revenue - last_week) / last_week
    inputs:
      - revenue
      - {metric: revenue, offset: 1w, alias: last_week}
  revenue_per_user:
    type: derived
    expr: revenue / active_users
  wau:
    type: cumulative
    measure: {agg: count_distinct, event: "*"}
    window: 7d
  revenue_mtd:
    type: cumulative
    measure: {agg: sum, event: purchase_complete, of: revenue}
    grain_to_date: month
  revenue_all_time:
    type: cumulative
    measure: {agg: sum, event: purchase_complete, of: revenue}
  checkout_conversion:
    type: conversion
    format: percent
    base: {event: checkout_start}
    conversion: {event: purchase_complete}
    window: 1h
  checkout_conversions:
    type: conversion
    base: {event: checkout_start}
    conversion: {event: purchase_complete}
    window: 1h
    calculation: conversions
dimensions:
  platform: context.os.name
  age_group: user.age_group
  age: {expr: user.age, type: integer}
segments:
  seniors: user.age >= 65
  germans: {where: "user.country = 'DE'", description: Shoppers in Germany}
"""


def ts(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


@pytest.fixture
def shop_dir(tmp_path: Path) -> Path:
    events = tmp_path / "events"
    events.mkdir()
    for name, text in EVENTS.items():
        (events / name).write_text(text.lstrip(), encoding="utf-8")
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    (metrics / "shop.yaml").write_text(METRICS.lstrip(), encoding="utf-8")
    return tmp_path


@pytest.fixture
def make_layer(shop_dir: Path) -> Callable[..., SemanticLayer]:
    def make(timezone: str = "UTC", extra: str | None = None) -> SemanticLayer:
        if extra is not None:
            (shop_dir / "metrics" / "extra.yaml").write_text(extra, encoding="utf-8")
        catalog = Catalog.load(shop_dir / "events")
        return SemanticLayer.from_folder(shop_dir / "metrics", catalog, timezone=timezone)

    return make


def track(event: str, when: datetime, user: str | None, **props: Any) -> dict[str, Any]:
    context = props.pop("context", None)
    row: dict[str, Any] = {"event": event, "timestamp": when, "user_id": user,
                           "properties": props}
    if context is not None:
        row["context"] = context
    return row


def identify(when: datetime, user: str, **traits: Any) -> dict[str, Any]:
    return {"type": "identify", "timestamp": when, "user_id": user, "traits": traits}
