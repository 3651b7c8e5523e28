from pathlib import Path

import pytest

from nerve.catalog import Catalog, Version
from nerve.errors import CatalogError

ADD_TO_CART = """\
name: add_to_cart
description: A shopper adds a product to the cart.
owner: growth
purpose: analytics
version: 2
retention: 400d
include: [product]
properties:
  quantity:
    type: integer
    required: true
    minimum: 1
    pii: none
"""

PRODUCT_GROUP = """\
name: product
description: The product acted on.
properties:
  product_id: {type: string, required: true, pii: none}
  price: {type: number, minimum: 0, pii: none}
"""


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_loads_event_with_group_and_compiles_schema(tmp_path: Path) -> None:
    events = write(
        tmp_path, {"add_to_cart.yaml": ADD_TO_CART, "groups/product.yaml": PRODUCT_GROUP}
    )
    catalog = Catalog.load(events)
    spec = catalog.get("add_to_cart")
    assert spec is not None
    assert spec.version == Version(2)
    assert spec.retention_days == 400
    assert [p.name for p in spec.properties] == ["quantity", "product_id", "price"]
    schema = spec.json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["required"] == ["quantity", "product_id"]
    assert schema["additionalProperties"] is False


def test_violations_name_path_rule_and_catalog_line(tmp_path: Path) -> None:
    events = write(
        tmp_path, {"add_to_cart.yaml": ADD_TO_CART, "groups/product.yaml": PRODUCT_GROUP}
    )
    catalog = Catalog.load(events)
    spec = catalog.get("add_to_cart")
    assert spec is not None
    assert catalog.violations(spec, {"quantity": 1, "product_id": "p1", "price": 3.5}) == []
    found = catalog.violations(spec, {"quantity": 0, "product_id": "p1", "price": "12.5"})
    by_path = {v.path: v for v in found}
    assert set(by_path) == {"$.properties.quantity", "$.properties.price"}
    assert by_path["$.properties.price"].rule == "type"
    assert by_path["$.properties.price"].line == 5  # line in groups/product.yaml
    assert by_path["$.properties.price"].file is not None
    assert by_path["$.properties.price"].file.endswith("groups/product.yaml")
    assert by_path["$.properties.quantity"].rule == "minimum"
    assert by_path["$.properties.quantity"].line == 9


def test_a_violation_quoting_a_huge_payload_is_cut(tmp_path: Path) -> None:
    """The validator quotes the payload: an undeclared key of 30,000 characters, or an
    array of 3,000 values where a number was due, made a message as large as the event."""
    events = write(
        tmp_path, {"add_to_cart.yaml": ADD_TO_CART, "groups/product.yaml": PRODUCT_GROUP}
    )
    catalog = Catalog.load(events)
    spec = catalog.get("add_to_cart")
    assert spec is not None
    found = catalog.violations(spec, {"quantity": 1, "product_id": "p1", "k" * 30000: 1,
                                      "price": ["12.5"] * 3000})
    assert {v.rule for v in found} == {"additional_properties", "type"}
    for v in found:
        assert len(v.message) < 600, v.message[:100]
        assert v.message.endswith(" characters)")
    by_rule = {v.rule: v for v in found}
    assert by_rule["type"].message.startswith('add_to_cart.price: ["12.5","12.5"')
    assert by_rule["additional_properties"].message.startswith(
        "add_to_cart: Additional properties are not allowed ('kkk")
    long_path = catalog.violations(spec, {"quantity": 1, "product_id": "p1",
                                          "price": {"x" * 5000: 1}})
    assert [len(v.path) < 600 for v in long_path] == [True]


def test_load_errors_name_file_line_and_field(tmp_path: Path) -> None:
    bad = ADD_TO_CART.replace("type: integer", "type: int").replace("400d", "a while")
    events = write(tmp_path, {"add_to_cart.yaml": bad, "groups/product.yaml": PRODUCT_GROUP})
    with pytest.raises(CatalogError) as info:
        Catalog.load(events)
    text = str(info.value)
    assert "add_to_cart.yaml:6: add_to_cart.retention:" in text
    assert "add_to_cart.yaml:10: add_to_cart.quantity.type: expected one of" in text
    assert len(info.value.problems) == 2


