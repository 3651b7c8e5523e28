"""Schema, drift, duplicates, freshness, loader lag, lateness and clock skew on hand-made
tables, on every engine."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from tests.quality.conftest import NOW, ago, catalog, spec

from nerve.errors import UserError
from nerve.quality import ChecksConfig, Status, load_config, run_checks


def by(results: list[Any], check: str, **dims: str) -> list[Any]:
    return [r for r in results if r.check == check
            and all(r.dimensions.get(k) == v for k, v in dims.items())]


def test_schema_violation_rate_per_event_and_source(inputs: Any) -> None:
    events = [{"event": "add_to_cart", "timestamp": ago(minutes=i), "source": "web"}
              for i in range(90)]
    events += [{"event": "add_to_cart", "timestamp": ago(minutes=i), "source": "ios"}
               for i in range(100)]
    bad = [{"path": "$.properties.price", "rule": "type", "message": "not a number"}]
    quarantine = [{"event": "add_to_cart", "timestamp": ago(hours=3, minutes=i),
                   "source": "web", "violations": bad} for i in range(10)]
    results = run_checks(inputs(events, quarantine), now=NOW, select=["schema"])
    web, = by(results, "schema", source="web")
    assert web.status is Status.fail
    assert web.observed == pytest.approx(0.10)
    assert web.expected == {"min": 0.0, "max": 0.01}
    assert "10% of add_to_cart events from source web failed the catalog schema" in web.message
    assert "$.properties.price type (10)" in web.message
    assert "`nerve quarantine list --event add_to_cart` shows them" in web.message
    assert web.since is not None
    assert web.since <= ago(hours=3)
    ios, = by(results, "schema", source="ios")
    assert ios.status is Status.passed
    assert ios.observed == 0


def test_schema_and_drift_without_a_quarantine_table_do_not_claim_every_event_matched(
        inputs: Any) -> None:
    # a PostgreSQL copy of `events` alone (docs/storage.md's recipe): it holds only the
    # rows that passed, so "All 90 add_to_cart events ... matched the catalog schema"
    # was said whatever the quarantine held
    events = [{"event": "add_to_cart", "timestamp": ago(minutes=i), "source": "web"}
              for i in range(90)]
    results = run_checks(inputs(events), catalog(spec("add_to_cart")), now=NOW,
                         select=["schema", "drift"])
    schema, = by(results, "schema")
    assert "No quarantine table" in schema.message
    assert "matched" not in schema.message
    drift, = by(results, "drift")
    assert "no quarantine table" in drift.message


def test_drift_names_unknown_events_and_properties(inputs: Any) -> None:
    events = [{"event": "add_to_cart", "timestamp": ago(minutes=1)}]
    quarantine = [{"event": "add_to_kart", "timestamp": ago(minutes=5), "violations": [
        {"path": "$.event", "rule": "unknown_event", "message": "not in the catalog"}]}] * 3
    quarantine += [{"event": "add_to_cart", "timestamp": ago(minutes=5), "violations": [
        {"path": "$.properties", "rule": "additional_properties",
         "message": "Additional properties are not allowed ('coupon' was unexpected)"}]}]
    # inside a declared object, and in an object of an array: named where they were sent
    quarantine += [{"event": "add_to_cart", "timestamp": ago(minutes=5), "violations": [
        {"path": "$.properties.shipping", "rule": "additional_properties",
         "message": "Additional properties are not allowed ('street' was unexpected)"},
        {"path": "$.properties.items[2]", "rule": "additional_properties",
         "message": "Additional properties are not allowed ('colour' was unexpected)"}]}]
    results = run_checks(inputs(events, [dict(q) for q in quarantine]), now=NOW,
                         select=["drift", "schema"])
    unknown = [r for r in by(results, "drift") if r.event == "add_to_kart"]
    assert len(unknown) == 1
    assert unknown[0].status is Status.warn
    assert unknown[0].observed == 3
    assert "'add_to_kart' is not in the catalog" in unknown[0].message
    props = [r for r in by(results, "drift") if r.event == "add_to_cart"]
    assert "coupon (1)" in props[0].message
    assert "shipping.street (1)" in props[0].message
    assert "items[].colour (1)" in props[0].message
    # an unknown event is drift, not a schema violation of some event
    assert not [r for r in by(results, "schema") if r.event == "add_to_kart"]
    # with the catalog, the warning names the event the sender probably meant
    known = run_checks(inputs(events, [dict(q) for q in quarantine]),
                       catalog(spec("add_to_cart"), spec("checkout_start")), now=NOW,
                       select=["drift"])
    kart, = [r for r in by(known, "drift") if r.event == "add_to_kart"]
    assert kart.message.endswith("or fix the sender (did you mean add_to_cart?).")


def test_drift_passes_when_everything_is_known(inputs: Any) -> None:
    events = [{"event": "add_to_cart", "timestamp": ago(minutes=1)}]
    results = run_checks(inputs(events, []), catalog(spec("add_to_cart")), now=NOW,
                         select=["drift"])
    assert [r.status for r in results] == [Status.passed]


def test_loader_duplicates_share(inputs: Any) -> None:
    events = [{"event": "a", "timestamp": ago(minutes=1)}]
    loads = [{"at": ago(hours=1), "rows_in": 1000, "duplicates": 50},
             {"at": ago(hours=2), "rows_in": 1000, "duplicates": 0},
             {"at": ago(days=3), "rows_in": 1000, "duplicates": 900}]  # outside the window
    result, = run_checks(inputs(events, loads=loads), now=NOW, select=["duplicates"])
    assert result.status is Status.warn
    assert result.observed == pytest.approx(0.025)
    assert "dropped 50 of 2,000 incoming rows (2.5%)" in result.message
    clean, = run_checks(inputs(events, loads=loads[1:2]), now=NOW, select=["duplicates"])
    assert clean.status is Status.passed


def test_one_sources_resends_are_not_diluted_by_another_sources_backfill(
        inputs: Any) -> None:
    """10% of the app's rows were resent copies, but a backfill of 1,900 rows in the same
    day brought the pipeline's share down to 0.5%: the app's own share fails."""
    events = ([{"event": "a", "timestamp": ago(minutes=5), "source": "app"}] * 90
              + [{"event": "a", "timestamp": ago(minutes=5), "source": "backfill"}] * 1900)
    loads = [{"at": ago(hours=1), "rows_in": 2000, "duplicates": 10,
              "duplicate_sources": '{"app": 10}'}]
    total, app = run_checks(inputs(events, loads=loads), now=NOW, select=["duplicates"])
    assert (total.dimensions, total.status, total.observed) == ({}, Status.warn, 0.005)
    assert (app.dimensions, app.status) == ({"source": "app"}, Status.fail)
    assert app.observed == pytest.approx(0.1)
    assert app.details == {"rows_in": 100, "duplicates": 10}
    assert "dropped 10 of the 100 rows from source app (10%)" in app.message
    # one source sending: its share is the total's, said once
    alone = [e for e in events if e["source"] == "app"]
    only, = run_checks(inputs(alone, loads=loads), now=NOW, select=["duplicates"])
    assert only.dimensions == {}


def test_natural_key_duplicates(inputs: Any) -> None:
    t = ago(minutes=30)
    events = [{"event": "search", "user_id": f"u{i}", "timestamp": ago(minutes=i),
               "properties": {"q": "shoes"}} for i in range(40)]
    events += [{"event": "search", "user_id": "u1", "timestamp": t,
                "properties": {"q": "boots"}}] * 2  # same action, two message ids
    events += [{"event": "purchase_complete", "user_id": f"u{i}", "timestamp": ago(minutes=i),
                "properties": {"order_id": f"o{i % 25}"}} for i in range(30)]
    cfg = ChecksConfig(events={"purchase_complete": {"natural_key": ["properties.order_id"]}})
    results = run_checks(inputs([dict(e) for e in events]), None, cfg, now=NOW,
                         select=["natural_key_duplicates"])
    search = next(r for r in results if r.event == "search")
    assert search.status is Status.fail  # 1 of 42 = 2.4% > 1%
    assert search.details == {"rows": 42, "duplicates": 1}
    purchase = next(r for r in results if r.event == "purchase_complete")
    assert purchase.details == {"rows": 30, "duplicates": 5}
    assert "properties.order_id" in purchase.message


def test_natural_key_duplicates_of_a_backfill_say_they_were_received_in_the_window(
        inputs: Any) -> None:
    """A month of orders imported today is judged today: the message says the rows were
    received in the last 24 h, not that 30 orders happened in it."""
    events = [{"event": "purchase_complete", "user_id": f"u{i}", "timestamp": ago(days=i),
               "received_at": ago(minutes=5), "properties": {"order_id": f"o{i % 25}"}}
              for i in range(30)]
    cfg = ChecksConfig(events={"purchase_complete": {"natural_key": ["properties.order_id"]}})
    result, = run_checks(inputs([dict(e) for e in events]), None, cfg, now=NOW,
                         select=["natural_key_duplicates"])
    assert result.details == {"rows": 30, "duplicates": 5}
    assert "purchase_complete events (17%) received in the last 24 h" in result.message


def test_natural_key_duplicates_of_one_source_are_not_diluted_by_a_backfill(
        inputs: Any) -> None:
    """40 of a web client's 80 watering_logged events were the same actions sent twice;
    a 14,000-row backfill received the same day read that as 0.28%, a warning. Each
    source with repeats is judged on its own rows too, as the duplicates check does."""
    live = [{"event": "watering", "user_id": f"u{i}", "timestamp": ago(minutes=i),
             "original_timestamp": ago(minutes=i), "properties": {"plant": f"p{i}"}}
            for i in range(40)]
    live += [dict(e) for e in live]  # each action tracked twice, new message ids
    backfill = [{"event": "watering", "user_id": f"b{i}", "timestamp": ago(days=3, minutes=i),
                 "received_at": ago(minutes=5), "source": "import", "historical": True,
                 "properties": {"plant": "p"}} for i in range(5000)]
    # and one action both sent live and imported again: the event's total holds it
    backfill.append({**live[0], "source": "import", "historical": True})
    results = run_checks(inputs(live + backfill), None, ChecksConfig(), now=NOW,
                         select=["natural_key_duplicates"])
    total, = (r for r in results if not r.dimensions)
    assert total.details == {"rows": 5081, "duplicates": 41}
    assert total.status is Status.warn  # 41 of 5,081 = 0.81%
    web, = (r for r in results if r.dimensions)
    assert web.dimensions == {"source": "web"}
    assert web.name == "natural_key_duplicates:watering:source=web"
    assert web.details == {"rows": 80, "duplicates": 40}
    assert web.observed == pytest.approx(0.5)
    assert web.status is Status.fail
    assert web.message.startswith("40 of the 80 watering events from source web (50%) "
                                  "received in the last 24 h repeat")
    # a source graded as the total is not repeated: its share adds nothing
    alone = run_checks(inputs(live), None, ChecksConfig(), now=NOW,
                       select=["natural_key_duplicates"])
    assert [r.name for r in alone] == ["natural_key_duplicates:watering"]
    mixed = [*live, *({**e, "source": "import", "historical": True} for e in backfill[:30])]
    same = run_checks(inputs(mixed), None, ChecksConfig(), now=NOW,
                      select=["natural_key_duplicates"])
    assert [r.name for r in same] == ["natural_key_duplicates:watering"]


def test_natural_key_duplicates_match_the_timestamp_the_client_sent(inputs: Any) -> None:
    """An SDK that tracks one action twice sends the same timestamp in both messages, but
    nerve corrects each message's timestamp by its own sentAt and arrival, so the stored
    timestamps differ by the network's microseconds: the key is the sent timestamp."""
    events = [{"event": "meditation_completed", "user_id": f"u{i}",
               "timestamp": ago(minutes=i), "original_timestamp": ago(minutes=i),
               "properties": {"track": "t1"}} for i in range(40)]
    # 4 actions tracked again a minute later under new message ids, corrected apart
    events += [{**events[i], "timestamp": events[i]["timestamp"] + timedelta(microseconds=324),
                "received_at": events[i]["timestamp"] + timedelta(minutes=1)}
               for i in range(1, 5)]
    # a message without a sent timestamp still keys by its stored one
    events += [{"event": "meditation_completed", "user_id": "u0", "timestamp": ago(hours=2),
                "properties": {"track": "t2"}}] * 2
    result, = run_checks(inputs([dict(e) for e in events]), now=NOW,
                         select=["natural_key_duplicates"])
    assert result.details == {"rows": 46, "duplicates": 5}
    assert result.status is Status.fail  # 5 of 46 = 11% > 1%


