"""Generated tracking code type-checks (mypy --strict, tsc --strict), catches typos, and
sends what the catalog accepts with context.event_version."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import warnings
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from nerve.catalog import Catalog
from nerve.catalog._codegen import generate_python, generate_typescript, python_name

FIXTURE = Path(__file__).parent / "fixtures" / "shop" / "events"
DEMO = Path(__file__).parents[2] / "src" / "nerve" / "demo" / "shop" / "events"
SRC = Path(__file__).parents[2] / "src"
TS_DIR = Path(__file__).parent / "ts"


def _catalogs() -> list[Any]:
    params = [pytest.param(FIXTURE, id="fixture")]
    if any(DEMO.glob("*.yaml")):
        params.append(pytest.param(DEMO, id="demo"))
    return params


class Recorder:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def track(self, event: str, properties: dict[str, Any], *, user_id: str | None = None,
              anonymous_id: str | None = None, context: dict[str, Any] | None = None) -> None:
        self.calls.append({"event": event, "properties": properties, "user_id": user_id,
                           "context": context})


def _import(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_python_functions_send_valid_events_with_their_version(tmp_path: Path) -> None:
    catalog = Catalog.load(FIXTURE)
    path = tmp_path / "tracking.py"
    path.write_text(generate_python(catalog))
    tracking = _import(path)
    client = Recorder()
    tracking.add_to_cart(client, quantity=2, product_id="p-1", currency="EUR", user_id="u1")
    tracking.order_completed(client, order_id="o-0000abcd", revenue=10.5, express=True,
                             context={"app": {"version": "1.2"}})
    first, second = client.calls
    assert first["properties"] == {"quantity": 2, "product_id": "p-1", "currency": "EUR"}
    assert first["context"] == {"event_version": "2.1.0"}
    assert first["user_id"] == "u1"
    assert second["context"] == {"app": {"version": "1.2"}, "event_version": "1.2.0"}
    for call in client.calls:
        spec = catalog.get(call["event"], call["context"]["event_version"])
        assert spec is not None
        assert catalog.violations(spec, call["properties"]) == []
    assert "products_searched" in tracking.__all__
    assert not hasattr(tracking, "identify")  # only track events get functions


GOOD = """\
from datetime import datetime, timezone
from nerve.sdk import Client
from tracking import add_to_cart, order_completed, products_searched, TrackClient

def send(client: TrackClient) -> None:
    add_to_cart(client, quantity=1, product_id="p-1", currency="USD")
    order_completed(client, order_id="o-1", revenue=3.0, placed_at=datetime.now(timezone.utc),
                    shipping={"country": "FR"})
    products_searched(client, query="red shoes", filters=["size:42"], sort="newest")
    add_to_cart(client, quantity=1, product_id="p-1", timestamp=datetime(2026, 3, 1),
                message_id="backfill-1")
    sent: str | None = add_to_cart(client, quantity=1, product_id="p-2")
    assert sent is None or sent.startswith("")


def with_sdk(client: Client) -> None:
    send(client)
"""

BAD = """\
from tracking import add_to_cart, products_searched, TrackClient


def send(client: TrackClient) -> None:
    add_to_cart(client, quantiy=1, product_id="p-1")
    products_searched(client, query="shoes", sort="cheapest")
    add_to_cart(client, quantity="2", product_id="p-1")
    add_to_cart(client, quantity=1, product_id="p-1", timestamp=1772355600)
