"""Run the checks: a few shared scans, then each check over their small results."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import pandas as pd

from nerve.catalog import Catalog
from nerve.errors import UserError, close_match
from nerve.quality import _scan
from nerve.quality._basic import (
    check_clock_skew,
    check_drift,
    check_duplicates,
    check_freshness,
    check_lateness,
    check_loader_lag,
    check_natural_key_duplicates,
    check_schema,
)
from nerve.quality._config import CHECKS, DEFAULT_DIMENSIONS, ChecksConfig
from nerve.quality._context import Context
from nerve.quality._engine import Inputs
from nerve.quality._missing import (
    check_disappeared_values,
    check_missing_events,
    check_null_rate,
)
from nerve.quality._rates import check_rates
from nerve.quality._references import masked_reason
from nerve.quality._result import CheckResult, Status
from nerve.quality._sequence import check_sequence
from nerve.quality._volume import check_volume
from nerve.quality._withheld import check_refusals, check_withheld

__all__ = ["refuse_idle_selection", "run_checks"]

log = logging.getLogger("nerve.quality")


def refuse_idle_selection(config: ChecksConfig, select: Sequence[str]) -> None:
    """``UserError`` when a selected check would produce no result at all (switched off,
    or no sequences or rates configured): an empty run passes, and ``nerve check --select
    sequence`` in CI, or the same ``select`` over HTTP, stayed green while checking
    nothing. Event names are left to ``run_checks``. Not part of ``run_checks`` itself:
    a run of everything (``nerve explain``, the scheduler) skips such checks quietly.

    >>> refuse_idle_selection(ChecksConfig(), ["volume"])
    >>> try:
    ...     refuse_idle_selection(ChecksConfig(), ["sequence"])
    ... except UserError as exc:
    ...     print(str(exc)[:45])
    select: sequence: no sequences are configured
    """
    idle = [f"{name}: {why}" for name in dict.fromkeys(select)
            if (why := _nothing_to_run(config, name)) is not None]
    if idle:
        raise UserError("select: " + "; ".join(idle))


def _nothing_to_run(config: ChecksConfig, name: str) -> str | None:
    """Why the selected check ``name`` would produce no result at all, or None."""
    if name not in CHECKS:
        return None  # an event name (run_checks checks those against the catalog)
    if config.defaults.get(name, {}).get("enabled", True) is False:
        return (f"switched off (defaults.{name}.enabled: false in checks.yaml), so it has "
                "nothing to run")
    if name == "sequence" and not config.sequences:
        return "no sequences are configured (sequences: in checks.yaml), so it has nothing to run"
    if name == "rate" and not config.rates:
        return ("no rates are configured (rates: in checks.yaml, or a ratio metric of two "
                "event counts in metrics/), so it has nothing to run")
    return None


def run_checks(
    inputs: Inputs,
    catalog: Catalog | None = None,
    config: ChecksConfig | None = None,
    *,
    now: datetime | None = None,
    select: Sequence[str] = (),
    timings: dict[str, float] | None = None,
) -> list[CheckResult]:
    """Run every enabled check (or the selected ones) and return their results.

    ``select`` holds check names (``volume``, ``freshness``...) and/or event names; with
    none, everything runs. ``now`` is the reference time (default: the wall clock).
    A check that fails to run yields one result with status ``error``; the others still run.
    ``timings``, when given, receives the seconds each check took (shared scans are
    counted in the first check that needs them).
    """
    cfg = config or ChecksConfig()
    checks = [s for s in select if s in CHECKS]
    events = [s for s in select if s not in CHECKS]
    unknown = [e for e in events if catalog is not None and e not in catalog]
    if unknown and catalog is not None:
        # a typo in the selection should not silently check nothing, also beside a check
        # name (named as both the CLI's --select and the HTTP body's "select" call it)
        close = [c for e in unknown if (c := close_match(e, [*CHECKS, *catalog.names()]))]
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UserError(f"select: {', '.join(unknown)}: neither a check ({', '.join(CHECKS)})"
                        f" nor a cataloged event{hint}")
    wanted = set(checks or CHECKS)
    moment = (now or datetime.now(UTC)).timestamp()
    cfg, skipped = _unmasked_defaults(cfg, catalog)
    ctx = Context(inputs=inputs, cfg=cfg, now=moment, catalog=catalog)
    dims = [d for d in cfg.get("volume", "dimensions") if d in cfg.dimensions]

    def profile() -> pd.DataFrame:
        return ctx.scan("profile", lambda: _scan.hourly_profile(inputs, cfg, moment))

    def recent() -> pd.DataFrame:
        return ctx.scan("recent", lambda: _scan.recent_live(inputs, cfg, moment,
                                                            catalog.names() if catalog else []))

    plan: list[tuple[str, Callable[[], list[CheckResult]]]] = [
        ("schema", lambda: check_schema(ctx)),
        ("drift", lambda: check_drift(ctx)),
        ("duplicates", lambda: check_duplicates(ctx)),
        ("withheld", lambda: check_withheld(ctx)),
        ("refusals", lambda: check_refusals(ctx)),
        ("natural_key_duplicates", lambda: check_natural_key_duplicates(ctx)),
        ("freshness", lambda: check_freshness(ctx, profile(), ctx.scan(
            "before", lambda: _scan.live_before(inputs, cfg, moment)))),
        ("loader_lag", lambda: check_loader_lag(ctx, recent())),
        ("lateness", lambda: check_lateness(ctx, recent())),
        ("clock_skew", lambda: check_clock_skew(ctx, recent())),
        ("volume", lambda: check_volume(ctx, profile(), dims)),
        ("rate", lambda: check_rates(ctx, profile(), dims)),
        ("missing_events", lambda: check_missing_events(ctx, profile())),
        ("null_rate", lambda: check_null_rate(ctx)),
        ("disappeared_values", lambda: check_disappeared_values(ctx, dims)),
    ]
    plan.extend(("sequence", lambda s=seq: [check_sequence(ctx, s)])  # type: ignore[misc]
                for seq in cfg.sequences)
    results: list[CheckResult] = []
    for name, run in plan:
        if name not in wanted or cfg.defaults.get(name, {}).get("enabled", True) is False:
            continue
        started = time.perf_counter()
        try:
            found = run()
        except UserError:
            raise
        except Exception as exc:
            log.exception("check %s failed", name)
            found = [CheckResult(check=name, status=Status.error,
                                 message=f"The {name} check could not run: "
                                         f"{type(exc).__name__}: {exc}")]
        took = time.perf_counter() - started
        if timings is not None:
            timings[name] = timings.get(name, 0.0) + took
        log.debug("check %s: %d results in %.2f s", name, len(found), took)
        results.extend(found)
    noted = next((c for c in ("volume", "disappeared_values", "rate") if c in wanted
                  and cfg.defaults.get(c, {}).get("enabled", True) is not False), None)
    if noted is not None:
        results.extend(CheckResult(check=noted, status=Status.passed, message=note)
                       for note in skipped)
    if events:
        # a day without any event at all (missing_events, event None) is every event's gap
        results = [r for r in results if r.event in events
                   or (r.event is None and r.check == "missing_events")]
    return results


def _unmasked_defaults(cfg: ChecksConfig, catalog: Catalog | None
                       ) -> tuple[ChecksConfig, list[str]]:
    """``cfg`` without the default key dimensions' paths that read a value a reader's view
    masks (``country`` falls back to ``context.traits.country``: a personal trait when
    identify says so), and a note for each: a dimension's values are written into the
    results. checks.yaml's own dimensions are refused when they do (``_references``)."""
    if catalog is None:
        return cfg, []
    dimensions, notes = dict(cfg.dimensions), []
    for name, paths in cfg.dimensions.items():
        if paths != DEFAULT_DIMENSIONS.get(name):
            continue
        masked = {p: reason for p in paths if (reason := masked_reason(p, catalog))}
        if not masked:
            continue
        kept = tuple(p for p in paths if p not in masked)
        if kept:
            dimensions[name] = kept
        else:
            del dimensions[name]
        reads = f"reads {', '.join(kept)} only" if kept else "is skipped"
        notes.append(
            f"The key dimension {name} {reads}: {', '.join(masked)} is "
            f"{', '.join(masked.values())}, masked in a reader's view, and a dimension's "
            "values are written into the checks' results. Define it in checks.yaml "
            "(dimensions:) to read another field.")
    if not notes:
        return cfg, []
    return dataclasses.replace(cfg, dimensions=dimensions), notes
