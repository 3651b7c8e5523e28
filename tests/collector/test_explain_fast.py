"""The explanation of an invalid payload, pinned byte for byte to the straightforward one.

``Catalog.explainer`` works each spec's file, line and message prefix out once;
``reference`` below is the plain computation it replaced (a fresh validator, every lookup
per violation). Both must give the same violations in the same order, with the same text.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import jsonschema_rs
import orjson
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from nerve.catalog import PAYLOAD_FIELD, Catalog, EventSpec, PropertySpec, Version
from nerve.catalog._catalog import _enum_message, _int64_message
from nerve.catalog._model import INT64_RANGE
from nerve.collector import Collector, Validator
from nerve.workspace import Workspace

PRODUCT = """\
name: product
description: The product acted on.
properties:
  product_id: {type: string, required: true, pii: none}
  category: {type: string, enum: [sneakers, boots], pii: none}
  price: {type: number, minimum: 0, pii: none}
  currency: {type: string, pattern: "^[A-Z]{3}$", pii: none}
"""

CHECKOUT = """\
name: checkout
description: A shopper pays.
owner: commerce
purpose: analytics
version: 3
include: [product]
properties:
  quantity: {type: integer, required: true, minimum: 1, maximum: 99, pii: none}
  paid_at: {type: timestamp, pii: none}
  gift: {type: boolean, pii: none}
  tags:
    type: array
    pii: none
    items: {type: string, pattern: "^[a-z]+$"}
  address:
    type: object
    required: true
    pii: none
    properties:
      city: {type: string, required: true, pii: none}
      zip: {type: string, pattern: "^[0-9]{5}$", pii: none}
      geo:
        type: object
        pii: none
        properties:
          lat: {type: number, required: true, minimum: -90, maximum: 90, pii: none}
  lines:
    type: array
    pii: none
    items:
      type: object
      properties:
        sku: {type: string, required: true, pii: none}
        qty: {type: integer, minimum: 1, pii: none}
  level: {type: integer, enum: [1, 2, 3], pii: none}
"""

IDENTIFY = """\
name: identify
type: identify
description: Who the shopper is.
owner: growth
purpose: analytics
version: 1
additional_properties: true
properties:
  plan: {type: string, enum: [free, member, vip], pii: none}
  age: {type: integer, minimum: 0, pii: none}
  prefs:
    type: object
    pii: none
    properties:
      mail: {type: boolean, required: true, pii: none}
"""


def declared_at(spec: EventSpec, instance_path: list[str | int]) -> PropertySpec | None:
    """The innermost declared property on a payload's path that has a line (the first of
    a name; an array index steps into the array's items), else the outermost."""
    props, prop, found = spec.properties, None, None
    for step in instance_path:
        if isinstance(step, int):
            if prop is None or prop.items is None:
                break
            prop = prop.items
        else:
            prop = next((p for p in props if p.name == step), None)
            if prop is None:
                break
        props = prop.properties
        if prop.line or found is None:
            found = prop
    return found


def reference(spec: EventSpec, payload: Any) -> list[dict[str, Any]]:
    """The violations computed plainly: everything per violation."""
    validator = jsonschema_rs.Draft202012Validator(spec.json_schema(), validate_formats=True)
    field_name = PAYLOAD_FIELD.get(spec.type, "properties")
    result = []
    for error in validator.iter_errors(payload):
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}"
                       for p in error.instance_path)
        prop = declared_at(spec, error.instance_path)
        line = (prop.line if prop and prop.line else spec.lines.get("properties"))
        file = str(prop.file if prop and prop.file else spec.file) if spec.file else None
        rule = re.sub(r"(?<!^)(?=[A-Z])", "_", type(error.kind).__name__).lower()
        # enum messages list every allowed value (jsonschema-rs counts all but two)
        message = (_enum_message(error.instance, error.kind.options) if rule == "enum"
                   else error.message)
        # the bound every integer carries (the 64-bit range) is explained as that range
        if rule in ("minimum", "maximum") and error.kind.limit in INT64_RANGE:
            message = _int64_message(error.instance)
        result.append({"path": f"$.{field_name}{path}", "rule": rule,
                       "message": f"{spec.name}{path}: {message}", "file": file,
                       "line": line})
    return result


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    events = tmp_path_factory.mktemp("explain") / "events"
    (events / "groups").mkdir(parents=True)
    (events / "groups" / "product.yaml").write_text(PRODUCT)
    (events / "checkout.yaml").write_text(CHECKOUT)
    (events / "identify.yaml").write_text(IDENTIFY)
    return Catalog.load(events)


#: a spec built in code: no file, no lines (the violations name neither)
BARE = EventSpec(name="bare", version=Version(1), properties=(
    PropertySpec(name="n", type="integer", required=True, minimum=0),
    PropertySpec(name="s", type="string", enum=("a", "b")),
    PropertySpec(name="o", type="object", properties=(
        PropertySpec(name="x", type="number", required=True),)),
))

ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 200)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=6,
)
#: keys a client may add: declared names elsewhere in the catalog, the empty name, noise
EXTRA_KEYS = st.sampled_from(["", "city", "sku", "plan", "price", "0"]) | st.text(max_size=4)


