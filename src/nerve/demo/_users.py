"""The shop's shoppers: demographics, device, habits; drawn once per simulation."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from random import Random
from typing import Any

from nerve.demo import _world as w
from nerve.demo._scenario import DAY_MS, EXPERIMENT, iso
from nerve.experiments import choose_variant

__all__ = ["User", "draw_users", "timezone_of"]

_TIMEZONES = {"US": "America/New_York", "GB": "Europe/London", "DE": "Europe/Berlin",
              "FR": "Europe/Paris", "CA": "America/Toronto", "BR": "America/Sao_Paulo",
              "IN": "Asia/Kolkata", "JP": "Asia/Tokyo", "AU": "Australia/Sydney",
              "ES": "Europe/Madrid"}
_FIRST = ("alex", "sam", "maria", "li", "noah", "emma", "omar", "yuki", "lucas", "ana",
          "ravi", "chloe", "jan", "sofia", "ben", "ines", "mia", "kofi", "lea", "tom")
_LAST = ("smith", "garcia", "muller", "martin", "silva", "kumar", "tanaka", "brown",
         "lopez", "dubois", "wilson", "schmidt", "santos", "sato", "jones", "fischer")
_DOMAINS = ("example.com", "example.org", "example.net")
# documentation-only address blocks (RFC 5737): realistic shape, nobody's real address
_NETS = ("192.0.2", "198.51.100", "203.0.113")


@dataclass(slots=True)
class User:
    index: int
    user_id: str
    anonymous_id: str
    age: int
    age_group: str
    country: w.Country
    platform: str  # ios, android or web
    plan: str
    created_ms: int
    #: when a free member upgrades to plus (an identify follows), if ever
    upgrade_ms: int | None
    #: expected sessions per average day
    activity: float
    #: personal buying propensity (1 = average)
    intent: float
    email: str
    marketing_opt_in: bool
    ip: str
    device: dict[str, Any]
    os: dict[str, str]
    user_agent: str | None
    library: dict[str, str]
    #: the simple_checkout variant, None when not targeted
    variant: str | None
    identified: bool = False

    def traits(self, at_ms: int) -> dict[str, Any]:
        plan = "plus" if self.upgrade_ms is not None and at_ms >= self.upgrade_ms else self.plan
        return {"email": self.email, "age": self.age, "age_group": self.age_group,
                "country": self.country.code, "plan": plan, "created_at": iso(self.created_ms),
                "marketing_opt_in": self.marketing_opt_in}


def _pick(rng: Random, options: tuple[Any, ...], weights: tuple[float, ...]) -> Any:
    return rng.choices(options, weights)[0]


def draw_users(rng: Random, count: int, start_ms: int, end_ms: int) -> list[User]:
    """``count`` shoppers; 15% of them sign up during the simulated span."""
    countries = tuple(w.COUNTRIES)
    country_weights = tuple(c.weight for c in countries)
    groups = tuple(g[0] for g in w.AGE_GROUPS)
    group_weights = tuple(g[1] for g in w.AGE_GROUPS)
    ranges = {g[0]: (g[2], g[3]) for g in w.AGE_GROUPS}
    users: list[User] = []
    for index in range(count):
        group = _pick(rng, groups, group_weights)
        age = rng.randint(*ranges[group])
        country = _pick(rng, countries, country_weights)
        platform = _pick(rng, ("ios", "android", "web"), w.PLATFORMS[group])
        plan = "plus" if rng.random() < 0.08 + 0.06 * (age >= 35) else "free"
        if rng.random() < 0.15:
            created = rng.randint(start_ms, end_ms - 1)
        else:
            created = start_ms - rng.randint(30, 900) * DAY_MS + rng.randint(0, DAY_MS)
        upgrade = None
        if plan == "free" and rng.random() < 0.02:
            upgrade = rng.randint(max(start_ms, created), end_ms - 1)
        # heavy-tailed habits: a few shoppers visit daily, most now and then
        activity = math.exp(rng.gauss(0, 0.8)) * 0.22 * (1.15 if age >= 65 else 1.0)
        intent = math.exp(rng.gauss(0, 0.35))
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        user_id = f"u_{index + 1:06d}"
        device, os_, agent, library = _device(rng, platform)
        users.append(User(
            index=index,
            user_id=user_id,
            anonymous_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            age=age, age_group=group, country=country, platform=platform, plan=plan,
            created_ms=created, upgrade_ms=upgrade, activity=activity, intent=intent,
            email=f"{first}.{last}{rng.randint(1, 999)}@{rng.choice(_DOMAINS)}",
            marketing_opt_in=rng.random() < 0.4,
            ip=f"{rng.choice(_NETS)}.{rng.randint(1, 254)}",
            device=device, os=os_, user_agent=agent, library=library,
            variant=choose_variant(EXPERIMENT.key, user_id, EXPERIMENT.variants,
                                   EXPERIMENT.weights) if age >= EXPERIMENT.min_age else None,
        ))
    return users


def _device(rng: Random, platform: str
            ) -> tuple[dict[str, Any], dict[str, str], str | None, dict[str, str]]:
    if platform == "ios":
        model, maker = rng.choice(w.IOS_DEVICES)
        device = {"type": "ios", "manufacturer": maker, "model": model,
                  "id": str(uuid.UUID(int=rng.getrandbits(128), version=4))}
        return (device, {"name": "iOS", "version": rng.choice(w.IOS_VERSIONS)}, None,
                {"name": "analytics-ios", "version": "4.1.8"})
    if platform == "android":
        model, maker = rng.choice(w.ANDROID_DEVICES)
        device = {"type": "android", "manufacturer": maker, "model": model,
                  "id": str(uuid.UUID(int=rng.getrandbits(128), version=4))}
        return (device, {"name": "Android", "version": rng.choice(w.ANDROID_VERSIONS)}, None,
                {"name": "analytics-kotlin", "version": "1.16.3"})
    browser, _bv, os_name, os_version, agent = rng.choice(w.WEB_CLIENTS)
    # web has no device block from analytics.js; the shop's plugin adds the platform so
    # that one field splits traffic by ios / android / web
    return ({"type": "web"}, {"name": os_name, "version": os_version}, agent,
            {"name": "analytics.js", "version": f"next-1.84.3 ({browser})"})


def timezone_of(country: str) -> str:
    return _TIMEZONES[country]
