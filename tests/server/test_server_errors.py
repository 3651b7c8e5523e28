"""The HTTP contract in-process: one error shape, exact success, CORS, limits, auth.

These run the real ASGI app (through httpx's ASGI transport) over a real event log and DuckDB
warehouse in a temporary workspace; the end-to-end tests in test_server_e2e.py run the
real `nerve serve` process.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import logging
import time
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import orjson
import pytest
from serverkit import basic, order, write_key

from nerve.catalog import Catalog
from nerve.errors import WorkspaceError
from nerve.loader import Loader
from nerve.log import LogWriter, list_segments, read_segment
from nerve.server import NerveState, create_app
from nerve.server._backpressure import _watch_room, watch_backlog
from nerve.server._commit import GroupCommit
from nerve.server._ingest import OVERLOAD_ANSWER_DELAY
from nerve.server._ratelimit import RateLimiter
from nerve.warehouse import Warehouse
from nerve.workspace import Workspace

TOKEN = "admin-token-for-tests"


@pytest.fixture
def state(shop: Workspace) -> Iterator[NerveState]:
    warehouse = Warehouse.for_workspace(shop)
    log = LogWriter(shop.log_dir, "test")
    yield NerveState(workspace=shop, catalog=Catalog.load(shop.events_dir),
                     warehouse=warehouse, log=log, admin_token=TOKEN)
    log.close()
    warehouse.close()


class Client:
    """A synchronous client that calls the ASGI app directly (no socket)."""

    def __init__(self, app: Any) -> None:
        self.transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            async with httpx.AsyncClient(transport=self.transport,
                                         base_url="http://nerve.test") as client:
                return await client.request(method, url, **kwargs)

        return anyio.run(send)

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def options(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("OPTIONS", url, **kwargs)


@pytest.fixture
def client(state: NerveState) -> Client:
    return Client(create_app(state))


def assert_error_shape(response: Any, status: int, code: str) -> dict[str, Any]:
    """Every error nerve answers is exactly {"code", "message", "details"}, as JSON."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"code", "message", "details"}
    assert body["code"] == code
    assert isinstance(body["message"], str)
    assert body["message"]
    return dict(body)


def test_success_is_exactly_200_with_a_small_json_body(client: Client,
                                                       shop: Workspace) -> None:
    response = client.post("/v1/batch", content=orjson.dumps({"batch": [order(1)]}),
                           headers=basic(write_key(shop)))
    assert response.status_code == 200
    assert response.json() == {"success": True}
    assert response.headers["content-type"] == "application/json"


def test_requests_refused_for_the_client_to_fix_are_logged_once_a_minute_per_code(
        client: Client, shop: Workspace, state: NerveState,
        caplog: pytest.LogCaptureFixture) -> None:
    """analytics-node says only "[400] Bad Request" and drops the batch: the server's log
    said nothing either, so the field at fault was nowhere to be read."""
    node = {"User-Agent": "analytics-node-next/latest"}
    batch = orjson.dumps({"batch": [order(1)]})
    no_event = orjson.dumps({"batch": [order(1), {"type": "track", "userId": "u"}]})
    with caplog.at_level(logging.INFO, logger="nerve.server"):
        for _ in range(3):
            client.post("/v1/batch", content=batch, headers=basic("not-a-key") | node)
        client.post("/v1/batch", content=no_event, headers=basic(write_key(shop)))
        assert client.post("/v1/batch", content=batch,
                           headers=basic(write_key(shop))).status_code == 200
        # a minute later (the line's time set back), the next one says how many came since
        state.client_refusals.logged_at["unauthorized"] -= 61
        client.post("/v1/batch", content=batch, headers=basic("not-a-key"))
    said = [r for r in caplog.records if r.name == "nerve.server"]
    assert [(r.levelname, r.__dict__["status"], r.__dict__["code"], r.__dict__["refused"])
            for r in said] == [("WARNING", 401, "unauthorized", 1),
                               ("WARNING", 400, "missing_field", 1),
                               ("WARNING", 401, "unauthorized", 3)]
    assert "unknown write key" in said[0].getMessage()
    assert said[0].__dict__["user_agent"] == "analytics-node-next/latest"
    assert "batch[1].event" in said[1].getMessage()


