"""Data quality: checks that find missing, duplicated, late, stale and anomalous events.

>>> from nerve.quality import run_checks, Inputs  # doctest: +SKIP
>>> results = run_checks(Inputs(events=con.table("events")), catalog)  # doctest: +SKIP

Every check works with no configuration (docs/quality.md); ``checks.yaml`` tunes them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nerve._lazy import names_from

if TYPE_CHECKING:
    from nerve.quality._alerts import alert_text, send_alert
    from nerve.quality._config import CHECKS, DEFAULTS, ChecksConfig, Sequence, load_config
    from nerve.quality._engine import Inputs
    from nerve.quality._history import HISTORY_TABLE, latest_results, record_results
    from nerve.quality._junit import junit_xml
    from nerve.quality._result import CheckResult, Status, worst
    from nerve.quality._runner import refuse_idle_selection, run_checks
    from nerve.quality._scheduler import Scheduler, inputs_for, run_and_record, start_scheduler
    from nerve.quality._withheld import withheld_figures

__all__ = [
    "CHECKS",
    "DEFAULTS",
    "HISTORY_TABLE",
    "CheckResult",
    "ChecksConfig",
    "Inputs",
    "Scheduler",
    "Sequence",
    "Status",
    "alert_text",
    "inputs_for",
    "junit_xml",
    "latest_results",
    "load_config",
    "record_results",
    "refuse_idle_selection",
    "run_and_record",
    "run_checks",
    "send_alert",
    "start_scheduler",
    "withheld_figures",
    "worst",
]

__getattr__ = names_from(__name__, {
    "_alerts": ("alert_text", "send_alert"),
    "_config": ("CHECKS", "DEFAULTS", "ChecksConfig", "Sequence", "load_config"),
    "_engine": ("Inputs",),
    "_history": ("HISTORY_TABLE", "latest_results", "record_results"),
    "_junit": ("junit_xml",),
    "_result": ("CheckResult", "Status", "worst"),
    "_runner": ("refuse_idle_selection", "run_checks"),
    "_scheduler": ("Scheduler", "inputs_for", "run_and_record", "start_scheduler"),
    "_withheld": ("withheld_figures",),
})
