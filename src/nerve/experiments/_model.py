"""Experiments as code: ``experiments/*.yaml`` loaded into ``Experiment`` objects."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from nerve.catalog._yaml import LineDict, load_yaml
from nerve.errors import CatalogError, Location, UserError, close_match, did_you_mean
from nerve.experiments._targeting import OPERATORS, matches_targeting

__all__ = ["Experiment", "ExperimentError", "Variant", "load_experiments", "matches_targeting"]

_KEY = re.compile(r"^[a-z][a-z0-9_]*$")
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_FIELDS = {
    "key", "name", "hypothesis", "owner", "variants", "control", "targeting", "coverage",
    "layer", "layer_range", "holdout", "primary", "secondary", "guardrails", "start", "end",
    "mde", "alpha", "power", "correction", "exposure_event", "cuped_days", "status",
}
_OPS = set(OPERATORS)
_VARIANT_FIELDS = {"key", "weight", "name"}
#: SDKs assign units while running (or active); draft, paused and stopped keep them out
_STATUSES = ("running", "active", "draft", "paused", "stopped")


class ExperimentError(CatalogError):
    """An invalid experiments/*.yaml file (file, line, field)."""

    code = "experiment"


@dataclass(frozen=True, slots=True)
class Variant:
    key: str
    weight: float
    name: str = ""


@dataclass(frozen=True, slots=True)
class Experiment:
    """One experiment: who is in it, what it changes, and how it is judged."""

    key: str
    name: str
    hypothesis: str
    owner: str
    variants: tuple[Variant, ...]
    control: str
    primary: str
    secondary: tuple[str, ...] = ()
    guardrails: tuple[str, ...] = ()
    #: semantic-layer segment the experiment targets (documentation and readout)
    segment: str | None = None
    #: attribute conditions SDKs check before assigning: {"age": {"gte": 65}}
    attributes: dict[str, dict[str, Any]] = field(default_factory=dict)
    coverage: float = 1.0
    layer: str | None = None
    layer_range: tuple[float, float] = (0.0, 1.0)
    holdout: float = 0.0
    start: datetime | None = None
    end: datetime | None = None
    #: the smallest relative effect worth detecting on the primary metric (0.05 = 5%)
    mde: float = 0.05
    alpha: float = 0.05
    power: float = 0.8
    correction: str = "holm"
    #: events that log an exposure, with ``experiment_id`` and ``variant_id`` properties
    exposure_events: tuple[str, ...] = ("experiment_viewed", "Experiment Viewed")
    #: days before a unit's first exposure that CUPED reads as its covariate
    cuped_days: int = 14
    status: str = "running"
    file: Path | None = None
    lines: dict[str, int] = field(default_factory=dict, compare=False, hash=False)

    @property
    def variant_keys(self) -> list[str]:
        return [v.key for v in self.variants]

    @property
    def weights(self) -> list[float]:
        return [v.weight for v in self.variants]

    @property
    def metrics(self) -> list[tuple[str, str]]:
        """(metric, role) for the primary, secondary and guardrail metrics."""
        return [(self.primary, "primary"), *((m, "secondary") for m in self.secondary),
                *((m, "guardrail") for m in self.guardrails)]

    def as_dict(self) -> dict[str, Any]:
        """The definition SDKs need to assign units (GET /v1/experiments)."""
        return {
            "key": self.key, "name": self.name, "variants": self.variant_keys,
            "weights": self.weights, "control": self.control, "coverage": self.coverage,
            "layer": self.layer, "layer_range": list(self.layer_range),
            "holdout": self.holdout, "attributes": self.attributes, "segment": self.segment,
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None, "status": self.status,
        }


def _when(value: Any, tz: ZoneInfo, *, end: bool = False) -> datetime | None:
    """A start or end as a moment. A date alone is a whole day of the workspace's time
    zone ``tz``: ``start: 2026-11-01`` begins at its local midnight, ``end: 2026-11-27``
    takes in the 27th (it ends at the next local midnight), as people read a last day; a
    datetime is that moment (without an offset: wall-clock time in ``tz``)."""
    if value is None:
        return None
    if isinstance(value, str) and _DATE_ONLY.match(value.strip()):
        value = date.fromisoformat(value.strip())
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=tz)
    if isinstance(value, date):
        day = value + timedelta(days=1) if end else value
        # the local midnight, whatever the clocks do that day (a day may be 23 hours)
        return datetime(day.year, day.month, day.day, tzinfo=tz)
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _percent_hint(value: Any, low: float, high: float) -> str:
    """"; did you mean 0.05?" for a fraction written as a percentage (5, or "5%")."""
    text = str(value).strip()
    number = text.removesuffix("%").strip()
    try:
        fraction = float(number) / 100
    except ValueError:
        return ""
    if isinstance(value, bool) or not (text.endswith("%") or _is_number(value)) \
            or not low <= fraction < high:
        return ""
    return f"; a fraction: did you mean {fraction:g} ({float(number):g}%)?"


def _quoted_hint(value: Any, low: float, high: float) -> str:
    """"; write it as a number, without quotes: 0.05" for a number written as a string."""
    if not isinstance(value, str):
        return ""
    try:
        number = float(value)
    except ValueError:
        return ""
    return f"; write it as a number, without quotes: {number:g}" if low <= number <= high else ""


def _is_scalar(value: object) -> bool:
    """A value targeting can compare as every SDK does: a string, number or boolean."""
    return isinstance(value, str | int | float | bool)


def _parse(path: Path, raw: LineDict, problems: list[tuple[Location, str]],
           tz: ZoneInfo) -> Experiment | None:
    before = len(problems)
    key = raw.get("key") or path.stem

    def bad(name: str, text: str) -> None:
        problems.append((Location(path, raw.lines.get(name, raw.line)), f"{key}.{name}: {text}"))

    for name in raw:
        if name not in _FIELDS:
            close = close_match(str(name), _FIELDS)
            hint = f"did you mean {close}? " if close else ""
            bad(name, f"unknown field; {hint}expected one of {', '.join(sorted(_FIELDS))}")
    if not isinstance(key, str) or not _KEY.match(key):
        bad("key", "expected a snake_case key")
    variants: list[Variant] = []
    raw_variants = raw.get("variants")
    if not isinstance(raw_variants, list) or len(raw_variants) < 2:
        bad("variants", "expected a list of at least two variants")
        raw_variants = []
    for item in raw_variants:
        if isinstance(item, str):
            variants.append(Variant(item, 1.0))
        elif isinstance(item, dict) and isinstance(item.get("key"), str):
            unknown = sorted(str(name) for name in item if name not in _VARIANT_FIELDS)
            if unknown:  # a typo (wieght) would otherwise change the split silently
                bad("variants", f"variant {item['key']!r}: unknown field "
                                f"{', '.join(map(repr, unknown))}; expected key, weight, name")
                continue
            weight = item.get("weight", 1.0)
            if isinstance(weight, bool) or not isinstance(weight, int | float) or weight <= 0:
                bad("variants", f"variant {item['key']!r}: weight must be a positive number")
                continue
            variants.append(Variant(item["key"], float(weight), str(item.get("name", ""))))
        else:
            bad("variants", f"expected a variant key or {{key, weight}}, got {item!r}")
    keys = [v.key for v in variants]
    if len(set(keys)) != len(keys):
        bad("variants", "variant keys must be unique")
    control = raw.get("control", keys[0] if keys else "control")
    if keys and control not in keys:
        bad("control", f"{control!r} is not one of the variants ({', '.join(keys)})")
    primary = raw.get("primary")
    if primary is None:
        bad("primary", "required: the metric that decides the experiment")
        primary = ""
    elif not isinstance(primary, str):
        bad("primary", f"expected one metric name (the one that decides the experiment; "
                       f"others go in secondary), got {primary!r}")
        primary = ""
    lists: dict[str, tuple[str, ...]] = {}
    for name in ("secondary", "guardrails"):
        value = raw.get(name) or []
        if isinstance(value, str) and "," in value:
            names = [v.strip() for v in value.split(",")]
            bad(name, f"expected a list of metric names, got {value!r}; write "
                      f"[{', '.join(names)}]")
            value = []
        elif isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            bad(name, "expected a list of metric names")
            value = []
        lists[name] = tuple(value)
    targeting = raw.get("targeting") or {}
    if not isinstance(targeting, dict):
        bad("targeting", "expected a mapping with segment and/or attributes")
        targeting = {}
    attributes = targeting.get("attributes") or {}
    if not isinstance(attributes, dict) or not all(
        isinstance(c, dict) and set(c) <= _OPS for c in attributes.values()
    ):
        bad("targeting", f"attributes: expected {{name: {{op: value}}}} with op one of "
                         f"{', '.join(sorted(_OPS))}")
        attributes = {}
    for attribute, conditions in list(attributes.items()):
        for op, wanted in conditions.items():
            # SDKs apply the operator as written: `in: US` tested substrings ("S" was in
            # it), `gte: [65]` failed for every unit; both entered nobody or the wrong ones
            if op in ("in", "not_in"):
                if not (isinstance(wanted, list) and all(map(_is_scalar, wanted))):
                    bad("targeting", f"attributes: {attribute}.{op}: expected a list of "
                                     f"values ({op}: [{wanted}]?), got {wanted!r}")
                    attributes = {}
            elif not _is_scalar(wanted):
                bad("targeting", f"attributes: {attribute}.{op}: expected one value (a "
                                 f"string, number or true/false), got {wanted!r}")
                attributes = {}
    numbers: dict[str, float] = {}
    # every one is a fraction; mde is a relative lift below 100%: `mde: 5` meant 5%, and
    # was read as +500% (a plan of 17 units per variant)
    for name, default, low, high in (("coverage", 1.0, 0.0, 1.0), ("holdout", 0.0, 0.0, 0.5),
                                     ("mde", 0.05, 1e-6, 1.0), ("alpha", 0.05, 1e-6, 0.5),
                                     ("power", 0.8, 0.05, 0.9999)):
        value = raw.get(name, default)
        fits = _is_number(value) and low <= value and (
            value < high if name == "mde" else value <= high)
        if not fits:
            bound = f"below {high:g}" if name == "mde" else f"{high:g}"
            what = " (the smallest relative lift worth detecting, 0.05 for 5%)" \
                if name == "mde" else ""
            bad(name, f"expected a fraction from {low:g} to {bound}{what}, got {value!r}"
                      f"{_percent_hint(value, low, high) or _quoted_hint(value, low, high)}")
            value = default
        numbers[name] = float(value)
    correction = raw.get("correction", "holm")
    if correction not in ("holm", "bh", "none"):
        bad("correction", f"expected holm, bh or none, got {correction!r}")
    dates: dict[str, datetime | None] = {}
    for name in ("start", "end"):
        try:
            dates[name] = _when(raw.get(name), tz, end=name == "end")
        except ValueError as exc:
            bad(name, f"expected an ISO date or datetime ({exc})")
            dates[name] = None
    start, end = dates["start"], dates["end"]
    if start is not None and end is not None and end <= start:
        bad("end", f"{raw.get('end')} is not after start {raw.get('start')} (a date alone "
                   "is a whole day: end on the last day of the test)")
    exposure = raw.get("exposure_event", ["experiment_viewed", "Experiment Viewed"])
    if isinstance(exposure, str):
        exposure = [exposure]
    if not (isinstance(exposure, list) and exposure
            and all(isinstance(e, str) and e for e in exposure)):
        bad("exposure_event", f"expected an event name or a list of them, got {exposure!r}")
        exposure = ["experiment_viewed"]
    exposure_events = tuple(exposure)
    layer_range = raw.get("layer_range", [0.0, 1.0])
    if not (isinstance(layer_range, list) and len(layer_range) == 2
            and all(_is_number(v) for v in layer_range)
            and 0 <= layer_range[0] < layer_range[1] <= 1):
        bad("layer_range", f"expected [low, high] within [0, 1], got {layer_range!r}")
        layer_range = [0.0, 1.0]
    layer = raw.get("layer")
    if layer is not None and not isinstance(layer, str):
        bad("layer", f"expected a layer name, got {layer!r}")
    cuped_days = raw.get("cuped_days", 14)
    if not (isinstance(cuped_days, int) and not isinstance(cuped_days, bool)
            and 1 <= cuped_days <= 365):
        bad("cuped_days", f"expected a whole number of days from 1 to 365, got {cuped_days!r}")
        cuped_days = 14
    status = raw.get("status", "running")
    if status not in _STATUSES:
        bad("status", f"expected one of {', '.join(_STATUSES)}, got {status!r}")
    if len(problems) > before:
        return None
    return Experiment(
        key=key, name=str(raw.get("name") or key), hypothesis=str(raw.get("hypothesis") or ""),
        owner=str(raw.get("owner") or ""), variants=tuple(variants), control=control,
        primary=primary, secondary=lists["secondary"], guardrails=lists["guardrails"],
        segment=targeting.get("segment"), attributes=dict(attributes),
        coverage=numbers["coverage"], layer=layer,
        layer_range=(float(layer_range[0]), float(layer_range[1])),
        holdout=numbers["holdout"], start=start, end=end, mde=numbers["mde"],
        alpha=numbers["alpha"], power=numbers["power"], correction=correction,
        exposure_events=exposure_events, cuped_days=cuped_days,
        status=status, file=path, lines=dict(raw.lines),
    )


def load_experiments(folder: Path, timezone: str = "UTC") -> dict[str, Experiment]:
    """Every ``experiments/*.yaml``; raises ExperimentError listing every problem.
    ``timezone``: the workspace's (``[project] timezone``), whose days a ``start`` or
    ``end`` date means."""
    tz = ZoneInfo(timezone)
    problems: list[tuple[Location, str]] = []
    found: dict[str, Experiment] = {}
    for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
        try:
            raw = load_yaml(path)
        except CatalogError as exc:
            problems.extend(exc.problems)
            continue
        if not isinstance(raw, LineDict):
            problems.append((Location(path, 1), "expected a mapping of fields (key, variants...)"))
            continue
        experiment = _parse(path, raw, problems, tz)
        if experiment is None:
            continue
        if experiment.key in found:
            problems.append((Location(path, raw.lines.get("key", 1)),
                             f"experiment {experiment.key!r} is also defined in "
                             f"{found[experiment.key].file}"))
            continue
        found[experiment.key] = experiment
    if problems:
        raise ExperimentError(problems)
    return found


def get_experiment(experiments: dict[str, Experiment], key: str) -> Experiment:
    if key not in experiments:
        known = ", ".join(sorted(experiments)) or "none: add experiments/*.yaml"
        raise UserError(f"no experiment {key!r}{did_you_mean(key, experiments)} "
                        f"(known: {known})")
    return experiments[key]
