"""What a simulation is asked for and what happens in it: the config, app releases, the
experiment and the incidents, each with an exact window. Pure: no clock, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from nerve.errors import UserError

__all__ = [
    "DAY_MS",
    "DEFAULT_DAYS",
    "DEFAULT_USERS",
    "EXPERIMENT",
    "HOUR_MS",
    "MINUTE_MS",
    "Experiment",
    "Incident",
    "SimConfig",
    "Timeline",
    "build_timeline",
    "iso",
]

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS

DEFAULT_DAYS = 28
#: about 500k messages over 28 days, sent, validated and loaded in about 30 s on a quiet
#: 2-core machine (docs/demo.md). At 5000 the Android incident's 24 h in one platform
#: (about 130 add_to_cart expected, 50 seen) sat at the edge of what a 3-sigma family
#: bound over ~300 series can prove: found on some seeds, not others
DEFAULT_USERS = 10_000


@dataclass(frozen=True, slots=True)
class SimConfig:
    """A simulation request. Same config (``end`` included) gives the same messages."""

    #: the simulated "now": history covers ``days`` before it, live traffic its last minutes
    end: datetime
    days: int = DEFAULT_DAYS
    users: int = DEFAULT_USERS
    seed: int = 0
    #: the last minutes before ``end``, sent as live traffic with the platforms' own keys
    live_minutes: int = 15
    incidents: bool = True
    faults: bool = True

    def __post_init__(self) -> None:
        if self.end.tzinfo is None:
            raise UserError("simulation end: needs a time zone (use UTC)")
        if not 1 <= self.days <= 400:
            raise UserError(f"--days: expected 1 to 400, got {self.days}")
        if not 1 <= self.users <= 1_000_000:
            raise UserError(f"--users: expected 1 to 1000000, got {self.users}")
        if not 0 <= self.live_minutes <= 24 * 60:
            raise UserError(f"live minutes: expected 0 to 1440, got {self.live_minutes}")

    @property
    def end_ms(self) -> int:
        return int(self.end.timestamp() * 1000)

    def as_dict(self) -> dict[str, Any]:
        return {"end": iso(self.end_ms), "days": self.days, "users": self.users,
                "seed": self.seed, "live_minutes": self.live_minutes,
                "incidents": self.incidents, "faults": self.faults}


def iso(ms: int) -> str:
    """An epoch-milliseconds instant as ISO-8601 UTC with milliseconds.

    >>> iso(0)
    '1970-01-01T00:00:00.000Z'
    """
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


@dataclass(frozen=True, slots=True)
class Incident:
    """Something that went wrong in production, with its exact window and true effect."""

    key: str
    #: drop or spike
    kind: str
    event: str
    #: what moves: ``count`` (events per hour) of ``event`` in the segment
    metric: str
    #: the dimension that isolates it, and its value
    dimension: str
    value: str
    #: the exact fields that identify the affected events (JSON paths into the message)
    where: dict[str, str]
    start_ms: int
    end_ms: int
    #: the designed relative change of the metric in the segment: -0.6 is a 60% drop
    effect: float
    description: str
    details: dict[str, Any] = field(default_factory=dict)

    def active(self, at_ms: int) -> bool:
        return self.start_ms <= at_ms < self.end_ms

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "kind": self.kind, "event": self.event,
                "metric": self.metric, "dimension": self.dimension, "value": self.value,
                "where": self.where, "start": iso(self.start_ms), "end": iso(self.end_ms),
                "effect": self.effect, "description": self.description, **self.details}


@dataclass(frozen=True, slots=True)
class Experiment:
    """The running A/B test: a one-page checkout for shoppers aged 65 and over."""

    key: str = "simple_checkout"
    name: str = "Simple one-page checkout for 65+"
    variants: tuple[str, ...] = ("control", "simple")
    weights: tuple[float, ...] = (0.5, 0.5)
    min_age: int = 65
    #: true relative lift of P(payment submitted | checkout started) in ``simple``
    true_lift: float = 0.3
    exposure_event: str = "experiment_viewed"

    def as_dict(self, start_ms: int) -> dict[str, Any]:
        return {
            "key": self.key, "name": self.name, "variants": list(self.variants),
            "weights": list(self.weights), "control": self.variants[0],
            "targeting": {"age": {"gte": self.min_age}, "segment": "age >= 65"},
            "start": iso(start_ms), "end": None,
            "exposure": {"event": self.exposure_event, "when": "checkout_start",
                         "experiment_property": "experiment_id",
                         "variant_property": "variant_id"},
            "assignment": "nerve.experiments.choose_variant(key, user_id, variants, weights)",
            "true_lift": {"metric": "checkout_completion", "relative": self.true_lift,
                          "definition": "share of checkout_start events followed by "
                                        "payment_submitted in the same session"},
        }


EXPERIMENT = Experiment()

#: (version, build) of the apps; releases switch every device at once (forced update),
#: so a version identifies its time window exactly
IOS_OLD, IOS_NEW = ("4.1.2", "4120"), ("4.2.0", "4200")
ANDROID_OLD, ANDROID_BAD, ANDROID_FIX = ("4.1.1", "4110"), ("4.2.0", "4200"), ("4.2.1", "4210")

#: adyen's failure rate, normally and during its outage
PAYMENT_FAIL_RATE = 0.03
PAYMENT_OUTAGE_FAIL_RATE = 0.45
ADD_TO_CART_LOSS = 0.6


@dataclass(frozen=True, slots=True)
class Timeline:
    """Every instant the simulation turns on, in epoch milliseconds."""

    start_ms: int
    end_ms: int
    live_start_ms: int
    ios_release_ms: int
    android_release_ms: int
    android_hotfix_ms: int
    experiment_start_ms: int
    incidents: tuple[Incident, ...]

    def app(self, platform: str, at_ms: int) -> tuple[str, str]:
        """(version, build) of the app on ``platform`` at ``at_ms``."""
        if platform == "ios":
            return IOS_NEW if at_ms >= self.ios_release_ms else IOS_OLD
        if at_ms >= self.android_hotfix_ms:
            return ANDROID_FIX
        return ANDROID_BAD if at_ms >= self.android_release_ms else ANDROID_OLD

    def incident(self, key: str) -> Incident | None:
        return next((i for i in self.incidents if i.key == key), None)

    def releases(self) -> list[dict[str, str]]:
        """The app releases inside the span (none in a clean simulation)."""
        found = [("ios", IOS_NEW, self.ios_release_ms),
                 ("android", ANDROID_BAD, self.android_release_ms),
                 ("android", ANDROID_FIX, self.android_hotfix_ms)]
        return [{"platform": p, "version": v, "build": b, "at": iso(at)}
                for p, (v, b), at in found if self.start_ms < at < self.end_ms]


def _floor(ms: int, unit: int) -> int:
    return ms - ms % unit


def build_timeline(config: SimConfig) -> Timeline:
    """Place releases, the experiment and the incidents inside the simulated span.

    With the default 28 days: the Android 4.2.0 release (and its add_to_cart bug) 5 days
    before the end, fixed by 4.2.1 a day later; adyen's outage from 17:00 to 21:00 UTC two
    days before the end; the experiment started 21 days before the end. Shorter spans
    scale these down; an incident that does not fit before the live minutes is left out.
    """
    end = config.end_ms
    span = config.days * DAY_MS
    start = end - span
    live_start = end - config.live_minutes * MINUTE_MS
    release = _floor(end - min(5 * DAY_MS, int(span * 0.55)), HOUR_MS)
    bug_hours = max(1, min(24, int(span * 0.3) // HOUR_MS))
    hotfix = release + bug_hours * HOUR_MS
    ios_release = max(start, release - 3 * DAY_MS)
    spike_day = _floor(end - min(2 * DAY_MS, int(span * 0.3)), DAY_MS)
    # the European evening and the American afternoon: the busiest hours for payments
    spike_start = spike_day + 17 * HOUR_MS
    if spike_start + 4 * HOUR_MS > live_start:
        spike_start = _floor(live_start - 5 * HOUR_MS, HOUR_MS)
    spike_end = spike_start + 4 * HOUR_MS
    experiment_start = max(start, _floor(end - min(21 * DAY_MS, int(span * 0.75)), DAY_MS))
    incidents: list[Incident] = []
    if config.incidents:
        candidates = [
            Incident(
                key="android_add_to_cart_drop", kind="drop", event="add_to_cart",
                metric="count", dimension="platform", value="android",
                where={"context.device.type": "android",
                       "context.app.version": ANDROID_BAD[0]},
                start_ms=release, end_ms=hotfix, effect=-ADD_TO_CART_LOSS,
                description=(f"Android app {ANDROID_BAD[0]} shipped a broken Add to cart "
                             f"button: {ADD_TO_CART_LOSS:.0%} of taps do nothing until the "
                             f"{ANDROID_FIX[0]} hotfix; checkouts and purchases on Android "
                             "fall with it."),
                details={"release": {"platform": "android", "version": ANDROID_BAD[0],
                                     "build": ANDROID_BAD[1]},
                         "fixed_by": {"version": ANDROID_FIX[0], "build": ANDROID_FIX[1]},
                         "downstream": ["checkout_start", "payment_submitted",
                                        "purchase_complete"]},
            ),
            Incident(
                key="adyen_payment_outage", kind="spike", event="payment_failed",
                metric="count", dimension="payment_provider", value="adyen",
                where={"properties.payment_provider": "adyen"},
                start_ms=spike_start, end_ms=spike_end,
                effect=round(PAYMENT_OUTAGE_FAIL_RATE / PAYMENT_FAIL_RATE - 1, 2),
                description=(f"The payment provider adyen times out: its failure rate goes "
                             f"from {PAYMENT_FAIL_RATE:.0%} to {PAYMENT_OUTAGE_FAIL_RATE:.0%} "
                             "of submitted payments for four hours (error codes "
                             "provider_timeout and provider_unavailable); some shoppers "
                             "retry with another method, the rest are lost sales."),
                details={"failure_rate": {"baseline": PAYMENT_FAIL_RATE,
                                          "during": PAYMENT_OUTAGE_FAIL_RATE},
                         "error_codes": ["provider_timeout", "provider_unavailable"],
                         "downstream": ["purchase_complete"]},
            ),
        ]
        incidents = [i for i in candidates if start <= i.start_ms and i.end_ms <= live_start]
    else:
        # a clean month has no releases either: a version that vanishes overnight is a
        # change worth an alert, and a clean simulation must raise none
        ios_release = release = hotfix = end + DAY_MS
    return Timeline(start_ms=start, end_ms=end, live_start_ms=live_start,
                    ios_release_ms=ios_release, android_release_ms=release,
                    android_hotfix_ms=hotfix, experiment_start_ms=experiment_start,
                    incidents=tuple(incidents))
