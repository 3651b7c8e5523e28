"""One meaning of ``since``/``until`` in metrics, trends, funnels and retention.

``nerve metrics query X --since A --until B`` counts day B; funnels, retention and trends
read a date ``until`` as B's midnight and left B out, so ``nerve trend --metric X`` with
the same dates gave other numbers than ``nerve metrics query X``. Now a date is a whole
local day everywhere (an ``until`` date included), a datetime an instant (an ``until``
datetime excluded), in the request bodies of the CLI and HTTP API and in the Python
specs. Every figure is checked against one worked out here from the rows, on DuckDB and
PostgreSQL (the ``engine`` fixture), in America/Los_Angeles over the 25-hour day of
2026-11-01 (the US autumn switch), with events a second either side of local midnight.
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from tests.conftest import events_arrow

from nerve.analytics import (
    FunnelSpec,
    RetentionSpec,
    Step,
    TrendSpec,
    funnel,
    funnel_request,
    metric_trend,
    parse_time,
    retention,
    retention_request,
    trend,
    trend_request,
)
from nerve.errors import QueryError

LA = "America/Los_Angeles"
ZONE = ZoneInfo(LA)
FIRST, LAST = date(2026, 10, 26), date(2026, 11, 8)

CATALOG = {"open": "name: open\n", "play": "name: play\n",
           "buy": "name: buy\nproperties:\n  amount:\n    type: number\n"}
METRICS = """
metrics:
  plays:
    measure: {agg: count, event: play}
  listeners:
    measure: {agg: count_distinct, event: play}
  avg_buy:
    measure: {agg: avg, event: buy, of: amount}
"""


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=ZONE)


def _rows() -> list[dict[str, Any]]:
    """Per user and day, maybe an open, then plays and a purchase; some a second before
    or at local midnight, where a date ``until`` read as excluded or included differs."""
    rng = random.Random(20261101)
    rows: list[dict[str, Any]] = []
    day = FIRST
    while day <= LAST:
        for u in range(12):
            if rng.random() < 0.5:
                continue
            edge = rng.random() < 0.3
            start = (_midnight(day + timedelta(days=1)) - timedelta(seconds=1) if edge
                     else _midnight(day) + timedelta(minutes=rng.randint(0, 23 * 60)))
            rows.append({"user_id": f"u{u}", "event": "open", "timestamp": start})
            rows.extend({"user_id": f"u{u}", "event": "play",
                         "timestamp": start + timedelta(seconds=1 + 600 * k)}
                        for k in range(rng.randint(0, 3)))
            if rng.random() < 0.2:
                rows.append({"user_id": f"u{u}", "event": "buy",
                             "timestamp": start + timedelta(seconds=30),
                             "properties": {"amount": rng.choice([5.0, 10.0, 50.0])}})
        day += timedelta(days=1)
    return [{**r, "timestamp": r["timestamp"].astimezone(UTC)} for r in rows]


ROWS = _rows()


def _day(row: dict[str, Any]) -> date:
    return row["timestamp"].astimezone(ZONE).date()


def _arrow() -> Any:
    """ROWS as the warehouse's events table (``events_table`` is function-scoped)."""
    return events_arrow([{"message_id": f"m{i}", **r} for i, r in enumerate(ROWS)])


@pytest.fixture(scope="module")
def table(engine: Any) -> Any:
    if engine.name == "spark":
        pytest.skip("DuckDB and PostgreSQL: the dates are read in Python, alike on every "
                    "engine; Spark's local time is tests/analytics/test_local_time.py's")
    return engine.load("events_windows", _arrow())


