"""The withheld and refusals checks, and missing_events naming consent drops, on hand-made
ledgers (``loads.withheld``, as the loader records the collector's tally rows), on every
engine."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from tests.quality.conftest import NOW, ago, catalog, spec

from nerve.quality import ChecksConfig, Status, load_config, run_checks


def _counts(consent: dict[str, dict[str, int]] | None = None,
            refused: dict[str, dict[str, int]] | None = None) -> str:
    return orjson.dumps({k: v for k, v in (("consent", consent), ("refused", refused))
                         if v}).decode()


def test_consent_drops_are_judged_per_event_as_a_share_of_what_arrived(inputs: Any) -> None:
    events = [{"event": "signup", "timestamp": ago(minutes=i)} for i in range(70)]
    events += [{"event": "search", "timestamp": ago(minutes=i)} for i in range(99)]
    loads = [{"at": ago(hours=1), "rows_in": 169, "duplicates": 0,
              "withheld": _counts({"web": {"signup": 20, "search": 1}, "ios": {"signup": 10}})},
             {"at": ago(hours=2), "rows_in": 0, "duplicates": 0},
             # outside the 24 h window
             {"at": ago(days=2), "rows_in": 0, "duplicates": 0,
              "withheld": _counts({"web": {"search": 500}})}]
    results = run_checks(inputs(events, loads=loads), now=NOW, select=["withheld"])
    by = {r.event: r for r in results}
    signup, search = by["signup"], by["search"]
    assert signup.status is Status.warn  # 30% > 10%, under 90%
    assert signup.observed == pytest.approx(0.3)
    assert signup.details == {"withheld": 30, "stored": 70, "arrived": 100,
                              "sources": {"ios": 10, "web": 20}}
    assert signup.message == (
        "30% of signup events were withheld for consent in the last 24 h: 30 of 100 arrived "
        "were not stored, as the sender's consent does not cover the event's purpose (by "
        "source: web 20, ios 10; expected at most 10%).")
    assert signup.name == "withheld:signup"
    assert search.status is Status.passed
    assert search.observed == pytest.approx(0.01)


def test_an_event_none_of_which_was_stored(inputs: Any) -> None:
    loads = [{"at": ago(hours=1), "rows_in": 0, "duplicates": 0,
              "withheld": _counts({"web": {"app_opened": 25}})}]
    few = [{"at": ago(hours=1), "rows_in": 0, "duplicates": 0,
            "withheld": _counts({"web": {"app_opened": 5}})}]
    events = [{"event": "other", "timestamp": ago(minutes=1)}]
    gone, = run_checks(inputs(events, loads=loads), now=NOW, select=["withheld"])
    assert gone.status is Status.fail
    assert "None was stored: is the event's purpose in the catalog" in gone.message
    # under min_events (20) arrivals it only warns
    rare, = run_checks(inputs(events, loads=few), now=NOW, select=["withheld"])
    assert rare.status is Status.warn
    # per event, as checks.yaml allows
    cfg = ChecksConfig(events={"app_opened": {"withheld": {"warn": 1.0, "fail": 1.0}}})
    allowed, = run_checks(inputs(events, loads=loads), config=cfg, now=NOW,
                          select=["withheld"])
    assert allowed.status is Status.passed


def test_refused_requests_by_status_and_code(inputs: Any) -> None:
    loads = [{"at": ago(hours=1), "rows_in": 0, "duplicates": 0,
              "withheld": _counts(refused={"401": {"unauthorized": 150},
                                           "400": {"invalid_json": 1},
                                           "429": {"rate_limited": 40}})},
             {"at": ago(hours=3), "rows_in": 0, "duplicates": 0,
              "withheld": _counts(refused={"503": {"overloaded": 101}})}]
    events = [{"event": "a", "timestamp": ago(minutes=1)}]
    results = run_checks(inputs(events, loads=loads), now=NOW, select=["refusals"])
    by = {r.dimensions["code"]: r for r in results}
    assert by["unauthorized"].status is Status.fail  # more than 100
    assert by["unauthorized"].name == "refusals:code=unauthorized:status=401"
    assert by["unauthorized"].message == (
        "The collector refused 150 requests with 401 unauthorized in the last 24 h "
        "(clients drop what a 4xx refuses: their events are lost; expected at most 0).")
    assert by["invalid_json"].status is Status.warn
    assert by["rate_limited"].status is Status.passed  # retried, 40 <= 100
    assert by["overloaded"].status is Status.warn  # retried, 101 > 100
    assert by["overloaded"].details == {"requests": 101, "retried": True}


def test_thresholds_come_from_defaults_in_checks_yaml(inputs: Any, tmp_path: Any) -> None:
    (tmp_path / "checks.yaml").write_text(
        "defaults:\n  refusals: {warn_requests: 5, fail_requests: 10, window: 2h}\n"
        "  withheld: {warn: 0.5}\n", encoding="utf-8")
    cfg = load_config(tmp_path, {})
    loads = [{"at": ago(hours=1), "rows_in": 0, "duplicates": 0,
              "withheld": _counts({"web": {"a": 1}}, {"401": {"unauthorized": 4}})},
             {"at": ago(hours=3), "rows_in": 0, "duplicates": 0,
              "withheld": _counts(refused={"401": {"unauthorized": 50}})}]
    events = [{"event": "a", "timestamp": ago(minutes=i)} for i in range(3)]
    results = run_checks(inputs(events, loads=loads), config=cfg, now=NOW,
                         select=["refusals", "withheld"])
    refused, = [r for r in results if r.check == "refusals"]
    assert (refused.status, refused.observed) == (Status.passed, 4)  # 2 h window, 4 <= 5
    withheld, = [r for r in results if r.check == "withheld"]
    assert withheld.status is Status.passed  # 25% <= 50%


def test_nothing_withheld_and_a_ledger_without_the_column(inputs: Any, engine: Any) -> None:
    events = [{"event": "a", "timestamp": ago(minutes=1)}]
    loads = [{"at": ago(hours=1), "rows_in": 1, "duplicates": 0}]
    results = run_checks(inputs(events, loads=loads), now=NOW,
                         select=["withheld", "refusals"])
    assert [(r.check, r.status) for r in results] == [("withheld", Status.passed),
                                                      ("refusals", Status.passed)]
    assert results[0].message == ("The collector withheld no event for consent in the last "
                                  "24 h.")
    old = inputs(events, loads=loads)
    old = type(old)(events=old.events, loads=old.loads.drop("withheld"))
    results = run_checks(old, now=NOW, select=["withheld", "refusals"])
    assert all(r.status is Status.passed and "No loader ledger" in r.message
               for r in results)


def test_missing_events_names_the_consent_drops(inputs: Any) -> None:
    cat = catalog(spec("app_opened"), spec("search"))
    events = [{"event": "search", "timestamp": ago(minutes=5)}]
    loads = [{"at": ago(days=2), "rows_in": 1, "duplicates": 0,
              "withheld": _counts({"web": {"app_opened": 40}, "ios": {"app_opened": 2}})}]
    results = run_checks(inputs(events, loads=loads), cat, now=NOW,
                         select=["missing_events"])
    missing = {r.event: r for r in results}["app_opened"]
    assert missing.status is Status.warn
    assert missing.message == (
        "app_opened is in the catalog, but no app_opened event has an event time in the "
        "last 7 days, nor any in the last 28 days; but 42 app_opened events arrived in that "
        "time and were withheld for consent: the sender's consent does not cover the "
        "event's purpose (see the withheld check).")
    assert missing.details == {"withheld": 42}
    plain = run_checks(inputs(events, loads=[]), cat, now=NOW, select=["missing_events"])
    assert {r.event: r for r in plain}["app_opened"].details == {}