def test_a_missing_type_and_a_field_indented_too_little_say_so(tmp_path: Path) -> None:
    # `pii: none` one level left of its property reads as a property named pii
    bad = ADD_TO_CART.replace("    type: integer\n", "").replace("    pii: none\n",
                                                                  "  pii: none\n")
    events = write(tmp_path, {"add_to_cart.yaml": bad, "groups/product.yaml": PRODUCT_GROUP})
    with pytest.raises(CatalogError) as info:
        Catalog.load(events)
    text = str(info.value)
    assert "add_to_cart.yaml:10: add_to_cart.quantity.type: missing; expected one of " \
           "string, integer, number, boolean, timestamp, array, object" in text, text
    assert "add_to_cart.yaml:12: add_to_cart.pii: expected a mapping with a type, got " \
           "'none'; pii is a field of a property: indent it under the property it belongs " \
           "to" in text, text
    assert len(info.value.problems) == 2


@pytest.mark.parametrize(("written", "meant"), [
    ("int", "integer"), ("str", "string"), ("float", "number"), ("bool", "boolean"),
    ("datetime", "timestamp"), ("dict", "object"), ("nmber", "number"),
])
def test_a_type_by_another_name_says_which_is_meant(tmp_path: Path, written: str,
                                                     meant: str) -> None:
    events = write(tmp_path, {"x.yaml": f"name: x_done\nproperties:\n  n: {{type: {written}}}\n"})
    with pytest.raises(CatalogError) as info:
        Catalog.load(events)
    assert str(info.value).endswith(f"x.yaml:3: x_done.n.type: expected one of string, "
                                    f"integer, number, boolean, timestamp, array, object, "
                                    f"got {written!r}; did you mean {meant!r}?")


def test_a_tab_in_the_indentation_says_to_use_spaces(tmp_path: Path) -> None:
    events = write(tmp_path, {"x.yaml": "name: x_done\nproperties:\n  n:\n\ttype: string\n"})
    with pytest.raises(CatalogError, match=r"x.yaml:4:1: invalid YAML: found character "
                                           r"'\\t' .* replace the tab"):
        Catalog.load(events)


def test_a_copy_that_kept_the_name_and_version_is_the_one_named(tmp_path: Path) -> None:
    """A file copied for a new event that kept ``name:`` and ``version:``: the file named
    after the event keeps it, the copy is the error (at its name: line), with the advice,
    although it sorts first; a version in versions/ equal to the live one, at version:."""
    events = write(tmp_path, {"add_to_cart.yaml": ADD_TO_CART,
                              "add_to_wishlist.yaml": ADD_TO_CART,
                              "groups/product.yaml": PRODUCT_GROUP})
    older = events / "versions" / "add_to_cart.v0.yaml"
    older.parent.mkdir()
    older.write_text(ADD_TO_CART)
    with pytest.raises(CatalogError) as info:
        Catalog.load(events)
    name_line = ADD_TO_CART.splitlines().index("name: add_to_cart") + 1
    version_line = next(i + 1 for i, line in enumerate(ADD_TO_CART.splitlines())
                        if line.startswith("version:"))
    assert [(Path(str(where.file)).name, where.line, text)
            for where, text in info.value.problems] == [
        ("add_to_wishlist.yaml", name_line, "add_to_cart version 2.0.0 is also defined in "
         f"{events.name}/add_to_cart.yaml: if this file is meant for a new event, give it a name "
         "of its own (name: add_to_wishlist)"),
        ("add_to_cart.v0.yaml", version_line, "add_to_cart version 2.0.0 is also defined in "
         f"{events.name}/add_to_cart.yaml: a version kept in versions/ is older than the "
         "live file: set the version it had"),
    ]


