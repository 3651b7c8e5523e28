"""Volume anomalies, missing data and sequences on hand-made tables, on every engine."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tests.quality.conftest import NOW, ago, catalog, prop, spec

from nerve.catalog import PropertySpec
from nerve.quality import ChecksConfig, Sequence, Status, load_config, run_checks
from nerve.quality._config import Rate
from nerve.quality._result import fmt_pct

#: a small, quick volume setup: 7 days of training, 3 days of history suffice
VOLUME = {"training": "7d", "min_history": "3d", "evaluate": "12h", "min_volume": 5,
          "dimensions": ["platform", "app_version"]}


def _config(**volume: Any) -> ChecksConfig:
    cfg = ChecksConfig()
    cfg.defaults["volume"].update({**VOLUME, **volume})
    return cfg


def _hourly(event: str, platform: str, hours: int, per_hour: Any, version: str = "1.0"
            ) -> list[dict[str, Any]]:
    context = {"os": {"name": platform}, "app": {"version": version}}
    starts = [NOW.replace(minute=0) - timedelta(hours=h) for h in range(1, hours + 1)]
    return [{"event": event, "timestamp": start + timedelta(seconds=10 * i + 1),
             "context": context}
            for start in starts for i in range(per_hour(start))]


def _seasonal(start: Any) -> int:
    # a day/night rhythm: 8/h at night, up to 20/h in the afternoon
    return 8 + int(12 * max(0, 1 - abs(start.hour - 15) / 9))


def test_volume_drop_on_one_platform_is_found_with_its_start(inputs: Any) -> None:
    def android(start: Any) -> int:
        normal = _seasonal(start)
        return normal // 5 if start >= ago(hours=6) else normal  # -80% for the last 6 h

    rows = _hourly("add_to_cart", "iOS", 7 * 24, _seasonal)
    rows += _hourly("add_to_cart", "Android", 7 * 24, android)
    results = run_checks(inputs(rows), now=NOW, config=_config(), select=["volume"])
    problems = [r for r in results if r.status is not Status.passed]
    assert len(problems) >= 1
    android_drop = [r for r in problems if r.dimensions == {"platform": "Android"}]
    assert len(android_drop) == 1, [r.message for r in problems]
    found = android_drop[0]
    assert found.status is Status.fail
    assert found.details["direction"] == "down"
    assert found.details["ongoing"]
    assert found.since == NOW.replace(minute=0) - timedelta(hours=6)
    assert found.observed < found.expected["min"]
    assert "add_to_cart on platform=Android dropped to" in found.message
    assert "still ongoing" in found.message
    assert not [r for r in problems if r.dimensions.get("platform") == "iOS"]


def test_a_passing_volume_names_the_dimensions_it_judged(inputs: Any) -> None:
    """It said "by platform, app_version, country" for an event sent with none but a
    platform: the reader took it for judged per app version and country."""
    rows = [r | {"context": {"os": {"name": "iOS"}}}
            for r in _hourly("search", "iOS", 7 * 24, _seasonal)]
    clean = run_checks(inputs(rows), now=NOW, select=["volume"],
                       config=_config(dimensions=["platform", "app_version", "country"]))
    assert [r.status for r in clean] == [Status.passed]
    assert clean[0].message.endswith("(2 series: overall and by platform).")
    bare = [r | {"context": None} for r in rows]
    clean = run_checks(inputs(bare), now=NOW, config=_config(), select=["volume"])
    assert clean[0].message.endswith("(1 series: overall only, no key dimension values).")


def test_a_rate_that_is_no_share_reports_the_range_it_was_judged_by(inputs: Any) -> None:
    """Refunds per order (an hour may have more refunds than orders) are judged as counts,
    but the message's range took their dispersion (phi, 1 or more) for the beta-binomial's
    rho: "rose to 70% against an expected 12% (range 0%-100%)" beside a failure."""
    import numpy as np
    rng = np.random.default_rng(3)
    rows: list[dict[str, Any]] = []
    for h in range(1, 10 * 24 + 1):
        start = NOW.replace(minute=0) - timedelta(hours=h)
        refunds = int(rng.poisson(1.0)) + (8 if h <= 12 else 0)
        for event, n in (("order", int(rng.poisson(3))), ("refund", refunds)):
            rows += [{"event": event, "timestamp": start + timedelta(seconds=60 * i + 1)}
                     for i in range(n)]
    cfg = _config(dimensions=[])
    cfg = ChecksConfig(defaults=cfg.defaults, rates=(Rate("refund", "order", "refund_rate"),))
    found, = run_checks(inputs(rows), now=NOW, config=cfg, select=["rate"])
    assert found.status is Status.fail
    assert found.observed > found.expected["max"]
    assert found.expected["max"] < 1.0
    low, high = fmt_pct(found.expected["min"]), fmt_pct(found.expected["max"])
    assert f"(range {low}-{high})" in found.message


def test_a_volume_drop_older_than_the_window_is_not_dated_to_it(inputs: Any) -> None:
    # search stopped three days ago: the check's sums reach 12 + 23 hours back, and it
    # must not say the silence began there
    def silent(since: Any) -> Any:
        return lambda start: 0 if start >= since else _seasonal(start)

    config = _config(training="14d", dimensions=["platform"])
    old = run_checks(inputs(_hourly("search", "iOS", 21 * 24, silent(ago(days=3)))),
                     now=NOW, config=config, select=["volume"])
    found, = (r for r in old if r.status is not Status.passed and not r.dimensions)
    assert found.details["direction"] == "down"
    assert found.details["began_before"]
    assert found.since == NOW.replace(minute=0) - timedelta(hours=35)
    assert "for at least 35 h since" in found.message
    assert "or before (the earliest hour this check looks at), still ongoing" in found.message
    # a drop that began inside the window keeps its start
    new = run_checks(inputs(_hourly("search", "iOS", 21 * 24, silent(ago(hours=6)))),
                     now=NOW, config=config, select=["volume"])
    found, = (r for r in new if r.status is not Status.passed and not r.dimensions)
    assert not found.details["began_before"]
    assert found.since == NOW.replace(minute=0) - timedelta(hours=6)
    assert "for 6 h since" in found.message


def test_volume_direction_and_clean_series(inputs: Any) -> None:
    def spike(start: Any) -> int:
        return _seasonal(start) * 4 if start >= ago(hours=4) else _seasonal(start)

    rows = _hourly("payment_failed", "iOS", 7 * 24, spike)
    table = inputs(rows)
    both = run_checks(table, now=NOW, config=_config(), select=["volume"])
    spikes = [r for r in both if r.status is not Status.passed and not r.dimensions]
    assert len(spikes) == 1
    assert spikes[0].details["direction"] == "up"
    assert "spiked" in spikes[0].message
    down_only = run_checks(table, now=NOW, config=_config(direction="down"), select=["volume"])
    assert all(r.status is Status.passed for r in down_only)
    clean = run_checks(inputs(_hourly("search", "iOS", 7 * 24, _seasonal)), now=NOW,
                       config=_config(), select=["volume"])
    assert [r.status for r in clean] == [Status.passed]
    assert "within its seasonal range" in clean[0].message


def test_app_version_mix_catches_a_broken_release(inputs: Any) -> None:
    # three days on 4.1 alone, then half the users moved to 4.2, where carts broke
    rows = [r for r in _hourly("session_start", "Android", 84, lambda _s: 20, "4.1")
            + _hourly("add_to_cart", "Android", 84, lambda _s: 20, "4.1")
            if r["timestamp"] < ago(hours=12)]
    for version, carts in (("4.1", 20), ("4.2", 4)):
        rows += _hourly("session_start", "Android", 12, lambda _s: 20, version)
        rows += _hourly("add_to_cart", "Android", 12, lambda _s, c=carts: c, version)
    results = run_checks(inputs(rows), now=NOW, config=_config(), select=["volume"])
    broken = [r for r in results if r.dimensions.get("app_version") == "4.2"
              and r.event == "add_to_cart"]
    assert len(broken) == 1, [r.message for r in results]
    assert broken[0].status is Status.fail
    assert broken[0].dimensions == {"app_version": "4.2", "platform": "Android"}
    assert "add_to_cart is 17% of all events on app_version=4.2, platform=Android over the " \
           "last 12 h against 50% before" in broken[0].message
    assert not [r for r in results if r.dimensions.get("app_version") == "4.1"
                and r.status is not Status.passed]


def test_missing_events_and_required_nulls(inputs: Any) -> None:
    cat = catalog(
        spec("add_to_cart", prop("price", "number", required=True), prop("sku")),
        spec("refund"),
        spec("old_event", status="deprecated"),
    )
    events = [{"event": "add_to_cart", "timestamp": ago(minutes=i),
               "properties": {"price": 10, "sku": "a"} if i >= 10 else {"sku": "a"}}
              for i in range(100)]
    quarantine = [{"event": "add_to_cart", "timestamp": ago(minutes=i),
                   "properties": {"sku": "b"}, "violations": [
                       {"path": "$.properties", "rule": "required", "message": "price"}]}
                  for i in range(5)]
    results = run_checks(inputs(events, quarantine), cat, now=NOW,
                         select=["missing_events", "null_rate"])
    missing = {r.event: r for r in results if r.check == "missing_events"}
    assert missing["add_to_cart"].status is Status.passed
    assert missing["refund"].status is Status.warn
    # the check's own window (7 days by default), not the volume check's 28 days
    assert missing["refund"].message == (
        "refund is in the catalog, but no refund event has an event time in the last 7 days, "
        "nor any in the last 28 days.")
    assert "old_event" not in missing  # deprecated events may go quiet
    nulls, = [r for r in results if r.check == "null_rate"]
    assert nulls.status is Status.fail
    assert nulls.observed == pytest.approx(15 / 105)
    assert nulls.dimensions == {"property": "properties.price", "source": "web"}
    assert ("add_to_cart.price is required but missing or null in 15 of 105 live add_to_cart "
            "events from source web") in nulls.message


def test_missing_events_says_what_it_measures(inputs: Any) -> None:
    """The last event's real time, not its hour; event time, with what arrived meanwhile."""
    cat = catalog(spec("search"), spec("identify"), spec("refund"))
    events = [{"event": "search", "timestamp": ago(minutes=25)},
              {"event": "search", "timestamp": ago(hours=3)}]
    # a backfill received in the last minutes, of events that happened 35 days ago
    events += [{"event": "identify", "timestamp": ago(days=35, minutes=i),
                "received_at": ago(minutes=5)} for i in range(30)]
    events.append({"event": "refund", "timestamp": ago(days=10, minutes=-35),
                   "received_at": ago(days=10)})
    results = run_checks(inputs(events), cat, now=NOW, select=["missing_events"])
    by_event = {r.event: r for r in results}
    assert by_event["search"].status is Status.passed
    assert by_event["search"].message == ("search has data: the last one happened at "
                                          "2026-11-20 11:35 UTC.")
    assert by_event["identify"].status is Status.warn
    assert by_event["identify"].message == (
        "identify is in the catalog, but no identify event has an event time in the last "
        "7 days, nor any in the last 28 days (by arrival: 30 arrived in that window, with "
        "older event times, e.g. a backfill).")
    assert by_event["refund"].message == (
        "refund is in the catalog, but no refund event has an event time in the last 7 "
        "days; the last one happened at 2026-11-10 12:35 UTC.")


