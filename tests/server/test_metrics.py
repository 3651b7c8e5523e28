"""Prometheus /metrics over several worker processes, pipeline_health, JSON logs."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson
from prometheus_client.parser import text_string_to_metric_families
from serverkit import EVENTS, basic, order, write_key

from nerve.server import pipeline_health
from nerve.workspace import Workspace

CONSENT_NO = {"consent": {"categoryPreferences": {"Analytics": False}}}
CONSENT_SOME = {"consent": {"categoryPreferences": {"Analytics": True, "Advertising": False}}}


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_add_up_every_worker_and_match_pipeline_health(
        make_workspace: Callable[..., Workspace], serve: Callable[..., Any]) -> None:
    ws = make_workspace(EVENTS)
    server = serve(ws, "--workers", "2")
    headers = basic(write_key(ws))
    sent = 0
    with httpx.Client(base_url=server.url, timeout=30) as client:
        # new connections spread over the processes sharing the port
        for i in range(12):
            batch = [order(i * 10 + j, prefix=f"r{i}") for j in range(5)]
            batch.append({**order(i, prefix=f"bad{i}"), "properties": {"order_id": "x"}})
            batch.append({**order(i, prefix=f"nc{i}"), "context": CONSENT_NO})
            # uncataloged (no purpose): dropped when consent grants nothing at all,
            # quarantined when it grants something
            batch.append({**order(i, prefix=f"ux{i}"), "event": "promo_seen",
                          "context": CONSENT_NO})
            batch.append({**order(i, prefix=f"uq{i}"), "event": "promo_seen",
                          "context": CONSENT_SOME})
            with httpx.Client(base_url=server.url, timeout=30) as fresh:
                assert fresh.post("/v1/batch", json={"batch": batch},
                                  headers=headers).status_code == 200
            sent += 1
        assert client.post("/v1/batch", json={"batch": []},
                           headers={"Authorization": "Basic eA=="}).status_code == 401
        text = client.get("/metrics").text
        # the loader's background loads of every row: it runs on idle CPU only, which a
        # CI machine running other tests on both cores leaves little of
        deadline = time.monotonic() + 90
        while (("nerve_loader_dedup_index_ids 84.0" not in text
                or "\nnerve_loader_last_load_seconds " not in text)
               and time.monotonic() < deadline):
            time.sleep(0.2)
            text = client.get("/metrics").text
    samples = _samples(text)
    src = ("source", "server")
    assert samples[("nerve_events_accepted_total",
                    (("event", "order_completed"), src))] == 12 * 5
    assert samples[("nerve_events_quarantined_total",
                    (("event", "order_completed"), src))] == 12
    assert samples[("nerve_events_dropped_total",
                    (("event", "order_completed"), ("reason", "consent"), src))] == 12
    assert samples[("nerve_events_dropped_total",
                    (("event", "(uncataloged)"), ("reason", "consent"), src))] == 12
    assert samples[("nerve_events_quarantined_total",
                    (("event", "(uncataloged)"), src))] == 12
    assert samples[("nerve_http_requests_total", (("status", "200"),))] == sent
    assert samples[("nerve_http_requests_total", (("status", "401"),))] == 1
    assert samples[("nerve_ingest_request_seconds_count", ())] == sent + 1
    assert ("nerve_log_backlog_bytes", ()) in samples
    assert ("nerve_loader_lag_seconds", ()) in samples
    assert 0 < samples[("nerve_loader_last_load_seconds", ())] < 20
    assert 0 <= samples[("nerve_loader_dedup_share", ())] <= 1
    # the loader's index holds the id of each row loaded: 60 events, 24 quarantined
    assert samples[("nerve_loader_dedup_index_ids", ())] == 84
    assert server.stop() == 0

    health = pipeline_health(ws)
    assert health == {"accepted": 60, "quarantined": 24, "dropped": {"consent": 24},
                      "requests": {"200": sent, "401": 1},
                      "refusals": {"401 unauthorized": 1}}
    # the server's own logs are JSON lines with a level and a message
    logged = [orjson.loads(line) for line in server.log.read_text().splitlines()
              if line.startswith("{")]
    assert any(e["message"] == "serving" and e["workers"] == 2 for e in logged)
    assert all({"ts", "level", "logger", "message"} <= e.keys() for e in logged)
    assert any(e["message"] == "stopped" for e in logged)


def test_pipeline_health_is_zero_before_any_server(
        make_workspace: Callable[..., Workspace]) -> None:
    assert pipeline_health(make_workspace(EVENTS)) == {
        "accepted": 0, "quarantined": 0, "dropped": {}, "requests": {}, "refusals": {}}


def test_a_collect_only_start_removes_the_metrics_folders_of_collectors_that_are_gone(
        make_workspace: Callable[..., Workspace], monkeypatch: Any) -> None:
    import subprocess
    import sys

    from nerve.server._metrics import MULTIPROC_ENV, prepare_metrics_dir

    monkeypatch.delenv(MULTIPROC_ENV, raising=False)  # prepare sets it; restored after
    ws = make_workspace()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        for pid in (gone, str(alive.pid)):
            (ws.data_dir / f"prometheus-collect-{pid}").mkdir(parents=True)
            (ws.data_dir / f"prometheus-collect-{pid}" / "counter_1.db").write_bytes(b"\0")
        (ws.data_dir / "prometheus").mkdir()  # the loading server's: not a collector's
        mine = prepare_metrics_dir(ws, "prometheus-collect-1")
        left = sorted(p.name for p in ws.data_dir.glob("prometheus*"))
    finally:
        alive.kill()
        alive.wait()
    assert left == sorted(["prometheus", f"prometheus-collect-{alive.pid}", mine.name])
