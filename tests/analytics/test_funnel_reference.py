"""nerve's funnels against the plain-Python reference, on randomized data (DuckDB).

Small timestamp sets force equal timestamps; a small event alphabet forces repeated
steps; every order mode, windows, per-step windows, optional steps, exclusions (also on
a step's own event), held properties, periods and breakdown attribution are drawn.
Both ways of computing a funnel on DuckDB run on every example: the compiled path
(``method="compiled"``, the default there on large tables) and the SQL path
(``method="sql"``, the one PostgreSQL and Spark use); each must match the reference,
and the two must give identical rows (times, histograms, breakdown groups included).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import ibis
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.analytics.conftest import at, ev
from tests.analytics.reference import reference, step_counts

from nerve.analytics import Exclusion, Filter, FunnelSpec, Step, funnel

USERS = ["u0", "u1", "u2", "a3"]
EVENTS = ["a", "b", "c", "x"]


@st.composite
def event_rows(draw: st.DrawFn) -> list[dict[str, Any]]:
    n = draw(st.integers(0, 28))
    rows = []
    for i in range(n):
        props: dict[str, Any] = {}
        if draw(st.booleans()):
            props["p"] = draw(st.sampled_from([1, 2]))
        k = draw(st.sampled_from(["x", "y", None]))
        if k is not None:
            props["k"] = k
        type_ = draw(st.sampled_from(["track"] * 6 + ["page"]))
        row = ev(draw(st.sampled_from(USERS)), draw(st.sampled_from(EVENTS)),
                 draw(st.integers(0, 12)), mid=f"m{i:03d}", type_=type_, **props)
        if row["user_id"] == "a3":  # an anonymous visitor
            row["anonymous_id"], row["user_id"] = "a3", None
        rows.append(row)
    return rows


@st.composite
def specs(draw: st.DrawFn) -> FunnelSpec:
    order = draw(st.sampled_from(["sequential", "strict", "any"]))
    n = draw(st.integers(2, 4))
    pool = ["a", "b", "c"]
    if order == "any":
        names = draw(st.permutations(pool))[:n] if n <= 3 else list(pool)
        n = len(names)
    else:
        names = [draw(st.sampled_from(pool)) for _ in range(n)]
    steps = []
    for i, name in enumerate(names):
        where: tuple[Filter, ...] = ()
        if draw(st.integers(0, 5)) == 0:
            where = (Filter("p", draw(st.sampled_from(["=", "!=", ">="])), 1),)
        optional = order != "any" and 0 < i < n - 1 and draw(st.booleans())
        within = None
        if order != "any" and i > 0 and draw(st.integers(0, 3)) == 0:
            within = timedelta(minutes=draw(st.integers(0, 6)))
        steps.append(Step(name, where, optional=optional, within=within))
    exclusions: tuple[Exclusion, ...] = ()
    if order != "any" and draw(st.booleans()):
        after = draw(st.integers(0, n - 2))
        # mostly an event of its own; sometimes a step's event (a step row then also
        # counts as an excluded event for the chains around it)
        exclusions = (Exclusion(draw(st.sampled_from(["x", "x", "a", "b"])), after=after,
                                before=draw(st.integers(after + 1, n - 1))),)
    since = until = None
    if draw(st.integers(0, 3)) == 0:
        since, until = at(draw(st.integers(0, 4))), at(draw(st.integers(5, 10)))
    by = draw(st.sampled_from([None, "p"]))
    attribution = draw(st.sampled_from(["first_touch", "last_touch", "step"]))
    return FunnelSpec(
        tuple(steps), window=timedelta(minutes=draw(st.integers(1, 12))),
        order=order, exclusions=exclusions, hold=("k",) if draw(st.booleans()) else (),
        since=since, until=until, by=by, attribution=attribution,
        attribution_step=draw(st.integers(0, n - 1)) if attribution == "step" else None,
    )


@pytest.fixture(scope="module")
def con() -> Any:
    return ibis.duckdb.connect()


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(rows=event_rows(), spec=specs())
def test_funnel_matches_reference(con: Any, events_table: Any, rows: list[dict[str, Any]],
                                  spec: FunnelSpec) -> None:
    table = con.create_table("events", events_table(rows), overwrite=True)
    ref = reference(rows, spec)
    sql = funnel(table, spec, method="sql")
    got = funnel(table, spec, method="compiled")
    assert (got.extra["method"], sql.extra["method"]) == ("compiled", "sql")
    assert got.rows == sql.rows
    for k in range(len(spec.steps)):
        for status in ("reached", "converted", "dropped"):
            assert got.users(k + 1, status) == sql.users(k + 1, status)
    _check_reference(got, ref, spec)
    _check_reference(sql, ref, spec)


def _check_reference(got: Any, ref: dict[str, dict[str, Any]], spec: FunnelSpec) -> None:
    n = len(spec.steps)
    if not spec.by:
        assert [r["users"] for r in got.rows] == step_counts(ref, n)
    for k in range(n):
        assert got.users(k + 1) == sorted(w for w, r in ref.items() if k in r["reached"])
    plain = not any(s.optional for s in spec.steps) and spec.order != "any"
    if plain:
        _check_times(got, ref, spec)
    if plain and spec.by and not spec.hold:
        _check_groups(got, ref, spec)


def _micro(row: dict[str, Any]) -> float:
    return row["timestamp"].timestamp()


def _check_times(got: Any, ref: dict[str, dict[str, Any]], spec: FunnelSpec) -> None:
    import numpy as np

    if spec.by:
        return
    for k in range(1, len(spec.steps)):
        secs = [_micro(r["chain"][k]) - _micro(r["chain"][k - 1])
                for r in ref.values() if k in r["chain"]]
        row = got.rows[k]
        if not secs:
            assert row["median_seconds"] is None
        else:
            assert row["median_seconds"] == pytest.approx(float(np.median(secs)))


def _check_groups(got: Any, ref: dict[str, dict[str, Any]], spec: FunnelSpec) -> None:
    n = len(spec.steps)
    expected: dict[Any, list[int]] = {}
    for r in ref.values():
        chain = r["chain"]
        if spec.attribution == "first_touch":
            at_ev = chain.get(0)
        elif spec.attribution == "last_touch":
            at_ev = chain[max(chain)]
        else:
            at_ev = chain.get(spec.attribution_step)
        props = (at_ev or {}).get("properties") or {}
        value = None if at_ev is None or "p" not in props else str(props["p"])
        counts = expected.setdefault(value, [0] * n)
        for k in r["reached"]:
            counts[k] += 1
    actual: dict[Any, list[int]] = {}
    for row in got.rows:
        actual.setdefault(row["p"], [0] * n)[row["step"] - 1] = row["users"]
    assert actual == expected
