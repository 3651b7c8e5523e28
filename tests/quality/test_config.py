"""checks.yaml and [checks] in nerve.toml: defaults, overrides, and errors that say where."""

from __future__ import annotations

from pathlib import Path

import pytest

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
    ("webhook: {url: x, on: [sometimes]}\n", "webhook.alert_on"),
    ("alerts: {}\n", "alerts: unknown section"),
    ("defaults: [\n", "invalid YAML"),
])
def test_errors_name_the_file_and_field(tmp_path: Path, text: str, where: str) -> None:
    with pytest.raises(UserError) as info:
        load_config(write(tmp_path, text))
    assert "checks.yaml" in str(info.value)
    assert where in str(info.value)


def test_durations() -> None:
    assert parse_duration("30s") == 30
    assert parse_duration("5m") == parse_duration("5min") == 300
    assert parse_duration("2w") == 14 * 86400
    with pytest.raises(UserError, match="expected a duration"):
        parse_duration("soon")
