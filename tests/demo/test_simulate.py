"""The simulator: deterministic, and its ground truth matches the messages it yields."""

from __future__ import annotations

import hashlib
from collections import Counter
from datetime import UTC, datetime
from functools import cache
from typing import Any

import orjson
import pytest

from nerve.catalog import Catalog
from nerve.demo import (
    EXPERIMENT,
    FAULTS,
    QUARANTINED_FAULTS,
    SHOP_DIR,
    SimConfig,
    SimMessage,
    call_name,
    simulate,
)
from nerve.demo._scenario import iso
from nerve.errors import UserError
from nerve.experiments import choose_variant
from nerve.quality._config import DEFAULTS, parse_duration

END = datetime(2026, 11, 28, 7, 30, tzinfo=UTC)


@cache
def catalog() -> Catalog:
    return Catalog.load(SHOP_DIR / "events")


@cache
def run(days: int = 3, users: int = 1500, seed: int = 7, incidents: bool = True,
        faults: bool = True) -> tuple[list[SimMessage], dict[str, Any]]:
    sim = simulate(SimConfig(end=END, days=days, users=users, seed=seed,
                             incidents=incidents, faults=faults))
    messages = list(sim)
    return messages, sim.ground_truth


def digest(messages: list[SimMessage]) -> str:
    h = hashlib.sha256()
    for m in messages:
        h.update(orjson.dumps([m.message, m.at, m.source, m.live, m.fault, m.clock_skew_ms],
                              option=orjson.OPT_SORT_KEYS))
    return h.hexdigest()


def test_same_seed_same_messages_different_seed_different() -> None:
    first = list(simulate(SimConfig(end=END, days=2, users=120, seed=1)))
    again = list(simulate(SimConfig(end=END, days=2, users=120, seed=1)))
    other = list(simulate(SimConfig(end=END, days=2, users=120, seed=2)))
    assert len(first) > 500
    assert digest(first) == digest(again)
    assert digest(first) != digest(other)


def test_stream_order_history_then_late_then_live() -> None:
    messages, truth = run()
    phases = [("late" if m.fault == "late" else "live" if m.live else "history")
              for m in messages]
    first_live = phases.index("late") if "late" in phases else phases.index("live")
    assert set(phases[:first_live]) == {"history"}
    assert "history" not in phases[first_live:]
    history = [m.at for m in messages[:first_live]]
    assert history == sorted(history)
    start = datetime.fromisoformat(truth["simulation"]["start"]).timestamp() * 1000
    live_start = datetime.fromisoformat(truth["simulation"]["live_start"]).timestamp() * 1000
    assert all(start <= m.at < END.timestamp() * 1000 for m in messages)
    assert all(m.at >= live_start for m in messages if m.live and m.fault != "late")


def test_messages_are_segment_spec() -> None:
    messages, _ = run()
    kinds = Counter(m.message["type"] for m in messages)
    assert set(kinds) == {"track", "identify", "page", "screen"}
    for m in messages:
        msg = m.message
        assert msg["userId"].startswith("u_")
        assert msg["anonymousId"]
        assert len(msg["messageId"]) == 36
        assert msg["timestamp"].endswith("Z")
        assert "library" in msg["context"]
        if m.source in ("ios", "android"):
            assert msg["context"]["app"]["version"]
            assert msg["context"]["app"]["build"]
            assert msg["context"]["device"]["type"] == m.source
            assert msg["context"]["os"]["name"] in ("iOS", "Android")
        elif m.source == "web":
            assert msg["context"]["userAgent"].startswith("Mozilla/5.0")
            assert msg["context"]["device"] == {"type": "web"}
    platforms = Counter(m.source for m in messages if m.message.get("event") == "session_start")
    total = sum(platforms.values())
    assert all(platforms[p] > 0.2 * total for p in ("ios", "android", "web")), platforms


def test_skewed_clocks_are_beyond_the_checks_default_threshold() -> None:
    # the demo promises that `nerve check` finds every kind of fault it injects: a clock
    # off by less than the clock_skew check's threshold would be injected yet invisible
    # (it was, whenever only such sessions were drawn). Many seeds: many skewed sessions
    threshold_ms = parse_duration(DEFAULTS["clock_skew"]["threshold"]) * 1000
    skews = {abs(m.clock_skew_ms) for seed in range(20)
             for m in simulate(SimConfig(end=END.replace(hour=20), days=1, users=1500,
                                         seed=seed))
             if m.fault == "clock_skew"}
    assert len(skews) > 25  # distinct sessions' skews
    assert min(skews) > threshold_ms


