"""`nerve catalog docs`: the static site, its example payloads, volumes and metric links."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from tests.conftest import chromium, node_script
from typer.testing import CliRunner

from nerve.catalog import Catalog
from nerve.catalog._docs import build_site, metric_refs
from nerve.catalog._example import example_payload
from nerve.cli import app
from nerve.envelope import ENVELOPE_SCHEMA
from nerve.warehouse import Warehouse
from nerve.workspace import Workspace

FIXTURE = Path(__file__).parent / "fixtures" / "shop" / "events"
DEMO = Path(__file__).parents[2] / "src" / "nerve" / "demo" / "shop" / "events"


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.links: list[str] = []

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.links += [v or "" for k, v in attrs if k == "href"]


def _parse(path: Path) -> _Text:
    parser = _Text()
    parser.feed(path.read_text())
    return parser


@pytest.fixture
def shop(make_workspace: Callable[..., Workspace]) -> Workspace:
    ws = make_workspace()
    shutil.copytree(FIXTURE, ws.events_dir, dirs_exist_ok=True)
    (ws.metrics_dir / "shop.yaml").write_text(SHOP_METRICS)
    return ws


# docs/metrics.md's format: metrics keyed by name, sides by metric name or inline measure
SHOP_METRICS = """\
metrics:
  searches:
    measure: {event: products_searched}
  add_to_cart_rate:
    type: ratio
    format: percent
    numerator:
      agg: count_distinct
      event: add_to_cart
    denominator: searches
  orders:
    measure: {event: order_completed}
  orders_wow:
    type: derived
    expr: (orders - orders_last_week) / orders_last_week
    inputs: [orders, {metric: orders, offset: 1w, alias: orders_last_week}]
