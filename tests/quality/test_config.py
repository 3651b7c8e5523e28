"""checks.yaml and [checks] in nerve.toml: defaults, overrides, and errors that say where."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.quality.conftest import catalog, prop, spec

from nerve.catalog import PropertySpec
from nerve.errors import UserError
from nerve.quality import DEFAULTS, load_config
from nerve.quality._config import parse_duration


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "checks.yaml").write_text(text, encoding="utf-8")
    return tmp_path


def test_no_file_means_the_defaults(tmp_path: Path) -> None:
    cfg = load_config(tmp_path)
    assert cfg.get("volume", "sensitivity") == DEFAULTS["volume"]["sensitivity"]
    assert cfg.webhook_url is None
    assert cfg.every == 300
    assert cfg.sequences == ()


def test_defaults_events_sequences_webhook(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, """
defaults:
  volume: {sensitivity: 5, training: 14d}
dimensions:
  country: traits.country
events:
  purchase_complete:
    natural_key: [properties.order_id]
    volume: {direction: down}
    disabled: [lateness]
sequences:
  - {event: purchase_complete, preceded_by: checkout_start, within: 1h, min_share: 0.95}
webhook: {url: "http://127.0.0.1:9/hook", alert_on: [fail, warn]}
schedule: {every: 2m}
"""))
    assert cfg.get("volume", "sensitivity") == 5
    assert cfg.seconds("volume", "training") == 14 * 86400
    assert cfg.get("volume", "direction", "purchase_complete") == "down"
    assert cfg.get("volume", "direction", "search") == "both"
    assert cfg.natural_key("purchase_complete") == ("properties.order_id",)
    assert not cfg.enabled("lateness", "purchase_complete")
    assert cfg.enabled("lateness", "search")
    assert cfg.dimensions["country"] == ("traits.country",)
    seq, = cfg.sequences
    assert (seq.event, seq.preceded_by, seq.within, seq.min_share) == (
        "purchase_complete", "checkout_start", 3600, 0.95)
    assert cfg.webhook_url == "http://127.0.0.1:9/hook"
    assert cfg.webhook_on == ("fail", "warn")
    assert cfg.every == 120


def test_nerve_toml_checks_section(tmp_path: Path) -> None:
    cfg = load_config(tmp_path, {"checks": {"webhook": "http://127.0.0.1:9/x", "every": "1m"}})
    assert cfg.webhook_url == "http://127.0.0.1:9/x"
    assert cfg.every == 60
    same = load_config(write(tmp_path, "webhook: http://127.0.0.1:9/x\n"),
                       {"checks": {"webhook": "http://127.0.0.1:9/x", "alert_on": "fail"}})
    assert same.webhook_url == "http://127.0.0.1:9/x"
    assert same.webhook_on == ("fail",)


@pytest.mark.parametrize(("text", "toml", "where"), [
    ("schedule: {every: 0}\n", {"every": "1m"}, "schedule.every"),
    ("webhook: {url: 'http://127.0.0.1:9/a'}\n", {"webhook": "http://127.0.0.1:9/b"},
     "webhook.url"),
    ("webhook: http://127.0.0.1:9/a\n", {"webhook": "http://127.0.0.1:9/b"}, "webhook.url"),
    ("webhook: {alert_on: [warn]}\n", {"alert_on": ["fail"]}, "webhook.alert_on"),
])
def test_a_setting_in_both_files_must_agree(tmp_path: Path, text: str,
                                            toml: dict[str, object], where: str) -> None:
    """checks.yaml and nerve.toml's [checks] both naming a webhook: neither silently wins."""
    with pytest.raises(UserError) as error:
        load_config(write(tmp_path, text), {"checks": toml})
    assert f"checks.yaml:1: {where}: is " in str(error.value)
    assert "set it in one place" in str(error.value)


