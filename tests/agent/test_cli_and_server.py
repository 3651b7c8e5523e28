"""``nerve ask`` on the warehouse file and through ``nerve serve`` (POST /v1/ask), on a
copy of the demo workspace (the server takes the DuckDB file for itself)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
from click.testing import Result
from tests.agent.conftest import orders_on
from tests.conftest import Server, run_nerve

from nerve.agent import Context
from nerve.workspace import Workspace


def nerve(root: Path, *args: str) -> Result:
    return run_nerve(root, *args)


def test_ask_cli_json_and_table(demo_root: Path, demo_ctx: Context, tmp_path: Path) -> None:
    root = tmp_path / "shop"
    shutil.copytree(demo_root, root)
    day = (demo_ctx.today() - timedelta(days=1)).isoformat()
    result = nerve(root, "ask", f"How many orders on {day} on iOS?", "--format", "json")
    assert result.exit_code == 0, result.stderr
    body = json.loads(result.stdout)
    assert set(body) >= {"answer", "plan", "numbers", "caveats", "queries"}
    assert body["plan"]["intent"] == "value"
    assert body["plan"]["where"] == "platform = 'ios'"
    number = body["numbers"][0]
    assert number["query"] == body["queries"][0]["sql"]
    assert f"{number['text']}." in body["answer"]

    table = nerve(root, "ask", "why did orders change last week?")
    assert table.exit_code == 0, table.stderr
    assert "Queries" in table.stdout
    assert "nerve explain orders --period" in table.stdout

    unknown = nerve(root, "ask", "what is our churn rate?")
    assert unknown.exit_code == 1
    assert "no metric or event for 'churn" in unknown.stdout.replace("\n", " ")


def _post(server: Server, path: str, body: Any, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(server.url + path, content=orjson.dumps(body), headers=headers,
                      timeout=120)


def test_ask_through_nerve_serve(demo_root: Path, demo_ctx: Context, tmp_path: Path,
                                 serve: Callable[..., Server]) -> None:
    root = tmp_path / "shop"
    shutil.copytree(demo_root, root)
    day = (demo_ctx.today() - timedelta(days=1)).isoformat()
    truth = orders_on(root, day)
    server = serve(Workspace.load(root))
    token = json.loads((root / ".nerve" / "server.json").read_text())["admin_token"]

    assert _post(server, "/v1/ask", {"question": "orders"}, None).status_code == 401
    bad = _post(server, "/v1/ask", {"question": ""}, token)
    assert bad.status_code == 400
    assert bad.json()["code"] == "query"

    answer = _post(server, "/v1/ask", {"question": f"orders on {day}"}, token)
    assert answer.status_code == 200, answer.text
    assert answer.json()["numbers"][0]["value"] == truth
    # a breakdown by user is declined with its words, not answered with the total
    by_user = _post(server, "/v1/ask", {"question": "how many orders by user?"}, token)
    assert by_user.status_code == 200, by_user.text
    assert (by_user.json()["answered"], by_user.json()["numbers"]) == (False, [])
    assert by_user.json()["plan"]["ignored"] == ["by user"]

    tool = _post(server, "/v1/ask/tool", {"tool": "query_metrics", "args": {
        "metrics": ["orders"], "since": day, "until": day}}, token)
    assert tool.json()["result"]["rows"][0]["orders"] == truth
    assert _post(server, "/v1/ask/tool", {"tool": "drop_table"}, token).status_code == 400

    # the CLI finds the running server (the file is locked by it) and asks there
    cli = nerve(root, "ask", f"orders on {day}", "--format", "json")
    assert cli.exit_code == 0, cli.stderr
    assert json.loads(cli.stdout)["numbers"][0]["value"] == truth

    # the server answers with its own LLM setting: one set only in this shell is not
    # used, and the answer says so instead of passing an offline answer for the LLM's
    env = {**os.environ, "NERVE_LLM_URL": "http://127.0.0.1:9/v1", "NERVE_LLM_MODEL": "x"}
    told = subprocess.run([sys.executable, "-m", "nerve", "--workspace", str(root), "ask",
                           f"orders on {day}", "--format", "json"], capture_output=True,
                          text=True, timeout=300, check=False, env=env)
    assert told.returncode == 0, told.stderr
    body = json.loads(told.stdout)
    assert body["source"] == "offline"
    assert any("not NERVE_LLM_URL=http://127.0.0.1:9/v1 from this shell" in c
               for c in body["caveats"]), body["caveats"]
    offline = json.loads(nerve(root, "ask", f"orders on {day}", "--no-llm", "--format",
                               "json").stdout)
    assert not any("NERVE_LLM_URL" in c for c in offline["caveats"])
