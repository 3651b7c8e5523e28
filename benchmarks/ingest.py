"""Ingest benchmark: validated, durable events/s through a real `nerve serve`.

Starts `nerve serve` on a loopback port over a temporary workspace with a realistic shop
catalog, sends realistic 100-event batches (about 4% invalid or unplanned, which go to the
quarantine) over several keep-alive connections for a bounded time, and prints events/s
and p50/p99 request latency. A 200 means the batch was validated and fsynced to the event
log. It then runs the same load against a bare ASGI endpoint that only parses the JSON
(the ceiling of this HTTP stack on this machine), and finally checks that every
acknowledged event reached the warehouse.

    python benchmarks/ingest.py                       # 10 s per run, 8 connections, 2 workers
    python benchmarks/ingest.py --workers 1 --seconds 20 --profile serve.svg

The load generator runs in its own processes and shares the CPU with the server, as it
would on one machine; on a shared 2-core box run it a few times and read the best and
the typical figure. "events/CPU-s" (events per second of CPU the server processes used,
loader included) is the figure that other load on the machine disturbs least.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.client
import multiprocessing as mp
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

from nerve.warehouse import Warehouse
from nerve.workspace import Workspace, init_workspace

BATCH = 100
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


def make_template(seed: int) -> bytes:
    """A 100-event batch body whose message ids carry a placeholder for a per-batch prefix."""
    rng = random.Random(seed)
    body = {"batch": [make_event(rng, i) for i in range(BATCH)],
            "sentAt": "2026-11-28T10:00:01.000Z"}
    return orjson.dumps(body)


# ------------------------------------------------------------------------------ load


def _client(port: int, key: str, seconds: float, templates: list[bytes], worker: int,
            out: Any) -> None:
    """One keep-alive connection sending batches back to back; reports latencies and ids."""
    auth = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    latencies: list[float] = []
    acked: list[str] = []
    errors = 0
    n = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        prefix = f"w{worker}b{n}-{uuid.uuid4().hex[:8]}"
        body = templates[n % len(templates)].replace(PLACEHOLDER, prefix.encode())
        n += 1
        start = time.perf_counter()
        try:
            conn.request("POST", "/v1/batch", body=body,
                         headers={"Content-Type": "application/json", "Authorization": auth})
            response = conn.getresponse()
            response.read()
        except (OSError, http.client.HTTPException):
            errors += 1
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            continue
        latencies.append(time.perf_counter() - start)
        if response.status == 200:
            acked.append(prefix)
        else:
            errors += 1
    conn.close()
    out.put((latencies, acked, errors))


def _client_process(port: int, key: str, seconds: float, templates: list[bytes],
                    first: int, count: int, out: Any) -> None:
    threads = [threading.Thread(target=_client, args=(port, key, seconds, templates,
                                                      first + k, out)) for k in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def run_load(port: int, key: str, seconds: float, connections: int,
             templates: list[bytes], processes: int = 2) -> dict[str, Any]:
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    per = [connections // processes + (1 if i < connections % processes else 0)
           for i in range(processes)]
    procs, first = [], 0
    for count in per:
        proc = ctx.Process(target=_client_process, args=(port, key, seconds, templates,
                                                         first, count, out))
        first += count
        proc.start()
        procs.append(proc)
    started = time.perf_counter()
    results = [out.get(timeout=seconds + 120) for _ in range(connections)]
    elapsed = time.perf_counter() - started
    for proc in procs:
        proc.join()
    latencies = sorted(x for r in results for x in r[0])
    acked = [p for r in results for p in r[1]]
    errors = sum(r[2] for r in results)
    events = len(acked) * BATCH

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000

    return {"events_per_s": events / elapsed, "events": events, "requests": len(latencies),
            "errors": errors, "p50_ms": pct(0.50) if latencies else 0.0,
            "p99_ms": pct(0.99) if latencies else 0.0, "acked": acked, "seconds": elapsed}


# ------------------------------------------------------------------------------ servers


def bare_app() -> Any:
    """The ceiling: an ASGI app that reads the body, parses the JSON, answers 200."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        chunks = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        orjson.loads(b"".join(chunks))
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b'{"success":true}'})

    return app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(port: int, proc: subprocess.Popen[bytes], path: str = "/health") -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", path)
            conn.getresponse().read()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("server did not start")


def start_nerve(root: Path, port: int, workers: int) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "nerve", "--workspace", str(root), "serve", "--port", str(port),
           "--workers", str(workers)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_healthy(port, proc)
    return proc


def start_bare(port: int) -> subprocess.Popen[bytes]:
    here = str(Path(__file__).parent)
    code = (f"import uvicorn, sys; sys.path.insert(0, {here!r}); import ingest; "
            f"uvicorn.run(ingest.bare_app(), host='127.0.0.1', port={port}, "
            "log_level='warning', access_log=False)")
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE)
    wait_healthy(port, proc)
    return proc


