"""``Metrics.observe`` counts in C; it must count exactly what a plain loop counts."""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from nerve.envelope import ENVELOPE_FIELDS
from nerve.server._metrics import UNCATALOGED, Metrics

CATALOGED = {"order_completed", "signup"}
_TYPE, _EVENT = ENVELOPE_FIELDS.index("type"), ENVELOPE_FIELDS.index("event")


def _row(type_: str, event: str | None, valid: bool) -> tuple[Any, ...]:
    row: list[Any] = [None] * len(ENVELOPE_FIELDS)
    row[_TYPE], row[_EVENT] = type_, event
    row[-1] = None if valid else '[{"rule": "x"}]'
    return tuple(row)


rows = st.lists(st.one_of(
    st.builds(_row, st.just("track"), st.sampled_from(["order_completed", "signup", "typo",
                                                       "Other Thing"]), st.booleans()),
    st.builds(_row, st.sampled_from(["identify", "page", "screen", "group", "alias"]),
              st.none(), st.booleans())), max_size=40)


def _counts(metrics: Metrics) -> Counter[tuple[str, str, str]]:
    assert metrics.registry is not None  # tests run without multiprocess mode
    out: Counter[tuple[str, str, str]] = Counter()
    for family in metrics.registry.collect():
        for sample in family.samples:
            if sample.name.endswith("_total") and "event" in sample.labels:
                out[(sample.name, sample.labels["source"], sample.labels["event"])] += (
                    int(sample.value))
    return out


@settings(max_examples=100, deadline=None)
@given(requests=st.lists(rows, min_size=1, max_size=4))
def test_observe_counts_like_a_plain_loop(requests: list[list[tuple[Any, ...]]]) -> None:
    metrics = Metrics(CATALOGED)
    expected: Counter[tuple[str, str, str]] = Counter()
    for request in requests:
        metrics.observe("web", request, {("consent", "signup"): 2})
        for row in request:
            name = row[_EVENT] or row[_TYPE]
            label = name if name in CATALOGED or row[_EVENT] is None else UNCATALOGED
            kind = "accepted" if row[-1] is None else "quarantined"
            expected[(f"nerve_events_{kind}_total", "web", label)] += 1
        expected[("nerve_events_dropped_total", "web", "signup")] += 2
    assert _counts(metrics) == +expected