def test_a_past_now_judges_only_what_had_arrived_by_then(inputs: Any) -> None:
    # `nerve check --now <earlier>`: rows received after that moment (a backfill loaded
    # since, a later client bug) are not "in the last 24 h" of it
    later = NOW + timedelta(hours=5)
    events = [{"event": "search", "user_id": f"u{i}", "timestamp": ago(minutes=i),
               "properties": {"q": "shoes"}} for i in range(40)]
    events += [{"event": "search", "user_id": "u1", "timestamp": later, "received_at": later,
                "properties": {"q": "boots"}}] * 2  # one action twice, arriving later
    events += [{"event": "search", "user_id": f"u{i}", "timestamp": later - timedelta(hours=3),
                "received_at": later} for i in range(30)]  # three hours late, arriving later
    bad = [{"path": "$.properties.q", "rule": "type", "message": "not a string"}]
    quarantine = [{"event": "search", "timestamp": later, "violations": bad}] * 10
    loads = [{"at": ago(hours=1), "rows_in": 1000, "duplicates": 0},
             {"at": later, "rows_in": 1000, "duplicates": 500}]
    checks = ["natural_key_duplicates", "schema", "duplicates", "lateness", "freshness"]
    then = run_checks(inputs(events, quarantine, loads), now=NOW, select=checks)
    assert [r.message for r in then if r.status is not Status.passed] == []
    doubles, = by(then, "natural_key_duplicates")
    assert doubles.details == {"rows": 40, "duplicates": 0}
    fresh, = by(then, "freshness", source="web")
    assert fresh.observed == pytest.approx(0)  # the last one before NOW arrived at NOW
    # judged after they arrived, the same rows are found
    after = run_checks(inputs(events, quarantine, loads), now=later + timedelta(minutes=1),
                       select=checks)
    assert {r.check for r in after if r.status is not Status.passed} == {
        "natural_key_duplicates", "schema", "duplicates", "lateness"}


