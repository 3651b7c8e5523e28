"""End to end: what the privacy policy hashes or drops is in no file nerve wrote.

A real ``nerve serve`` receives events carrying an email, a sensitive value, a device id
and IP addresses (in the message, and from the trusted proxy header). The log's segments
are read while it runs (its final drain deletes them); after a graceful stop, every file
under the workspace (the DuckDB file, server output...) and those segments are searched
byte for byte, the log's frames decompressed and the warehouse's tables read
back as well: no raw value may appear, while the keyed hashes and a control value that
is not personal must (so the search itself is shown to see the data).
"""

from __future__ import annotations

from collections.abc import Callable

from serverkit import HTTP, basic, files_below, rows, searchable, write_key, written_nowhere

from nerve.pipeline import pseudonymise
from nerve.workspace import Workspace

SIGNUP = """\
name: signup
description: Someone signs up.
owner: growth
purpose: analytics
version: 1
retention: 400d
properties:
  marker: {type: string, pii: none}
  email: {type: string, pii: personal}
  device_id: {type: string, pii: pseudonymous}
  diagnosis: {type: string, pii: sensitive}
  guests:
    type: array
    items:
      type: object
      properties:
        guest_email: {type: string, pii: personal}
        guest_note: {type: string, pii: sensitive}
"""

IDENTIFY = """\
name: identify
type: identify
description: Who the user is.
owner: growth
purpose: analytics
version: 1
retention: 400d
properties:
  email: {type: string, pii: personal}
  phone: {type: string, pii: personal, handling: drop}
"""

SECRET = b"e2e-privacy-secret-0123456789"
EMAIL = "zelda.q.private@example.org"
PHONE = "+49-30-55501234"
DEVICE = "device-7f3e9a1c55"
DIAGNOSIS = "rare-condition-xq17"
MESSAGE_IP = "203.0.113.177"
PROXY_IP = "198.51.100.213"
QUARANTINED_EMAIL = "quarantined.person@example.net"
CONTROL = "control-marker-not-personal-4711"
GUEST_EMAIL = "guest.in.array@example.org"
GUEST_NOTE = "guest-note-sensitive-zq9"
CAMEL_EMAIL = "camel.case@example.net"
NESTED_EMAIL = "nested.contact@example.net"
#: every raw value the policy must keep out of every file
RAW = (EMAIL, PHONE, DEVICE, DIAGNOSIS, MESSAGE_IP, PROXY_IP, QUARANTINED_EMAIL, GUEST_EMAIL,
       GUEST_NOTE, CAMEL_EMAIL, NESTED_EMAIL)


