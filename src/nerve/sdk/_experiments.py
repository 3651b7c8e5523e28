"""Experiment assignment in the SDK: definitions from the server, decisions locally.

Definitions come from ``GET {host}/v1/experiments`` (the write key authenticates) and
are cached for ``ttl`` seconds; assignment itself needs no request, so it is fast and
works offline once definitions were fetched. Each (experiment, unit) logs one exposure
per process: ``experiment_viewed`` with ``experiment_id`` and ``variant_id``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from nerve.experiments._targeting import matches_targeting
from nerve.experiments.assign import choose_variant

__all__ = ["Experiments"]

log = logging.getLogger("nerve.sdk")

EXPOSURE_EVENT = "experiment_viewed"


class Experiments:
    """The experiments a client knows, and the exposures it has logged."""

    def __init__(self, write_key: str, host: str, *, timeout: float, ttl: float = 60.0,
                 definitions: list[dict[str, Any]] | None = None) -> None:
        self._auth = (write_key, "")
        self._url = host.rstrip("/") + "/v1/experiments"
        self._timeout = timeout
        self._ttl = ttl
        self._lock = threading.Lock()
        self._fixed = definitions is not None
        self._definitions: dict[str, dict[str, Any]] = {
            d["key"]: d for d in (definitions or [])}
        self._fetched_at = 0.0
        self._exposed: set[tuple[str, str]] = set()

    def _refresh(self) -> None:
        if self._fixed or time.monotonic() - self._fetched_at < self._ttl:
            return
        try:
            response = httpx.get(self._url, auth=self._auth, timeout=self._timeout)
            response.raise_for_status()
            found = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            # keep the last definitions; an unreachable server must not break the app
            log.warning("nerve.sdk: could not fetch experiments from %s: %s", self._url, exc)
            self._fetched_at = time.monotonic()
            return
        if isinstance(found, list):
            self._definitions = {d["key"]: d for d in found
                                 if isinstance(d, dict) and isinstance(d.get("key"), str)}
        self._fetched_at = time.monotonic()

    def decide(self, key: str, unit: str, attributes: Mapping[str, Any] | None,
               expose: Callable[[str, str], None]) -> str | None:
        """The unit's variant, or None (unknown, not running, not targeted, not covered)."""
        with self._lock:
            self._refresh()
            spec = self._definitions.get(key)
        if spec is None or not _running(spec):
            return None
        if not matches_targeting(spec.get("attributes") or {}, dict(attributes or {})):
            return None
        variant = choose_variant(
            key, unit, spec["variants"], spec["weights"],
            coverage=float(spec.get("coverage", 1.0)), layer=spec.get("layer"),
            layer_range=tuple(spec.get("layer_range") or (0.0, 1.0)),
            holdout=float(spec.get("holdout", 0.0)),
        )
        if variant is None:
            return None
        with self._lock:
            first = (key, unit) not in self._exposed
            self._exposed.add((key, unit))
        if first:
            expose(key, variant)
        return variant


def _running(spec: Mapping[str, Any]) -> bool:
    if spec.get("status", "running") not in ("running", "active"):
        return False
    now = datetime.now(UTC)
    for name, after in (("start", True), ("end", False)):
        value = spec.get(name)
        if not value:
            continue
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            continue
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        if (after and now < moment) or (not after and now >= moment):
            return False
    return True