def test_a_short_volume_training_does_not_shorten_what_other_checks_see(
        inputs: Any, tmp_path: Any) -> None:
    """A volume training of 2 days made the one profile scan cover 2 days: an event last
    seen 3.5 days ago read as "no event in the last 7 days", and its live source, silent
    for 3.5 days, got no freshness result at all."""
    cat = catalog(spec("search"))
    events = [{"event": "search", "timestamp": ago(days=3, hours=12, minutes=i),
               "received_at": ago(days=3, hours=12, minutes=i)} for i in range(200)]
    (tmp_path / "checks.yaml").write_text("defaults:\n  volume: {training: 2d}\n")
    cfg = load_config(tmp_path)
    results = run_checks(inputs(events), cat, cfg, now=NOW,
                         select=["missing_events", "freshness"])
    by_check = {r.check: r for r in results}
    assert by_check["missing_events"].status is Status.passed
    assert by_check["missing_events"].message == (
        "search has data: the last one happened at 2026-11-17 00:00 UTC.")
    assert by_check["freshness"].status is Status.fail
    assert by_check["freshness"].dimensions == {"source": "web"}
    assert by_check["freshness"].since == ago(days=3, hours=12)


def test_null_rate_per_source_and_backfills_apart(inputs: Any) -> None:
    """6 of 54 live web rows lack the key: a backfill received in the same window, and
    the other sources, no longer dilute that to a pass; the backfill is judged apart."""
    cat = catalog(spec("playlist_created", prop("playlist_id", required=True)))
    live = [{"event": "playlist_created", "timestamp": ago(minutes=i),
             "properties": {} if i < 6 else {"playlist_id": f"p{i}"}} for i in range(54)]
    ios = [{"event": "playlist_created", "timestamp": ago(minutes=i), "source": "ios",
            "properties": {"playlist_id": f"i{i}"}} for i in range(400)]
    backfill = [{"event": "playlist_created", "timestamp": ago(days=90, minutes=i),
                 "received_at": ago(hours=2), "historical": True,
                 "properties": {"playlist_id": f"h{i}"}} for i in range(2000)]
    backfill += [{"event": "playlist_created", "timestamp": ago(days=90), "historical": True,
                  "received_at": ago(hours=2), "source": "import", "properties": {}}] * 30
    results = run_checks(inputs(live + ios + backfill), cat, now=NOW, select=["null_rate"])
    by_group = {(r.dimensions["source"], r.dimensions.get("backfill")): r for r in results}
    assert set(by_group) == {("web", None), ("ios", None), ("web", "true"),
                             ("import", "true")}
    web = by_group["web", None]
    assert web.status is Status.fail
    assert web.observed == pytest.approx(6 / 54)
    assert "missing or null in 6 of 54 live playlist_created events from source web (11%)" \
        in web.message
    assert by_group["ios", None].status is Status.passed
    assert "present in all 400 live playlist_created events from source ios" \
        in by_group["ios", None].message
    assert by_group["web", "true"].status is Status.passed
    assert "all 2,000 backfilled playlist_created events from source web" \
        in by_group["web", "true"].message
    # a backfill's own gaps are still found
    assert by_group["import", "true"].status is Status.fail
    assert by_group["import", "true"].observed == 1.0


