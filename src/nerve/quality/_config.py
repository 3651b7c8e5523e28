"""checks.yaml: every check works with no configuration; this file tunes them.

The format (docs/quality.md)::

    defaults:                 # override the built-in defaults for every event
      volume: {sensitivity: 4, training: 28d}
    dimensions:               # key dimensions: name -> JSON path (first non-null wins)
      platform: [context.os.name, context.device.type]
    events:                   # per-event overrides, and settings only an event can have
      purchase_complete:
        natural_key: [properties.order_id]
        volume: {direction: down}
        expected_values: {properties.provider: [stripe, paypal]}
        disabled: [lateness]
    sequences:
      - {event: purchase_complete, preceded_by: checkout_start, within: 1h, min_share: 0.95}
    rates:                    # a count per another count, by dimension value
      - {numerator: payment_failed, denominator: payment_submitted,
         dimensions: [payment_provider]}
    webhook: {url: "https://hooks.slack.com/...", alert_on: [fail]}
    schedule: {every: 5m}

``nerve.toml`` may hold ``[checks] webhook = "..."`` and ``every = "5m"`` instead.

With no ``rates:`` section, the rates come from the workspace's ratio metrics
(``metrics/*.yaml``) whose two sides count events without a filter, like
``payment_failure_rate = count(payment_failed) / count(payment_submitted)``.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from nerve._durations import parse_seconds
from nerve._urls import webhook_url
from nerve.catalog import PropertySpec
from nerve.catalog._yaml import load_yaml
from nerve.errors import UserError
from nerve.pipeline import PrivacyPolicy, treatment
from nerve.quality._references import Problem, did_you_mean, line_of, reference_problems

if TYPE_CHECKING:
    from nerve.catalog import Catalog

__all__ = [
    "CHECKS",
    "DEFAULTS",
    "ChecksConfig",
    "Rate",
    "Sequence",
    "load_config",
    "metric_rates",
    "parse_duration",
]

CONFIG_FILE = "checks.yaml"

#: every check nerve runs, in the order it reports them
CHECKS = (
    "schema",
    "drift",
    "duplicates",
    "withheld",
    "refusals",
    "natural_key_duplicates",
    "freshness",
    "loader_lag",
    "lateness",
    "clock_skew",
    "volume",
    "rate",
    "missing_events",
    "null_rate",
    "disappeared_values",
    "sequence",
)

#: built-in defaults; shares are fractions (0.01 = 1%), durations strings like ``24h``
DEFAULTS: dict[str, dict[str, Any]] = {
    "schema": {"window": "24h", "warn": 0.01, "fail": 0.05, "min_events": 20},
    "drift": {"window": "24h", "status": "warn"},
    "duplicates": {"window": "24h", "warn": 0.001, "fail": 0.05},
    "withheld": {"window": "24h", "warn": 0.1, "fail": 0.9, "min_events": 20},
    "refusals": {"window": "24h", "warn_requests": 0, "fail_requests": 100,
                 "warn_retried": 100},
    "natural_key_duplicates": {"window": "24h", "warn": 0.001, "fail": 0.01, "min_events": 20},
    "freshness": {"warn_after": "auto", "fail_after": "auto", "min_warn_after": "1h"},
    "loader_lag": {"window": "1h", "warn_after": "5m", "fail_after": "30m"},
    "lateness": {"window": "24h", "threshold": "1h", "warn": 0.01, "fail": 0.05,
                 "min_events": 20},
    "clock_skew": {"window": "24h", "threshold": "10m", "warn": 0.01, "fail": 1.01,
                   "min_events": 20},
    "volume": {"training": "28d", "dimension_training": "8d", "evaluate": "24h",
               "sensitivity": 3.0, "direction": "both",
               "min_volume": 10, "min_change": 0.3, "min_duration": "1h", "min_history": "3d",
               "dimensions": ["platform", "app_version", "country"], "top_values": 10,
               "mix_dimensions": ["app_version"], "exclude": ["identify", "group"]},
    "rate": {"training": "8d", "evaluate": "24h", "sensitivity": 3.0, "direction": "both",
             "min_volume": 10, "min_change": 0.5, "min_history": "3d", "top_values": 10},
    "missing_events": {"window": "7d", "status": "warn", "min_day_events": 20},
    "null_rate": {"window": "24h", "warn": 0.01, "fail": 0.05, "min_events": 20},
    "disappeared_values": {"window": "24h", "baseline": "3d", "min_share": 0.02,
                           "min_expected": 20},
    "sequence": {"within": "1h", "min_share": 0.95, "window": "7d", "min_users": 20},
}

#: default key dimensions (Segment context fields)
DEFAULT_DIMENSIONS: dict[str, tuple[str, ...]] = {
    "platform": ("context.device.type", "context.os.name"),
    "app_version": ("context.app.version",),
    "country": ("context.location.country", "context.traits.country"),
}

def parse_duration(value: object, where: str = "duration") -> float:
    """Seconds in ``30s``, ``5m``, ``1h``, ``7d``, ``2w`` (a bare number is seconds).

    >>> parse_duration("90m"), parse_duration("1.5h"), parse_duration(30)
    (5400.0, 5400.0, 30.0)
    """
    try:
        return parse_seconds(value)
    except ValueError as exc:
        raise UserError(f"{where}: {exc}") from None


@dataclass(frozen=True, slots=True)
class Sequence:
    """``event`` is preceded by ``preceded_by`` within ``within`` s for >= ``min_share`` users."""

    event: str
    preceded_by: str
    within: float
    min_share: float
    name: str = ""
    window: float = 7 * 86400
    min_users: int = 20


@dataclass(frozen=True, slots=True)
class Rate:
    """``numerator`` events per ``denominator`` event, overall and per value of each
    dimension (None: the volume check's dimensions)."""

    numerator: str
    denominator: str
    name: str = ""
    dimensions: tuple[str, ...] | None = None


#: nerve's privacy defaults, for a workspace without a ``[privacy]`` section
_NO_PRIVACY_SECTION = PrivacyPolicy(secret=b"")


@dataclass(frozen=True, slots=True)
class ChecksConfig:
    """The merged configuration: built-in defaults < ``defaults:`` < ``events.NAME:``."""

    defaults: dict[str, dict[str, Any]] = field(default_factory=lambda: copy.deepcopy(DEFAULTS))
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    dimensions: dict[str, tuple[str, ...]] = field(
        default_factory=lambda: dict(DEFAULT_DIMENSIONS))
    sequences: tuple[Sequence, ...] = ()
    rates: tuple[Rate, ...] = ()
    webhook_url: str | None = None
    webhook_on: tuple[str, ...] = ("fail",)
    every: float = 300.0
    file: Path | None = None
    #: ``[project] timezone``: hours of day and days of week of the seasonal checks
    #: are this zone's (``nerve.quality._seasonal.wall_hours``)
    timezone: str = "UTC"
    #: nerve.toml's ``[privacy]`` (no secret: only which properties it drops is read)
    privacy: PrivacyPolicy = _NO_PRIVACY_SECTION

    def stored(self, event: str, prop: PropertySpec) -> bool:
        """Whether the collector stores the values of ``event``'s top-level property
        ``prop`` at all (docs/privacy.md): not a sensitive one that ``allow_sensitive``
        does not list, nor one the policy handles by ``drop``.

        >>> cfg = ChecksConfig()
        >>> cfg.stored("visit", PropertySpec("diagnosis", "string", pii="sensitive"))
        False
        >>> cfg.stored("visit", PropertySpec("clinic", "string"))
        True
        """
        return treatment(prop, prop.name, event, self.privacy) != "drop"

    def get(self, check: str, key: str, event: str | None = None) -> Any:
        """A setting for ``check``, with the event's override when it has one."""
        if event is not None:
            override = self.events.get(event, {}).get(check)
            if isinstance(override, dict) and key in override:
                return override[key]
        return self.defaults[check][key]

    def seconds(self, check: str, key: str, event: str | None = None) -> float:
        return parse_duration(self.get(check, key, event), f"{check}.{key}")

    def enabled(self, check: str, event: str | None = None) -> bool:
        if self.defaults.get(check, {}).get("enabled", True) is False:
            return False
        if event is not None:
            spec = self.events.get(event, {})
            if check in spec.get("disabled", ()):
                return False
            override = spec.get(check)
            if isinstance(override, dict) and override.get("enabled") is False:
                return False
        return True

    def natural_key(self, event: str) -> tuple[str, ...] | None:
        key = self.events.get(event, {}).get("natural_key")
        return tuple(key) if key else None

    def expected_values(self, event: str) -> dict[str, tuple[Any, ...]]:
        raw = self.events.get(event, {}).get("expected_values") or {}
        return {path: tuple(values) for path, values in raw.items()}


def load_config(root: Path | str, toml: dict[str, Any] | None = None,
                catalog: Catalog | None = None) -> ChecksConfig:
    """Read ``checks.yaml`` in the workspace ``root`` (if any) and ``[checks]`` of nerve.toml.

    Raises UserError listing everything it does not understand, each with the file, line
    and field, in file order (one run shows every mistake). With the workspace's
    ``catalog``, names are checked too: events, ``natural_key`` and ``expected_values``
    paths, sequence and rate events. A typo there would otherwise apply a setting to
    nothing, or judge a key that is null on every row.
    """
    path = Path(root) / CONFIG_FILE
    raw: Any = {}
    if path.is_file():
        try:
            raw = load_yaml(path)
        except UserError as exc:  # the catalog's loader says CatalogError; same message
            raise UserError(str(exc)) from exc
        if raw is None:
            raw = {}
    if not isinstance(raw, dict):
        raise UserError(f"{path}: expected a mapping at the top level")
    section = dict((toml or {}).get("checks", {}) or {})
    problems = _Problems(raw)
    config = _parse(raw, section, path, problems)
    config = dataclasses.replace(
        config, timezone=str(((toml or {}).get("project") or {}).get("timezone", "UTC")),
        privacy=PrivacyPolicy.from_config((toml or {}).get("privacy") or {}, b""))
    if catalog is not None:
        problems.found.extend(reference_problems(raw, catalog))
    if problems.found:
        raise UserError("\n".join(
            f"{path}{f':{line}' if line else ''}: {where}: {what}"
            for line, where, what in sorted(problems.found, key=lambda p: p[0] or 0)))
    return config


#: settings that are shares of rows (0.01 = 1%)
_SHARES = {"warn", "fail", "min_share"}
#: settings that count things (events, values, users): whole numbers
_WHOLE = {"min_events", "top_values", "min_day_events", "min_expected", "min_users"}
#: durations that are windows of data: 0 would judge nothing
_SPANS = {"window", "training", "dimension_training", "evaluate", "baseline", "within"}

#: the settings each check reads per event (under ``events: NAME: CHECK:``); the others,
#: windows and lists included, hold for every event and go under ``defaults:``. Checks
#: missing here judge the whole pipeline and take no per-event settings at all.
PER_EVENT: dict[str, frozenset[str]] = {
    "schema": frozenset({"warn", "fail", "min_events"}),
    "natural_key_duplicates": frozenset({"warn", "fail", "min_events"}),
    "freshness": frozenset({"warn_after", "fail_after", "min_warn_after"}),
    "lateness": frozenset({"warn", "fail", "min_events", "threshold"}),
    "clock_skew": frozenset({"warn", "fail", "min_events", "threshold"}),
    "volume": frozenset({"training", "evaluate", "min_history", "sensitivity", "direction",
                         "min_change", "min_volume", "min_duration"}),
    "rate": frozenset({"training", "evaluate", "min_history", "sensitivity", "direction",
                       "min_change", "min_volume", "top_values"}),
    "null_rate": frozenset({"warn", "fail", "min_events"}),
    "withheld": frozenset({"warn", "fail", "min_events"}),
    "missing_events": frozenset(),
    "disappeared_values": frozenset(),
}

_TOP = {"defaults", "dimensions", "events", "sequences", "rates", "webhook", "schedule"}
_EVENT_ONLY = {"natural_key", "expected_values", "disabled"}


class _Problems:
    """Collects every problem of one checks.yaml with its line, to report them together.

    Parsing goes on after a problem with a stand-in value; the config built then is never
    used, as ``load_config`` raises.
    """

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw
        self.found: list[Problem] = []

    def __call__(self, where: str, problem: str) -> None:
        self.found.append((line_of(self.raw, where), where, problem))


Bad = Callable[[str, str], None]


def _mapping(raw: dict[str, Any], key: str, bad: Bad) -> dict[Any, Any]:
    value = raw.get(key) or {}
    if not isinstance(value, dict):
        bad(key, "expected a mapping keyed by name")
        return {}
    return value


def _parse(raw: dict[str, Any], toml: dict[str, Any], path: Path, bad: Bad) -> ChecksConfig:
    for key in raw:
        if key not in _TOP:
            bad(str(key), f"unknown section{did_you_mean(str(key), _TOP)}; expected one of "
                          f"{', '.join(sorted(_TOP))}")
    defaults = copy.deepcopy(DEFAULTS)
    for check, settings in _mapping(raw, "defaults", bad).items():
        if _check_settings(check, settings, f"defaults.{check}", bad):
            defaults[check].update(settings)
    events: dict[str, dict[str, Any]] = {}
    for event, spec in _mapping(raw, "events", bad).items():
        if not isinstance(spec, dict):
            bad(f"events.{event}", "expected a mapping of check settings")
            continue
        for key, value in spec.items():
            where = f"events.{event}.{key}"
            if key not in _EVENT_ONLY and key not in DEFAULTS:
                bad(where, f"unknown setting{did_you_mean(str(key), [*CHECKS, *_EVENT_ONLY])}; "
                           f"expected a check ({', '.join(CHECKS)}) or "
                           f"{', '.join(sorted(_EVENT_ONLY))}")
            elif key not in _EVENT_ONLY:
                if _check_settings(key, value, where, bad):
                    _per_event_settings(key, value, where, bad)
            elif key == "disabled" and not isinstance(value, list):
                bad(where, f"expected a list of check names ({', '.join(CHECKS)})")
            elif key == "disabled":
                for i, name in enumerate(value):
                    if name not in CHECKS:
                        bad(f"{where}[{i}]", f"{name!r} is not a check"
                                             f"{did_you_mean(str(name), CHECKS)}; expected "
                                             f"one of {', '.join(CHECKS)}")
                    elif name not in PER_EVENT:
                        bad(f"{where}[{i}]", _pipeline_wide(str(name)))
            elif key == "natural_key" and (not isinstance(value, list) or not value):
                bad(where, "expected a list of fields, e.g. [properties.order_id]")
            elif key == "expected_values" and not isinstance(value, dict):
                bad(where, "expected a mapping of property path -> list of values")
        events[str(event)] = spec
    dimensions = dict(DEFAULT_DIMENSIONS)
    for name, given in _mapping(raw, "dimensions", bad).items():
        paths = [given] if isinstance(given, str) else given
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            bad(f"dimensions.{name}", "expected a JSON path or a list of them")
            continue
        dimensions[str(name)] = tuple(paths)
    _dimension_names(_mapping(raw, "defaults", bad).get("volume"), "defaults.volume",
                     dimensions, bad)
    for event, spec in events.items():
        if isinstance(spec, dict):
            _dimension_names(spec.get("volume"), f"events.{event}.volume", dimensions, bad)
    sequences = _sequences(raw.get("sequences") or [], defaults["sequence"], bad)
    rates = (_rates(raw["rates"] or [], bad) if "rates" in raw
             else metric_rates(path.parent / "metrics"))
    schedule = raw.get("schedule") or {}
    if not isinstance(schedule, dict):
        bad("schedule", "expected a mapping with every, e.g. {every: 5m}")
        schedule = {}
    _unknown_keys(schedule, "schedule", ("every",), "setting", bad)
    if schedule.get("every") is not None and toml.get("every") is not None:
        with contextlib.suppress(UserError):  # a bad value is reported once, below
            _one_place(parse_duration(schedule["every"], "schedule.every"),
                       parse_duration(toml["every"], "every"), "schedule.every", "every", bad)
    # 0 is a setting (the schedule off), not a missing one
    given = next((v for v in (schedule.get("every"), toml.get("every")) if v is not None), "5m")
    every = _duration(given, "schedule.every", bad)
    webhook = raw.get("webhook") or {}
    if isinstance(webhook, str):
        webhook = {"url": webhook}
    if not isinstance(webhook, dict):
        bad("webhook", "expected a URL or a mapping with url and alert_on")
        webhook = {}
    # YAML 1.1 reads a bare `on:` key as true (the loader keeps it as "True")
    _unknown_keys(webhook, "webhook", ("url", "alert_on"), "setting", bad,
                  also=("on", "True"))
    _one_place(webhook.get("url"), toml.get("webhook"), "webhook.url", "webhook", bad)
    _one_place(_listed(webhook.get("alert_on")), _listed(toml.get("alert_on")),
               "webhook.alert_on", "alert_on", bad)
    url = webhook.get("url") or toml.get("webhook")
    if webhook.get("url") is not None:  # nerve.toml's is checked with the workspace
        try:
            webhook_url(webhook["url"])
        except ValueError as exc:
            bad("webhook.url", str(exc))
    # accept `on:` (read as true, see above), document alert_on
    on = (webhook.get("alert_on") or webhook.get("on") or webhook.get("True")
          or toml.get("alert_on") or ["fail"])
    if isinstance(on, str):
        on = [on]
    if not isinstance(on, list) or any(s not in ("warn", "fail", "error") for s in on):
        bad("webhook.alert_on", "expected a list of statuses among warn, fail, error")
        on = ["fail"]
    return ChecksConfig(defaults=defaults, events=events, dimensions=dimensions,
                        sequences=tuple(sequences), rates=tuple(rates),
                        webhook_url=str(url) if url else None,
                        webhook_on=tuple(on), every=every, file=path)


def _one_place(here: Any, toml: Any, where: str, toml_key: str, bad: Bad) -> None:
    """A setting given in both checks.yaml and nerve.toml's [checks] must say one thing."""
    if here is not None and toml is not None and here != toml:
        bad(where, f"is {here!r} here but {toml_key} = {toml!r} in nerve.toml's [checks]; "
                   "set it in one place")


def _listed(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def _check_settings(check: str, settings: Any, where: str, bad: Bad) -> bool:
    """Report each bad setting; False when ``settings`` is no mapping of a known check."""
    if check not in DEFAULTS:
        bad(where, f"unknown check{did_you_mean(str(check), CHECKS)}; expected one of "
                   f"{', '.join(CHECKS)}")
        return False
    if not isinstance(settings, dict):
        bad(where, "expected a mapping of settings")
        return False
    for key, value in settings.items():
        if key == "enabled":
            if not isinstance(value, bool):
                bad(f"{where}.{key}", f"expected true or false, got {value!r}")
            continue
        if key not in DEFAULTS[check]:
            known = [*sorted(DEFAULTS[check]), "enabled"]
            bad(f"{where}.{key}", f"unknown setting{did_you_mean(str(key), known)}; "
                                  f"expected one of {', '.join(known)}")
            continue
        default = DEFAULTS[check][key]
        if isinstance(default, float | int) and not isinstance(default, bool):
            if isinstance(value, bool) or not isinstance(value, int | float):
                bad(f"{where}.{key}", f"expected a number, got {value!r}")
            elif key in _SHARES and not 0 <= value <= max(1.0, default):
                # 5 meant as 5% would never be reached: the check would never say a word
                bad(f"{where}.{key}", f"expected a share between 0 and 1 (0.05 = 5%), "
                                      f"got {value!r}")
            elif key not in _SHARES:
                _amount(key, value, f"{where}.{key}", bad)
        elif isinstance(default, str) and key not in ("direction", "status"):
            if value != "auto":
                _duration(value, f"{where}.{key}", bad, positive=key in _SPANS)
        elif key == "direction" and value not in ("both", "up", "down"):
            bad(f"{where}.{key}", f"expected both, up or down, got {value!r}")
        elif key == "status" and value not in ("warn", "fail"):
            bad(f"{where}.{key}", f"expected warn or fail, got {value!r}")
    _warn_after_fail(settings, where, bad)
    warn, fail = settings.get("warn"), settings.get("fail")
    if (isinstance(warn, int | float) and isinstance(fail, int | float)
            and not isinstance(warn, bool) and not isinstance(fail, bool) and warn > fail):
        bad(f"{where}.warn", f"warn ({warn!r}) is above fail ({fail!r}): a share between "
                             "them would fail without a warning first")
    return True


def _amount(key: str, value: float, where: str, bad: Bad) -> None:
    """A count or a sensitivity: finite, not negative, whole where it counts things."""
    if key == "sensitivity":
        # 0 or less puts the family error rate at 100% and more (every series alarms);
        # infinity at 0 (none ever does)
        if not 0 < value < float("inf"):
            bad(where, f"expected a number of sigmas above 0 (3 by default), got {value!r}")
    elif key in _WHOLE:
        if isinstance(value, float) or value < 0:
            bad(where, f"expected a whole number of at least 0, got {value!r}")
    elif not 0 <= value < float("inf"):
        bad(where, f"expected a number of at least 0, got {value!r}")


def _warn_after_fail(settings: dict[Any, Any], where: str, bad: Bad) -> None:
    """``warn_after`` longer than ``fail_after`` would fail before it ever warned."""
    warn, fail = settings.get("warn_after"), settings.get("fail_after")
    if warn in (None, "auto") or fail in (None, "auto"):
        return
    with contextlib.suppress(UserError):
        if parse_duration(warn) > parse_duration(fail):
            bad(f"{where}.warn_after", f"warn_after ({warn!r}) is above fail_after "
                                       f"({fail!r}): a delay between them would fail "
                                       "without a warning first")


def _per_event_settings(check: str, settings: dict[str, Any], where: str, bad: Bad) -> None:
    """Report the settings of one event's check that no check reads per event: they would
    be accepted and have no effect (a longer missing_events window for a rare event)."""
    if check not in PER_EVENT:
        bad(where, _pipeline_wide(check))
        return
    for key in settings:
        if key != "enabled" and key in DEFAULTS[check] and key not in PER_EVENT[check]:
            own = ", ".join([*sorted(PER_EVENT[check]), "enabled"])
            bad(f"{where}.{key}", f"{key} holds for every event: set it under "
                                  f"defaults.{check} (per event, {check} takes {own})")


def _pipeline_wide(check: str) -> str:
    if check == "sequence":
        return ("sequences are listed under sequences: (each with its event), not per "
                "event; defaults.sequence holds their defaults")
    return (f"{check} judges the whole pipeline, not each event: set it under "
            f"defaults.{check} (enabled: false switches it off)")


def _unknown_keys(given: dict[Any, Any], where: str, known: tuple[str, ...], kind: str,
                  bad: Bad, also: tuple[str, ...] = ()) -> None:
    """Report each key of ``given`` outside ``known`` (and the undocumented ``also``),
    with the closest known one: a misspelt key would leave its default in force."""
    expected = f"one of {', '.join(known)}" if len(known) > 1 else known[0]
    for key in given:
        if key not in known and key not in also:
            bad(f"{where}.{key}", f"unknown {kind}{did_you_mean(str(key), known)}; "
                                  f"expected {expected}")


def _dimension_names(settings: Any, where: str, known: dict[str, tuple[str, ...]],
                     bad: Bad) -> None:
    """The volume check's ``dimensions`` and ``mix_dimensions`` name key dimensions."""
    if not isinstance(settings, dict):
        return
    for key in ("dimensions", "mix_dimensions"):
        if key not in settings:
            continue
        names = settings[key]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            bad(f"{where}.{key}", f"expected a list of dimension names ({', '.join(known)})")
            continue
        for i, name in enumerate(names):
            if name not in known:
                bad(f"{where}.{key}[{i}]", f"{name!r} is not a key dimension"
                                           f"{did_you_mean(name, known)}; known: "
                                           f"{', '.join(known)} (add it under dimensions:)")


def _duration(value: Any, where: str, bad: Bad, *, positive: bool = False) -> float:
    """``parse_duration``, its error naming the file and line like every other (0 then).
    ``positive``: a window of data, where 0 would judge no row and pass whatever came."""
    try:
        seconds = parse_duration(value, where)
    except UserError as exc:
        bad(where, str(exc).split(": ", 1)[-1])
        return 0.0
    if positive and seconds <= 0:
        bad(where, f"expected a duration above 0, got {value!r}")
    return seconds


def _share(value: Any, where: str, bad: Bad) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        bad(where, f"expected a share between 0 and 1, got {value!r}")
        return 0.0
    return float(value)


def _sequences(items: Any, base: dict[str, Any], bad: Bad) -> list[Sequence]:
    """Each item of ``sequences:``, its missing settings from ``defaults.sequence``."""
    if not isinstance(items, list):
        bad("sequences", "expected a list of {event, preceded_by} mappings")
        return []
    sequences = []
    for i, item in enumerate(items):
        where = f"sequences[{i}]"
        if not isinstance(item, dict) or not {"event", "preceded_by"} <= set(item):
            bad(where, "expected a mapping with event and preceded_by")
            continue
        _unknown_keys(item, where, ("event", "preceded_by", "within", "min_share", "name",
                                    "window", "min_users"), "field", bad)
        min_users = item.get("min_users", base["min_users"])
        if isinstance(min_users, bool) or not isinstance(min_users, int) or min_users < 0:
            bad(f"{where}.min_users", f"expected a whole number, got {min_users!r}")
            min_users = base["min_users"]
        sequences.append(Sequence(
            event=str(item["event"]),
            preceded_by=str(item["preceded_by"]),
            within=_duration(item.get("within", base["within"]), f"{where}.within", bad,
                             positive=True),
            min_share=_share(item.get("min_share", base["min_share"]), f"{where}.min_share",
                             bad),
            name=str(item.get("name") or f"{item['event']} after {item['preceded_by']}"),
            window=_duration(item.get("window", base["window"]), f"{where}.window", bad,
                             positive=True),
            min_users=min_users,
        ))
    return sequences


def _rates(items: Any, bad: Bad) -> list[Rate]:
    if not isinstance(items, list):
        bad("rates", "expected a list of {numerator, denominator} mappings")
        return []
    rates = []
    for i, item in enumerate(items):
        where = f"rates[{i}]"
        if not isinstance(item, dict) or not {"numerator", "denominator"} <= set(item):
            bad(where, "expected a mapping with numerator and denominator (event names)")
            continue
        _unknown_keys(item, where, ("numerator", "denominator", "name", "dimensions"),
                      "field", bad)
        dims = item.get("dimensions")
        if dims is not None and (not isinstance(dims, list)
                                 or not all(isinstance(d, str) for d in dims)):
            bad(f"{where}.dimensions", "expected a list of dimension names")
            dims = None
        num, den = str(item["numerator"]), str(item["denominator"])
        rates.append(Rate(numerator=num, denominator=den,
                          name=str(item.get("name") or f"{num} per {den}"),
                          dimensions=tuple(dims) if dims is not None else None))
    return rates


def metric_rates(metrics_dir: Path) -> list[Rate]:
    """Rates implied by ratio metrics whose sides are plain event counts (zero config).

    Read straight from the YAML (no semantic layer needed); anything else (filters,
    distinct counts, sums) is left to ``rates:`` in checks.yaml.
    """
    metrics: dict[str, Any] = {}
    for file in sorted(metrics_dir.glob("*.y*ml")) if metrics_dir.is_dir() else []:
        try:
            data = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError:
            continue  # the semantic layer reports broken metric files
        if isinstance(data, dict) and isinstance(data.get("metrics"), dict):
            metrics.update(data["metrics"])

    def counted(side: Any) -> str | None:
        if isinstance(side, str):
            side = (metrics.get(side) or {}).get("measure")
        if not isinstance(side, dict) or side.get("agg") != "count" or side.get("filter"):
            return None
        event = side.get("event")
        return event if isinstance(event, str) and event != "*" else None

    rates = []
    for name, spec in metrics.items():
        if not isinstance(spec, dict) or spec.get("type") != "ratio" or spec.get("filter"):
            continue
        num, den = counted(spec.get("numerator")), counted(spec.get("denominator"))
        if num and den and num != den:
            rates.append(Rate(numerator=num, denominator=den, name=str(name)))
    return rates
