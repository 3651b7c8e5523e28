import pytest

from nerve.pipeline import Guard, PrivacyPolicy, enrich_context, parse_user_agent

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


#: what WKWebView says (analytics-swift sends it as context.userAgent), and Android's
#: WebView ("wv") as apps that take their agent from it send
WKWEBVIEW = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
             "(KHTML, like Gecko) Mobile/15E148")
ANDROID_WEBVIEW = ("Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/AP2A.240805.005; wv) "
                   "AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/120.0.0.0 "
                   "Mobile Safari/537.36")
#: what a mobile SDK's context holds besides the agent
APP_CONTEXT = {"app": {"name": "Podz", "version": "2.3", "build": "45"},
               "library": {"name": "analytics-ios", "version": "4.1.8"},
               "device": {"manufacturer": "Apple", "model": "iPhone15,2", "type": "ios"}}


@pytest.mark.parametrize("agent", [WKWEBVIEW, ANDROID_WEBVIEW])
def test_a_native_app_s_web_view_agent_names_no_browser(agent: str) -> None:
    """An iOS app's events got browser "Mobile Safari UI/WKWebView": a breakdown by browser
    counted the app as a browser. A context with app (every mobile SDK sends it) is an
    app's."""
    ctx = enrich_context({**APP_CONTEXT, "userAgent": agent})
    assert "browser" not in ctx
    assert ctx["device"] == APP_CONTEXT["device"]  # the SDK's own, as sent
    assert ctx["os"]["name"] in ("iOS", "Android")
    guard = Guard(PrivacyPolicy(secret=b"k", ip="keep"))
    assert "browser" not in guard.context({**APP_CONTEXT, "userAgent": agent}, None, None)
    # the same agent from analytics.js (a page inside a hybrid app's web view): no app, so
    # the web view is its browser, also when a plugin added a device (as the demo's does)
    page = enrich_context({"userAgent": agent, "library": {"name": "analytics.js"},
                           "device": {"type": "web"}})
    assert page["browser"]["name"] in ("Mobile Safari UI/WKWebView", "Chrome Mobile WebView")


def test_placeholders_in_a_user_agent_are_not_reported_as_the_device() -> None:
    """Chrome on Android sends a reduced agent since version 110: every phone says
    "Android 10; K" whatever its Android version and model. It was stored as Android 10
    on a "Generic_Android" device "K" (ua-parser's placeholders), so a breakdown by OS
    version or model put every Chrome user in one wrong bucket."""
    reduced = ("Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
               "Chrome/120.0.0.0 Mobile Safari/537.36")
    ctx = enrich_context({"userAgent": reduced})
    assert ctx["os"] == {"name": "Android"}
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


def test_what_an_agent_does_not_say_is_absent_not_null() -> None:
    """Enrichment stored ``os.version`` (and ``browser.version``) as JSON null when the
    agent named none, where the SDKs leave the key out and docs/privacy.md says it is
    left out; ua-parser's "Other" (no OS recognised) was stored as an OS name."""
    firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
    assert enrich_context({"userAgent": firefox})["os"] == {"name": "Linux"}
    tizen = ("Mozilla/5.0 (SMART-TV; LINUX; Tizen 6.5) AppleWebKit/537.36 (KHTML, like "
             "Gecko) 85.0.4183.93/6.5 TV Safari/537.36")
    assert "version" not in enrich_context({"userAgent": tizen})["browser"]
    petal = ("Mozilla/5.0 (Linux; Android 7.0;) AppleWebKit/537.36 (KHTML, like Gecko) "
             "Mobile Safari/537.36 (compatible; PetalBot;+https://webmaster.petalsearch.com"
             "/site/petalbot)")
    ctx = enrich_context({"userAgent": petal})
    assert ctx["bot"] is True
    assert "os" not in ctx
    # Firefox on Android names no model: ua-parser's "Generic Smartphone" is no model
    fennec = "Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0"
    assert enrich_context({"userAgent": fennec})["device"] == {"type": "mobile"}


def test_a_phone_whose_maker_is_named_cubot_is_not_a_bot() -> None:
    cubot = ("Mozilla/5.0 (Linux; Android 13; Cubot KingKong Power) AppleWebKit/537.36 "
             "(KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36")
    ctx = enrich_context({"userAgent": cubot})
    assert "bot" not in ctx
    assert ctx["device"]["type"] == "mobile"
    assert ctx["device"]["manufacturer"] == "Cubot"


@pytest.mark.parametrize("agent", [
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
    "Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)",
    "DuckDuckBot/1.1; (+http://duckduckgo.com/duckduckbot.html)",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; "
    "+https://openai.com/gptbot)",
    "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, "
    "like Gecko) Chrome/131.0.6778.69 Mobile Safari/537.36 (compatible; Googlebot/2.1; "
    "+http://www.google.com/bot.html)",
])
def test_crawlers_are_bots(agent: str) -> None:
    ctx = enrich_context({"userAgent": agent})
    assert ctx["bot"] is True
    assert ctx["device"]["type"] == "bot"


