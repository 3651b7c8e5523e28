"""``[privacy] url_query`` as wired into ``Collector.collect``: every place a page URL
lands, before the row exists (docs/privacy.md)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from nerve.catalog import Catalog
from nerve.collector import Collector
from nerve.envelope import Envelope
from nerve.errors import WorkspaceError
from nerve.workspace import Workspace

PAGE = """\
name: page
type: page
description: A page of the web site is viewed.
owner: web
purpose: analytics
version: 1
retention: 400d
additional_properties: true
properties:
  url: {type: string, pii: none, pattern: "^https://"}
"""

TRANSFER = """\
name: transfer_sent
description: A customer sends money.
owner: payments
purpose: analytics
version: 1
retention: 400d
properties:
  amount: {type: number, pii: none}
  url: {type: string, pii: none}
"""

EMAIL = "ana.lopez@mailbank.example"
QUERY = f"?email={EMAIL}&utm_source=news"
PAGE_CONTEXT = {
    "page": {"url": f"https://bank.example/reset{QUERY}#t=1", "path": "/reset",
             "referrer": f"https://mail.example/inbox?to={EMAIL}", "search": QUERY},
    "referrer": {"type": "link", "link": f"bankapp://open?email={EMAIL}&utm_source=news"},
}


@pytest.fixture
def make_collector(make_workspace: Callable[..., Workspace]) -> Callable[..., Collector]:
    def make(extra_toml: str = "") -> Collector:
        ws = make_workspace({"page.yaml": PAGE, "transfer_sent.yaml": TRANSFER},
                            extra_toml=extra_toml)
        return Collector(ws, Catalog.load(ws.events_dir))

    return make


def collect(collector: Collector, *messages: dict[str, Any]) -> list[Envelope]:
    key = collector.workspace.config.sources[0].write_key
    auth = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    return collector.collect(orjson.dumps({"batch": list(messages)}), endpoint="batch",
                             authorization=auth).envelopes


def calls() -> list[dict[str, Any]]:
    return [
        {"type": "page", "userId": "u1", "messageId": "p1", "name": "Reset",
         "properties": {"url": f"https://bank.example/reset{QUERY}", "search": QUERY,
                        "referrer": f"https://google.example/search?q={EMAIL}"},
         "context": PAGE_CONTEXT},
        {"type": "screen", "userId": "u1", "messageId": "s1", "name": "Cards",
         "properties": {"url": f"bankapp://cards{QUERY}"}, "context": PAGE_CONTEXT},
        {"type": "track", "event": "transfer_sent", "userId": "u1", "messageId": "t1",
         "properties": {"amount": 5}, "context": PAGE_CONTEXT},
        {"type": "identify", "userId": "u1", "messageId": "i1", "context": PAGE_CONTEXT},
    ]


def test_by_default_urls_are_stored_as_sent(make_collector: Callable[..., Collector]) -> None:
    for env in collect(make_collector(), *calls()):
        assert orjson.loads(env["context"] or "")["page"] == PAGE_CONTEXT["page"]


def test_named_parameters_are_all_a_url_keeps_wherever_it_lands(
        make_collector: Callable[..., Collector]) -> None:
    envelopes = collect(make_collector('[privacy]\nurl_query = ["utm_*"]\n'), *calls())
    assert len(envelopes) == 4
    for env in envelopes:
        assert EMAIL not in orjson.dumps(env).decode(), env["message_id"]
        context = orjson.loads(env["context"] or "")
        assert context["page"] == {"url": "https://bank.example/reset?utm_source=news",
                                   "path": "/reset", "referrer": "https://mail.example/inbox",
                                   "search": "?utm_source=news"}
        assert context["referrer"] == {"type": "link",
                                       "link": "bankapp://open?utm_source=news"}
        assert env["violations"] is None
    page, screen, track, _ = (orjson.loads(e["properties"] or "null") for e in envelopes)
    assert page == {"url": "https://bank.example/reset?utm_source=news",
                    "search": "?utm_source=news", "referrer": "https://google.example/search"}
    assert screen == {"url": "bankapp://cards?utm_source=news"}
    # a track's own properties are the catalog's to classify, not a page's URL
    assert track == {"amount": 5}


def test_drop_leaves_no_query_string(make_collector: Callable[..., Collector]) -> None:
    (page, *_) = collect(make_collector('[privacy]\nurl_query = "drop"\n'), *calls())
    context = orjson.loads(page["context"] or "")
    assert context["page"]["url"] == "https://bank.example/reset"
    assert context["page"]["search"] == ""
    assert orjson.loads(page["properties"] or "")["search"] == ""


def test_a_quarantined_event_and_its_violations_hold_no_raw_url(
        make_collector: Callable[..., Collector]) -> None:
    # http:// breaks the page spec's pattern: the violation's message quotes the URL
    bad = {"type": "page", "userId": "u1", "messageId": "p2",
           "properties": {"url": f"http://bank.example/reset{QUERY}"}, "context": PAGE_CONTEXT}
    unknown = {"type": "track", "event": "not_planned", "userId": "u1", "messageId": "q1",
               "context": PAGE_CONTEXT}
    raw = collect(make_collector(), bad)[0]
    assert EMAIL in (raw["violations"] or "")  # as it was before the setting
    envelopes = collect(make_collector('[privacy]\nurl_query = ["utm_*"]\n'), bad, unknown)
    assert all(env["violations"] for env in envelopes)
    for env in envelopes:
        assert EMAIL not in orjson.dumps(env).decode()
    violations = orjson.loads(envelopes[0]["violations"] or "")
    assert [v["path"] for v in violations] == ["$.properties.url"]


LINK = """\
name: reset_link_sent
description: A password reset link is e-mailed to a customer.
owner: accounts
purpose: analytics
version: 1
retention: 400d
properties:
  link: {type: string, format: uri, pii: none}
  note: {type: string, pii: none}
