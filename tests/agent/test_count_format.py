"""Counts read as counts in answers: a median or a forecast of a count of events or users
falls between two whole numbers, and "2,299.50 orders expected" reads as a measurement
the data never made. Rates and money keep their decimals."""

from __future__ import annotations

import re

from nerve.agent import Context, ask
from nerve.agent._answer import Builder
from nerve.agent._render_explain import _drivers


def test_a_forecast_of_a_count_reads_in_whole_numbers(demo_ctx: Context) -> None:
    answer = ask("forecast orders", demo_ctx)
    forecasts = [n for n in answer.numbers if " forecast " in n.label or "day " in n.label]
    assert forecasts, answer.answer
    assert any(not float(n.value or 0).is_integer() for n in forecasts)  # the model's
    for n in forecasts:
        assert re.fullmatch(r"-?\d{1,3}(,\d{3})*", n.text), n.text
        assert abs(float(n.text.replace(",", "")) - float(n.value or 0)) <= 0.5


def test_money_keeps_its_cents(demo_ctx: Context) -> None:
    answer = ask("forecast revenue", demo_ctx)
    money = [n for n in answer.numbers if " forecast " in n.label]
    assert money, answer.answer
    assert all(re.search(r"\.\d\d\b", n.text) for n in money), [n.text for n in money]


def test_an_effect_on_a_count_reads_as_a_count() -> None:
    # a driver as `nerve explain` gives it for an event count: its effect is a share of
    # a median, -94.2 events; the answer quotes -94 of them
    driver = {"dimension": "app_version", "value": "5.2.0", "effect": "rate",
              "contribution": 112.0, "share": -0.39, "effect_change": -94.2,
              "effect_share": 0.33, "significant": False, "score": 1.0, "z": -2.13}
    explained = {"observed": 246.0, "baseline": 532.5, "change": -286.5,
                 "drivers": [driver], "change_z": -6.3, "change_significant": True}
    b = Builder("why did plays drop?", {})
    _drivers(explained, "nerve explain plays", "count", None, -286.5, b)
    text = b.finish().answer
    assert re.search(r"a rate effect of -94\.(\s|$)", text), text


def test_a_small_ratio_keeps_three_significant_digits() -> None:
    # events per session of a rare event, 0.0042: two decimals read it as nothing at all
    b = Builder("how often do people export?", {})
    text = b.num("exports per session", 0.004216, "q", "metric")
    assert text == "0.00422"
    assert float(text) != 0