@pytest.mark.parametrize(("text", "toml", "every"), [
    ("schedule: {every: 0}\n", {}, 0.0),               # documented: 0 turns it off
    ("", {"checks": {"every": 0}}, 0.0),
    ("schedule: {every: 60}\n", {"checks": {"every": "1m"}}, 60.0),  # the same, twice
    ("", {"checks": {"every": "1m"}}, 60.0),
    ("schedule: {}\n", {}, 300.0),
    ("schedule: {every: '0'}\n", {}, 0.0),             # quoted, it is the same 0
    ("", {"checks": {"every": "0"}}, 0.0),
    ("schedule: {every: '90'}\n", {}, 90.0),           # a bare number is seconds
])
def test_a_zero_schedule_turns_the_schedule_off(tmp_path: Path, text: str,
                                                toml: dict[str, object], every: float) -> None:
    assert load_config(write(tmp_path, text), toml).every == every


@pytest.mark.parametrize(("text", "where"), [
    ("defaults:\n  volumes: {}\n", "defaults.volumes: unknown check"),
    ("defaults:\n  volume: {sensitivty: 3}\n", "defaults.volume.sensitivty: unknown setting"),
    ("defaults:\n  volume: {sensitivity: high}\n", "defaults.volume.sensitivity: expected a "
                                                  "number"),
    ("defaults:\n  volume: {training: forever}\n", "expected a duration"),
    ("events:\n  a: {volume: {direction: sideways}}\n", "events.a.volume.direction"),
    ("events:\n  a: {disabled: [nope]}\n", "events.a.disabled"),
    ("sequences:\n  - {event: a}\n", "sequences[0]"),
    ("sequences:\n  - {event: a, preceded_by: b, min_share: 95}\n", "sequences[0].min_share"),
    ("webhook: {url: 'http://127.0.0.1:9/x', on: [sometimes]}\n", "webhook.alert_on"),
    ("alerts: {}\n", "alerts: unknown section"),
    # mistakes that were accepted and left a check silent or on
    ("defaults:\n  lateness: {warn: 5}\n",
     "checks.yaml:2: defaults.lateness.warn: expected a share between 0 and 1 (0.05 = 5%), "
     "got 5"),
    ("events:\n  a: {schema: {fail: 1.5}}\n", "events.a.schema.fail: expected a share"),
    ("defaults:\n  disappeared_values: {min_share: 2}\n",
     "defaults.disappeared_values.min_share: expected a share"),
    ("defaults:\n  schema: {warn: 0.2, fail: 0.1}\n",
     "defaults.schema.warn: warn (0.2) is above fail (0.1)"),
    ("defaults:\n  lateness: {enabled: 'false'}\n",
     "defaults.lateness.enabled: expected true or false, got 'false'"),
    ("defaults:\n  volume: {dimensions: [platfrom]}\n",
     "defaults.volume.dimensions[0]: 'platfrom' is not a key dimension (did you mean "
     "platform?"),
    ("events:\n  a: {volume: {mix_dimensions: app_version}}\n",
     "events.a.volume.mix_dimensions: expected a list of dimension names"),
    ("defaults: [\n", "invalid YAML"),
    # taken, and every alert then failed to send, logged where nobody looks
    ("webhook: {url: hooks.slack.com/services/T0/B0/X}\n",
     "checks.yaml:1: webhook.url: expected an http:// or https:// URL"),
    ("webhook: 'https:// spaces.test/x'\n", "webhook.url: expected an http:// or https://"),
])
def test_errors_name_the_file_and_field(tmp_path: Path, text: str, where: str) -> None:
    with pytest.raises(UserError) as info:
        load_config(write(tmp_path, text))
    assert "checks.yaml" in str(info.value)
    assert where in str(info.value)