def test_freshness_live_only(inputs: Any) -> None:
    # web sent every 10 min for two days, then stopped 12 h ago; imports are not judged
    events = [{"event": "page_view", "timestamp": ago(hours=12, minutes=10 * i),
               "source": "web"} for i in range(288)]
    events += [{"event": "page_view", "timestamp": ago(days=5), "received_at": ago(days=5),
                "source": "import", "historical": True}]
    events += [{"event": "page_view", "timestamp": ago(minutes=10 * i), "source": "ios"}
               for i in range(6)]
    results = run_checks(inputs(events), now=NOW, select=["freshness"])
    web, = by(results, "freshness", source="web")
    assert web.status is Status.fail
    assert web.observed == pytest.approx(12 * 3600)
    assert "No page_view event has arrived from source web for 12 h" in web.message
    assert web.since == ago(hours=12)
    ios, = by(results, "freshness", source="ios")
    assert ios.status is Status.passed
    assert not by(results, "freshness", source="import")


def test_freshness_fails_a_source_silent_for_longer_than_the_scan(inputs: Any) -> None:
    """A source whose last live event came before the 28 days the hourly profile scans got
    no freshness result at all (`nerve check --now 2031-01-01` said nothing); retired
    events and imports still get none."""
    cat = catalog(spec("page_view"), spec("old_banner", status="deprecated"))
    events = [{"event": "page_view", "timestamp": ago(days=40, minutes=10 * i),
               "source": "web"} for i in range(100)]
    events += [{"event": "page_view", "timestamp": ago(minutes=10 * i), "source": "ios"}
               for i in range(6)]
    events += [{"event": "page_view", "timestamp": ago(days=60), "received_at": ago(days=60),
                "source": "import", "historical": True}]
    events += [{"event": "old_banner", "timestamp": ago(days=50), "source": "web"}]
    events += [{"event": "removed", "timestamp": ago(days=50), "source": "web"}]
    # silent for over a year before the scanned span: retired, not read again every run
    events += [{"event": "page_view", "timestamp": ago(days=28 + 370), "source": "kiosk"}]
    results = run_checks(inputs(events), cat, now=NOW, select=["freshness"])
    web, = by(results, "freshness", source="web")
    assert web.event == "page_view"
    assert web.status is Status.fail
    assert web.observed == pytest.approx(40 * 86400)
    assert web.since == ago(days=40)
    assert web.expected == {"min": 0.0, "max": 7 * 86400}
    assert web.message == (
        "No live page_view event has arrived from source web for 40 days, since "
        "2026-10-11 12:00 UTC: none in the 28 days the checks scan, so its usual rate is "
        "unknown (expected one at least every 7 days).")
    ios, = by(results, "freshness", source="ios")
    assert ios.status is Status.passed
    assert not by(results, "freshness", source="import")
    assert not by(results, "freshness", source="kiosk")
    assert {r.event for r in results} == {"page_view"}


