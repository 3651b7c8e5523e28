"""Experiments: definitions as code, deterministic assignment, sound statistics.

>>> from nerve.experiments import choose_variant
>>> choose_variant("simple_checkout", "user-1", ["control", "simple"], [0.5, 0.5]) in (
...     "control", "simple")
True
"""

from nerve.experiments._model import (
    Experiment,
    ExperimentError,
    Variant,
    get_experiment,
    load_experiments,
    matches_targeting,
)
from nerve.experiments.assign import bucket, choose_variant

__all__ = [
    "Experiment",
    "ExperimentError",
    "Variant",
    "bucket",
    "choose_variant",
    "get_experiment",
    "load_experiments",
    "matches_targeting",
]