def test_retryable_refusals_are_not_logged_as_the_client_s_to_fix(
        shop: Workspace, state: NerveState, caplog: pytest.LogCaptureFixture) -> None:
    state.limiter = RateLimiter(1, burst=1, clock=lambda: 0.0)  # time stands still
    client = Client(create_app(state))
    big = orjson.dumps({"batch": [order(i) for i in range(5)]})
    with caplog.at_level(logging.INFO, logger="nerve.server"):
        client.post("/v1/batch", content=big, headers=basic(write_key(shop)))  # owes 4 s
        response = client.post("/v1/batch", content=big, headers=basic(write_key(shop)))
    assert response.status_code == 429
    assert not [r for r in caplog.records if r.name == "nerve.server"
                and r.levelname == "WARNING"]


def test_a_wrong_path_or_method_says_which_is_meant(client: Client, shop: Workspace) -> None:
    """analytics-python given the host `http://127.0.0.1:8700/v1` posts to /v1/v1/batch
    and logged only 'no such endpoint'; GET /v1/batch said 'Method Not Allowed'."""
    batch = orjson.dumps({"batch": [order(1)]})
    doubled = assert_error_shape(client.post("/v1/v1/batch", content=batch,
                                             headers=basic(write_key(shop))), 404, "not_found")
    assert "did you mean /v1/batch?" in doubled["message"]
    assert "without /v1" in doubled["message"]
    typo = assert_error_shape(client.get("/v1/statu"), 404, "not_found")
    assert "did you mean /v1/status?" in typo["message"]
    far = assert_error_shape(client.get("/nothing-like-it-at-all"), 404, "not_found")
    assert "did you mean" not in far["message"]
    method = assert_error_shape(client.get("/v1/batch"), 405, "method_not_allowed")
    assert method["message"] == "GET /v1/batch: not allowed; it takes POST"


def test_the_error_shape_for_every_kind_of_error(client: Client, shop: Workspace,
                                                 state: NerveState) -> None:
    auth = basic(write_key(shop))
    batch = orjson.dumps({"batch": [order(1)]})
    assert_error_shape(client.post("/v1/batch", content=b"{nope", headers=auth), 400,
                       "invalid_json")
    assert_error_shape(client.post("/v1/batch", content=batch), 401, "unauthorized")
    assert_error_shape(client.post("/v1/batch", content=batch, headers=basic("not-a-key")),
                       401, "unauthorized")
    body = assert_error_shape(
        client.post("/v1/batch", content=orjson.dumps({"batch": [order(1), {"type": "track",
                                                                               "userId": "u"}]}),
                    headers=auth), 400, "missing_field")
    assert body["details"] == {"index": 1, "field": "event"}
    assert_error_shape(client.get("/v1/nothing-here"), 404, "not_found")
    assert_error_shape(client.get("/v1/batch"), 405, "method_not_allowed")
    assert_error_shape(client.post("/v1/batch", content=b"x",
                                   headers={**auth, "Content-Encoding": "br"}),
                       415, "unsupported_encoding")
    limit = state.collector.limits.max_request_bytes
    assert_error_shape(client.post("/v1/batch", content=b" " * (limit + 1), headers=auth),
                       413, "payload_too_large")
    assert_error_shape(client.post("/v1/admin/sql", json={"sql": "SELECT 1"}), 401,
                       "unauthorized")
    admin = {"Authorization": f"Bearer {TOKEN}"}
    assert_error_shape(client.post("/v1/admin/sql", json={"sql": "DROP TABLE events"},
                                   headers=admin), 400, "query")
    assert_error_shape(client.post("/v1/admin/sql", json={}, headers=admin), 400,
                       "missing_field")
    zipped = assert_error_shape(
        client.post("/v1/admin/sql", content=gzip.compress(b'{"query": "SELECT 1"}'),
                    headers={**admin, "Content-Encoding": "gzip"}), 415, "unsupported_encoding")
    assert "uncompressed" in zipped["message"]
    # a query that is there but not text is named as such, not as missing
    wrong = assert_error_shape(client.post("/v1/admin/sql", json={"query": 5},
                                           headers=admin), 400, "invalid_field")
    assert wrong["message"] == "query: expected the SQL as a string, got 5"


