"""``nerve demo``: the bundled shop workspace and its deterministic traffic simulator.

>>> from datetime import datetime, UTC
>>> from nerve.demo import SimConfig, simulate
>>> sim = simulate(SimConfig(end=datetime(2026, 1, 1, tzinfo=UTC), days=1, users=10))
>>> all(m.message["messageId"] for m in sim)
True
"""

from pathlib import Path

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
