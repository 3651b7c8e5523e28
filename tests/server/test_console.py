"""The web console (``GET /ui``) in headless Chromium against a real ``nerve serve``, and
the status it reads (``GET /v1/status``)."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any

import orjson
import pytest
from serverkit import EVENTS, HTTP, basic, order, write_key
from tests.conftest import node_script
from typer.testing import CliRunner

from nerve.cli import app
from nerve.cli._common import console
from nerve.workspace import Workspace

READER = "a-reader-token-of-thirty-two-chars!"
#: a client-made event name that would run script if the page used it as HTML
HOSTILE = '<img src=x onerror="document.title=1">'


@pytest.fixture
def console_shop(make_workspace: Callable[..., Workspace],
                 monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.setenv("NERVE_TEST_TOKEN_READER", READER)
    viewed = ("name: experiment_viewed\nproperties:\n  experiment_id: {type: string}\n"
              "  variant_id: {type: string}\n")
    ws = make_workspace({**EVENTS, "experiment_viewed.yaml": viewed},
                        extra_toml='[[readers]]\nname = "ana"\nrole = "reader"\n'
                                   'token_env = "NERVE_TEST_TOKEN_READER"\n')
    (ws.root / "experiments").mkdir()
    (ws.root / "experiments" / "one_page.yaml").write_text(
        "key: one_page\nname: One-page checkout\nvariants: [a, b]\nprimary: orders\n")
    (ws.metrics_dir / "shop.yaml").write_text(
        "metrics:\n  orders:\n    label: Orders\n    measure: {event: order_completed}\n")
    return ws


def admin_token(ws: Workspace) -> str:
    token: str = orjson.loads((ws.data_dir / "server.json").read_bytes())["admin_token"]
    return token


def fill(server: Any, ws: Workspace) -> None:
    """7 valid orders from 5 users on 2026-11-28, 2 with a wrong type, 1 unknown event,
    5 exposures to an experiment; then wait for the loader and record a run of the
    checks."""
    batch = [order(i, "ok") for i in range(7)]
    batch += [order(i, "bad", properties={"order_id": "x", "revenue": "lots"})
              for i in range(2)]
    batch.append({"type": "track", "event": HOSTILE, "userId": "u1", "messageId": "odd"})
    batch += [{"type": "track", "event": "experiment_viewed", "userId": f"u{i}",
               "messageId": f"seen-{i}", "timestamp": "2026-11-28T09:00:00Z",
               "properties": {"experiment_id": "one_page", "variant_id": "ab"[i % 2]}}
              for i in range(5)]
    assert HTTP.post(server.url + "/v1/batch", json={"batch": batch},
                     headers=basic(write_key(ws))).status_code == 200
    auth = {"authorization": f"Bearer {admin_token(ws)}"}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = HTTP.get(server.url + "/v1/status", headers=auth).json()
        if status["warehouse"]["events"] == 12 and status["warehouse"]["quarantine"] == 3:
            break
        time.sleep(0.2)
    # the first run of the checks loads their engine (SciPy, pandas): on a loaded CI
    # machine that takes longer than httpx's default 5 s
    assert HTTP.post(server.url + "/v1/admin/checks/run", headers=auth,
                     json={}, timeout=60).status_code == 200


def test_status_sums_up_the_pipeline_for_a_token_holder(
        console_shop: Workspace, serve: Callable[..., Any]) -> None:
    server = serve(console_shop)
    refused = HTTP.get(server.url + "/v1/status")
    assert refused.status_code == 401
    # a Basic challenge would stop a browser's fetch on a password dialog
    assert refused.headers["www-authenticate"] == 'Bearer realm="nerve"'
    fill(server, console_shop)
    status = HTTP.get(server.url + "/v1/status",
                      headers={"authorization": f"Bearer {READER}"}).json()
    assert status["project"] == "test"
    assert status["collector"]["accepted"] == 12
    assert status["collector"]["quarantined"] == 3
    assert status["collector"]["requests"] == {"200": 1}
    assert status["log"]["kind"] == "local"
    assert status["loader"]["loaded"] == 12
    assert status["loader"]["failing"] is False
    assert status["warehouse"]["events"] == 12
    assert status["warehouse"]["quarantine"] == 3
    assert status["warehouse"]["last_received_at"] is not None


def test_the_latest_checks_say_when_they_ran(
        console_shop: Workspace, serve: Callable[..., Any]) -> None:
    """The console showed the latest checks' verdict with no word of when they ran."""
    server = serve(console_shop)
    auth = {"authorization": f"Bearer {READER}"}
    before = HTTP.get(server.url + "/v1/admin/checks/latest", headers=auth).json()
    assert before == {"status": "pass", "results": [], "at": None}
    started = datetime.now(UTC)
    fill(server, console_shop)
    latest = HTTP.get(server.url + "/v1/admin/checks/latest", headers=auth).json()
    assert latest["results"]
    assert started <= datetime.fromisoformat(latest["at"]) <= datetime.now(UTC)


