"""Experiments: definitions as code, deterministic assignment, sound statistics.

>>> from nerve.experiments import choose_variant
>>> choose_variant("simple_checkout", "user-1", ["control", "simple"], [0.5, 0.5]) in (
...     "control", "simple")
True

Assignment and targeting import nothing heavy (SDKs use them); the definitions and the
analysis load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nerve.experiments._targeting import matches_targeting
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

if TYPE_CHECKING:
    from nerve.experiments._model import (
        Experiment,
        ExperimentError,
        Variant,
        get_experiment,
        load_experiments,
    )

_LAZY = {"Experiment", "ExperimentError", "Variant", "get_experiment", "load_experiments"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from nerve.experiments import _model  # noqa: PLC0415 - YAML and catalog on demand

        return getattr(_model, name)
    raise AttributeError(f"module 'nerve.experiments' has no attribute {name!r}")
