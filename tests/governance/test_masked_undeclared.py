"""What a reader sees of values the catalog does not declare: the extra properties of an
event whose schema allows them, and every property of an uncataloged event in the
quarantine. Before, both reached a masked reader as stored (a free-text note, a name
under a name the collector's ``guard_unknown`` does not know, a salary), and so did
personal-looking names stored as sent (``guard_unknown = false``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from nerve.catalog import Catalog
from nerve.errors import QueryError
from nerve.warehouse import MaskedWarehouse, Warehouse
from nerve.warehouse._masking import MaskedFields
from nerve.workspace import Workspace

PROFILE = """\
name: profile_viewed
description: An HR user opens an employee's profile.
owner: hr
purpose: analytics
version: 1
additional_properties: true
properties:
  department: {type: string, pii: none}
  viewer_email: {type: string, pii: personal, handling: keep}
  employee:
    type: object
    pii: none
    properties:
      band: {type: string, pii: none}
"""

REVIEW = """\
name: review_submitted
description: A review.
owner: hr
purpose: analytics
version: 1
properties:
  rating: {type: integer, pii: none}
"""

RAW = {"note": "called about her sick leave", "employee_name": "Jane Rawdoe",
       "home_phone": "+49 30 5550199", "salary": 91234, "street": "Rawstrasse 7",
       "contact": "jane.private@raw.example", "comment": "bonus for Max Rawmann"}
AT = datetime(2026, 11, 28, tzinfo=UTC)


@pytest.fixture
def stored(make_workspace: Callable[..., Workspace], events_table: Any
           ) -> tuple[Warehouse, Catalog]:
    ws = make_workspace({"profile_viewed.yaml": PROFILE, "review_submitted.yaml": REVIEW})
    warehouse = Warehouse.for_workspace(ws)
    cursor = warehouse.cursor()
    cursor.register("rows", events_table([
        {"event": "profile_viewed", "user_id": "u1", "timestamp": AT, "message_id": "pv",
         "properties": {"department": "sales", "viewer_email": RAW["contact"],
                        "note": RAW["note"], "employee_name": RAW["employee_name"],
                        "home_phone": RAW["home_phone"], "salary": RAW["salary"],
                        "employee": {"band": "B2", "address": {"street": RAW["street"]}},
                        "tags": ["ok", RAW["contact"]], "missing": None}},
        {"event": "review_submitted", "user_id": "u1", "timestamp": AT, "message_id": "rv",
         "properties": {"rating": 4}}]))
    cursor.execute("INSERT INTO events SELECT * FROM rows")
    cursor.register("unplanned", events_table([
        {"event": "salary_exported", "user_id": "u1", "timestamp": AT, "message_id": "se",
         "properties": {"email": RAW["contact"], "salary": RAW["salary"],
                        "comment": RAW["comment"]}}]))
    cursor.execute("INSERT INTO quarantine BY NAME SELECT * EXCLUDE (loaded_at), "
                   "NULL::JSON AS violations, timestamp AS quarantined_at FROM unplanned")
    return warehouse, Catalog.load(ws.events_dir)


def _rows(reader: Any, table: str) -> dict[str, dict[str, Any]]:
    return {r["message_id"]: json.loads(r["properties"]) for r in reader.query(
        f"SELECT message_id, properties FROM {table}").to_pylist()}


def test_a_reader_sees_undeclared_values_masked_and_their_names(
        stored: tuple[Warehouse, Catalog]) -> None:
    warehouse, catalog = stored
    reader = MaskedWarehouse(warehouse, catalog, b"k" * 16)
    events, quarantine = _rows(reader, "events"), _rows(reader, "quarantine")
    text = json.dumps([events, quarantine])
    for value in RAW.values():
        assert str(value) not in text, value
    profile = events["pv"]
    # what the catalog declares not personal is as stored; the names sent all stay
    assert (profile["department"], profile["employee"]["band"]) == ("sales", "B2")
    assert set(profile) == {"department", "viewer_email", "note", "employee_name",
                            "home_phone", "salary", "employee", "tags", "missing"}
    for name in ("note", "employee_name", "home_phone", "salary"):
        assert profile[name].startswith("m:")
    assert profile["employee"]["address"]["street"].startswith("m:")
    assert profile["tags"][0].startswith("m:")
    assert profile["missing"] is None
    # one mask per value, whichever way it is masked: the declared personal e-mail
    # (the view's SQL) and the same e-mail undeclared (in an array, in the quarantine)
    assert profile["viewer_email"] == profile["tags"][1] == quarantine["se"]["email"]
    assert quarantine["se"]["salary"] == profile["salary"]
    assert events["rv"] == {"rating": 4}  # a strict event: as stored
    # the admin's view is the warehouse as stored
    admin = {r["message_id"]: json.loads(r["properties"]) for r in warehouse.query(
        "SELECT message_id, properties FROM events").to_pylist()}
    assert admin["pv"]["note"] == RAW["note"]
    assert admin["pv"]["salary"] == RAW["salary"]


def test_figures_by_an_undeclared_value_equal_the_admins(
        stored: tuple[Warehouse, Catalog]) -> None:
    warehouse, catalog = stored
    reader = MaskedWarehouse(warehouse, catalog, b"k" * 16)
    query = ("SELECT count(DISTINCT properties->>'note') AS n, count(*) AS rows FROM events "
             "WHERE properties->>'note' IS NOT NULL")
    assert reader.query(query).to_pylist() == warehouse.query(query).to_pylist()


def test_a_readers_sql_may_not_call_nerves_own_functions(
        stored: tuple[Warehouse, Catalog]) -> None:
    """The function that masks undeclared values holds the key: called on guesses, it
    would tell a reader which masks they have."""
    warehouse, catalog = stored
    reader = MaskedWarehouse(warehouse, catalog, b"k" * 16)
    reader.query("SELECT 1 FROM events")  # the function exists
    name = reader._function
    for sql in (f"SELECT {name}('track', 'x', '{{\"a\": \"guess\"}}')",
                f"SELECT upper({name.upper()}('track', 'x', '{{}}')) FROM events"):
        with pytest.raises(QueryError, match="nerve's own"):
            reader.query(sql)


def test_a_filter_on_an_undeclared_value_is_known_to_be_masked(
        stored: tuple[Warehouse, Catalog]) -> None:
    """So a reader's filter on it is refused (it would match nothing) rather than
    answered with a zero; on a strict event an undeclared name holds nothing."""
    _, catalog = stored
    fields = MaskedFields(catalog)
    assert fields.how("property", ("note",), ["profile_viewed"]) == MaskedFields.HASH
    assert fields.how("property", ("employee", "address"), ["profile_viewed"]) \
        == MaskedFields.HASH
    assert fields.how("property", ("department",), ["profile_viewed"]) is None
    assert fields.how("property", ("employee", "band"), ["profile_viewed"]) is None
    assert fields.how("property", ("note",), ["review_submitted"]) is None
    assert fields.how("property", ("salary",), ["salary_exported"]) == MaskedFields.HASH


IDENTIFY = """\
name: identify
type: identify
description: A user signs in.
owner: accounts
purpose: analytics
version: 1
properties:
  plan: {type: string, pii: none}
  email: {type: string, pii: personal, handling: keep}
