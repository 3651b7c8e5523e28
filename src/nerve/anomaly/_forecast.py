"""Forecasts for planning: Holt-Winters (ETS) with weekly seasonality, and its backtest.

statsmodels' ``ETSModel`` (additive error, additive damped trend, additive weekly
seasonality) is fitted on daily values; prediction intervals come from its
simulation-free formulas. The backtest holds out the last ``horizon`` days, forecasts
them from the days before and reports MAE, MAPE and how many held-out days fell inside
the interval.
"""

from __future__ import annotations

import warnings
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd

from nerve.errors import QueryError

__all__ = ["backtest", "daily_values", "forecast"]


def _fit(values: pd.Series) -> Any:
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel  # noqa: PLC0415

    seasonal = 7 if len(values) >= 14 else None
    model = ETSModel(values.astype(float), error="add", trend="add", damped_trend=True,
                     seasonal="add" if seasonal else None, seasonal_periods=seasonal)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter on short, flat series
        return model.fit(disp=False, maxiter=200)


def forecast(daily: pd.Series, horizon: int, *, level: float = 0.9) -> list[dict[str, Any]]:
    """``horizon`` days after ``daily`` (a value per consecutive date, oldest first), each
    with the ``level`` prediction interval; counts stay at or above zero.

    >>> days = pd.date_range("2026-01-01", periods=28, freq="D")
    >>> rows = forecast(pd.Series([100.0 + 10 * (d.weekday() >= 5) for d in days], days), 7)
    >>> len(rows), rows[0]["date"]
    (7, '2026-01-29')
    """
    if len(daily) < 8:
        raise QueryError(f"forecast: needs at least 8 days of history, got {len(daily)}")
    if horizon < 1:
        raise QueryError("--horizon: expected at least 1 day")
    series = pd.Series(daily.to_numpy(dtype=float),
                       index=pd.date_range(pd.Timestamp(daily.index[0]), periods=len(daily),
                                           freq="D"))
    fitted = _fit(series)
    frame = fitted.get_prediction(start=len(series), end=len(series) + horizon - 1
                                  ).summary_frame(alpha=1 - level)
    floor = 0.0 if (series >= 0).all() else -np.inf
    first = pd.Timestamp(daily.index[-1]).date() + timedelta(days=1)
    return [{"date": (first + timedelta(days=i)).isoformat(),
             "forecast": round(max(float(row["mean"]), floor), 4),
             "low": round(max(float(row["pi_lower"]), floor), 4),
             "high": round(max(float(row["pi_upper"]), floor), 4)}
            for i, (_, row) in enumerate(frame.iterrows())]


def backtest(daily: pd.Series, horizon: int, *, level: float = 0.9) -> dict[str, Any]:
    """Hold out the last ``horizon`` days, forecast them, and score: MAE, MAPE (over days
    with a non-zero actual) and interval coverage (share of actuals inside)."""
    horizon = min(horizon, max(1, len(daily) // 4))
    train, test = daily.iloc[:-horizon], daily.iloc[-horizon:]
    rows = forecast(train, horizon, level=level)
    actual = test.to_numpy(dtype=float)
    # counts (every day a whole number) are reported as integers: 3917, not 3917.0
    whole = bool(np.all(np.mod(daily.to_numpy(dtype=float), 1) == 0))
    predicted = np.array([r["forecast"] for r in rows])
    inside = np.array([r["low"] <= a <= r["high"] for r, a in zip(rows, actual, strict=True)])
    nonzero = actual != 0
    mape = float(np.mean(np.abs(predicted[nonzero] - actual[nonzero]) / np.abs(actual[nonzero]))
                 ) if nonzero.any() else None
    return {"days": horizon, "mae": round(float(np.mean(np.abs(predicted - actual))), 4),
            "mape": round(mape, 4) if mape is not None else None,
            "coverage": round(float(inside.mean()), 4), "level": level,
            "points": [{**r, "actual": int(a) if whole else float(a)}
                       for r, a in zip(rows, actual, strict=True)]}


def daily_values(frame: pd.DataFrame, end: date) -> pd.Series:
    """The overall series of a series frame (day periods) as consecutive dates to ``end``
    (exclusive), missing days as zero."""
    overall = frame[frame["dimension"] == ""].groupby("period")["n"].sum()
    if overall.empty:
        raise QueryError("forecast: no data in the history window")
    days = pd.Index(range(int(overall.index.min()), (end - date(1970, 1, 1)).days))
    values = overall.reindex(days, fill_value=0.0)
    return pd.Series(values.to_numpy(dtype=float),
                     index=[date(1970, 1, 1) + timedelta(days=int(d)) for d in days])