"""


@pytest.mark.timeout(180)
def test_generated_python_passes_mypy_strict_and_typos_fail(tmp_path: Path) -> None:
    (tmp_path / "tracking.py").write_text(generate_python(Catalog.load(FIXTURE)))
    (tmp_path / "good.py").write_text(GOOD)
    (tmp_path / "bad.py").write_text(BAD)
    # nerve on sys.path, as an installed package is (not MYPYPATH, which needs no marker):
    # mypy reads it only because the package ships py.typed (PEP 561)
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    env.pop("MYPYPATH", None)
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental",
         "tracking.py", "good.py", "bad.py"],
        cwd=tmp_path, capture_output=True, text=True, env=env, check=False)
    out = result.stdout
    assert result.returncode == 1, out
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert errors, out
    assert all(line.startswith("bad.py:") for line in errors), out
    assert any("bad.py:5:" in e and 'Unexpected keyword argument "quantiy"' in e
               for e in errors), out
    assert any("bad.py:6:" in e and "cheapest" in e for e in errors), out
    assert any("bad.py:7:" in e and '"str"' in e for e in errors), out
    assert any("bad.py:8:" in e and '"timestamp"' in e for e in errors), out


def test_python_sends_naive_datetimes_as_utc(tmp_path: Path) -> None:
    # mypy accepts datetime.now(); RFC 3339 needs an offset, so naive means UTC (as nerve.sdk)
    catalog = Catalog.load(FIXTURE)
    tracking = _import(_write(tmp_path / "tracking.py", generate_python(catalog)))
    client = Recorder()
    tracking.order_completed(client, order_id="o-0000abcd", revenue=1.0,
                             placed_at=datetime(2026, 1, 1, 12))  # noqa: DTZ001
    paris = timezone(timedelta(hours=2))
    tracking.order_completed(client, order_id="o-0000abcd", revenue=1.0,
                             placed_at=datetime(2026, 1, 1, 12, tzinfo=paris))
    naive, aware = (call["properties"]["placed_at"] for call in client.calls)
    assert naive == "2026-01-01T12:00:00+00:00"
    assert aware == "2026-01-01T12:00:00+02:00"
    spec = catalog.get("order_completed")
    assert spec is not None
    for call in client.calls:
        assert catalog.violations(spec, call["properties"]) == []


NESTED_EVENT = """\
name: checkout_completed
description: The shopper completed the checkout.
owner: shop
purpose: analytics
version: 1.0.0
retention: 1y
properties:
  items:
    type: array
    required: true
    pii: none
    items:
      type: object
      properties:
        sku: {type: string, required: true, pii: none, description: Stock keeping unit.}
        qty: {type: integer, pii: none}
        added_at: {type: timestamp, pii: none}
  shipping:
    type: object
    pii: none
    properties:
      country: {type: string, required: true, pii: none}
      post code: {type: string, pii: none}
      address:
        type: object
        pii: none
        properties:
          street: {type: string, pii: none}
"""

NESTED_GOOD = """\
from datetime import datetime
from tracking import CheckoutCompletedItemsItem, TrackClient, checkout_completed


def send(client: TrackClient) -> None:
    item: CheckoutCompletedItemsItem = {"sku": "a", "added_at": datetime(2026, 1, 1)}
    checkout_completed(client, items=[item, {"sku": "b", "qty": 2}],
                       shipping={"country": "FR", "post code": "75001",
                                 "address": {"street": "rue"}})
"""

NESTED_BAD = """\
from tracking import TrackClient, checkout_completed


def send(client: TrackClient) -> None:
    checkout_completed(client, items=[{"skuu": "a"}])
    checkout_completed(client, items=[{"sku": 1}])
    checkout_completed(client, items=[], shipping={"county": "FR"})
