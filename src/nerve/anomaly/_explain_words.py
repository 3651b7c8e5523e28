"""The words of ``explain``: its one-paragraph summary, from the result's numbers. Pure:
a result in, a string out. Every figure a sentence quotes moves the way the sentence
says (a driver whose total rose while its rate fell is quoted by its rate effect)."""

from __future__ import annotations

import math
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import numpy as np

if TYPE_CHECKING:
    from nerve.anomaly._explain import _Target

__all__ = ["MIN_SCORE", "noise_sentence", "summary", "whole"]

#: the score a driver needs to be named in the summary: at least a tenth of the change
#: beyond its size, cleanly and with evidence (docs/anomalies.md#nerve-explain)
MIN_SCORE = 0.1


def _fmt(value: float | None, style: str) -> str:
    if value is None:
        return "n/a"
    if style == "percent":
        return f"{value:.2%}"
    if style == "count":
        return f"{whole(value):,}"
    # counts and money read whole beyond 100; rates keep three significant digits
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.3g}"


def whole(value: float) -> int:
    """A count's amount or effect as a whole number, halves rounded away from zero as
    `nerve ask` writes them (a median of two counts, or a rate effect, falls between two).

    >>> whole(-37.5), whole(20.3), whole(2299.5)
    (-38, 20, 2300)
    """
    rounded = math.floor(abs(value) + 0.5)
    return -rounded if value < 0 else rounded


def summary(r: dict[str, Any], t: _Target) -> str:
    pct = f" ({r['change_pct']:+.0%})" if r["change_pct"] is not None else ""
    against = ("the previous period" if r["vs"] == "previous"
               else "its expected value (median of the same hours 1-4 weeks before)")
    moved = "rose" if (r["change"] or 0) > 0 else "fell" if (r["change"] or 0) < 0 else "held"
    scope = f" ({t.where})" if t.where else ""
    text = (f"{t.label}{scope} {moved} to {_fmt(r['observed'], t.style)} over "
            f"{period_words(r['period'], t.layer.timezone)} "
            f"against {_fmt(r['baseline'], t.style)} for {against}{pct}.")
    volume = r.get("volume")
    if volume and r["change"] and volume["expected_exposure"]:
        moved_users = volume["exposure"] / volume["expected_exposure"] - 1
        text += (f" Active users moved {moved_users:+.0%} (active user-hours), a volume "
                 f"effect of {_fmt(volume['effect'], t.style)}.")
    found = [d for d in r["drivers"] if (d["score"] or 0) >= MIN_SCORE]
    if found:
        d = found[0]
        weak = "" if d["significant"] else f" (weak evidence: z = {d['z']:.1f})"
        text += f" The main driver is {d['dimension']} = {d['value']}{weak}, " \
                + _driver_words(d, t, r["change"]) + "."
        others = [f"{x['dimension']} = {x['value']} ({x['effect']}, "
                  f"{_share_words(x)})" for x in found[1:4]
                  if x["significant"] and (x["score"] or 0) >= 0.25 * (d["score"] or 0)
                  if x["dimension"] != d["dimension"] and not x.get("overlaps")][:2]
        if others:
            text += f" Next: {', '.join(others)}."
        same = [f"{x['dimension']} = {x['value']}" for x in found[1:6]
                if x.get("overlaps") and (x["score"] or 0) >= 0.25 * (d["score"] or 0)][:3]
        if same:
            text += (f" Part of the same change (outside {d['dimension']} = {d['value']} "
                     f"they did not move beyond noise): {', '.join(same)}.")
        text += drill_down(f"{d['dimension']} = {d['value']}", found[1:6])
    elif r["change"]:
        text += f" {noise_sentence(r)}"
    offsets = r.get("offsets") or []
    counter = [_offset(x, t.style) for x in offsets[:2]
               if (x["score"] or 0) >= 0.5 * (offsets[0]["score"] or 0)]
    if counter:
        text += f" Against the change: {', '.join(counter)}."
    broken = (r.get("funnel") or {}).get("broken_step")
    if broken:
        text += (f" In the funnel, step {broken['step']} ({broken['event']}) broke: "
                 f"{(broken['step_conversion'] or 0):.1%} of the previous step against "
                 f"{(broken['expected_step_conversion'] or 0):.1%}.")
    named: set[str] = set()
    moving, elsewhere = [], []
    # an event's move for the driver's value says more than its move overall
    for x in sorted(r["related"], key=lambda x: not x.get("dimension")):
        if not x["in_target"] and x["event"] not in named:
            named.add(x["event"])
            words = f"{x['event']}{_where(x)} {x['direction']} {abs(x['change']):.0%}"
            if x.get("moved_with") is False:
                elsewhere.append((words, x["lead"]))
            elif x.get("moved_with") is None and x.get("lead"):
                moving.append(f"{words} (it does not carry {x['lead'].split(' = ')[0]}: "
                              f"whether it moved with {x['lead']} is not known)")
            else:
                moving.append(words)
    if moving:
        text += f" At the same time: {', '.join(moving[:3])}."
    if elsewhere:
        text += (f" Not with it (they moved outside {elsewhere[0][1]} as well): "
                 f"{', '.join(w for w, _ in elsewhere[:3])}.")
    if r["caveats"]:
        text += (f" Caveat: {len(r['caveats'])} data-quality finding(s) on these events, "
                 f"e.g. {r['caveats'][0]['message']}")
    return text


