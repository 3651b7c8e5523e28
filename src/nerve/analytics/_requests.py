"""JSON requests for funnels, retention and trends: one parser for the CLI and HTTP.

The CLI builds the same JSON body it would POST to ``nerve serve``, so a command gives the
same answer whether the server runs or not. Step numbers in requests are 1-based, as
people count them; the Python dataclasses are 0-based.

Every caller passes the workspace's ``[project] timezone``: dates and naive datetimes in
a body are wall-clock time there, and days and weeks are its days and weeks, as in
metrics.

Callers pass the workspace's catalog too: a filter (or a held value) on a property or a
trait the catalog does not declare on its event is refused, naming the closest declared
one, as a metric's filter is, rather than answered with a silent 0.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import ibis.expr.types as ir

from nerve.analytics._fields import check_declared
from nerve.analytics._funnel import funnel
from nerve.analytics._periods import bound, zone
from nerve.analytics._retention import RetentionSpec, retention
from nerve.analytics._spec import (
    Exclusion,
    Filter,
    FunnelSpec,
    Step,
    parse_duration,
    parse_filter,
    parse_step,
)
from nerve.analytics._trends import GRAINS, TrendSpec, metric_trend, recent, trend
from nerve.catalog import Catalog
from nerve.errors import QueryError, UserError
from nerve.warehouse import one_of

__all__ = [
    "breakdown_layer",
    "funnel_request",
    "funnel_spec",
    "parse_time",
    "retention_request",
    "retention_spec",
    "trend_filters",
    "trend_request",
]

# the units of ``parse_duration`` (a bare ``m`` too, which it refuses as ambiguous)
_RELATIVE = re.compile(r"^\d+(\.\d+)?\s*(s|min|mo|m|h|d|w|y)$", re.IGNORECASE)
_USER_LIMIT = 10_000


def parse_time(value: Any, *, what: str, now: datetime | None = None,
               timezone: str = "UTC", end: bool = False) -> datetime | None:
    """``None``, ``"now"``, ``"today"``, ``"yesterday"``, a duration back from now
    (``"7d"``), or an ISO date/datetime, as a UTC instant; a date or a naive datetime is
    wall-clock time in ``timezone``. A date is a whole local day, as in metrics: from its
    midnight, or, as an ``end`` (``until``), up to the next one, so that it is included.

    >>> parse_time("2026-03-10", what="since", timezone="America/Los_Angeles")
    datetime.datetime(2026, 3, 10, 7, 0, tzinfo=datetime.timezone.utc)
    >>> parse_time("2026-03-10", what="until", timezone="America/Los_Angeles", end=True)
    datetime.datetime(2026, 3, 11, 7, 0, tzinfo=datetime.timezone.utc)
    """
    if value is None or value == "":
        return None
    now = now or datetime.now(UTC)
    tz = zone(timezone)
    if isinstance(value, date):  # a datetime too
        return bound(value, tz, end=end)
    if not isinstance(value, str):
        raise QueryError(f"{what}: expected a date, a datetime or a duration such as 7d")
    text = value.strip()
    if text == "now":
        return now
    if text in ("today", "yesterday"):
        today = now.astimezone(tz).date()
        return bound(today - timedelta(days=1) if text == "yesterday" else today, tz,
                     end=end)
    if _RELATIVE.match(text):
        return now - parse_duration(text, what=what)
    try:
        day = date.fromisoformat(text) if len(text) == 10 else None
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise QueryError(f"{what}: {value!r} is not a date (2026-11-02), a datetime "
                         "(2026-11-02T10:00), today, yesterday or a duration back from "
                         "now (7d)") from exc
    return bound(day if day is not None else parsed, tz, end=end)


def _filters(value: Any, what: str) -> tuple[Filter, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise QueryError(f"{what}: expected a list of filters such as [\"platform=ios\"]")
    out = []
    for i, item in enumerate(value):
        if isinstance(item, str):
            out.append(parse_filter(item))
        elif isinstance(item, dict) and {"field", "op", "value"} <= item.keys():
            out.append(Filter(str(item["field"]), str(item["op"]), item["value"]))
        else:
            raise QueryError(f"{what}[{i}]: a filter is \"field=value\" or "
                             "{\"field\": ..., \"op\": ..., \"value\": ...}")
    return tuple(out)


def _step(item: Any, i: int) -> Step:
    if isinstance(item, str):
        return parse_step(item)
    if not isinstance(item, dict) or not isinstance(item.get("event"), str):
        raise QueryError(f"steps[{i}]: a step is an event name or {{\"event\": ...}}")
    within = item.get("within")
    return Step(
        item["event"], _filters(item.get("where"), f"steps[{i}].where"),
        optional=bool(item.get("optional", False)),
        within=None if within is None else parse_duration(within, what=f"steps[{i}].within"),
        label=item.get("label"),
    )


def _whole(body: dict[str, Any], key: str, default: int) -> int:
    """``body[key]`` as a whole number: a JSON string or null there is the caller's
    mistake, named (a bare ``int()`` would fail as an internal error)."""
    value = body.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise QueryError(f"{key}: expected a whole number, got {value!r}")
    return value


def _flag(body: dict[str, Any], key: str, default: bool) -> bool:
    """``body[key]`` as true or false (``bool("false")`` would be true)."""
    value = body.get(key, default)
    if not isinstance(value, bool):
        raise QueryError(f"{key}: expected true or false, got {value!r}")
    return value


def _name(body: dict[str, Any], key: str) -> str | None:
    """``body[key]``: an event's or a metric's name, or None when absent or empty."""
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise QueryError(f"{key}: expected a name, got {value!r}")
    return value or None


def _index(value: Any, what: str, n: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= n:
        raise QueryError(f"{what}: a step number 1..{n}, got {value!r}")
    return value - 1


def funnel_spec(body: dict[str, Any], *, now: datetime | None = None,
                timezone: str = "UTC") -> FunnelSpec:
    """A FunnelSpec from a request body (see docs/analytics.md for every field);
    ``timezone`` is the workspace's, where ``since``/``until`` dates are read."""
    raw_steps = body.get("steps")
    if not isinstance(raw_steps, list):
        raise QueryError("steps: required, a list such as [\"add_to_cart\", "
                         "\"purchase_complete\"]")
    steps = [_step(item, i) for i, item in enumerate(raw_steps)]
    n = len(steps)
    for key in ("optional", "step_windows"):
        if body.get(key) is not None and not isinstance(body[key], list | dict):
            raise QueryError(f"{key}: expected a list")
    for number in body.get("optional") or []:
        k = _index(number, "optional", n)
        steps[k] = Step(steps[k].event, steps[k].where, True, steps[k].within, steps[k].label)
    windows = body.get("step_windows") or {}
    for number, duration in (windows.items() if isinstance(windows, dict) else []):
        k = _index(int(number), "step_windows", n)
        steps[k] = Step(steps[k].event, steps[k].where, steps[k].optional,
                        parse_duration(duration, what=f"step_windows[{number}]"), steps[k].label)
    exclusions = []
    for i, raw in enumerate(body.get("exclusions") or []):
        item = {"event": raw} if isinstance(raw, str) else raw
        if not isinstance(item, dict) or not isinstance(item.get("event"), str):
            raise QueryError(f"exclusions[{i}]: an event name or {{\"event\": ..., "
                             "\"after\": 1, \"before\": 3}")
        exclusions.append(Exclusion(
            item["event"], _filters(item.get("where"), f"exclusions[{i}].where"),
            after=_index(item.get("after", 1), f"exclusions[{i}].after", n),
            before=None if item.get("before") is None
            else _index(item["before"], f"exclusions[{i}].before", n)))
    attribution = str(body.get("attribution") or "first_touch")
    attribution_step = None
    if attribution.startswith("step"):
        _, _, number = attribution.partition(":")
        raw = body.get("attribution_step", int(number) if number.isdigit() else None)
        attribution, attribution_step = "step", _index(raw, "attribution_step", n)
    hold = body.get("hold") or []
    if isinstance(hold, str):
        hold = [hold]
    return FunnelSpec(
        tuple(steps),
        window=parse_duration(body.get("window", "1d"), what="window"),
        order=body.get("order", "sequential"),
        exclusions=tuple(exclusions),
        by=body.get("by") or None,
        attribution=attribution,
        attribution_step=attribution_step,
        hold=tuple(str(h) for h in hold),
        since=parse_time(body.get("since"), what="since", now=now, timezone=timezone),
        until=parse_time(body.get("until"), what="until", now=now, timezone=timezone,
                         end=True),
        timezone=timezone,
    ).validate()