def test_ground_truth_fault_counts_match_the_stream() -> None:
    messages, truth = run()
    counted = Counter(m.fault for m in messages if m.fault)
    assert truth["faults"] == {kind: counted.get(kind, 0) for kind in FAULTS}
    # every kind is present in a run this size, so each comparison below means something
    assert all(truth["faults"][kind] > 0 for kind in FAULTS if kind != "clock_skew")

    seen: set[str] = set()
    duplicates = 0
    for m in messages:
        duplicates += m.message["messageId"] in seen
        seen.add(m.message["messageId"])
    assert duplicates == truth["faults"]["duplicate_message_id"]

    unplanned = sum(call_name(m.message) not in catalog() for m in messages)
    assert unplanned == truth["faults"]["unplanned_event"]

    live_start = datetime.fromisoformat(truth["simulation"]["live_start"]).timestamp() * 1000
    late = sum(m.live and m.at < live_start for m in messages)
    assert late == truth["faults"]["late"]
    skewed = sum(m.message["timestamp"] != iso(m.at) for m in messages)
    assert skewed == truth["faults"]["clock_skew"]
    assert all(m.clock_skew_ms and m.live for m in messages if m.fault == "clock_skew")

    orders = Counter(m.message["properties"]["order_id"] for m in messages
                     if m.message.get("event") == "purchase_complete"
                     and m.fault != "duplicate_message_id")
    assert sum(n - 1 for n in orders.values()) == truth["faults"]["double_fired"]


def test_planned_events_validate_except_injected_faults() -> None:
    messages, truth = run()
    cat = catalog()
    accepted: Counter[str] = Counter()
    quarantined = 0
    seen: set[str] = set()
    for m in messages:
        if m.message["messageId"] in seen:
            continue
        seen.add(m.message["messageId"])
        name = call_name(m.message)
        spec = cat.for_call(m.message["type"], m.message.get("event"))
        payload = m.message.get("traits" if m.message["type"] == "identify" else "properties")
        valid = spec is not None and cat.is_valid(spec, payload)
        assert valid == (m.fault not in QUARANTINED_FAULTS), (m.fault, m.message)
        if valid:
            accepted[name] += 1
        else:
            quarantined += 1
    assert dict(accepted) == truth["expected"]["accepted_by_event"]
    assert sum(accepted.values()) == truth["expected"]["accepted"]
    assert quarantined == truth["expected"]["quarantined"]
    wrong = [m for m in messages if m.fault == "wrong_type"]
    assert all(isinstance(m.message["properties"]["price"], str) for m in wrong)
    assert truth["expected"]["messages_sent"] == len(messages)


def test_clean_simulation_has_no_faults_and_no_incidents() -> None:
    messages, truth = run(incidents=False, faults=False)
    assert truth["incidents"] == []
    assert truth["releases"] == []
    versions = {m.message["context"]["app"]["version"] for m in messages
                if m.source in ("ios", "android")}
    assert versions == {"4.1.1", "4.1.2"}  # no release: no version vanishes overnight
    assert set(truth["faults"].values()) == {0}
    assert truth["expected"]["quarantined"] == 0
    cat = catalog()
    for m in messages:
        spec = cat.for_call(m.message["type"], m.message.get("event"))
        payload = m.message.get("traits" if m.message["type"] == "identify" else "properties")
        assert spec is not None
        assert cat.is_valid(spec, payload)
    assert len({m.message["messageId"] for m in messages}) == len(messages)
    assert not any(m.live and m.fault for m in messages)


def _window(truth: dict[str, Any], key: str) -> tuple[float, float]:
    incident = next(i for i in truth["incidents"] if i["key"] == key)
    return (datetime.fromisoformat(incident["start"]).timestamp() * 1000,
            datetime.fromisoformat(incident["end"]).timestamp() * 1000)


def _count(messages: list[SimMessage], event: str, window: tuple[float, float],
           **where: str) -> int:
    def ok(m: SimMessage) -> bool:
        props = m.message["properties"]
        return all(props.get(k) == v or (k == "platform" and m.source == v)
                   for k, v in where.items())
    return sum(1 for m in messages if m.message.get("event") == event
               and window[0] <= m.at < window[1] and m.fault is None and ok(m))


