"""A plain-Python reference funnel, written from the documented semantics (docs/analytics.md)
by enumerating every chain, with no greedy shortcut. Slow; for small randomized data.

Events are the short dicts the ``events_table`` fixture takes (``event``, ``user_id``,
``anonymous_id``, ``timestamp``, ``type``, ``properties``, ``message_id``).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import combinations
from typing import Any

from nerve.analytics import Filter, FunnelSpec

STREAM_TYPES = ("track", "page", "screen")


def _field(ev: dict[str, Any], name: str) -> Any:
    head, _, rest = name.partition(".")
    if head in ("properties", "context", "traits") and rest:
        doc, path = ev.get(head) or {}, rest.split(".")
    else:
        doc, path = ev.get("properties") or {}, name.split(".")
    for key in path:
        if not isinstance(doc, dict) or key not in doc:
            return None
        doc = doc[key]
    if isinstance(doc, bool):
        return "true" if doc else "false"
    if doc is None or isinstance(doc, dict | list):
        return None if doc is None else doc
    return str(doc) if not isinstance(doc, int | float) else doc


def _passes(ev: dict[str, Any], flt: Filter) -> bool:
    value = _field(ev, flt.field)
    if value is None:
        return False
    target = flt.value
    if isinstance(target, bool):
        same = str(value) == ("true" if target else "false")
        return same if flt.op == "=" else not same
    if isinstance(target, int | float):
        try:
            number = float(value)
        except (TypeError, ValueError):
            return False
        return {"=": number == target, "!=": number != target, ">": number > target,
                ">=": number >= target, "<": number < target, "<=": number <= target}[flt.op]
    same = str(value) == str(target)
    return same if flt.op == "=" else not same


def _matches(ev: dict[str, Any], event: str, where: tuple[Filter, ...]) -> bool:
    return (ev.get("type", "track") == "track" and ev.get("event") == event
            and all(_passes(ev, f) for f in where))


def _micros(ts: datetime) -> int:
    return int((ts - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * 1_000_000)


def _entity(ev: dict[str, Any]) -> str | None:
    return ev.get("user_id") or ev.get("anonymous_id")


def _streams(events: list[dict[str, Any]], spec: FunnelSpec
             ) -> dict[str, list[list[dict[str, Any]]]]:
    """entity -> its segments (one per held value, or one), each sorted by tie rule."""
    n = len(spec.steps)
    out: dict[str, dict[Any, list[dict[str, Any]]]] = {}
    for ev in events:
        who = _entity(ev)
        if who is None:
            continue
        ts = ev["timestamp"]
        if spec.since and ts < spec.since:
            continue
        if spec.until and ts >= spec.until + spec.window:
            continue
        steps = {k for k, s in enumerate(spec.steps) if _matches(ev, s.event, s.where)}
        excl = {e for e, x in enumerate(spec.exclusions) if _matches(ev, x.event, x.where)}
        hold = tuple(None if (v := _field(ev, h)) is None else str(v) for h in spec.hold)
        if spec.order == "strict":
            if ev.get("type", "track") not in STREAM_TYPES:
                continue
            if any(v is None for v in hold):
                steps = set()
            key: Any = None
        else:
            if not steps and not excl:
                continue
            if any(v is None for v in hold):
                continue
            key = hold
        by = None if not spec.by or (v := _field(ev, spec.by)) is None else str(v)
        row = {"ev": ev, "ts": _micros(ts), "steps": steps, "excl": excl, "hold": hold,
               "tie": min(steps) if steps else n, "mid": ev["message_id"],
               "key": (-sum(1 << (n - 1 - k) for k in steps), sum(1 << e for e in excl),
                       tuple((v is None, v or "") for v in hold), (by is None, by or ""))}
        out.setdefault(who, {}).setdefault(key, []).append(row)
    # nerve's order; ties left after "key" are interchangeable, message_id settles them
    return {who: [sorted(rows, key=lambda r: (r["ts"], r["key"], r["mid"]))
                  for _, rows in sorted(segs.items(), key=lambda kv: str(kv[0]))]
            for who, segs in out.items()}


def _chains(seg: list[dict[str, Any]], spec: FunnelSpec, kept: list[int]
            ) -> Iterator[list[int]]:
    """Every valid chain (row positions) over the steps ``kept``, of any length >= 1."""
    w = spec.window.total_seconds() * 1e6
    until = _micros(spec.until) if spec.until else None

    def extend(chain: list[int]) -> Iterator[list[int]]:
        yield chain
        pos = len(chain)
        if pos == len(kept):
            return
        k, j = kept[pos], kept[pos - 1]
        last = chain[-1]
        candidates = [last + 1] if spec.order == "strict" else range(last + 1, len(seg))
        for i in candidates:
            if i >= len(seg) or k not in seg[i]["steps"]:
                continue
            row, prev = seg[i], seg[last]
            if row["ts"] - seg[chain[0]]["ts"] > w:
                continue
            within = spec.steps[k].within
            if within is not None and row["ts"] - prev["ts"] > within.total_seconds() * 1e6:
                continue
            if spec.order == "strict" and spec.hold and row["hold"] != prev["hold"]:
                continue
            blocked = False
            for e, x in enumerate(spec.exclusions):
                before = len(spec.steps) - 1 if x.before is None else x.before
                if x.after <= j < before and any(e in seg[p]["excl"]
                                                 for p in range(last + 1, i)):
                    blocked = True
            if not blocked:
                yield from extend([*chain, i])

    for i, row in enumerate(seg):
        if kept[0] in row["steps"] and (until is None or row["ts"] < until):
            yield from extend([i])


def reference(events: list[dict[str, Any]], spec: FunnelSpec) -> dict[str, dict[str, Any]]:
    """entity -> {"reached": set of steps, "chain": {step: event} of the representative
    chain} for every entity that did the first step."""
    spec = spec.validate()
    n = len(spec.steps)
    result: dict[str, dict[str, Any]] = {}
    for who, segs in _streams(events, spec).items():
        reached: set[int] = set()
        best: tuple[Any, ...] | None = None
        for seg in segs:
            if spec.order == "any":
                for k in _any(seg, spec):
                    reached.add(k)
                continue
            optional = [k for k in range(n) if spec.steps[k].optional]
            for r in range(len(optional) + 1):
                for skipped in combinations(optional, r):
                    kept = [k for k in range(n) if k not in skipped]
                    for chain in _chains(seg, spec, kept):
                        steps = kept[:len(chain)]
                        reached.update(steps)
                        # representative: deepest, then earliest done, then latest rows
                        key = (-steps[-1], seg[chain[-1]]["ts"], chain[-1],
                               [-c for c in reversed(chain)])
                        if best is None or key < best[0]:
                            best = (key, {s: seg[c]["ev"] for s, c in zip(steps, chain,
                                                                           strict=True)})
        if 0 in reached:
            result[who] = {"reached": reached, "chain": best[1] if best else {}}
    return result


def _any(seg: list[dict[str, Any]], spec: FunnelSpec) -> dict[int, int]:
    """Any order: k -> 1 when some window holds k+1 different steps."""
    w = spec.window.total_seconds() * 1e6
    until = _micros(spec.until) if spec.until else None
    out: dict[int, int] = {}
    for i, row in enumerate(seg):
        if not row["steps"] or (until is not None and row["ts"] >= until):
            continue
        done = {k for r in seg[i:] if r["ts"] - row["ts"] <= w for k in r["steps"]}
        for k in range(len(done)):
            out[k] = 1
    return out


def step_counts(ref: dict[str, dict[str, Any]], n: int) -> list[int]:
    return [sum(1 for r in ref.values() if k in r["reached"]) for k in range(n)]