def test_freshness_of_a_long_silent_source_holds_configured_thresholds(
        inputs: Any, tmp_path: Any) -> None:
    # a monthly batch: silent for 40 days is late (warn_after 35d), not yet failed
    (tmp_path / "checks.yaml").write_text(
        "events:\n  invoice_sent:\n    freshness: {warn_after: 35d, fail_after: 70d}\n")
    events = [{"event": "invoice_sent", "timestamp": ago(days=40), "source": "billing"}]
    results = run_checks(inputs(events), now=NOW, config=load_config(tmp_path),
                         select=["freshness"])
    billing, = by(results, "freshness", source="billing")
    assert billing.status is Status.warn
    assert billing.expected == {"min": 0.0, "max": 35 * 86400}
    after = run_checks(inputs(events), now=NOW + timedelta(days=31),
                       config=load_config(tmp_path), select=["freshness"])
    assert by(after, "freshness", source="billing")[0].status is Status.fail


def test_loader_lag(inputs: Any) -> None:
    events = [{"event": "a", "timestamp": ago(minutes=i), "loaded_at": ago(minutes=i - 10)}
              for i in range(20, 50)]
    result, = run_checks(inputs(events), now=NOW, select=["loader_lag"])
    assert result.status is Status.warn
    assert result.observed == pytest.approx(600)
    assert "within 10 min of arrival" in result.message