def test_properties_written_as_a_list_say_how_to_write_them(tmp_path: Path) -> None:
    """Other tracking-plan tools list properties as ``- name: people``; nerve maps them."""
    events = write(tmp_path, {"x.yaml": "name: x_done\nproperties:\n  - name: people\n"
                                        "    type: integer\n"})
    with pytest.raises(CatalogError) as info:
        Catalog.load(events)
    assert str(info.value).endswith(
        "x.yaml:2: x_done.properties: expected a mapping of property names to their fields, "
        "got a list: write each property as its name, then its fields indented under it "
        "(people: {type: ...}), not as a '- name:' item")


def test_properties_partly_written_as_a_list_say_what_yaml_found(tmp_path: Path) -> None:
    """One property as a ``- name:`` item and the next as a key said only "expected <block
    end>, but found '?'": YAML's name for a key, which the file does not contain."""
    events = write(tmp_path, {
        "x.yaml": "name: x_done\nproperties:\n  - name: people\n    type: integer\n"
                  "  city:\n    type: string\n",
        "y.yaml": "name: y_done\nproperties:\n  city:\n    type: string\n"
                  "  - name: people\n    type: integer\n"})
    with pytest.raises(CatalogError) as info:
        Catalog.load(events)
    problems = str(info.value)
    advice = ("write every entry alike (a property is its name and ':', its fields indented "
              "under it, not a '- name:' item), or indent the line as the fields of its own "
              "key)")
    assert ("x.yaml:5:3: invalid YAML: expected <block end>, but found '?' (line 5 is a key, "
            f"'city:', among the '- ' items of the list that starts at line 3: {advice}"
            in problems)
    assert ("y.yaml:5:3: invalid YAML: expected <block end>, but found '-' (line 5 is a '- ' "
            f"item among the keys of the mapping that starts at line 3: {advice}" in problems)


def test_array_items_written_as_a_type_name_say_to_write_a_mapping(tmp_path: Path) -> None:
    """`items: string` under an array said "items is a field of a property: indent it under
    the property it belongs to", where it already was."""
    events = write(tmp_path, {"x.yaml": "name: x_done\nproperties:\n  tags:\n"
                                        "    type: array\n    items: string\n"})
    with pytest.raises(CatalogError) as info:
        Catalog.load(events)
    assert str(info.value).endswith(
        "x.yaml:5: x_done.tags.items: expected a mapping with a type, got 'string'; write the "
        "element's fields as a property's: items: {type: string}")


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    events = write(tmp_path, {"broken.yaml": "name: x\nproperties:\n  a: [unclosed\n"})
    # the bracket left open (line 3), not the end of the file where the parser noticed
    with pytest.raises(CatalogError, match=r"broken.yaml:3:6: invalid YAML: .* flow sequence"):
        Catalog.load(events)


def test_impossible_date_names_line_instead_of_crashing(tmp_path: Path) -> None:
    # YAML reads 2026-13-01 as a date; the calendar refuses it (a ValueError, no line)
    events = write(tmp_path, {"x.yaml": "name: x_done\ndescription: 2026-13-01\n"})
    with pytest.raises(CatalogError, match=r"x.yaml:2:14: invalid YAML: '2026-13-01' is not "
                                           r"a valid date \(month must be in 1..12\)"):
        Catalog.load(events)


def test_versions_live_side_by_side(tmp_path: Path) -> None:
    v1 = ADD_TO_CART.replace("version: 2", "version: 1.0.0")
    events = write(
        tmp_path,
        {
            "add_to_cart.yaml": ADD_TO_CART,
            "add_to_cart.v1.yaml": v1,
            "groups/product.yaml": PRODUCT_GROUP,
        },
    )
    catalog = Catalog.load(events)
    assert [str(s.version) for s in catalog.versions("add_to_cart")] == ["1.0.0", "2.0.0"]
    assert catalog.get("add_to_cart", "1") is not None
    assert catalog.get("add_to_cart", "3") is None
    assert catalog.get("add_to_cart").version == Version(2)  # type: ignore[union-attr]


