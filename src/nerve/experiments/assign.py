"""Deterministic assignment of units to variants, stable across processes and SDKs.

A unit's bucket is the first 8 bytes of SHA-256 over ``"<seed>:<unit id>"`` read as a
big-endian integer and divided by 2**64: a float in [0, 1) that any language can compute
the same way. Mutually exclusive experiments share a ``layer`` seed and split its range;
a holdout takes the top of a separate seed's range.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

__all__ = ["bucket", "choose_variant"]


def bucket(seed: str, unit: str) -> float:
    """Where ``unit`` falls in [0, 1) for ``seed``.

    >>> bucket("exp", "user-1") == bucket("exp", "user-1")
    True
    """
    digest = hashlib.sha256(f"{seed}:{unit}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def choose_variant(key: str, unit: str, variants: Sequence[str], weights: Sequence[float], *,
                   coverage: float = 1.0, layer: str | None = None,
                   layer_range: tuple[float, float] = (0.0, 1.0),
                   holdout: float = 0.0) -> str | None:
    """The variant of ``unit`` in experiment ``key``, or None when it is not in the experiment.

    ``coverage`` is the share of eligible units that enter; ``layer``/``layer_range``
    put the experiment in a slice of a layer shared with mutually exclusive experiments;
    ``holdout`` keeps a share of all units out of every experiment (seed ``"holdout"``).
    """
    if holdout and bucket("holdout", unit) >= 1 - holdout:
        return None
    if layer is not None:
        position = bucket(f"layer:{layer}", unit)
        low, high = layer_range
        if not low <= position < high:
            return None
    if bucket(f"coverage:{key}", unit) >= coverage:
        return None
    total = float(sum(weights))
    point = bucket(key, unit) * total
    cumulative = 0.0
    for variant, weight in zip(variants, weights, strict=True):
        cumulative += weight
        if point < cumulative:
            return variant
    return variants[-1]