def test_lateness_and_skew_look_at_live_traffic_only(inputs: Any) -> None:
    events = []
    for i in range(100):
        happened = ago(hours=5, minutes=i)
        late = i < 10
        events.append({
            "event": "add_to_cart", "timestamp": happened,
            "received_at": happened + timedelta(hours=3 if late else 0, seconds=2),
            # five devices whose clocks ran 2 h fast
            "original_timestamp": happened + timedelta(hours=2 if i >= 95 else 0),
            "sent_at": happened + timedelta(hours=2 if i >= 95 else 0, seconds=1),
        })
    # a backfill is not late, however old
    events += [{"event": "add_to_cart", "timestamp": ago(days=20), "received_at": ago(hours=1),
                "historical": True}] * 50
    results = run_checks(inputs([dict(e) for e in events]), now=NOW,
                         select=["lateness", "clock_skew"])
    late, = by(results, "lateness")
    assert late.status is Status.fail
    assert late.observed == pytest.approx(0.10)
    assert late.details["late"] == 10
    assert late.details["events"] == 100
    # when the late ones happened, so that a caveat names the periods they are in
    assert (late.details["happened_from"], late.details["happened_to"]) == \
        (ago(hours=5, minutes=9).isoformat(), ago(hours=5).isoformat())
    assert "arrived more than 1 h after they happened" in late.message
    skew, = by(results, "clock_skew")
    assert skew.status is Status.warn
    assert skew.observed == pytest.approx(0.05)
    assert "clock was off by more than 10 min" in skew.message