def test_segment_style_event_names_compile(tmp_path: Path) -> None:
    events = write(tmp_path, {"viewed.yaml": "name: Experiment Viewed\nproperties:\n"
                                             "  experiment_id: {type: string}\n"})
    catalog = Catalog.load(events)
    spec = catalog.get("Experiment Viewed")
    assert spec is not None
    assert catalog.violations(spec, {"experiment_id": 3})[0].rule == "type"


def test_load_partial_keeps_what_loads_and_compiles(tmp_path: Path) -> None:
    bad_pattern = "name: coupon_used\nproperties:\n  code: {type: string, pattern: '(['}\n"
    events = write(tmp_path, {"add_to_cart.yaml": ADD_TO_CART, "groups/product.yaml":
                              PRODUCT_GROUP, "coupon_used.yaml": bad_pattern,
                              "broken.yaml": "name: x\nproperties:\n  a: [unclosed\n"})
    catalog, problems = Catalog.load_partial(events)
    assert catalog.names() == ["add_to_cart"]
    assert sorted(Path(where.file).name for where, _ in problems) == [
        "broken.yaml", "coupon_used.yaml"]
    assert any(text.startswith("coupon_used.code.pattern: not a valid regular expression")
               for _, text in problems)
    spec = catalog.get("add_to_cart")
    assert spec is not None
    assert catalog.violations(spec, {"quantity": 1, "product_id": "p1"}) == []
    # load is all or nothing, and names every problem at once
    with pytest.raises(CatalogError) as info:
        Catalog.load(events)
    assert len(info.value.problems) == 2


TRACK_PLAYED = """\
name: track_played
description: A track was played.
owner: music
purpose: analytics
include: [release]
properties:
  track_id:
    type: string
    pattern: "^TR-[0-9]{3,8}$"
  tags:
    type: array
    items:
      type: string
      pattern: "^TR-[0-9{3,8}$"
  meta:
    type: object
    properties:
      mood: {type: string, pattern: "^(calm|loud$"}
      lang: {type: string, pattern: "^\\\\p{L}{2}$"}
"""

RELEASE_GROUP = """\
name: release
properties:
  label: {type: string, pattern: "^[z-a]+$"}
"""


def test_a_bad_pattern_names_its_file_line_and_property(tmp_path: Path) -> None:
    """Each bad pattern is reported where it is written, with the reason, not as line 1
    and the validator's schema dump; a group's is reported once, in the group's file."""
    events = write(tmp_path, {"track_played.yaml": TRACK_PLAYED,
                              "track_skipped.yaml": "name: track_skipped\ninclude: [release]\n",
                              "groups/release.yaml": RELEASE_GROUP})
    with pytest.raises(CatalogError) as info:
        Catalog.load(events)
    found = [(Path(where.file).relative_to(tmp_path).as_posix(), where.line, text)
             for where, text in info.value.problems]
    assert sorted(found) == [
        ("groups/release.yaml", 3, "release.label.pattern: not a valid regular expression: "
                                   "bad character range z-a at position 2"),
        ("track_played.yaml", 14, "track_played.tags.items.pattern: not a valid regular "
                                  "expression: unterminated character set at position 4"),
        ("track_played.yaml", 18, "track_played.meta.mood.pattern: not a valid regular "
                                  "expression: missing ), unterminated subpattern at position 1"),
    ]


def test_patterns_are_judged_by_the_validators_dialect(tmp_path: Path) -> None:
    """``\\p{L}`` is refused by Python's re but validates events: it loads and works."""
    events = write(tmp_path, {"song.yaml": "name: song\nproperties:\n"
                                           "  lang: {type: string, pattern: '^\\p{L}{2}$'}\n"})
    catalog = Catalog.load(events)
    spec = catalog.get("song")
    assert spec is not None
    assert catalog.violations(spec, {"lang": "fr"}) == []
    assert [v.rule for v in catalog.violations(spec, {"lang": "f1"})] == ["pattern"]


