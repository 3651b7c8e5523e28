"""Result shape, history table, JUnit output and the Slack-compatible webhook (a real HTTP
receiver on loopback)."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from typer.testing import CliRunner

from nerve.cli import ExitCode, app
from nerve.quality import (
    CheckResult,
    Status,
    alert_text,
    junit_xml,
    latest_results,
    record_results,
    send_alert,
    worst,
)
from nerve.quality._history import PARTIAL
from nerve.quality._result import fmt_duration, fmt_pct
from nerve.warehouse import Warehouse
from nerve.workspace import Workspace

QUALITY_DOC = Path(__file__).parents[2] / "docs" / "quality.md"

SINCE = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
RESULTS = [
    CheckResult("volume", Status.fail, "add_to_cart on platform=Android dropped",
                event="add_to_cart", dimensions={"platform": "Android"}, observed=12.0,
                expected={"min": 40.0, "max": 90.0}, unit="events/h", since=SINCE,
                details={"hours": 6}),
    CheckResult("schema", Status.warn, "2% failed", event="search",
                dimensions={"source": "web"}, observed=0.02,
                expected={"min": 0.0, "max": 0.01}, unit="share"),
    CheckResult("drift", Status.passed, "all known"),
]


def test_json_shape_round_trips() -> None:
    data = RESULTS[0].as_dict()
    assert {"check", "status", "event", "dimensions", "observed", "expected", "message",
            "since"} <= set(data)
    assert data["status"] == "fail"
    assert data["since"] == "2026-11-20T09:00:00+00:00"
    assert data["name"] == "volume:add_to_cart:platform=Android"
    assert CheckResult.from_dict(data) == RESULTS[0]
    assert worst([r.status for r in RESULTS]) is Status.fail
    assert worst([]) is Status.passed


def test_formatters() -> None:
    assert fmt_pct(0.1) == "10%"
    assert fmt_pct(0.025) == "2.5%"
    assert fmt_pct(0.01) == "1%"
    assert fmt_pct(0.0004) == "0.04%"
    assert fmt_duration(45) == "45 s"
    assert fmt_duration(600) == "10 min"
    assert fmt_duration(3600) == "1 h"
    assert fmt_duration(5400) == "1.5 h"
    assert fmt_duration(3 * 86400) == "3 days"


def test_history_on_every_engine(engine: Any) -> None:
    con = engine.con
    con.drop_table("check_results", force=True)
    record_results(con, RESULTS, at=datetime(2026, 11, 20, 10, tzinfo=UTC))
    second = [RESULTS[0]]
    record_results(con, second, at=datetime(2026, 11, 20, 11, tzinfo=UTC))
    assert con.table("check_results").count().execute() == 4
    latest = latest_results(con)
    assert latest == second
    con.drop_table("check_results")


def test_a_run_of_some_checks_updates_only_their_part_of_the_health(engine: Any) -> None:
    """``nerve check --select schema`` while the server runs: recorded, but the latest
    health keeps the volume failure of the last full run instead of saying all is well."""
    con = engine.con
    con.drop_table("check_results", force=True)
    record_results(con, RESULTS, at=datetime(2026, 11, 20, 10, tzinfo=UTC))
    schema_ok = CheckResult("schema", Status.passed, "all matched", event="search",
                            dimensions={"source": "web"}, observed=0.0,
                            expected={"min": 0.0, "max": 0.01}, unit="share")
    record_results(con, [schema_ok], at=datetime(2026, 11, 20, 11, tzinfo=UTC),
                   run_id=PARTIAL + "1")
    def brief(results: list[CheckResult]) -> list[tuple[str, str, str]]:
        return [(r.name, str(r.status), r.message) for r in results]

    # by check and name; drift's empty ``expected`` comes back with null bounds
    assert brief(latest_results(con)) == brief([RESULTS[2], schema_ok, RESULTS[0]])
    assert worst([r.status for r in latest_results(con)]) is Status.fail
    # a later full run is the health again, whatever partial runs came before
    record_results(con, [RESULTS[2]], at=datetime(2026, 11, 20, 12, tzinfo=UTC))
    assert brief(latest_results(con)) == brief([RESULTS[2]])
    # partial runs only (the schedule off): what they ran
    con.drop_table("check_results")
    record_results(con, [schema_ok], at=datetime(2026, 11, 20, 11, tzinfo=UTC),
                   run_id=PARTIAL + "2")
    assert latest_results(con) == [schema_ok]
    con.drop_table("check_results")


def test_junit() -> None:
    """Failures fail; a warning passes with its sentence in system-out, as catalog lint's
    warnings do, so a CI report is not red for what exit code 3 lets through."""
    root = ET.fromstring(junit_xml(RESULTS))
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("3", "1", "0")
    suite = root.find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures")) == ("3", "1")
    cases = suite.findall("testcase")
    assert cases[0].get("name") == "volume:add_to_cart:platform=Android"
    failure = cases[0].find("failure")
    assert failure is not None
    assert failure.get("type") == "fail"
    assert [c.tag for c in cases[1]] == ["system-out"]
    assert cases[1].findtext("system-out") == "warn: 2% failed"
    assert [c.tag for c in cases[2]] == ["system-out"]


def _documented_history_query() -> str:
    """The ``nerve sql "..."`` example over check_results in docs/quality.md, as the shell
    would pass it."""
    commands = re.findall(r'^nerve sql ".*?"$', QUALITY_DOC.read_text(), re.M | re.S)
    found = [c for c in commands if "check_results" in c]
    assert len(found) == 1, commands
    return shlex.split(found[0])[2]


def test_the_documented_history_query_runs(make_workspace: Callable[..., Workspace]) -> None:
    """``at`` is reserved in DuckDB: the example must quote it (it failed to parse)."""
    ws = make_workspace()
    with Warehouse.for_workspace(ws) as wh:
        record_results(wh.ibis(), RESULTS, at=datetime(2026, 11, 20, 10, tzinfo=UTC))
    query = _documented_history_query()
    result = CliRunner().invoke(app, ["--workspace", str(ws.root), "sql", query,
                                      "--format", "json"])
    assert result.exit_code == ExitCode.OK, result.output
    rows = json.loads(result.stdout)
    # one run: both problems share "at", so the query leaves their order open
    assert sorted((r["status"], r["message"]) for r in rows) == [
        ("fail", RESULTS[0].message), ("warn", RESULTS[1].message)]
    assert rows[0]["at"].startswith("2026-11-20T10:00:00")


def test_webhook_posts_a_slack_payload(receiver: tuple[str, list[dict[str, Any]]]) -> None:
    url, received = receiver
    assert send_alert(url, RESULTS[:2], project="shop")
    assert len(received) == 1
    assert received[0]["type"] == "application/json"
    text = received[0]["body"]["text"]
    assert set(received[0]["body"]) == {"text"}
    assert text.startswith("*shop: data quality* (1 fail, 1 warn)")
    assert "add_to_cart on platform=Android dropped" in text
    assert text.index("[volume]") < text.index("[schema]")  # worst first


def test_webhook_failure_is_reported_not_raised() -> None:
    from tests.conftest import free_port

    assert send_alert(f"http://127.0.0.1:{free_port()}/hook", RESULTS) is False


def test_alert_text_is_bounded() -> None:
    many = [RESULTS[1]] * 30
    text = alert_text(many, limit=5)
    assert text.count("[schema]") == 5
    assert "and 25 more" in text


def test_exported_names() -> None:
    import nerve.quality

    assert sorted(nerve.quality.__all__) == [
        "CHECKS", "CheckResult", "ChecksConfig", "DEFAULTS", "HISTORY_TABLE", "Inputs",
        "Scheduler", "Sequence", "Status", "alert_text", "inputs_for", "junit_xml",
        "latest_results", "load_config", "record_results", "refuse_idle_selection",
        "run_and_record", "run_checks", "send_alert", "start_scheduler", "withheld_figures",
        "worst",
    ]
    for name in nerve.quality.__all__:
        assert getattr(nerve.quality, name) is not None
