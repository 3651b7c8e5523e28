"""End to end: what a replay loads is protected as ``nerve serve`` protects it now.

A real ``nerve serve`` quarantines events while its workspace keeps IP addresses
(``[privacy] ip = "keep"``) and its identify spec does not yet declare an insurance
reference or a clinic note among the user's traits: both are stored as sent, in the
call's traits and in ``context.traits``. The team then truncates IPs, declares the
traits (``pseudonymous``, ``sensitive``) and the event, replays the quarantine and
compacts the warehouse. Every file under the workspace is then searched byte for byte,
and every table read back: no raw IP, reference or note may be left, since the collector
would store none of them now, while their hashes, the truncated IPs and a control value
must be found (so the search is shown to see the data). Before, the replay re-protected
only the properties or traits its spec classes, and loaded ``context.traits`` and
``context.ip`` as the quarantine held them.
"""

from __future__ import annotations

from collections.abc import Callable

from tests.conftest import run_nerve
from tests.server.serverkit import HTTP, basic, rows, write_key, written_nowhere

from nerve.pipeline import pseudonymise
from nerve.workspace import Workspace

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
  plan: {type: string, pii: none}
"""
# declared after the events were quarantined
IDENTIFY_LATER = IDENTIFY + """\
  insurer_ref: {type: string, pii: pseudonymous}
  clinic_note: {type: string, pii: sensitive}
"""
PARCEL = """\
name: parcel_sent
description: A parcel leaves the warehouse.
owner: logistics
purpose: analytics
version: 1
retention: 400d
properties:
  marker: {type: string, pii: none}
"""

SECRET = b"e2e-replay-secret-0123456789"
EMAIL = "replayed.person@example.org"
INSURER = "INS-ref-77x1q-replayed"
CLINIC = "clinic-note-zq41-replayed"
IPV4 = "203.0.113.177"
IPV6 = "2001:db8:85a3:1234:5678::9"
CONTROL = "control-marker-not-personal-2718"
#: every raw value no file may hold once the replay has run and the file is compacted
RAW = (EMAIL, INSURER, CLINIC, IPV4, IPV6)


def test_a_replay_stores_context_traits_and_the_ip_as_the_collector_would_now(
        make_workspace: Callable[..., Workspace], serve: Callable[..., object]) -> None:
    ws = make_workspace({"identify.yaml": IDENTIFY}, extra_toml='[privacy]\nip = "keep"\n')
    ws.data_dir.mkdir(exist_ok=True)
    (ws.data_dir / "secret.key").write_bytes(SECRET)
    traits = {"email": EMAIL, "insurer_ref": INSURER, "clinic_note": CLINIC}
    batch = [
        # not in the catalog yet: quarantined with the user's traits as sent
        {"type": "track", "event": "parcel_sent", "userId": "u1", "messageId": "t1",
         "properties": {"marker": CONTROL}, "context": {"ip": IPV4, "traits": traits}},
        # traits identify does not declare yet: quarantined
        {"type": "identify", "userId": "u1", "messageId": "i1",
         "traits": {"plan": "pro", "insurer_ref": INSURER},
         "context": {"ip": IPV6, "traits": {"clinic_note": CLINIC, "email": EMAIL}}},
    ]
    server = serve(ws)
    answer = HTTP.post(f"{server.url}/v1/batch", json={"batch": batch},  # type: ignore[attr-defined]
                       headers=basic(write_key(ws)), timeout=30)
    assert answer.status_code == 200, answer.text
    assert server.stop() == 0  # type: ignore[attr-defined]
    quarantined = rows(ws, "SELECT message_id, context FROM quarantine ORDER BY message_id")
    assert [q["message_id"] for q in quarantined] == ["i1", "t1"]
    # the setting kept the IPs and the undeclared traits as sent
    assert quarantined[1]["context"]["ip"] == IPV4
    assert quarantined[1]["context"]["traits"]["insurer_ref"] == INSURER

    toml = ws.root / "nerve.toml"
    toml.write_text(toml.read_text().replace('ip = "keep"', 'ip = "truncate"'))
    (ws.events_dir / "identify.yaml").write_text(IDENTIFY_LATER)
    (ws.events_dir / "parcel_sent.yaml").write_text(PARCEL)
    replayed = run_nerve(ws.root, "quarantine", "replay")
    assert replayed.exit_code == 0, replayed.stderr
    assert "loaded 2" in replayed.stdout
    compacted = run_nerve(ws.root, "compact")
    assert compacted.exit_code == 0, compacted.stderr

    loaded = {r["message_id"]: r for r in rows(
        ws, "SELECT message_id, user_id, properties, traits, context FROM events")}
    hashed = {"email": pseudonymise(EMAIL, SECRET), "insurer_ref": pseudonymise(INSURER, SECRET)}
    assert loaded["t1"]["context"]["ip"] == "203.0.113.0"
    assert loaded["t1"]["context"]["traits"] == hashed
    assert loaded["t1"]["traits"] == hashed
    assert loaded["t1"]["properties"] == {"marker": CONTROL}
    assert loaded["i1"]["context"]["ip"] == "2001:db8:85a3::"
    assert loaded["i1"]["context"]["traits"] == {"email": hashed["email"]}
    assert loaded["i1"]["traits"] == {**hashed, "plan": "pro"}
    assert rows(ws, "SELECT count(*) AS n FROM quarantine") == [{"n": 0}]

    contents, stored = written_nowhere(ws, RAW)
    # the search sees the data
    for present in (CONTROL, hashed["insurer_ref"], "203.0.113.0"):
        assert present in stored, present
        assert any(present.encode() in data for data in contents.values()), present
