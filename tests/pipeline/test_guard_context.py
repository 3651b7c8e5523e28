"""The hot path's fused context step equals the pure steps it replaces, on any input.

``Guard.context`` enriches and protects with one dict copy and cached per-agent additions;
it must answer exactly ``protect_context(enrich_context(...))`` with the enrichment rules
as first written (kept here, below, as the reference).
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from nerve.catalog import EventSpec, PropertySpec, Version
from nerve.pipeline import Guard, PrivacyPolicy, parse_user_agent, protect_context

IDENTIFY = EventSpec(name="identify", version=Version(1), type="identify", properties=(
    PropertySpec("plan", "string"),
    PropertySpec("email", "string", pii="personal"),
    PropertySpec("diagnosis", "string", pii="sensitive"),
))

AGENTS = [
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "analytics-python/2.4.0", "python-requests/2.31", "", "x" * 1100,
]


def reference_enrich(context: dict[str, Any], client_ip: str | None,
                     user_agent: str | None) -> dict[str, Any]:
    """enrich_context as first written: parse, then fill what is missing (a browser only
    from a browser's agent, and not in a native app's context: one with app)."""
    result = dict(context)
    if client_ip and not result.get("ip"):
        result["ip"] = client_ip
    agent = result.get("userAgent")
    if not isinstance(agent, str) or not agent:
        agent = user_agent if isinstance(user_agent, str) else None
        if agent is None:
            return result
        from_header = True
    else:
        from_header = False
    parsed = parse_user_agent(agent[:1024])
    if parsed["bot"]:
        result["bot"] = True
    browser = parsed["browser"]
    is_browser = (agent.startswith(("Mozilla/", "Opera/")) and bool(browser)
                  and browser["name"] not in ("Other", None)) or parsed["bot"]
    if from_header and not is_browser:
        return result
    os_ = result.get("os")
    # an os without a name is none (RudderStack's browser SDK sends {"name": ""})
    if not (os_ and (not isinstance(os_, dict) or os_.get("name"))) and parsed["os"]:
        result["os"] = parsed["os"]
    device = {k: v for k, v in parsed["device"].items() if v is not None}
    if not result.get("device") and device:  # an agent naming no OS gives no device
        result["device"] = device
    # an app's own agent names no browser, nor does a native app's web view's (a browser
    # SDK's own app, RudderStack's, is no native app)
    native = "app" in context and not (
        isinstance(context["app"], dict)
        and context["app"].get("namespace") == "com.rudderlabs.javascript")
    if (not result.get("browser") and not native and is_browser and browser
            and browser["name"] != "Other"):
        result["browser"] = browser
    return result


maybe = st.one_of  # readability below
ips = maybe(st.none(), st.just(""), st.ip_addresses().map(str), st.sampled_from(
    ["10.0.0.7", "010.0.0.7", "not an ip", " 192.0.2.1 ", "::1"]), st.integers())
agents = maybe(st.none(), st.sampled_from(AGENTS), st.integers())
fields: st.SearchStrategy[Any] = maybe(st.none(), st.just({}), st.just({"name": "iOS"}),
                                       st.just({"name": "", "version": ""}),
                                       st.just({"namespace": "com.rudderlabs.javascript"}),
                                       st.just({"namespace": "com.example.app", "build": "7"}),
                                       st.just(""), st.just("x"))
traits = maybe(st.none(), st.just("text"), st.dictionaries(
    st.sampled_from(["plan", "email", "diagnosis", "phone", "nickname"]),
    maybe(st.text(max_size=5), st.integers(), st.none()), max_size=4))


@st.composite
def contexts(draw: st.DrawFn) -> dict[str, Any]:
    context: dict[str, Any] = {"library": {"name": "sdk"}}
    for key, values in (("ip", ips), ("userAgent", agents), ("os", fields),
                        ("device", fields), ("browser", fields), ("traits", traits),
                        ("app", fields)):
        value = draw(values)
        if value is not None or draw(st.booleans()):
            context[key] = value
    return context


@settings(max_examples=300, deadline=None)
@given(context=contexts(), client_ip=maybe(st.none(), st.just(""), st.sampled_from(
           ["203.0.113.9", "2001:db8::5"])), header=agents,
       ip_policy=st.sampled_from(["truncate", "hash", "drop", "keep"]),
       personal=st.sampled_from(["hash", "drop", "keep"]),
       guard_unknown=st.booleans())
def test_guard_context_equals_the_pure_steps(context: dict[str, Any], client_ip: str | None,
                                             header: Any, ip_policy: str, personal: str,
                                             guard_unknown: bool) -> None:
    policy = PrivacyPolicy(secret=b"k", ip=ip_policy, personal=personal,
                           guard_unknown=guard_unknown)
    header_agent = header if isinstance(header, str) else None
    expected = protect_context(reference_enrich(context, client_ip, header_agent), IDENTIFY,
                               policy)
    guard = Guard(policy, IDENTIFY)
    assert guard.context(context, client_ip, header_agent) == expected
    assert guard.context(context, client_ip, header_agent) == expected  # cached: same