def test_null_rate_skips_what_the_privacy_policy_drops(inputs: Any, tmp_path: Any) -> None:
    """The collector drops a sensitive property [privacy] does not allow, and a personal
    one handled by drop, before anything is stored: the null-rate check judged each such
    required property missing in every row (a health app's reading_logged.diastolic
    failed at 100%, every day). An allowed one, and a personal one kept, are judged."""
    def required(name: str, pii: str, handling: str | None = None) -> PropertySpec:
        return PropertySpec(name, "integer", required=True, pii=pii, handling=handling)

    cat = catalog(spec("reading_logged", required("systolic", "sensitive"),
                       required("diastolic", "sensitive"), required("pulse", "personal"),
                       required("weight", "personal", "drop"),
                       required("height", "personal", "keep")))
    # as stored: diastolic (not allowed), pulse (personal = drop) and weight are gone
    rows = [{"event": "reading_logged", "timestamp": ago(minutes=i),
             "properties": {"systolic": 120, "height": 170} if i >= 3 else {}}
            for i in range(40)]
    toml = {"privacy": {"allow_sensitive": ["reading_logged.systolic"], "personal": "drop"}}
    cfg = load_config(tmp_path, toml, cat)
    results = run_checks(inputs(rows), cat, cfg, now=NOW, select=["null_rate"])
    judged = {r.dimensions["property"]: r for r in results}
    assert set(judged) == {"properties.systolic", "properties.height"}
    assert judged["properties.systolic"].observed == pytest.approx(3 / 40)
    assert judged["properties.height"].observed == pytest.approx(3 / 40)
    # nerve's defaults without a [privacy] section: personal values are hashed, kept
    default = run_checks(inputs(rows), cat, load_config(tmp_path, {}, cat), now=NOW,
                         select=["null_rate"])
    assert {r.dimensions["property"] for r in default} == {
        "properties.pulse", "properties.height"}


