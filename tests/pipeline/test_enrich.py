import pytest

from nerve.pipeline import enrich_context, parse_user_agent

IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
          "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1")
CHROME_LINUX = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                "Chrome/120.0.0.0 Safari/537.36")


def test_parse_browser_os_device() -> None:
    parsed = parse_user_agent(IPHONE)
    assert parsed["os"] == {"name": "iOS", "version": "17.1"}
    assert parsed["device"]["type"] == "mobile"
    assert parsed["device"]["manufacturer"] == "Apple"
    assert parsed["browser"]["name"] == "Mobile Safari"
    assert parsed["bot"] is False
    assert parse_user_agent(CHROME_LINUX)["device"]["type"] == "desktop"


def test_bots_are_flagged() -> None:
    for agent in ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
                  "Mozilla/5.0 (X11; Linux x86_64) HeadlessChrome/120.0 Safari/537.36"):
        assert parse_user_agent(agent)["bot"] is True
        assert enrich_context({"userAgent": agent})["bot"] is True


def test_enrich_fills_only_what_is_missing() -> None:
    ctx = enrich_context({"userAgent": IPHONE}, client_ip="203.0.113.5")
    assert ctx["ip"] == "203.0.113.5"
    assert ctx["os"]["name"] == "iOS"
    assert ctx["device"]["type"] == "mobile"
    sent = {"userAgent": IPHONE, "ip": "1.2.3.4", "os": {"name": "iOS", "version": "18.0"}}
    ctx = enrich_context(sent, client_ip="203.0.113.5")
    assert ctx["ip"] == "1.2.3.4"
    assert ctx["os"] == {"name": "iOS", "version": "18.0"}
    assert "bot" not in ctx


def test_sdk_library_agent_from_header_is_not_a_device() -> None:
    ctx = enrich_context({}, user_agent="analytics-python/2.4.0")
    assert "os" not in ctx
    assert "device" not in ctx
    ctx = enrich_context({}, user_agent=CHROME_LINUX)
    assert ctx["os"]["name"] == "Linux"


@pytest.mark.parametrize("agent", ["curl/8.5.0", "python-requests/2.31.0", "Wget/1.21.4",
                                   "okhttp/4.12.0"])
def test_an_http_tool_in_the_header_is_not_a_browser(agent: str) -> None:
    """ua-parser names curl and Python Requests as browser families; no person sent them."""
    ctx = enrich_context({}, user_agent=agent)
    assert not {"os", "device", "browser"} & ctx.keys(), ctx
    # a message's own context.userAgent is the client's word: its OS and device are
    # parsed, but it names no browser unless it is a browser's
    ctx = enrich_context({"userAgent": "curl/8.5.0"})
    assert "browser" not in ctx


@pytest.mark.parametrize("agent", ["okhttp/4.12.0", "Dart/3.2 (dart:io)", "curl/8.5.0",
                                   "python-requests/2.31.0"])
def test_an_agent_that_names_no_os_is_not_taken_for_a_desktop(agent: str) -> None:
    # an app's own HTTP library in context.userAgent: nothing says what device it runs on
    assert parse_user_agent(agent)["device"]["type"] is None
    ctx = enrich_context({"userAgent": agent})
    assert not {"os", "device", "browser"} & ctx.keys(), ctx


def test_an_apps_own_agent_gives_its_os_and_device_but_no_browser() -> None:
    """analytics-android puts Dalvik's agent in context.userAgent: the events were stored
    with browser "Android", beside Chrome in a breakdown by browser."""
    dalvik = "Dalvik/2.1.0 (Linux; U; Android 14; Pixel 8 Build/AP2A.240805.005)"
    ctx = enrich_context({"userAgent": dalvik})
    assert (ctx["os"]["name"], ctx["os"]["version"]) == ("Android", "14")
    assert ctx["device"]["model"] == "Pixel 8"
    assert "browser" not in ctx
    ctx = enrich_context({"userAgent": "Pedal/3.2.1 CFNetwork/1496.0.7 Darwin/23.5.0"})
    assert "browser" not in ctx
    assert enrich_context({"userAgent": CHROME_LINUX})["browser"]["name"] == "Chrome"


def test_placeholders_in_a_user_agent_are_not_reported_as_the_device() -> None:
    """Chrome on Android sends a reduced agent since version 110: every phone says
    "Android 10; K" whatever its Android version and model. It was stored as Android 10
    on a "Generic_Android" device "K" (ua-parser's placeholders), so a breakdown by OS
    version or model put every Chrome user in one wrong bucket."""
    reduced = ("Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
               "Chrome/120.0.0.0 Mobile Safari/537.36")
    ctx = enrich_context({"userAgent": reduced})
    assert ctx["os"] == {"name": "Android", "version": None}
    assert ctx["device"] == {"type": "mobile"}
    assert ctx["browser"] == {"name": "Chrome Mobile", "version": "120.0.0"}
    # an app's CFNetwork agent names no model ("iOS-Device" is ua-parser's stand-in)
    app = enrich_context({"userAgent": "Pedal/3.2.1 CFNetwork/1496.0.7 Darwin/23.5.0"})
    assert app["device"] == {"type": "mobile", "manufacturer": "Apple"}
    # a real Android 10 phone that names its model keeps both
    pixel = ("Mozilla/5.0 (Linux; Android 10; Pixel 4) AppleWebKit/537.36 (KHTML, like "
             "Gecko) Chrome/83.0.4103.106 Mobile Safari/537.36")
    ctx = enrich_context({"userAgent": pixel})
    assert ctx["os"] == {"name": "Android", "version": "10"}
    assert ctx["device"]["model"] == "Pixel 4"