def test_the_page_holds_no_data_and_loads_nothing_from_elsewhere(
        console_shop: Workspace, serve: Callable[..., Any]) -> None:
    server = serve(console_shop, "--workers", "2")  # a worker forwards it to the main one
    page = HTTP.get(server.url + "/ui")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert b"<link" not in page.content  # no stylesheet, script or font from elsewhere
    assert b'src="' not in page.content


class _Dom(HTMLParser):
    """The text a user sees (no style or script), and every element's tag."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.tags: list[str] = []
        self.body: dict[str, str | None] = {}
        self._skip = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self._skip = tag in ("style", "script")
        if tag == "body":
            self.body = dict(attrs)

    def handle_endtag(self, tag: str) -> None:
        self._skip = False

    def handle_data(self, data: str) -> None:
        if data.strip() and not self._skip:
            self.text.append(" ".join(data.split()))


def chromium_dom(url: str) -> _Dom:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        browser = shutil.which(name)
        if browser:
            break
    else:
        pytest.skip("headless Chromium is not installed (apt-get install chromium)")
    done = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                           "--virtual-time-budget=20000", "--dump-dom", url],
                          capture_output=True, text=True, timeout=90, check=True)
    dom = _Dom()
    dom.feed(done.stdout)
    return dom


@pytest.mark.timeout(180)
@pytest.mark.parametrize("who", ["admin", "reader"])
def test_the_console_shows_the_pipeline_checks_metrics_events_and_quarantine(
        console_shop: Workspace, serve: Callable[..., Any], who: str) -> None:
    server = serve(console_shop)
    fill(server, console_shop)
    token = admin_token(console_shop) if who == "admin" else READER
    dom = chromium_dom(f"{server.url}/ui#token={token}")
    assert dom.body.get("data-loaded") == "true"  # every part answered
    text = " | ".join(dom.text)
    assert "12 | events in the warehouse" in text
    assert "3 | quarantined rows" in text
    assert "Data checks" in text
    assert "checks passed" in text
    # how old the health is: the checks ran in fill(), seconds ago (no time was shown)
    assert re.search(r"Data checks \| (pass|warn|fail) \| run \| \d+ s ago", text), text
    assert "One-page checkout | running | keep running | a: 3 · b: 2" in text
    assert "No open alert." in text
    assert "series, minute by minute" in text
    assert "Orders" in text  # the metric's label in the picker
    assert "on " + time.strftime("%Y-%m-%d", time.gmtime()) in text  # its latest day
    assert "order_completed | 7 | 5" in text  # events, people (u0 to u4)
    assert "2026-11-28: 7" in text  # the metric's bar of the orders' day
    assert 'type: order_completed.revenue: "lots" is not of type "number"' in text
    # the client-made name is shown as text; no element came of it
    assert HOSTILE in text
    assert "img" not in dom.tags
    assert "Token" in text  # (the sign-in form is in the page, hidden)
    if who == "reader":  # a reader's audit trail names her
        audit = "\n".join(p.read_text() for p in (console_shop.data_dir / "audit").glob("*"))
        assert '"who":"ana"' in audit.replace(" ", "")


def test_a_wrong_token_brings_back_the_sign_in_form(
        console_shop: Workspace, serve: Callable[..., Any]) -> None:
    server = serve(console_shop)
    dom = chromium_dom(f"{server.url}/ui#token=not-a-token-of-anyone")
    text = " | ".join(dom.text)
    # a wrong token (a stale admin token, after a restart) is told apart from none
    assert "the token is neither the admin's nor a reader's: the admin token is made anew " \
           "at each start of nerve serve" in text
    assert dom.body.get("data-loaded") == "true"
    none = HTTP.get(server.url + "/v1/status").json()["message"]
    assert none.startswith("this endpoint needs `Authorization: Bearer <token>`")


def drive_console(url: str, width: int, metrics: list[str]) -> dict[str, Any]:
    """What tests/node/drive_console.mjs saw of the console in headless Chromium."""
    seen: dict[str, Any] = node_script("drive_console.mjs", url, str(width), ",".join(metrics))
    return seen


def console_layout(url: str, width: int) -> dict[str, Any]:
    """What tests/node/console_layout.mjs saw of the console in headless Chromium."""
    seen: dict[str, Any] = node_script("console_layout.mjs", url, str(width))
    return seen


def two_orders_yesterday(shop: Workspace, url: str) -> datetime:
    """Send two orders (o3, o4: revenue 3 and 4) at noon UTC yesterday, and wait until
    they are loaded; that noon."""
    day = (datetime.now(UTC) - timedelta(days=1)).replace(hour=12, minute=0, second=0,
                                                         microsecond=0)
    batch = [order(i, "y", timestamp=day.isoformat().replace("+00:00", "Z")) for i in (3, 4)]
    assert HTTP.post(url + "/v1/batch", json={"batch": batch},
                     headers=basic(write_key(shop))).status_code == 200
    auth = {"authorization": f"Bearer {admin_token(shop)}"}
    deadline = time.monotonic() + 30
    while HTTP.get(url + "/v1/status", headers=auth).json()["warehouse"]["events"] < 2:
        assert time.monotonic() < deadline, "the loader did not load 2 events in 30 s"
        time.sleep(0.2)
    return day



@pytest.mark.node
@pytest.mark.timeout(180)
def test_the_console_shows_metrics_as_formatted_fits_a_phone_and_says_when_the_server_is_gone(
        console_shop: Workspace, serve: Callable[..., Any]) -> None:
    """At 375 px the page was 570 px wide (a column was at least 520 px); the chart showed
    a percent metric as 0.5 and a day without a value as 0; a stopped server was "Failed
    to fetch"; the token field had no label."""
    (console_shop.metrics_dir / "money.yaml").write_text(
        "metrics:\n"
        "  revenue:\n    format: currency\n    currency: EUR\n"
        "    measure: {agg: sum, event: order_completed, of: revenue}\n"
        "  big_share:\n    type: ratio\n    format: percent\n"
        "    numerator: {agg: count, event: order_completed, filter: revenue > 3}\n"
        "    denominator: orders\n")
    server = serve(console_shop)
    day = two_orders_yesterday(console_shop, server.url)

    seen = drive_console(f"{server.url}/ui#token={READER}", 375, ["big_share", "revenue"])
    assert seen["errors"] == []
    assert seen["scrollWidth"] <= seen["clientWidth"] == 375  # no sideways scrolling
    assert seen["tokenLabels"] == ["Token"]
    label = day.date().isoformat()
    share = {b["title"]: b["height"] for b in seen["metrics"]["big_share"]["bars"]}
    assert len(share) == 28
    assert share[f"{label}: 50.0%"] > 0  # o3 and o4: one of them above 3, as `nerve metrics` has it
    none = (day - timedelta(days=1)).date().isoformat()
    assert share[f"{none}: no value"] == 0  # no order, no share: not a 0.0%
    # today has no order yet: the headline says so, and gives the latest value (was a dash)
    today = datetime.now(UTC).date()
    assert seen["metrics"]["big_share"]["headline"] == (
        f"no value on {today.isoformat()} (the latest day, maybe not over); "
        f"the latest: 50.0% on {label}")
    revenue = [b["title"] for b in seen["metrics"]["revenue"]["bars"]]
    assert f"{label}: 7.00 EUR" in revenue
    assert f"{none}: 0.00 EUR" in revenue  # a sum over nothing is 0
    assert seen["metrics"]["revenue"]["headline"].startswith("0.00 EUR on ")  # today's
    assert seen["metrics"]["revenue"]["axis"] == [(today - timedelta(days=27)).isoformat(),
                                                  today.isoformat()]  # the 28 days, as text
    assert seen["stopped"].startswith(f"nerve serve at {server.url} did not answer (")
    assert "is it still running? What is shown is as of the last update." in seen["stopped"]