"""


@pytest.mark.timeout(180)
def test_python_types_nested_objects_and_arrays_of_objects(tmp_path: Path) -> None:
    events = tmp_path / "events"
    events.mkdir()
    (events / "checkout_completed.yaml").write_text(NESTED_EVENT)
    catalog = Catalog.load(events)
    source = generate_python(catalog)
    (tmp_path / "tracking.py").write_text(source)
    (tmp_path / "good.py").write_text(NESTED_GOOD)
    (tmp_path / "bad.py").write_text(NESTED_BAD)
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "tracking.py",
         "good.py", "bad.py"], cwd=tmp_path, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(SRC)}, check=False)
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert all(line.startswith("bad.py:") for line in errors), result.stdout
    assert any("bad.py:5:" in e and '"skuu"' in e for e in errors), result.stdout
    assert any("bad.py:6:" in e and '"sku"' in e and '"int"' in e for e in errors), errors
    # mypy names the TypedDict rather than the key when the dict literal does not fit it
    assert any("bad.py:7:" in e and '"CheckoutCompletedShipping' in e for e in errors), errors
    # the typed values go out as the catalog wants them, nested datetimes included
    tracking = _import(tmp_path / "tracking.py")
    client = Recorder()
    tracking.checkout_completed(
        client, items=[{"sku": "a", "added_at": datetime(2026, 1, 1)}],  # noqa: DTZ001
        shipping={"country": "FR", "post code": "75001", "address": {"street": "rue"}})
    (call,) = client.calls
    assert call["properties"]["items"] == [{"sku": "a", "added_at": "2026-01-01T00:00:00+00:00"}]
    spec = catalog.get("checkout_completed")
    assert spec is not None
    assert catalog.violations(spec, call["properties"]) == []


@pytest.mark.parametrize("events", _catalogs())
def test_python_codegen_of_whole_catalogs_compiles(events: Path, tmp_path: Path) -> None:
    catalog = Catalog.load(events)
    source = generate_python(catalog)
    compile(source, "tracking.py", "exec")
    tracking = _import(_write(tmp_path / "tracking.py", source))
    for spec in catalog:
        if spec.type == "track":
            assert callable(getattr(tracking, python_name(spec.name)))


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


TS_GOOD = """\
import { addToCart, productsSearched, orderCompleted, AnalyticsLike } from "./tracking";

const calls: unknown[] = [];
const analytics: AnalyticsLike = { track: (...args: unknown[]) => calls.push(args) };
addToCart(analytics, { quantity: 1, product_id: "p-1", currency: "GBP" });
productsSearched(analytics, { query: "shoes", filters: ["size:42"] }, { context: { ip: "0" } });
orderCompleted(analytics, { order_id: "o-1", revenue: 2, placed_at: new Date(),
                            shipping: { country: "FR" } });
console.log(JSON.stringify(calls));
"""

TS_BAD = """\
import { addToCart, productsSearched, AnalyticsLike } from "./tracking";

declare const analytics: AnalyticsLike;
addToCart(analytics, { quantiy: 1, product_id: "p-1" });
productsSearched(analytics, { query: "shoes", sort: "cheapest" });
addToCart(analytics, { quantity: "2", product_id: "p-1" });
"""


TS_BROWSER = """\
import { AnalyticsBrowser } from "@segment/analytics-next";
import { addToCart } from "./tracking";

