"""The ingest benchmark's traffic: a shoe shop's catalog and realistic 100-event batches.

Shared by ``benchmarks/ingest.py`` (the load generator and the stage harness). About 4%
of the events are invalid or unplanned, as real traffic has; contexts are those of server,
mobile and browser SDKs.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import orjson

from nerve.workspace import init_workspace

__all__ = ["BATCH", "CATALOG", "PLACEHOLDER", "make_event", "make_template", "make_workspace"]

BATCH = 100
#: stands in a template's message ids for a per-request prefix (ids stay unique)
PLACEHOLDER = b"@@BATCH@@"

CATALOG = {
    "groups/product.yaml": """\
name: product
description: The product acted on.
properties:
  product_id: {type: string, required: true, pii: none, description: SKU}
  product_name: {type: string, pii: none}
  category: {type: string, enum: [sneakers, boots, sandals, socks], pii: none}
  price: {type: number, minimum: 0, pii: none}
  currency: {type: string, pattern: "^[A-Z]{3}$", pii: none}
""",
    "product_viewed.yaml": """\
name: product_viewed
description: A shopper opens a product page.
owner: growth
purpose: analytics
version: 1
retention: 400d
include: [product]
properties:
  position: {type: integer, minimum: 0, pii: none}
  list_id: {type: string, pii: none}
""",
    "add_to_cart.yaml": """\
name: add_to_cart
description: A shopper adds a product to the cart.
owner: growth
purpose: analytics
version: 2
retention: 400d
include: [product]
properties:
  quantity: {type: integer, required: true, minimum: 1, maximum: 99, pii: none}
  cart_id: {type: string, required: true, pii: none}
""",
    "products_searched.yaml": """\
name: products_searched
description: A shopper searches the catalog.
owner: search
purpose: analytics
version: 1
retention: 400d
properties:
  query: {type: string, required: true, pii: none}
  results: {type: integer, minimum: 0, pii: none}
  filters: {type: array, items: {type: string}, pii: none}
""",
    "order_completed.yaml": """\
name: order_completed
description: A shopper pays for an order.
owner: commerce
purpose: analytics
version: 1
retention: 400d
properties:
  order_id: {type: string, required: true, pii: none}
  revenue: {type: number, required: true, minimum: 0, pii: none}
  currency: {type: string, required: true, pattern: "^[A-Z]{3}$", pii: none}
  payment_provider: {type: string, enum: [card, paypal, klarna, apple_pay], pii: none}
  coupon: {type: string, pii: none}
  items: {type: integer, minimum: 1, pii: none}
""",
    "identify.yaml": """\
name: identify
type: identify
description: Who the shopper is.
owner: growth
purpose: analytics
version: 1
retention: 400d
properties:
  age_group: {type: string, enum: ["18-24", "25-34", "35-44", "45-54", "55-64", "65+"], pii: none}
  country: {type: string, pattern: "^[A-Z]{2}$", pii: none}
  plan: {type: string, enum: [free, member, vip], pii: none}
""",
}

CATEGORIES = ["sneakers", "boots", "sandals", "socks"]
UA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_3) AppleWebKit/605.1.15 Safari/605.1.15"


def make_context(rng: random.Random, i: int, user: int) -> dict[str, Any]:
    """What real SDKs send: small from servers, device details from apps, page from web."""
    kind = i % 10
    if kind < 5:  # a backend with analytics-python: library and the client's IP
        return {"library": {"name": "analytics-python", "version": "2.4.0"},
                "ip": f"10.0.{user % 250}.{i % 250}"}
    if kind < 8:  # a mobile app
        ios = kind == 5
        return {"library": {"name": "analytics-ios" if ios else "analytics-android",
                            "version": "4.1.8"},
                "app": {"name": "Shop", "version": "5.2.1", "build": "5210"},
                "device": {"type": "ios" if ios else "android", "id": f"dev-{user}",
                           "model": "iPhone15,2" if ios else "Pixel 8"},
                "os": {"name": "iOS" if ios else "Android", "version": "17.4" if ios else "14"},
                "locale": "de-DE", "timezone": "Europe/Berlin", "network": {"wifi": True}}
    return {"library": {"name": "analytics.js", "version": "npm:next-1.84.3"},  # a browser
            "page": {"path": "/p/runner-2", "url": "https://shop.example/p/runner-2",
                     "referrer": "https://www.google.com/", "title": "Runner 2"},
            "userAgent": UA, "locale": "en-US", "campaign": {"source": "newsletter"}}


def make_event(rng: random.Random, i: int) -> dict[str, Any]:
    """One realistic event; a few are invalid or unplanned, as real traffic has."""
    user = rng.randrange(100_000)
    context = make_context(rng, i, user)
    product = {"product_id": f"sku-{rng.randrange(5000)}", "product_name": "Runner 2",
               "category": rng.choice(CATEGORIES), "price": round(rng.uniform(20, 200), 2),
               "currency": "EUR"}
    kind = rng.random()
    message: dict[str, Any] = {"userId": f"user-{user}", "anonymousId": f"anon-{user}",
                               "messageId": f"{PLACEHOLDER.decode()}-{i}",
                               "timestamp": "2026-11-28T10:00:00.000Z", "context": context,
                               "integrations": {}}
    if kind < 0.35:
        message.update(type="track", event="product_viewed",
                       properties={**product, "position": i % 20, "list_id": "home"})
    elif kind < 0.55:
        message.update(type="track", event="products_searched",
                       properties={"query": "running shoes", "results": 42,
                                   "filters": ["size:42", "color:black"]})
    elif kind < 0.75:
        message.update(type="track", event="add_to_cart",
                       properties={**product, "quantity": 1, "cart_id": f"cart-{user}"})
    elif kind < 0.83:
        message.update(type="track", event="order_completed",
                       properties={"order_id": f"o-{i}", "revenue": 129.9, "currency": "EUR",
                                   "payment_provider": "card", "items": 2})
    elif kind < 0.88:
        message.update(type="identify", traits={"age_group": "65+", "country": "DE",
                                                "plan": "member"})
    elif kind < 0.96:
        message.update(type="page", name="Product", properties={"path": "/p/runner-2",
                                                                 "url": "https://shop/p"})
    elif kind < 0.98:  # a wrong type: quarantined
        message.update(type="track", event="add_to_cart",
                       properties={**product, "quantity": "1", "cart_id": f"cart-{user}"})
    else:  # not in the catalog: quarantined
        message.update(type="track", event="Wishlist Opened", properties={"source": "menu"})
    return message


def make_template(seed: int, size: int = BATCH) -> bytes:
    """A batch body of ``size`` events whose message ids carry a placeholder for a
    per-batch prefix."""
    rng = random.Random(seed)
    body = {"batch": [make_event(rng, i) for i in range(size)],
            "sentAt": "2026-11-28T10:00:01.000Z"}
    return orjson.dumps(body)


def make_workspace(root: Path, warehouse_threads: int | None = None) -> str:
    """A workspace with the shop's catalog at ``root``; the write key of its server source.

    ``warehouse_threads``: nerve.toml's ``[warehouse] threads`` (None: DuckDB's default).
    """
    ws = init_workspace(root, "bench")
    if warehouse_threads:
        # nerve.toml's [warehouse] threads (docs/storage.md): DuckDB's worker threads
        toml = root / "nerve.toml"
        toml.write_text(toml.read_text().replace(
            "[warehouse]\n", f"[warehouse]\nthreads = {warehouse_threads}\n", 1))
    for rel, text in CATALOG.items():
        path = root / "events" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return next(s.write_key for s in ws.config.sources if s.name == "server")
