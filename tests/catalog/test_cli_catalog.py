"""`nerve catalog diff|lint|list` through the real CLI, on real git repositories."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from typer.testing import CliRunner

from nerve.catalog import Catalog, EventSpec, PropertySpec, Version, lint_catalog
from nerve.cli import app
from nerve.workspace import Workspace

FIXTURE = Path(__file__).parent / "fixtures" / "shop" / "events"
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}


def run(ws: Workspace, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["--workspace", str(ws.root), *args])
    return result.exit_code, result.stdout, result.stderr


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True,
                   env={**os.environ, **GIT_ENV})


@pytest.fixture
def shop(make_workspace: Callable[..., Workspace]) -> Workspace:
    ws = make_workspace()
    shutil.copytree(FIXTURE, ws.events_dir, dirs_exist_ok=True)
    return ws


@pytest.fixture
def repo(shop: Workspace) -> Workspace:
    git(shop.root, "init", "-q", "-b", "main")
    git(shop.root, "add", "-A")
    git(shop.root, "commit", "-qm", "catalog")
    return shop


def edit(ws: Workspace, rel: str, old: str, new: str) -> None:
    path = ws.events_dir / rel
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


# ------------------------------------------------------------------------------------ diff


def test_diff_clean_tree_has_no_changes(repo: Workspace) -> None:
    code, out, _ = run(repo, "catalog", "diff", "--format", "json")
    assert code == 0
    assert json.loads(out) == []


def test_diff_fails_on_breaking_change_without_major_bump_naming_file_and_line(
        repo: Workspace) -> None:
    edit(repo, "products_searched.yaml", "price_desc, ", "")
    edit(repo, "products_searched.yaml", "version: 1\n", "version: 1.1.0\n")
    code, out, err = run(repo, "catalog", "diff", "--format", "json")
    assert code == 1
    rows = json.loads(out)
    assert [(r["event"], r["kind"], r["level"], r["ok"]) for r in rows] == [
        ("products_searched", "enum_narrowed", "breaking", False)]
    assert rows[0]["required_bump"] == "major"
    assert rows[0]["declared_bump"] == "minor"
    assert rows[0]["file"].endswith("products_searched.yaml")
    assert "products_searched.yaml:6" in err  # the `version:` line
    assert "set version: 2.0.0" in err


def test_diff_passes_once_the_version_is_bumped(repo: Workspace) -> None:
    edit(repo, "products_searched.yaml", "price_desc, ", "")
    edit(repo, "products_searched.yaml", "version: 1\n", "version: 2\n")
    code, out, _ = run(repo, "catalog", "diff")
    assert code == 0, out
    assert "enum_narrowed" in out


def test_diff_in_place_advice_keeps_the_old_version_only_for_a_new_major(
        repo: Workspace) -> None:
    # a new optional property: 1.1.0 judges what clients declaring 1.0.0 send, so no
    # old file is needed; an enum narrowed: clients still on 1.x need the 1.x file
    edit(repo, "products_searched.yaml", "properties:\n",
         "properties:\n  page:\n    type: integer\n    description: Results page.\n"
         "    pii: none\n")
    code, out, err = run(repo, "catalog", "diff")
    assert code == 1
    text = " ".join((out + err).split())
    assert "changed in place (property_added); a published version is immutable: set " \
           "version: 1.1.0 (events/products_searched.yaml:6)" in text
    edit(repo, "products_searched.yaml", "price_desc, ", "")
    code, out, err = run(repo, "catalog", "diff")
    text = " ".join((out + err).split())
    assert "set version: 2.0.0 (keep the old one in events/versions/ if clients still " \
           "send it)" in text


def test_diff_against_an_older_ref(repo: Workspace) -> None:
    edit(repo, "add_to_cart.yaml", "version: 2.1.0", "version: 2.2.0")
    edit(repo, "add_to_cart.yaml", "properties:\n",
         "properties:\n  gift:\n    type: boolean\n    description: Gift wrap.\n"
         "    pii: none\n")
    git(repo.root, "commit", "-qam", "gift")
    code, out, _ = run(repo, "catalog", "diff", "--format", "json")
    assert (code, json.loads(out)) == (0, [])
    code, out, _ = run(repo, "catalog", "diff", "--base", "HEAD~1", "--format", "json")
    assert code == 0
    assert [(r["kind"], r["path"]) for r in json.loads(out)] == [("property_added", "gift")]


def test_diff_moving_a_version_aside_is_not_a_change(repo: Workspace) -> None:
    old = (repo.events_dir / "order_completed.yaml").read_text()
    (repo.events_dir / "versions" / "order_completed.v1.yaml").write_text(old)
    edit(repo, "order_completed.yaml", "version: 1.2.0", "version: 2.0.0")
    edit(repo, "order_completed.yaml", "    required: true\n    minimum: 0\n",
         "    minimum: 0\n")  # revenue becomes optional: additive, but 2.0.0 is fine
    code, out, _ = run(repo, "catalog", "diff", "--format", "json")
    assert code == 0
    rows = json.loads(out)
    assert [(r["kind"], r["old_version"], r["new_version"]) for r in rows] == [
        ("made_optional", "1.2.0", "2.0.0")]


def test_diff_outside_git_is_a_clear_error(shop: Workspace) -> None:
    code, _, err = run(shop, "catalog", "diff")
    assert code == 4
    assert "not inside a git repository" in err


def test_diff_with_a_base_folder(shop: Workspace, tmp_path: Path) -> None:
    base = tmp_path / "base"
    shutil.copytree(shop.events_dir, base)
    (shop.events_dir / "identify.yaml").unlink()
    code, out, _ = run(shop, "catalog", "diff", "--base-dir", str(base), "--format", "json")
    assert code == 1
    assert [(r["event"], r["kind"]) for r in json.loads(out)] == [
        ("identify", "event_removed")]


SONG = """\
name: song_played
description: The listener played a song to its end.
owner: music
purpose: analytics
trigger: The player reports the end of a song.
version: {version}
retention: 1y
include: [device]
properties:
  song_id: {{type: string, required: true, pii: none, description: The song.}}
