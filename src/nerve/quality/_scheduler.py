"""Checks inside ``nerve serve``: run on a schedule, record history, alert a webhook.

The server calls ``start_scheduler(state)`` once it serves (and ``stop()`` on shutdown);
``state`` is the server's ``NerveState`` (workspace, catalog, warehouse).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from nerve._cpu import yield_cpu
from nerve.catalog import Catalog
from nerve.quality._alerts import send_alert
from nerve.quality._config import CHECKS, ChecksConfig, load_config
from nerve.quality._engine import Inputs, has_table
from nerve.quality._history import PARTIAL, record_results
from nerve.quality._result import CheckResult, Status
from nerve.quality._runner import refuse_idle_selection, run_checks

__all__ = ["Scheduler", "inputs_for", "run_and_record", "start_scheduler"]

log = logging.getLogger("nerve.quality")


def inputs_for(con: Any) -> Inputs:
    """The check inputs from an Ibis backend holding nerve's warehouse tables."""
    return Inputs(
        events=con.table("events"),
        quarantine=con.table("quarantine") if has_table(con, "quarantine") else None,
        loads=con.table("loads") if has_table(con, "loads") else None,
    )


def _backend(warehouse: Any) -> Any:
    """The Ibis backend of a ``nerve.warehouse.Warehouse`` (or an Ibis backend itself)."""
    ibis_of = getattr(warehouse, "ibis", None)
    return ibis_of() if callable(ibis_of) else warehouse


def run_and_record(warehouse: Any, workspace: Any, catalog: Catalog | None, *,
                   select: Sequence[str] = (), now: datetime | None = None,
                   record: bool = True, refuse_idle: bool = False
                   ) -> tuple[list[CheckResult], ChecksConfig]:
    """Run the checks on the server's warehouse and append the results to history.

    A run as of another time (``now`` given) is answered but not recorded: the latest
    recorded run is what ``data_health``, ``nerve ask``, readiness and the console
    report as the data's health now, and a re-check of last week is not that. Nor is a
    run of some events' results (``select`` naming events). A run of some checks is
    recorded as partial: it updates those checks' part of the health now.
    ``refuse_idle``: a selected check that has nothing to run is a ``UserError``
    (``refuse_idle_selection``), as a caller naming it asked for a result.
    """
    config = load_config(workspace.root, workspace.config.raw, catalog)
    if refuse_idle:
        refuse_idle_selection(config, select)
    con = _backend(warehouse)
    results = run_checks(inputs_for(con), catalog, config, now=now, select=select)
    some_events = any(name not in CHECKS for name in select)
    if record and now is None and not some_events:
        record_results(con, results,
                       run_id=f"{PARTIAL}{uuid.uuid4().hex}" if select else None)
    return results, config


class Scheduler:
    """A daemon thread that runs every check each ``every`` seconds (from checks.yaml)."""

    def __init__(self, state: Any, every: float | None = None, *, idle: bool = False) -> None:
        self.state = state
        self.every = every
        #: run at idle priority (``nerve._cpu.yield_cpu``): the server's workers come first
        self.idle = idle
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: the status last alerted per result name, so a problem alerts once, not every run
        self._alerted: dict[str, Status] = {}
        self.runs = 0
        self.last: list[CheckResult] = []

    def start(self) -> Scheduler:
        self._thread = threading.Thread(target=self._loop, name="nerve-checks", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run_once(self) -> list[CheckResult]:
        """One scheduled run: check, record, alert on what is newly wrong."""
        state = self.state
        results, config = run_and_record(state.warehouse, state.workspace, state.catalog)
        self.runs += 1
        self.last = results
        if config.webhook_url:
            fresh = []
            for r in results:
                if str(r.status) in config.webhook_on:
                    if self._alerted.get(r.name) is not r.status:
                        fresh.append(r)
                    self._alerted[r.name] = r.status
                else:
                    self._alerted.pop(r.name, None)
            if fresh:
                send_alert(config.webhook_url, fresh, project=state.workspace.config.name)
        return results

    def _interval(self) -> float:
        if self.every is not None:
            return self.every
        try:
            return load_config(self.state.workspace.root, self.state.workspace.config.raw).every
        except Exception:  # noqa: BLE001 - a broken checks.yaml is reported by the run
            return 300.0

    def _loop(self) -> None:
        if self.idle:
            yield_cpu()
        while not self._stop.wait(self._interval()):
            try:
                self.run_once()
            except Exception:
                log.exception("scheduled checks failed")


def start_scheduler(state: Any, every: float | None = None, *,
                    idle: bool = False) -> Scheduler | None:
    """Start the check scheduler for a running server; None when ``every`` is 0 (disabled).

    The first run happens one interval after start, so a restart does not re-alert at once.
    ``idle`` runs it at idle priority, for a server whose workers take the events.
    """
    interval = every
    if interval is None:
        interval = load_config(state.workspace.root, state.workspace.config.raw).every
    if interval <= 0:
        return None
    scheduler = Scheduler(state, every, idle=idle)
    state_scheduler = getattr(state, "__dict__", None)
    if state_scheduler is not None:
        state_scheduler["checks_scheduler"] = scheduler  # for the API's status endpoint
    return scheduler.start()