def value_for(prop: PropertySpec) -> st.SearchStrategy[Any]:
    """Mostly well-formed values of ``prop``'s type (some break its rules), sometimes any."""
    typed: st.SearchStrategy[Any]
    if prop.enum is not None:
        typed = st.sampled_from(list(prop.enum)) | st.text(max_size=3)
    elif prop.type == "string":
        typed = st.text(max_size=6)
        if prop.pattern is not None:
            typed = st.from_regex(prop.pattern, fullmatch=True) | typed
    elif prop.type == "integer":
        typed = st.integers(-5, 120)
    elif prop.type == "number":
        typed = st.floats(-200, 200) | st.integers(-200, 200)
    elif prop.type == "boolean":
        typed = st.booleans()
    elif prop.type == "timestamp":
        typed = st.sampled_from(["2026-11-28T10:00:00Z", "2026-13-40T99:00:00Z", "soon", ""])
    elif prop.type == "array":
        assert prop.items is not None
        typed = st.lists(value_for(prop.items), max_size=3)
    else:
        typed = object_for(prop.properties)
    return st.one_of(typed, typed, typed, ANY_JSON)


def object_for(props: tuple[PropertySpec, ...]) -> st.SearchStrategy[dict[str, Any]]:
    """Some declared properties (required ones may be missing), plus a few extra keys."""
    declared = st.fixed_dictionaries({}, optional={p.name: value_for(p) for p in props})
    extra = st.dictionaries(EXTRA_KEYS, ANY_JSON, max_size=2)
    return st.builds(lambda d, e: {**e, **d}, declared, extra)


def payloads(spec: EventSpec) -> st.SearchStrategy[Any]:
    return st.one_of(object_for(spec.properties), object_for(spec.properties), ANY_JSON)


def assert_same(catalog: Catalog, spec: EventSpec, payload: Any) -> list[dict[str, Any]]:
    """Every path to the explanation gives ``reference``'s violations; returns them."""
    expected = reference(spec, payload)
    assert catalog.explainer(spec)(payload) == expected
    assert [v.as_dict() for v in catalog.violations(spec, payload)] == expected
    if catalog.get(spec.name, spec.version) is not spec:
        return expected  # a spec from outside the catalog: the collector never sees it
    validator = Validator(catalog)
    event = spec.name if spec.type == "track" else None
    rule = validator.rule(spec.type, event, None)
    assert rule.check is not None
    text = orjson.dumps(expected).decode() if expected else None
    assert validator.judge(spec.type, event, payload, None) == (str(spec.version), text)
    if not rule.check(payload):  # the collector explains only what its check refused
        assert validator.explain(rule, payload) == (str(spec.version), text)
    return expected


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_explanations_equal_the_straightforward_ones(catalog: Catalog, data: Any) -> None:
    spec = data.draw(st.sampled_from([catalog.get("checkout"), catalog.get("identify")]))
    assert spec is not None
    found = assert_same(catalog, spec, data.draw(payloads(spec)))
    event(f"violations: {min(len(found), 3)}")  # --hypothesis-show-statistics: the mix
    for rule in {v["rule"] for v in found}:
        event(f"rule: {rule}")


@settings(max_examples=100, deadline=None)
@given(payload=payloads(BARE))
def test_a_spec_without_files_explains_the_same(payload: Any) -> None:
    catalog = Catalog.from_specs([BARE])
    assert_same(catalog, BARE, payload)


