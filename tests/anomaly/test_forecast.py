"""Forecasts on a synthetic weekly series with a known future."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nerve.anomaly import backtest, forecast
from nerve.errors import QueryError


def weekly(days: int, seed: int = 0) -> pd.Series:
    index = pd.date_range("2026-01-05", periods=days, freq="D")  # a Monday
    level = 1000 + 2.0 * np.arange(days)
    weekend = np.where(index.weekday >= 5, 0.6, 1.0)
    noise = np.random.default_rng(seed).normal(0, 20, days)
    return pd.Series(level * weekend + noise, index=index.date)


def test_the_forecast_follows_the_week_and_its_intervals_hold() -> None:
    history, future = weekly(84).iloc[:70], weekly(84).iloc[70:]
    rows = forecast(history, 14)
    assert [r["date"] for r in rows] == [d.isoformat() for d in future.index]
    predicted = np.array([r["forecast"] for r in rows])
    assert np.mean(np.abs(predicted - future.to_numpy()) / future.to_numpy()) < 0.05
    assert all(r["low"] <= r["forecast"] <= r["high"] for r in rows)
    weekdays = [r["forecast"] for r, d in zip(rows, future.index, strict=True)
                if d.weekday() < 5]
    weekends = [r["forecast"] for r, d in zip(rows, future.index, strict=True)
                if d.weekday() >= 5]
    assert max(weekends) < min(weekdays)


def test_backtest_scores_the_held_out_days() -> None:
    check = backtest(weekly(84), 14)
    assert check["days"] == 14
    assert check["mape"] < 0.05
    assert check["coverage"] >= 0.7  # a 90% interval, 14 days
    assert len(check["points"]) == 14
    assert all("actual" in p for p in check["points"])
    assert all(type(p["actual"]) is float for p in check["points"])


def test_a_count_s_actual_days_are_integers() -> None:
    counts = weekly(84).round()
    points = backtest(counts, 14)["points"]
    assert [p["actual"] for p in points] == [int(v) for v in counts.iloc[-14:]]
    assert all(type(p["actual"]) is int for p in points)


def test_counts_never_go_negative_and_short_history_is_refused() -> None:
    tiny = pd.Series([0.0, 1.0, 0.0, 2.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
                     index=pd.date_range("2026-01-01", periods=14, freq="D").date)
    assert all(r["low"] >= 0 for r in forecast(tiny, 7))
    with pytest.raises(QueryError, match="at least 8 days"):
        forecast(tiny.iloc[:5], 7)