def test_disappeared_values(inputs: Any) -> None:
    cat = catalog(spec("payment_failed", prop("provider", enum=("stripe", "paypal", "adyen"))))
    events = []
    for i in range(200):
        when = ago(days=2, minutes=30 * i)  # the week before: both providers
        events.append({"event": "payment_failed", "timestamp": when,
                       "properties": {"provider": "stripe" if i % 2 else "paypal"}})
    events += [{"event": "payment_failed", "timestamp": ago(minutes=5 * i),
                "properties": {"provider": "stripe"}} for i in range(60)]
    results = run_checks(inputs(events), cat, now=NOW, select=["disappeared_values"])
    gone, = [r for r in results if r.status is not Status.passed]
    assert gone.dimensions == {"property": "properties.provider", "value": "paypal"}
    assert "provider = 'paypal' has disappeared" in gone.message
    assert "of them in the 3 days before" in gone.message


def test_disappeared_values_of_a_sensitive_property_are_not_quoted(inputs: Any) -> None:
    """A kept sensitive enum (a diagnosis): which values stopped is withheld from the
    result, which readers read as stored and webhooks send on; a plain one still says."""
    diagnosis = PropertySpec(name="diagnosis", type="string", pii="sensitive",
                             handling="keep", enum=("asthma", "migraine", "lymphoma"))
    cat = catalog(spec("visit_booked", diagnosis, prop("clinic", enum=("north", "south"))))
    events = [{"event": "visit_booked", "timestamp": ago(days=2, minutes=20 * i),
               "properties": {"diagnosis": ("asthma", "migraine", "lymphoma")[i % 3],
                              "clinic": ("north", "south")[i % 2]}} for i in range(300)]
    events += [{"event": "visit_booked", "timestamp": ago(minutes=5 * i),
                "properties": {"diagnosis": "asthma", "clinic": "north"}} for i in range(90)]
    results = run_checks(inputs(events), cat, now=NOW, select=["disappeared_values"])
    problems = [r for r in results if r.status is not Status.passed]
    withheld, = [r for r in problems if r.dimensions["property"] == "properties.diagnosis"]
    text = json.dumps([r.as_dict() for r in results]) + " ".join(r.name for r in results)
    assert "migraine" not in text
    assert "lymphoma" not in text
    assert withheld.dimensions == {"property": "properties.diagnosis"}
    assert withheld.details == {"values": 2, "withheld": "sensitive"}
    assert "2 usual values of visit_booked.diagnosis have disappeared" in withheld.message
    base = [e for e in events if ago(days=4) <= e["timestamp"] < ago(days=1)]
    gone = sum(e["properties"]["diagnosis"] != "asthma" for e in base)
    assert f"they were {round(100 * gone / len(base))}% of them" in withheld.message
    clinic, = [r for r in problems if r.dimensions["property"] == "properties.clinic"]
    assert clinic.dimensions["value"] == "south"