def good_checkout(**changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {"product_id": "p1", "quantity": 2,
                               "address": {"city": "Berlin", "zip": "10115"}}
    payload.update(changes)
    return payload


@pytest.mark.parametrize(("payload", "rules"), [
    (good_checkout(quantity="1"), ["type"]),
    (good_checkout(category="hats", currency="eur"), ["enum", "pattern"]),
    ({"quantity": 0, "address": {}}, ["required", "minimum", "required"]),
    (good_checkout(address={"city": 5, "zip": "1", "geo": {"lat": 91}}),
     ["type", "maximum", "pattern"]),
    (good_checkout(lines=[{"sku": "a"}, {"qty": 0}], tags=["ok", "Not", 3]),
     ["required", "minimum", "pattern", "type"]),
    (good_checkout(paid_at="yesterday", level=4, gift="yes"), ["format", "type", "enum"]),
    (good_checkout(**{"": 1, "surprise": {"a": 1}}), ["additional_properties"]),
    # past the 64-bit bound every integer carries: 2**63 as the float JSON reads it as
    (good_checkout(lines=[{"sku": "a", "qty": 9.223372036854776e18}]), ["maximum"]),
    ([1, 2], ["type"]),
])
def test_each_kind_of_violation_and_several_at_once(catalog: Catalog, payload: Any,
                                                    rules: list[str]) -> None:
    spec = catalog.get("checkout")
    assert spec is not None
    found = assert_same(catalog, spec, payload)
    assert sorted(v["rule"] for v in found) == sorted(rules)
    # a group's property names the group's file; the event's own, the event's file
    for violation in found:
        assert violation["file"] is not None
        assert violation["line"] is not None
        if violation["path"] in ("$.properties.category", "$.properties.currency"):
            assert violation["file"].endswith("product.yaml")
        else:
            assert violation["file"].endswith("checkout.yaml")


def test_the_explainer_keeps_only_declared_names(catalog: Catalog) -> None:
    """Names and values in a payload come from the client: explained, never cached."""
    spec = catalog.get("identify")
    assert spec is not None
    explainer = catalog.explainer(spec)
    found = assert_same(catalog, spec, {"secret-name": {"x": 1}, "prefs": {"mail": "no"},
                                        "age": -1})
    assert sorted(v["message"].split(":")[0] for v in found) == ["identify.age",
                                                                 "identify.prefs.mail"]
    # the cache is keyed by schema paths: keywords and declared names only
    cached = {step for schema_path in explainer._at for step in schema_path}
    assert cached <= {"properties", "items", "type", "minimum", "enum", "required",
                      "age", "plan", "prefs", "mail"}
    assert catalog.explainer(spec) is explainer  # one per spec


def test_another_spec_of_the_same_version_is_explained_as_itself(catalog: Catalog) -> None:
    spec = catalog.get("checkout")
    assert spec is not None
    moved = EventSpec(name=spec.name, version=spec.version, properties=spec.properties,
                      file=Path("elsewhere.yaml"), lines={"properties": 1})
    [required] = assert_same(catalog, moved, {"product_id": "p", "quantity": 1})
    assert (required["rule"], required["file"], required["line"]) == (
        "required", "elsewhere.yaml", 1)
    [required] = assert_same(catalog, spec, {"product_id": "p", "quantity": 1})
    assert required["file"] == str(spec.file)


def test_the_collector_stores_the_same_text(tmp_path: Path, catalog: Catalog) -> None:
    (tmp_path / "nerve.toml").write_text('[project]\nname = "x"\n\n[[sources]]\n'
                                         'name = "server"\nwrite_key = "KEY12345"\n')
    workspace = Workspace.load(tmp_path)
    collector = Collector(workspace, catalog, privacy=False)
    spec = catalog.get("checkout")
    assert spec is not None
    bad = [good_checkout(quantity="1"), {"quantity": 0, "lines": [{"qty": "x"}]},
           good_checkout(level=7, address={"geo": {}})]
    body = orjson.dumps({"batch": [{"type": "track", "event": "checkout", "userId": "u",
                                    "properties": p} for p in bad]})
    auth = "Basic " + base64.b64encode(b"KEY12345:").decode()
    result = collector.collect(body, endpoint="batch", authorization=auth)
    stored = [dict(e)["violations"] for e in result.envelopes]
    assert stored == [orjson.dumps(reference(spec, p)).decode() for p in bad]


def test_a_repeated_property_name_is_located_at_its_first_declaration() -> None:
    """``EventSpec.property`` returns the first of a name; so does the explainer."""
    first = PropertySpec(name="n", type="integer", file=Path("a.yaml"), line=3)
    spec = EventSpec(name="twice", version=Version(1), file=Path("e.yaml"),
                     properties=(first, PropertySpec(name="n", type="integer",
                                                     file=Path("b.yaml"), line=9)))
    [violation] = assert_same(Catalog.from_specs([spec]), spec, {"n": "x"})
    assert (violation["file"], violation["line"]) == ("a.yaml", 3)


def line_in(text: str, start: str) -> int:
    """The 1-based line of ``text`` that starts with ``start``."""
    [number] = [i + 1 for i, line in enumerate(text.splitlines()) if line.startswith(start)]
    return number


def test_a_nested_violation_names_the_nested_property_and_its_line(catalog: Catalog) -> None:
    """An object's key or an array item's field is located at its own line, not at the
    line of the top-level property it sits in, and named by its path in the payload."""
    spec = catalog.get("checkout")
    assert spec is not None
    payload = good_checkout(lines=[{"sku": "a"}, {"sku": "b", "qty": 0}],
                            tags=["ok", "Not"],
                            address={"zip": "1", "geo": {"lat": 91}})
    found = {v["path"]: (v["line"], v["message"].split(":")[0])
             for v in catalog.explainer(spec)(payload)}
    assert found == {
        "$.properties.lines[1].qty": (line_in(CHECKOUT, "        qty:"),
                                      "checkout.lines[1].qty"),
        "$.properties.tags[1]": (line_in(CHECKOUT, "    items: {type: string"),
                                 "checkout.tags[1]"),
        "$.properties.address": (line_in(CHECKOUT, "  address:"), "checkout.address"),
        "$.properties.address.zip": (line_in(CHECKOUT, "      zip:"),
                                     "checkout.address.zip"),
        "$.properties.address.geo.lat": (line_in(CHECKOUT, "          lat:"),
                                         "checkout.address.geo.lat"),
    }