def test_a_read_body_with_an_unknown_field_is_refused(client: Client) -> None:
    """/v1/admin/sql and /v1/admin/checks/run ignored a field they do not know, as the
    other read endpoints do not: a misspelt ``select`` ran every check."""
    admin = {"Authorization": f"Bearer {TOKEN}"}
    sql = assert_error_shape(client.post("/v1/admin/sql", json={"query": "SELECT 1",
                                                                "limit": 5},
                                         headers=admin), 400, "invalid_field")
    assert sql["message"] == "unknown field(s) limit; expected query, sql"
    run = assert_error_shape(client.post("/v1/admin/checks/run", json={"selct": ["volume"]},
                                         headers=admin), 400, "invalid_field")
    assert run["message"] == "unknown field(s) selct; expected select, now"


def test_sql_with_both_query_and_sql_is_refused(client: Client) -> None:
    """Both names of the one field: the server ran ``query`` and ignored ``sql``."""
    admin = {"Authorization": f"Bearer {TOKEN}"}
    both = assert_error_shape(client.post("/v1/admin/sql", json={"query": "SELECT 1",
                                                                 "sql": "SELECT 2"},
                                          headers=admin), 400, "invalid_field")
    assert both["message"].startswith("query and sql: send the SQL in one of them, not both")


def test_experiments_read_a_basic_header_as_ingest_does(client: Client,
                                                        shop: Workspace) -> None:
    """GET /v1/experiments decoded Basic leniently: junk around the base64 was skipped and
    the key let in, where ingest refuses the header; it now says what ingest says."""
    key = base64.b64encode(f"{write_key(shop)}:".encode()).decode()
    malformed = {"Authorization": f"Basic !!{key}"}
    ingest = assert_error_shape(client.post("/v1/batch", content=orjson.dumps(
        {"batch": [order(1)]}), headers=malformed), 401, "unauthorized")
    refused = assert_error_shape(client.get("/v1/experiments", headers=malformed), 401,
                                 "unauthorized")
    shared = ("the Authorization header holds no write key: its Basic credentials are not "
              "base64 of `key:`; send `Authorization: Basic base64(key:)` with a source's "
              "write key (nerve.toml [[sources]]), or ")
    assert ingest["message"].startswith(shared)
    assert refused["message"].startswith(shared)
    unknown = assert_error_shape(client.get("/v1/experiments", headers=basic("not-a-key")),
                                 401, "unauthorized")
    assert unknown["message"].startswith("unknown write key")
    assert client.get("/v1/experiments", headers=basic(write_key(shop))).status_code == 200


def test_every_endpoint_accepts_its_call(client: Client, shop: Workspace) -> None:
    auth = basic(write_key(shop))
    calls = {
        "track": order(1), "identify": {"userId": "u", "traits": {"plan": "pro"}},
        "page": {"userId": "u", "name": "Home"}, "screen": {"anonymousId": "a", "name": "Home"},
        "group": {"userId": "u", "groupId": "g"}, "alias": {"userId": "u", "previousId": "a"},
    }
    for name, message in calls.items():
        for path in (name, name[0]):
            response = client.post(f"/v1/{path}", content=orjson.dumps(message), headers=auth)
            assert response.status_code == 200, (path, response.text)
    for path in ("batch", "b", "import"):
        response = client.post(f"/v1/{path}", content=orjson.dumps({"batch": [order(2)]}),
                               headers=auth)
        assert response.status_code == 200, path


def test_browser_style_text_plain_gzip_and_write_key_in_body(client: Client,
                                                             shop: Workspace) -> None:
    body = orjson.dumps({"batch": [order(3)], "writeKey": write_key(shop, "web")})
    response = client.post("/v1/b", content=body, headers={"Content-Type": "text/plain"})
    assert response.status_code == 200
    response = client.post("/v1/b", content=gzip.compress(body),
                           headers={"Content-Type": "text/plain", "Content-Encoding": "gzip"})
    assert response.status_code == 200


