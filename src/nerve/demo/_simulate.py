"""The simulator: a pure, deterministic stream of Segment-spec messages from the demo shop.

>>> from datetime import datetime, UTC
>>> sim = simulate(SimConfig(end=datetime(2026, 1, 1, tzinfo=UTC), days=1, users=20))
>>> messages = list(sim)
>>> sim.ground_truth["expected"]["messages_sent"] == len(messages)
True
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Iterator
from datetime import UTC, datetime
from random import Random
from typing import Any

from nerve.demo import _world as w
from nerve.demo._scenario import DAY_MS, HOUR_MS, SimConfig, Timeline, build_timeline
from nerve.demo._session import Session
from nerve.demo._truth import SimMessage, Tally
from nerve.demo._users import User, draw_users
from nerve.errors import InternalError

__all__ = ["Simulation", "ground_truth", "simulate"]


class Simulation:
    """An iterable of ``SimMessage``: the history in time order, then the live minutes
    (late deliveries first). ``ground_truth`` is ready once it has been iterated."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.timeline: Timeline = build_timeline(config)
        self._truth: dict[str, Any] | None = None

    def __iter__(self) -> Iterator[SimMessage]:
        tally = Tally(self.config, self.timeline)
        for sim in self._messages(tally):
            tally.add(sim)
            yield sim
        self._truth = tally.result()

    @property
    def ground_truth(self) -> dict[str, Any]:
        """What was injected and what the warehouse should hold (see ground_truth.json)."""
        if self._truth is None:
            raise InternalError("iterate the simulation to the end before reading its truth")
        return self._truth

    def _messages(self, tally: Tally) -> Iterator[SimMessage]:
        cfg, tl = self.config, self.timeline
        rng = Random(cfg.seed)
        products = list(w.PRODUCTS)
        rng.shuffle(products)
        cum_weights = list(itertools.accumulate(1 / (i + 1) ** 0.9 for i in range(len(products))))
        users = draw_users(rng, cfg.users, tl.start_ms, tl.end_ms)
        slots = _slot_weights(tl.start_ms, cfg.days)
        heap: list[tuple[int, int, SimMessage]] = []
        order = itertools.count()
        late: list[SimMessage] = []
        live: list[SimMessage] = []
        seen_first: set[int] = set()

        def release(until: int) -> Iterator[SimMessage]:
            while heap and heap[0][0] < until:
                sim = heapq.heappop(heap)[2]
                if sim.fault == "late":
                    late.append(sim)
                elif sim.live:
                    live.append(sim)
                else:
                    yield sim

        for day in range(cfg.days):
            day_start = tl.start_ms + day * DAY_MS
            for user in users:
                cum, mean = slots[user.country.code][day]
                for number in range(_poisson(rng, user.activity * mean)):
                    hour = rng.choices(range(24), cum_weights=cum)[0]
                    start = day_start + hour * HOUR_MS + rng.randrange(HOUR_MS)
                    if start < user.created_ms:
                        continue
                    seed = ((cfg.seed * 1_000_003 + user.index) * 1000 + day) * 64 + number
                    session = Session(seed=seed, user=user, start_ms=start, timeline=tl,
                                      products=products, product_weights=cum_weights,
                                      tally=tally, faults=cfg.faults)
                    first = user.index not in seen_first and user.created_ms >= tl.start_ms
                    seen_first.add(user.index)
                    messages = session.run(first=first, identify=_needs_identify(user, start))
                    if messages:
                        tally.sessions += 1
                        tally.users_active.add(user.user_id)
                    for sim in messages:
                        heapq.heappush(heap, (sim.at, next(order), sim))
            yield from release(day_start + DAY_MS)
        yield from release(tl.end_ms)
        yield from late
        yield from live


def _needs_identify(user: User, at_ms: int) -> bool:
    """Identify on the first session in the span, and again after a plan upgrade."""
    if not user.identified:
        user.identified = True
        return True
    if user.upgrade_ms is not None and at_ms >= user.upgrade_ms:
        user.upgrade_ms, user.plan = None, "plus"
        return True
    return False


def _slot_weights(start_ms: int, days: int) -> dict[str, list[tuple[list[float], float]]]:
    """Per country and simulated day: cumulative weights of the 24 hour slots (local hour
    of day and weekday seasonality) and the day's mean weight (1 on an average day)."""
    result: dict[str, list[tuple[list[float], float]]] = {}
    for country in w.COUNTRIES:
        per_day = []
        for day in range(days):
            weights = []
            for hour in range(24):
                local = datetime.fromtimestamp(
                    (start_ms + day * DAY_MS + hour * HOUR_MS) / 1000 + country.utc_offset * 3600,
                    UTC)
                weights.append(w.HOURLY[local.hour] * w.WEEKDAY[local.weekday()])
            per_day.append((list(itertools.accumulate(weights)),
                            sum(weights) / 24 / _MEAN_WEIGHT))
        result[country.code] = per_day
    return result


_MEAN_WEIGHT = sum(w.HOURLY) / 24 * sum(w.WEEKDAY) / 7


def _poisson(rng: Random, mean: float) -> int:
    """A Poisson draw (Knuth's method: the means here are small)."""
    limit, k, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        k += 1
        product *= rng.random()
    return k


def simulate(config: SimConfig) -> Simulation:
    """The demo shop's traffic for ``config``; iterate it for the messages.

    Deterministic: the same config (seed and end included) yields the same messages.
    """
    return Simulation(config)


def ground_truth(config: SimConfig) -> dict[str, Any]:
    """Run the whole simulation and return its ground truth."""
    sim = simulate(config)
    for _ in sim:
        pass
    return sim.ground_truth
