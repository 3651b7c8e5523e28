"""The checks on the demo's data: every injected fault and incident is found, and a clean
simulation raises no alarm at all. Real `nerve demo` runs (server, SDK, loader)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from nerve.catalog import Catalog
from nerve.quality import Status, inputs_for, load_config, run_checks
from nerve.warehouse import Warehouse
from nerve.workspace import Workspace

DAYS, USERS, SEED = "14", "2500", "7"
#: a pinned end makes both simulations, and so every verdict below, the same on every run
#: (with the default end, now, the seasonal data shifts with the hour the suite runs)
END = "2026-11-28T09:00:00"

#: which check must find each kind of injected fault (docs/demo.md "The faults")
FAULT_CHECKS = {
    "wrong_type": "schema",
    "unknown_property": "drift",
    "missing_required": "null_rate",
    "unplanned_event": "drift",
    "duplicate_message_id": "duplicates",
    "double_fired": "natural_key_duplicates",
    "late": "lateness",
    "clock_skew": "clock_skew",
}

#: what a team would add for the shop: one purchase per order
CHECKS_YAML = """\
defaults:
  volume: {dimensions: [platform, app_version, country, payment_provider]}
events:
  purchase_complete:
    natural_key: [properties.order_id]
  payment_failed:           # rare but critical: judge small counts, alert on spikes
    volume: {min_volume: 3, direction: up}
dimensions:
  payment_provider: properties.payment_provider
"""


def _demo(root: Path, *flags: str) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "nerve", "demo", "--dir", str(root), "--days", DAYS,
         "--users", USERS, "--seed", SEED, "--end", END, "--no-serve", "--format", "json",
         *flags],
        capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    (root / "checks.yaml").write_text(CHECKS_YAML)
    truth: dict[str, Any] = json.loads((root / "ground_truth.json").read_text())
    return truth


def _check(root: Path, now: datetime | None = None, **volume: Any) -> list[Any]:
    ws = Workspace.load(root)
    config = load_config(ws.root, ws.config.raw)
    config.defaults["volume"].update(volume)
    with Warehouse.for_workspace(ws, read_only=True) as wh:
        return run_checks(inputs_for(wh.ibis()), Catalog.load(ws.events_dir), config, now=now)


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("demo") / "faulty"
    return root, _demo(root)


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("demo") / "clean"
    return root, _demo(root, "--no-incidents", "--no-faults")


def test_every_injected_fault_is_found(faulty: tuple[Path, dict[str, Any]]) -> None:
    root, truth = faulty
    results = _check(root, now=_at(END))
    problems = [r for r in results if r.status in (Status.warn, Status.fail)]
    assert not [r for r in results if r.status is Status.error]
    injected = [kind for kind, count in truth["faults"].items() if count]
    assert set(injected) <= set(FAULT_CHECKS), injected
    for kind in injected:
        found = [r for r in problems if r.check == FAULT_CHECKS[kind]]
        assert found, f"fault {kind} ({truth['faults'][kind]}) not found by {FAULT_CHECKS[kind]}"
    drift = " ".join(r.message for r in problems if r.check == "drift")
    assert "wishlist_add" in drift
    assert "coupon_code" in drift
    nulls = [r for r in problems if r.check == "null_rate"]
    assert any(r.event == "app_error" and r.dimensions["property"] == "properties.screen"
               for r in nulls)
    doubles = [r for r in problems if r.check == "natural_key_duplicates"]
    assert [r.event for r in doubles] == ["purchase_complete"]


def _count(root: Path, event: str, start: datetime, end: datetime) -> int:
    with Warehouse.for_workspace(Workspace.load(root), read_only=True) as wh:
        rows = wh.query(f"SELECT count(*) AS n FROM events WHERE event = '{event}' AND "
                        f"timestamp >= TIMESTAMPTZ '{start.isoformat()}' AND "
                        f"timestamp < TIMESTAMPTZ '{end.isoformat()}'").to_pylist()
    return int(rows[0]["n"])


def test_every_incident_is_found_when_it_happens(faulty: tuple[Path, dict[str, Any]]) -> None:
    root, truth = faulty
    assert truth["incidents"]
    judged = []
    for incident in truth["incidents"]:
        start, end = _at(incident["start"]), _at(incident["end"])
        hours = max(1, round((end - start).total_seconds() / 3600))
        if _count(root, incident["event"], start, end) < 20:
            # at this demo size the adyen outage leaves a handful of payment_failed
            # events: nothing a volume check (or a person) could tell from noise
            continue
        judged.append(incident["key"])
        results = _check(root, now=end, evaluate=f"{hours}h")
        found = [r for r in results if r.check == "volume" and r.status is not Status.passed
                 and r.event == incident["event"]]
        want = "down" if incident["effect"] < 0 else "up"
        assert [r for r in found if r.details.get("direction") == want], \
            (incident["key"], [r.message for r in results if r.check == "volume"
                               and r.event == incident["event"]])
        if incident.get("dimension") == "platform":
            assert any(r.dimensions.get("platform") == incident["value"] for r in found), \
                [r.message for r in found]
    assert "android_add_to_cart_drop" in judged


def test_a_clean_simulation_raises_no_alarm(clean: tuple[Path, dict[str, Any]],
                                            faulty: tuple[Path, dict[str, Any]]) -> None:
    root, truth = clean
    assert not any(truth["faults"].values())
    results = _check(root, now=_at(END))
    # received_at is the wall clock: with the end pinned in the past, the run's live
    # minutes arrive late by construction, so lateness alone is not judged here
    alarms = [r.message for r in results
              if r.status is not Status.passed and r.check != "lateness"]
    assert alarms == []
    # nor at the moments the faulty run had its incidents
    for incident in faulty[1]["incidents"]:
        start, end = _at(incident["start"]), _at(incident["end"])
        hours = max(1, round((end - start).total_seconds() / 3600))
        results = _check(root, now=end, evaluate=f"{hours}h")
        alarms = [r.message for r in results if r.check == "volume"
                  and r.status is not Status.passed]
        assert alarms == []
