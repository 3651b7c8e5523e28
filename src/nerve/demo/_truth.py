"""The ground truth of a simulation: what was injected and what the warehouse should hold.

A ``Tally`` watches every message the simulator yields and every experiment decision it
makes; ``Tally.result()`` is the JSON document written to ``ground_truth.json``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from nerve.demo._scenario import EXPERIMENT, SimConfig, Timeline, iso

__all__ = ["FAULTS", "QUARANTINED_FAULTS", "SimMessage", "Tally", "call_name"]

#: every fault kind the simulator can inject, with what it looks like
FAULTS = {
    "wrong_type": "web product_view and add_to_cart send price as a string (\"59.99\")",
    "unknown_property": "iOS checkout_start sends coupon_code, which the catalog lacks",
    "missing_required": "Android app_error omits the required screen property",
    "unplanned_event": "events the catalog does not know: wishlist_add (apps), "
                       "Product Shared (web)",
    "duplicate_message_id": "a retried request sends a message again with the same messageId",
    "double_fired": "Android fires purchase_complete twice for one order (new messageId, "
                    "same order_id)",
    "late": "a phone offline for hours delivers its queued events with the live traffic",
    "clock_skew": "phones whose clock is minutes off: timestamp and sentAt shifted alike",
}
#: faults whose messages the collector must quarantine (the rest are stored as events)
QUARANTINED_FAULTS = frozenset(
    {"wrong_type", "unknown_property", "missing_required", "unplanned_event"}
)


@dataclass(frozen=True, slots=True)
class SimMessage:
    """One message as a device would send it, plus how the demo must send it."""

    #: the Segment-spec message: type, event/name, userId, anonymousId, messageId,
    #: timestamp, properties/traits, context
    message: dict[str, Any]
    #: when it really happened (epoch ms); ``message["timestamp"]`` differs under clock skew
    at: int
    #: the source that sends it live: ios, android, web or server
    source: str
    #: sent with the live traffic (else part of the historical import)
    live: bool = False
    #: the fault it carries, one of FAULTS, or None
    fault: str | None = None
    #: the device clock's error in ms: the sender must add it to sentAt
    clock_skew_ms: int = 0


def call_name(message: dict[str, Any]) -> str:
    """The catalog entry a message is validated against: the event, or the call type."""
    return str(message["event"]) if message["type"] == "track" else str(message["type"])


@dataclass
class _Arm:
    units: dict[str, int] = field(default_factory=dict)  # user -> first exposure ms
    exposures: int = 0
    checkouts: int = 0
    completed: int = 0
    purchasers: set[str] = field(default_factory=set)
    revenue: float = 0.0


class Tally:
    """Counts what the simulator yields, for ground_truth.json and the tests."""

    def __init__(self, config: SimConfig, timeline: Timeline) -> None:
        self.config = config
        self.timeline = timeline
        self.sent = Counter[str]()  # history / live messages, duplicates included
        self.faults = Counter[str]()
        self.accepted = Counter[str]()
        self.quarantined = Counter[str]()
        self.users_active: set[str] = set()
        self.sessions = 0
        self.orders = 0
        self.revenue = 0.0
        self.skews: list[int] = []
        self.late_delays: list[int] = []
        self.arms = {v: _Arm() for v in EXPERIMENT.variants}

    def add(self, sim: SimMessage) -> None:
        self.sent["live" if sim.live else "history"] += 1
        if sim.fault is not None:
            self.faults[sim.fault] += 1
        if sim.fault == "duplicate_message_id":
            return  # the loader keeps the first copy only
        name = call_name(sim.message)
        if sim.fault in QUARANTINED_FAULTS:
            self.quarantined[name] += 1
            return
        self.accepted[name] += 1
        if sim.fault == "clock_skew":
            self.skews.append(sim.clock_skew_ms)
        elif sim.fault == "late":
            self.late_delays.append(self.timeline.live_start_ms - sim.at)
        if name == "purchase_complete" and sim.fault != "double_fired":
            self.orders += 1
            self.revenue += float(sim.message["properties"]["revenue"])

    # experiment bookkeeping, called by the simulator ---------------------------------------

    def exposure(self, variant: str, user: str, at: int) -> None:
        arm = self.arms[variant]
        arm.exposures += 1
        arm.units.setdefault(user, at)

    def checkout(self, variant: str, completed: bool) -> None:
        arm = self.arms[variant]
        arm.checkouts += 1
        arm.completed += completed

    def purchase(self, variant: str | None, user: str, revenue: float) -> None:
        if variant is None:
            return
        arm = self.arms[variant]
        if user in arm.units:
            arm.purchasers.add(user)
            arm.revenue += revenue

    def result(self) -> dict[str, Any]:
        """The ground-truth document."""
        t = self.timeline
        accepted = sum(self.accepted.values())
        quarantined = sum(self.quarantined.values())
        arms = []
        for variant, arm in self.arms.items():
            arms.append({
                "variant": variant, "units": len(arm.units), "exposures": arm.exposures,
                "checkouts": arm.checkouts, "completed_checkouts": arm.completed,
                "checkout_completion": round(arm.completed / arm.checkouts, 4)
                if arm.checkouts else None,
                "purchasers": len(arm.purchasers),
                "revenue_after_exposure": round(arm.revenue, 2),
            })
        fault_counts = {kind: self.faults.get(kind, 0) for kind in FAULTS}
        return {
            "simulation": {
                **self.config.as_dict(), "start": iso(t.start_ms), "end": iso(t.end_ms),
                "live_start": iso(t.live_start_ms), "active_users": len(self.users_active),
                "sessions": self.sessions,
            },
            "expected": {
                "messages_sent": sum(self.sent.values()),
                "history_sent": self.sent["history"], "live_sent": self.sent["live"],
                "accepted": accepted, "quarantined": quarantined,
                "accepted_by_event": dict(sorted(self.accepted.items())),
                "quarantined_by_event": dict(sorted(self.quarantined.items())),
                "orders": self.orders, "revenue": round(self.revenue, 2),
            },
            "dimensions": {
                "platform": "context.device.type: ios, android or web (refunds come from "
                            "the server and have none)",
                "app_version": "context.app.version (apps only)",
                "country": "traits.country of the latest identify",
                "age_group": "traits.age_group of the latest identify",
                "payment_provider": "properties.payment_provider",
            },
            "releases": t.releases(),
            "incidents": [i.as_dict() for i in t.incidents],
            "experiment": {**EXPERIMENT.as_dict(t.experiment_start_ms), "observed": arms},
            "faults": fault_counts,
            "fault_descriptions": FAULTS,
            "fault_details": {
                "clock_skew_minutes": sorted({round(s / 60_000) for s in self.skews}),
                "late_delay_hours": {
                    "min": round(min(self.late_delays) / 3_600_000, 2),
                    "max": round(max(self.late_delays) / 3_600_000, 2),
                } if self.late_delays else None,
            },
        }