def test_an_expected_value_that_never_came_is_not_said_to_have_disappeared(inputs: Any
                                                                          ) -> None:
    """A value listed in expected_values that the baseline lacks too read "has
    disappeared ... though it was 0% of them in the 3 days before (about 0 expected)"."""
    doctor = PropertySpec(name="doctor", type="string", pii="personal", handling="keep")
    cat = catalog(spec("visit_booked", doctor, prop("clinic")))
    cfg = ChecksConfig()
    cfg.events["visit_booked"] = {"expected_values": {
        "properties.clinic": ["north", "west"],
        "properties.doctor": ["Dr. Chen", "Dr. Berg", "Dr. Zed"]}}
    events = [{"event": "visit_booked", "timestamp": ago(days=2, minutes=20 * i),
               "properties": {"clinic": "north", "doctor": ("Dr. Chen", "Dr. Berg")[i % 2]}}
              for i in range(100)]
    events += [{"event": "visit_booked", "timestamp": ago(minutes=5 * i),
                "properties": {"clinic": "north", "doctor": "Dr. Chen"}} for i in range(30)]
    results = run_checks(inputs(events), cat, cfg, now=NOW, select=["disappeared_values"])
    problems = {r.dimensions["property"]: r for r in results if r.status is Status.warn}
    clinic = problems["properties.clinic"]
    assert clinic.dimensions["value"] == "west"
    assert "'west' is expected (expected_values in checks.yaml) but has not arrived" \
        in clinic.message
    assert "0%" not in clinic.message
    doctors = problems["properties.doctor"]
    assert "Dr." not in doctors.message
    assert "1 usual value of visit_booked.doctor has disappeared" in doctors.message
    assert "1 value of visit_booked.doctor in expected_values (checks.yaml) has not arrived" \
        in doctors.message
    assert "50% of them" in doctors.message  # Dr. Berg's share, not Dr. Zed's nothing


