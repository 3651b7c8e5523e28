"""The work behind the CLI and the HTTP API: a JSON body in, a JSON answer out, on a
warehouse (the server's, or the file the CLI opened read-only)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from nerve.anomaly._days import day_of, day_start
from nerve.anomaly._explain import explain
from nerve.anomaly._forecast import backtest, daily_values, forecast
from nerve.anomaly._run import Request, find_anomalies, resolve_target
from nerve.anomaly._series import count_metric, metric_series, with_metrics
from nerve.catalog import Catalog
from nerve.errors import QueryError
from nerve.quality._config import parse_duration
from nerve.semantic import SemanticLayer
from nerve.semantic._time import zone
from nerve.warehouse import analysis_events

__all__ = ["explain_local", "forecast_local", "run_local"]


def _layer(workspace: Any, catalog: Catalog | None) -> tuple[SemanticLayer, Catalog]:
    catalog = catalog if catalog is not None else Catalog.load(workspace.events_dir)
    return SemanticLayer.load(workspace, catalog), catalog


def _events(warehouse: Any) -> Any:
    return analysis_events(warehouse)


def _refuse_masked(layer: SemanticLayer, warehouse: Any, target: str | None,
                   by: Sequence[str] = ()) -> None:
    """On the reader's view, refuse a metric whose filter reads a masked value (its
    series would be all zeros: nothing judged, no forecast) or aggregates a removed one,
    and a breakdown by a removed value (one empty group), as a metric query does."""
    from nerve.governance import check_masked_filters, masked_fields_of  # noqa: PLC0415

    check_masked_filters(layer, masked_fields_of(warehouse),
                         [target] if target is not None and target in layer else (),
                         by=[str(d) for d in by])


def run_local(warehouse: Any, workspace: Any, body: dict[str, Any], now: datetime | None,
              catalog: Catalog | None = None) -> dict[str, Any]:
    """``POST /v1/anomalies``: detect (or backtest) on the warehouse."""
    request = Request.from_dict(body)
    layer, catalog = _layer(workspace, catalog)
    _refuse_masked(layer, warehouse, request.target, request.by)
    detection, about = find_anomalies(_events(warehouse), request, layer=layer,
                                      catalog_events=catalog.names(), now=now)
    return {"about": about, **detection.as_dict(points=request.points)}


def explain_local(warehouse: Any, workspace: Any, body: dict[str, Any], now: datetime | None,
                  catalog: Catalog | None = None) -> dict[str, Any]:
    """``POST /v1/anomalies/explain``: the explanation of a target's change."""
    layer, catalog = _layer(workspace, catalog)
    target = body.get("target")
    if not isinstance(target, str) or not target:
        raise QueryError("target: expected a metric or event name")
    con = getattr(warehouse, "ibis", None)
    caveats: list[dict[str, Any]] = []
    if callable(con):
        from nerve.quality import latest_results  # noqa: PLC0415

        caveats = [r.as_dict() for r in latest_results(con())]
    by = body.get("by") or None
    dimensions = [by] if isinstance(by, str) else by
    where = body.get("where") or None
    if where is not None and not isinstance(where, str):
        raise QueryError("where: expected a filter such as \"platform = 'android'\"")
    from nerve.governance import check_masked_filters, masked_fields_of  # noqa: PLC0415

    # a breakdown by a removed value is one empty group: refused, as a metric query's is
    check_masked_filters(layer, masked_fields_of(warehouse),
                         [target] if target in layer else (), where=where,
                         by=[str(d) for d in dimensions or ()])

    def run_checks(select: Sequence[str], at: datetime) -> list[dict[str, Any]]:
        # the quality checks on the target's events as of ``at`` (not
        # recorded: an explanation reads, it does not add to the check history)
        from nerve.quality import run_and_record  # noqa: PLC0415

        results, _ = run_and_record(warehouse, workspace, catalog, select=list(select),
                                    now=at, record=False)
        return [r.as_dict() for r in results]

    return explain(_events(warehouse), target, layer=layer,
                   period=str(body.get("period") or "24h"), vs=str(body.get("vs") or
                                                                 "previous"),
                   dimensions=dimensions,
                   catalog_events=catalog.names(), caveats=caveats, now=now,
                   funnel=tuple(body.get("funnel") or ()),
                   run_checks=run_checks if callable(con) else None, where=where)


def forecast_local(warehouse: Any, workspace: Any, body: dict[str, Any], now: datetime | None,
                   catalog: Catalog | None = None) -> dict[str, Any]:
    """``POST /v1/anomalies/forecast``: daily forecast with intervals, and its backtest."""
    layer, catalog = _layer(workspace, catalog)
    name = body.get("metric")
    if not isinstance(name, str) or not name:
        raise QueryError("metric: expected a metric or event name")
    _refuse_masked(layer, warehouse, name)
    horizon = max(1, int(parse_duration(body.get("horizon") or "14d", "horizon") // 86400))
    history = max(14, int(parse_duration(body.get("history") or "90d", "history") // 86400))
    level = float(body.get("level") or 0.9)
    if not 0 < level < 1:
        raise QueryError(f"level: expected a probability like 0.9, got {level}")
    kind, resolved = resolve_target(name, layer, catalog.names())
    if kind == "event":
        metric = count_metric(resolved)
        layer, resolved = with_metrics(layer, [metric]), metric.name
    now = now or datetime.now(UTC)
    # whole local days up to today's (not over, so left out), as nerve anomalies counts
    tz = zone(layer.timezone)
    today = day_of(now, tz)
    frame = metric_series(layer, _events(warehouse), resolved,
                          start=day_start(today - history, tz), end=day_start(today, tz),
                          grain_hours=24, now=now)
    daily = daily_values(frame, date(1970, 1, 1) + timedelta(days=today))
    daily = daily.iloc[int((daily.cumsum() > 0).to_numpy().argmax()):]  # from the first data
    rows = forecast(daily, horizon, level=level)
    check = backtest(daily, horizon, level=level)
    return {"metric": name, "horizon_days": horizon, "history_days": len(daily),
            "level": level, "model": "ETS(A,Ad,A) weekly seasonality (statsmodels)",
            "forecast": rows, "backtest": check}