@pytest.fixture(scope="module")
def layer(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from nerve.catalog import Catalog
    from nerve.semantic import SemanticLayer

    root: Path = tmp_path_factory.mktemp("windows")
    (root / "events").mkdir()
    for name, text in CATALOG.items():
        (root / "events" / f"{name}.yaml").write_text(text)
    (root / "metrics").mkdir()
    (root / "metrics" / "podcast.yaml").write_text(METRICS)
    return SemanticLayer.from_folder(root / "metrics", Catalog.load(root / "events"),
                                     timezone=LA)


def _plays_per_day() -> dict[date, int]:
    out: dict[date, int] = defaultdict(int)
    for r in ROWS:
        if r["event"] == "play":
            out[_day(r)] += 1
    return out


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


# the range ends on the 25-hour day and on a day with events a second before midnight
RANGES = [(date(2026, 11, 2), date(2026, 11, 8)), (date(2026, 10, 29), date(2026, 11, 1)),
          (date(2026, 11, 5), date(2026, 11, 5))]


def test_the_data_tells_an_included_until_day_from_an_excluded_one() -> None:
    per_day = _plays_per_day()
    for _, until in RANGES:
        assert per_day[until] > 0
    assert any(_day(r) == date(2026, 11, 1) and r["timestamp"].astimezone(ZONE).hour == 23
               for r in ROWS)


@pytest.mark.parametrize(("since", "until"), RANGES)
def test_metrics_and_trends_count_the_same_days(table: Any, layer: Any, since: date,
                                                until: date) -> None:
    from nerve.semantic import MetricQuery

    per_day = _plays_per_day()
    days = _days(since, until)
    expected = [per_day.get(d, 0) for d in days]
    body = {"since": since.isoformat(), "until": until.isoformat(), "grain": "day"}
    metric = layer.query(MetricQuery(("plays",), grain="day", since=body["since"],
                                     until=body["until"]), table).table.to_pylist()
    assert [(r["day"], r["plays"]) for r in metric] == list(zip(days, expected, strict=True))
    total = layer.query(MetricQuery(("plays",), since=body["since"], until=body["until"]),
                        table).table.to_pylist()
    assert total == [{"plays": sum(expected)}]
    for answer in (trend_request(table, {**body, "event": "play"}, timezone=LA),
                   trend_request(table, {**body, "metric": "plays"}, lambda: layer,
                                 timezone=LA)):
        rows = answer["rows"]
        assert [r["period"] for r in rows] == [_midnight(d) for d in days]
        assert [r["value"] for r in rows] == expected
        # the previous period is as many days just before
        before = [d - timedelta(days=len(days)) for d in days]
        assert [r["previous"] for r in rows] == [per_day.get(d, 0) for d in before]
    # the Python API takes dates, read alike
    assert [r["value"] for r in trend(table, TrendSpec(since, until, event="play",
                                                       timezone=LA))] == expected
    assert [r["value"] for r in metric_trend(layer, table, "plays", since=since,
                                             until=until)] == expected


def test_a_count_metrics_trend_is_integers_and_an_empty_average_is_none(
        table: Any, layer: Any) -> None:
    """``nerve trend --metric plays`` printed 166.0 where the event's trend printed 166;
    an average over a period without events was 0.0 where ``nerve metrics query`` says
    null (docs/metrics.md: a zero would be a lie)."""
    from nerve.semantic import MetricQuery

    body = {"since": "2026-11-02", "until": "2026-11-04", "metric": "plays"}
    rows = trend_request(table, body, lambda: layer, timezone=LA)["rows"]
    assert all(type(r["value"]) is int and type(r["previous"]) is int for r in rows)
    empty = {"since": "2025-01-05", "until": "2025-01-06", "metric": "avg_buy"}
    rows = trend_request(table, empty, lambda: layer, timezone=LA)["rows"]
    assert [(r["value"], r["previous"], r["change"]) for r in rows] == [(None, None, None)] * 2
    direct = layer.query(MetricQuery(("avg_buy",), grain="day", since="2025-01-05",
                                     until="2025-01-06"), table).table.to_pylist()
    assert [r["avg_buy"] for r in direct] == [None, None]
    # a day with purchases after one without: a value, and no change against nothing
    amounts: dict[date, list[float]] = defaultdict(list)
    for r in ROWS:
        if r["event"] == "buy":
            amounts[_day(r)].append(r["properties"]["amount"])
    bought = min(amounts)
    rows = trend_request(table, {"since": bought.isoformat(), "until": bought.isoformat(),
                                 "metric": "avg_buy"}, lambda: layer, timezone=LA)["rows"]
    assert rows[0]["value"] == pytest.approx(sum(amounts[bought]) / len(amounts[bought]))
    assert rows[0]["previous"] is None
    assert rows[0]["change"] is None


@pytest.mark.parametrize(("since", "until"), RANGES)
def test_funnels_include_the_until_day(table: Any, since: date, until: date) -> None:
    lo, hi = _midnight(since), _midnight(until + timedelta(days=1))
    plays = defaultdict(list)
    for r in ROWS:
        if r["event"] == "play":
            plays[r["user_id"]].append(r["timestamp"])
    opens = [r for r in ROWS if r["event"] == "open" and lo <= r["timestamp"] < hi]
    converted = {o["user_id"] for o in opens
                 if any(o["timestamp"] <= p <= o["timestamp"] + timedelta(hours=1)
                        for p in plays[o["user_id"]])}
    expected = [len({o["user_id"] for o in opens}), len(converted)]
    body = {"steps": ["open", "play"], "window": "1h", "since": since.isoformat(),
            "until": until.isoformat()}
    assert [r["users"] for r in funnel_request(table, body, timezone=LA)["rows"]] == expected
    spec = FunnelSpec((Step("open"), Step("play")), window=timedelta(hours=1), since=since,
                      until=until, timezone=LA)
    assert [r["users"] for r in funnel(table, spec).rows] == expected
    if since < until:  # a datetime until is an instant, excluded: midnight leaves the day
        before = {**body, "until": f"{until.isoformat()}T00:00"}
        first = len({o["user_id"] for o in opens if o["timestamp"] < _midnight(until)})
        assert funnel_request(table, before, timezone=LA)["rows"][0]["users"] == first


@pytest.mark.parametrize(("since", "until"), RANGES)
def test_retention_cohorts_include_the_until_day(table: Any, since: date,
                                                 until: date) -> None:
    first: dict[str, datetime] = {}
    for r in sorted(ROWS, key=lambda r: r["timestamp"]):
        if r["event"] == "open":
            first.setdefault(r["user_id"], r["timestamp"])
    sizes: dict[date, int] = defaultdict(int)
    for when in first.values():
        if since <= when.astimezone(ZONE).date() <= until:
            sizes[when.astimezone(ZONE).date()] += 1
    body = {"start_event": "open", "return_event": "play", "periods": 1,
            "since": since.isoformat(), "until": until.isoformat()}
    rows = retention_request(table, body, timezone=LA)["rows"]
    assert {r["cohort"].date(): r["cohort_size"] for r in rows} == dict(sizes)
    spec = RetentionSpec("open", "play", periods=1, since=since, until=until, timezone=LA)
    assert {r["cohort"].date(): r["cohort_size"] for r in retention(table, spec)} == \
        dict(sizes)


def test_since_after_until_is_refused_everywhere(table: Any, layer: Any) -> None:
    """Retention answered an empty table; funnels, trends and metrics refused."""
    from nerve.semantic import MetricQuery

    body = {"since": "2026-11-08", "until": "2026-11-02"}
    with pytest.raises(QueryError, match="since"):
        retention_request(table, {**body, "start_event": "open"}, timezone=LA)
    with pytest.raises(QueryError, match="since"):
        funnel_request(table, {**body, "steps": ["open", "play"]}, timezone=LA)
    with pytest.raises(QueryError, match="since"):
        trend_request(table, {**body, "event": "play"}, timezone=LA)
    with pytest.raises(QueryError, match="since"):
        layer.query(MetricQuery(("plays",), **body), table)
    # one day, since = until, is that day everywhere
    one = {"since": "2026-11-08", "until": "2026-11-08"}
    assert [r["value"] for r in trend_request(table, {**one, "event": "play"},
                                              timezone=LA)["rows"]] == \
        [_plays_per_day()[date(2026, 11, 8)]]


def test_today_and_yesterday_are_local_days() -> None:
    now = datetime(2026, 11, 2, 3, tzinfo=UTC)  # 2026-11-01 19:00 in Los Angeles (PST)
    nov1, nov2 = _midnight(date(2026, 11, 1)), _midnight(date(2026, 11, 2))
    assert parse_time("today", what="since", now=now, timezone=LA) == nov1
    assert parse_time("today", what="until", now=now, timezone=LA, end=True) == nov2
    assert parse_time("yesterday", what="since", now=now, timezone=LA) == \
        _midnight(date(2026, 10, 31))
    assert parse_time("yesterday", what="until", now=now, timezone=LA, end=True) == nov1
    assert nov2.astimezone(UTC) - nov1.astimezone(UTC) == timedelta(hours=25)
    with pytest.raises(QueryError, match="not a date"):
        parse_time("2026-11-3x", what="until", timezone=LA, end=True)


@pytest.mark.parametrize(("since", "grain", "n"), [("7d", "day", 7), ("8w", "week", 8),
                                                   ("3d", "hour", None)])
def test_a_duration_is_as_many_buckets_as_in_metrics(table: Any, layer: Any, since: str,
                                                     grain: str, n: int | None) -> None:
    """`nerve trend --since 7d` gave 8 days (the part of a day that 7 days back falls
    into, widened, and today), where `nerve metrics query --since 7d --grain day` gives
    7, today included; `--since 8w --grain week`: 9 weeks against 8. (Read from the
    clock, as a duration is; the two are compared with each other.)"""
    from nerve.semantic import MetricQuery

    rows = trend_request(table, {"since": since, "grain": grain, "metric": "plays",
                                 "compare": False}, lambda: layer, timezone=LA)["rows"]
    metric = layer.query(MetricQuery(("plays",), grain=grain, since=since),
                         table).table.to_pylist()
    assert [r["period"].replace(tzinfo=None) for r in rows] == \
        [datetime.combine(r[grain], datetime.min.time()) if grain != "hour" else r[grain]
         for r in metric]
    if n is not None:
        assert len(rows) == n
    assert rows[-1]["partial"]
    event = trend_request(table, {"since": since, "grain": grain, "event": "play",
                                  "compare": False}, timezone=LA)["rows"]
    assert [r["period"] for r in event] == [r["period"] for r in rows]
