"""``nerve demo``: the bundled shop workspace and its deterministic traffic simulator.

>>> from datetime import datetime, UTC
>>> from nerve.demo import SimConfig, simulate
>>> sim = simulate(SimConfig(end=datetime(2026, 1, 1, tzinfo=UTC), days=1, users=10))
>>> all(m.message["messageId"] for m in sim)
True
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from nerve._lazy import names_from

if TYPE_CHECKING:
    from nerve.demo._scenario import (
        DEFAULT_DAYS,
        DEFAULT_USERS,
        EXPERIMENT,
        Experiment,
        Incident,
        SimConfig,
        Timeline,
        build_timeline,
    )
    from nerve.demo._simulate import Simulation, ground_truth, simulate
    from nerve.demo._truth import FAULTS, QUARANTINED_FAULTS, SimMessage, call_name

#: the bundled example workspace's files (events/, metrics/, experiments/)
SHOP_DIR = Path(__file__).parent / "shop"

__all__ = [
    "DEFAULT_DAYS",
    "DEFAULT_USERS",
    "EXPERIMENT",
    "FAULTS",
    "QUARANTINED_FAULTS",
    "SHOP_DIR",
    "Experiment",
    "Incident",
    "SimConfig",
    "SimMessage",
    "Simulation",
    "Timeline",
    "build_timeline",
    "call_name",
    "ground_truth",
    "simulate",
]

# the simulator loads on first use: `nerve serve` and other commands register `nerve demo`
# (its option defaults) without importing it
__getattr__ = names_from(__name__, {
    "_scenario": ("DEFAULT_DAYS", "DEFAULT_USERS", "EXPERIMENT", "Experiment", "Incident",
                  "SimConfig", "Timeline", "build_timeline"),
    "_simulate": ("Simulation", "ground_truth", "simulate"),
    "_truth": ("FAULTS", "QUARANTINED_FAULTS", "SimMessage", "call_name"),
})