def test_no_raw_personal_value_is_in_any_file_nerve_wrote(
        make_workspace: Callable[..., Workspace], serve: Callable[..., object]) -> None:
    ws = make_workspace({"signup.yaml": SIGNUP, "identify.yaml": IDENTIFY})
    toml = ws.root / "nerve.toml"
    toml.write_text(toml.read_text().replace(
        "[collector]\n", '[collector]\ntrusted_proxy_header = "X-Forwarded-For"\n'))
    ws.data_dir.mkdir(exist_ok=True)
    (ws.data_dir / "secret.key").write_bytes(SECRET)
    server = serve(ws)
    batch = [
        {"type": "track", "event": "signup", "userId": "u1", "messageId": "s1",
         "properties": {"marker": CONTROL, "email": EMAIL, "device_id": DEVICE,
                        "diagnosis": DIAGNOSIS,
                        "guests": [{"guest_email": GUEST_EMAIL, "guest_note": GUEST_NOTE}]},
         "context": {"ip": MESSAGE_IP, "traits": {"email": EMAIL}}},
        {"type": "identify", "userId": "u1", "messageId": "i1",
         "traits": {"email": EMAIL, "phone": PHONE}},
        # an uncataloged event goes to the quarantine: its personal-looking fields too
        {"type": "track", "event": "not_in_catalog", "userId": "u2", "messageId": "q1",
         "properties": {"email": QUARANTINED_EMAIL, "marker": CONTROL,
                        # judged by name in camelCase, and nested, too
                        "emailAddress": CAMEL_EMAIL, "contact": {"email": NESTED_EMAIL}}},
        # no IP in the message: the proxy's header gives it
        {"type": "track", "event": "signup", "userId": "u3", "messageId": "s2",
         "properties": {"marker": CONTROL}},
    ]
    answer = HTTP.post(f"{server.url}/v1/batch", json={"batch": batch},  # type: ignore[attr-defined]
                       headers={**basic(write_key(ws)),
                                 "X-Forwarded-For": f"10.0.0.1, {PROXY_IP}"}, timeout=30)
    assert answer.status_code == 200, answer.text
    # the log's segments, while the server runs: its final drain deletes them at the stop
    segments = {p: searchable(p) for p in files_below(ws.log_dir) if p.suffix == ".seg"}
    assert segments, "the acknowledged events are in the log"
    assert server.stop() == 0  # type: ignore[attr-defined]
    assert [p for p in files_below(ws.log_dir) if ".seg" in p.name] == []

    loaded = rows(ws, "SELECT message_id, properties, context FROM events ORDER BY message_id")
    assert [r["message_id"] for r in loaded] == ["i1", "s1", "s2"]
    by_id = {r["message_id"]: r for r in loaded}
    assert by_id["s1"]["properties"]["email"] == pseudonymise(EMAIL, SECRET)
    assert "diagnosis" not in by_id["s1"]["properties"]
    assert by_id["s1"]["properties"]["guests"] == [
        {"guest_email": pseudonymise(GUEST_EMAIL, SECRET)}]
    assert by_id["s1"]["context"]["ip"] == "203.0.113.0"
    assert by_id["s2"]["context"]["ip"] == "198.51.100.0"
    quarantined = rows(ws, "SELECT message_id, properties FROM quarantine")
    assert [(q["message_id"], q["properties"]["email"]) for q in quarantined] == [
        ("q1", pseudonymise(QUARANTINED_EMAIL, SECRET))]

    files = files_below(ws.root)
    assert any("log" in p.parts for p in files) or any(p.suffix == ".duckdb" for p in files)
    contents, stored = written_nowhere(ws, RAW, segments)
    assert CONTROL in stored
    # the search sees the data: the control value and the hashes are on disk
    for present in (CONTROL, pseudonymise(EMAIL, SECRET), pseudonymise(DEVICE, SECRET)):
        assert any(present.encode() in data for data in contents.values()), present
        assert any(present.encode() in contents[p] for p in segments), present


def test_a_forwarded_header_is_ignored_unless_a_proxy_is_trusted(
        make_workspace: Callable[..., Workspace], serve: Callable[..., object]) -> None:
    """Without ``trusted_proxy_header`` the address is the connection's, even from
    loopback (where uvicorn's own proxy-header handling would have believed the header)."""
    ws = make_workspace({"signup.yaml": SIGNUP})
    server = serve(ws)
    batch = [{"type": "track", "event": "signup", "userId": "u1", "messageId": "m1",
              "properties": {"marker": CONTROL}}]
    answer = HTTP.post(f"{server.url}/v1/batch", json={"batch": batch},  # type: ignore[attr-defined]
                       headers={**basic(write_key(ws)), "X-Forwarded-For": PROXY_IP},
                       timeout=30)
    assert answer.status_code == 200, answer.text
    # the log's segments, while the server runs: its final drain deletes them at the stop
    segments = {p: searchable(p) for p in files_below(ws.log_dir) if p.suffix == ".seg"}
    assert segments, "the acknowledged events are in the log"
    assert server.stop() == 0  # type: ignore[attr-defined]
    assert [p for p in files_below(ws.log_dir) if ".seg" in p.name] == []
    [row] = rows(ws, "SELECT context FROM events")
    assert row["context"]["ip"] == "127.0.0.0"  # the loopback peer, truncated to its /24


def test_only_the_trusted_proxies_header_is_believed(
        make_workspace: Callable[..., Workspace], serve: Callable[..., object]) -> None:
    """``trusted_proxies`` names the proxies: a client reaching nerve past them (here the
    loopback peer, not among them) cannot choose the IP recorded for it, nor the host
    analytics.js is told to send to."""
    ws = make_workspace({"signup.yaml": SIGNUP})
    toml = ws.root / "nerve.toml"
    toml.write_text(toml.read_text().replace("[collector]\n", (
        '[collector]\ntrusted_proxy_header = "X-Forwarded-For"\n'
        'trusted_proxies = ["10.0.0.0/8"]\n')))
    server = serve(ws)
    spoofed = {"X-Forwarded-For": PROXY_IP, "X-Forwarded-Host": "evil.example",
               "X-Forwarded-Proto": "https"}
    batch = [{"type": "track", "event": "signup", "userId": "u1", "messageId": "m1",
              "properties": {"marker": CONTROL}}]
    answer = HTTP.post(f"{server.url}/v1/batch", json={"batch": batch},  # type: ignore[attr-defined]
                       headers={**basic(write_key(ws)), **spoofed}, timeout=30)
    assert answer.status_code == 200, answer.text
    settings = HTTP.get(f"{server.url}/v1/projects/{write_key(ws)}/settings",  # type: ignore[attr-defined]
                        headers=spoofed, timeout=30).json()
    assert settings["integrations"]["Segment.io"]["apiHost"] == (
        f"127.0.0.1:{server.port}/v1")  # type: ignore[attr-defined]
    assert settings["integrations"]["Segment.io"]["protocol"] == "http"
    assert server.stop() == 0  # type: ignore[attr-defined]
    [row] = rows(ws, "SELECT context FROM events")
    assert row["context"]["ip"] == "127.0.0.0"  # the loopback peer, truncated to its /24


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

