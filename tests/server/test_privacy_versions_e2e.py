"""End to end: a field a newer version classes personal is protected in every version.

``signup`` 2.0.0 classes ``email``, ``contact.phone`` and ``guests[].guest_email``
personal and ``diagnosis`` sensitive; 1.0.0, still live in ``events/versions/``, declared
them ``pii: none``. An old app sends ``context.event_version: 1`` (valid events, and one
bound for the quarantine); identify likewise. A real ``nerve serve`` must store none of
those values raw, in any file (the log's segments read while it runs) or table, as the
readers' masking (which reads every version) already assumes; the versions' own types
still judge the events, and a value no version classes is stored as sent.
"""

from __future__ import annotations

from collections.abc import Callable

from serverkit import HTTP, basic, files_below, rows, searchable, write_key, written_nowhere

from nerve.pipeline import pseudonymise
from nerve.workspace import Workspace

SIGNUP_V1 = """\
name: signup
description: Someone signs up.
owner: growth
purpose: analytics
version: 1.0.0
retention: 400d
properties:
  marker: {type: string, pii: none}
  seats: {type: string, pii: none}
  email: {type: string, pii: none}
  diagnosis: {type: string, pii: none}
  address: {type: string, pii: none}
  href: {type: string, pii: none}
  contact:
    type: object
    pii: none
    properties:
      phone: {type: string, pii: none}
  guests:
    type: array
    pii: none
    items:
      type: object
      properties:
        guest_email: {type: string, pii: none}
"""

SIGNUP_V2 = """\
name: signup
description: Someone signs up.
owner: growth
purpose: analytics
version: 2.0.0
retention: 400d
properties:
  marker: {type: string, pii: none}
  seats: {type: integer, pii: none}
  email: {type: string, pii: personal}
  diagnosis: {type: string, pii: sensitive}
  address:
    type: object
    pii: none
    properties:
      city: {type: string, pii: none}
      street: {type: string, pii: personal}
  href: {type: string, format: uri, pii: none}
  contact:
    type: object
    pii: none
    properties:
      phone: {type: string, pii: personal}
  guests:
    type: array
    pii: none
    items:
      type: object
      properties:
        guest_email: {type: string, pii: personal}
"""

IDENTIFY_V1 = """\
name: identify
type: identify
description: Who the user is.
owner: growth
purpose: analytics
version: 1.0.0
retention: 400d
properties:
  email: {type: string, pii: none}
"""

IDENTIFY_V2 = IDENTIFY_V1.replace("1.0.0", "2.0.0").replace(
    "email: {type: string, pii: none}", "email: {type: string, pii: personal}")

SECRET = b"e2e-privacy-versions-secret-42"
EMAIL = "old.app.user@example.org"
QUARANTINED_EMAIL = "old.app.invalid@example.net"
TRAIT_EMAIL = "old.app.identify@example.com"
PHONE = "+34-91-5550199"
GUEST_EMAIL = "old.app.guest@example.org"
DIAGNOSIS = "old-app-diagnosis-qz31"
ADDRESS = "12 Old-App Street, Springfield"
TOKEN = "old-app-reset-token-7f3k"
CONTROL = "control-marker-v1-not-personal-9313"
#: every raw value that must be in no file and no table
RAW = (EMAIL, QUARANTINED_EMAIL, TRAIT_EMAIL, PHONE, GUEST_EMAIL, DIAGNOSIS, ADDRESS, TOKEN)


def test_an_old_version_stores_no_raw_value_a_newer_version_classes_personal(
        make_workspace: Callable[..., Workspace], serve: Callable[..., object]) -> None:
    ws = make_workspace({"signup.yaml": SIGNUP_V2, "versions/signup.v1.yaml": SIGNUP_V1,
                         "identify.yaml": IDENTIFY_V2,
                         "versions/identify.v1.yaml": IDENTIFY_V1},
                        extra_toml='[privacy]\nurl_query = "drop"\n')
    ws.data_dir.mkdir(exist_ok=True)
    (ws.data_dir / "secret.key").write_bytes(SECRET)
    old_app = {"event_version": "1"}
    batch = [
        {"type": "track", "event": "signup", "userId": "u1", "messageId": "s1",
         "context": {**old_app, "traits": {"email": TRAIT_EMAIL}},
         # seats is a string in 1.0.0 (an integer in 2.0.0): valid as 1.0.0 declares it
         "properties": {"marker": CONTROL, "seats": "three", "email": EMAIL,
                        "diagnosis": DIAGNOSIS, "contact": {"phone": PHONE},
                        "guests": [{"guest_email": GUEST_EMAIL}],
                        # a string in 1.0.0, an object with a personal street in 2.0.0
                        "address": ADDRESS,
                        # format: uri in 2.0.0 only
                        "href": f"https://app.example/reset?token={TOKEN}"}},
        {"type": "identify", "userId": "u1", "messageId": "i1", "context": old_app,
         "traits": {"email": TRAIT_EMAIL}},
        # invalid for 1.0.0 (seats must be a string): bound for the quarantine
        {"type": "track", "event": "signup", "userId": "u2", "messageId": "q1",
         "context": old_app,
         "properties": {"marker": CONTROL, "seats": 3, "email": QUARANTINED_EMAIL}},
    ]
    server = serve(ws)
    answer = HTTP.post(f"{server.url}/v1/batch", json={"batch": batch},  # type: ignore[attr-defined]
                       headers=basic(write_key(ws)), timeout=30)
    assert answer.status_code == 200, answer.text
    # the log's segments, while the server runs: its final drain deletes them at the stop
    segments = {p: searchable(p) for p in files_below(ws.log_dir) if p.suffix == ".seg"}
    assert segments, "the acknowledged events are in the log"
    assert server.stop() == 0  # type: ignore[attr-defined]

    loaded = rows(ws, "SELECT message_id, schema_version, properties, traits, context "
                      "FROM events ORDER BY message_id")
    assert [(r["message_id"], r["schema_version"]) for r in loaded] == [
        ("i1", "1.0.0"), ("s1", "1.0.0")]
    by_id = {r["message_id"]: r for r in loaded}
    signup = by_id["s1"]["properties"]
    assert signup["email"] == pseudonymise(EMAIL, SECRET)
    assert "diagnosis" not in signup
    assert signup["contact"] == {"phone": pseudonymise(PHONE, SECRET)}
    assert signup["guests"] == [{"guest_email": pseudonymise(GUEST_EMAIL, SECRET)}]
    assert signup["address"] == pseudonymise(ADDRESS, SECRET)
    assert signup["href"] == "https://app.example/reset"
    assert signup["seats"] == "three"
    assert signup["marker"] == CONTROL
    assert by_id["i1"]["traits"]["email"] == pseudonymise(TRAIT_EMAIL, SECRET)
    assert by_id["s1"]["context"]["traits"]["email"] == pseudonymise(TRAIT_EMAIL, SECRET)
    quarantined = rows(ws, "SELECT message_id, properties FROM quarantine")
    assert [(q["message_id"], q["properties"]["email"]) for q in quarantined] == [
        ("q1", pseudonymise(QUARANTINED_EMAIL, SECRET))]

    contents, stored = written_nowhere(ws, RAW, segments)
    # the search sees the data: the control value and a hash are in the log and on disk
    assert CONTROL in stored
    for present in (CONTROL, pseudonymise(EMAIL, SECRET)):
        assert any(present.encode() in contents[p] for p in segments), present
        assert any(present.encode() in data for data in contents.values()), present