def test_an_event_gone_from_one_platform_is_a_disappeared_value(inputs: Any) -> None:
    """iOS stopped sending add_to_cart 26 h ago while iOS users go on viewing products: a
    tracking bug, said as such (it was only volume failures). No alarm for an app version
    every event left (an upgrade), nor for a value too rare to be missed."""
    def until(hours: int, per_hour: int) -> Any:
        return lambda start: 0 if start >= ago(hours=hours) else per_hour

    def on(version: str, per_hour: int) -> Any:  # Android users moved to 2.0 30 h ago
        new = version == "2.0"
        return lambda start: per_hour if (start >= ago(hours=30)) == new else 0

    rows = _hourly("product_view", "iOS", 5 * 24, lambda start: 10, version="3.0")
    rows += _hourly("add_to_cart", "iOS", 5 * 24, until(26, 4), version="3.0")
    for version in ("1.0", "2.0"):
        rows += _hourly("product_view", "Android", 5 * 24, on(version, 10), version=version)
        rows += _hourly("add_to_cart", "Android", 5 * 24, on(version, 6), version=version)
    # Windows: 1 add_to_cart a day, gone for two days while its views go on
    rows += _hourly("product_view", "Windows", 5 * 24, lambda start: 1)
    rows += [{"event": "add_to_cart", "timestamp": ago(days=d, minutes=7),
              "context": {"os": {"name": "Windows"}}} for d in (3, 4, 5)]
    cat = catalog(spec("add_to_cart"), spec("product_view"))
    results = run_checks(inputs(rows), cat, now=NOW, select=["disappeared_values"])
    problems = [r for r in results if r.status is not Status.passed]
    # the same gap through iOS's app version; none for 1.0, which every event left
    assert sorted(str(r.dimensions) for r in problems) == [
        "{'app_version': '3.0'}", "{'platform': 'iOS'}"], [r.message for r in problems]
    gone, = (r for r in problems if "platform" in r.dimensions)
    assert gone.event == "add_to_cart"
    assert gone.status is Status.warn
    assert gone.since == ago(hours=26)
    assert gone.message.startswith(
        "add_to_cart has had no event with platform = iOS for 26 h (none since ")
    # 280 of the baseline's 712 (its last two hours had none), 280 per 432 Android
    # events before: 93 beside Android's 144 of the last day
    assert "where it had 39% of them in the 3 days before" in gone.message
    assert "about 93 expected beside the 144 add_to_cart events" in gone.message
    assert "other events with platform = iOS still arrive (240 in the last 24 h)" \
        in gone.message
    # beside the volume check, it reads that check's scan of the dimension: same finding
    both = run_checks(inputs(rows), cat, now=NOW, select=["volume", "disappeared_values"])
    assert [r.message for r in both if r.check == "disappeared_values"
            and r.status is not Status.passed] == [r.message for r in problems]