"""


@pytest.mark.parametrize("setting", ['"drop"', '["utm_*"]'])
def test_a_track_property_declared_as_a_url_is_treated_as_a_pages(
        make_workspace: Callable[..., Workspace], setting: str) -> None:
    """A track event's property declared ``format: uri`` holds a URL as a page's does
    (a reset link's ``?email=``): it was stored as sent whatever ``url_query`` said. A
    property without a URL format, and ``context.campaign``, stay as sent."""
    ws = make_workspace({"reset_link_sent.yaml": LINK},
                        extra_toml=f"[privacy]\nurl_query = {setting}\n")
    collector = Collector(ws, Catalog.load(ws.events_dir))
    note = f"sent to {EMAIL}"
    campaign = {"source": "news", "content": "spring"}
    sent = {"type": "track", "event": "reset_link_sent", "userId": "u1", "messageId": "r1",
            "properties": {"link": f"https://bank.example/reset{QUERY}#t=1", "note": note},
            "context": {"campaign": campaign}}
    # an invalid one (a URL without its scheme breaks format: uri) goes to the
    # quarantine: neither its row nor its violation keeps the query string
    bad = {**sent, "messageId": "r2",
           "properties": {"link": f"bank.example/reset{QUERY}", "note": "x"}}
    good, quarantined = collect(collector, sent, bad)
    kept = "" if setting == '"drop"' else "?utm_source=news"
    assert orjson.loads(good["properties"] or "") == {
        "link": f"https://bank.example/reset{kept}", "note": note}
    assert orjson.loads(good["context"] or "")["campaign"] == campaign
    assert quarantined["violations"]
    assert f"?email={EMAIL}" not in orjson.dumps(quarantined).decode()
    # the default keeps it as sent
    ws = make_workspace({"reset_link_sent.yaml": LINK})
    (as_sent,) = collect(Collector(ws, Catalog.load(ws.events_dir)), sent)
    assert orjson.loads(as_sent["properties"] or "")["link"] == sent["properties"]["link"]


SHARED = """\
name: episode_shared
description: A listener shares an episode through a link.
owner: growth
purpose: analytics
version: 1
retention: 400d
properties:
  episode: {type: string, pii: none}
  target:
    type: object
    pii: none
    properties:
      channel: {type: string, pii: none}
      landing: {type: string, format: uri, pii: none}
      meta:
        type: object
        pii: none
        properties:
          callback: {type: string, format: uri-reference, pii: none}
  links:
    type: array
    pii: none
    items:
      type: object
      properties:
        href: {type: string, format: iri, pii: none}
        label: {type: string, pii: none}
  mirrors: {type: array, pii: none, items: {type: string, format: uri}}
"""


@pytest.mark.parametrize("setting", ['"drop"', '["utm_*"]'])
def test_urls_declared_inside_objects_and_arrays_are_treated_too(
        make_workspace: Callable[..., Workspace], setting: str) -> None:
    """A URL format declared in an object, in an array's objects or as an array's items
    follows ``url_query`` as a top-level one does: such values were stored as sent, the
    reset token and the e-mail with them. The values beside them stay as sent, in a
    valid event and in a quarantined one, whose violation about a value beside a URL
    still quotes it."""
    ws = make_workspace({"episode_shared.yaml": SHARED},
                        extra_toml=f"[privacy]\nurl_query = {setting}\n")
    collector = Collector(ws, Catalog.load(ws.events_dir))
    link = f"https://pod.example/ep/9{QUERY}#t=1"
    sent = {"type": "track", "event": "episode_shared", "userId": "u1", "messageId": "e1",
            "properties": {
                "episode": "ep9",
                "target": {"channel": "mail", "landing": link,
                           "meta": {"callback": f"/cb{QUERY}"}},
                "links": [{"href": link, "label": "a"}, {"label": "no link"}],
                "mirrors": [link, "https://mirror.example/ep9"]}}
    # a wrong type next to them sends it to the quarantine
    bad = {**sent, "messageId": "e2",
           "properties": {**sent["properties"], "target": {"channel": 42, "landing": link}}}
    good, quarantined = collect(collector, sent, bad)
    kept = "" if setting == '"drop"' else "?utm_source=news"
    assert orjson.loads(good["properties"] or "") == {
        "episode": "ep9",
        "target": {"channel": "mail", "landing": f"https://pod.example/ep/9{kept}",
                   "meta": {"callback": f"/cb{kept}"}},
        "links": [{"href": f"https://pod.example/ep/9{kept}", "label": "a"},
                  {"label": "no link"}],
        "mirrors": [f"https://pod.example/ep/9{kept}", "https://mirror.example/ep9"]}
    # the violation is about the channel beside the URL: it still says what was wrong
    (violation,) = orjson.loads(quarantined["violations"] or "")
    assert violation["path"] == "$.properties.target.channel"
    assert "42 is not of type" in violation["message"]
    assert orjson.loads(quarantined["properties"] or "")["target"] == {
        "channel": 42, "landing": f"https://pod.example/ep/9{kept}"}
    assert EMAIL not in orjson.dumps(quarantined).decode()
    # the default keeps them as sent
    ws = make_workspace({"episode_shared.yaml": SHARED})
    (as_sent,) = collect(Collector(ws, Catalog.load(ws.events_dir)), sent)
    assert orjson.loads(as_sent["properties"] or "") == sent["properties"]


def test_a_wrong_setting_stops_the_collector_naming_it(
        make_collector: Callable[..., Collector]) -> None:
    with pytest.raises(WorkspaceError, match=r"nerve.toml:\d+: \[privacy\] url_query: "
                                             r"expected .*did you mean 'drop'\?"):
        make_collector('[privacy]\nurl_query = "dorp"\n')


PROFILE = """\
name: identify
type: identify
description: Traits of a known listener.
owner: identity
purpose: analytics
version: 1
retention: 400d
properties:
  avatar_url: {type: string, format: uri, pii: none}
  plan: {type: string, pii: none}
"""

ACCOUNT = """\
name: group
type: group
description: Traits of a listener's household account.
owner: identity
purpose: analytics
version: 1
retention: 400d
properties:
  website: {type: string, format: uri, pii: none}
"""


def test_traits_declared_as_urls_are_treated_in_identify_and_group_calls(
        make_workspace: Callable[..., Workspace]) -> None:
    """An identify's or group's traits declared with a URL format follow ``url_query``
    as a track's properties do, and so do the user's traits in any call's context: an
    ``avatar_url?email=...`` was stored as sent."""
    ws = make_workspace({"identify.yaml": PROFILE, "group.yaml": ACCOUNT},
                        extra_toml='[privacy]\nurl_query = ["utm_*"]\n')
    collector = Collector(ws, Catalog.load(ws.events_dir))
    avatar = f"https://cdn.example/a.png{QUERY}"
    identify, group = collect(
        collector,
        {"type": "identify", "userId": "u1", "messageId": "i1",
         "traits": {"avatar_url": avatar, "plan": f"gold{QUERY}"}},
        {"type": "group", "userId": "u1", "groupId": "g1", "messageId": "g1",
         "traits": {"website": f"https://home.example/{QUERY}"}})
    assert orjson.loads(identify["traits"] or "") == {
        "avatar_url": "https://cdn.example/a.png?utm_source=news",
        "plan": f"gold{QUERY}"}  # not declared a URL: the catalog's to classify
    assert orjson.loads(group["traits"] or "") == {
        "website": "https://home.example/?utm_source=news"}
    assert identify["violations"] is None
    assert group["violations"] is None
    # a mobile SDK sends the user's traits in every call's context too
    (track,) = collect(collector, {"type": "track", "event": "played", "userId": "u1",
                                   "messageId": "t1",
                                   "context": {"traits": {"avatar_url": avatar}}})
    assert orjson.loads(track["context"] or "")["traits"] == {
        "avatar_url": "https://cdn.example/a.png?utm_source=news"}