@pytest.mark.parametrize(("text", "where"), [
    # each was accepted: sensitivity 0 or less alarmed on every series, infinity on none;
    # a window of 0 judged no row and passed; negative or fractional counts were used as is
    ("defaults:\n  volume: {sensitivity: -1}\n",
     "checks.yaml:2: defaults.volume.sensitivity: expected a number of sigmas above 0"),
    ("defaults:\n  volume: {sensitivity: 0}\n", "defaults.volume.sensitivity: expected"),
    ("defaults:\n  rate: {sensitivity: .inf}\n", "defaults.rate.sensitivity: expected"),
    ("events:\n  a: {volume: {min_volume: -3}}\n",
     "events.a.volume.min_volume: expected a number of at least 0, got -3"),
    ("defaults:\n  volume: {min_change: .nan}\n", "defaults.volume.min_change: expected"),
    ("defaults:\n  volume: {top_values: -1}\n",
     "defaults.volume.top_values: expected a whole number of at least 0, got -1"),
    ("defaults:\n  schema: {min_events: 2.5}\n",
     "defaults.schema.min_events: expected a whole number"),
    ("defaults:\n  missing_events: {min_day_events: -5}\n",
     "defaults.missing_events.min_day_events: expected a whole number"),
    ("defaults:\n  schema: {window: 0h}\n",
     "defaults.schema.window: expected a duration above 0, got '0h'"),
    ("defaults:\n  volume: {training: 0d}\n", "defaults.volume.training: expected a duration "
                                                "above 0"),
    ("sequences:\n  - {event: a, preceded_by: b, within: 0s}\n",
     "sequences[0].within: expected a duration above 0"),
    ("sequences:\n  - {event: a, preceded_by: b, min_users: -1}\n",
     "sequences[0].min_users: expected a whole number"),
    ("defaults:\n  freshness: {warn_after: 3h, fail_after: 1h}\n",
     "defaults.freshness.warn_after: warn_after ('3h') is above fail_after ('1h')"),
])
def test_values_out_of_range_are_errors(tmp_path: Path, text: str, where: str) -> None:
    with pytest.raises(UserError) as info:
        load_config(write(tmp_path, text))
    assert where in str(info.value)
    assert str(info.value).count("\n") == 0  # one problem, reported once


def test_edge_values_that_are_fine(tmp_path: Path) -> None:
    """0 is a fine minimum; a fractional min_volume is an expected count; a 0 threshold
    or min_duration is no window of data."""
    cfg = load_config(write(tmp_path, "defaults:\n  volume: {min_volume: 2.5, top_values: 0,"
                                      " min_duration: 0s, sensitivity: 2.5}\n"
                                      "  schema: {min_events: 0}\n"
                                      "  lateness: {threshold: 0s}\n"
                                      "  freshness: {warn_after: 1h, fail_after: 1h}\n"))
    assert cfg.get("volume", "min_volume") == 2.5


def test_settings_that_are_fine(tmp_path: Path) -> None:
    """clock_skew never fails by default (fail above 1); a dimension defined in the file
    may be named; switches are booleans."""
    cfg = load_config(write(tmp_path, "defaults:\n  clock_skew: {fail: 1.01, warn: 0.02}\n"
                                      "  lateness: {enabled: false}\n"
                                      "  volume: {dimensions: [platform, channel]}\n"
                                      "dimensions:\n  channel: properties.channel\n"))
    assert cfg.enabled("lateness") is False
    assert cfg.get("volume", "dimensions") == ["platform", "channel"]


@pytest.mark.parametrize(("text", "line", "where"), [
    ("# tuning\ndefaults:\n  volume:\n    sensitivty: 3\n", 4,
     "defaults.volume.sensitivty: unknown setting"),
    ("events:\n  a:\n    volume: {min_volume: 3}\n  b:\n    volume: {direction: sideways}\n",
     5, "events.b.volume.direction"),
    ("sequences:\n  - {event: a, preceded_by: b}\n  - event: a\n    preceded_by: b\n"
     "    within: soon\n", 5, "sequences[1].within: expected a duration"),
    ("events:\n  a:\n    volume: {}\n    expected_values: [properties.kind]\n", 4,
     "events.a.expected_values: expected a mapping"),
    ("schedule:\n  every: often\n", 2, "schedule.every: expected a duration"),
])
def test_errors_give_the_line(tmp_path: Path, text: str, line: int, where: str) -> None:
    with pytest.raises(UserError) as info:
        load_config(write(tmp_path, text))
    assert f"checks.yaml:{line}: {where}" in str(info.value)


PLAYLISTS = catalog(
    spec("playlist_created", prop("playlist_id", required=True), prop("title")),
    spec("song_played", prop("song_id")),
)


