"""Volume check power and false alarms on simulated hourly traffic (no warehouse).

Five events x three platforms (android 45%, ios 35%, web 20%; the segment hit,
android ``meditation_completed``, 47 events/h on average), a daily curve (x0.4 to
x1.6) and busier weekends, 10 or 28 days of history; the data ends at a different hour
for each seed. ``check_volume`` runs with the default settings on the frames the
warehouse scans would return (events per hour; per platform over
``dimension_training``).

- clean: Poisson counts, sessions (geometric, mean 3), whole days +-15% for the whole
  product (``swings``), or +-20% for each series on its own (``swings_each``, harsh):
  how many runs raise any volume alarm;
- drops: android ``meditation_completed`` cut by 30/50/70% for the last 4 or 8 hours
  (Poisson counts): how many runs report it.

    python benchmarks/volume_power.py --seeds 40 [--days 10 28] [--clean-only]
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
import pandas as pd

from nerve.quality._config import ChecksConfig
from nerve.quality._context import Context
from nerve.quality._result import CheckResult
from nerve.quality._volume import check_volume

NOW_H = 490_000 + 10 * 24 + 15  # hours since the epoch: "now" is the start of this hour
PLATFORMS = {"android": 0.45, "ios": 0.35, "web": 0.20}
EVENTS = {"meditation_completed": 105, "session_started": 60, "course_opened": 40,
          "reminder_tapped": 25, "breath_exercise_done": 90}  # mean events/h overall
TARGET = ("meditation_completed", "android")
KINDS = ("poisson", "sessions", "swings", "swings_each")


def simulate(rng: np.random.Generator, days: int, now_h: int, kind: str = "poisson",
             drop: tuple[float, int] | None = None) -> pd.DataFrame:
    """Counts per event, platform and hour (the last complete hour is ``now_h - 1``)."""
    hours = np.arange(now_h - days * 24, now_h)
    curve = 1 + 0.6 * np.sin((hours % 24 - 9) / 24 * 2 * np.pi)
    week = np.where((hours // 24) % 7 >= 5, 1.25, 0.9)
    shared = np.repeat(rng.lognormal(0, 0.15, days), 24)
    rows = []
    for event, level in EVENTS.items():
        for platform, share in PLATFORMS.items():
            mu = level * share * curve * week
            if drop is not None and (event, platform) == TARGET:
                mu = np.where(hours >= now_h - drop[1], mu * (1 - drop[0]), mu)
            if kind == "swings":
                mu = mu * shared
            elif kind == "swings_each":
                mu = mu * np.repeat(rng.lognormal(0, 0.2, days), 24)
            if kind == "sessions":
                k = rng.poisson(mu / 3)
                n = np.where(k > 0, k + rng.negative_binomial(np.maximum(k, 1), 1 / 3), 0)
            else:
                n = rng.poisson(mu)
            rows.append(pd.DataFrame({"event": event, "value": platform, "hour": hours,
                                      "n": n}))
    frame = pd.concat(rows)
    return frame[frame["n"] > 0]


def problems(dim: pd.DataFrame, now_h: int) -> list[CheckResult]:
    """The volume check's non-passing results on the simulated counts."""
    cfg = ChecksConfig()
    profile = dim.groupby(["event", "hour"], as_index=False)["n"].sum().assign(
        source="app", historical=False)
    ctx = Context(inputs=None, cfg=cfg, now=float(now_h * 3600))  # type: ignore[arg-type]
    since = now_h * 3600 - cfg.seconds("volume", "dimension_training")
    ctx.cache["dim:platform"] = dim[dim["hour"] * 3600 >= since]
    return [r for r in check_volume(ctx, profile, ["platform"]) if r.status.value != "pass"]


def found(results: list[Any]) -> bool:
    return any(r.event == TARGET[0] and r.dimensions == {"platform": TARGET[1]}
               and r.details.get("direction") == "down" for r in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--days", type=int, nargs="+", default=[10, 28])
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    parser.add_argument("--clean-only", action="store_true")
    args = parser.parse_args()
    for days in args.days:
        for kind in args.kinds:
            alarmed = 0
            for seed in range(args.seeds):
                now_h = NOW_H + (seed * 7) % 24
                results = problems(simulate(np.random.default_rng(1000 + seed), days, now_h,
                                            kind), now_h)
                alarmed += bool(results)
                for r in results:
                    print(f"   false alarm ({days} d, {kind}, seed {seed}): {r.message}")
            print(f"clean, {days} d of history, {kind}: {alarmed}/{args.seeds} runs alarmed",
                  flush=True)
    if args.clean_only:
        return
    for days in args.days:
        for cut in (0.3, 0.5, 0.7):
            for hours in (4, 8):
                hits = 0
                for seed in range(args.seeds):
                    now_h = NOW_H + (seed * 7) % 24
                    dim = simulate(np.random.default_rng(2000 + seed), days, now_h,
                                   drop=(cut, hours))
                    hits += found(problems(dim, now_h))
                print(f"{days} d of history, -{cut:.0%} for {hours} h on {TARGET[1]} "
                      f"{TARGET[0]} (47/h on average): found {hits}/{args.seeds}", flush=True)


if __name__ == "__main__":
    main()
