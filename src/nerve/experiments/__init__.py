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
    "analyze_experiment",
    "bucket",
    "choose_variant",
    "get_experiment",
    "load_experiments",
    "matches_targeting",
    "readout_dict",
]

if TYPE_CHECKING:
    from nerve.experiments._model import (
        Experiment,
        ExperimentError,
        Variant,
        get_experiment,
        load_experiments,
    )
    from nerve.experiments._run import analyze_experiment, readout_dict

_LAZY = {"Experiment", "ExperimentError", "Variant", "get_experiment", "load_experiments"}
#: the analysis, on any engine's ``events`` table (docs/storage.md, "Other engines")
_ANALYSIS = {"analyze_experiment", "readout_dict"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from nerve.experiments import _model  # noqa: PLC0415 - YAML and catalog on demand

        return getattr(_model, name)
    if name in _ANALYSIS:
        from nerve.experiments import _run  # noqa: PLC0415 - SciPy and Ibis on demand

        return getattr(_run, name)
    raise AttributeError(f"module 'nerve.experiments' has no attribute {name!r}")