def test_names_the_catalog_does_not_know_are_errors_with_lines(tmp_path: Path) -> None:
    write(tmp_path, """\
events:
  playlst_created:
    volume: {direction: down}
  playlist_created:
    natural_key: [properties.playlist_idd]
    expected_values:
      properties.titel: [a]
sequences:
  - event: playlist_created
    preceded_by: song_playd
""")
    with pytest.raises(UserError) as info:
        load_config(tmp_path, catalog=PLAYLISTS)
    lines = str(info.value).splitlines()
    assert len(lines) == 4
    assert lines[0].endswith("checks.yaml:2: events.playlst_created: 'playlst_created' is "
                             "not a cataloged event (did you mean playlist_created?)")
    assert lines[1].endswith("checks.yaml:5: events.playlist_created.natural_key[0]: "
                             "'properties.playlist_idd': properties has no cataloged "
                             "property 'playlist_idd' (did you mean playlist_id?)")
    assert "checks.yaml:7: events.playlist_created.expected_values.properties.titel" in lines[2]
    assert lines[3].endswith("checks.yaml:10: sequences[0].preceded_by: 'song_playd' is not "
                             "a cataloged event (did you mean song_played?)")


def test_every_mistake_is_reported_in_one_go(tmp_path: Path) -> None:
    """Layout mistakes and names the catalog lacks together, in file order, so one run
    shows what to fix (not one mistake per run)."""
    write(tmp_path, """\
alerts: {}
defaults:
  volumes: {}
  volume: {sensitivty: 3, training: forever}
events:
  playlst_created:
    volume: {direction: sideways}
  song_played:
    disabled: [nope]
    null_rate: [0.1]
sequences:
  - {event: song_playd, min_share: 95}
  - {event: song_played, preceded_by: playlist_created, min_users: many}
rates: {numerator: song_played}
webhook: {url: "http://127.0.0.1:9/x", alert_on: [sometimes]}
""")
    with pytest.raises(UserError) as info:
        load_config(tmp_path, catalog=PLAYLISTS)
    lines = [line.split("checks.yaml:", 1)[1] for line in str(info.value).splitlines()]
    assert [line.split(": ", 2)[:2] for line in lines] == [
        ["1", "alerts"],
        ["3", "defaults.volumes"],
        ["4", "defaults.volume.sensitivty"],
        ["4", "defaults.volume.training"],
        ["6", "events.playlst_created"],
        ["7", "events.playlst_created.volume.direction"],
        ["9", "events.song_played.disabled[0]"],
        ["10", "events.song_played.null_rate"],
        ["12", "sequences[0]"],
        ["12", "sequences[0].event"],
        ["13", "sequences[1].min_users"],
        ["14", "rates"],
        ["15", "webhook.alert_on"],
    ]
    assert "'playlst_created' is not a cataloged event (did you mean playlist_created?)" \
        in lines[4]
    assert "'song_playd' is not a cataloged event (did you mean song_played?)" in lines[9]
    assert "unknown setting (did you mean sensitivity?); expected one of" in lines[2]


@pytest.mark.parametrize(("text", "where"), [
    ("defaults: [volume]\n", "checks.yaml:1: defaults: expected a mapping"),
    ("events: [signup]\n", "checks.yaml:1: events: expected a mapping"),
    ("dimensions: platform\n", "checks.yaml:1: dimensions: expected a mapping"),
    ("schedule: 5m\n", "checks.yaml:1: schedule: expected a mapping with every"),
    ("webhook: [x]\n", "checks.yaml:1: webhook: expected a URL or a mapping"),
    ("sequences: {event: a}\n", "checks.yaml:1: sequences: expected a list"),
])
def test_a_section_of_the_wrong_type_is_an_error_not_a_crash(tmp_path: Path, text: str,
                                                              where: str) -> None:
    with pytest.raises(UserError) as info:
        load_config(write(tmp_path, text), catalog=PLAYLISTS)
    assert where in str(info.value)