@pytest.mark.parametrize(("agent", "kind"), [
    ("Mozilla/5.0 (SMART-TV; LINUX; Tizen 6.5) AppleWebKit/537.36 (KHTML, like Gecko) "
     "85.0.4183.93/6.5 TV Safari/537.36", "tv"),
    ("Mozilla/5.0 (Web0S; Linux/SmartTV) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/79.0.3945.79 Safari/537.36 WebAppManager", "tv"),
    ("Roku/DVP-12.5 (12.5.0.4174-C3)", "tv"),
    ("AppleTV11,1/11.1", "tv"),
    ("Mozilla/5.0 (Linux; Android 9; AFTKA Build/PS7633.3445N; wv) AppleWebKit/537.36 "
     "(KHTML, like Gecko) Version/4.0 Chrome/130.0.6723.107 Mobile Safari/537.36", "tv"),
    ("Mozilla/5.0 (X11; Linux aarch64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/114.0.0.0 Safari/537.36 CrKey/1.56.500000 DeviceType/AndroidTV", "tv"),
    ("Mozilla/5.0 (PlayStation; PlayStation 5/6.50) AppleWebKit/605.1.15 (KHTML, like "
     "Gecko)", "console"),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; Xbox; Xbox One) AppleWebKit/537.36 (KHTML, "
     "like Gecko) Chrome/120.0.0.0 Safari/537.36 Edge/44.18363.8131", "console"),
    ("Mozilla/5.0 (Nintendo Switch; WifiWebAuthApplet) AppleWebKit/606.4 (KHTML, like "
     "Gecko) NF/6.0.1.15.4 NintendoBrowser/5.1.0.20393", "console"),
    # Chrome's reduced agent on an Android tablet has no "Mobile": ua-parser says tablet
    ("Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/131.0.0.0 Safari/537.36", "tablet"),
    # an Android browser without "Mobile" is a tablet's, whatever ua-parser names it
    ("Mozilla/5.0 (Linux; Android 11; KFTRWI) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Silk/131.2.2 like Chrome/131.0.6778.135 Safari/537.36", "tablet"),
    ("Mozilla/5.0 (Linux; Android 13; Lenovo TB-X606F) AppleWebKit/537.36 (KHTML, like "
     "Gecko) Chrome/131.0.0.0 Safari/537.36", "tablet"),
    ("Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
     "SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36", "mobile"),
    # an app's own agent (Dalvik) says no "Mobile" either: still the phone it names
    ("Dalvik/2.1.0 (Linux; U; Android 14; Pixel 8 Build/AP2A.240805.005)", "mobile"),
])
def test_tvs_consoles_and_tablets_are_not_desktops_or_phones(agent: str, kind: str) -> None:
    """Smart TVs, streaming sticks and consoles were typed "desktop" (Fire TV "mobile"),
    so a publisher's TV app's viewers counted as desktop readers."""
    assert enrich_context({"userAgent": agent})["device"]["type"] == kind


#: what @rudderstack/analytics-js 3.34 puts in every event's context (less locale, screen...)
RUDDER_WEB_CONTEXT = {
    "app": {"name": "RudderLabs JavaScript SDK", "namespace": "com.rudderlabs.javascript",
            "version": "3.34.1", "installType": "npm"},
    "library": {"name": "RudderLabs JavaScript SDK", "version": "3.34.1"},
    "os": {"name": "", "version": ""},
    "userAgent": CHROME_LINUX,
}


def test_rudderstacks_browser_sdk_gets_its_browser_and_os() -> None:
    """RudderStack's browser SDK sends its own name as context.app and an os with empty
    name and version: its events read as a native app's with an OS named, so they got no
    browser and kept the empty os, and a breakdown by browser or OS lost all of them."""
    for ctx in (enrich_context(dict(RUDDER_WEB_CONTEXT)),
                Guard(PrivacyPolicy(secret=b"k", ip="keep")).context(
                    RUDDER_WEB_CONTEXT, None, None)):
        assert ctx["browser"]["name"] == "Chrome"
        assert ctx["os"] == {"name": "Linux"}
        assert ctx["device"] == {"type": "desktop"}
        assert ctx["app"] == RUDDER_WEB_CONTEXT["app"]  # what the SDK sent stays
    # an os that names itself is the SDK's and wins, as before
    named = {**RUDDER_WEB_CONTEXT, "os": {"name": "Windows", "version": ""}}
    assert enrich_context(named)["os"] == {"name": "Windows", "version": ""}