def drill_down(name: str, drivers: list[dict[str, Any]]) -> str:
    """Where the change of the lead driver (``name``: ``platform = android``) sits, when
    other drivers hold it (``holds_change``: outside their value, the lead did not move
    beyond noise), else "". ``nerve ask`` says the same sentence.

    >>> drill_down("platform = android",
    ...            [{"dimension": "country", "value": "DE", "holds_change": True},
    ...             {"dimension": "app_version", "value": "5.2.0", "holds_change": True}]
    ...            ).split(": ")[0]
    ' The change sits where platform = android, country = DE and app_version = 5.2.0 meet'
    """
    held = [f"{x['dimension']} = {x['value']}" for x in drivers if x.get("holds_change")]
    if not held:
        return ""
    every = _and([name, *held])
    outside = held[0] if len(held) == 1 else f"each of {_and(held)}"
    return (f" The change sits where {every} meet: outside {outside}, {name} did not move "
            "beyond noise.")


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def period_words(period: dict[str, Any], tz: str) -> str:
    """The period as a reader checks it: its local dates (or times, when it does not run
    from midnight to midnight) and the time zone, after its name when it has one
    ("last_week, 2026-11-23 to 2026-11-29 (Europe/Berlin)")."""
    zone = ZoneInfo(tz)
    start = datetime.fromisoformat(period["start"]).astimezone(zone)
    end = datetime.fromisoformat(period["end"]).astimezone(zone)
    if start.time() == end.time() == time(0):
        first, last = start.date(), (end - timedelta(days=1)).date()
        span = first.isoformat() if first == last else f"{first} to {last}"
    else:
        span = f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M}"
    label = str(period.get("label") or "")
    named = label and not label[:4].isdigit()  # yesterday, last_week, 24h, 7d: not dates
    return f"{label + ', ' if named else ''}{span} ({tz})"


def noise_sentence(r: dict[str, Any]) -> str:
    """What an explanation without a driver says of its change: beyond noise but spread
    over the values or carried by none alone, or maybe ordinary variation
    (``change_z``); "no driver" alone says nothing of the change itself."""
    z = r.get("change_z")
    if z is None:
        return "No breakdown value explains the change beyond noise."
    if r.get("change_significant"):
        return (f"The change itself is beyond noise (z = {z:.1f}), but no single breakdown "
                "value explains it.")
    return (f"The change itself is within noise (z = {z:.1f}) and no breakdown value "
            "explains it, so it may be ordinary variation.")


def _along(x: dict[str, Any]) -> bool:
    """Whether the value's own change goes the way of its ranked effect: when it does not
    (5.1.4's users fell in rate while more of them arrived), its total is no evidence of
    the effect and must not be quoted as if it were."""
    return float(np.sign(x["contribution"] or 0)) == float(np.sign(x["effect_change"] or 0))


def _signed(value: float | None, style: str) -> str:
    text = _fmt(value, style)
    return f"+{text}" if value is not None and value > 0 else text