def test_cors_preflight_allows_the_headers_sdks_send(client: Client) -> None:
    response = client.options("/v1/batch", headers={
        "Origin": "https://shop.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type,x-retry-count",
    })
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    allowed = response.headers["access-control-allow-headers"].lower()
    for header in ("authorization", "content-type", "x-retry-count"):
        assert header in allowed
    simple = client.post("/v1/batch", content=b"{}", headers={"Origin": "https://shop.example"})
    assert simple.headers["access-control-allow-origin"] == "*"


def test_cors_preflight_allows_the_headers_rudderstacks_browser_sdk_sends(
        client: Client) -> None:
    """@rudderstack/analytics-js (3.34.1) sends AnonymousId and SentAt with every event,
    and the Rsa-* headers on a retry: a preflight naming any header not allowed was a
    400, and the browser sent none of its events."""
    sent = {  # what its XhrQueue sets: a first try, then a retry of a recovered item
        "first": "anonymousid,authorization,content-type,sentat",
        "retry": "anonymousid,authorization,content-type,rsa-recovered,rsa-retry-attempt,"
                 "rsa-retry-reason,rsa-since-first-attempt,rsa-since-last-attempt,sentat",
    }
    for attempt, headers in sent.items():
        for path in ("/v1/track", "/v1/page", "/v1/identify", "/v1/batch"):
            response = client.options(path, headers={
                "Origin": "https://pods.example", "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": headers})
            assert response.status_code == 200, (attempt, path, response.text)
            allowed = response.headers["access-control-allow-headers"].lower()
            assert set(headers.split(",")) <= set(allowed.split(", ")), (attempt, path)


def test_health(client: Client) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_ready_follows_what_ingest_answers(client: Client, state: NerveState) -> None:
    assert client.get("/ready").json() == {"status": "ready"}
    state.overloaded = True
    unready = client.get("/ready")
    assert_error_shape(unready, 503, "overloaded")
    assert int(unready.headers["retry-after"]) >= 1
    assert client.get("/health").status_code == 200  # alive all the same
    state.overloaded = False
    assert client.get("/ready").status_code == 200


def test_overload_answers_503_with_retry_after_never_500(client: Client, shop: Workspace,
                                                        state: NerveState) -> None:
    state.overloaded = True
    started = time.monotonic()
    response = client.post("/v1/batch", content=orjson.dumps({"batch": [order(1)]}),
                           headers=basic(write_key(shop)))
    # slowly: a client that retries at once must not keep the workers busy refusing it
    assert time.monotonic() - started >= OVERLOAD_ANSWER_DELAY
    assert_error_shape(response, 503, "overloaded")
    assert int(response.headers["retry-after"]) >= 1
    # the warehouse is what is behind (it said the log was behind the warehouse), and
    # the bound is named; no loader is claimed: a collect-only server has none, and
    # may have no loading server behind it at all
    message = response.json()["message"]
    assert message.startswith("the warehouse is behind the event log")
    assert "max_backlog_bytes" in message
    assert "loader" not in message


def test_an_unknown_header_key_is_401_while_overloaded_too(client: Client, shop: Workspace,
                                                           state: NerveState) -> None:
    """A header key is checked before the backlog, as cheaply: a client with a wrong (or
    rotated) key got 503 and retried, and took a connection for the 0.5 s of each refusal,
    until the backlog cleared and told it the truth. A known key, or one in the body (the
    body is not read while overloaded), still gets the 503."""
    state.overloaded = True
    body = orjson.dumps({"batch": [order(1)]})
    wrong = client.post("/v1/batch", content=body, headers=basic("not-a-key"))
    assert_error_shape(wrong, 401, "unauthorized")
    assert "unknown write key" in wrong.json()["message"]
    assert_error_shape(client.post("/v1/batch", content=body, headers=basic(write_key(shop))),
                       503, "overloaded")
    in_body = orjson.dumps({"batch": [order(1)], "writeKey": "not-a-key"})
    assert_error_shape(client.post("/v1/batch", content=in_body), 503, "overloaded")
    state.overloaded = False


