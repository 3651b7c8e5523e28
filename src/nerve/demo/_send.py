"""Send simulated messages to a nerve server through the nerve SDK, as real sources would.

The simulated past goes in through one client on the ``import`` source's write key with
``historical=True`` (a backfill); live traffic goes through one client per source (ios,
android, web, server) with that source's key. Devices with a wrong clock are the one
exception: the SDK stamps ``sentAt`` with this machine's (right) clock, so their batches
are posted directly with ``sentAt`` from the device's clock, as their own SDK would.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from nerve.demo._scenario import iso
from nerve.demo._truth import SimMessage
from nerve.errors import UserError
from nerve.sdk import Client
from nerve.workspace import Workspace

__all__ = ["LIVE_SOURCES", "Sender"]

#: the demo workspace's live sources, each with its own write key in nerve.toml
LIVE_SOURCES = ("ios", "android", "web", "server")
_IMPORT = "import"
#: queued history events at which a call waits for the SDK to catch up (an app's SDK
#: drops events when its queue is full; a backfill must not: ``block_when_full``)
_QUEUE_SIZE = 40_000


class Sender:
    """Routes each ``SimMessage`` to the right SDK client and counts what was refused."""

    def __init__(self, workspace: Workspace, url: str, *, batch_size: int = 1000) -> None:
        keys = {s.name: s.write_key for s in workspace.config.sources}
        missing = [name for name in (_IMPORT, *LIVE_SOURCES) if name not in keys]
        if missing:
            raise UserError(f"{workspace.root / 'nerve.toml'}: the demo needs sources named "
                            f"{', '.join(missing)}")
        self.url = url
        self.errors = Counter[str]()
        self.sent = 0
        self._keys = keys
        # no gzip: on loopback it costs CPU at both ends and saves no time (measured: -30%
        # client CPU without it); the SDK still cuts batches at the collector's byte limit
        common: dict[str, Any] = {"flush_interval": 0.2, "gzip": False,
                                  "on_error": self._on_error}
        self.history = Client(keys[_IMPORT], url, max_batch_size=batch_size, historical=True,
                              max_queue_size=_QUEUE_SIZE, block_when_full=600, **common)
        self.live = {name: Client(keys[name], url, max_batch_size=100,
                                  max_queue_size=2 * _QUEUE_SIZE, **common)
                     for name in LIVE_SOURCES}
        self._http = httpx.Client(timeout=30)

    def _on_error(self, exc: Exception, batch: list[dict[str, Any]]) -> None:
        self.errors[type(exc).__name__] += max(1, len(batch))

    def send(self, sim: SimMessage) -> None:
        """Queue one message (history or live) on its client."""
        self.sent += 1
        if sim.clock_skew_ms:
            self._post_skewed(sim)
            return
        client = self.live[sim.source] if sim.live else self.history
        m = sim.message
        kwargs = {"user_id": m.get("userId"), "anonymous_id": m.get("anonymousId"),
                  "context": m.get("context"), "timestamp": m["timestamp"],
                  "message_id": m["messageId"]}
        kind = m["type"]
        if kind == "track":
            client.track(m["event"], m.get("properties"), **kwargs)
        elif kind == "identify":
            client.identify(traits=m.get("traits"), **kwargs)
        elif kind == "page":
            client.page(m.get("name"), m.get("properties"), **kwargs)
        elif kind == "screen":
            client.screen(m.get("name"), m.get("properties"), **kwargs)
        else:  # the simulator makes no other calls
            raise ValueError(f"unexpected message type {kind!r}")

    def _post_skewed(self, sim: SimMessage) -> None:
        now = int(datetime.now(UTC).timestamp() * 1000)
        sent_at = iso(now + sim.clock_skew_ms)
        body = orjson.dumps({"batch": [{**sim.message, "sentAt": sent_at}], "sentAt": sent_at})
        try:
            response = self._http.post(f"{self.url}/v1/batch", content=body,
                                       auth=(self._keys[sim.source], ""),
                                       headers={"Content-Type": "application/json"})
        except httpx.HTTPError as exc:
            self.errors[type(exc).__name__] += 1
            return
        if response.status_code != 200:
            self.errors[f"HTTP {response.status_code}"] += 1

    def close(self, timeout: float | None = None) -> None:
        """Flush every client and stop their threads (``timeout``: give up waiting after
        that many seconds, as on Ctrl-C while the server is stopping too)."""
        for client in (self.history, *self.live.values()):
            client.shutdown(timeout)
        self._http.close()

    def undelivered(self) -> int:
        return sum(self.errors.values())
