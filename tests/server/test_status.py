"""``GET /v1/status`` and ``nerve status`` on the retention job, in-process: the real ASGI
app, a real DuckDB warehouse and the real job, whose run fails on a file it cannot
delete."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import anyio
import httpx
import orjson
import pytest
from serverkit import EVENTS, basic, order, write_key

from nerve.catalog import Catalog
from nerve.cli._common import Format
from nerve.cli._serve import _status_rows
from nerve.collector import Collector, rows_to_record_batch
from nerve.erasure import RetentionJob
from nerve.loader import Loader
from nerve.loader._commit import LogRange, commit_ranges
from nerve.log import LogWriter, tally_row
from nerve.server import NerveState, create_app
from nerve.server.api.console import offline_status
from nerve.warehouse import Warehouse
from nerve.workspace import Workspace

TOKEN = "admin-token-for-tests"


def get(app: object, path: str) -> httpx.Response:
    async def send() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),  # type: ignore[arg-type]
                                     base_url="http://nerve.test") as client:
            return await client.get(path, headers={"authorization": f"Bearer {TOKEN}"})

    return anyio.run(send)


def test_a_failing_retention_job_shows_in_the_status(
        make_workspace: Callable[..., Workspace], caplog: pytest.LogCaptureFixture) -> None:
    """It failed in the server's log only ("retrying in 1 day, 0:00:00"), every day."""
    caplog.set_level(logging.INFO, logger="nerve.erasure")
    ws = make_workspace(EVENTS, extra_toml='[privacy]\naudit_retention = "30d"\n')
    (ws.data_dir / "audit" / "reads-2020-01-01.jsonl").mkdir(parents=True)
    with Warehouse.for_workspace(ws) as warehouse, LogWriter(ws.log_dir, "test") as log:
        state = NerveState(workspace=ws, catalog=Catalog.load(ws.events_dir),
                           warehouse=warehouse, log=log, admin_token=TOKEN,
                           loader=Loader.for_workspace(ws, warehouse))
        state.retention_job = RetentionJob(state, first_delay=timedelta(0)).start()
        try:
            deadline = time.monotonic() + 10
            while state.retention_job.failed_at is None and time.monotonic() < deadline:
                time.sleep(0.02)
            app = create_app(state)
            answer = get(app, "/v1/status")
            scraped = get(app, "/metrics").text
        finally:
            state.retention_job.stop()
    assert answer.status_code == 200, answer.text
    body = answer.json()
    retention = body["retention"]
    assert retention["enforced"] is True
    assert retention["failing"] is True
    assert "Is a directory" in retention["last_error"]
    assert retention["failed_at"] is not None
    # the rows were expired, and recorded, before the audit files failed
    assert retention["last_run"] is not None
    # and for alerts: Prometheus sees it too
    assert "\nnerve_retention_failing 1.0\n" in scraped
    shown = {row["what"]: row["value"] for row in _status_rows(body, Format.table)}
    assert shown["retention job"].startswith(f"failing since {retention['failed_at']}: ")
    # numbers grouped by thousands in the table only: CSV carries every digit (docs/cli.md)
    body["warehouse"]["events"] = 1_234_567
    for fmt, figure in [(Format.table, "1,234,567"), (Format.csv, "1234567")]:
        shown = {row["what"]: row["value"] for row in _status_rows(body, fmt)}
        assert shown["events in the warehouse"] == figure
    # the log reads as a sentence, the figures as fields
    expired, failed = (r for r in caplog.records if r.name == "nerve.erasure"
                       and r.getMessage().startswith("retention:"))
    assert expired.getMessage() == ("retention: deleted the rows past their retention: 0 from "
                                    "events, 0 from the quarantine")
    # retried within the hour, not the next day: the alert fired for a day after a
    # failure that was over in minutes (a full disk)
    assert failed.getMessage() == "retention: enforcing failed; retrying in 1 hour"
    assert failed.__dict__["retry_in_seconds"] == 3600
    assert "retried every hour" in shown["retention job"]


def test_a_failed_retention_run_is_retried_soon_and_its_success_clears_the_failure(
        make_workspace: Callable[..., Workspace]) -> None:
    """A daily job whose first run fails on a file it cannot delete; once the file is
    fixed, the next try (after retry_after, not a day) succeeds and clears the failure."""
    ws = make_workspace(EVENTS, extra_toml='[privacy]\naudit_retention = "30d"\n')
    blocker = ws.data_dir / "audit" / "reads-2020-01-01.jsonl"
    blocker.mkdir(parents=True)
    with Warehouse.for_workspace(ws) as warehouse, LogWriter(ws.log_dir, "test") as log:
        state = NerveState(workspace=ws, catalog=Catalog.load(ws.events_dir),
                           warehouse=warehouse, log=log, admin_token=TOKEN,
                           loader=Loader.for_workspace(ws, warehouse))
        job = RetentionJob(state, every=timedelta(days=1), first_delay=timedelta(0),
                           retry_after=timedelta(seconds=0.2))
        state.retention_job = job.start()
        try:
            deadline = time.monotonic() + 30
            while job.failed_at is None and time.monotonic() < deadline:
                time.sleep(0.01)
            assert job.last_error is not None  # the first run failed
            blocker.rmdir()  # the operator fixes it
            while job.last_error is not None and time.monotonic() < deadline:
                time.sleep(0.02)
            answer = get(create_app(state), "/v1/status")
        finally:
            job.stop()
    assert job.last_error is None, "the failed run was not retried before the next day"
    assert job.failed_at is None
    assert answer.json()["retention"]["failing"] is False


