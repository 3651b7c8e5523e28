"""experiments/*.yaml mistakes: each names the file, the line and the field, none crashes
or is silently read as something else."""

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from nerve.experiments import ExperimentError, load_experiments

BASE = "key: e\nvariants:\n  - {key: a, weight: 0.5}\n  - {key: b, weight: 0.5}\nprimary: m\n"


def _problems(tmp_path: Path, extra: str, base: str = BASE) -> list[str]:
    (tmp_path / "e.yaml").write_text(base + extra)
    with pytest.raises(ExperimentError) as info:
        load_experiments(tmp_path)
    return [f"{where.line}: {what}" for where, what in info.value.problems]


@pytest.mark.parametrize(("extra", "expected"), [
    ("cuped_days: two weeks\n",
     "6: e.cuped_days: expected a whole number of days from 1 to 365, got 'two weeks'"),
    ("cuped_days: -3\n", "6: e.cuped_days: expected a whole number of days from 1 to 365, got -3"),
    ("cuped_days: 7.9\n",
     "6: e.cuped_days: expected a whole number of days from 1 to 365, got 7.9"),
    ("layer: home\nlayer_range: [a, b]\n",
     "7: e.layer_range: expected [low, high] within [0, 1], got ['a', 'b']"),
    ("status: runing\n",
     "6: e.status: expected one of running, active, draft, paused, stopped, got 'runing'"),
    ("exposure_event: {name: viewed}\n",
     "6: e.exposure_event: expected an event name or a list of them, got {'name': 'viewed'}"),
    ("start: 2026-11-01\nend: soon\n",
     "7: e.end: expected an ISO date or datetime (Invalid isoformat string: 'soon')"),
    ("start: 2026-11-20\nend: 2026-11-01\n",
     "7: e.end: 2026-11-01 is not after start 2026-11-20 (a date alone is a whole day: end on "
     "the last day of the test)"),
    ("guardrail: [crashes]\n",
     "6: e.guardrail: unknown field; did you mean guardrails? expected one of alpha, control, "
     "correction, coverage, cuped_days, end, exposure_event, guardrails, holdout, hypothesis, "
     "key, layer, layer_range, mde, name, owner, power, primary, secondary, start, status, "
     "targeting, variants"),
    ("alpha: '0.05'\n",
     "6: e.alpha: expected a fraction from 1e-06 to 0.5, got '0.05'; write it as a number, "
     "without quotes: 0.05"),
    # one string with commas was read as one metric named 'orders, revenue'
    ("secondary: orders, revenue\n",
     "6: e.secondary: expected a list of metric names, got 'orders, revenue'; write "
     "[orders, revenue]"),
])
def test_wrong_values_name_line_and_field(tmp_path: Path, extra: str, expected: str) -> None:
    assert _problems(tmp_path, extra) == [expected]


@pytest.mark.parametrize(("extra", "expected"), [
    # `mde: 5` was read as a lift of +500%: a plan of 17 units per variant, no word
    ("mde: 5\n", "6: e.mde: expected a fraction from 1e-06 to below 1 (the smallest relative "
                 "lift worth detecting, 0.05 for 5%), got 5; a fraction: did you mean 0.05 (5%)?"),
    ("mde: 1\n", "6: e.mde: expected a fraction from 1e-06 to below 1 (the smallest relative "
                 "lift worth detecting, 0.05 for 5%), got 1; a fraction: did you mean 0.01 (1%)?"),
    ("mde: 5%\n", "6: e.mde: expected a fraction from 1e-06 to below 1 (the smallest relative "
                  "lift worth detecting, 0.05 for 5%), got '5%'; a fraction: did you mean 0.05 "
                  "(5%)?"),
    ("mde: 250\n", "6: e.mde: expected a fraction from 1e-06 to below 1 (the smallest relative "
                   "lift worth detecting, 0.05 for 5%), got 250"),
    ("alpha: 5\n", "6: e.alpha: expected a fraction from 1e-06 to 0.5, got 5; a fraction: did "
                   "you mean 0.05 (5%)?"),
    ("power: 80\n", "6: e.power: expected a fraction from 0.05 to 0.9999, got 80; a fraction: "
                    "did you mean 0.8 (80%)?"),
    ("coverage: yes\n", "6: e.coverage: expected a fraction from 0 to 1, got True"),
])
def test_fractions_written_as_percentages_are_refused_with_the_fraction(
        tmp_path: Path, extra: str, expected: str) -> None:
    assert _problems(tmp_path, extra) == [expected]


def test_a_fraction_below_one_is_the_mde(tmp_path: Path) -> None:
    (tmp_path / "e.yaml").write_text(BASE + "mde: 0.5\n")
    assert load_experiments(tmp_path)["e"].mde == 0.5


def test_a_typo_in_a_variant_field_is_an_error_not_weight_one(tmp_path: Path) -> None:
    # {key: a, wieght: 0.8} used to give a the default weight 1.0: a 1.0/0.2 split
    base = "key: e\nvariants:\n  - {key: a, wieght: 0.8}\n  - {key: b, weight: 0.2}\nprimary: m\n"
    assert _problems(tmp_path, "", base) == [
        "2: e.variants: variant 'a': unknown field 'wieght'; expected key, weight, name"]


def test_exposure_events_as_a_list(tmp_path: Path) -> None:
    (tmp_path / "e.yaml").write_text(BASE + "exposure_event: [paywall_seen, Experiment Viewed]\n")
    exp = load_experiments(tmp_path)["e"]
    assert exp.exposure_events == ("paywall_seen", "Experiment Viewed")
    assert exp.cuped_days == 14
    assert exp.status == "running"