@pytest.mark.parametrize("key", [
    "properties.playlist_id", "user_id", "message_id", "context.app.version", "properties",
])
def test_natural_keys_the_catalog_knows(tmp_path: Path, key: str) -> None:
    write(tmp_path, f"events:\n  playlist_created:\n    natural_key: [{key}]\n"
                    "rates:\n  - {numerator: song_played, denominator: playlist_created}\n")
    cfg = load_config(tmp_path, catalog=PLAYLISTS)
    assert cfg.natural_key("playlist_created") == (key,)


@pytest.mark.parametrize(("key", "problem"), [
    ("traits.playlist_id", "carries its fields in properties, not traits"),
    ("playlist_id", "expected properties.NAME, context.PATH or an envelope field"),
])
def test_natural_keys_outside_the_event(tmp_path: Path, key: str, problem: str) -> None:
    write(tmp_path, f"events:\n  playlist_created:\n    natural_key: [{key}]\n")
    with pytest.raises(UserError, match=f"checks.yaml:3: .*{problem}"):
        load_config(tmp_path, catalog=PLAYLISTS)


BOOKINGS = catalog(
    spec("visit_booked", prop("clinic"),
         PropertySpec(name="email", type="string", pii="personal", handling="keep"),
         PropertySpec(name="patient", type="object", pii="sensitive", properties=(
             PropertySpec(name="diagnosis", type="string"),))),
)


@pytest.mark.parametrize(("path", "reason"), [
    ("properties.email", "visit_booked.email (pii: personal)"),
    ("properties.patient.diagnosis", "visit_booked.patient (pii: sensitive)"),
    ("user_id", "a person's id"),
    ("context.ip", "personal data (an IP address"),
    ("context.device.id", "personal data (an IP address"),
])
def test_a_key_dimension_may_not_read_personal_data(tmp_path: Path, path: str,
                                                    reason: str) -> None:
    """A key dimension's values are written into check_results, which readers read as
    stored (and webhooks send on): an e-mail there would reach a reader unmasked."""
    write(tmp_path, f"dimensions:\n  clinic: properties.clinic\n  who: [{path}]\n")
    with pytest.raises(UserError) as info:
        load_config(tmp_path, catalog=BOOKINGS)
    message = str(info.value)
    assert message.count("\n") == 0  # the clinic is fine
    assert f"checks.yaml:3: dimensions.who: '{path}' is {reason}" in message
    assert "masked in a reader's view" in message


@pytest.mark.parametrize("path", ["properties.clinic", "context.traits.country",
                                  "context.device.type", "group_id", "context.page.url"])
def test_key_dimensions_that_are_not_personal(tmp_path: Path, path: str) -> None:
    write(tmp_path, f"dimensions:\n  where: {path}\n")
    assert load_config(tmp_path, catalog=BOOKINGS).dimensions["where"] == (path,)


def test_durations() -> None:
    assert parse_duration("30s") == 30
    assert parse_duration("5m") == parse_duration("5min") == 300
    assert parse_duration("2w") == 14 * 86400
    with pytest.raises(UserError, match="expected a duration"):
        parse_duration("soon")


@pytest.mark.parametrize(("text", "where"), [
    # a misspelt key of webhook or schedule would leave its default in force unnoticed
    ("webhook:\n  url: http://127.0.0.1:9/x\n  alert: [warn]\n",
     "checks.yaml:3: webhook.alert: unknown setting (did you mean alert_on?); expected one of "
     "url, alert_on"),
    ("schedule:\n  evry: 1m\n",
     "checks.yaml:2: schedule.evry: unknown setting (did you mean every?); expected every"),
    # an event's own keys are named beside the checks, with the closest one
    ("events:\n  a:\n    natual_key: [user_id]\n",
     "checks.yaml:3: events.a.natual_key: unknown setting (did you mean natural_key?); "
     "expected a check (schema, "),
    ("events:\n  a:\n    disabled: [schema, latenes]\n",
     "checks.yaml:3: events.a.disabled[1]: 'latenes' is not a check (did you mean "
     "lateness?); expected one of schema, "),
    ("alerts:\n  url: x\n", "checks.yaml:1: alerts: unknown section; expected one of"),
    ("event:\n  a: {}\n", "checks.yaml:1: event: unknown section (did you mean events?)"),
    ("defaults:\n  freshnes: {warn_after: 5m}\n",
     "checks.yaml:2: defaults.freshnes: unknown check (did you mean freshness?)"),
    ("defaults:\n  volume: {sensitivty: 3}\n",
     "checks.yaml:2: defaults.volume.sensitivty: unknown setting (did you mean sensitivity?)"),
    ("sequences:\n  - event: a\n    preceded_by: b\n    withn: 2h\n",
     "checks.yaml:4: sequences[0].withn: unknown field (did you mean within?); expected one "
     "of "),
    ("rates:\n  - {numerator: a, denominator: b, dimension: [platform]}\n",
     "checks.yaml:2: rates[0].dimension: unknown field (did you mean dimensions?)"),
])
def test_typos_name_the_key_and_the_closest_known_one(tmp_path: Path, text: str,
                                                       where: str) -> None:
    with pytest.raises(UserError) as info:
        load_config(write(tmp_path, text))
    assert where in str(info.value)