def _driver_words(d: dict[str, Any], t: _Target, change: float | None) -> str:
    """"a rate effect: 6,105 against 8,099, 84% of the change (...)" when the value's
    total moved with its effect; else the effect's own size and share, and the total as
    what moved the other way ("a rate effect of -87, 48% of the change (...), while its
    total rose: 220 against 160 (mix +320, arrivals -173)")."""
    if t.kind == "additive" and d["effect"] == "rate":
        average = "; new in this period: against the average" if d["new"] else (
            "; none in the baseline periods of the expected value: against the average"
            if not d["expected_exposure"] else "")
        detail = (f" ({_rate(d['rate_observed'])} against {_rate(d['rate_expected'])} "
                  f"per active user-hour{average})")
    elif t.kind == "additive":
        detail = (f" (active user-hours {_fmt(d['exposure'], 'number')} against "
                  f"{_fmt(d['expected_exposure'], 'number')})")
    else:
        detail = (f" (rate effect {_fmt(d['rate'], t.style)}, mix effect "
                  f"{_fmt(d['mix'], t.style)})")
    if _along(d):
        return (f"a {d['effect']} effect: {_fmt(d['observed'], t.style)} against "
                f"{_fmt(d['expected'], t.style)}"
                + _share_and(detail, d["share"], d["contribution"], change, t.style))
    if t.kind != "additive" and d["effect"] == "rate":
        detail = f" ({_fmt(d['observed'], t.style)} against {_fmt(d['expected'], t.style)})"
    moved = total_moved(d["contribution"])
    text = (f"a {d['effect']} effect of {_signed(d['effect_change'], t.style)}"
            + _share_and(detail, d["effect_share"], d["effect_change"], change, t.style))
    if t.kind == "additive":
        text += (f", while its total {moved}: {_fmt(d['observed'], t.style)} against "
                 f"{_fmt(d['expected'], t.style)}")
    else:
        text += (f", while its part of the ratio {moved} "
                 f"({_signed(d['contribution'], t.style)})")
    parts = ("volume", "mix", "arrivals") if d["effect"] == "rate" else ("rate", "arrivals")
    others = [f"{k} {_signed(d[k], t.style)}" for k in parts if d.get(k)]
    return text + (f" ({', '.join(others)})" if others else "")


def _share_and(detail: str, share: float | None, amount: float | None,
               change: float | None, style: str) -> str:
    """The share words after an effect, and its detail: ", 84% of the change (...)";
    beyond the whole change the detail comes first, so that it is not read as the rest's."""
    words = of_the_change(share, amount, change, style)
    return f"{detail}, {words}" if words.startswith("more") else f", {words}{detail}"


def of_the_change(share: float | None, amount: float | None, change: float | None,
                  style: str) -> str:
    """"84% of the change"; or, for an amount larger than the whole change (other values,
    or the value's other effects, moved the other way), "more than the whole change of
    -114 (the rest moved the other way by 17)": "115% of the change" read as a part of it.

    >>> of_the_change(0.84, -96, -114, "count")
    '84% of the change'
    >>> of_the_change(1.153, -131.4, -114, "count")
    'more than the whole change of -114 (the rest moved the other way by 17)'
    """
    if share is None or share <= 1 or amount is None or change is None:
        return f"{(share or 0):.0%} of the change"
    return (f"more than the whole change of {_signed(change, style)} (the rest moved the "
            f"other way by {_fmt(abs(amount - change), style)})")


def total_moved(contribution: float | None) -> str:
    """How a value's own total moved: "rose", "fell", or "did not move" (a value with
    nothing in either period, or the same amount, was said to have "fell: 0 against 0").

    >>> [total_moved(c) for c in (55, -36, 0, None)]
    ['rose', 'fell', 'did not move', 'did not move']
    """
    return "rose" if (contribution or 0) > 0 else "fell" if (contribution or 0) < 0 \
        else "did not move"


def _share_words(x: dict[str, Any]) -> str:
    """A named value's share of the change: its own change's, or, when that went the
    other way, its effect's ("rate effect 48%, total up")."""
    if _along(x):
        return "more than the whole change" if (x["share"] or 0) > 1 \
            else f"{(x['share'] or 0):.0%}"
    moved = "up" if (x["contribution"] or 0) > 0 else "down"
    share = "more than the whole change" if (x["effect_share"] or 0) > 1 \
        else f"{(x['effect_share'] or 0):.0%}"
    return f"{x['effect']} effect {share}, total {moved}"


def _offset(x: dict[str, Any], style: str) -> str:
    weak = "" if x["significant"] else f", weak evidence: z = {x['z']:.1f}"
    if _along(x):
        return (f"{x['dimension']} = {x['value']} ({x['effect']} effect "
                f"{_fmt(x[x['effect']], style)}, {_fmt(x['observed'], style)} against "
                f"{_fmt(x['expected'], style)}{weak})")
    moved = total_moved(x["contribution"])
    return (f"{x['dimension']} = {x['value']} ({x['effect']} effect "
            f"{_signed(x['effect_change'], style)}, while its total {moved}: "
            f"{_fmt(x['observed'], style)} against {_fmt(x['expected'], style)}{weak})")


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def _where(related: dict[str, Any]) -> str:
    return f" ({related['dimension']} = {related['value']})" if related.get("dimension") \
        else ""