@pytest.mark.parametrize(("text", "where"), [
    # an unclosed quote: the parser finds it at the end of the file (line 5), which says
    # nothing; the error points at the quote
    ("name: x_y\nproperties:\n  a:\n    type: \"string\n",
     r"x.yaml:4:11: invalid YAML: found unexpected end of stream \(while scanning a quoted "
     r"scalar at line 4, column 11\)"),
    # an unclosed flow mapping: found on the next line, and named where it starts
    ("name: x_y\nproperties:\n  a: {type: string\n  b: {type: number}\n",
     r"x.yaml:3:6: invalid YAML: expected ',' or '}', but got ':' \(while parsing a flow "
     r"mapping at line 3, column 6\) \(is its closing '}' missing\?\)"),
    # a property's name without its ':', above its fields
    ("name: x_y\nproperties:\n  reason\n    type: string\n    pii: none\n",
     r"x.yaml:4:9: invalid YAML: mapping values are not allowed here \(line 3, 'reason', "
     r"has no ':': write 'reason:' if it names a property\)"),
    ("name: x_y\nproperties:\n  a: {type: string}\n  reason\n    type: string\n"
     "    enum: [a, b]\n    pii: none\n",
     r"x.yaml:4:3: invalid YAML: could not find expected ':' \(while scanning a simple key "
     r"at line 4, column 3\) \(is the ':' after 'reason' missing\?\)"),
    # an enum left open mid-file: the parser stumbles on the next field
    ("name: x_y\nproperties:\n  a:\n    enum: [x, y\n    pii: none\n",
     r"x.yaml:4:11: invalid YAML: expected ',' or ']', but got ':' \(while parsing a flow "
     r"sequence at line 4, column 11\) \(is its closing ']' missing\?\)"),
])
def test_yaml_syntax_error_names_the_construct_left_open(
        tmp_path: Path, text: str, where: str) -> None:
    events = write(tmp_path, {"x.yaml": text})
    with pytest.raises(CatalogError, match=where):
        Catalog.load(events)


def test_a_misspelt_field_names_the_closest_known_one(tmp_path: Path) -> None:
    events = write(tmp_path, {
        "ride_started.yaml": "name: ride_started\nonwer: rides\nproperties:\n"
                             "  dock_id:\n    type: string\n    requird: true\n",
        "groups/ride.yaml": "name: ride\ndescriptoin: A ride.\nproperties: {}\n",
        "other.yaml": "name: other\nzzz: 1\n",
    })
    with pytest.raises(CatalogError) as info:
        Catalog.load(events)
    text = str(info.value)
    assert ("ride_started.yaml:2: ride_started.onwer: unknown field; did you mean 'owner'? "
            "(expected one of additional_properties, ") in text
    assert ("ride_started.yaml:6: ride_started.dock_id.requird: unknown field; did you mean "
            "'required'? (expected one of description, ") in text
    assert ("ride.yaml:2: ride.descriptoin: unknown field; did you mean 'description'? "
            "(expected one of description, name, properties)") in text
    # nothing close: the known fields only
    assert "other.yaml:2: other.zzz: unknown field; expected one of additional_properties, " \
        in text



def test_a_misspelt_value_names_the_closest_accepted_one(tmp_path: Path) -> None:
    events = write(tmp_path, {
        "ride_started.yaml": "name: ride_started\ntype: trak\nstatus: actve\nproperties:\n"
                             "  email:\n    type: string\n    pii: persnal\n",
        "other.yaml": "name: other_thing\nproperties:\n  a: {type: string, pii: zzz}\n",
    })
    with pytest.raises(CatalogError) as info:
        Catalog.load(events)
    text = str(info.value)
    assert ("ride_started.yaml:2: ride_started.type: expected one of track, identify, page, "
            "screen, group, got 'trak'; did you mean 'track'?") in text
    assert ("ride_started.yaml:3: ride_started.status: expected one of draft, active, "
            "deprecated, got 'actve'; did you mean 'active'?") in text
    assert ("ride_started.yaml:7: ride_started.email.pii: expected one of none, pseudonymous, "
            "personal, sensitive, got 'persnal'; did you mean 'personal'?") in text
    # nothing close: the accepted values only
    assert ("other.yaml:3: other_thing.a.pii: expected one of none, pseudonymous, personal, "
            "sensitive, got 'zzz'\n") in text + "\n"