"""


@pytest.mark.parametrize("events", [FIXTURE, *([DEMO] if any(DEMO.glob("*.yaml")) else [])],
                         ids=lambda p: p.parts[-3])
def test_example_payloads_pass_the_catalog(events: Path) -> None:
    catalog = Catalog.load(events)
    for spec in catalog:
        payload = example_payload(spec)
        field = "traits" if spec.type in ("identify", "group") else "properties"
        assert catalog.violations(spec, payload[field]) == [], spec.name
        assert payload["context"]["event_version"] == str(spec.version)


def test_metric_refs_name_each_metric_that_reads_the_event(shop: Workspace) -> None:
    refs, note = metric_refs(shop.metrics_dir, Catalog.load(shop.events_dir))
    assert note == ""
    assert {k: [(r.metric, r.file, r.line) for r in v] for k, v in refs.items()} == {
        # the measure that names the event, else the metric (its first field) that reads it
        # through another metric
        "products_searched": [("searches", "shop.yaml", 3), ("add_to_cart_rate", "shop.yaml", 5)],
        "add_to_cart": [("add_to_cart_rate", "shop.yaml", 8)],
        "order_completed": [("orders", "shop.yaml", 12), ("orders_wow", "shop.yaml", 14)]}


def test_metric_refs_skip_what_does_not_load(shop: Workspace, tmp_path: Path) -> None:
    (shop.metrics_dir / "broken.yaml").write_text(
        "metrics:\n  bad_one:\n    type: ratoi\n  carts:\n    measure: {event: add_to_cart}\n")
    (shop.metrics_dir / "zz.yaml").write_text("metrics: [unclosed\n")
    refs, note = metric_refs(shop.metrics_dir, Catalog.load(shop.events_dir))
    assert [r.metric for r in refs["add_to_cart"]] == ["carts", "add_to_cart_rate"]
    assert note.startswith("metrics: 2 problems")
    report = build_site(Catalog.load(shop.events_dir), tmp_path / "site", workspace=shop)
    assert report.metrics_note == note
    assert "carts" in " ".join(_parse(tmp_path / "site" / "events" / "add_to_cart.html").text)


def _load_rows(ws: Workspace) -> None:
    now = datetime.now(UTC)
    base = dict.fromkeys(ENVELOPE_SCHEMA.names)

    def row(i: int, days: float, event: str) -> dict[str, object]:
        ts = now - timedelta(days=days)
        return {**base, "message_id": f"m{i}", "type": "track", "event": event,
                "user_id": "u", "timestamp": ts, "received_at": ts, "source": "web",
                "historical": False, "properties": "{}"}

    events = [row(i, d, "add_to_cart") for i, d in enumerate([1, 2, 3, 10, 20, 40])]
    quarantined = [row(100, 1, "add_to_cart"), row(101, 50, "add_to_cart")]
    ts = pa.timestamp("us", "UTC")
    with Warehouse.for_workspace(ws) as wh:
        cur = wh.cursor()
        cur.register("e", pa.Table.from_pylist(
            [{**r, "loaded_at": r["received_at"]} for r in events],
            schema=pa.schema([*ENVELOPE_SCHEMA, pa.field("loaded_at", ts)])))
        cur.execute("INSERT INTO events BY NAME SELECT * EXCLUDE (violations) FROM e")
        cur.register("q", pa.Table.from_pylist(
            [{**r, "quarantined_at": r["received_at"], "violations": "[]"}
             for r in quarantined],
            schema=pa.schema([*ENVELOPE_SCHEMA, pa.field("quarantined_at", ts)])))
        cur.execute("INSERT INTO quarantine BY NAME SELECT * FROM q")


def test_site_pages_with_volumes(shop: Workspace, tmp_path: Path) -> None:
    _load_rows(shop)
    out = tmp_path / "site"
    report = build_site(Catalog.load(shop.events_dir), out, workspace=shop)
    assert report.pages == 5
    assert report.stats_note == "volumes from the warehouse"
    index = _parse(out / "index.html")
    assert "events/add_to_cart.html" in index.links
    assert 'id="search"' in (out / "index.html").read_text()
    page = _parse(out / "events" / "add_to_cart.html")
    text = " ".join(" ".join(page.text).split())
    for expected in ("add_to_cart", "growth", "400d", "quantity", "pseudonymous",
                     "add_to_cart_rate", "2.1.0", "1.0.0", "type number -> integer",
                     "maximum 99 added",
                     '"event_version": "2.1.0"'):
        assert expected in text, expected
    # 7 days: 3 events; 28 days: 5 events and 1 quarantined = 16.7%
    assert "3 events, last 7 days" in text
    assert "5 events, last 28 days" in text
    assert "16.7% quarantined" in text


CART_VIEWED = """\
name: cart_viewed
description: A shopper opens the cart page.
owner: checkout
purpose: analytics
trigger: The cart page loads.
version: 1
retention: 400d
properties:
  lines:
    type: array
    required: true
    description: The cart's lines.
    pii: none
    items:
      type: object
      properties:
        sku: {type: string, required: true, description: The product., pii: none}
        sizes: {type: array, description: Sizes., pii: none,
                items: {type: array, items: {type: object, properties: {
                  eu: {type: number, description: EU size., pii: none}}}}}
