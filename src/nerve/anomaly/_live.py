"""Live anomalies: per-minute counts of every event and key dimension, checked as they come.

Counting happens on the loader side, never per request: ``LiveMonitor.poll`` reads the
rows the loader committed since its last pass (``loaded_at`` above its watermark), in one
grouped query, and adds them to per-minute counters it keeps in memory (a few hours). The
ingest hot path does not change at all.

``check`` judges, for every series, the sums of the last 1, 3 and 5 complete minutes
(a minute is complete once ``settle`` seconds have passed after it, for the loader's
lag) against the rate of the hour before them: a quasi-Poisson test (the dispersion
of that hour's minutes scales it) plus a minimum relative change. A 60% drop of a series
with 20 events a minute is flagged after 2-3 minutes. Alerts open once per series and
close when it recovers; they go to the quality webhook, ``GET /v1/anomalies/live`` and
the ``nerve_anomaly_alerts_total`` counter (``prometheus_text``).
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from nerve._cpu import yield_cpu
from nerve.anomaly._model import Settings, poisson_z
from nerve.anomaly._series import CHURNING, KEY_DIMENSIONS
from nerve.quality._engine import backend_name, epoch_seconds, event_key, field_value

__all__ = ["LiveAlert", "LiveMonitor", "prometheus_collector", "prometheus_text",
           "start_live"]

log = logging.getLogger("nerve.anomaly")

Key = tuple[str, str, str]  # event, dimension ("" overall), value


@dataclass(frozen=True, slots=True)
class LiveAlert:
    """An open (or closed) live alert on one series."""

    event: str
    dimension: str
    value: str
    direction: str
    #: the first minute of the window that tripped it
    start: datetime
    #: the last complete minute when it was raised
    detected: datetime
    window: int
    observed: float
    expected: float
    z: float

    @property
    def delay_minutes(self) -> int:
        return int((self.detected - self.start).total_seconds() // 60) + 1

    def message(self) -> str:
        where = f" on {self.dimension}={self.value}" if self.dimension else ""
        what = "dropped" if self.direction == "down" else "spiked"
        change = self.observed / self.expected - 1 if self.expected else float("inf")
        return (f"{self.event}{where} {what}: {self.observed:.0f} events in the last "
                f"{self.window} min against {self.expected:.1f} expected ({change:+.0%}, "
                f"z={self.z:.1f}), since {self.start:%H:%M} UTC.")

    def as_dict(self) -> dict[str, Any]:
        return {"event": self.event, "dimension": self.dimension or None,
                "value": self.value or None, "direction": self.direction,
                "start": self.start.isoformat(), "detected": self.detected.isoformat(),
                "window_minutes": self.window, "observed": self.observed,
                "expected": round(self.expected, 3), "z": round(self.z, 2),
                "message": self.message()}


class LiveMonitor:
    """Per-minute counters and the continuous check (thread-safe)."""

    def __init__(self, *, dims: Mapping[str, Sequence[str]] | None = None,
                 windows: tuple[int, ...] = (1, 3, 5), baseline_minutes: int = 60,
                 keep_minutes: int = 180, settings: Settings | None = None,
                 settle: float = 60.0) -> None:
        self.dims = dict(KEY_DIMENSIONS if dims is None else dims)
        self.windows = windows
        self.baseline_minutes = baseline_minutes
        self.keep_minutes = keep_minutes
        # 5 spreads: every series is judged over 3 windows every pass, all day long
        self.settings = settings or Settings(sensitivity=5.0, min_volume=10, min_change=0.3)
        self.settle = settle
        self.counts: dict[Key, dict[int, float]] = defaultdict(dict)
        self.open: dict[Key, LiveAlert] = {}
        #: judged anomalous at the last pass only: opened if the next pass agrees. A pass
        #: amid a load's commits (a burst of late events, a loader catching up) sees part
        #: of the recent minutes, and every series seemed to drop at once
        self.pending: dict[Key, LiveAlert] = {}
        self.history: list[LiveAlert] = []
        self.alerts_total: dict[Key, int] = defaultdict(int)
        self.watermark: datetime | None = None
        self.polls = 0
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ counting

    def observe(self, cells: pd.DataFrame) -> None:
        """Add counts: columns ``event``, ``minute`` (minutes since the epoch), ``n`` and
        one column per dimension (the grouped rows of one loader pass)."""
        if cells.empty:
            return
        with self._lock:
            for key_cols, dim in [(["event", "minute"], ""),
                                  *[(["event", d, "minute"], d) for d in self.dims
                                    if d in cells.columns]]:
                sub = cells.dropna(subset=key_cols).groupby(key_cols)["n"].sum()
                for index, n in sub.items():
                    if dim:
                        event, value, minute = index
                    else:
                        (event, minute), value = index, ""
                    series = self.counts[(str(event), dim, str(value))]
                    series[int(minute)] = series.get(int(minute), 0.0) + float(n)
            self._trim()

    def _trim(self) -> None:
        newest = max((max(s) for s in self.counts.values() if s), default=0)
        oldest = newest - self.keep_minutes
        for series in self.counts.values():
            for minute in [m for m in series if m < oldest]:
                del series[minute]

    def poll(self, events: ir.Table, now: datetime | None = None) -> int:
        """Count the rows loaded since the last poll (by ``loaded_at``); returns how many."""
        now = now or datetime.now(UTC)
        backend = backend_name(events)
        loaded = events.loaded_at
        rows = events.filter(loaded <= now)
        if self.watermark is not None:
            rows = rows.filter(loaded > self.watermark)
        else:  # first pass: the last keep_minutes of events only
            start = now.timestamp() - self.keep_minutes * 60
            rows = rows.filter(epoch_seconds(rows.timestamp, backend) >= start)
        columns: dict[str, Any] = {
            "event": event_key(rows),
            "minute": (epoch_seconds(rows.timestamp, backend) // 60).cast("int64"),
        }
        for name, paths in self.dims.items():
            values = [field_value(rows, p, backend) for p in paths]
            columns[name] = values[0] if len(values) == 1 else ibis.coalesce(*values)
        cells = (rows.select(**columns, _loaded=loaded).group_by(list(columns))
                 .agg(n=ibis._.count(), last=ibis._._loaded.max()).to_pandas())
        self.observe(cells)
        if not cells.empty:
            last = pd.Timestamp(cells["last"].max())
            self.watermark = (last.tz_localize(UTC) if last.tzinfo is None else last
                              ).to_pydatetime()
        elif self.watermark is None:
            self.watermark = now
        self.polls += 1
        return int(cells["n"].sum()) if not cells.empty else 0

    # ------------------------------------------------------------------ checking

    def check(self, now: datetime | None = None) -> list[LiveAlert]:
        """Judge every series up to the last settled minute; returns the new alerts: those
        judged anomalous at this pass and the one before it."""
        now = now or datetime.now(UTC)
        last = int((now.timestamp() - self.settle) // 60) - 1
        fresh: list[LiveAlert] = []
        s = self.settings
        with self._lock:
            for key, series in self.counts.items():
                alert = self._judge(key, series, last, s)
                if alert is None:
                    self.open.pop(key, None)  # recovered (or never wrong)
                    self.pending.pop(key, None)
                    continue
                if key not in self.open:
                    if key not in self.pending:
                        self.pending[key] = alert
                        continue
                    alert = self.pending.pop(key)
                    self.open[key] = alert
                    self.alerts_total[key] += 1
                    self.history.append(alert)
                    fresh.append(alert)
            del self.history[:-500]
        return fresh

    def _judge(self, key: Key, series: dict[int, float], last: int, s: Settings
               ) -> LiveAlert | None:
        longest = max(self.windows)
        base_to = last - longest
        previous = self.open.get(key)
        if previous is not None:  # while it lasts, an incident is no baseline for itself
            base_to = min(base_to, int(previous.start.timestamp() // 60) - 1)
        base_from = base_to - self.baseline_minutes + 1
        if not series or min(series) > base_from:
            return None  # not an hour of history yet
        base = np.array([series.get(m, 0.0) for m in range(base_from, base_to + 1)])
        rate = float(base.mean())
        if rate <= 0:
            return None
        phi = max(1.0, float(base.var()) / rate)
        for window in self.windows:
            obs = float(sum(series.get(m, 0.0) for m in range(last - window + 1, last + 1)))
            exp = rate * window
            if max(obs, exp) < s.min_volume:
                continue
            z = float(poisson_z(np.array([obs / phi]), np.array([exp / phi]))[0])
            change = (obs + 1) / (exp + 1) - 1
            down = (z < -s.sensitivity and change < -s.min_change and s.direction != "up"
                    and key[1] not in CHURNING)
            up = z > s.sensitivity and change > s.min_change and s.direction != "down"
            if down or up:
                start = last - window + 1
                if previous is not None:
                    return previous
                return LiveAlert(event=key[0], dimension=key[1], value=key[2],
                                 direction="down" if down else "up",
                                 start=_minute(start), detected=_minute(last), window=window,
                                 observed=obs, expected=exp, z=z)
        return None

    def snapshot(self) -> dict[str, Any]:
        """What ``GET /v1/anomalies/live`` answers."""
        with self._lock:
            return {"open": [a.as_dict() for a in self.open.values()],
                    "recent": [a.as_dict() for a in self.history[-50:]],
                    "series": len(self.counts), "polls": self.polls,
                    "watermark": self.watermark.isoformat() if self.watermark else None,
                    "alerts_total": sum(self.alerts_total.values())}


def _minute(minute: int) -> datetime:
    return datetime.fromtimestamp(minute * 60, UTC)


def prometheus_text(monitor: LiveMonitor | None) -> str:
    """Prometheus exposition text: alerts raised per series, open alerts, series counted."""
    lines = ["# HELP nerve_anomaly_alerts_total Live anomaly alerts raised, per series.",
             "# TYPE nerve_anomaly_alerts_total counter"]
    if monitor is not None:
        for (event, dim, value), n in sorted(monitor.alerts_total.items()):
            lines.append(f'nerve_anomaly_alerts_total{{event="{_esc(event)}",'
                         f'dimension="{_esc(dim)}",value="{_esc(value)}"}} {n}')
    lines += ["# HELP nerve_anomaly_open_alerts Live anomaly alerts open now.",
              "# TYPE nerve_anomaly_open_alerts gauge",
              f"nerve_anomaly_open_alerts {len(monitor.open) if monitor else 0}",
              "# HELP nerve_anomaly_live_series Series counted per minute.",
              "# TYPE nerve_anomaly_live_series gauge",
              f"nerve_anomaly_live_series {len(monitor.counts) if monitor else 0}"]
    return "\n".join(lines) + "\n"


def prometheus_collector(state: Any) -> Any:
    """A ``prometheus_client`` collector for the server's ``/metrics``: register it with
    ``REGISTRY.register(prometheus_collector(state))``; it reads ``state.live_monitor``
    at each scrape (nothing when the monitor has not started)."""
    from prometheus_client.core import (  # noqa: PLC0415 - only where /metrics is served
        CounterMetricFamily,
        GaugeMetricFamily,
    )

    class _Collector:
        def collect(self) -> Any:
            monitor = getattr(state, "live_monitor", None)
            alerts = CounterMetricFamily("nerve_anomaly_alerts",
                                         "Live anomaly alerts raised, per series.",
                                         labels=["event", "dimension", "value"])
            opened = GaugeMetricFamily("nerve_anomaly_open_alerts",
                                       "Live anomaly alerts open now.")
            if isinstance(monitor, LiveMonitor):
                for (event, dim, value), n in sorted(monitor.alerts_total.items()):
                    alerts.add_metric([event, dim, value], n)
                opened.add_metric([], len(monitor.open))
            else:
                opened.add_metric([], 0)
            yield alerts
            yield opened

    return _Collector()


def _esc(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class _Runner:
    def __init__(self, state: Any, monitor: LiveMonitor, every: float, idle: bool) -> None:
        self.state, self.monitor, self.every, self.idle = state, monitor, every, idle
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="nerve-live", daemon=True)

    def _loop(self) -> None:
        from nerve.quality._alerts import send_alert  # noqa: PLC0415
        from nerve.quality._config import load_config  # noqa: PLC0415
        from nerve.quality._result import CheckResult, Status  # noqa: PLC0415

        if self.idle:
            yield_cpu()
        while not self.stop_event.wait(self.every):
            try:
                self.monitor.poll(self.state.warehouse.ibis().table("events"))
                fresh = self.monitor.check()
                if not fresh:
                    continue
                ws = self.state.workspace
                config = load_config(ws.root, ws.config.raw)
                if config.webhook_url:
                    send_alert(config.webhook_url, [CheckResult(
                        check="live_volume", status=Status.fail, message=a.message(),
                        event=a.event, dimensions={a.dimension: a.value} if a.dimension
                        else {}, observed=a.observed, since=a.start) for a in fresh],
                        project=ws.config.name)
            except Exception:
                log.exception("live anomaly pass failed")

    def stop(self, timeout: float = 10.0) -> None:
        self.stop_event.set()
        self.thread.join(timeout)


def start_live(state: Any, every: float = 15.0, *, idle: bool = False) -> LiveMonitor:
    """Start the live monitor for a running server (idempotent); ``state.live_monitor``.

    Polls the warehouse every ``every`` seconds from a daemon thread; ``idle`` runs it at
    idle priority (``nerve._cpu.yield_cpu``), for a server whose workers take the events.
    """
    existing = getattr(state, "live_monitor", None)
    if isinstance(existing, LiveMonitor):
        return existing
    monitor = LiveMonitor()
    runner = _Runner(state, monitor, every, idle)
    state.__dict__["live_monitor"] = monitor
    state.__dict__["live_runner"] = runner
    runner.thread.start()
    return monitor
