"""Volume check false alarms and power on very noisy, stationary hourly counts.

A small shop (no warehouse): five events x three platforms (product_view 100 events/h,
add_to_cart 30, checkout_start 12, payment_submitted 10, payment_failed 1; ``--scale``
multiplies them) on a daily curve and busier weekends. The noise (``--noise``):
``sessions`` (Poisson sessions of one user, of geometric size with mean ``--shape``:
nine payments in an hour, then nothing for a day), ``hour`` (each hour's rate drawn
from a gamma of shape ``--shape``: variance ``mu + mu^2 / shape``) or ``block`` (one
gamma factor per 6 hours). payment_failed always has the ``hour`` noise: a failure is one
event, not a session. The checks run with their defaults, as in ``volume_power.py``.

- clean: how many runs raise any volume alarm;
- drop: ``add_to_cart`` (all platforms) halved over the last ``--drop-hours`` hours;
  spike: ``payment_failed`` x5 over the last ``--spike-hours`` hours: how many runs
  report each (overall or on a platform, in the right direction).

    python benchmarks/volume_noisy.py --seeds 40 --noise sessions --shape 3 6 [--scale 0.2]
"""

from __future__ import annotations

import argparse
import itertools
from typing import Any

import numpy as np
import pandas as pd
from volume_power import problems  # the same checks on the simulated counts

NOW_H = 490_000 + 10 * 24 + 15  # hours since the epoch: "now" is the start of this hour
PLATFORMS = {"android": 0.45, "ios": 0.35, "web": 0.20}
EVENTS = {"product_view": 100.0, "add_to_cart": 30.0, "checkout_start": 12.0,
          "payment_submitted": 10.0, "payment_failed": 1.0}  # mean events/h overall
SCALE = [1.0]  # --scale


def simulate(rng: np.random.Generator, days: int, now_h: int, shape: float, noise: str,
             drop_hours: int = 0, spike_hours: int = 0) -> pd.DataFrame:
    """Counts per event, platform and hour (the last complete hour is ``now_h - 1``)."""
    hours = np.arange(now_h - days * 24, now_h)
    curve = 1 + 0.6 * np.sin((hours % 24 - 9) / 24 * 2 * np.pi)
    week = np.where((hours // 24) % 7 >= 5, 1.25, 0.9)
    rows = []
    for event, level in EVENTS.items():
        for platform, share in PLATFORMS.items():
            mu = level * SCALE[0] * share * curve * week
            if event == "add_to_cart" and drop_hours:
                mu = np.where(hours >= now_h - drop_hours, mu * 0.5, mu)
            if event == "payment_failed" and spike_hours:
                mu = np.where(hours >= now_h - spike_hours, mu * 5, mu)
            if noise == "hour" or event == "payment_failed":  # failures: no sessions
                n = rng.poisson(mu * rng.gamma(shape, 1 / shape, mu.size))
            elif noise == "block":  # one gamma factor per 6 hours: noise lasts
                factor = np.repeat(rng.gamma(shape, 1 / shape, mu.size // 6 + 1), 6)
                n = rng.poisson(mu * factor[:mu.size])
            else:  # sessions of geometric size (mean ``shape``) of one user each
                k = rng.poisson(mu / shape)
                n = np.where(k > 0, k + rng.negative_binomial(np.maximum(k, 1), 1 / shape), 0)
            rows.append(pd.DataFrame({"event": event, "value": platform, "hour": hours,
                                      "n": n}))
    frame = pd.concat(rows)
    return frame[frame["n"] > 0]


def found(results: list[Any], event: str, direction: str) -> bool:
    return any(r.event == event and r.details.get("direction") == direction for r in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--days", type=int, nargs="+", default=[28])
    parser.add_argument("--shape", type=float, nargs="+", default=[2.0])
    parser.add_argument("--drop-hours", type=int, default=24)
    parser.add_argument("--spike-hours", type=int, default=6)
    parser.add_argument("--noise", nargs="+", default=["hour"],
                        choices=["hour", "block", "sessions"])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every rate")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    SCALE[0] = args.scale
    for days, noise, shape in itertools.product(args.days, args.noise, args.shape):
        alarmed = drops = spikes = 0
        for seed in range(args.seeds):
            now_h = NOW_H + (seed * 7) % 24
            clean = problems(simulate(np.random.default_rng(1000 + seed), days, now_h,
                                      shape, noise), now_h)
            alarmed += bool(clean)
            if args.verbose:
                for r in clean:
                    print(f"   false alarm (seed {seed}): {r.name}: {r.message}")
            hit = problems(simulate(np.random.default_rng(2000 + seed), days, now_h, shape,
                                    noise, drop_hours=args.drop_hours,
                                    spike_hours=args.spike_hours), now_h)
            drops += found(hit, "add_to_cart", "down")
            spikes += found(hit, "payment_failed", "up")
        print(f"{days} d, {noise} noise, shape {shape}, x{SCALE[0]}: clean runs alarmed "
              f"{alarmed}/{args.seeds}; add_to_cart -50% for {args.drop_hours} h found "
              f"{drops}/{args.seeds}; payment_failed x5 for {args.spike_hours} h found "
              f"{spikes}/{args.seeds}", flush=True)

if __name__ == "__main__":
    main()
