"""Enrichment: what the collector can add that the SDK did not send.

Browser SDKs send ``context.userAgent`` but no ``os`` or ``device``; server SDKs send
neither, and the request's own User-Agent and IP are all there is. Parsing uses
ua-parser (with its Rust accelerator when installed), cached because real traffic
repeats a few thousand user agents over and over.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from ua_parser import parse

__all__ = ["WEB_SDK_NAMESPACES", "context_additions", "enrich_context", "is_native_app",
           "names_os", "parse_user_agent"]

#: "bot" but not Cubot's (a phone maker: "Cubot KingKong Power" is a person's browser)
_BOT = re.compile(r"(?<!cu)bot|crawl|spider|slurp|headless|lighthouse|pingdom|monitor",
                  re.IGNORECASE)
#: smart TVs, streaming sticks and set-top boxes, by what their agents say (ua-parser
#: names most of them as devices, but its OS families are Linux, Android, Tizen...)
_TV = re.compile(r"smart-?tv|hbbtv|web0s|webos\.tv|netcast|\bcrkey/|appletv|\broku|"
                 r"android ?tv|googletv|bravia|tizen.*\btv\b|\bviera\b"
                 r"|(?-i:\bAFT[A-Z]{1,5}\b)",  # Amazon's Fire TV models: AFTKA, AFTMM...
                 re.IGNORECASE)
_CONSOLE = re.compile(r"playstation|xbox|nintendo", re.IGNORECASE)
_MOBILE_OS = {"iOS", "Android", "iPadOS", "Windows Phone", "KaiOS"}
#: Chrome's reduced agent on Android (Chrome 110 on): every phone says "Android 10; K",
#: a frozen version and a placeholder model, whatever it runs and whatever it is
_REDUCED_ANDROID = "; Android 10; K)"
#: models ua-parser names when the agent names none (a CFNetwork app's "iOS-Device")
_PLACEHOLDER_MODELS = {"iOS-Device"}
#: ``context.app.namespace`` of browser SDKs that send an ``app`` (RudderStack's
#: @rudderstack/analytics-js: the SDK's own name), which is a web page's, not a native app's
WEB_SDK_NAMESPACES = frozenset({"com.rudderlabs.javascript"})


def names_os(os_: Any) -> bool:
    """Whether a context's ``os`` names one: RudderStack's browser SDK sends
    ``{"name": "", "version": ""}``, which enrichment fills in as if absent."""
    return bool(os_) and (os_.__class__ is not dict or bool(os_.get("name")))


def is_native_app(app: Any) -> bool:
    """Whether a context's ``app`` is a native app's (the mobile SDKs send one), whose web
    view's agent names no browser the person uses; a browser SDK's own ``app`` is not."""
    return not (app.__class__ is dict and app.get("namespace") in WEB_SDK_NAMESPACES)


@functools.lru_cache(maxsize=8192)
def parse_user_agent(user_agent: str) -> dict[str, Any]:
    """Browser, OS and device of a User-Agent string, and whether it is a bot.

    >>> parse_user_agent("Mozilla/5.0 (compatible; Googlebot/2.1)")["bot"]
    True
    """
    result = parse(user_agent)
    browser = result.user_agent
    os_ = result.os
    device = result.device
    bot = bool(_BOT.search(user_agent)) or (device is not None and device.family == "Spider")
    # "Other" is ua-parser's word for an OS it could not name
    os_name = os_.family if os_ and os_.family != "Other" else None
    if bot:
        device_type = "bot"
    elif _CONSOLE.search(user_agent):
        device_type = "console"
    elif _TV.search(user_agent) or (device is not None and device.brand == "Generic_Inettv"):
        device_type = "tv"
    elif device is not None and ("iPad" in device.family or "Tablet" in device.family
                                 or device.brand == "Generic_Android_Tablet"):
        device_type = "tablet"
    elif os_name == "Android" and user_agent.startswith(_BROWSER_AGENTS) \
            and "Mobile" not in user_agent:
        # Android browsers say "Mobile" on phones only (Google's rule for its agents):
        # a Kindle Fire's Silk, Chrome on a Lenovo or Galaxy Tab
        device_type = "tablet"
    elif os_name in _MOBILE_OS:
        device_type = "mobile"
    elif os_name and os_name != "Other":
        device_type = "desktop"
    else:
        # an agent that names no OS (okhttp, Dart, curl: an app's HTTP library) says
        # nothing about the device; "desktop" would count a phone app's events as desktop
        device_type = None
    reduced = _REDUCED_ANDROID in user_agent
    return {
        "browser": _named(browser.family, _version(browser)) if browser else None,
        "os": _named(os_name, None if reduced else _version(os_)) if os_name else None,
        "device": {
            "type": device_type,
            "manufacturer": _manufacturer(device),
            "model": None if reduced else _model(device),
        },
        "bot": bot,
    }


def _named(name: str, version: str | None) -> dict[str, str]:
    """``{"name", "version"}``, without ``version`` when the agent names none: what the
    agent does not say is left out, as the SDKs leave it out (not stored as null)."""
    return {"name": name, "version": version} if version else {"name": name}


def _manufacturer(device: Any) -> str | None:
    brand = device.brand if device is not None else None
    # "Generic_Android", "Generic_Inettv"...: ua-parser's words for "not named"
    return None if not brand or brand == "Spider" or brand.startswith("Generic") else brand


def _model(device: Any) -> str | None:
    # "Generic Smartphone", "Generic Tablet", "Generic Feature Phone": no model named
    if device is None or device.family in ("Other", "Spider") \
            or device.family.startswith("Generic"):
        return None
    return None if device.model in _PLACEHOLDER_MODELS else device.model


def _version(part: Any) -> str | None:
    numbers = [p for p in (part.major, part.minor, part.patch) if p]
    return ".".join(numbers) or None


def enrich_context(
    context: dict[str, Any], *, client_ip: str | None = None, user_agent: str | None = None
) -> dict[str, Any]:
    """``context`` with ``ip``, ``os``, ``device``, ``browser`` and ``bot`` filled in.

    What the SDK sent always wins; the request's User-Agent header is used only when the
    message carries no ``context.userAgent`` (server-side SDKs send their own library's
    agent, which says nothing about the end user).
    """
    result = dict(context)
    if client_ip and not result.get("ip"):
        result["ip"] = client_ip
    agent = result.get("userAgent")
    if not isinstance(agent, str) or not agent:
        if not isinstance(user_agent, str):
            return result
        agent, from_header = user_agent, True
    else:
        from_header = False
    additions = context_additions(agent[:1024], from_header, names_os(result.get("os")),
                                  bool(result.get("device")),
                                  ("app" in result and is_native_app(result["app"]))
                                  or bool(result.get("browser")))
    if additions:
        result.update(additions)
    return result


@functools.lru_cache(maxsize=16384)
def context_additions(agent: str, from_header: bool, has_os: bool, has_device: bool,
                      no_browser: bool) -> tuple[tuple[str, Any], ...]:
    """What enrichment adds to a context, per agent and per which fields it already has
    (``no_browser``: it has its browser, or it is a native app's: it has ``app``).

    Cached: traffic repeats a few agents and context shapes, and this was most of the
    enrichment's cost. The values are shared between events, never mutated.
    """
    parsed = parse_user_agent(agent)
    out: list[tuple[str, Any]] = []
    if parsed["bot"]:
        out.append(("bot", True))
    browser = _is_browser(agent, parsed)
    if from_header and not browser:
        return tuple(out)  # an SDK or HTTP library talking, not a person's device
    if not has_os and parsed["os"]:
        out.append(("os", parsed["os"]))
    device = {k: v for k, v in parsed["device"].items() if v is not None}
    if not has_device and device:
        out.append(("device", device))
    # a message's own agent may be an app's (analytics-android sends Dalvik's): its OS and
    # device are the device's, but only a browser's agent names a browser. Nor does a
    # browser's agent in a native app's event (the mobile SDKs send context.app,
    # analytics.js does not): it is the app's web view's (WKWebView's, Android's "wv"), no
    # browser the person uses
    if not no_browser and browser and parsed["browser"] \
            and parsed["browser"]["name"] != "Other":
        out.append(("browser", parsed["browser"]))
    return tuple(out)


#: how every browser's User-Agent starts (ua-parser also names HTTP tools, curl or Python
#: Requests, as browser families, but their requests come from no person's device)
_BROWSER_AGENTS = ("Mozilla/", "Opera/")


def _is_browser(agent: str, parsed: dict[str, Any]) -> bool:
    browser = parsed["browser"]
    return (agent.startswith(_BROWSER_AGENTS) and bool(browser)
            and browser["name"] not in ("Other", None)) or parsed["bot"]