URL_EMAIL = "ana.lopez.in.a.url@mailbank.example"
RESET_TOKEN = "reset-token-8c1f0e"


def test_url_query_keeps_only_the_named_parameters_in_every_file(
        make_workspace: Callable[..., Workspace], serve: Callable[..., object]) -> None:
    """With ``url_query = ["utm_*"]``, an email and a token sent in page URLs (the
    context's page and referrer, a page or screen call's properties, an invalid page
    bound for the quarantine and its violation) are in no file, while the campaign
    parameters are stored."""
    ws = make_workspace({"page.yaml": PAGE, "signup.yaml": SIGNUP},
                        extra_toml='[privacy]\nurl_query = ["utm_*"]\n')
    query = f"?email={URL_EMAIL}&utm_source=news&token={RESET_TOKEN}"
    page = {"url": f"https://bank.example/reset{query}#{RESET_TOKEN}", "path": "/reset",
            "referrer": f"https://mail.example/inbox?to={URL_EMAIL}", "search": query}
    context = {"page": page, "referrer": {"link": f"bankapp://open{query}"}}
    batch = [
        {"type": "page", "userId": "u1", "messageId": "p1", "name": "Reset", "context": context,
         "properties": {**page, "url": f"https://bank.example/reset{query}"}},
        {"type": "screen", "userId": "u1", "messageId": "s1", "name": "Cards",
         "context": context, "properties": {"url": f"bankapp://cards{query}"}},
        {"type": "track", "event": "signup", "userId": "u1", "messageId": "t1",
         "context": context, "properties": {"marker": CONTROL}},
        # http:// breaks the page spec's pattern, whose message quotes the URL
        {"type": "page", "userId": "u1", "messageId": "p2", "context": context,
         "properties": {"url": f"http://bank.example/reset{query}"}},
    ]
    server = serve(ws)
    answer = HTTP.post(f"{server.url}/v1/batch", json={"batch": batch},  # type: ignore[attr-defined]
                       headers=basic(write_key(ws)), timeout=30)
    assert answer.status_code == 200, answer.text
    segments = {p: searchable(p) for p in files_below(ws.log_dir) if p.suffix == ".seg"}
    assert segments, "the acknowledged events are in the log"
    assert server.stop() == 0  # type: ignore[attr-defined]

    loaded = rows(ws, "SELECT message_id, properties, context FROM events ORDER BY message_id")
    assert [r["message_id"] for r in loaded] == ["p1", "s1", "t1"]
    for row in loaded:
        assert row["context"]["page"]["url"] == "https://bank.example/reset?utm_source=news"
        assert row["context"]["page"]["search"] == "?utm_source=news"
        assert row["context"]["page"]["referrer"] == "https://mail.example/inbox"
        assert row["context"]["referrer"]["link"] == "bankapp://open?utm_source=news"
    assert loaded[0]["properties"]["url"] == "https://bank.example/reset?utm_source=news"
    assert loaded[1]["properties"]["url"] == "bankapp://cards?utm_source=news"
    (quarantined,) = rows(ws, "SELECT message_id, properties, violations FROM quarantine")
    assert quarantined["message_id"] == "p2"
    assert quarantined["properties"]["url"] == "http://bank.example/reset?utm_source=news"

    contents, stored = written_nowhere(ws, (URL_EMAIL, RESET_TOKEN), segments)
    # the search sees the data: what the setting keeps is on disk and in the log
    for present in (CONTROL, "utm_source=news"):
        assert present in stored
        assert any(present.encode() in contents[p] for p in segments), present