@pytest.mark.parametrize(("given", "meant"), [
    ("public", "none"), ("Private", "personal"), ("pii", "personal"),
    ("hashed", "pseudonymous"), ("health", "sensitive")])
def test_a_pii_class_of_another_vocabulary_names_nerves(tmp_path: Path, given: str,
                                                       meant: str) -> None:
    """``pii: public`` is no misspelling of any class, so it got no suggestion."""
    events = write(tmp_path, {"a.yaml": f"name: a_done\nproperties:\n  a: {{type: string, "
                                        f"pii: {given}}}\n"})
    with pytest.raises(CatalogError, match=f"got '{given}'; did you mean '{meant}'\\?"):
        Catalog.load(events)


EPISODE = """\
name: episode_played
description: A listener starts an episode on a device.
owner: player-team
purpose: analytics
version: 1.0.0
{extra}properties:
  device:
    type: object
    properties:
      kind: {{type: string, pii: none}}
  tags:
    type: array
    items:
      type: object
      properties:
        label: {{type: string, pii: none}}
  raw:
    type: object
    description: Anything the player adds.
"""


@pytest.mark.parametrize("extra", ["", "additional_properties: false\n"])
def test_declared_nested_objects_refuse_undeclared_keys(tmp_path: Path, extra: str) -> None:
    """"unknown properties are violations" holds inside a declared object too (and in
    the objects of an array); an object declared without properties takes any key."""
    catalog = Catalog.load(write(tmp_path, {"episode_played.yaml": EPISODE.format(extra=extra)}))
    spec = catalog.get("episode_played")
    assert spec is not None
    ok = {"device": {"kind": "tv"}, "tags": [{"label": "news"}], "raw": {"anything": [1]}}
    assert catalog.violations(spec, ok) == []
    found = catalog.violations(spec, {"device": {"kind": "tv", "extra": 1},
                                      "tags": [{"label": "a", "colour": "red"}]})
    assert {(v.path, v.rule) for v in found} == {
        ("$.properties.device", "additional_properties"),
        ("$.properties.tags[0]", "additional_properties")}, found


def test_open_events_leave_nested_objects_open(tmp_path: Path) -> None:
    catalog = Catalog.load(write(tmp_path, {"episode_played.yaml": EPISODE.format(
        extra="additional_properties: true\n")}))
    spec = catalog.get("episode_played")
    assert spec is not None
    assert catalog.violations(spec, {"device": {"kind": "tv", "extra": 1}}) == []


def test_an_enum_violation_names_every_allowed_value(tmp_path: Path) -> None:
    """jsonschema-rs names two values and counts the rest ("or 2 other candidates"); the
    client's author needs them all, up to a bound past which the rest are counted."""
    big = ", ".join(f"v{i:02d}" for i in range(25))
    events = write(tmp_path, {"recipe_opened.yaml": (
        "name: recipe_opened\nproperties:\n"
        "  diet: {type: string, enum: [omnivore, vegetarian, vegan, pescatarian]}\n"
        "  servings: {type: integer, enum: [2]}\n"
        f"  shelf: {{type: string, enum: [{big}]}}\n")})
    catalog = Catalog.load(events)
    spec = catalog.get("recipe_opened")
    assert spec is not None
    found = catalog.violations(spec, {"diet": "keto", "servings": 3, "shelf": "x"})
    assert [(v.rule, v.message) for v in found] == [
        ("enum", 'recipe_opened.diet: "keto" is not one of "omnivore", "vegetarian", '
                 '"vegan" or "pescatarian"'),
        ("enum", "recipe_opened.servings: 3 is not 2 (the only allowed value)"),
        ("enum", "recipe_opened.shelf: \"x\" is not one of "
                 + ", ".join(f'"v{i:02d}"' for i in range(20)) + " and 5 more"),
    ]


