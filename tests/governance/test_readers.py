"""Named readers: their own tokens (from the environment), their role, their name in the
audit log; and ``nerve serve`` refusing to start on a reader without a usable token."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from tests.conftest import free_port

from nerve.audit import read_records
from nerve.errors import WorkspaceError
from nerve.server._readers import ADMIN, INVALID, Reader, identify, load_readers
from nerve.workspace import Workspace

READERS = """
[[readers]]
name = "ana"
token_env = "NERVE_TEST_TOKEN_ANA"

[[readers]]
name = "ops-bot"
role = "admin"
token_env = "NERVE_TEST_TOKEN_OPS"
"""
ANA, OPS = "ana-" + "a" * 28, "ops-" + "o" * 28


def test_readers_call_what_their_role_allows_and_the_audit_log_names_them(
        make_workspace: Callable[..., Workspace], serve: Callable[..., Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NERVE_TEST_TOKEN_ANA", ANA)
    monkeypatch.setenv("NERVE_TEST_TOKEN_OPS", OPS)
    ws = make_workspace({}, extra_toml=READERS)
    server = serve(ws, "--workers", "2")

    def post(path: str, token: str, body: dict[str, Any]) -> httpx.Response:
        return httpx.post(server.url + path, json=body, timeout=60,
                          headers={"Authorization": f"Bearer {token}"})

    assert post("/v1/admin/sql", ANA, {"query": "SELECT 1 AS one"}).json()["rows"] == [
        {"one": 1}]
    refused = post("/v1/admin/forget", ANA, {"user_ids": ["u1"]})
    assert refused.status_code == 403
    assert refused.json()["code"] == "forbidden"
    assert post("/v1/admin/checks/run", ANA, {}).status_code == 403
    assert post("/v1/admin/forget", OPS, {"user_ids": ["u1"]}).status_code == 200
    assert post("/v1/admin/sql", "not-" + ANA, {"query": "SELECT 1"}).status_code == 401

    assert [(r["who"], r["action"], r["status"]) for r in read_records(ws)] == [
        ("ana", "/v1/admin/sql", 200), ("ana", "/v1/admin/forget", 403),
        ("ana", "/v1/admin/checks/run", 403), ("ops-bot", "/v1/admin/forget", 200),
        ("invalid token", "/v1/admin/sql", 401)]


@pytest.mark.parametrize(("toml", "env", "problem"), [
    ('[[readers]]\nname = "ana"\ntoken_env = "T_ANA"\n', {}, "token_env: $T_ANA"),
    ('[[readers]]\nname = "ana"\ntoken_env = "T_ANA"\n', {"T_ANA": "short"}, "shorter"),
    ('[[readers]]\nname = "ana"\nrole = "boss"\ntoken_env = "T_ANA"\n', {"T_ANA": ANA},
     "role"),
    ('[[readers]]\nname = "admin"\ntoken_env = "T_ANA"\n', {"T_ANA": ANA}, "name"),
    ('[[readers]]\nname = "ana"\ntoken_env = "T_ANA"\npersonal = "maybe"\n', {"T_ANA": ANA},
     "personal"),
    ('[[readers]]\nname = "ana"\ntoken_env = "not a name"\n', {}, "token_env"),
    ('[[readers]]\nname = "ana"\ntoken_env = "T_ANA"\n[[readers]]\nname = "bo"\n'
     'token_env = "T_BO"\n', {"T_ANA": ANA, "T_BO": ANA}, "#2 token_env"),
])
def test_a_reader_without_a_usable_token_is_named(
        make_workspace: Callable[..., Workspace], monkeypatch: pytest.MonkeyPatch,
        toml: str, env: dict[str, str], problem: str) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    ws = make_workspace({}, extra_toml=toml)
    with pytest.raises(WorkspaceError, match=r"\[\[readers\]\]") as caught:
        load_readers(ws, "the-admin-token-0123456789")
    assert problem in str(caught.value)


def test_serve_refuses_to_start_without_a_readers_token(
        make_workspace: Callable[..., Workspace]) -> None:
    ws = make_workspace({}, extra_toml=READERS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NERVE_TEST_TOKEN_")}
    done = subprocess.run([sys.executable, "-m", "nerve", "--workspace", str(ws.root), "serve",
                           "--port", str(free_port())], capture_output=True, text=True,
                          timeout=60, check=False, env=env)
    assert done.returncode == 4
    assert "$NERVE_TEST_TOKEN_ANA" in done.stderr
    assert "unset" in done.stderr


def test_identify_compares_every_token() -> None:
    tokens = {"t" * 20: ADMIN, "r" * 20: Reader("ana", "reader")}
    assert identify(tokens, None) is None
    assert identify(tokens, "Basic abc") is None
    assert identify(tokens, "Bearer " + "r" * 20) == Reader("ana", "reader")
    assert identify(tokens, "bearer " + "t" * 20) is ADMIN
    assert identify(tokens, "Bearer " + "x" * 20) is INVALID