def test_a_read_request_whose_body_drips_gets_408(client: Client, state: NerveState) -> None:
    """body_timeout_seconds bounds the read APIs' bodies too: a caller with a token held
    its connection for as long as it dripped a body (ingest's got 408)."""
    state.body_timeout = 0.2

    async def drip() -> Any:
        yield b'{"query": '
        await anyio.sleep(3)  # the server answers before the rest would come
        yield b'"SELECT 1"}'

    response = client.post("/v1/admin/sql", content=drip(),
                           headers={"Authorization": f"Bearer {TOKEN}"})
    assert_error_shape(response, 408, "body_timeout")
    assert "0.2s" in response.json()["message"]
    assert response.json()["details"] == {"limit_seconds": 0.2}
    # a body that comes in time is read as before; an empty one to checks/run is none
    state.body_timeout = 30
    fine = client.post("/v1/admin/sql", json={"query": "SELECT 1 AS one"},
                       headers={"Authorization": f"Bearer {TOKEN}"})
    assert fine.status_code == 200, fine.text


class FullDisk:
    """Stands in for a log on a full disk (a real full disk is the fault tests' job)."""

    def append(self, batch: Any) -> None:
        pass

    def sync(self) -> None:
        raise OSError(28, "No space left on device")

    def close(self) -> None:
        pass


def test_a_failing_log_answers_503_and_acknowledges_nothing(client: Client, shop: Workspace,
                                                           state: NerveState) -> None:
    state.log = FullDisk()
    state.commit = GroupCommit(state.log)
    response = client.post("/v1/batch", content=orjson.dumps({"batch": [order(1)]}),
                           headers=basic(write_key(shop)))
    body = assert_error_shape(response, 503, "unavailable")
    assert "No space left" in body["message"]
    assert int(response.headers["retry-after"]) >= 1


def test_the_backlog_watch_flags_overload_when_the_log_is_behind(state: NerveState,
                                                                 shop: Workspace) -> None:
    collected = state.collector.collect(orjson.dumps({"batch": [order(i) for i in range(5)]}),
                                        endpoint="batch",
                                        authorization=basic(write_key(shop))["Authorization"])
    state.log.append(collected.record_batch())
    state.log.sync()  # durable, and nothing loads it: the backlog is this batch

    async def watch(limit: int) -> bool:
        task = asyncio.create_task(watch_backlog(state, limit))
        await asyncio.sleep(0.3)
        task.cancel()
        return state.overloaded

    assert anyio.run(watch, 10) is True
    assert anyio.run(watch, 1 << 30) is False


def test_the_backlog_503_gives_the_bound_and_the_backlog(client: Client, state: NerveState,
                                                         shop: Workspace) -> None:
    """Its details were null: a client (or whoever reads its logs) could not tell how far
    over the bound the log was."""
    collected = state.collector.collect(orjson.dumps({"batch": [order(i) for i in range(5)]}),
                                        endpoint="batch",
                                        authorization=basic(write_key(shop))["Authorization"])
    state.log.append(collected.record_batch())
    state.log.sync()  # durable, and nothing loads it: the backlog is this batch

    async def watch() -> None:
        task = asyncio.create_task(watch_backlog(state, 10))
        await asyncio.sleep(0.3)
        task.cancel()

    anyio.run(watch)
    on_disk = sum(f.stat().st_size for f in shop.log_dir.rglob("*") if f.is_file())
    for answer in (client.post("/v1/batch", content=orjson.dumps({"batch": [order(9)]}),
                               headers=basic(write_key(shop))), client.get("/ready")):
        details = assert_error_shape(answer, 503, "overloaded")["details"]
        assert details["max_backlog_bytes"] == 10
        assert 10 < details["backlog_bytes"] <= on_disk
        assert details["log"] == "local"
        assert details["behind_seconds"] >= 0