"""


def test_diff_advice_for_an_old_version_changed_through_a_group(
        make_workspace: Callable[..., Workspace], tmp_path: Path) -> None:
    device = "name: device\ndescription: The device.\nproperties:\n  screen_width:\n" \
             "    type: {}\n    pii: none\n    description: Width in pixels.\n"
    files = {"song_played.yaml": SONG.format(version="2.0.0"),
             "versions/song_played.v1.yaml": SONG.format(version="1.0.0")}
    base = make_workspace({**files, "groups/device.yaml": device.format("integer")})
    ws = make_workspace({**files, "groups/device.yaml": device.format("string")})
    code, out, _ = run(ws, "catalog", "diff", "--base-dir", str(base.events_dir))
    assert code == 1
    text = " ".join(out.split())
    # 2.0.0 is the live version: a new major fixes it; 1.0.0 cannot become 2.0.0
    assert "song_played 2.0.0 was changed in place (type_changed); a published version is " \
           "immutable: set version: 3.0.0" in text
    assert "song_played 1.0.0 was changed in place (type_changed); it is an older version " \
           "that newer ones supersede, so it keeps its definition: it changed through " \
           "property group device; in " in text
    assert "in events/versions/song_played.v1.yaml, replace device in include: with the group's " \
           "properties as they were" in text
    assert "set version: 2.0.0" not in text


def test_diff_advice_blames_no_group_the_old_version_stopped_including(
        make_workspace: Callable[..., Workspace]) -> None:
    # the group is as it was: the old version's own file dropped it from include:
    device = "name: device\ndescription: The device.\nproperties:\n  screen_width:\n" \
             "    type: integer\n    pii: none\n    description: Width in pixels.\n"
    live = {"song_played.yaml": SONG.format(version="2.0.0"), "groups/device.yaml": device}
    old = SONG.format(version="1.0.0")
    base = make_workspace({**live, "versions/song_played.v1.yaml": old})
    ws = make_workspace({**live, "versions/song_played.v1.yaml":
                         old.replace("include: [device]\n", "")})
    code, out, _ = run(ws, "catalog", "diff", "--base-dir", str(base.events_dir))
    assert code == 1
    text = " ".join(out.split())
    assert "song_played 1.0.0 was changed in place (property_removed); it is an older " \
           "version that newer ones supersede, so it keeps its definition: restore it in " \
           "events/versions/song_played.v1.yaml" in text, text
    assert "property group" not in text


# ------------------------------------------------------------------------------------ lint


def test_lint_clean_fixture(shop: Workspace) -> None:
    code, out, _ = run(shop, "catalog", "lint", "--format", "json")
    assert (code, json.loads(out)) == (0, [])


BAD = """\
name: AddedToCart
description: short
owner: growth
version: 1
properties:
  Price:
    type: string
    enum: [a, a, 3]
    minimum: 2
    pii: none
  email:
    type: string
    description: Contact.
    pii: personal
  tags:
    type: array
    description: Free tags.
