"""The web console's dates, funnel and Ask panels in headless Chromium against a real
``nerve serve``: the figures shown are the CLI's (``nerve funnel``, ``nerve ask``) for the
same dates, and what the data was built to hold."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from serverkit import EVENTS, HTTP, basic, write_key
from tests.conftest import node_script
from typer.testing import CliRunner

from nerve.cli import app
from nerve.workspace import Workspace

#: ahead of UTC: an event at 00:30 local time is on the day before in UTC
ZONE = "Asia/Tokyo"
VIEW = "name: product_view\nproperties:\n  sku: {type: string}\n"
ADD = "name: add_to_cart\nproperties:\n  sku: {type: string}\n"
STEPS = ["product_view", "add_to_cart", "order_completed"]
READER = "a-reader-token-of-thirty-two-chars!"


def admin_token(ws: Workspace) -> str:
    token: str = orjson.loads((ws.data_dir / "server.json").read_bytes())["admin_token"]
    return token


@pytest.fixture
def funnel_shop(make_workspace: Callable[..., Workspace],
                monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.setenv("NERVE_TEST_TOKEN_READER", READER)
    ws = make_workspace({**EVENTS, "product_view.yaml": VIEW, "add_to_cart.yaml": ADD},
                        extra_toml='[[readers]]\nname = "ana"\nrole = "reader"\n'
                                   'token_env = "NERVE_TEST_TOKEN_READER"\n')
    toml = ws.root / "nerve.toml"
    toml.write_text(re.sub(r"(?m)^timezone = .*$", f'timezone = "{ZONE}"', toml.read_text()))
    (ws.metrics_dir / "shop.yaml").write_text(
        "metrics:\n  orders:\n    label: Orders\n    measure: {event: order_completed}\n")
    return Workspace.load(ws.root)


def track(event: str, user: str, at: datetime, n: int) -> dict[str, Any]:
    properties = ({"order_id": f"o{n}", "revenue": 10, "currency": "EUR"}
                  if event == "order_completed" else {"sku": "s1"})
    return {"type": "track", "event": event, "userId": user, "messageId": f"{event}-{n}",
            "timestamp": at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "properties": properties}


def fill(ws: Workspace, url: str) -> date:
    """Two days ago: u1-u6 view, u1-u4 add to cart 10 min later, u1 and u2 order 20 min
    later, u3 30 h later (inside a 7-day window, not a 1-day one); at 00:30 local time six
    days ago (the day before in UTC): u10 views. 20 days ago: u7-u9 view, u7 adds to cart.
    Wait until all is loaded; the old day, local."""
    now = datetime.now(UTC)
    recent, old = now - timedelta(days=2), now - timedelta(days=20)
    early = datetime.combine(now.astimezone(ZoneInfo(ZONE)).date() - timedelta(days=6),
                             datetime.min.time(), ZoneInfo(ZONE)) + timedelta(minutes=30)
    batch = [track("product_view", f"u{i}", recent, i) for i in range(1, 7)]
    batch += [track("add_to_cart", f"u{i}", recent + timedelta(minutes=10), i)
              for i in range(1, 5)]
    batch += [track("order_completed", f"u{i}", recent + timedelta(minutes=20), i)
              for i in (1, 2)]
    batch.append(track("order_completed", "u3", recent + timedelta(hours=30), 3))
    batch.append(track("product_view", "u10", early, 10))
    batch += [track("product_view", f"u{i}", old, i) for i in (7, 8, 9)]
    batch.append(track("add_to_cart", "u7", old + timedelta(minutes=5), 7))
    assert HTTP.post(url + "/v1/batch", json={"batch": batch},
                     headers=basic(write_key(ws))).status_code == 200
    auth = {"authorization": f"Bearer {admin_token(ws)}"}
    deadline = time.monotonic() + 30
    while HTTP.get(url + "/v1/status", headers=auth).json()["warehouse"]["events"] < len(batch):
        assert time.monotonic() < deadline, "the loader did not load the batch in 30 s"
        time.sleep(0.2)
    return old.astimezone(ZoneInfo(ZONE)).date()


def cli_json(ws: Workspace, *args: str) -> Any:
    done = CliRunner().invoke(app, ["--workspace", str(ws.root), *args, "--format", "json"])
    assert done.exit_code in (0, 1), done.stderr  # nerve ask exits 1 when it declines
    return orjson.loads(done.stdout)


def funnel_cells(ws: Workspace, since: str, until: str, window: str) -> list[list[str]]:
    """`nerve funnel`'s rows as the console's table has them: step, event, (the bar),
    users, of step 1, of the step before, dropped."""
    rows = cli_json(ws, "funnel", *STEPS, "--window", window, "--since", since,
                    "--until", until)
    return [[str(r["step"]), r["event"], "", f"{r['users']:,}", f"{r['conversion']:.1%}",
             "" if r["step"] == 1 else f"{r['step_conversion']:.1%}",
             "" if r["dropped"] is None else f"{r['dropped']:,}"] for r in rows]


@pytest.mark.node
@pytest.mark.timeout(300)
@pytest.mark.parametrize(("width", "who"), [(1280, "admin"), (375, "reader")])
def test_the_console_shows_the_clis_funnel_and_answer_for_the_dates_picked(
        funnel_shop: Workspace, serve: Callable[..., Any], width: int, who: str) -> None:
    """The console had no dates to pick, no funnel and no way to ask a question. A reader
    sees the same (no personal value is read here), and the audit log names her."""
    server = serve(funnel_shop)
    old = fill(funnel_shop, server.url)
    around = ((old - timedelta(days=1)).isoformat(), (old + timedelta(days=1)).isoformat())
    question = "how many orders"
    seen: dict[str, Any] = node_script(
        "console_analysis.mjs",
        f"{server.url}/ui#token={admin_token(funnel_shop) if who == 'admin' else READER}",
        str(width), ",".join(STEPS), "7d", *around, question, timeout=280)
    assert seen["errors"] == []
    assert seen["failed"] == []
    assert seen["scrollWidth"] <= seen["clientWidth"] == width  # no sideways scrolling
    # only track events are steps: identify is not offered
    assert seen["offered"] == ["add_to_cart", "order_completed", "product_view"]

    today = datetime.now(ZoneInfo(ZONE)).date()  # the workspace's today, not UTC's
    initial, week, custom = seen["initial"], seen["week"], seen["custom"]
    assert (initial["since"], initial["until"]) == (
        (today - timedelta(days=27)).isoformat(), today.isoformat())
    assert initial["headings"] == ["last 28 days"] * 3
    assert initial["range"].endswith(f"days of {ZONE}")
    assert initial["metricAxis"] == [initial["since"], initial["until"]]
    assert (week["since"], week["until"]) == (
        (today - timedelta(days=6)).isoformat(), today.isoformat())
    assert week["headings"] == ["last 7 days"] * 3
    assert week["metricAxis"] == [week["since"], week["until"]]
    assert (custom["since"], custom["until"]) == around
    assert custom["headings"] == [f"{around[0]} to {around[1]}"] * 3
    assert seen["refused"] == (f"from ({around[1]}) is after to ({around[0]}): "
                               "the first day comes first.")

    # every funnel shown is `nerve funnel`'s for the dates shown, cell for cell
    for shown in (initial, week, custom):
        assert shown["funnel"] == funnel_cells(funnel_shop, shown["since"], shown["until"],
                                               "7d"), shown["range"]
        assert shown["command"] == (f"nerve funnel {' '.join(STEPS)} --window 7d --since "
                                    f"{shown['since']} --until {shown['until']}")
    # and what the data holds: 7 viewers in the last 7 local days (u10's view at 00:30
    # local time is the day before in UTC), 4 of them added, 3 ordered within 7 days
    assert [row[3] for row in week["funnel"]] == ["7", "4", "3"]
    assert [row[3] for row in initial["funnel"]] == ["10", "5", "3"]
    assert [row[3] for row in custom["funnel"]] == ["3", "1", "0"]
    assert week["funnelText"] == (f"Of 7 users who did product_view from {week['since']} to "
                                  f"{week['until']}, 3 (42.9%) went on to order_completed "
                                  "within 7 days.")

    # the events panel counts the same local days: event, events, people
    assert ["product_view", "7", "7"] in week["events"]
    assert ["product_view", "10", "10"] in initial["events"]
    assert ["product_view", "3", "3"] in custom["events"]
    assert ["add_to_cart", "1", "1"] in custom["events"]
    assert not [row for row in custom["events"] if row[0] == "order_completed"]

    # the answer is `nerve ask`'s: its sentences, numbers, caveats and commands
    asked = cli_json(funnel_shop, "ask", question)
    answer = seen["answer"]
    assert answer["text"] == asked["answer"]
    assert answer["numbers"] == [[n["label"], n["text"]] for n in asked["numbers"]]
    assert [n["value"] for n in asked["numbers"]] == [3]  # u1, u2, u3's orders: all the data
    lists = dict(zip(answer["headings"], answer["lists"], strict=True))
    assert lists.get("Caveats", []) == asked["caveats"]
    assert lists["How it was computed"] == [q.get("command") or q["tool"]
                                            for q in asked["queries"]]
    if who == "reader":  # her funnels and question are in the audit log, under her name
        audit = "\n".join(p.read_text() for p in (funnel_shop.data_dir / "audit").glob("*"))
        reads = [orjson.loads(line) for line in audit.splitlines() if line.strip()]
        hers = {r["action"] for r in reads if r["who"] == "ana" and r["masked"]}
        assert {"/v1/funnels", "/v1/ask"} <= hers, hers