const analytics = AnalyticsBrowser.load({ writeKey: "KEY" });
addToCart(analytics, { quantity: 1, product_id: "p-1", currency: "EUR" });
"""


def _tsc() -> Path:
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed: TypeScript codegen needs tsc from npm")
    tsc = TS_DIR / "node_modules" / ".bin" / "tsc"
    if not tsc.exists() or not (TS_DIR / "node_modules" / "@segment").exists():
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"],
                       cwd=TS_DIR, check=True, capture_output=True, timeout=300)
    return tsc


@pytest.mark.node
@pytest.mark.timeout(300)
def test_generated_typescript_passes_tsc_strict_and_typos_fail(tmp_path: Path) -> None:
    tsc = _tsc()
    (tmp_path / "tracking.ts").write_text(generate_typescript(Catalog.load(FIXTURE)))
    (tmp_path / "good.ts").write_text(TS_GOOD)
    (tmp_path / "bad.ts").write_text(TS_BAD)
    # console comes from the dom lib: no @types/node needed
    options = ["--strict", "--target", "es2020", "--module", "commonjs", "--lib", "es2020,dom"]
    good = subprocess.run([str(tsc), *options, "--outDir", "out", "good.ts"],
                          cwd=tmp_path, capture_output=True, text=True, check=False)
    assert good.returncode == 0, good.stdout + good.stderr
    bad = subprocess.run([str(tsc), *options, "--noEmit", "bad.ts"], cwd=tmp_path,
                         capture_output=True, text=True, check=False)
    assert bad.returncode != 0
    errors = [line for line in bad.stdout.splitlines() if "error TS" in line]
    assert any(line.startswith("bad.ts(4,") and "quantiy" in line for line in errors), errors
    assert any(line.startswith("bad.ts(5,") and "cheapest" in line for line in errors), errors
    assert any(line.startswith("bad.ts(6,") and "string" in line for line in errors), errors
    # the real analytics.js (analytics-next) client fits the generated functions
    (tmp_path / "browser.ts").write_text(TS_BROWSER)
    (tmp_path / "node_modules").symlink_to(TS_DIR / "node_modules")
    browser = subprocess.run([str(tsc), *options, "--moduleResolution", "node", "--noEmit",
                              "--skipLibCheck", "browser.ts"], cwd=tmp_path,
                             capture_output=True, text=True, check=False)
    assert browser.returncode == 0, browser.stdout + browser.stderr
    if shutil.which("node"):
        run = subprocess.run(["node", "out/good.js"], cwd=tmp_path, capture_output=True,
                             text=True, check=True)
        calls = json.loads(run.stdout)
        assert calls[0][0] == "add_to_cart"
        assert calls[0][2] == {"context": {"event_version": "2.1.0"}}
        assert calls[1][2] == {"context": {"ip": "0", "event_version": "1.0.0"}}


def test_python_names_never_clash(tmp_path: Path) -> None:
    from nerve.catalog import EventSpec, PropertySpec, Version

    props = (PropertySpec("userId", "string"), PropertySpec("user_id", "string"),
             PropertySpec("context", "object"), PropertySpec("class", "integer"),
             PropertySpec("Order Total", "number", required=True))
    catalog = Catalog.from_specs([EventSpec("Add To Cart", Version(1), properties=props),
                                  EventSpec("add_to_cart", Version(1))])
    tracking = _import(_write(tmp_path / "clash.py", generate_python(catalog)))
    client = Recorder()
    tracking.add_to_cart(client, order_total=3.5, user_id_=" a", user_id_2="b",
                         context_={"x": 1}, class_=2, user_id="u9")
    tracking.add_to_cart_2(client)
    first, second = client.calls
    assert first["event"] == "Add To Cart"
    assert first["properties"] == {"Order Total": 3.5, "userId": " a", "user_id": "b",
                                   "context": {"x": 1}, "class": 2}
    assert first["user_id"] == "u9"
    assert second["event"] == "add_to_cart"


@pytest.mark.node
@pytest.mark.timeout(300)
def test_typescript_names_never_clash_or_take_reserved_words(tmp_path: Path) -> None:
    from nerve.catalog import EventSpec, PropertySpec, Version

    props = (PropertySpec("class", "integer"), PropertySpec("2nd-value", "string"))
    names = ["class", "Order Completed", "order_completed", "2fa_enabled", "import-done",
             "ünïcode_event", "withVersion"]
    catalog = Catalog.from_specs([EventSpec(n, Version(1), properties=props) for n in names])
    source = generate_typescript(catalog)
    (tmp_path / "tracking.ts").write_text(source)
    functions = re.findall(r"export function (\S+)\(", source)
    assert len(set(functions)) == len(names), functions
    assert "class_" in functions
    assert "class" not in functions
    result = subprocess.run([str(_tsc()), "--strict", "--target", "es2020", "--noEmit",
                             "tracking.ts"], cwd=tmp_path, capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_deprecated_event_keeps_its_function_marked_deprecated(tmp_path: Path) -> None:
    """Regenerated during the deprecation window, the function was gone: every app still
    sending the event stopped building. It stays, and says it is deprecated."""
    catalog = Catalog.load(FIXTURE)
    specs = [replace(s, status="deprecated") if s.name == "products_searched" else s
             for name in catalog.names() for s in catalog.versions(name)]
    deprecated = Catalog.from_specs(specs)
    tracking = _import(_write(tmp_path / "tracking.py", generate_python(deprecated)))
    client = Recorder()
    with pytest.warns(DeprecationWarning, match="products_searched is deprecated"):
        tracking.products_searched(client, query="boots")
    assert [c["event"] for c in client.calls] == ["products_searched"]
    assert "Deprecated:" in (tracking.products_searched.__doc__ or "")
    with warnings.catch_warnings():  # the others say nothing
        warnings.simplefilter("error")
        tracking.add_to_cart(client, quantity=1, product_id="p-1", currency="EUR")
    # mypy --strict still accepts the module
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    result = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental",
                             "tracking.py"], cwd=tmp_path, capture_output=True, text=True,
                            env=env, check=False)
    assert result.returncode == 0, result.stdout
    ts = generate_typescript(deprecated)
    block = ts[:ts.index("export function productsSearched(")].rsplit("/**", 1)[1]
    assert "@deprecated products_searched is deprecated" in block


BACKFILL_EVENT = """\
name: episode_played
description: A listener starts playing an episode.
owner: player
purpose: analytics
version: 1.0.0
retention: 1y
properties:
  episode_id: {type: string, required: true, pii: none}
  timestamp: {type: timestamp, pii: none}
