"""Experiments: deterministic assignment and the statistics to read them soundly."""

from nerve.experiments.assign import bucket, choose_variant

__all__ = ["bucket", "choose_variant"]