"""


def test_site_lists_array_items_and_counts_identify_calls(shop: Workspace,
                                                          tmp_path: Path) -> None:
    (shop.events_dir / "cart_viewed.yaml").write_text(CART_VIEWED)
    now = datetime.now(UTC)
    base = dict.fromkeys(ENVELOPE_SCHEMA.names)
    rows = [{**base, "message_id": f"m{i}", "type": "identify", "event": None,
             "user_id": "u", "timestamp": now - timedelta(days=days),
             "received_at": now, "source": "web", "historical": False, "traits": "{}"}
            for i, days in enumerate([1, 2, 10])]
    ts = pa.timestamp("us", "UTC")
    with Warehouse.for_workspace(shop) as wh:
        cur = wh.cursor()
        cur.register("e", pa.Table.from_pylist(
            [{**r, "loaded_at": now} for r in rows[:2]],
            schema=pa.schema([*ENVELOPE_SCHEMA, pa.field("loaded_at", ts)])))
        cur.execute("INSERT INTO events BY NAME SELECT * EXCLUDE (violations) FROM e")
        cur.register("q", pa.Table.from_pylist(
            [{**rows[2], "quarantined_at": now, "violations": "[]"}],
            schema=pa.schema([*ENVELOPE_SCHEMA, pa.field("quarantined_at", ts)])))
        cur.execute("INSERT INTO quarantine BY NAME SELECT * FROM q")
    out = tmp_path / "site"
    build_site(Catalog.load(shop.events_dir), out, workspace=shop)
    page = " ".join(" ".join(_parse(out / "events" / "cart_viewed.html").text).split())
    for expected in ("lines array yes", "lines[].sku string yes", "The product.",
                     "lines[].sizes array no", "lines[].sizes[][].eu number no"):
        assert expected in page, expected
    # identify calls are stored with no event name: 2 landed this week, 1 quarantined
    page = " ".join(" ".join(_parse(out / "events" / "identify.html").text).split())
    assert "2 events, last 7 days" in page
    assert "33.3% quarantined" in page


def test_cli_docs_when_another_process_locks_the_warehouse(shop: Workspace) -> None:
    import subprocess
    import sys

    path = shop.data_dir / "warehouse.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); "
         "print('ready', flush=True); time.sleep(60)", str(path)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "ready"
        result = CliRunner().invoke(app, ["--workspace", str(shop.root), "catalog", "docs"])
    finally:
        holder.kill()
        holder.wait()
    assert result.exit_code == 0, result.stderr
    assert "volumes skipped: " in result.stderr
    assert "locked" in result.stderr
    site = shop.data_dir / "catalog-docs"
    assert sorted(p.name for p in (site / "events").iterdir()) == [
        "add_to_cart.html", "identify.html", "order_completed.html",
        "products_searched.html"]
    assert "Volume" not in (site / "events" / "add_to_cart.html").read_text()


@pytest.mark.timeout(120)
def test_cli_docs_refuses_to_write_its_pages_into_the_catalog(shop: Workspace) -> None:
    """`--out .` at the workspace wrote a page per event among events/*.yaml."""
    before = sorted(p.name for p in shop.events_dir.iterdir())
    result = CliRunner().invoke(app, ["--workspace", str(shop.root), "catalog", "docs",
                                      "--out", str(shop.root)])
    assert result.exit_code == 2
    assert "the catalog's own folder; choose another folder" in " ".join(result.stderr.split())
    assert sorted(p.name for p in shop.events_dir.iterdir()) == before
    assert not (shop.root / "index.html").exists()


def test_search_runs_in_headless_chromium(shop: Workspace, tmp_path: Path) -> None:
    import subprocess

    browser = chromium()
    out = tmp_path / "site"
    build_site(Catalog.load(shop.events_dir), out, workspace=shop)
    url = (out / "index.html").as_uri() + "?q=order%20checkout"
    result = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", url],
        capture_output=True, text=True, timeout=90, check=True)
    dom = result.stdout
    rows = [line for line in dom.splitlines() if "<tr data-search=" in line]
    assert len(rows) == 4
    shown = [r for r in rows if " hidden" not in r]
    assert len(shown) == 1  # both words must match: only order_completed (owner checkout)
    assert "order_completed" in (out / "index.html").read_text()
    assert 'data-search="order_completed' in shown[0]



@pytest.mark.node
@pytest.mark.timeout(120)
def test_the_search_still_filters_after_back(shop: Workspace, tmp_path: Path) -> None:
    """Back from an event's page, the browser restored the typed search in its field but
    the index showed every event: the filter ran only on typing and on ?q=."""
    out = tmp_path / "site"
    build_site(Catalog.load(shop.events_dir), out, workspace=shop)
    seen = node_script("catalog_search.mjs", (out / "index.html").as_uri(), "order checkout",
                       timeout=90)
    # the header counted every event, as a bare number, whatever the search left
    assert seen["typed"] == {"value": "order checkout", "count": "1 of 4 events",
                             "shown": ["order_completed"]}
    assert seen["back"] == seen["typed"]


@pytest.mark.node
@pytest.mark.timeout(120)
def test_the_site_fits_a_phone_and_labels_its_search(shop: Workspace, tmp_path: Path) -> None:
    """At 375 px the index was 343 px too wide and each event page ~200 (tables and
    their padding); the search field had only a placeholder for a name."""
    out = tmp_path / "site"
    build_site(Catalog.load(shop.events_dir), out, workspace=shop)
    pages = [out / "index.html", *sorted((out / "events").glob("*.html"))]
    assert len(pages) == 5
    for page in node_script("page_layout.mjs", "375", *(p.as_uri() for p in pages),
                            timeout=90):
        assert page["scrollWidth"] <= page["clientWidth"] == 375, page
        assert page["unlabeled"] == [], page


@pytest.mark.node
@pytest.mark.timeout(120)
def test_a_long_event_name_leaves_room_for_the_rest_of_its_row(shop: Workspace,
                                                              tmp_path: Path) -> None:
    """A 68-character event name did not wrap: on a phone its column took the whole
    screen in the index (description, owner and volumes off to the side, every row
    several lines tall) and on its page the properties table's."""
    long = "meal_plan_week_regenerated_after_dietary_preference_change_confirmed"
    (shop.events_dir / f"{long}.yaml").write_text(
        f"name: {long}\ndescription: The week's meal plan was made again.\nowner: kitchen\n"
        "purpose: analytics\nretention: 400d\nproperties:\n"
        f"  {long}_count: {{type: integer, pii: none, description: How many.}}\n")
    out = tmp_path / "site"
    build_site(Catalog.load(shop.events_dir), out, workspace=shop)
    pages = [out / "index.html", out / "events" / f"{long}.html"]
    for page in node_script("page_layout.mjs", "375", *(p.as_uri() for p in pages),
                            timeout=90):
        assert page["scrollWidth"] <= page["clientWidth"] == 375, page
        for table in page["tables"]:
            assert table["firstColumn"] <= table["shown"] / 2, page["url"]


@pytest.mark.timeout(120)
def test_docs_volumes_while_the_server_holds_the_warehouse(
        shop: Workspace, serve: Callable[..., Any]) -> None:
    import time

    import httpx

    from nerve.cli._sql import run_sql

    server = serve(shop)
    key = shop.config.sources[0].write_key
    batch = [{"type": "track", "event": "add_to_cart", "userId": "u1",
              "messageId": f"m{i}",
              "properties": {"quantity": 1, "product_id": "p1"}} for i in range(3)]
    batch.append({"type": "track", "event": "add_to_cart", "userId": "u1", "messageId": "bad",
                  "properties": {"quantity": "many", "product_id": "p1"}})
    response = httpx.post(f"{server.url}/v1/batch", json={"batch": batch}, auth=(key, ""),
                          timeout=10)
    assert response.status_code == 200
    deadline = time.monotonic() + 60
    query = ("SELECT (SELECT count(*) FROM events) AS e, "
             "(SELECT count(*) FROM quarantine) AS q")
    while time.monotonic() < deadline:
        counts = run_sql(shop, query)["rows"][0]
        if (counts["e"], counts["q"]) == (3, 1):
            break
        time.sleep(0.2)
    result = CliRunner().invoke(app, ["--workspace", str(shop.root), "catalog", "docs"])
    assert result.exit_code == 0, result.stderr
    assert "volumes from the warehouse" in result.stderr
    page = (shop.data_dir / "catalog-docs" / "events" / "add_to_cart.html").read_text()
    text = " ".join(" ".join(_parse_text(page)).split())
    assert "3 events, last 7 days" in text
    assert "25.0% quarantined" in text


def _parse_text(html: str) -> list[str]:
    parser = _Text()
    parser.feed(html)
    return parser.text


def test_events_whose_names_make_the_same_file_name_get_a_page_each(
        shop: Workspace, tmp_path: Path) -> None:
    """`Order Completed` and `Order_Completed` both became events/Order_Completed.html: the
    second page overwrote the first, both index links led to it, and the command counted
    a page it had not written. `Experiment Viewed` and `experiment_viewed` did the same on
    a file system that ignores case (macOS, Windows)."""
    import re

    for file, name, prop in (("sdk_order.yaml", "Order Completed", "coupon"),
                             ("Order_Completed.yaml", "Order_Completed", "basket"),
                             ("sdk_exposure.yaml", "Experiment Viewed", "flag"),
                             ("experiment_viewed.yaml", "experiment_viewed", "variant")):
        (shop.events_dir / file).write_text(
            f"name: {name}\nproperties:\n  {prop}: {{type: string}}\n")
    out = tmp_path / "site"
    report = build_site(Catalog.load(shop.events_dir), out, workspace=shop)
    links = re.findall(r'<a href="(events/[^"]+)"><code>([^<]+)</code>',
                       (out / "index.html").read_text())
    assert len(links) == 8 == report.pages - 1
    assert len({page.lower() for page, _ in links}) == 8
    pages = sorted(p.name.lower() for p in (out / "events").iterdir())
    assert pages == sorted(page.removeprefix("events/").lower() for page, _ in links)
    props = {"Order Completed": "coupon", "Order_Completed": "basket",
             "Experiment Viewed": "flag", "experiment_viewed": "variant"}
    for page, name in links:
        if name in props:  # each link leads to the page of its own event
            html = (out / page).read_text()
            assert f"<h1><code>{name}</code>" in html
            assert f"<code>{props[name]}</code>" in html


def test_a_new_build_removes_the_pages_of_events_that_left_the_catalog(
        shop: Workspace, tmp_path: Path) -> None:
    """After an event was renamed or removed, its page stayed in the site from the build
    before, out of date and still reachable at its address."""
    out = tmp_path / "site"
    (out / "events").mkdir(parents=True)
    mine = out / "events" / "notes.html"
    mine.write_text("<!doctype html><p>the team's own page</p>")
    build_site(Catalog.load(shop.events_dir), out, workspace=shop)
    assert (out / "events" / "add_to_cart.html").exists()
    (shop.events_dir / "add_to_cart.yaml").unlink()
    (shop.events_dir / "versions" / "add_to_cart.v1.yaml").unlink()
    build_site(Catalog.load(shop.events_dir), out, workspace=shop)
    assert not (out / "events" / "add_to_cart.html").exists()
    assert "add_to_cart" not in (out / "index.html").read_text()
    assert mine.read_text() == "<!doctype html><p>the team's own page</p>"  # not nerve's
    assert len(list((out / "events").glob("*.html"))) == 4  # 3 events and notes.html


ZONE_ENTERED = """\
name: zone_entered
description: The watch reports a new heart rate zone.
owner: wearables
purpose: product
version: 1.0.0
retention: 30d
properties:
  zone: {type: integer, description: The zone., pii: sensitive, handling: keep}
  rate: {type: integer, description: The heart rate., pii: sensitive, handling: keep}
  tags:
    type: array
    description: Tags.
    pii: none
    items: {type: string, enum: [race, commute]}
"""


def test_a_page_says_which_sensitive_values_are_dropped_and_what_items_allow(
        make_workspace: Callable[..., Workspace], tmp_path: Path) -> None:
    """A sensitive property not in [privacy] allow_sensitive is dropped whatever its
    handling says, and an array's items' enum is what a sender must know."""
    ws = make_workspace({"zone_entered.yaml": ZONE_ENTERED},
                        extra_toml='[privacy]\nallow_sensitive = ["zone_entered.rate"]\n')
    out = tmp_path / "site"
    build_site(Catalog.load(ws.events_dir), out, workspace=ws)
    page = " ".join(" ".join(_parse(out / "events" / "zone_entered.html").text).split())
    assert "zone integer no sensitive → keep (dropped: not in [privacy] allow_sensitive)" \
        in page, page
    assert "rate integer no sensitive → keep The heart rate." in page, page
    assert "items: string (one of race, commute)" in page, page


def test_only_a_first_version_is_called_the_first(shop: Workspace, tmp_path: Path) -> None:
    """An event at 1.1.0 whose 1.0.0 was replaced in place (a minor bump keeps no file in
    events/versions/) was shown as 'first version'; 1.0.0 alone still is."""
    (shop.events_dir / "ride_ended.yaml").write_text(
        "name: ride_ended\nversion: 1.1.0\nproperties:\n  fare: {type: number}\n")
    (shop.events_dir / "ride_started.yaml").write_text(
        "name: ride_started\nversion: 1.0.0\nproperties:\n  city: {type: string}\n")
    out = tmp_path / "site"
    build_site(Catalog.load(shop.events_dir), out, workspace=shop)
    ended = " ".join(_parse_text((out / "events" / "ride_ended.html").read_text()))
    started = " ".join(_parse_text((out / "events" / "ride_started.html").read_text()))
    assert "first version" not in ended
    assert "the oldest version in events/" in ended
    assert "first version" in started