def test_events_stamped_after_they_arrived_are_said_to_be_in_the_future(inputs: Any) -> None:
    """A client whose timestamp is 3 h after its own sentAt: the corrected time is 3 h
    after the event arrived, and nothing said so (lateness looks at late events only)."""
    events = [{"event": "add_to_cart", "timestamp": ago(hours=2, minutes=i),
               "received_at": ago(hours=2, minutes=i)
               + timedelta(hours=-3 if i < 4 else 0, seconds=1)} for i in range(40)]
    results = run_checks(inputs(events), now=NOW, select=["lateness"])
    late, ahead = sorted(results, key=lambda r: "ahead" in r.dimensions)
    assert late.details["late"] == 0
    assert (ahead.dimensions, ahead.status) == ({"source": "web", "ahead": "true"},
                                                Status.fail)
    assert ahead.observed == pytest.approx(0.10)
    assert ahead.details["ahead"] == 4
    assert (ahead.details["happened_from"], ahead.details["happened_to"]) == \
        (ago(hours=2, minutes=3).isoformat(), ago(hours=2).isoformat())
    assert "happened_from" not in late.details  # no late event, no range
    assert ("10% of live add_to_cart events from source web happened, by their timestamps, "
            "more than 5 min after they arrived (up to 3 h)") in ahead.message
    # within the tolerance (a clock a minute ahead after correction): nothing to say
    for e in events[:4]:
        e["received_at"] = e["timestamp"] - timedelta(minutes=1)
    assert len(run_checks(inputs(events), now=NOW, select=["lateness"])) == 1


def test_a_selection_naming_neither_a_check_nor_an_event_is_refused(inputs: Any) -> None:
    """Said alike to the CLI's --select and the HTTP body's select (it named the flag)."""
    table = inputs([{"event": "add_to_cart", "timestamp": ago(minutes=1)}])
    with pytest.raises(UserError, match=r"^select: add_to_crt: neither a check \("):
        run_checks(table, catalog(spec("add_to_cart")), now=NOW, select=["add_to_crt"])
    # beside a check too: 'lateness,add_to_crt' checked nothing and passed a CI gate
    with pytest.raises(UserError, match=r"^select: add_to_crt: neither a check \("):
        run_checks(table, catalog(spec("add_to_cart")), now=NOW,
                   select=["lateness", "add_to_crt"])
    # the closest check or event is named, as everywhere else a name is misspelt
    with pytest.raises(UserError, match=r"nor a cataloged event \(did you mean add_to_cart, "
                                        r"lateness\?\)$"):
        run_checks(table, catalog(spec("add_to_cart")), now=NOW,
                   select=["add_to_crt", "latenes"])


def test_broken_input_is_an_error_result_not_a_crash(inputs: Any, engine: Any) -> None:
    table = inputs([{"event": "a", "timestamp": ago(minutes=1)}])
    broken = type(table)(events=table.events.drop("received_at"))
    results = run_checks(broken, now=NOW, select=["lateness", "schema"])
    assert {r.status for r in results} == {Status.error}
    assert all("could not run" in r.message for r in results)
