"""The few aggregate scans every check reads from, so 10M events cost a few passes at most.

Each function builds one Ibis query, runs it, and returns a small pandas frame; the
checks then work on those frames in memory. Times are float seconds since the epoch.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import ibis
import ibis.expr.types as ir
import orjson
import pandas as pd

from nerve.quality._config import ChecksConfig
from nerve.quality._engine import Inputs, epoch_seconds, event_key, field_value, user_key
from nerve.warehouse import one_of

__all__ = ["duplicates_by_source", "hourly_profile", "live_before", "loads_summary",
           "quarantine_summary", "recent_live"]


def _cases(events: list[str], key: ir.StringValue, per_event: dict[str, float],
           default: float) -> Any:
    """A per-event constant: ``CASE event WHEN 'a' THEN 1 ... ELSE default END``."""
    branches = [(key == name, value) for name, value in per_event.items() if name in events]
    if not branches:
        return ibis.literal(default)
    return ibis.cases(*branches, else_=default)


def dimension_expr(table: ir.Table, paths: tuple[str, ...], backend: str) -> ir.StringValue:
    values = [field_value(table, path, backend) for path in paths]
    return values[0] if len(values) == 1 else ibis.coalesce(*values)


def profile_span(cfg: ChecksConfig) -> float:
    """Seconds of event time the hourly profile covers: the longest of the volume and rate
    trainings (an event's own included) and the missing_events window, so that no check
    reading the profile judges less history than it was told to (a volume training of 2d
    made an event last seen 3 days ago read as none in the 7-day window).

    >>> profile_span(ChecksConfig()) / 86400
    28.0
    """
    spans = [cfg.seconds("missing_events", "window")]
    for check in ("volume", "rate"):
        spans.append(cfg.seconds(check, "training"))
        spans.extend(cfg.seconds(check, "training", event) for event in cfg.events)
    return max(spans)


def hourly_profile(inputs: Inputs, cfg: ChecksConfig, now: float) -> pd.DataFrame:
    """Event counts per hour (of the event's time), event, source and import flag.

    One scan of the training window without touching JSON; volume, freshness and
    missing-data checks read it. ``last_live`` is the latest ``received_at`` of live
    (non-historical) rows, ``last`` the latest event time (the hour is not precise enough
    to tell someone when the last event happened).
    """
    e = inputs.events
    backend = inputs.backend
    ts = epoch_seconds(e.timestamp, backend)
    start = now - profile_span(cfg)
    query = (
        e.filter(ts >= start, ts < now + 3600)
        .select(event=event_key(e), source=e.source, historical=e.historical,
                hour=(ts // 3600).cast("int64"), ts=ts,
                received=epoch_seconds(e.received_at, backend))
        .group_by(["event", "source", "historical", "hour"])
        .agg(n=ibis._.count(), last=ibis._.ts.max(),
             # as of ``now``: a row received later (``--now`` in the past) was not there
             last_live=ibis._.received.max(where=~ibis._.historical & (ibis._.received <= now)))
    )
    return query.to_pandas()


#: how far before the scanned span freshness looks for sources that went silent (seconds)
SILENT_LOOK_BACK = 365 * 86400


def live_before(inputs: Inputs, cfg: ChecksConfig, now: float) -> pd.DataFrame:
    """The latest live ``received_at`` per event and source among the rows whose event
    time is before the hourly profile's span: freshness judges the sources that went
    silent longer ago than the profile sees from it.

    One grouped max over the older rows of the ``SILENT_LOOK_BACK`` before that span, no
    JSON (the checks run every few minutes: a source silent for over a year has been
    retired, and reading all history each time would grow with it). The ``loads``
    ledger cannot stand in: it records totals per load, not per event and source.
    """
    e = inputs.events
    backend = inputs.backend
    ts = epoch_seconds(e.timestamp, backend)
    received = epoch_seconds(e.received_at, backend)
    start = now - profile_span(cfg)
    query = (
        # as of ``now``, as in the profile: a row received later was not there
        e.filter(ts < start, ts >= start - SILENT_LOOK_BACK, ~e.historical, received <= now)
        .group_by(event=event_key(e), source=e.source)
        .agg(last_live=received.max())
    )
    return query.to_pandas()


def dimension_counts(inputs: Inputs, cfg: ChecksConfig, now: float, dim: str,
                     since: float | None = None, within: str | None = None) -> pd.DataFrame:
    """Counts per event, hour and value of one key dimension (one JSON path per row).

    With ``within`` (another dimension), per pair of values instead: the mix check's view
    of app versions within each platform over the evaluated hours.
    """
    e = inputs.events
    backend = inputs.backend
    ts = epoch_seconds(e.timestamp, backend)
    # JSON is the expensive part of a scan: dimensions look back less far than events
    training = min(cfg.seconds("volume", "training"), cfg.seconds("volume", "dimension_training"))
    start = since if since is not None else now - training
    columns: dict[str, Any] = {"event": event_key(e), "hour": (ts // 3600).cast("int64"),
                               "value": dimension_expr(e, cfg.dimensions[dim], backend)}
    if within is not None:
        columns["within"] = dimension_expr(e, cfg.dimensions[within], backend)
    query = (
        e.filter(ts >= start, ts < now + 3600)
        .select(**columns)
        .group_by(list(columns))
        .agg(n=ibis._.count())
    )
    return query.to_pandas()


#: seconds an event's timestamp may be after its arrival (network and rounding) before it
#: counts as from the future
AHEAD_TOLERANCE = 300.0


def recent_live(inputs: Inputs, cfg: ChecksConfig, now: float, events: list[str]
                ) -> pd.DataFrame:
    """Per event and source over the lateness window (by ``received_at``), live rows only.

    Lateness (``received_at - timestamp``) quantiles and the share beyond each event's
    threshold, and the events ahead of their arrival (timestamps in the future); clock
    skew (``original_timestamp - timestamp``, the client clock's error);
    loader lag (``loaded_at - received_at``) over the last loader_lag window.
    """
    e = inputs.events
    backend = inputs.backend
    window = max(cfg.seconds("lateness", "window"), cfg.seconds("clock_skew", "window"),
                 cfg.seconds("loader_lag", "window"))
    received = epoch_seconds(e.received_at, backend)
    key = event_key(e)
    late_t = _cases(events, key, _overrides(cfg, "lateness", "threshold", events),
                    cfg.seconds("lateness", "threshold"))
    skew_t = _cases(events, key, _overrides(cfg, "clock_skew", "threshold", events),
                    cfg.seconds("clock_skew", "threshold"))
    base = e.filter(~e.historical, received >= now - window, received <= now).select(
        event=key,
        source=e.source,
        received=received,
        happened=epoch_seconds(e.timestamp, backend),
        lateness=received - epoch_seconds(e.timestamp, backend),
        skew=epoch_seconds(e.original_timestamp, backend) - epoch_seconds(e.timestamp, backend),
        lag=epoch_seconds(e.loaded_at, backend) - received,
        late_t=late_t,
        skew_t=skew_t,
    )
    lag_start = now - cfg.seconds("loader_lag", "window")
    late = base.lateness > base.late_t
    ahead = base.lateness < -AHEAD_TOLERANCE
    skewed = base.skew.abs() > base.skew_t
    query = base.group_by(["event", "source"]).agg(
        n=ibis._.count(),
        late=late.sum(),
        first_late=base.received.min(where=late),
        late_from=base.happened.min(where=late),
        late_to=base.happened.max(where=late),
        p50=base.lateness.quantile(0.5),
        p95=base.lateness.quantile(0.95),
        p99=base.lateness.quantile(0.99),
        ahead=ahead.sum(),
        first_ahead=base.received.min(where=ahead),
        ahead_from=base.happened.min(where=ahead),
        ahead_to=base.happened.max(where=ahead),
        max_ahead=(-base.lateness).max(),
        with_skew=base.skew.count(),
        skewed=skewed.sum(),
        first_skewed=base.received.min(where=skewed),
        max_skew=base.skew.abs().max(),
        lag_n=base.lag.count(where=base.received >= lag_start),
        lag_p95=base.lag.quantile(0.95, where=base.received >= lag_start),
    )
    return query.to_pandas()


def _overrides(cfg: ChecksConfig, check: str, key: str, events: list[str]) -> dict[str, float]:
    result = {}
    for name in events:
        override = cfg.events.get(name, {}).get(check)
        if isinstance(override, dict) and key in override:
            result[name] = cfg.seconds(check, key, name)
    return result


def received_counts(table: ir.Table, backend: str, since: float, until: float
                    ) -> pd.DataFrame:
    """Rows per event and source received from ``since`` to ``until`` (any table with
    envelope columns)."""
    received = epoch_seconds(table.received_at, backend)
    return (
        table.filter(received >= since, received <= until)
        .group_by(event=event_key(table), source=table.source)
        .agg(n=ibis._.count())
        .to_pandas()
    )


def quarantine_summary(inputs: Inputs, now: float, window: float, limit: int = 5000
                       ) -> pd.DataFrame:
    """Quarantined rows per event, source and distinct violation list, received in window."""
    q = inputs.quarantine
    if q is None:
        return pd.DataFrame(columns=["event", "source", "violations", "n", "first"])
    backend = inputs.backend
    received = epoch_seconds(q.received_at, backend)
    query = (
        q.filter(received >= now - window, received <= now)
        .group_by(event=event_key(q), source=q.source, violations=q.violations)
        .agg(n=ibis._.count(), first=received.min())
        .order_by(ibis.desc("n"))
        .limit(limit)
    )
    return query.to_pandas()


def loads_summary(inputs: Inputs, now: float, window: float) -> pd.DataFrame:
    """Totals of the loader's ledger over the window."""
    loads = inputs.loads
    if loads is None:
        return pd.DataFrame()
    at = epoch_seconds(loads.at, inputs.backend)
    query = loads.filter(at >= now - window, at <= now).aggregate(
        loads=ibis._.count(),
        rows_in=loads.rows_in.sum(),
        duplicates=loads.duplicates.sum(),
        first_dup=at.min(where=loads.duplicates > 0),
        last=at.max(),
    )
    return query.to_pandas()


def duplicates_by_source(inputs: Inputs, now: float, window: float) -> Counter[str]:
    """The rows the loader dropped as duplicates over the window, per source (empty for
    a ledger without ``duplicate_sources``)."""
    loads = inputs.loads
    if loads is None or "duplicate_sources" not in loads.columns:
        return Counter()
    at = epoch_seconds(loads.at, inputs.backend)
    frame = loads.filter(at >= now - window, at <= now, loads.duplicates > 0,
                         loads.duplicate_sources.notnull()).select("duplicate_sources")
    total: Counter[str] = Counter()
    for text in frame.to_pandas()["duplicate_sources"]:
        total.update(orjson.loads(text))
    return total


def natural_key_duplicates(inputs: Inputs, now: float, window: float,
                           keyed: dict[str, tuple[str, ...]], events: list[str]
                           ) -> pd.DataFrame:
    """Rows beyond the first per natural key, per event (``source`` null), received in
    the window; and, for the sources with repeats among their own rows, per source.

    The default key is (user, event, timestamp, properties): the same action recorded
    twice under different message ids. The timestamp is the one the client sent
    (``original_timestamp``): the stored ``timestamp`` is corrected by each message's own
    ``sentAt`` and arrival, so two sends of one action differ in it by the network's
    microseconds. ``keyed`` gives events their own key fields.
    """
    e = inputs.events
    backend = inputs.backend
    received = epoch_seconds(e.received_at, backend)
    recent = e.filter(received >= now - window, received <= now).mutate(
        _event=event_key(e), _user=user_key(e),
        _when=ibis.coalesce(e.original_timestamp, e.timestamp))
    frames = []
    plain = recent.filter(~one_of(recent._event, list(keyed))) if keyed else recent
    frames.append(_dupes(plain, ["_event", "_user", "_when", "properties"], {}))
    for name, fields in keyed.items():
        if name not in events:
            continue
        subset = recent.filter(recent._event == name)
        cols = {f"k{i}": field_value(subset, path, backend) for i, path in enumerate(fields)}
        frames.append(_dupes(subset, ["_event"], cols))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _dupes(table: ir.Table, keys: list[str], extra: dict[str, Any]) -> pd.DataFrame:
    if extra:
        # a row without its key (no order_id) cannot be a duplicate by that key
        table = table.mutate(**extra).filter(*[ibis._[name].notnull() for name in extra])
    by_source = table.group_by([*keys, *extra, "source"]).agg(n=ibis._.count())
    # each source's repeats within its own rows; across sources (a backfill re-sending
    # live events) a repeat counts in the event's total (source null) only
    grouped = by_source.group_by([*keys, *extra]).agg(n=by_source.n.sum())
    total = grouped.group_by(event=grouped._event).agg(
        source=ibis.null("string"), rows=grouped.n.sum(), extra=(grouped.n - 1).sum())
    own = by_source.group_by(event=by_source._event,
                             source=by_source.source.cast("string")).agg(
        rows=by_source.n.sum(), extra=(by_source.n - 1).sum())
    own = own.filter(own.extra > 0).cast(total.schema())
    return total.union(own).to_pandas()