@pytest.mark.parametrize("written", ["1.10", "1.2"])
def test_a_version_of_two_parts_is_refused_as_yaml_reads_it_as_a_number(
        tmp_path: Path, written: str) -> None:
    # YAML reads 1.10 as the float 1.1: the event would silently be version 1.1.0
    events = write(tmp_path, {"x_done.yaml": f"name: x_done\nversion: {written}  # bumped\n"})
    with pytest.raises(CatalogError) as info:
        Catalog.load(events)
    assert f"x_done.yaml:2: x_done.version: {written} is read by YAML as the number" \
           in str(info.value)
    assert f"version: {written}.0" in str(info.value)


def test_a_version_of_three_parts_or_an_integer_loads(tmp_path: Path) -> None:
    events = write(tmp_path, {"a_done.yaml": "name: a_done\nversion: 1.10.0\n",
                              "b_done.yaml": "name: b_done\nversion: 2\n"})
    catalog = Catalog.load(events)
    assert catalog.get("a_done").version == Version(1, 10, 0)
    assert catalog.get("b_done").version == Version(2)


def test_an_empty_retention_says_nothing_was_written(tmp_path: Path) -> None:
    events = write(tmp_path, {"x_done.yaml": "name: x_done\nretention:\n"})
    with pytest.raises(CatalogError) as info:
        Catalog.load(events)
    assert str(info.value).endswith("x_done.yaml:2: x_done.retention: expected a retention "
                                    "like 400d, 13w, 6m, 2y or forever, got nothing")


def test_a_quote_left_open_before_another_quoted_value_is_named_at_its_line(
        tmp_path: Path) -> None:
    # the open quote on line 4 is closed by line 7's opening quote: the parser stumbles
    # on line 7, which is fine
    text = ('name: x_y\nproperties:\n  currency:\n    pattern: "^[A-Z]{3}$\n'
            '    type: string\n  coupon:\n    pattern: "^[A-Z0-9]{4,12}$"\n'
            '    type: string\n')
    events = write(tmp_path, {"x.yaml": text})
    with pytest.raises(CatalogError) as info:
        Catalog.load(events)
    assert "x.yaml:4:14: invalid YAML: " in str(info.value)
    assert "(the quoted value opened at line 4, column 14 runs on to line 7: is its " \
           "closing quote missing?)" in str(info.value)


def test_a_quoted_value_on_several_lines_is_not_blamed_for_another_error(
        tmp_path: Path) -> None:
    text = ('name: x_y\ndescription: "A long text\n  on two lines."\nproperties:\n'
            '  a: {type: string\n  b: {type: number}\n')
    events = write(tmp_path, {"x.yaml": text})
    with pytest.raises(CatalogError) as info:
        Catalog.load(events)
    # the error is the bracket left open on line 5, not the quoted value above it
    assert "x.yaml:5:6: invalid YAML: expected ',' or '}'" in str(info.value)
    assert "quote missing" not in str(info.value)


@pytest.mark.parametrize(("text", "where"), [
    # `description:` one level too far left of its property, `pii:` after it as it was
    ("name: x_y\nproperties:\n  a:\n    type: string\n  description: The a.\n    pii: none\n",
     "x.yaml:6:8: invalid YAML: mapping values are not allowed here (line 6 is indented "
     "deeper than line 5, so YAML reads it as the rest of line 5's value: indent the two "
     "alike if they are fields of the same property)"),
    ("name: x_y\ndescription: Note: a colon\n",
     "x.yaml:2:18: invalid YAML: mapping values are not allowed here (a value with ': ' in "
     "it must be quoted)"),
])
def test_a_mapping_where_a_value_goes_says_why(tmp_path: Path, text: str,
                                               where: str) -> None:
    events = write(tmp_path, {"x.yaml": text})
    with pytest.raises(CatalogError) as info:
        Catalog.load(events)
    assert where in str(info.value), str(info.value)