def test_the_quiet_after_an_outage_is_no_disappeared_value(inputs: Any) -> None:
    """iOS payments failed 10 an hour for two days of the baseline (an outage), then went
    back to their usual one every six hours; none in the last day is no tracking bug.
    Judged by the baseline's share alone (iOS 76% of payment_failed), about 153 were
    expected and the check called it one; iOS's usual daily share expects 4."""
    def ios_failures(start: Any) -> int:
        if ago(hours=72) <= start < ago(hours=24):
            return 10 if start < ago(hours=26) else 0
        return 1 if start.hour % 6 == 0 and start < ago(hours=24) else 0

    rows = _hourly("product_view", "iOS", 8 * 24, lambda start: 10)
    rows += _hourly("product_view", "Android", 8 * 24, lambda start: 10)
    rows += _hourly("payment_failed", "Android", 8 * 24, lambda start: 2)
    rows += _hourly("payment_failed", "iOS", 8 * 24, ios_failures)
    cat = catalog(spec("product_view"), spec("payment_failed"))
    results = run_checks(inputs(rows), cat, now=NOW, select=["disappeared_values"])
    assert [r.message for r in results if r.status is not Status.passed] == []


def test_sequence_expectation(inputs: Any) -> None:
    events = []
    for u in range(40):
        start = ago(hours=3, minutes=u)
        if u < 30:  # 30 users checked out first; 10 bought without a checkout
            events.append({"event": "checkout_start", "user_id": f"u{u}", "timestamp": start})
        gap = timedelta(minutes=20) if u != 0 else timedelta(hours=2)  # u0: too slow
        events.append({"event": "purchase_complete", "user_id": f"u{u}",
                       "timestamp": start + gap})
    seq = Sequence(event="purchase_complete", preceded_by="checkout_start", within=3600,
                   min_share=0.95, name="checkout first")
    cfg = ChecksConfig(sequences=(seq,))
    result, = run_checks(inputs(events), None, cfg, now=NOW, select=["sequence"])
    assert result.status is Status.fail
    assert result.observed == pytest.approx(29 / 40)
    assert result.details == {"users": 40, "users_ok": 29}
    assert "72% of 40 users had every purchase_complete preceded by checkout_start " \
           "within 1 h" in result.message
    good = ChecksConfig(sequences=(Sequence(event="purchase_complete",
                                            preceded_by="checkout_start", within=3 * 3600,
                                            min_share=0.7),))
    result, = run_checks(inputs(events), None, good, now=NOW, select=["sequence"])
    assert result.status is Status.passed


def test_a_sequence_reads_the_earlier_step_from_before_its_window(inputs: Any) -> None:
    """Invoices paid up to 3 days after they were created, judged over the last 7 days:
    an invoice paid early in the window was created before it. Those users were counted
    as paying without an invoice (a tester's B2B app: 264 of 977 users, of whom 75 were)."""
    events = []
    for u in range(30):
        created = ago(days=8, hours=u / 2)  # before the 7-day window
        events.append({"event": "invoice_created", "user_id": f"u{u}", "timestamp": created})
        paid = created + timedelta(days=2)  # in the window, within 3 days
        if u < 3:  # paid 4 days after: too late
            paid = created + timedelta(days=4)
        events.append({"event": "invoice_paid", "user_id": f"u{u}", "timestamp": paid})
    events.append({"event": "invoice_created", "user_id": "u0", "timestamp": ago(days=12)})
    seq = Sequence(event="invoice_paid", preceded_by="invoice_created", within=3 * 86400,
                   window=7 * 86400, min_share=0.95, name="created before paid")
    result, = run_checks(inputs(events), None, ChecksConfig(sequences=(seq,)), now=NOW,
                         select=["sequence"])
    assert result.details == {"users": 30, "users_ok": 27}
    assert "3 users have a invoice_paid without it" in result.message


def test_a_sequence_follows_a_user_across_a_sign_in(inputs: Any) -> None:
    """Checkout started signed out and the purchase signed in (Segment SDKs keep the
    device's anonymous id on both): one user, preceded as expected."""
    events = []
    for u in range(25):
        start = ago(hours=3, minutes=u)
        events.append({"event": "checkout_start", "user_id": None,
                       "anonymous_id": f"device{u}", "timestamp": start})
        events.append({"event": "purchase_complete", "user_id": f"u{u}",
                       "anonymous_id": f"device{u}", "timestamp": start + timedelta(minutes=5)})
    seq = Sequence(event="purchase_complete", preceded_by="checkout_start", within=3600,
                   min_share=0.95, name="checkout first")
    result, = run_checks(inputs(events), None, ChecksConfig(sequences=(seq,)), now=NOW,
                         select=["sequence"])
    assert result.details == {"users": 25, "users_ok": 25}
    assert result.status is Status.passed


