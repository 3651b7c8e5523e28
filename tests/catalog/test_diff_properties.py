"""Properties of the diff that hold for any catalog (hypothesis)."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from nerve.catalog import Catalog, EventSpec, PropertySpec, Version
from nerve.catalog._diff import diff_catalogs

NAMES = st.sampled_from(["price", "quantity", "sku", "coupon", "currency", "step", "plan"])
SCALARS = st.sampled_from(["string", "integer", "number", "boolean", "timestamp"])


@st.composite
def properties(draw: st.DrawFn, name: str | None = None) -> PropertySpec:
    type_ = draw(SCALARS)
    enum = None
    minimum = maximum = None
    if type_ == "string" and draw(st.booleans()):
        enum = tuple(draw(st.lists(st.sampled_from("abcdef"), min_size=1, max_size=4,
                                   unique=True)))
    if type_ in ("integer", "number"):
        minimum = draw(st.none() | st.integers(-5, 5))
        maximum = draw(st.none() | st.integers(6, 20))
    return PropertySpec(name=name or draw(NAMES), type=type_,  # type: ignore[arg-type]
                        required=draw(st.booleans()), enum=enum, minimum=minimum,
                        maximum=maximum, description=draw(st.sampled_from(["", "a", "b"])))


@st.composite
def events(draw: st.DrawFn) -> EventSpec:
    names = draw(st.lists(NAMES, unique=True, max_size=5))
    props = tuple(draw(properties(n)) for n in names)
    return EventSpec(name=draw(st.sampled_from(["add_to_cart", "signup", "search"])),
                     version=Version(draw(st.integers(1, 3))), properties=props,
                     description=draw(st.sampled_from(["", "x"])))


@st.composite
def catalogs(draw: st.DrawFn) -> list[EventSpec]:
    return draw(st.lists(events(), max_size=4, unique_by=lambda s: s.name))


@given(catalogs())
def test_a_catalog_against_itself_has_no_change(specs: list[EventSpec]) -> None:
    assert diff_catalogs(Catalog(specs), Catalog(specs)) == []


@given(catalogs(), st.data())
def test_any_removal_is_breaking(specs: list[EventSpec], data: st.DataObject) -> None:
    with_props = [s for s in specs if s.properties]
    if specs and (not with_props or data.draw(st.booleans())):
        gone = data.draw(st.sampled_from(specs))  # remove a whole event
        after = [s for s in specs if s is not gone]
    elif with_props:
        spec = data.draw(st.sampled_from(with_props))
        drop = data.draw(st.sampled_from(spec.properties))
        smaller = replace(spec, properties=tuple(p for p in spec.properties if p is not drop))
        after = [smaller if s is spec else s for s in specs]
    else:
        return
    changes = diff_catalogs(Catalog(specs), Catalog(after))
    assert any(c.level == "breaking" for c in changes)


@given(events(), properties())
def test_adding_a_property_is_additive_iff_optional_and_its_removal_breaks(
        spec: EventSpec, prop: PropertySpec) -> None:
    if spec.property(prop.name) is not None:
        return
    bigger = replace(spec, properties=(*spec.properties, prop))
    forward = {c.level for c in diff_catalogs(Catalog([spec]), Catalog([bigger]))}
    backward = {c.level for c in diff_catalogs(Catalog([bigger]), Catalog([spec]))}
    assert "breaking" in backward
    assert (forward == {"additive"}) == (not prop.required)


@settings(max_examples=200)
@given(properties("amount"), properties("amount"))
def test_constraint_changes_are_additive_one_way_iff_breaking_the_other(
        before: PropertySpec, after: PropertySpec) -> None:
    # same type and requiredness: only enum and bounds differ
    after = replace(after, type=before.type, required=before.required,
                    description=before.description)
    if before.type != "string":
        after = replace(after, enum=None)
        before = replace(before, enum=None)
    spec = EventSpec("checkout", Version(1), properties=(before,))
    other = replace(spec, properties=(after,))
    forward = {c.level for c in diff_catalogs(Catalog([spec]), Catalog([other]))}
    backward = {c.level for c in diff_catalogs(Catalog([other]), Catalog([spec]))}
    if forward == {"additive"}:
        assert "breaking" in backward
    if backward == {"additive"}:
        assert "breaking" in forward
    assert bool(forward) == bool(backward)


def test_an_enum_value_renamed_says_so() -> None:
    """``lisbon`` -> ``lisboa`` read as two unrelated changes, a removal and an addition;
    the removal now names the rename and what it does to the clients not yet changed."""
    city = PropertySpec(name="city", type="string", enum=("berlin", "lisbon"))
    old = Catalog.from_specs([EventSpec("ride_started", Version(1), properties=(city,))])
    new = Catalog.from_specs([EventSpec("ride_started", Version(2), properties=(
        replace(city, enum=("berlin", "lisboa")),))])
    narrowed = [c.message for c in diff_catalogs(old, new) if c.kind == "enum_narrowed"]
    assert narrowed == ["ride_started.city: enum values removed: ['lisbon'] (renamed to "
                        "'lisboa'? clients still sending 'lisbon' fail this version)"]
    two_out = Catalog.from_specs([EventSpec("ride_started", Version(2), properties=(
        replace(city, enum=("paris",)),))])
    assert all("renamed" not in c.message for c in diff_catalogs(old, two_out))


def test_a_property_moved_into_or_out_of_a_group_says_so() -> None:
    """Extracting ``order_id`` into a group read ``group - -> order``."""
    order_id = PropertySpec(name="order_id", type="string", required=True)
    grouped = replace(order_id, group="order")

    def catalog(prop: PropertySpec) -> Catalog:
        return Catalog.from_specs([EventSpec("order_rated", Version(1), properties=(prop,))])

    def messages(old: PropertySpec, new: PropertySpec) -> list[str]:
        return [c.message for c in diff_catalogs(catalog(old), catalog(new))]

    assert messages(order_id, grouped) == [
        "order_rated.order_id: moved into property group order, unchanged"]
    assert messages(grouped, order_id) == [
        "order_rated.order_id: moved out of property group order, unchanged"]
    assert messages(grouped, replace(order_id, group="ids")) == [
        "order_rated.order_id: moved from property group order to ids, unchanged"]
