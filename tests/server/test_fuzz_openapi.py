"""Schema-driven fuzzing of the ingest API (schemathesis) against a real ``nerve serve``.

Every generated request must get a documented status with the documented body: never a
500, never an undocumented shape. Examples are bounded so the suite stays fast.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks
from serverkit import EVENTS, HTTP, basic

from nerve.server._openapi import openapi_document
from nerve.workspace import Workspace, init_workspace

SCHEMA = schemathesis.openapi.from_dict(openapi_document()).include(
    path_regex=r"^/v1/(batch|track|identify|alias|projects/\{write_key\}/settings)$|^/health$")


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """One server for the whole module (a server per generated case would be slow)."""
    root = tmp_path_factory.mktemp("fuzz") / "ws"
    init_workspace(root, "fuzz")
    for name, text in EVENTS.items():
        (root / "events" / name).write_text(text)
    ws = Workspace.load(root)
    log = (root / "serve.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "nerve", "--workspace", str(root), "serve", "--port", "0"],
        stdout=log, stderr=subprocess.STDOUT)
    try:
        url = _wait_for_url(ws, process)
        yield url, basic(ws.config.sources[0].write_key)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
        log.close()


def _wait_for_url(ws: Workspace, process: subprocess.Popen[bytes]) -> str:
    from nerve.server import read_server_file

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, Path(ws.root / "serve.log").read_text()
        info = read_server_file(ws)
        if info is not None:
            try:
                if HTTP.get(info["url"] + "/health", timeout=1).status_code == 200:
                    return str(info["url"])
            except httpx.HTTPError:
                pass
        time.sleep(0.1)
    raise AssertionError("nerve serve did not start")


def test_the_served_document_is_the_one_fuzzed(running: tuple[str, dict[str, str]]) -> None:
    url, _ = running
    assert HTTP.get(url + "/openapi.json").json() == openapi_document()


@SCHEMA.parametrize()
@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
def test_every_generated_request_gets_a_documented_answer(
        case: Any, running: tuple[str, dict[str, str]]) -> None:
    url, auth = running
    # The collector is as lenient as Segment's API (numeric ids pass, unknown fields are
    # ignored, catalog problems go to the quarantine) and refuses what it cannot map
    # (a track without its event): whether a given body is accepted is the collector
    # tests' business. Checked here: no 5xx, only documented statuses, content types and
    # bodies (the one error shape).
    case.call_and_validate(base_url=url, headers=auth, excluded_checks=[
        checks.negative_data_rejection, checks.positive_data_acceptance])


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/alias", {"userId": "u"}),                       # no previousId
    ("/v1/group", {"userId": "u"}),                       # no groupId
    ("/v1/identify", {}),                                 # nobody
    ("/v1/track", {"userId": "", "event": "e"}),          # an empty id is no id
    ("/v1/track", {"userId": "u", "event": ""}),
    ("/v1/batch", {"batch": [{"userId": "u", "event": "e"}]}),   # no type
    ("/v1/batch", {"batch": [{"type": "group", "userId": "u"}]}),
    ("/v1/alias", {"userId": "u", "previousId": 0}),      # numeric ids are strings
    ("/v1/group", {"anonymousId": 7, "groupId": "g"}),
    ("/v1/batch", {"batch": [], "context": None}),        # null counts as absent
    ("/v1/track", {"type": "nonsense", "userId": "u", "event": "e"}),  # the path's type
    ("/v1/track", {"userId": "u", "event": "e", "timestamp": "yesterday",
                   "properties": None}),                  # quarantined, not refused
    ("/v1/batch", {"batch": [{"type": "alias", "anonymousId": "a", "previousId": "p"}],
                   "sentAt": 12}),
    ("/v1/identify", {"userId": "u", "previousId": {}, "groupId": [], "event": 1}),
    ("/v1/batch", {"batch": [], "writeKey": None}),
    ("/v1/alias", {"userId": "u", "previousId": "p", "traits": [None], "properties": 1}),
    ("/v1/identify", {"userId": "u", "traits": [None]}),
    ("/v1/page", {"userId": "u", "properties": [None]}),
])
def test_the_document_accepts_what_the_collector_accepts_and_no_more(
        running: tuple[str, dict[str, str]], path: str, body: dict[str, Any]) -> None:
    """schemathesis' positive and negative checks found the document unlike the collector:
    it required no call's fields (an alias without previousId, a batch message without
    type passed it and got 400), and refused numeric ids, a null context or a time that
    does not parse, all of which the collector takes."""
    import jsonschema

    url, auth = running
    operation = openapi_document()["paths"][path]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    valid = jsonschema.Draft202012Validator(schema).is_valid(body)
    answer = HTTP.post(url + path, json=body, headers=auth, timeout=10)
    assert answer.status_code in (200, 400), answer.text
    assert valid == (answer.status_code == 200), (valid, answer.text)