def breakdown_layer(spec: FunnelSpec, layer: Callable[[], Any] | None) -> Any:
    """The SemanticLayer whose dimension ``spec.by`` is, when every step is a cataloged
    event; None when ``by`` is a field read from the event itself (or there is no
    breakdown, or metrics/*.yaml is broken: `nerve metrics lint` says why)."""
    if not spec.by or layer is None:
        return None
    try:
        semantic = layer()
    except UserError:
        return None
    if not all(s.event in semantic.catalog for s in spec.steps):
        return None
    return semantic


def _check_funnel(spec: FunnelSpec, catalog: Catalog | None, columns: list[str]) -> None:
    """Every step's filters and held values, and every exclusion's filters, against the
    catalog (numbered as requests number steps)."""
    for number, step in enumerate(spec.steps, 1):
        what = f"step {number} ({step.event})"
        check_declared(catalog, step.event,
                       [*((f"{what} filter {f}", f.field) for f in step.where),
                        *((f"{what} hold {h}", h) for h in spec.hold)], columns)
    for ex in spec.exclusions:
        check_declared(catalog, ex.event,
                       [(f"exclusion {ex.event} filter {f}", f.field) for f in ex.where],
                       columns)


def check_seen(events: ir.Table, catalog: Catalog | None,
               named: list[tuple[str, str | None]]) -> None:
    """Refuse an event (``(what, name)``: a funnel step, a retention event) that is
    neither in ``catalog`` nor in ``events``: a misspelt name counted nothing, and the
    answer's zeros read as nobody doing it. An event the catalog no longer has but the
    warehouse still holds stays answerable."""
    if catalog is None:
        return
    unknown = {name: what for what, name in named if name and name not in catalog}
    if not unknown:
        return
    found = events.filter(one_of(events.event, sorted(unknown))).select("event").distinct()
    seen = set(found.to_pyarrow().column("event").to_pylist())
    for name, what in unknown.items():
        if name not in seen:
            close = difflib.get_close_matches(name, catalog.names(), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else \
                " (`nerve catalog list` lists the events)"
            raise QueryError(f"{what}: no event {name!r} in the catalog or the "
                             f"warehouse{hint}")


def funnel_request(events: ir.Table, body: dict[str, Any],
                   layer: Callable[[], Any] | None = None, *,
                   timezone: str = "UTC", catalog: Catalog | None = None) -> dict[str, Any]:
    """``{"rows": [...]}``, plus ``"users"`` when the body asks for a list with
    ``{"users": {"step": 2, "status": "dropped", "by": "ios"}}``.

    ``layer`` returns the workspace's SemanticLayer: when every step is a cataloged event,
    the breakdown is the layer's dimension (``user.age_group`` as of each event);
    otherwise a field read from the event (``platform``, ``context.os.name``).
    ``timezone``: the workspace's (``[project] timezone``). ``catalog``: the workspace's,
    which every field a filter or ``hold`` reads must be declared in.
    """
    spec = funnel_spec(body, timezone=timezone)
    check_seen(events, catalog, [(f"step {number}", step.event)
                                 for number, step in enumerate(spec.steps, 1)])
    _check_funnel(spec, catalog, events.columns)
    result = funnel(events, spec, layer=breakdown_layer(spec, layer))
    out: dict[str, Any] = {"rows": result.rows}
    wanted = body.get("users")
    if wanted is not None:
        if not isinstance(wanted, dict):
            raise QueryError("users: expected {\"step\": 2, \"status\": \"dropped\"}")
        out["users"] = result.users(
            _index(wanted.get("step"), "users.step", len(spec.steps)) + 1,
            str(wanted.get("status", "reached")), by=wanted.get("by"),
            limit=_whole(wanted, "limit", _USER_LIMIT))
    return out


def retention_request(events: ir.Table, body: dict[str, Any], *,
                      timezone: str = "UTC", catalog: Catalog | None = None
                      ) -> dict[str, Any]:
    """``{"rows": [...]}`` for a retention body (start_event, return_event, grain, ...);
    cohorts are days or weeks of ``timezone`` (the workspace's); ``start_where`` and
    ``return_where`` read fields ``catalog`` declares."""
    spec = retention_spec(body, timezone=timezone)
    raw_since = body.get("since")
    if (spec.grain in ("day", "week") and isinstance(raw_since, str)
            and _RELATIVE.match(raw_since.strip()) and spec.since is not None):
        # a duration is that many cohorts, the current one included, as a trend's buckets
        spec = replace(spec, since=recent(parse_duration(raw_since, what="since"), spec.grain,
                                          zone(timezone), datetime.now(UTC)))
    check_seen(events, catalog, [("start_event", spec.start_event),
                                 ("return_event", spec.return_event)])
    for key, event, where in (("start_where", spec.start_event, spec.start_where),
                              ("return_where", spec.return_event, spec.return_where)):
        check_declared(catalog, event, [(f"{key} filter {f}", f.field) for f in where],
                       events.columns)
    return {"rows": retention(events, spec)}


def retention_spec(body: dict[str, Any], *, timezone: str = "UTC") -> RetentionSpec:
    """A RetentionSpec from a request body (see docs/analytics.md for every field)."""
    return RetentionSpec(
        start_event=_name(body, "start_event"), return_event=_name(body, "return_event"),
        start_where=_filters(body.get("start_where"), "start_where"),
        return_where=_filters(body.get("return_where"), "return_where"),
        grain=str(body.get("grain", "day")), periods=_whole(body, "periods", 7),
        mode=str(body.get("mode", "on")),
        since=parse_time(body.get("since"), what="since", timezone=timezone),
        until=parse_time(body.get("until"), what="until", timezone=timezone, end=True),
        timezone=timezone)


def trend_filters(body: dict[str, Any]) -> tuple[Filter, ...]:
    """An event trend's ``filters`` (a metric's trend takes a ``where`` of the layer)."""
    return _filters(body.get("filters"), "filters")


def trend_request(events: ir.Table, body: dict[str, Any],
                  layer: Callable[[], Any] | None = None, *,
                  timezone: str = "UTC", catalog: Catalog | None = None) -> dict[str, Any]:
    """``{"rows": [...]}`` for an event's count/users or a metric (``"metric"``, which
    needs ``layer``: a callable returning the workspace's SemanticLayer); buckets are
    hours, days, weeks or months of ``timezone`` (the workspace's, as the layer's). An event's
    ``filters`` read fields ``catalog`` declares (a metric's ``where``: the layer's)."""
    now = datetime.now(UTC)
    raw_since = body.get("since", "7d")
    since: datetime | None = parse_time(raw_since, what="since", now=now, timezone=timezone)
    until = parse_time(body.get("until", "now"), what="until", now=now, timezone=timezone,
                       end=True)
    assert since is not None
    assert until is not None
    grain = str(body.get("grain", "day"))
    if grain in GRAINS and isinstance(raw_since, str) and _RELATIVE.match(raw_since.strip()):
        # a duration is that many buckets, the current one included, as in metrics
        since = recent(now - since, grain, zone(timezone), now)
    compare = _flag(body, "compare", True)
    metric, event, where = _name(body, "metric"), _name(body, "event"), body.get("where")
    if metric:
        # the event's fields would be ignored: the metric's own measure and the layer's
        # filter (`where`) say what it counts
        if event:
            raise QueryError(f"event {event!r} and metric {metric!r}: a trend is of an "
                             "event or of a metric, not both")
        if body.get("filters"):
            raise QueryError("filters: an event's trend filters; a metric's trend takes "
                             "`where`, a filter of the semantic layer "
                             "(\"platform = 'ios'\", docs/metrics.md)")
        if where is not None and not isinstance(where, str):
            raise QueryError("where: expected a filter such as \"platform = 'ios'\"")
        if layer is None:
            raise QueryError("metric: no semantic layer here (metrics/*.yaml)")
        return {"rows": metric_trend(layer(), events, metric, since=since, until=until,
                                     grain=grain, compare=compare, where=where or None)}
    if where:
        raise QueryError("where: a metric's trend filter; an event's trend takes "
                         "`filters`, such as [\"platform=ios\"]")
    spec = TrendSpec(since=since, until=until, event=event,
                     where=trend_filters(body),
                     measure=str(body.get("measure", "count")), grain=grain,
                     compare=compare, timezone=timezone)
    check_seen(events, catalog, [("event", spec.event)])
    check_declared(catalog, spec.event, [(f"filter {f}", f.field) for f in spec.where],
                   events.columns)
    return {"rows": trend(events, spec)}