def test_a_drop_that_quiet_hours_end_does_not_read_as_a_recovery(inputs: Any) -> None:
    """An event of one half of the day only (none from 10:00 to 22:00) that stopped at
    04:00: the run of hours that stand out ends at 10:00, since an empty hour after that
    is usual. The message said "until 10:00", as if it had come back; none has since."""
    def half_day(start: Any) -> int:
        if start >= NOW.replace(hour=4):
            return 0
        return 0 if 10 <= start.hour < 22 else 30

    config = _config(dimensions=[])
    results = run_checks(inputs(_hourly("booking", "iOS", 7 * 24, half_day)), now=NOW,
                         config=config, select=["volume"])
    found, = (r for r in results if r.status is not Status.passed)
    assert found.details["direction"] == "down"
    assert found.since == NOW.replace(hour=4)
    assert not found.details["ongoing"]  # the run of marked hours ended before now
    assert "and not one since" in found.message
    assert "until" not in found.message


def test_a_drop_after_quiet_hours_names_the_last_event(inputs: Any) -> None:
    """An event of office hours (08:00 to 18:00) whose last one came on Wednesday
    afternoon, judged on Friday at noon: the hours that stand out begin on Thursday at
    08:00, but nothing came since Wednesday 18:00, through a night where none is usual.
    The message named only Thursday 08:00 (a tester's user_invited, gone on a Saturday,
    read as dropped "since Monday 08:00")."""
    def office(start: Any) -> int:
        return 20 if 8 <= start.hour < 18 and start < ago(hours=30) else 0

    results = run_checks(inputs(_hourly("invite", "iOS", 14 * 24, office)), now=NOW,
                         config=_config(dimensions=[]), select=["volume"])
    found, = (r for r in results if r.status is not Status.passed)
    last_quiet = datetime(2026, 11, 18, 18, tzinfo=UTC)
    assert found.since is not None
    assert found.since > last_quiet
    assert found.details["silent_since"] == last_quiet.isoformat()
    assert "none at all since 2026-11-18 18:00 UTC, the hours between being quiet ones" \
        in found.message


def test_a_default_key_dimension_reading_a_personal_trait_is_not_quoted(inputs: Any) -> None:
    """The default ``country`` falls back to ``context.traits.country``: when identify
    classes that trait personal, its values stay out of the results (which readers read,
    webhooks send on and nerve forget does not reach), and a result says why."""
    from nerve.catalog import EventSpec, Version

    events = []
    for hour in range(96):
        at = ago(hours=hour, minutes=30)
        # seat_select stops arriving with country = RawLand in the last day; browse not
        countries = ["Elsewhere", "Elsewhere"] if hour < 24 else ["RawLand", "Elsewhere"]
        for event, values in (("seat_select", countries), ("browse", ["RawLand", "Elsewhere"])):
            events += [{"event": event, "timestamp": at,
                        "context": {"traits": {"country": value}}} for value in values]
    plain = catalog(spec("seat_select"), spec("browse"))
    country = PropertySpec(name="country", type="string", pii="personal", handling="keep")
    personal = catalog(spec("seat_select"), spec("browse"), EventSpec(
        name="identify", type="identify", version=Version(1), properties=(country,)))
    data = inputs(events)
    quoted = run_checks(data, plain, now=NOW, select=["disappeared_values"])
    assert [r.dimensions for r in quoted if r.status is Status.warn] == [{"country": "RawLand"}]
    results = run_checks(data, personal, now=NOW, select=["disappeared_values"])
    assert "RawLand" not in json.dumps([r.as_dict() for r in results])
    note, = [r for r in results if "context.traits.country" in r.message]
    assert note.status is Status.passed
    assert "reads context.location.country only" in note.message
    assert "identify.country (pii: personal)" in note.message