def test_the_old_spelling_of_alert_on_is_still_accepted(tmp_path: Path) -> None:
    """YAML 1.1 reads a bare `on:` as true; the file may say `on:` for alert_on."""
    cfg = load_config(write(tmp_path, "webhook:\n  url: http://127.0.0.1:9/x\n  on: [warn]\n"))
    assert cfg.webhook_on == ("warn",)


@pytest.mark.parametrize(("text", "where"), [
    # the missing_events window is one for all events: a rare event's longer one was
    # accepted and the event still reported missing after 7 days
    ("events:\n  a:\n    missing_events: {window: 30d}\n",
     "checks.yaml:3: events.a.missing_events.window: window holds for every event: set it "
     "under defaults.missing_events (per event, missing_events takes enabled)"),
    ("events:\n  a:\n    volume: {sensitivity: 4, dimensions: [platform]}\n",
     "checks.yaml:3: events.a.volume.dimensions: dimensions holds for every event"),
    ("events:\n  a:\n    duplicates: {warn: 0.5}\n",
     "checks.yaml:3: events.a.duplicates: duplicates judges the whole pipeline, not each "
     "event: set it under defaults.duplicates"),
    ("events:\n  a:\n    disabled: [schema, loader_lag]\n",
     "checks.yaml:3: events.a.disabled[1]: loader_lag judges the whole pipeline"),
    ("events:\n  a:\n    sequence: {within: 2h}\n",
     "checks.yaml:3: events.a.sequence: sequences are listed under sequences:"),
])
def test_per_event_settings_no_check_reads_are_errors(tmp_path: Path, text: str,
                                                      where: str) -> None:
    with pytest.raises(UserError) as info:
        load_config(write(tmp_path, text))
    assert where in str(info.value)
    assert len(str(info.value).splitlines()) == 1


def test_an_event_switches_a_check_off_with_enabled_or_disabled(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, """\
events:
  a:
    missing_events: {enabled: false}
    lateness: {threshold: 2h, warn: 0.02}
  b:
    disabled: [missing_events]
"""))
    assert not cfg.enabled("missing_events", "a")
    assert not cfg.enabled("missing_events", "b")
    assert cfg.enabled("missing_events", "c")
    assert cfg.enabled("lateness", "a")
    assert cfg.seconds("lateness", "threshold", "a") == 7200


def test_sequences_take_their_defaults_from_the_file(tmp_path: Path) -> None:
    """defaults.sequence was accepted and ignored: every sequence kept the built-in 1 h."""
    cfg = load_config(write(tmp_path, """\
defaults:
  sequence: {within: 2h, min_share: 0.5, min_users: 3}
sequences:
  - {event: a, preceded_by: b}
  - {event: c, preceded_by: b, within: 10m}
"""))
    first, second = cfg.sequences
    assert (first.within, first.min_share, first.min_users) == (7200, 0.5, 3)
    assert (second.within, second.min_share) == (600, 0.5)
    assert (first.window, DEFAULTS["sequence"]["window"]) == (7 * 86400, "7d")