def test_a_disk_short_of_room_gives_the_room_that_taking_events_needs(
        client: Client, state: NerveState, shop: Workspace) -> None:
    """Once short of room, ingest resumes only with 4 MiB more than loading needs; the
    503s, /ready and nerve status gave the figure without them: a 24 MiB disk with
    20,238,336 bytes free refused every event while "needing" 16,777,216. The free
    bytes are handed to the watch here: a real disk's WAL and metadata move them."""
    mib = 1 << 20
    _watch_room(state, (10 * mib, 16 * mib))
    _watch_room(state, (19 * mib, 16 * mib))  # more than loading needs, still refused
    assert state.short_of_room
    state.overloaded = True  # as watch_backlog sets it
    for answer in (client.post("/v1/batch", content=orjson.dumps({"batch": [order(1)]}),
                               headers=basic(write_key(shop))), client.get("/ready")):
        details = assert_error_shape(answer, 503, "overloaded")["details"]
        assert details["warehouse_free_bytes"] == 19 * mib
        assert details["warehouse_needs_bytes"] == 20 * mib
    _watch_room(state, (20 * mib, 16 * mib))  # the figure given: taking events again
    assert not state.short_of_room


def test_the_backlog_watch_logs_when_the_503s_begin_and_end(
        state: NerveState, shop: Workspace, caplog: pytest.LogCaptureFixture) -> None:
    """Every event was refused with 503 and the log said nothing."""
    collected = state.collector.collect(orjson.dumps({"batch": [order(i) for i in range(5)]}),
                                        endpoint="batch",
                                        authorization=basic(write_key(shop))["Authorization"])
    state.log.append(collected.record_batch())
    state.log.sync()
    limits = [10]

    async def watch() -> None:
        task = asyncio.create_task(watch_backlog(state, limits[0]))
        await asyncio.sleep(0.3)  # one look: over the bound
        assert state.overloaded
        Loader(shop.log_dir, state.warehouse).load_once()  # the loader catches up
        await asyncio.sleep(0.7)  # the next look
        task.cancel()

    with caplog.at_level(logging.INFO, logger="nerve.server"):
        anyio.run(watch)
    assert not state.overloaded
    said = [(r.levelname, r.getMessage(), getattr(r, "max_backlog_bytes", None))
            for r in caplog.records if r.name == "nerve.server"]
    assert said == [
        ("WARNING", "the warehouse is behind the event log: answering 503 to events until "
                    "the loader catches up", 10),
        ("INFO", "the loader caught up: taking events again", 10)]
    [begun] = [r for r in caplog.records if r.levelname == "WARNING"]
    assert begun.__dict__["backlog_bytes"] > 10


@pytest.mark.parametrize("value", ['"soon"', "-1", "true"])
def test_a_bad_commit_interval_is_refused_naming_file_and_key(shop: Workspace,
                                                              value: str) -> None:
    toml = shop.root / "nerve.toml"
    toml.write_text(toml.read_text().replace(
        "[collector]\n", f"[collector]\ncommit_interval_ms = {value}\n", 1))
    with pytest.raises(WorkspaceError) as caught:  # when the workspace loads
        Workspace.load(shop.root)
    assert "nerve.toml" in str(caught.value)
    assert "[collector] commit_interval_ms" in str(caught.value)


def test_the_commit_interval_is_configurable(shop: Workspace, state: NerveState) -> None:
    assert state.commit.min_interval == 0.010  # the default
    toml = shop.root / "nerve.toml"
    toml.write_text(toml.read_text().replace("[collector]\n",
                                             "[collector]\ncommit_interval_ms = 0\n", 1))
    workspace = Workspace.load(shop.root)
    other = NerveState(workspace=workspace, catalog=state.catalog, warehouse=state.warehouse,
                       log=state.log, admin_token=TOKEN)
    assert other.commit.min_interval == 0.0


class FailsFirstSync(LogWriter):
    """A real writer whose first fsync is slow and fails (the disk fills mid-round)."""

    failed = False

    def sync(self) -> None:
        if not FailsFirstSync.failed:
            FailsFirstSync.failed = True
            time.sleep(0.2)  # requests arriving meanwhile queue for the next round
            raise OSError(28, "No space left on device")
        super().sync()