"""


@pytest.mark.timeout(180)
def test_python_functions_send_timestamp_and_message_id_to_the_warehouse(
        make_workspace: Any, serve: Any, tmp_path: Path) -> None:
    # a backfill sets when it happened, an idempotent resend its own message id: both go
    # to the SDK's track as they are; a property named like one keeps a trailing underscore
    from datetime import UTC, date

    from nerve.sdk import Client
    from nerve.warehouse import Warehouse, result_json

    ws = make_workspace({"episode_played.yaml": BACKFILL_EVENT})
    tracking = _import(_write(tmp_path / "backfill.py",
                              generate_python(Catalog.load(ws.root / "events"))))
    server = serve(ws)
    errors: list[Any] = []
    key = next(s.write_key for s in ws.config.sources if s.name == "server")
    client = Client(key, server.url, on_error=lambda exc, batch: errors.append(exc))
    naive = datetime(2026, 3, 1, 9, 30)  # noqa: DTZ001
    tracking.episode_played(client, episode_id="ep-1", timestamp=naive,
                            message_id="backfill-ep-1", timestamp_="2026-02-28T23:00:00Z",
                            user_id="u1")
    tracking.episode_played(client, episode_id="ep-1", message_id="backfill-ep-1",
                            timestamp="2026-03-01T09:30:00+00:00", user_id="u1")  # resent
    tracking.episode_played(client, episode_id="ep-2", timestamp=date(2026, 3, 2),
                            user_id="u1")
    fresh = tracking.episode_played(client, episode_id="ep-3", user_id="u1")  # a fresh id
    assert client.shutdown()
    assert errors == []
    assert server.stop() == 0  # drains the log into the warehouse
    warehouse = Warehouse.for_workspace(ws, read_only=True)
    try:
        rows = result_json(warehouse.query(
            "SELECT message_id, properties->>'episode_id' AS episode_id, "
            "properties->>'timestamp' AS prop_timestamp, schema_version, "
            "epoch(original_timestamp) AS sent, epoch(timestamp) AS at FROM events "
            "ORDER BY episode_id"))["rows"]
        quarantined = result_json(warehouse.query("SELECT count(*) AS n FROM quarantine"))
    finally:
        warehouse.close()
    assert quarantined["rows"] == [{"n": 0}]
    assert [r["episode_id"] for r in rows] == ["ep-1", "ep-2", "ep-3"]  # the resend: once
    first, second, third = rows
    assert first["message_id"] == "backfill-ep-1"
    assert first["prop_timestamp"] == "2026-02-28T23:00:00Z"
    assert first["schema_version"] == "1.0.0"
    march_1 = datetime(2026, 3, 1, 9, 30, tzinfo=UTC).timestamp()
    assert first["sent"] == march_1  # a naive datetime is UTC, as nerve.sdk takes it
    assert abs(first["at"] - march_1) < 60  # only the loopback's clock skew corrected
    assert second["sent"] == datetime(2026, 3, 2, tzinfo=UTC).timestamp()
    assert second["prop_timestamp"] is None
    assert third["message_id"] not in ("backfill-ep-1", second["message_id"])
    assert third["message_id"] == fresh  # the function returns the SDK's message id