"""

CONTEXT_RAW = {"employee_name": "Jane Ctxdoe", "insurer_ref": "INS-RAW-4711",
               "street": "Ctxstrasse 9", "email": "jane.ctx@raw.example"}


def test_a_reader_sees_undeclared_context_traits_masked(
        make_workspace: Callable[..., Workspace], events_table: Any) -> None:
    """``context.traits`` (the user's traits the SDKs copy into every call) holds the
    same values as identify's traits: its undeclared ones are masked as theirs are, in
    stored rows and in the quarantine. Before, they reached a masked reader as stored."""
    ws = make_workspace({"identify.yaml": IDENTIFY, "review_submitted.yaml": REVIEW})
    warehouse = Warehouse.for_workspace(ws)
    user = {"plan": "gold", "email": CONTEXT_RAW["email"],
            "employee_name": CONTEXT_RAW["employee_name"],
            "insurer_ref": CONTEXT_RAW["insurer_ref"],
            "home": {"street": CONTEXT_RAW["street"]}}
    cursor = warehouse.cursor()
    cursor.register("rows", events_table([
        {"event": "review_submitted", "user_id": "u1", "timestamp": AT, "message_id": "rv",
         "properties": {"rating": 4}, "traits": user,
         "context": {"traits": user, "locale": "de-DE"}},
        {"event": "review_submitted", "user_id": "u2", "timestamp": AT, "message_id": "ok",
         "properties": {"rating": 5}, "context": {"traits": {"plan": "free"}}}]))
    cursor.execute("INSERT INTO events SELECT * FROM rows")
    cursor.register("unplanned", events_table([
        {"event": "chat_started", "user_id": "u1", "timestamp": AT, "message_id": "cs",
         "properties": {}, "context": {"traits": user}}]))
    cursor.execute("INSERT INTO quarantine BY NAME SELECT * EXCLUDE (loaded_at), "
                   "NULL::JSON AS violations, timestamp AS quarantined_at FROM unplanned")
    catalog = Catalog.load(ws.events_dir)
    reader = MaskedWarehouse(warehouse, catalog, b"k" * 16)
    query = "SELECT message_id, context, traits FROM {}"
    seen = {r["message_id"]: r for table in ("events", "quarantine")
            for r in reader.query(query.format(table)).to_pylist()}
    text = json.dumps(seen)
    for value in CONTEXT_RAW.values():
        assert value not in text, value
    context = json.loads(seen["rv"]["context"])
    traits = context["traits"]
    # declared not personal: as stored; the names sent all stay; the rest of the context
    assert (traits["plan"], context["locale"]) == ("gold", "de-DE")
    assert set(traits) == set(user)
    # one mask per value: the same as the traits column's
    assert traits == json.loads(seen["rv"]["traits"])
    assert json.loads(seen["cs"]["context"])["traits"] == traits
    assert json.loads(seen["ok"]["context"]) == {"traits": {"plan": "free"}}
    # the admin's view is the warehouse as stored
    admin = json.loads(warehouse.query(
        "SELECT context FROM events WHERE message_id = 'rv'").to_pylist()[0]["context"])
    assert admin["traits"]["insurer_ref"] == CONTEXT_RAW["insurer_ref"]
    # a filter on one is known to be masked (it would compare masks with stored values)
    fields = MaskedFields(catalog)
    assert fields.how("context", ("traits", "insurer_ref")) == MaskedFields.HASH
    assert fields.how("context", ("traits", "home", "street")) == MaskedFields.HASH
    assert fields.how("context", ("traits", "plan")) is None
    assert fields.how("context", ("locale",)) is None