def test_a_list_of_primary_metrics_says_one_is_expected(tmp_path: Path) -> None:
    # it said "required", as if primary were missing
    base = "key: e\nvariants: [a, b]\nprimary: [bookers, revenue]\n"
    assert _problems(tmp_path, "", base) == [
        "3: e.primary: expected one metric name (the one that decides the experiment; others "
        "go in secondary), got ['bookers', 'revenue']"]
    assert _problems(tmp_path, "", "key: e\nvariants: [a, b]\n") == [
        "1: e.primary: required: the metric that decides the experiment"]


@pytest.mark.parametrize(("attributes", "expected"), [
    # SDKs tested `"US" in "US"`-style substrings ("S" matched too)
    ("{country: {in: US}}",
     "e.targeting: attributes: country.in: expected a list of values (in: [US]?), got 'US'"),
    ("{country: {not_in: [[US, UK]]}}",
     "e.targeting: attributes: country.not_in: expected a list of values (not_in: "
     "[[['US', 'UK']]]?), got [['US', 'UK']]"),
    # `70 >= [65]` raised in the SDK and no unit entered
    ("{age: {gte: [65]}}",
     "e.targeting: attributes: age.gte: expected one value (a string, number or "
     "true/false), got [65]"),
])
def test_targeting_values_that_do_not_fit_their_operator(tmp_path: Path, attributes: str,
                                                         expected: str) -> None:
    assert _problems(tmp_path, f"targeting:\n  attributes: {attributes}\n") == [
        f"6: {expected}"]
    (tmp_path / "e.yaml").write_text(
        BASE + "targeting:\n  attributes: {country: {in: [US, UK]}, age: {gte: 65}, "
               "member: {eq: true}}\n")
    assert load_experiments(tmp_path)["e"].attributes["country"] == {"in": ["US", "UK"]}


@pytest.mark.parametrize("end", ["2026-11-27", "'2026-11-27'"])
def test_an_end_date_takes_in_its_whole_day(tmp_path: Path, end: str) -> None:
    # `end: 2026-11-27` is the test's last day: an exposure that evening counts (it was
    # midnight before it, leaving the last day's units out of the readout)
    (tmp_path / "e.yaml").write_text(BASE + f"start: 2026-11-20\nend: {end}\n")
    exp = load_experiments(tmp_path)["e"]
    assert exp.start is not None
    assert exp.end is not None
    evening = datetime(2026, 11, 27, 21, 30, tzinfo=UTC)
    assert exp.start <= evening < exp.end
    assert not exp.start <= datetime(2026, 11, 28, 0, 30, tzinfo=UTC) < exp.end
    # a start and end on the same day are that one day
    (tmp_path / "e.yaml").write_text(BASE + "start: 2026-11-20\nend: 2026-11-20\n")
    one_day = load_experiments(tmp_path)["e"]
    assert one_day.start is not None
    assert one_day.end is not None
    assert one_day.start <= datetime(2026, 11, 20, 12, tzinfo=UTC) < one_day.end


def test_dates_are_days_of_the_workspace_time_zone(tmp_path: Path) -> None:
    """In New York, `end: 2026-11-22` takes in that Sunday evening, 23:30 local, which
    is 04:30 UTC on the 23rd (a whole UTC day left the last evening's exposures out), and
    `start: 2026-11-09` begins at its local midnight, 05:00 UTC; a datetime without an
    offset is local time too."""
    (tmp_path / "e.yaml").write_text(BASE + "start: 2026-11-09\nend: 2026-11-22\n")
    exp = load_experiments(tmp_path, "America/New_York")["e"]
    assert exp.start is not None
    assert exp.end is not None
    assert exp.start == datetime(2026, 11, 9, 5, tzinfo=UTC)
    assert exp.end == datetime(2026, 11, 23, 5, tzinfo=UTC)
    assert exp.start <= datetime(2026, 11, 23, 4, 30, tzinfo=UTC) < exp.end
    assert not exp.start <= datetime(2026, 11, 9, 4, 30, tzinfo=UTC) < exp.end
    (tmp_path / "e.yaml").write_text(BASE + "end: 2026-11-22T18:00:00\n")
    evening = load_experiments(tmp_path, "America/New_York")["e"].end
    assert evening == datetime(2026, 11, 22, 23, tzinfo=UTC)


def test_an_end_moment_is_that_moment(tmp_path: Path) -> None:
    (tmp_path / "e.yaml").write_text(BASE + "end: 2026-11-27T12:00:00+00:00\n")
    exp = load_experiments(tmp_path)["e"]
    assert exp.end is not None
    assert datetime(2026, 11, 27, 11, 59, tzinfo=UTC) < exp.end
    assert not datetime(2026, 11, 27, 12, 0, tzinfo=UTC) < exp.end


def test_a_misspelt_key_names_the_experiment_it_probably_means() -> None:
    from nerve.errors import UserError
    from nerve.experiments import get_experiment

    known: dict[str, Any] = {"autoplay_next": object(), "dark_mode": object()}
    with pytest.raises(UserError, match=r"no experiment 'autoplay_nxt' \(did you mean "
                                        r"autoplay_next\?\) \(known: autoplay_next, "
                                        r"dark_mode\)"):
        get_experiment(known, "autoplay_nxt")
    with pytest.raises(UserError, match=r"no experiment 'checkout' \(known: "):
        get_experiment(known, "checkout")