def test_requests_queued_behind_a_failed_write_get_503_not_500(
        shop: Workspace, state: NerveState) -> None:
    """The failed round's requests close the writer; those already queued for the next
    round met a closed writer, and were answered 500 (a bug to SDKs, which may not retry).
    Each must get a retryable 503 or a 200, and every 200 must be durable in the log."""
    FailsFirstSync.failed = False
    state.log.close()
    state.log_factory = lambda: LogWriter(shop.log_dir, "test")
    state.log = FailsFirstSync(shop.log_dir, "test")
    state.commit = GroupCommit(state.log, min_interval=0.05)
    app = create_app(state)
    auth = basic(write_key(shop))

    async def send_all() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://nerve.test") as c:
            async def post(i: int, delay: float) -> httpx.Response:
                await asyncio.sleep(delay)
                return await c.post("/v1/batch", headers=auth,
                                    content=orjson.dumps({"batch": [order(i)]}))
            # the first request's round fails; the others arrive while it is failing
            return list(await asyncio.gather(post(0, 0), *(post(i, 0.05 + 0.01 * i)
                                                           for i in range(1, 8))))

    answers = anyio.run(send_all)
    statuses = [a.status_code for a in answers]
    assert 500 not in statuses, [a.text for a in answers]
    assert 503 in statuses  # the failed round's request at least
    for answer in answers:
        if answer.status_code == 503:
            assert_error_shape(answer, 503, answer.json()["code"])
            assert int(answer.headers["retry-after"]) >= 1
    # what was acknowledged is in the log
    acked = {f"m-{i}" for i, a in enumerate(answers) if a.status_code == 200}
    state.log.close()
    logged = {mid for seg in list_segments(shop.log_dir, "test")
              for _, batch in read_segment(seg.path).batches
              for mid in batch.column("message_id").to_pylist()}
    assert acked <= logged


@pytest.mark.parametrize("authorization", ["Basic %%%%", "Basic \xff\xfe", "Basic ",
                                           "Bearer s3cr3t-token"],
                         ids=["not base64", "not ascii", "empty", "bearer"])
def test_an_unreadable_authorization_header_is_named_alike_by_ingest_and_source_config(
        client: Client, shop: Workspace, authorization: str) -> None:
    """``GET /sourceConfig/`` with a Basic header that is not base64 said "missing write
    key", as if none had been sent, where ingest says what is wrong with the header."""
    headers = {"Authorization": authorization.encode("latin-1")}
    ingest = assert_error_shape(client.post("/v1/batch", headers=headers,
                                            content=orjson.dumps({"batch": [order(1)]})),
                                401, "unauthorized")
    config = assert_error_shape(client.get("/sourceConfig/", headers=headers), 401,
                                "unauthorized")
    assert ingest["message"].startswith("the Authorization header holds no write key: ")
    assert config["message"] == ingest["message"].replace(
        "or the body's writeKey", "or the writeKey query parameter")
    assert "s3cr3t" not in config["message"]
    # the query's key is still taken when the header holds none
    assert client.get("/sourceConfig/", headers=headers,
                      params={"writeKey": write_key(shop)}).status_code == 200


def test_a_refused_cors_preflight_has_the_error_shape_naming_what_was_refused(
        client: Client) -> None:
    """Starlette answered a plain-text "Disallowed CORS headers": the one error shape,
    and no word of which header a browser SDK asked for that nerve does not allow."""
    for path in ("/v1/batch", "/sourceConfig/", "/v1/projects/k/settings"):
        response = client.options(path, headers={
            "Origin": "https://shop.example", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, X-Api-Version,x-trace-id"})
        body = assert_error_shape(response, 400, "cors_refused")
        assert body["message"].startswith("CORS preflight refused: headers 'X-Api-Version', "
                                          "'x-trace-id' not allowed; a browser may send "
                                          "Authorization, Content-Type, ")
        assert body["details"]["headers"] == ["X-Api-Version", "x-trace-id"]
        assert body["details"]["method"] == "POST"
        assert response.headers["access-control-allow-origin"] == "*"
    method = assert_error_shape(client.options("/v1/batch", headers={
        "Origin": "https://shop.example", "Access-Control-Request-Method": "DELETE"}),
        400, "cors_refused")
    assert method["message"].startswith("CORS preflight refused: method 'DELETE' not allowed")
    assert method["details"]["headers"] == []