def test_log_files_set_aside_show_in_the_status(
        make_workspace: Callable[..., Workspace], caplog: pytest.LogCaptureFixture) -> None:
    """Recovery cut a corrupt tail (kept as ``.cut-<offset>``): only a worker's warning
    said so, and `nerve status` showed a clean log. The operator must see the file."""
    ws = make_workspace(EVENTS)
    collected = Collector(ws, Catalog.load(ws.events_dir)).collect(
        orjson.dumps({"batch": [order(1)]}), endpoint="batch",
        authorization=basic(write_key(ws))["Authorization"])
    with LogWriter(ws.log_dir, "test") as log:
        log.append(collected.record_batch())
        log.sync()
    segment = next((ws.log_dir / "test").glob("*.seg"))
    with segment.open("ab") as f:
        f.write(b"\x07garbage after the last frame" * 40)
    with Warehouse.for_workspace(ws) as warehouse, LogWriter(ws.log_dir, "test") as log:
        state = NerveState(workspace=ws, catalog=Catalog.load(ws.events_dir),
                           warehouse=warehouse, log=log, admin_token=TOKEN)
        answer = get(create_app(state), "/v1/status")
    assert answer.status_code == 200, answer.text
    kept = [p.relative_to(ws.root) for p in (ws.log_dir / "test").glob("*.cut-*")]
    assert len(kept) == 1  # the recovery's copy of the damaged bytes
    for body in (answer.json(), offline_status(ws)):
        assert body["log"]["set_aside"] == [str(kept[0])]
        shown = {row["what"]: row["value"] for row in _status_rows(body, Format.table)}
        assert str(kept[0]) in shown["log files set aside"]
    # the recovery's warning carries its figures as fields, for the JSON log
    cut = next(r for r in caplog.records if r.name == "nerve.log")
    assert cut.__dict__["kept_as"] == str(ws.root / kept[0])
    assert cut.__dict__["cut_bytes"] == len(b"\x07garbage after the last frame" * 40)


def _tally(consent: dict[str, int], refused: dict[tuple[str, str], int]) -> Any:
    return rows_to_record_batch([tally_row(Counter(
        {("consent", "web", event): n for event, n in consent.items()}
        | {("refused", status, code): n for (status, code), n in refused.items()}))])


def test_the_ledgers_last_day_of_withheld_and_refused_shows_in_the_status(
        make_workspace: Callable[..., Workspace]) -> None:
    """The status showed the collector's counters since the server started only: a
    restart lost the consent drops and refusals the loader keeps in the ``loads`` ledger
    (``withheld``), which `nerve check` reads. It now shows the ledger's last 24 h."""
    ws = make_workspace(EVENTS)
    with Warehouse.for_workspace(ws) as warehouse, LogWriter(ws.log_dir, "test") as log:
        # two days ago: out of the window
        commit_ranges(warehouse.cursor(), [LogRange("w0", "a.seg", 0, 10, [_tally(
            {"signup": 50}, {("429", "rate_limited"): 9})])], dedup_window=None)
        warehouse.cursor().execute('UPDATE loads SET "at" = "at" - INTERVAL 2 DAY')
        commit_ranges(warehouse.cursor(), [
            LogRange("w0", "a.seg", 10, 20, [_tally({"signup": 2}, {("401", "unauthorized"): 1})]),
            LogRange("w1", "b.seg", 0, 30, [_tally({"signup": 1, "app_opened": 4},
                                                   {("401", "unauthorized"): 1,
                                                    ("400", "invalid_json"): 1})])],
            dedup_window=None)
        state = NerveState(workspace=ws, catalog=Catalog.load(ws.events_dir),
                           warehouse=warehouse, log=log, admin_token=TOKEN)
        answer = get(create_app(state), "/v1/status")
    assert answer.status_code == 200, answer.text
    expected = {"window_seconds": 86400.0, "recorded": True,
                "consent": {"app_opened": 4, "signup": 3},
                "refused": [{"status": 401, "code": "unauthorized", "requests": 2},
                            {"status": 400, "code": "invalid_json", "requests": 1}]}
    for body in (answer.json(), offline_status(ws)):
        assert body["withheld"] == expected
        shown = {row["what"]: row["value"] for row in _status_rows(body, Format.table)}
        assert shown["withheld for consent, last 24 h"] == "app_opened: 4, signup: 3"
        assert shown["refused requests, last 24 h"] == (
            "401 unauthorized: 2, 400 invalid_json: 1")