def test_incident_windows_show_their_effect() -> None:
    messages, truth = run(users=3000, faults=False)
    clean, _ = run(users=3000, incidents=False, faults=False)
    keys = {i["key"] for i in truth["incidents"]}
    assert keys == {"android_add_to_cart_drop", "adyen_payment_outage"}
    for incident in truth["incidents"]:
        assert {"kind", "event", "metric", "dimension", "value", "start", "end",
                "effect"} <= set(incident)

    window = _window(truth, "android_add_to_cart_drop")
    broken = _count(messages, "add_to_cart", window, platform="android")
    normal = _count(clean, "add_to_cart", window, platform="android")
    assert normal > 40
    assert 0.2 < broken / normal < 0.6  # designed: -60%
    # other platforms are untouched, event for event
    for platform in ("ios", "web"):
        assert (_count(messages, "add_to_cart", window, platform=platform)
                == _count(clean, "add_to_cart", window, platform=platform))
    # the app version isolates the bug window exactly
    versions = {m.message["context"]["app"]["version"] for m in messages
                if m.source == "android" and window[0] <= m.at < window[1]}
    assert versions == {"4.2.0"}

    window = _window(truth, "adyen_payment_outage")
    spiked = _count(messages, "payment_failed", window, payment_provider="adyen")
    usual = _count(clean, "payment_failed", window, payment_provider="adyen")
    submitted = _count(messages, "payment_submitted", window, payment_provider="adyen")
    assert spiked > 2 * usual
    assert submitted > 10
    assert spiked / submitted > 0.25  # designed: 45% fail, against 3% normally
    before = (window[0] - 3 * 3_600_000, window[0])
    assert (_count(messages, "payment_failed", before)
            == _count(clean, "payment_failed", before))


def test_experiment_targets_seniors_with_stable_variants() -> None:
    messages, truth = run(days=14, users=4000, faults=False)
    exp = truth["experiment"]
    assert exp["key"] == EXPERIMENT.key
    assert exp["variants"] == ["control", "simple"]
    start = datetime.fromisoformat(exp["start"]).timestamp() * 1000
    ages = {m.message["userId"]: m.message["traits"]["age"] for m in messages
            if m.message["type"] == "identify"}
    exposures = [m for m in messages if m.message.get("event") == "experiment_viewed"]
    assert exposures
    units: dict[str, set[str]] = {}
    for m in exposures:
        user, variant = m.message["userId"], m.message["properties"]["variant_id"]
        assert ages[user] >= 65
        assert m.at >= start
        assert variant == choose_variant(EXPERIMENT.key, user, EXPERIMENT.variants,
                                         EXPERIMENT.weights)
        units.setdefault(variant, set()).add(user)
    observed = {arm["variant"]: arm for arm in exp["observed"]}
    assert {v: len(u) for v, u in units.items()} == {v: a["units"] for v, a in observed.items()}
    flows = {m.message["properties"]["checkout_flow"] for m in messages
             if m.message.get("event") == "checkout_start"
             and units.get("simple") and m.message["userId"] in units["simple"]
             and m.at >= start}
    assert "simple" in flows
    assert (observed["simple"]["checkout_completion"]
            > observed["control"]["checkout_completion"])


def test_traits_are_consistent() -> None:
    messages, _ = run()
    for m in messages:
        if m.message["type"] == "identify":
            traits = m.message["traits"]
            age = traits["age"]
            low, high = {"18-24": (18, 24), "25-34": (25, 34), "35-44": (35, 44),
                         "45-54": (45, 54), "55-64": (55, 64), "65+": (65, 120)}[
                             traits["age_group"]]
            assert low <= age <= high


@pytest.mark.parametrize("bad", [{"days": 0}, {"users": 0}, {"live_minutes": -1}])
def test_config_errors_name_the_option(bad: dict[str, int]) -> None:
    with pytest.raises(UserError, match=next(iter(bad)).split("_")[0]):
        SimConfig(end=END, **bad)


def test_config_needs_an_aware_end() -> None:
    with pytest.raises(UserError, match="time zone"):
        SimConfig(end=datetime(2026, 1, 1))  # noqa: DTZ001 - the mistake under test
