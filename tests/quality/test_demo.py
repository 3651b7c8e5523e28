"""The checks on the demo's data: every injected fault and incident is found, and a clean
simulation raises no alarm at all, whatever hour it ends.

The faults go through a real `nerve demo` run (server, SDK, loader) ending now. The
incidents need more traffic than that run has (the adyen outage is a handful of failed
payments at 2500 shoppers), so they, and the clean runs ending at several hours, use the
simulator loaded with the collector's and loader's own code (``tests.anomaly.conftest``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from tests.anomaly.conftest import Demo, load_demo, shared_demo

from nerve.anomaly import Request, find_anomalies
from nerve.catalog import Catalog
from nerve.quality import Status, inputs_for, load_config, run_checks
from nerve.warehouse import Warehouse
from nerve.workspace import Workspace

DAYS, USERS, SEED = "14", "2500", "7"

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
         "--users", USERS, "--seed", SEED, "--no-serve", "--format", "json", *flags],
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
    results = _check(root)
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


def test_a_clean_simulation_raises_no_alarm(clean: tuple[Path, dict[str, Any]],
                                            faulty: tuple[Path, dict[str, Any]]) -> None:
    root, truth = clean
    assert not any(truth["faults"].values())
    results = _check(root)
    alarms = [r.message for r in results if r.status is not Status.passed]
    assert alarms == []
    # nor at the moments the faulty run had its incidents
    for incident in faulty[1]["incidents"]:
        start, end = _at(incident["start"]), _at(incident["end"])
        hours = max(1, round((end - start).total_seconds() / 3600))
        results = _check(root, now=end, evaluate=f"{hours}h")
        alarms = [r.message for r in results if r.check in ("volume", "rate")
                  and r.status is not Status.passed]
        assert alarms == []


# ------------------------------------------------- incidents, and clean runs at any hour

BIG = {"users": 8000, "days": 14}
END = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def _judge(demo: Demo, now: datetime, **volume: Any) -> list[Any]:
    config = load_config(demo.root)
    config.defaults["volume"].update(volume)
    config.defaults["rate"].update(volume)
    return run_checks(inputs_for(demo.warehouse.ibis()), demo.catalog, config, now=now,
                      select=["volume", "rate"])


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    """Two weeks of 8000 shoppers with both incidents (about 200k events): tests/anomaly's
    ``big_demo``, built once for both folders."""
    return shared_demo(tmp_path_factory, end=END, seed=3, **BIG)


def test_the_android_drop_is_found_on_android(shop: Demo) -> None:
    truth = next(i for i in shop.truth["incidents"] if i["key"] == "android_add_to_cart_drop")
    results = _judge(shop, _at(truth["end"]))
    found = [r for r in results if r.check == "volume" and r.status is not Status.passed
             and r.event == "add_to_cart" and r.details.get("direction") == "down"]
    assert {"platform": "android"} in [r.dimensions for r in found], \
        [r.message for r in results if r.status is not Status.passed]
    android = next(r for r in found if r.dimensions == {"platform": "android"})
    assert android.since is not None
    assert abs((android.since - _at(truth["start"])).total_seconds()) <= 2 * 3600
    assert "dropped" in android.message
    assert "platform=android" in android.message


def test_the_adyen_outage_is_found_as_a_rate_on_adyen(shop: Demo) -> None:
    truth = next(i for i in shop.truth["incidents"] if i["key"] == "adyen_payment_outage")
    results = _judge(shop, _at(truth["end"]))
    rates = [r for r in results if r.check == "rate" and r.status is not Status.passed]
    adyen = [r for r in rates if r.dimensions == {"payment_provider": "adyen"}]
    assert adyen, [r.message for r in results if r.status is not Status.passed]
    found = adyen[0]
    assert found.details["rate"] == "payment_failure_rate"  # from metrics/, zero config
    assert found.details["direction"] == "up"
    assert found.observed is not None
    assert found.observed > 0.2  # 45% in truth, 3% before
    assert found.details["expected"] < 0.06
    assert found.since == _at(truth["start"])
    # the other providers kept failing at their usual rate
    assert not [r for r in rates if r.dimensions.get("payment_provider") in ("stripe",
                                                                            "paypal")]


@pytest.mark.parametrize("end", ["2026-11-20T12:00:00", "2026-11-25T09:26:00",
                                 "2026-11-21T03:40:00", "2026-11-23T18:10:00"])
def test_a_clean_simulation_raises_nothing_whatever_hour_it_ends(
        end: str, tmp_path: Path) -> None:
    moment = datetime.fromisoformat(end).replace(tzinfo=UTC)
    demo = load_demo(tmp_path / "shop", users=2500, days=10, seed=5, incidents=False,
                     end=moment)
    results = _judge(demo, moment)
    assert {r.check for r in results} == {"volume", "rate"}
    assert [r.message for r in results if r.status is not Status.passed] == []
    # and anomaly detection, the same model over every event, dimension and rate
    detection, _ = find_anomalies(demo.events, Request(evaluate="24h", min_history="5d"),
                                  layer=demo.layer, catalog_events=demo.catalog.names(),
                                  now=moment)
    assert detection.judged > 50
    assert [a.message() for a in detection.anomalies] == []