"""


def test_lint_reports_rules_with_file_line_and_severity(
        make_workspace: Callable[..., Workspace]) -> None:
    ws = make_workspace({"AddedToCart.yaml": BAD, "groups/unused.yaml":
                         "name: unused\nproperties:\n  x: {type: string, pii: none}\n"})
    code, out, _ = run(ws, "catalog", "lint", "--format", "json")
    assert code == 1
    found = {(f["rule"], f["line"]) for f in json.loads(out)
             if f["file"].endswith("AddedToCart.yaml")}
    assert {("event-name", 1), ("event-description", 2), ("event-purpose", 1),
            ("event-retention", 1), ("event-trigger", 1), ("property-name", 6),
            ("property-description", 6), ("enum-duplicate", 8), ("enum-type", 8),
            ("constraint-type", 9), ("property-pii", 15),
            ("array-items", 15)} <= found
    rules = {f["rule"]: f for f in json.loads(out)}
    # the naming findings say the name to write
    assert rules["event-name"]["message"].endswith("; rename it added_to_cart")
    assert rules["property-name"]["message"] == (
        "AddedToCart.Price: property names are snake_case; rename it price")
    assert rules["unused-group"]["severity"] == "warning"
    assert rules["event-name"]["severity"] == "error"
    assert rules["event-description"]["severity"] == "warning"  # present but short


VISIT = """\
name: visit_booked
description: A patient books a video visit with a clinician.
owner: care
purpose: analytics
trigger: The booking API confirms the slot.
version: 1
retention: 400d
properties:
  phone: {type: string, pii: personal, description: The patient's phone.}
  symptoms: {type: string, pii: sensitive, description: What the patient typed.}
"""


@pytest.mark.parametrize(("toml", "expected"), [
    # ingest hashes the phone by the policy's default and drops the symptoms (not
    # allowed): nothing to report (this was two errors)
    ("", set()),
    # kept as sent by the policy: a warning naming it
    ('[privacy]\npersonal = "keep"\n', {("pii-handling", "warning", "phone")}),
    ('[privacy]\nallow_sensitive = ["visit_booked.symptoms"]\n',
     {("pii-handling", "warning", "symptoms")}),
    # a workspace that wants every handling written says so
    ('[catalog.rules]\npii-handling = "error"\n',
     {("pii-handling", "error", "phone"), ("pii-handling", "error", "symptoms")}),
])
def test_lint_of_a_missing_handling_agrees_with_the_privacy_policy(
        make_workspace: Callable[..., Workspace], toml: str,
        expected: set[tuple[str, str, str]]) -> None:
    """A personal property without ``handling`` was an error, while ingest applies
    ``[privacy] personal`` to it (a hash by default) and drops a sensitive one that
    ``allow_sensitive`` does not list: lint now says what ingest does."""
    from nerve.catalog import Catalog
    from nerve.pipeline import PrivacyPolicy, protect_payload

    ws = make_workspace({"visit_booked.yaml": VISIT}, extra_toml=toml)
    code, out, _ = run(ws, "catalog", "lint", "--format", "json")
    found = {(f["rule"], f["severity"], f["message"].split(":")[0].split(".")[-1])
             for f in json.loads(out)}
    assert found == expected, out
    assert code == (1 if "error" in toml else 3 if expected else 0)
    policy = PrivacyPolicy.from_config(ws.config.raw.get("privacy", {}), b"k" * 16)
    spec = Catalog.load(ws.events_dir).get("visit_booked")
    stored, _ = protect_payload({"phone": "+34 600", "symptoms": "cough"}, spec, policy)
    kept = {name for name, value in stored.items()
            if value == {"phone": "+34 600", "symptoms": "cough"}[name]}
    assert kept == {name for _, severity, name in expected if severity == "warning"}


def test_lint_without_the_policy_asks_for_every_handling() -> None:
    """``lint_catalog`` without nerve.toml cannot know what ingest would do."""
    from nerve.catalog import Catalog, EventSpec, PropertySpec, Version, lint_catalog

    spec = EventSpec("visit_booked", Version(1), properties=(
        PropertySpec("phone", "string", pii="personal"),))
    assert [(f.rule, f.severity) for f in lint_catalog(Catalog.from_specs([spec]))
            if f.rule == "pii-handling"] == [("pii-handling", "error")]


def test_lint_warnings_only_exit_3_and_config_tunes_rules(
        make_workspace: Callable[..., Workspace]) -> None:
    text = (FIXTURE / "order_completed.yaml").read_text().replace(
        "    description: Whether express shipping was chosen.\n", "")
    ws = make_workspace({"order_completed.yaml": text})
    code, out, _ = run(ws, "catalog", "lint", "--format", "json")
    assert code == 3
    assert [f["rule"] for f in json.loads(out)] == ["property-description"]
    ws = make_workspace({"order_completed.yaml": text}, extra_toml=(
        '[catalog]\nnaming = "^[a-z]+$"\n[catalog.rules]\nproperty-description = "off"\n'))
    code, out, _ = run(ws, "catalog", "lint", "--format", "json")
    assert code == 1
    assert [f["rule"] for f in json.loads(out)] == ["event-name"]


@pytest.mark.parametrize(("rules", "message"), [
    ('"event-triger" = "off"', "[catalog.rules] event-triger: unknown rule; did you mean "
                               "'event-trigger'? (known: array-items, "),
    ('property-pii = "warn"', "[catalog.rules] property-pii: expected error, warning or "
                              "off, got 'warn'; did you mean 'warning'?"),
])
def test_lint_config_errors_name_file_line_and_rule(
        make_workspace: Callable[..., Workspace], rules: str, message: str) -> None:
    """A mistake in [catalog.rules] names nerve.toml's path and line, like the others."""
    ws = make_workspace({"order_completed.yaml": (FIXTURE / "order_completed.yaml")
                        .read_text()},
                        extra_toml=f'[catalog]\nmin_description = 10\n\n[catalog.rules]\n'
                                   f'event-version = "off"\n{rules}\n')
    lines = (ws.root / "nerve.toml").read_text().splitlines()
    line = lines.index(rules) + 1
    code, _, err = run(ws, "catalog", "lint")
    assert code == 4
    assert f"{ws.root / 'nerve.toml'}:{line}: {message}" in " ".join(err.split())


ZONE = """\
name: zone_entered
description: The watch reports a new heart rate zone.
owner: wearables
purpose: product
trigger: The firmware detects a zone change.
version: 1.0.0
retention: 30d
properties:
  zone:
    type: integer
    description: The zone number.
    pii: sensitive
    handling: keep
  readings:
    type: array
    description: Heart rates read.
    pii: none
    items: {type: integer, pii: sensitive, handling: hash}
"""


def test_lint_says_a_sensitive_handling_applies_only_when_allowed(
        make_workspace: Callable[..., Workspace]) -> None:
    """Without [privacy] allow_sensitive the privacy step drops a sensitive value
    whatever its handling says: lint must not call it kept."""
    ws = make_workspace({"zone_entered.yaml": ZONE})
    code, out, _ = run(ws, "catalog", "lint", "--format", "json")
    assert code == 3
    found = {(f["rule"], f["line"]): f["message"] for f in json.loads(out)}
    assert set(found) == {("sensitive-not-allowed", 13), ("sensitive-not-allowed", 18)}
    assert "add 'zone_entered.zone' there" in found["sensitive-not-allowed", 13]
    assert "add 'zone_entered.readings' there" in found["sensitive-not-allowed", 18]
    ws = make_workspace({"zone_entered.yaml": ZONE}, extra_toml=(
        '[privacy]\nallow_sensitive = ["zone_entered.zone", "zone_entered.readings"]\n'))
    code, out, _ = run(ws, "catalog", "lint", "--format", "json")
    assert [(f["rule"], f["line"]) for f in json.loads(out)] == [("sensitive-kept", 13)]


def test_lint_reports_load_errors_as_findings(
        make_workspace: Callable[..., Workspace]) -> None:
    ws = make_workspace({"x.yaml": "name: x_y\nproperties:\n  a: {type: int}\n"})
    code, out, _ = run(ws, "catalog", "lint", "--format", "json")
    assert code == 1
    [finding] = json.loads(out)
    assert (finding["rule"], finding["line"]) == ("load", 3)
    assert "x_y.a.type" in finding["message"]


def test_lint_reports_a_load_error_and_the_other_files_findings(shop: Workspace) -> None:
    # one broken file must not hide the findings of the files that load
    edit(shop, "add_to_cart.yaml", "quantity:\n    type: integer\n",
         "quantity:\n    type: nubmer\n")
    edit(shop, "versions/add_to_cart.v1.yaml", "quantity:\n    type: number\n",
         "quantity:\n    type: nubmer\n")
    edit(shop, "order_completed.yaml", "owner: checkout\n", "")
    code, out, _ = run(shop, "catalog", "lint", "--format", "json")
    assert code == 1
    assert [(f["rule"], f["file"], f["line"]) for f in json.loads(out)] == [
        ("load", "events/add_to_cart.yaml", 11),
        ("event-owner", "events/order_completed.yaml", 1),
        ("load", "events/versions/add_to_cart.v1.yaml", 11)]
    # the product group's only users did not load: no unused-group guess
    code, out, _ = run(shop, "catalog", "lint")
    assert code == 1
    assert "5 event files, 2 could not be loaded: 3 errors, 0 warnings" in out


def test_lint_counts_the_files_that_did_not_load(shop: Workspace) -> None:
    """The summary counts every file, not only the events that loaded: a broken file is
    never hidden behind a smaller number."""
    code, out, _ = run(shop, "catalog", "lint")
    assert (code, out.strip()) == (0, "5 event files: 0 errors, 0 warnings")
    edit(shop, "order_completed.yaml", "type: boolean", "type: bool")
    code, out, _ = run(shop, "catalog", "lint")
    assert code == 1
    assert out.splitlines()[-1] == "5 event files, 1 could not be loaded: 1 error, 0 warnings"
    (shop.events_dir / "groups" / "extra.yaml").write_text("name: extra\nproperties: [x]\n")
    code, out, _ = run(shop, "catalog", "lint")
    assert out.splitlines()[-1] == ("5 event files, 1 could not be loaded; 2 group files, 1 "
                                    "could not be loaded: 2 errors, 0 warnings")
    # the machine formats name each broken file too
    code, out, _ = run(shop, "catalog", "lint", "--format", "json")
    assert [(f["rule"], f["file"]) for f in json.loads(out)] == [
        ("load", "events/groups/extra.yaml"), ("load", "events/order_completed.yaml")]
    code, out, _ = run(shop, "catalog", "lint", "--format", "junit")
    suite = ET.fromstring(out).find("testsuite")
    assert suite is not None
    failed = {c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None}
    assert failed == {"events/groups/extra.yaml", "events/order_completed.yaml"}
    assert (suite.get("tests"), suite.get("failures")) == ("7", "2")


def test_lint_junit_for_ci(make_workspace: Callable[..., Workspace]) -> None:
    ws = make_workspace({"AddedToCart.yaml": BAD,
                         "order_completed.yaml": (FIXTURE / "order_completed.yaml").read_text()})
    code, out, _ = run(ws, "catalog", "lint", "--format", "junit")
    assert code == 1
    suite = ET.fromstring(out).find("testsuite")
    assert suite is not None
    cases = {c.get("name", "").rsplit("/", 1)[-1]: c for c in suite.iter("testcase")}
    assert set(cases) == {"AddedToCart.yaml", "order_completed.yaml"}
    failure = cases["AddedToCart.yaml"].find("failure")
    assert failure is not None
    assert "[event-name]" in (failure.text or "")
    assert cases["order_completed.yaml"].find("failure") is None
    assert suite.get("failures") == "1"


def test_lint_names_files_nerve_does_not_read(shop: Workspace) -> None:
    """An event in another subfolder of events/ is never loaded (its events would be
    quarantined as unknown): lint fails on it rather than listing it as passing."""
    folder = shop.events_dir / "checkout"
    folder.mkdir()
    (shop.events_dir / "order_completed.yaml").rename(folder / "order_completed.yaml")
    code, out, _ = run(shop, "catalog", "lint", "--format", "json")
    assert code == 1
    unread = [f for f in json.loads(out) if f["rule"] == "unread-file"]
    assert [(f["file"], f["severity"]) for f in unread] == [
        ("events/checkout/order_completed.yaml", "error")]
    assert "events/versions/" in unread[0]["message"]
    code, out, _ = run(shop, "catalog", "lint", "--format", "junit")
    suite = ET.fromstring(out).find("testsuite")
    assert suite is not None
    failed = {c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None}
    assert failed == {"events/checkout/order_completed.yaml"}
    # a team that keeps drafts there on purpose can say so
    with (shop.root / "nerve.toml").open("a") as toml:
        toml.write('\n[catalog.rules]\n"unread-file" = "off"\n')
    code, out, _ = run(shop, "catalog", "lint", "--format", "json")
    assert "unread-file" not in {f["rule"] for f in json.loads(out)}


def test_lint_of_a_catalog_without_events_warns_naming_the_folder(shop: Workspace) -> None:
    # it said "0 event files: 0 errors, 0 warnings" and passed
    for path in shop.events_dir.rglob("*.yaml"):
        path.unlink()
    code, out, _ = run(shop, "catalog", "lint", "--format", "json")
    assert code == 3
    [found] = json.loads(out)
    assert (found["rule"], found["severity"], found["file"]) == ("no-events", "warning",
                                                                 "events")
    code, out, _ = run(shop, "catalog", "lint")
    assert code == 3
    assert "1 warning" in out
    # one event is enough
    (shop.events_dir / "signup.yaml").write_text(
        "name: signup\ntype: track\nversion: 1.0.0\n")
    code, out, _ = run(shop, "catalog", "lint", "--format", "json")
    assert "no-events" not in {f["rule"] for f in json.loads(out)}


def test_list_shows_every_version(shop: Workspace) -> None:
    code, out, _ = run(shop, "catalog", "list", "--format", "json")
    assert code == 0
    rows = {r["event"]: r for r in json.loads(out)}
    assert rows["add_to_cart"]["version"] == "2.1.0"
    code, out, _ = run(shop, "catalog", "list", "--all-versions", "--format", "json")
    assert code == 0
    carts = [(r["version"], r["file"]) for r in json.loads(out) if r["event"] == "add_to_cart"]
    assert carts == [("1.0.0", "events/versions/add_to_cart.v1.yaml"),
                     ("2.1.0", "events/add_to_cart.yaml")]


DEMO = Path(__file__).parents[2] / "src" / "nerve" / "demo" / "shop" / "events"


@pytest.mark.skipif(not any(DEMO.glob("*.yaml")), reason="the demo catalog is not there")
def test_lint_demo_catalog(make_workspace: Callable[..., Workspace]) -> None:
    ws = make_workspace()
    shutil.copytree(DEMO, ws.events_dir, dirs_exist_ok=True)
    code, out, _ = run(ws, "catalog", "lint", "--format", "json")
    assert json.loads(out) == []
    assert code == 0


def test_lint_version_rules(make_workspace: Callable[..., Workspace]) -> None:
    live = (FIXTURE / "products_searched.yaml").read_text()
    newer = live.replace("version: 1\n", "version: 3\n")
    ws = make_workspace({"products_searched.yaml": live,
                         "versions/searched_old.yaml": newer})
    code, out, _ = run(ws, "catalog", "lint", "--format", "json")
    assert code == 1
    found = {(f["rule"], f["severity"], f["file"]) for f in json.loads(out)}
    assert found == {
        ("version-order", "error", "events/versions/searched_old.yaml"),
        ("version-file-name", "warning", "events/versions/searched_old.yaml")}


def test_diff_reports_an_invalid_base_with_the_ref(repo: Workspace) -> None:
    edit(repo, "identify.yaml", "type: identify", "type: nope")
    git(repo.root, "commit", "-qam", "broken")
    edit(repo, "identify.yaml", "type: nope", "type: identify")
    code, _, err = run(repo, "catalog", "diff")
    assert code == 4
    assert "HEAD:" in err
    assert "identify.yaml:2" in err


def test_lint_format_and_pattern_rules(make_workspace: Callable[..., Workspace]) -> None:
    text = (FIXTURE / "order_completed.yaml").read_text()
    text = text.replace('pattern: "^o-[0-9a-f]{8}$"', 'pattern: "o-[0-9a-f]{8}"')
    text = text.replace("    description: The coupon code used, if any.\n",
                        "    description: The coupon code used, if any.\n    format: zipcode\n")
    ws = make_workspace({"order_completed.yaml": text})
    code, out, _ = run(ws, "catalog", "lint", "--format", "json")
    assert code == 1
    found = {(f["rule"], f["severity"], f["line"]) for f in json.loads(out)}
    assert found == {("pattern-anchored", "warning", 12), ("format-known", "error", 24)}


def test_the_experiment_viewed_file_docs_suggest_lints_clean(
        make_workspace: Callable[..., Workspace]) -> None:
    """docs/experiments.md told Segment-SDK users to catalog `Experiment Viewed`, which
    lint refused by its name; an SDK sends that name, nobody can rename it."""
    docs = (Path(__file__).parents[2] / "docs" / "experiments.md").read_text()
    example = docs.split("```yaml\nname: Experiment Viewed\n", 1)[1].split("```", 1)[0]
    ws = make_workspace({"Experiment Viewed.yaml": "name: Experiment Viewed\n" + example})
    code, out, _ = run(ws, "catalog", "lint", "--format", "json")
    assert (code, json.loads(out)) == (0, [])
    # a name of the product's own still follows the convention
    ws = make_workspace({"Checkout Started.yaml": "name: Checkout Started\n" + example})
    code, out, _ = run(ws, "catalog", "lint", "--format", "json")
    assert code == 1
    assert [f["rule"] for f in json.loads(out)] == ["event-name"]


def test_codegen_says_how_many_functions_it_wrote(shop: Workspace) -> None:
    # 3 track events and an identify entry; a deprecated event's function is marked so
    edit(shop, "products_searched.yaml", "version: 1\n", "version: 1.0.1\nstatus: deprecated\n")
    out_file = shop.root / "app" / "tracking.py"
    code, _, err = run(shop, "catalog", "codegen", "--lang", "python", "--out", str(out_file))
    assert code == 0
    assert "".join(err.split()) == "".join(  # rich wraps long lines, paths too
        f"wrote 3 tracking functions to {out_file} (1 marked deprecated: products_searched)"
        .split())
    assert out_file.read_text().count("\ndef ") == 3 + 3  # and _value, _context, _options


@pytest.mark.parametrize(("lang", "hint"), [("pyhton", " (did you mean python?)"),
                                             ("typescirpt", " (did you mean typescript?)"),
                                             ("java", "")])
def test_codegen_names_the_language_a_misspelt_one_means(shop: Workspace, lang: str,
                                                         hint: str) -> None:
    code, out, err = run(shop, "catalog", "codegen", "--lang", lang)
    assert (code, out) == (2, "")
    text = " ".join(err.replace("│", " ").split())
    assert f"'{lang}' is not one of 'python', 'typescript'{hint}" in text, text


def test_codegen_takes_the_language_in_any_case(shop: Workspace) -> None:
    code, out, _ = run(shop, "catalog", "codegen", "--lang", "Python")
    assert code == 0
    assert "def add_to_cart(" in out


def test_truncate_on_a_value_that_is_no_ip_is_flagged(
        make_workspace: Callable[..., Workspace]) -> None:
    """A search query declared `handling: truncate` was stored hashed, without a word."""
    event = """\
name: recipe_searched
description: A cook searches the recipes by keyword.
owner: growth
purpose: analytics
trigger: The cook submits the search box.
version: 1.0.0
retention: 400d
properties:
  query: {type: string, pii: personal, handling: truncate, description: What was typed.}
  client_ip: {type: string, pii: personal, handling: truncate, description: The address.}
  origin: {type: string, format: ipv4, pii: personal, handling: truncate, description: Seen.}
"""
    ws = make_workspace({"recipe_searched.yaml": event})
    code, out, _ = run(ws, "catalog", "lint", "--format", "json")
    found = [(f["rule"], f["severity"], f["line"]) for f in json.loads(out)]
    assert (code, found) == (3, [("truncate-ip", "warning", 9)])



def test_a_misspelt_handling_names_the_one_meant(
        make_workspace: Callable[..., Workspace]) -> None:
    event = """\
name: recipe_searched
description: A cook searches the recipes by keyword.
owner: growth
purpose: analytics
trigger: The cook submits the search box.
version: 1.0.0
retention: 400d
properties:
  email: {type: string, pii: personal, handling: hsah, description: The cook's email.}
  phone: {type: string, pii: personal, handling: zzz, description: The cook's phone.}
"""
    ws = make_workspace({"recipe_searched.yaml": event})
    code, out, _ = run(ws, "catalog", "lint", "--format", "json")
    messages = {f["line"]: f["message"] for f in json.loads(out) if f["rule"] == "handling-value"}
    assert code == 1
    assert messages == {
        9: "recipe_searched.email: handling 'hsah' is not one of hash, drop, keep, truncate; "
           "did you mean 'hash'?",
        10: "recipe_searched.phone: handling 'zzz' is not one of hash, drop, keep, truncate"}


def test_lint_refuses_a_second_live_file_of_one_event(
        make_workspace: Callable[..., Workspace]) -> None:
    # a copy made for a new event that kept the old name: the new event would be
    # quarantined as unknown and the old one would gain a version nobody meant
    live = (FIXTURE / "products_searched.yaml").read_text()
    assert "version: 1\n" in live
    ws = make_workspace({"products_searched.yaml": live.replace("version: 1\n", "version: 2\n"),
                         "products_filtered.yaml": live})
    code, out, _ = run(ws, "catalog", "lint", "--format", "json")
    assert code == 1
    found = {(f["rule"], f["severity"], f["file"], f["line"]) for f in json.loads(out)}
    assert found == {
        ("event-duplicate", "error", "events/products_filtered.yaml", 1),
        ("file-name", "warning", "events/products_filtered.yaml", 1)}
    (message,) = [f["message"] for f in json.loads(out) if f["rule"] == "event-duplicate"]
    assert message.startswith("products_searched 1.0.0: events/products_searched.yaml "
                              "defines products_searched too"), message
    assert "events/versions/products_searched.v1.yaml" in message


ENUMS = """\
name: country_selected
description: The listener picked the country of their account.
owner: growth
purpose: analytics
trigger: The country picker closes.
version: 1.0.0
retention: 1y
properties:
  country:
    type: string
    description: ISO country code.
    pii: none
    enum: [DE, FR, NO, "NO", null]
  released:
    type: string
    description: Release day of the app.
    pii: none
    enum: [2026-01-01, 2026-02-01]
"""


def test_lint_names_enum_values_as_the_yaml_wrote_them(
        make_workspace: Callable[..., Workspace]) -> None:
    # NO is Norway to the author and false to YAML; a date is no JSON value at all
    ws = make_workspace({"country_selected.yaml": ENUMS})
    code, out, _ = run(ws, "catalog", "lint", "--format", "json")
    assert code == 1
    assert [(f["rule"], f["line"], f["message"]) for f in json.loads(out)] == [
        ("load", 18, "country_selected.released.enum: 2026-01-01 is read as a date, not a "
                     "JSON value: quote it ('2026-01-01')")]
    ws = make_workspace({"country_selected.yaml": ENUMS.replace(
        "[2026-01-01, 2026-02-01]", "['2026-01-01', '2026-02-01']")})
    code, out, _ = run(ws, "catalog", "lint", "--format", "json")
    assert code == 1
    assert [(f["rule"], f["line"], f["message"]) for f in json.loads(out)] == [
        ("enum-type", 13, "country_selected.country: enum values [false, null] are not "
                          "string; quote them (YAML reads yes, no, on, off unquoted as "
                          "booleans, and digits as numbers)")]


def test_diff_hints_that_a_removed_and_an_added_event_are_a_rename(repo: Workspace) -> None:
    """An event renamed (same properties) is a removal and an addition, as properties
    are; both say which event they may be the other side of, as a renamed property does."""
    old = repo.events_dir / "products_searched.yaml"
    text = old.read_text().replace("name: products_searched", "name: catalog_queried")
    (repo.events_dir / "catalog_queried.yaml").write_text(text)
    old.unlink()
    edit(repo, "order_completed.yaml", "name: order_completed", "name: order_complete")
    edit(repo, "order_completed.yaml", "  express:", "  gift:")
    (repo.events_dir / "order_completed.yaml").rename(repo.events_dir / "order_complete.yaml")
    (repo.events_dir / "identify.yaml").unlink()
    code, out, _ = run(repo, "catalog", "diff", "--format", "json")
    assert code == 1
    messages = {(r["event"], r["kind"]): r["message"] for r in json.loads(out)}
    assert messages[("products_searched", "event_removed")].endswith(
        "; renamed to catalog_queried?")
    assert messages[("catalog_queried", "event_added")].endswith(
        "; renamed from products_searched?")
    # the properties changed too: the closest name
    assert messages[("order_completed", "event_removed")].endswith(
        "; renamed to order_complete?")
    assert messages[("order_complete", "event_added")].endswith(
        "; renamed from order_completed?")
    assert "renamed" not in messages[("identify", "event_removed")]
    code, out, err = run(repo, "catalog", "diff")
    text = " ".join((out + err).split())
    assert "mark it `status: deprecated` first, remove it in a later change (renamed to " \
           "catalog_queried?)" in text


def test_diff_suggests_a_close_git_ref(repo: Workspace) -> None:
    git(repo.root, "tag", "v1.0")
    code, _, err = run(repo, "catalog", "diff", "--base", "mian")
    assert code == 4
    assert "git ref 'mian' not found" in err
    assert "(did you mean main?)" in err
    code, _, err = run(repo, "catalog", "diff", "--base", "v1.O")
    assert "(did you mean v1.0?)" in err


def test_the_yaml_format_example_of_the_docs_has_no_lint_errors(
        make_workspace: Callable[..., Workspace]) -> None:
    """A newcomer copies docs/catalog.md's example to start an event: it must not fail CI
    (warnings, such as properties left without a description, are theirs to fill in)."""
    doc = (Path(__file__).parents[2] / "docs" / "catalog.md").read_text()
    example = doc.split("## The YAML format\n\n```yaml\n", 1)[1].split("```", 1)[0]
    groups = {f"groups/{name}.yaml": f"name: {name}\ndescription: The {name} group.\n"
                                     "properties: {}\n" for name in ("session", "product")}
    ws = make_workspace({"add_to_cart.yaml": example, **groups})
    code, out, _ = run(ws, "catalog", "lint", "--format", "json")
    errors = [f for f in json.loads(out) if f["severity"] == "error"]
    assert errors == []
    assert code == 3


@pytest.mark.parametrize(("written", "meant"), [
    ("durationSeconds", "duration_seconds"), ("userID", "user_id"),
    ("HTTPStatus", "http_status"), ("fare-amount", "fare_amount"), ("Ride Id", "ride_id")])
def test_a_property_name_finding_names_the_snake_case_name(written: str, meant: str) -> None:
    spec = EventSpec("ride_ended", Version(1), properties=(
        PropertySpec(written, "integer", pii="none", description="Seconds."),))
    found = [f.message for f in lint_catalog(Catalog.from_specs([spec]))
             if f.rule == "property-name"]
    assert found == [f"ride_ended.{written}: property names are snake_case; rename it {meant}"]


def test_lint_an_array_property_named_items(make_workspace: Callable[..., Workspace]) -> None:
    """An order's `items: {type: array, items: {type: object}}` crashed lint with a
    traceback, and a top-level `items` without its PII class was not flagged."""
    event = """\
name: order_placed
description: A customer places an order and it is paid.
owner: checkout
purpose: analytics
trigger: The orders API confirms payment.
version: 1.0.0
retention: 400d
properties:
  items:
    type: array
    description: Dishes of the order.
    items:
      type: object
      properties:
        item_id: {type: string, pii: none, description: Menu item identifier.}
        note: {type: string, pii: sensitive, handling: hash, description: Allergies.}
"""
    ws = make_workspace({"order_placed.yaml": event})
    (ws.root / "nerve.toml").write_text(
        (ws.root / "nerve.toml").read_text() + '\n[privacy]\nallow_sensitive = []\n')
    code, out, _ = run(ws, "catalog", "lint", "--format", "json")
    found = [(f["rule"], f["line"], f["message"]) for f in json.loads(out)]
    assert code == 1
    assert ("property-pii", 9, "order_placed.items: declare pii: none, pseudonymous, "
            "personal or sensitive") in found
    assert [(rule, line) for rule, line, message in found if rule != "property-pii"] == [
        ("sensitive-not-allowed", 16)]
    assert "add 'order_placed.note' there" in found[-1][2]


def test_lint_advice_agrees_with_itself(make_workspace: Callable[..., Workspace]) -> None:
    """`TipAdded` in tip_added.yaml was told to become tip_added and the file to become
    TipAdded.yaml; `retention: forever` was told to set a retention; `format: url` was not
    told about uri."""
    event = """\
name: TipAdded
description: A customer adds a tip to an order.
owner: checkout
purpose: analytics
trigger: The tip API confirms it.
version: 1.0.0
retention: forever
properties:
  courier_note: {type: string, pii: personal, handling: hash, description: To the courier.}
  photo: {type: string, format: url, pii: none, description: A photo of the doorstep.}
"""
    ws = make_workspace({"tip_added.yaml": event})
    code, out, _ = run(ws, "catalog", "lint", "--format", "json")
    found = {f["rule"]: (f["line"], f["message"]) for f in json.loads(out)}
    assert code == 1
    assert sorted(found) == ["event-name", "format-known", "pii-retention"]
    assert found["event-name"][1].endswith("rename it tip_added")
    assert found["pii-retention"] == (9, "TipAdded.courier_note: personal data kept forever "
                                         "(retention: forever); set a retention such as 400d "
                                         "or 2y")
    assert found["format-known"][1].startswith(
        "TipAdded.photo: format 'url' is not checked by the validator; did you mean 'uri'? ")
    # a file named neither after the event nor after the name it should have: the latter
    (ws.events_dir / "tip_added.yaml").rename(ws.events_dir / "tips.yaml")
    code, out, _ = run(ws, "catalog", "lint", "--format", "json")
    assert [f["message"] for f in json.loads(out) if f["rule"] == "file-name"] == [
        "TipAdded: defined in tips.yaml; name the file tip_added.yaml"]