@pytest.mark.parametrize("written", ["0d", "0w", "0y"])
def test_a_retention_of_zero_is_refused(tmp_path: Path, written: str) -> None:
    # `nerve expire` deletes rows older than now minus the retention: 0d is every row
    events = write(tmp_path, {"x_done.yaml": f"name: x_done\nretention: {written}\n"})
    with pytest.raises(CatalogError) as info:
        Catalog.load(events)
    assert str(info.value).endswith(f"x_done.yaml:2: x_done.retention: {written} keeps "
                                    "nothing: the daily expiry would delete every event of "
                                    "it as it lands; set 1d or more")


@pytest.mark.parametrize(("written", "meant"), [
    ("3 months", "3m"), ("1 year", "1y"), ("90 days", "90d"), ("13 Weeks", "13w")])
def test_a_retention_in_words_names_the_short_form(tmp_path: Path, written: str,
                                                   meant: str) -> None:
    events = write(tmp_path, {"x_done.yaml": f"name: x_done\nretention: {written}\n"})
    with pytest.raises(CatalogError) as info:
        Catalog.load(events)
    assert str(info.value).endswith(f"x_done.yaml:2: x_done.retention: expected a retention "
                                    f"like 400d, 13w, 6m, 2y or forever, got {written!r}; "
                                    f"did you mean {meant!r}?")


def test_pii_no_read_by_yaml_as_false_says_to_write_none(tmp_path: Path) -> None:
    """``pii: no`` is YAML's false: the error said ``got False``, which the file does not
    say anywhere."""
    events = write(tmp_path, {"x.yaml": "name: x_y\nstatus: on\nproperties:\n"
                                        "  a: {type: string, pii: no}\n"})
    with pytest.raises(CatalogError) as info:
        Catalog.load(events)
    text = str(info.value)
    assert ("x.yaml:4: x_y.a.pii: expected one of none, pseudonymous, personal, sensitive, "
            "got False; YAML reads an unquoted yes, no, on or off as true or false: write "
            "none") in text
    assert ("x.yaml:2: x_y.status: expected one of draft, active, deprecated, got True; "
            "YAML reads an unquoted yes, no, on or off as true or false: quote it") in text


def test_a_property_in_an_event_and_its_group_names_both_places_in_the_workspace(
        tmp_path: Path) -> None:
    """Reported at the ``include:`` line, the message named the group's file by its
    absolute path (/tmp/.../events/groups/product.yaml) where every location reads
    ``events/...``; it names both definitions, relative to the workspace. So does a
    group defined twice."""
    events = write(tmp_path / "events", {
        "add_to_cart.yaml": ADD_TO_CART + "  price: {type: number, pii: none}\n",
        "groups/product.yaml": PRODUCT_GROUP})

    def problems() -> list[tuple[str, int | None, str]]:
        with pytest.raises(CatalogError) as info:
            Catalog.load(events)
        return [(Path(where.file).relative_to(tmp_path).as_posix(), where.line, text)
                for where, text in info.value.problems]

    assert problems() == [("events/add_to_cart.yaml", 7,
                           "add_to_cart.include: property 'price' is defined both in "
                           "events/add_to_cart.yaml:14 and in group 'product' "
                           "(events/groups/product.yaml:5); keep one")]
    write(events, {"groups/product_again.yaml": PRODUCT_GROUP})
    found = problems()
    assert ("events/groups/product_again.yaml", 1, "property group 'product' is also "
            "defined in events/groups/product.yaml") in found
    assert not any(str(tmp_path) in text for _, _, text in found)