def profiler(pid: int, seconds: float, out: str) -> subprocess.Popen[bytes]:
    """py-spy sampling the server (all its threads) while the load runs."""
    fmt = "raw" if out.endswith(".txt") else "speedscope" if out.endswith(".json") else "flamegraph"
    return subprocess.Popen(["py-spy", "record", "--pid", str(pid), "--duration",
                             str(max(1, int(seconds) - 1)), "--threads", "--format", fmt,
                             *(["--gil"] if os.environ.get("NERVE_PROFILE_GIL") else []),
                             "--output", out], stdout=subprocess.DEVNULL)


def stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(120)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def make_workspace(root: Path) -> str:
    ws = init_workspace(root, "bench")
    for rel, text in CATALOG.items():
        path = root / "events" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return next(s.write_key for s in ws.config.sources if s.name == "server")


def count_loaded(root: Path) -> tuple[int, int, int]:
    warehouse = Warehouse.for_workspace(Workspace.load(root), read_only=True)
    try:
        events = warehouse.query("SELECT count(*) AS n, count(DISTINCT message_id) AS d "
                                 "FROM events").to_pylist()[0]
        quarantined = warehouse.query("SELECT count(*) AS n FROM quarantine").to_pylist()[0]
    finally:
        warehouse.close()
    return events["n"], events["d"], quarantined["n"]


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by a process and its child processes."""
    tick = os.sysconf("SC_CLK_TCK")
    pids = [pid]
    with contextlib.suppress(OSError):
        pids += [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    total = 0.0
    for each in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def measured(proc: subprocess.Popen[bytes], load: Any) -> dict[str, Any]:
    """Run ``load()`` and add the server's CPU seconds and events per CPU second."""
    before = cpu_seconds(proc.pid)
    result: dict[str, Any] = load()
    result["cpu_s"] = cpu_seconds(proc.pid) - before
    result["events_per_cpu_s"] = result["events"] / result["cpu_s"] if result["cpu_s"] else 0
    return result


def report(name: str, result: dict[str, Any]) -> None:
    print(f"{name:<28} {result['events_per_s']:>9,.0f} events/s  "
          f"p50 {result['p50_ms']:6.1f} ms  p99 {result['p99_ms']:6.1f} ms  "
          f"server CPU {result['cpu_s']:5.1f} s = {result['events_per_cpu_s']:>8,.0f} "
          f"events/CPU-s  ({result['requests']:,} requests, {result['errors']} errors)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each run")
    parser.add_argument("--connections", type=int, default=8, help="concurrent connections")
    parser.add_argument("--workers", type=int, default=2,
                        help="nerve serve --workers (processes accepting events)")
    parser.add_argument("--no-ceiling", action="store_true", help="skip the bare-parse run")
    parser.add_argument("--profile", metavar="FILE", help="py-spy profile of nerve serve: "
                        "a flame graph (.svg), speedscope (.json) or collapsed stacks (.txt)")
    parser.add_argument("--keep", action="store_true", help="keep the workspace")
    args = parser.parse_args()

    templates = [make_template(seed) for seed in range(20)]
    size = sum(map(len, templates)) / len(templates)
    print(f"nerve ingest benchmark: {BATCH}-event batches (~{size / 1024:.0f} KB, "
          f"{size / BATCH:.0f} B/event), {args.connections} connections, "
          f"nerve serve --workers {args.workers}, "
          f"{args.seconds:.0f} s per run, {os.cpu_count()} CPUs")

    root = Path(tempfile.mkdtemp(prefix="nerve-bench-"))
    try:
        key = make_workspace(root / "ws")
        port = free_port()
        proc = start_nerve(root / "ws", port, args.workers)
        spy = profiler(proc.pid, args.seconds, args.profile) if args.profile else None
        result = measured(proc, lambda: run_load(port, key, args.seconds, args.connections,
                                                 templates))
        stopped_at = time.perf_counter()
        code = stop(proc)
        drain = time.perf_counter() - stopped_at
        report(f"nerve serve --workers {args.workers}", result)
        if not args.no_ceiling:
            port = free_port()
            bare = start_bare(port)
            ceiling = measured(bare, lambda: run_load(port, key, args.seconds,
                                                      args.connections, templates))
            stop(bare)
            report("bare ASGI, JSON parse only", ceiling)
            print(f"nerve reaches {result['events_per_s'] / ceiling['events_per_s']:.0%} "
                  "of the ceiling's events/s and "
                  f"{result['events_per_cpu_s'] / ceiling['events_per_cpu_s']:.0%} of its "
                  "events per CPU second")
        n, distinct, quarantined = count_loaded(root / "ws")
        acked = result["events"]
        print(f"warehouse after stop (exit {code}, drain {drain:.1f} s): {n:,} events + "
              f"{quarantined:,} quarantined = {n + quarantined:,} rows; acknowledged {acked:,}; "
              f"duplicates {n - distinct}")
        if n + quarantined < acked or n != distinct:
            raise SystemExit("LOST OR DUPLICATED EVENTS")
        if spy is not None:
            spy.wait()
            print(f"profile of nerve serve: {args.profile}")
    finally:
        if args.keep:
            print(f"workspace kept in {root / 'ws'}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