@pytest.mark.node
@pytest.mark.timeout(180)
def test_a_metric_headline_is_the_value_nerve_metrics_query_prints(
    console_shop: Workspace, serve: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The console rounded every value to two decimals at most, half up: an average of
    309.53125 read 309.53 where `nerve metrics query` prints 309.531 (six significant
    digits), and a sum of 1,238.125 EUR read 1,238.13 EUR where it prints 1,238.12 EUR."""
    (console_shop.metrics_dir / "money.yaml").write_text(
        "metrics:\n"
        "  revenue:\n    format: currency\n    currency: EUR\n"
        "    measure: {agg: sum, event: order_completed, of: revenue}\n"
        "  avg_revenue:\n    measure: {agg: avg, event: order_completed, of: revenue}\n"
    )
    server = serve(console_shop)
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    batch = [
        order(i, "t", timestamp=now, properties={"order_id": f"o{i}", "revenue": revenue})
        for i, revenue in enumerate([1, 1, 2, 1234.125])
    ]
    assert (
        HTTP.post(
            server.url + "/v1/batch", json={"batch": batch}, headers=basic(write_key(console_shop))
        ).status_code
        == 200
    )
    auth = {"authorization": f"Bearer {admin_token(console_shop)}"}
    deadline = time.monotonic() + 30
    while HTTP.get(server.url + "/v1/status", headers=auth).json()["warehouse"]["events"] < 4:
        assert time.monotonic() < deadline, "the loader did not load 4 events in 30 s"
        time.sleep(0.2)

    seen = drive_console(f"{server.url}/ui#token={READER}", 1280, ["avg_revenue", "revenue"])
    assert seen["errors"] == []
    assert seen["href"] == f"{server.url}/ui"  # the token taken, and off the address bar
    monkeypatch.setattr(console, "_width", 200)  # one table row on one line
    today = datetime.now(UTC).date().isoformat()
    shown = {}
    for name in ("avg_revenue", "revenue"):
        headline = seen["metrics"][name]["headline"]
        value, _, rest = headline.partition(f" on {today} ")
        assert rest == "(the latest day, maybe not over)", headline
        printed = CliRunner().invoke(app, ["--workspace", str(console_shop.root), "metrics",
                                           "query", name, "--grain", "day", "--since", today])
        assert printed.exit_code == 0, printed.stderr
        assert re.search(rf"│\s*{re.escape(value)}\s*│", printed.stdout), printed.stdout
        shown[name] = value
    assert shown == {"avg_revenue": "309.531", "revenue": "1,238.12 EUR"}


@pytest.mark.node
@pytest.mark.timeout(180)
def test_the_chart_is_described_and_relative_times_keep_counting_when_the_server_stops(
        console_shop: Workspace, serve: Callable[..., Any]) -> None:
    """The chart had no description for a screen reader (only each bar a tooltip), and once
    the server stopped, "12 s ago" stayed "12 s ago" however long it was down."""
    server = serve(console_shop)
    two_orders_yesterday(console_shop, server.url)

    seen = console_clock(f"{server.url}/ui#token={READER}")
    assert seen["errors"] == []
    today = datetime.now(UTC).date()
    first = (today - timedelta(days=27)).isoformat()
    # the metric, its period and the range of its values (2 orders the day before)
    assert seen["before"]["chart"] == {
        "role": "img", "label": f"Orders, daily, {first} to {today.isoformat()}: from 0 to 2"}
    assert seen["before"]["newest"].endswith(" s ago")
    assert seen["before"]["error"] == ""
    # ten minutes after the server stopped: the page says so, and the time kept counting
    assert seen["after"]["newest"] == "10 min ago"
    assert seen["after"]["error"].startswith(f"nerve serve at {server.url} did not answer (")
    assert "; its last answer was at " in seen["after"]["error"]


def console_clock(url: str) -> dict[str, Any]:
    """What tests/node/console_clock.mjs saw of the console on a fake clock."""
    seen: dict[str, Any] = node_script("console_clock.mjs", url)
    return seen


def test_nerve_console_gives_the_url_with_the_admin_token(
        console_shop: Workspace, serve: Callable[..., Any]) -> None:
    runner = CliRunner()
    args = ["--workspace", str(console_shop.root), "console", "--print"]
    refused = runner.invoke(app, args)
    assert refused.exit_code != 0
    assert "no nerve serve is running" in refused.stderr
    server = serve(console_shop)
    printed = runner.invoke(app, args)
    assert printed.exit_code == 0, printed.stderr
    assert printed.stdout.strip() == f"{server.url}/ui#token={admin_token(console_shop)}"


def test_nerve_status_reads_the_server_or_else_the_files(
        console_shop: Workspace, serve: Callable[..., Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(console, "_width", 200)  # one table row on one line
    runner = CliRunner()
    args = ["--workspace", str(console_shop.root), "status"]
    offline = runner.invoke(app, [*args, "--format", "json"])
    assert offline.exit_code == 0, offline.stderr
    body = orjson.loads(offline.stdout)
    assert body["url"] is None
    assert body["loader"] is None
    assert body["warehouse"]["events"] == 0
    assert body["log"] == {"kind": "local", "backlog_bytes": 0, "overloaded": None,
                           "behind_seconds": None, "write_problem": None,
                           "set_aside": []}

    server = serve(console_shop)
    fill(server, console_shop)
    online = orjson.loads(runner.invoke(app, [*args, "--format", "json"]).stdout)
    assert online["url"] == server.url
    assert online["warehouse"]["events"] == 12
    assert online["collector"]["accepted"] == 12
    assert online["loader"]["loaded"] == 12
    assert online["collector"]["refusals"] == {}
    assert "refused since the server started" not in runner.invoke(app, args).stdout
    # a client with a wrong write key: its SDK drops the batch, the status says so
    wrong = HTTP.post(server.url + "/v1/batch", headers=basic("not-a-source-key"),
                      json={"batch": [order(99)]})
    assert wrong.status_code == 401
    refused = orjson.loads(runner.invoke(app, [*args, "--format", "json"]).stdout)
    assert refused["collector"]["refusals"] == {"401 unauthorized": 1}
    table = runner.invoke(app, args)
    assert table.exit_code == 0
    assert "events in the warehouse" in table.stdout
    assert re.search(r"refused since the server started\s*│\s*401 unauthorized: 1", table.stdout)
    # the loader's three outcomes: quarantined rows were left out of "rows loaded"
    assert "ok: 12 events loaded, 3 quarantined, 0 duplicates dropped" in table.stdout

    assert server.stop() == 0
    after = orjson.loads(runner.invoke(app, [*args, "--format", "json"]).stdout)
    assert after["url"] is None
    assert after["warehouse"] == {**online["warehouse"], "events_24h": 12}
    assert after["collector"]["accepted"] == 12  # the last run's counters


#: a catalog event with a long name, as tracking plans have them
LONG = "meal_plan_week_regenerated_after_dietary_preference_change_confirmed"


@pytest.mark.node
@pytest.mark.timeout(180)
def test_long_event_names_leave_every_column_in_view_and_the_page_logs_no_error(
        console_shop: Workspace, serve: Callable[..., Any]) -> None:
    """A 68-character catalog name pushed the events' counts out of their panel, and a
    client's 180-character unknown event the checks' findings and the quarantine's
    violations: event names did not wrap. And each load logged a 404 (/favicon.ico)."""
    (console_shop.events_dir / f"{LONG}.yaml").write_text(
        f"name: {LONG}\nproperties:\n  week: {{type: integer}}\n")
    unplanned = "x" * 150 + "_an_unplanned_event_name"
    server = serve(console_shop)
    batch = [{"type": "track", "event": LONG, "userId": f"u{i}", "messageId": f"l-{i}",
              "properties": {"week": i}} for i in range(3)]
    batch.append({"type": "track", "event": unplanned, "userId": "u1", "messageId": "x"})
    assert HTTP.post(server.url + "/v1/batch", json={"batch": batch},
                     headers=basic(write_key(console_shop))).status_code == 200
    auth = {"authorization": f"Bearer {admin_token(console_shop)}"}
    deadline = time.monotonic() + 30
    while HTTP.get(server.url + "/v1/status", headers=auth).json()["warehouse"]["quarantine"] < 1:
        assert time.monotonic() < deadline, "the loader did not load the batch in 30 s"
        time.sleep(0.2)
    # the first run of the checks loads their engine (SciPy, pandas): on a loaded CI
    # machine that takes longer than httpx's default 5 s
    assert HTTP.post(server.url + "/v1/admin/checks/run", headers=auth,
                     json={}, timeout=60).status_code == 200

    seen = console_layout(f"{server.url}/ui#token={admin_token(console_shop)}", 1280)
    assert seen["errors"] == []
    assert seen["failed"] == []
    tables = {t["section"]: t["columns"] for t in seen["tables"]}
    assert set(tables) >= {"checks", "events", "quarantine"}
    hidden = {section: [c["header"] for c in columns if not c["inView"]]
              for section, columns in tables.items()}
    assert hidden == {section: [] for section in tables}
    # white on the badges' green (4.38) and amber (3.64) was below WCAG AA's 4.5 for text
    assert {"ok", "warn"} <= {b["text"] for b in seen["badges"]}
    assert [b for b in seen["badges"] if b["contrast"] < 4.5] == []


@pytest.mark.timeout(180)
@pytest.mark.parametrize("who", ["admin", "reader"])
def test_the_events_and_quarantine_lists_say_how_many_more_they_leave_out(
        console_shop: Workspace, serve: Callable[..., Any], who: str) -> None:
    """Both lists stop at 15 events; the 16th and 17th were left out without a word."""
    for i in range(17):
        (console_shop.events_dir / f"step_{i:02d}_done.yaml").write_text(
            f"name: step_{i:02d}_done\n")
    server = serve(console_shop)
    # step i: 20 - i valid rows (step_16_done the fewest), and 20 - i unknown ones
    batch = [{"type": "track", "event": f"{kind}_{i:02d}_done", "userId": f"u{n}",
              "messageId": f"{kind}-{i}-{n}"}
             for kind in ("step", "nope") for i in range(17) for n in range(20 - i)]
    assert HTTP.post(server.url + "/v1/batch", json={"batch": batch},
                     headers=basic(write_key(console_shop))).status_code == 200
    auth = {"authorization": f"Bearer {admin_token(console_shop)}"}
    deadline = time.monotonic() + 30
    while HTTP.get(server.url + "/v1/status", headers=auth).json()["warehouse"]["quarantine"] \
            < len(batch) // 2:
        assert time.monotonic() < deadline, "the loader did not load the batch in 30 s"
        time.sleep(0.2)
    token = admin_token(console_shop) if who == "admin" else READER
    dom = chromium_dom(f"{server.url}/ui#token={token}")
    assert dom.body.get("data-loaded") == "true"
    text = " | ".join(dom.text)
    # the events panel (the funnel's step picker offers every event)
    events = text[text.index("Events, | last"):text.index("Funnel, | last")]
    assert "step_14_done | 6 | 6" in events
    assert "step_15_done" not in events
    assert "2 more events with fewer rows: nerve sql lists them all." in text
    assert "nope_14_done | 6 |" in text
    assert "nope_15_done" not in text
    assert "2 more events with fewer rows: nerve quarantine list shows them all." in text


def test_a_write_key_given_as_the_token_is_named_as_one(
        console_shop: Workspace, serve: Callable[..., Any]) -> None:
    """The write keys sit next to [[readers]] in nerve.toml; one typed into the console
    was refused as "neither the admin's nor a reader's", with advice about a stale admin
    token."""
    server = serve(console_shop)
    key = write_key(console_shop, "web")
    refused = HTTP.get(server.url + "/v1/status", headers={"authorization": f"Bearer {key}"})
    assert refused.status_code == 401
    assert refused.json()["message"].startswith(
        "that is the write key of source 'web': it sends events; reading needs the admin "
        "token")
    dom = chromium_dom(f"{server.url}/ui#token={key}")
    assert "that is the write key of source 'web'" in " ".join(dom.text)
    odd = HTTP.get(server.url + "/v1/status",
                   headers={"authorization": "Bearer é-token".encode("latin-1")})
    assert odd.status_code == 401
    assert odd.json()["message"].startswith("the token is neither the admin's nor a reader's")


@pytest.mark.node
@pytest.mark.timeout(120)
def test_the_sign_in_form_has_the_keyboard_focus(
        console_shop: Workspace, serve: Callable[..., Any]) -> None:
    """The page opened on its sign-in form (no token, or a refused one) with the focus
    nowhere: a keyboard user had to find the field first."""
    server = serve(console_shop)
    for url in (f"{server.url}/ui", f"{server.url}/ui#token=stale-admin-token"):
        assert console_layout(url, 800)["focused"] == "token", url



@pytest.mark.node
@pytest.mark.timeout(180)
def test_a_metrics_file_that_does_not_load_is_named_in_the_metric_panel(
        console_shop: Workspace, serve: Callable[..., Any]) -> None:
    """With one broken file in metrics/, the metric panel was an empty picker: the error
    went to the pipeline panel, where the status it ran beside wiped it. And the
    experiment its readout failed for had an "error" badge in red on red."""
    (console_shop.metrics_dir / "broken.yaml").write_text(
        "metrics:\n  basket:\n    measure: {agg: sum, event: order_completed, of: basket}\n")
    server = serve(console_shop)
    url = f"{server.url}/ui#token={admin_token(console_shop)}"
    dom = chromium_dom(url)
    assert dom.body.get("data-loaded") == "true"
    text = " | ".join(dom.text)
    panel = text[text.index("Metric, daily, | last 28 days"):text.index("Events, | last 28 days")]
    assert "broken.yaml:3: basket.measure.of: 'basket': order_completed has no property " \
           "'basket'" in panel
    assert "| error |" in text  # the experiment's readout, which reads the metrics
    seen = console_layout(url, 1280)
    assert "error" in {b["text"] for b in seen["badges"]}
    assert [b for b in seen["badges"] if b["contrast"] < 4.5] == []


@pytest.mark.timeout(120)
def test_an_experiments_file_that_does_not_load_is_named_in_the_experiments_panel(
        console_shop: Workspace, serve: Callable[..., Any]) -> None:
    """The panel showed its heading and nothing else: the error went to the pipeline
    panel, where the status it ran beside wiped it."""
    (console_shop.root / "experiments" / "bad.yaml").write_text("key: bad\nvariants: [a]\n")
    server = serve(console_shop)
    dom = chromium_dom(f"{server.url}/ui#token={admin_token(console_shop)}")
    assert dom.body.get("data-loaded") == "true"
    text = " | ".join(dom.text)
    panel = text[text.index("Experiments"):text.index("Metric, daily, | last 28 days")]
    assert "bad.yaml:2: bad.variants: expected a list of at least two variants" in panel
    assert "0 | events in the warehouse" in text  # the other panels are there


@pytest.mark.timeout(180)
@pytest.mark.parametrize("who", ["admin", "reader"])
def test_the_quarantine_panel_names_the_event_an_unknown_one_misspells(
        console_shop: Workspace, serve: Callable[..., Any], who: str) -> None:
    """`nerve quarantine list` said "(did you mean order_completed?)" for a misspelt event;
    the console's quarantine panel, the same rows, did not. And its rule and message could
    come from two different rows of an event."""
    server = serve(console_shop)
    batch = [{"type": "track", "event": "order_complete", "userId": f"u{i}",
              "messageId": f"typo-{i}"} for i in range(3)]
    batch.append({"type": "track", "event": "nothing_like_it", "userId": "u1",
                  "messageId": "odd"})
    batch += [order(i, "bad", properties={"order_id": "x", "revenue": "lots"})
              for i in range(2)]
    assert HTTP.post(server.url + "/v1/batch", json={"batch": batch},
                     headers=basic(write_key(console_shop))).status_code == 200
    token = admin_token(console_shop) if who == "admin" else READER
    auth = {"authorization": f"Bearer {token}"}
    deadline = time.monotonic() + 30
    while HTTP.get(server.url + "/v1/status", headers=auth).json()["warehouse"]["quarantine"] < 6:
        assert time.monotonic() < deadline, "the loader did not load the batch in 30 s"
        time.sleep(0.2)

    summary = HTTP.get(server.url + "/v1/quarantine", headers=auth).json()
    by_event = {e["event"]: e for e in summary["events"]}
    assert summary["more"] == 0
    assert by_event["order_complete"]["rows"] == 3
    assert by_event["order_complete"]["rule"] == "unknown_event"
    assert by_event["order_complete"]["message"].endswith("(did you mean order_completed?)")
    assert "did you mean" not in by_event["nothing_like_it"]["message"]  # nothing close
    assert by_event["order_completed"]["rule"] == "type"
    assert "did you mean" not in by_event["order_completed"]["message"]  # a cataloged one
    assert HTTP.get(server.url + "/v1/quarantine").status_code == 401

    dom = chromium_dom(f"{server.url}/ui#token={token}")
    assert dom.body.get("data-loaded") == "true"
    text = " | ".join(dom.text)
    panel = text[text.index("Quarantine"):]
    assert "order_complete | 3 |" in panel
    assert "not in the catalog: add it to events/, or fix the name (did you mean " \
           "order_completed?)" in panel


@pytest.mark.node
@pytest.mark.timeout(180)
def test_a_metric_picked_while_another_loads_is_the_one_shown(
        console_shop: Workspace, serve: Callable[..., Any]) -> None:
    """Picking a metric, then another before the first's query answered (0.6 s each on a
    busy machine), showed the first metric's chart and headline under the second's name
    in the picker: the answers were drawn in the order they arrived."""
    (console_shop.metrics_dir / "money.yaml").write_text(
        "metrics:\n  revenue:\n    label: Revenue\n    format: currency\n"
        "    currency: EUR\n    measure: {agg: sum, event: order_completed, of: revenue}\n")
    server = serve(console_shop)
    two_orders_yesterday(console_shop, server.url)
    seen = node_script("console_metric_race.mjs", f"{server.url}/ui#token={READER}",
                       "revenue", "orders")
    assert seen["errors"] == []
    assert seen["picked"] == "orders"
    assert seen["chart"].startswith("Orders, daily, ")  # not "Revenue, daily, ..."
    assert "EUR" not in seen["headline"]


@pytest.mark.node
@pytest.mark.timeout(180)
def test_the_pipeline_panel_says_why_the_log_refuses_events(
        console_shop: Workspace, serve: Callable[..., Any]) -> None:
    """GET /v1/status's log.write_problem (a full disk) was only in nerve status."""
    server = serve(console_shop)
    problem = "the disk of .nerve/log is full (4,096 bytes free, a request may need 512,000)"
    seen = node_script("console_status_problem.mjs", f"{server.url}/ui#token={READER}",
                       problem, timeout=170)
    assert seen["errors"] == []
    assert seen["error"] == (f"the local log cannot be written ({problem}): events get 503 "
                             "until it can")


@pytest.mark.node
@pytest.mark.timeout(180)
def test_on_a_phone_the_findings_and_violations_are_in_view(
        console_shop: Workspace, serve: Callable[..., Any]) -> None:
    """At 375 px the tables scrolled sideways inside their panels, and the column that
    says what is wrong (a check's finding, a violation, an experiment's reasons) was past
    the panel's edge, three letters of each line in view."""
    server = serve(console_shop)
    fill(server, console_shop)
    seen = console_layout(f"{server.url}/ui#token={READER}", 375)
    assert seen["errors"] == []
    tables = {t["section"]: t["columns"] for t in seen["tables"]}
    assert set(tables) >= {"checks", "experiments", "events", "quarantine"}
    hidden = {section: [c["header"] for c in columns if not c["inView"]]
              for section, columns in tables.items()}
    assert hidden == {section: [] for section in tables}
