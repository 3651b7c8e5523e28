"""``GET /v1/projects/{write_key}/settings``: what Segment's SDKs fetch before they send.

Over plain HTTP against a real ``nerve serve``, and end to end: analytics.js
(``@segment/analytics-next``, its UMD build from tests/node) in headless Chromium, given
only a write key and ``cdnURL``, sends identify/page/track that land in the warehouse,
and talks to nobody but the page's own server and nerve.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import orjson
import pytest
from serverkit import EVENTS, HTTP, basic, rows, write_key

from nerve.audit import read_records
from nerve.server import pipeline_health
from nerve.workspace import Workspace

NODE_DIR = Path(__file__).parents[1] / "node"
ORIGIN = {"Origin": "https://shop.example"}
#: a desktop Chrome on macOS: headless Chromium's own agent is (rightly) taken for a bot
USER_AGENT = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
              "(KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36")


def settings_url(server: Any, key: str) -> str:
    return f"{server.url}/v1/projects/{key}/settings"


def segmentio(answer: httpx.Response) -> dict[str, Any]:
    assert answer.status_code == 200, answer.text
    settings: dict[str, Any] = answer.json()
    return dict(settings["integrations"]["Segment.io"])


def test_a_known_key_gets_settings_that_send_to_the_host_it_asked_and_nowhere_else(
        shop: Workspace, serve: Callable[..., Any]) -> None:
    server = serve(shop)
    key = write_key(shop)
    answer = HTTP.get(settings_url(server, key))
    assert answer.headers["content-type"] == "application/json"
    settings = answer.json()
    assert settings["integrations"] == {"Segment.io": {
        "apiKey": key, "apiHost": f"127.0.0.1:{server.port}/v1", "protocol": "http"}}
    # nothing that makes analytics.js load code or send counters elsewhere
    assert settings["metrics"] == {"sampleRate": 0}
    assert settings["remotePlugins"] == []
    assert settings["enabledMiddleware"] == {}
    assert settings["legacyVideoPluginsEnabled"] is False

    # the host is the one the client used, even a name nerve never heard of...
    named = HTTP.get(settings_url(server, key), headers={"Host": "collect.example:8443"})
    assert segmentio(named)["apiHost"] == "collect.example:8443/v1"
    # ...and a proxy's headers are nobody's word without [collector] trusted_proxy_header
    spoofed = HTTP.get(settings_url(server, key), headers={
        "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"})
    assert segmentio(spoofed) == {"apiKey": key, "apiHost": f"127.0.0.1:{server.port}/v1",
                                  "protocol": "http"}


def test_an_unknown_key_or_a_host_that_is_no_host_is_refused_in_the_one_error_shape(
        shop: Workspace, serve: Callable[..., Any]) -> None:
    server = serve(shop)
    unknown = HTTP.get(settings_url(server, "not-a-key"), headers=ORIGIN)
    assert unknown.status_code == 404
    assert unknown.headers["access-control-allow-origin"] == "*"  # the page can read why
    assert unknown.json() == {
        "code": "unknown_write_key",
        "message": "unknown write key: it matches no [[sources]] in nerve.toml",
        "details": None}
    # analytics.js says so in the visitor's browser only: the server's log and status too
    warned = [orjson.loads(line) for line in server.log.read_text().splitlines()
              if '"unknown_write_key"' in line]
    assert [(w["level"], w["status"], w["refused"]) for w in warned] == [("warning", 404, 1)]
    assert "not-a-key" not in warned[0]["message"]
    assert pipeline_health(shop)["refusals"] == {"404 unknown_write_key": 1}
    bad_host = HTTP.get(settings_url(server, write_key(shop)),
                        headers={"Host": "shop.example/evil?x="})
    assert bad_host.status_code == 400
    assert bad_host.json()["code"] == "bad_host"
    assert bad_host.json()["details"] == {"host": "shop.example/evil?x="}


def test_a_key_with_white_space_around_it_is_refused_saying_so(
        shop: Workspace, serve: Callable[..., Any]) -> None:
    """Ingest names the source whose key came with white space around it (a newline kept
    from a secret file); the settings, which analytics.js fetches first, said only
    "unknown write key"."""
    server = serve(shop)
    for spaced in (write_key(shop) + "%0A", "%20" + write_key(shop)):
        answer = HTTP.get(settings_url(server, spaced))
        assert answer.status_code == 404
        assert answer.json()["code"] == "unknown_write_key"
        assert "'server' with white space around it" in answer.json()["message"]
    # the hint names the source, never the key (it may be another's secret)
    assert write_key(shop) not in server.log.read_text()


def test_fetching_settings_is_no_read_to_audit(shop: Workspace,
                                              serve: Callable[..., Any]) -> None:
    # every page view fetches them, and they hold no data: a record each would only bury
    # the reads of the warehouse (and write the key into the audit log)
    server = serve(shop)
    assert HTTP.get(settings_url(server, write_key(shop))).status_code == 200
    assert HTTP.get(settings_url(server, "not-a-key")).status_code == 404
    assert HTTP.get(server.url + "/v1/experiments",
                    headers=basic(write_key(shop))).status_code == 200
    assert [r["action"] for r in read_records(shop)] == ["/v1/experiments"]


def test_any_origin_may_fetch_the_settings(shop: Workspace, serve: Callable[..., Any]) -> None:
    server = serve(shop)
    url = settings_url(server, write_key(shop))
    got = HTTP.get(url, headers=ORIGIN)
    assert got.headers["access-control-allow-origin"] == "*"
    head = HTTP.head(url, headers=ORIGIN)
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["access-control-allow-origin"] == "*"
    preflight = HTTP.options(url, headers={**ORIGIN, "Access-Control-Request-Method": "GET"})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert "GET" in preflight.headers["access-control-allow-methods"]


def test_behind_a_trusted_proxy_the_settings_name_the_host_and_scheme_it_saw(
        make_workspace: Callable[..., Workspace], serve: Callable[..., Any]) -> None:
    ws = make_workspace(EVENTS)
    toml = ws.root / "nerve.toml"
    text = toml.read_text()
    assert "[collector]\n" in text
    toml.write_text(text.replace(
        "[collector]\n", '[collector]\ntrusted_proxy_header = "X-Forwarded-For"\n'))
    ws = Workspace.load(ws.root)
    server = serve(ws)
    key = write_key(ws)
    proxied = HTTP.get(settings_url(server, key), headers={
        # the last entry is the one the trusted proxy added
        "X-Forwarded-Host": "claimed.example, collect.shop.example",
        "X-Forwarded-Proto": "https"})
    assert segmentio(proxied) == {"apiKey": key, "apiHost": "collect.shop.example/v1",
                                  "protocol": "https"}
    # a proxy that adds a header line of its own (HAProxy): the last line's last entry
    lines = HTTP.get(settings_url(server, key), headers=[
        ("X-Forwarded-Host", "claimed.example"), ("X-Forwarded-Host", "collect.shop.example"),
        ("X-Forwarded-Proto", "http"), ("X-Forwarded-Proto", "https")])
    assert segmentio(lines) == segmentio(proxied)
    direct = HTTP.get(settings_url(server, key))  # no proxy headers: the connection's view
    assert segmentio(direct)["apiHost"] == f"127.0.0.1:{server.port}/v1"
    assert segmentio(direct)["protocol"] == "http"


def test_rudderstacks_source_config_is_served_for_a_known_key_only(
        shop: Workspace, serve: Callable[..., Any]) -> None:
    """RudderStack's browser SDK fetches ``{configUrl}/sourceConfig/?...&writeKey=KEY`` with
    the key as the Basic user too; nerve answered 404, and the SDK loaded nothing."""
    server = serve(shop)
    key = write_key(shop)
    query = {"p": "npm", "v": "3.34.1", "build": "modern", "writeKey": key}
    answers = [HTTP.get(f"{server.url}/sourceConfig/", params=query,
                        headers={**ORIGIN, **basic(key)}),
               HTTP.get(f"{server.url}/sourceConfig", params=query, headers=ORIGIN),
               HTTP.get(f"{server.url}/sourceConfig/", headers={**ORIGIN, **basic(key)})]
    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert answer.headers["access-control-allow-origin"] == "*"
        source = answer.json()["source"]
        # the source the key is of, enabled, with nothing that makes the browser load code
        # from RudderStack's CDN (destinations) or send anywhere else (config.statsCollection)
        assert (source["name"], source["writeKey"], source["enabled"]) == ("server", key, True)
        assert source["id"]
        assert (source["destinations"], source["config"]) == ([], {})
    preflight = HTTP.options(f"{server.url}/sourceConfig/", headers={
        **ORIGIN, "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization"})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "*"

    # the Basic user is the key the SDK holds: a key in the query does not override it
    for headers, params in (({}, {"writeKey": "not-a-key"}), (basic("not-a-key"), query),
                            ({}, {})):
        refused = HTTP.get(f"{server.url}/sourceConfig/", params=params,
                           headers={**ORIGIN, **headers})
        assert refused.status_code == 401
        assert refused.headers["access-control-allow-origin"] == "*"  # the page can read why
        assert refused.json()["code"] == "unauthorized"
    assert "not-a-key" not in server.log.read_text()
    assert pipeline_health(shop)["refusals"] == {"401 unauthorized": 3}
    assert read_records(shop) == []  # no read of data: nothing to audit


# ----------------------------------------------------------------------------- analytics.js


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def web_app() -> Iterator[str]:
    """The shop's own web server (another origin than nerve): tests/node over HTTP."""
    handler = functools.partial(_Quiet, directory=str(NODE_DIR))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def run_analytics_js(page_url: str, sdk: str = "@segment/analytics-next") -> dict[str, Any]:
    """Open ``page_url`` in headless Chromium; what it did (drive_analytics_js.mjs)."""
    node = shutil.which("node")
    modules = NODE_DIR / "node_modules"
    if node is None or not (modules / sdk).is_dir() \
            or not (modules / "playwright-core").is_dir():
        pytest.skip("needs Node.js and `npm install` in tests/node (.ci/run does it)")
    browser = next(filter(None, map(shutil.which, ("chromium", "chromium-browser",
                                                   "google-chrome"))), None)
    if browser is None:
        pytest.skip("headless Chromium is not installed (apt-get install chromium)")
    done = subprocess.run([node, str(NODE_DIR / "drive_analytics_js.mjs"), browser, page_url,
                           USER_AGENT], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = orjson.loads(done.stdout)
    return result


def requests_to_nerve(run: dict[str, Any], web_app: str, server_url: str
                      ) -> list[tuple[str, str, int]]:
    """The browser's requests to nerve, sorted, after checking that the page ran without
    an error or a failed request and talked to no host but the page's and nerve."""
    assert run["results"]["errors"] == []
    assert run["failed"] == []
    hosts = {urlsplit(r["url"]).netloc for r in run["requests"]}
    assert hosts == {urlsplit(web_app).netloc, urlsplit(server_url).netloc}  # nobody else
    return sorted((r["method"], urlsplit(r["url"]).path, r["status"])
                  for r in run["requests"] if r["url"].startswith(server_url))


@pytest.mark.node
@pytest.mark.timeout(240)
def test_analytics_js_sends_to_nerve_given_only_its_cdn_url(
        shop: Workspace, serve: Callable[..., Any], web_app: str) -> None:
    server = serve(shop)
    key = write_key(shop)
    query = urlencode({"writeKey": key, "cdnURL": server.url})
    run = run_analytics_js(f"{web_app}/browser/index.html?{query}")

    to_nerve = requests_to_nerve(run, web_app, server.url)
    assert to_nerve == sorted([("GET", f"/v1/projects/{key}/settings", 200),
                                       ("POST", "/v1/i", 200), ("POST", "/v1/p", 200),
                                       ("POST", "/v1/t", 200)])

    assert server.stop() == 0
    ids = run["results"]["messageIds"]
    landed = {r["message_id"]: r for r in rows(
        shop, "SELECT message_id, type, event, name, user_id, properties, traits, context, "
              "source FROM events WHERE user_id = 'web-user-1'")}
    assert set(landed) == set(ids.values())
    track, page, identify = (landed[ids[call]] for call in ("track", "page", "identify"))
    assert (track["type"], track["event"], track["source"]) == ("track", "order_completed",
                                                                "server")
    assert track["properties"] == {"order_id": "web-o-1", "revenue": 12.5, "currency": "EUR"}
    assert (page["type"], page["name"]) == ("page", "Pricing")
    assert page["properties"]["category"] == "Docs"
    assert page["properties"]["path"] == "/pricing"
    assert identify["traits"] == {"plan": "pro"}
    for landed_row in (track, page, identify):
        context = landed_row["context"]
        assert context["library"]["name"] == "analytics.js"
        assert context["userAgent"] == USER_AGENT
        # enriched by the collector from the user agent analytics.js sent
        assert context["browser"] == {"name": "Chrome", "version": "126.0.0"}
        assert context["os"] == {"name": "Mac OS X", "version": "10.15.7"}


@pytest.mark.node
@pytest.mark.timeout(240)
@pytest.mark.parametrize("in_page", [False, True], ids=["config_url", "get_source_config"])
def test_rudderstacks_browser_sdk_sends_to_nerve_as_its_data_plane(
        shop: Workspace, serve: Callable[..., Any], web_app: str, in_page: bool) -> None:
    """Given nerve as its configUrl and dataPlaneUrl, and nothing else, the SDK fetches its
    source config from nerve (it got a 404, and loaded nothing); given it in the page
    instead (getSourceConfig), it fetches none. @rudderstack/analytics-js sends AnonymousId
    and SentAt headers: their preflight was refused (400), and not one event reached nerve
    (docs/collector.md)."""
    server = serve(shop)
    key = write_key(shop)
    query = {"writeKey": key, "dataPlaneUrl": server.url}
    query.update({"getSourceConfig": "1"} if in_page else {"configUrl": server.url})
    run = run_analytics_js(f"{web_app}/browser/rudderstack.html?{urlencode(query)}",
                           sdk="@rudderstack/analytics-js")

    to_nerve = requests_to_nerve(run, web_app, server.url)
    sent = [("POST", "/v1/identify", 200), ("POST", "/v1/page", 200),
            ("POST", "/v1/track", 200)]
    fetched = [] if in_page else [("GET", "/sourceConfig/", 200)]
    assert to_nerve == sorted(sent + fetched)

    assert server.stop() == 0
    landed = {r["type"]: r for r in rows(
        shop, "SELECT type, event, name, user_id, properties, traits, context, source "
              "FROM events WHERE user_id = 'rudder-web-1'")}
    assert set(landed) == {"identify", "page", "track"}
    assert landed["track"]["event"] == "order_completed"
    assert landed["track"]["properties"] == {"order_id": "rudder-o-1", "revenue": 12.5,
                                             "currency": "EUR"}
    assert landed["page"]["name"] == "Pricing"
    assert landed["identify"]["traits"] == {"plan": "pro"}
    assert landed["track"]["context"]["userAgent"] == USER_AGENT
    # its context.app (the SDK's name) and empty os do not hide the browser and OS
    for row in landed.values():
        assert row["context"]["app"]["namespace"] == "com.rudderlabs.javascript"
        assert row["context"]["browser"]["name"] == "Chrome"
        assert row["context"]["os"]["name"] == "Mac OS X"


@pytest.mark.node
@pytest.mark.timeout(240)
@pytest.mark.parametrize("batching", [False, True], ids=["one_by_one", "batching"])
def test_hightouchs_browser_sdk_sends_every_call_to_nerve_as_its_api_host(
        shop: Workspace, serve: Callable[..., Any], web_app: str, batching: bool) -> None:
    """Hightouch's analytics.js fork (@ht-sdks/events-sdk-js-browser) fetches no settings:
    given nerve as its apiHost it sends each call to /v1/identify, /v1/page... (or all of
    them to /v1/batch), with the write key in the body. All six calls land once, with
    their ids, and the browser, OS and device from the user agent."""
    server = serve(shop)
    key = write_key(shop)
    query = {"writeKey": key, "apiHost": urlsplit(server.url).netloc}
    query.update({"batching": "1"} if batching else {})
    run = run_analytics_js(f"{web_app}/browser/hightouch.html?{urlencode(query)}",
                           sdk="@ht-sdks/events-sdk-js-browser")

    to_nerve = requests_to_nerve(run, web_app, server.url)
    calls = ("identify", "page", "track", "screen", "group", "alias")
    assert to_nerve == ([("POST", "/v1/batch", 200)] if batching
                        else sorted(("POST", f"/v1/{call}", 200) for call in calls))

    assert server.stop() == 0
    ids = run["results"]["messageIds"]
    landed = rows(shop, "SELECT message_id, type, event, name, user_id, anonymous_id, "
                        "group_id, previous_id, properties, traits, context FROM events "
                        "WHERE user_id IN ('ht-web-1', 'ht-web-2')")
    assert sorted(r["message_id"] for r in landed) == sorted(ids.values())  # each once
    by_type = {r["type"]: r for r in landed}
    assert by_type["track"]["event"] == "order_completed"
    assert by_type["track"]["properties"] == {"order_id": "ht-o-1", "revenue": 12.5,
                                              "currency": "EUR"}
    assert by_type["identify"]["traits"] == {"plan": "pro"}
    assert (by_type["page"]["name"], by_type["screen"]["name"]) == ("Pricing", "Player")
    assert by_type["group"]["group_id"] == "acme"
    assert by_type["group"]["traits"] == {"name": "ACME"}
    assert (by_type["alias"]["user_id"], by_type["alias"]["previous_id"]) == ("ht-web-2",
                                                                              "ht-web-1")
    assert len({r["anonymous_id"] for r in landed}) == 1  # one browser
    for row in landed:
        assert row["context"]["library"]["name"] == "events-sdk-js"
        assert row["context"]["browser"] == {"name": "Chrome", "version": "126.0.0"}
        assert row["context"]["os"] == {"name": "Mac OS X", "version": "10.15.7"}
        assert row["context"]["ip"] == "127.0.0.0"  # truncated


@pytest.mark.node
@pytest.mark.timeout(240)
def test_customerios_browser_sdk_sends_to_nerve_given_its_settings_in_the_page(
        shop: Workspace, serve: Callable[..., Any], web_app: str) -> None:
    """Customer.io's analytics.js fork (@customerio/cdp-analytics-browser) reads its host
    from its own integration, 'Customer.io Data Pipelines': given only nerve's cdnURL it
    sent every event to cdp.customer.io, and nerve's settings cannot name it too
    (analytics-next would then load a destination from Segment's CDN). Given its settings
    in the page, as docs/collector.md says, it fetches nothing and sends to nerve alone."""
    server = serve(shop)
    key = write_key(shop)
    query = urlencode({"writeKey": key, "apiHost": urlsplit(server.url).netloc})
    run = run_analytics_js(f"{web_app}/browser/customerio.html?{query}",
                           sdk="@customerio/cdp-analytics-browser")

    to_nerve = requests_to_nerve(run, web_app, server.url)
    assert to_nerve == [("POST", "/v1/i", 200), ("POST", "/v1/t", 200)]

    assert server.stop() == 0
    ids = run["results"]["messageIds"]
    landed = {r["type"]: r for r in rows(
        shop, "SELECT message_id, type, event, properties, traits, context FROM events "
              "WHERE user_id = 'cio-web-1'")}
    assert {t: r["message_id"] for t, r in landed.items()} == ids
    assert landed["track"]["properties"] == {"order_id": "cio-o-1", "revenue": 12.5,
                                             "currency": "EUR"}
    assert landed["identify"]["traits"] == {"plan": "pro"}
    for row in landed.values():
        assert row["context"]["library"]["name"] == "analytics.js"
        assert row["context"]["browser"] == {"name": "Chrome", "version": "126.0.0"}
