import ast
import os
import re
import shutil
import stat
import tomllib
from dataclasses import fields
from pathlib import Path

import pytest

import nerve
from nerve.errors import WorkspaceError
from nerve.warehouse import Warehouse
from nerve.workspace import (
    FORMS,
    SETTINGS,
    CollectorLimits,
    Workspace,
    check_settings,
    init_workspace,
)

SRC = Path(nerve.__file__).parent
DOCS = SRC.parents[1] / "docs"

#: the modules that read each section of nerve.toml (the comments of SETTINGS)
READERS = {
    "project": ["workspace.py"],
    "sources": ["workspace.py"],
    "warehouse": ["workspace.py", "warehouse/_warehouse.py"],
    "collector": ["workspace.py", "log/_stream.py", "server/_state.py", "server/_ratelimit.py"],
    "privacy": ["pipeline/privacy.py", "erasure/_erase.py", "server/_reload.py"],
    "readers": ["server/_readers.py"],
    "loader": ["loader/_loader.py"],
    "log": ["log/_stream.py"],
    "catalog": ["catalog/_lint.py", "server/_reload.py"],
    "checks": ["quality/_config.py"],
    "agent": ["agent/_llm.py"],
    "demo": ["demo/_run.py"],
}
#: how those modules name a section's table when they read a key from it
SECTION_NAMES = {"section", "toml", "item", "project", "warehouse", "limits",
                 "_privacy(workspace)"}
#: ... except quality/_config.py, whose ``section`` and ``item`` are checks.yaml's
TABLE_NAMES = {"quality/_config.py": {"toml"}}
#: their helpers that take a key's name: _number(ws, section, key), pick(key), ...
KEY_HELPERS = {"_number", "pick", "uncataloged_retention"}


def test_init_creates_layout_with_distinct_random_keys(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "shop")
    assert (ws.root / "events").is_dir()
    assert (ws.root / "metrics").is_dir()
    assert ".nerve/" in (ws.root / ".gitignore").read_text()
    keys = [s.write_key for s in ws.config.sources]
    assert len(set(keys)) == len(keys) == 3
    assert all(len(k) >= 20 for k in keys)
    assert init_workspace(tmp_path / "other").config.sources[0].write_key != keys[0]
    assert [s.historical for s in ws.config.sources] == [False, False, True]
    assert ws.config.name == "shop"


def test_init_refuses_to_overwrite(tmp_path: Path) -> None:
    init_workspace(tmp_path)
    with pytest.raises(WorkspaceError, match="already exists"):
        init_workspace(tmp_path)


def test_loading_a_folder_inside_a_workspace_names_the_workspace(tmp_path: Path) -> None:
    """Running `nerve catalog lint` in events/ said only to create a workspace."""
    init_workspace(tmp_path / "shop")
    with pytest.raises(WorkspaceError) as info:
        Workspace.load(tmp_path / "shop" / "events")
    shop = (tmp_path / "shop").resolve()
    assert str(info.value).endswith(f"not a nerve workspace (no nerve.toml); it is inside "
                                    f"the workspace {shop}: run the command there or pass "
                                    f"--workspace {shop}")
    with pytest.raises(WorkspaceError, match=r"create one with `nerve init DIR`"):
        Workspace.load(tmp_path)


def test_relative_duckdb_url_resolves_against_workspace(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "w")
    assert ws.warehouse_url == f"duckdb://{ws.root}/.nerve/warehouse.duckdb"


def test_source_for_key(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path)
    web = ws.config.sources[0]
    assert ws.source_for_key(web.write_key) == web
    assert ws.source_for_key("nope-nope-nope") is None


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[project]\n", r"\[project\] name: required"),
        ('[project]\nname="x"\n[[sources]]\nname="a"\nwrite_key="short"\n', "at least 8"),
        (
            '[project]\nname="x"\n[[sources]]\nname="a"\nwrite_key="aaaaaaaaaa"\n'
            '[[sources]]\nname="b"\nwrite_key="aaaaaaaaaa"\n',
            "#2 write_key: used by another source",
        ),
        (
            '[project]\nname="x"\n[[sources]]\nname="web"\nwrite_key="aaaaaaaaaa"\n'
            '[[sources]]\nname="web"\nwrite_key="bbbbbbbbbb"\n',
            r"nerve.toml:7: \[\[sources\]\] #2 name: 'web' is already the name of "
            r"\[\[sources\]\] #1",
        ),
        ('[project]\nname="x"\n[collector]\nmax_event_bytes="big"\n', r"\[collector\]"),
        ("[project\n", "nerve.toml"),
    ],
)
def test_config_errors_name_the_key(tmp_path: Path, toml: str, message: str) -> None:
    (tmp_path / "nerve.toml").write_text(toml)
    with pytest.raises(WorkspaceError, match=message):
        Workspace.load(tmp_path)


def test_source_errors_name_the_line_and_the_other_source(tmp_path: Path) -> None:
    (tmp_path / "nerve.toml").write_text(
        '[project]\nname = "x"\n\n[[sources]]\nname = "web"\nwrite_key = "aaaaaaaaaa"\n\n'
        '[[sources]]\nname = "ios"\nwrite_key = "aaaaaaaaaa"\n')
    with pytest.raises(WorkspaceError) as info:
        Workspace.load(tmp_path)
    assert str(info.value) == (f"{tmp_path / 'nerve.toml'}:10: [[sources]] #2 write_key: used "
                               "by another source ('web', [[sources]] #1)")
    (tmp_path / "nerve.toml").write_text(
        '[project]\nname = "x"\n[[sources]]\nname = "web"\nwrite_key = "short"\n')
    with pytest.raises(WorkspaceError, match=r"nerve.toml:5: \[\[sources\]\] #1 write_key: "
                                             "required, a string of at least 8"):
        Workspace.load(tmp_path)


def test_every_mistake_in_nerve_toml_is_named_in_one_run_in_file_order(
        tmp_path: Path) -> None:
    """One edit fixes them all: the loader used to stop at the first."""
    (tmp_path / "nerve.toml").write_text(
        '[project]\nname = "x"\ntimezone = "Europe/Berln"\n\n'
        '[[sources]]\nname = "web"\nwrite_key = "aaaaaaaaaa"\n\n'
        '[[sources]]\nname = "web"\nwrite_key = "short"\n\n'
        '[privacy]\npersonnal = "drop"\n\n[collector]\nmax_event_bytes = 0\n')
    with pytest.raises(WorkspaceError) as info:
        Workspace.load(tmp_path)
    lines = str(info.value).splitlines()
    assert [int(line.split(":")[1]) for line in lines] == [3, 10, 11, 14, 17], lines
    assert "unknown time zone 'Europe/Berln'" in lines[0]
    assert "'web' is already the name of [[sources]] #1" in lines[1]
    assert "at least 8 characters" in lines[2]
    assert "did you mean 'personal'" in lines[3]
    assert "expected a whole number >= 1, got 0" in lines[4]


@pytest.mark.parametrize("toml", ['collector = 5\n', 'warehouse = "x"\n', "project = 3\n",
                                  'sources = {name = "web"}\n'])
def test_a_section_of_the_wrong_shape_is_named_not_a_crash(tmp_path: Path, toml: str) -> None:
    (tmp_path / "nerve.toml").write_text(toml + '[log]\nurl = "local"\n')
    with pytest.raises(WorkspaceError, match=r"expected (a table|\[\[sources\]\] tables)"
                                             r"|\[project\] name: required"):
        Workspace.load(tmp_path)


def test_missing_workspace_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match="nerve init"):
        Workspace.load(tmp_path)


def test_env_var_selects_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    init_workspace(tmp_path / "w", "envws")
    monkeypatch.setenv("NERVE_WORKSPACE", str(tmp_path / "w"))
    assert Workspace.load().config.name == "envws"


def _write(tmp_path: Path, extra: str, after: str = "[collector]\n") -> Path:
    ws = init_workspace(tmp_path / "ws")
    toml = ws.root / "nerve.toml"
    toml.write_text(toml.read_text().replace(after, after + extra, 1))
    return ws.root


@pytest.mark.parametrize(
    ("where", "extra", "message"),
    [
        ("[collector]\n", '[privacy]\npersonnal = "drop"\n\n',
         r"nerve.toml:\d+: \[privacy\] personnal: unknown key; did you mean 'personal'\? "
         r"\(known: allow_sensitive, "),
        ("[collector]\n", '[privacy]\nuserid = "hash"\n\n',
         r"nerve.toml:\d+: \[privacy\] userid: unknown key; did you mean 'user_id'\?"),
        ("[collector]\n", "[colector]\nrate_limit_per_second = 10\n\n",
         r"nerve.toml:\d+: \[colector\]: unknown section; did you mean \[collector\]\?"),
        ("max_event_bytes = 32768", "\nmax_evnt_bytes = 32768",
         r"\[collector\] max_evnt_bytes: unknown key; did you mean 'max_event_bytes'\?"),
        ("[[sources]]\n", 'nmae = "x"\n', r"\[\[sources\]\] #1 nmae: unknown key"),
        ("[collector]\n", "sources = 3\n[log]\n",
         r"\[collector\] sources: unknown key"),
    ],
)
def test_unknown_sections_and_keys_are_refused_naming_file_line_and_key(
        tmp_path: Path, where: str, extra: str, message: str) -> None:
    root = _write(tmp_path, extra, after=where)
    with pytest.raises(WorkspaceError, match=message):
        Workspace.load(root)


def test_the_error_gives_the_line_of_the_unknown_key(tmp_path: Path) -> None:
    root = _write(tmp_path, "\nmax_evnt_bytes = 32768", after="max_event_bytes = 32768")
    lines = (root / "nerve.toml").read_text().splitlines()
    with pytest.raises(WorkspaceError) as caught:
        Workspace.load(root)
    line = int(re.search(r"nerve.toml:(\d+):", str(caught.value))[1])  # type: ignore[index]
    assert lines[line - 1].startswith("max_evnt_bytes = 32768")


@pytest.mark.parametrize("key", ["max_event_bytes", "max_request_bytes", "max_batch_events"])
@pytest.mark.parametrize(("value", "shown"),
                         [("-1", "-1"), ("0", "0"), ("1.5", "1.5"), ('"big"', "'big'"),
                          ("true", "True")])
def test_collector_sizes_must_be_whole_numbers_of_at_least_one(tmp_path: Path, key: str,
                                                                 value: str, shown: str) -> None:
    ws = init_workspace(tmp_path / "ws")
    toml = ws.root / "nerve.toml"
    toml.write_text(re.sub(rf"(?m)^{key} = \d+", f"{key} = {value}", toml.read_text()))
    with pytest.raises(WorkspaceError, match=rf"\[collector\] {key}: expected a whole "
                                             rf"number >= 1, got {re.escape(shown)}$"):
        Workspace.load(ws.root)


def test_every_documented_setting_is_accepted(tmp_path: Path) -> None:
    root = _write(tmp_path, "".join(f"{key} = 1\n" for key in
                                    ("max_backlog_bytes", "max_connections",
                                     "rate_limit_per_second", "rate_limit_burst")))
    assert Workspace.load(root).config.collector == CollectorLimits(
        max_event_bytes=32768, max_request_bytes=512000, max_batch_events=2500)


def test_settings_name_every_section_the_code_reads() -> None:
    """A ``config.raw.get("x")`` anywhere in nerve names a section of SETTINGS."""
    read = set()
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "get" and ast.unparse(node.func.value).endswith(
                        "config.raw") and isinstance(node.args[0], ast.Constant)):
                read.add(node.args[0].value)
    assert read - set(SETTINGS) == set()
    assert set(READERS) == set(SETTINGS)


def _keys_read(module: str) -> set[str]:
    """The keys ``module`` reads from a section's table (see SECTION_NAMES, KEY_HELPERS)."""
    keys = set()
    for node in ast.walk(ast.parse((SRC / module).read_text(encoding="utf-8"))):
        literal: ast.expr | None = None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr == "get" and node.args:
            table = ast.unparse(node.func.value)
            if (table in TABLE_NAMES.get(module, SECTION_NAMES)
                    or re.search(r"config\.raw\.get\(", table)):
                literal = node.args[0]
        elif isinstance(node, ast.Subscript) \
                and ast.unparse(node.value) in TABLE_NAMES.get(module, SECTION_NAMES):
            literal = node.slice
        elif isinstance(node, ast.Call) and ast.unparse(node.func) in KEY_HELPERS:
            literal = next((a for a in node.args if isinstance(a, ast.Constant)
                            and isinstance(a.value, str)), None)
        if isinstance(literal, ast.Constant) and isinstance(literal.value, str):
            keys.add(literal.value)
    return keys


def _strings(module: str) -> set[str]:
    tree = ast.parse((SRC / module).read_text(encoding="utf-8"))
    return {n.value for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str)}


@pytest.mark.parametrize("section", sorted(SETTINGS))
def test_every_known_key_is_read_by_its_sections_code(section: str) -> None:
    # a word of the readers' strings ([demo]'s key is in the text the demo writes)
    named = {word for m in READERS[section] for text in _strings(m)
             for word in re.findall(r"\w+", text)}
    if section == "collector":  # workspace.py reads CollectorLimits' fields by name
        named |= {f.name for f in fields(CollectorLimits)}
    assert SETTINGS[section] - named == set()


@pytest.mark.parametrize("module", sorted({m for ms in READERS.values() for m in ms}))
def test_every_key_the_code_reads_is_known(module: str) -> None:
    sections = {s for s, modules in READERS.items() if module in modules}
    known = set().union(*(SETTINGS[s] for s in sections)) | set(SETTINGS)
    assert _keys_read(module) - known == set()


def _toml_examples() -> list[tuple[str, str]]:
    return [(path.name, block) for path in sorted(DOCS.glob("*.md"))
            for block in re.findall(r"```toml\n(.*?)```", path.read_text(encoding="utf-8"),
                                    re.S)]


@pytest.mark.parametrize(("doc", "block"), _toml_examples())
def test_the_nerve_toml_examples_of_the_docs_are_accepted(doc: str, block: str) -> None:
    check_settings(tomllib.loads(block), doc, block)


def test_an_unknown_time_zone_is_refused_when_the_workspace_loads(tmp_path: Path) -> None:
    """Found only once a day grain ran, before: nerve status and funnels said nothing."""
    init_workspace(tmp_path / "ws", name="ws")
    toml = tmp_path / "ws" / "nerve.toml"
    toml.write_text(toml.read_text().replace('timezone = "UTC"', 'timezone = "Mars/Base"'))
    with pytest.raises(WorkspaceError, match="timezone: unknown time zone 'Mars/Base'") as info:
        Workspace.load(tmp_path / "ws")
    assert str(info.value).startswith(f"{toml}:4: [project] timezone: ")  # the line, too


def test_project_and_warehouse_errors_name_their_line(tmp_path: Path) -> None:
    (tmp_path / "nerve.toml").write_text('[project]\ntimezone = "UTC"\nname = 5\n')
    with pytest.raises(WorkspaceError) as info:
        Workspace.load(tmp_path)
    assert str(info.value).startswith(f"{tmp_path / 'nerve.toml'}:3: [project] name: required")
    (tmp_path / "nerve.toml").write_text('# the shop\n[project]\ntimezone = "UTC"\n')
    with pytest.raises(WorkspaceError) as info:  # no name: the section it belongs in
        Workspace.load(tmp_path)
    assert str(info.value).startswith(f"{tmp_path / 'nerve.toml'}:2: [project] name: required")
    (tmp_path / "nerve.toml").write_text('[project]\nname = "x"\n\n[warehouse]\nurl = 5\n')
    with pytest.raises(WorkspaceError) as info:
        Workspace.load(tmp_path)
    assert str(info.value).startswith(f"{tmp_path / 'nerve.toml'}:5: [warehouse] url: ")


def _append(tmp_path: Path, section: str, setting: str) -> Path:
    """A new workspace with ``setting`` in ``[section]`` (nerve init writes [collector])."""
    if section == "collector":
        return _write(tmp_path, setting + "\n")
    root = init_workspace(tmp_path / "ws").root
    with (root / "nerve.toml").open("a") as toml:
        toml.write(f"\n[{section}]\n{setting}\n")
    return root


_URL_QUERY = ('expected "keep", "drop" or a list of the query parameters to keep '
              '(["utm_*", "gclid"]), ')


@pytest.mark.parametrize(("section", "setting", "message"), [
    ("privacy", 'uncataloged_retention = "2 weeks"',
     "expected a retention like 400d, 13w, 6m, 2y or forever, got '2 weeks'"),
    ("privacy", 'audit_retention = "2 weeks"', "expected a retention like 400d"),
    ("privacy", 'enforce_retention = "yes"', "expected true or false, got 'yes'"),
    ("privacy", 'enforce_consent = "no"', "expected true or false, got 'no'"),
    ("privacy", "guard_unknown = 0", "expected true or false, got 0"),
    ("privacy", 'allow_sensitive = "visit.diagnosis"', "expected a list of 'event.property'"),
    ("checks", 'every = "weekly"', "expected a duration like 30s, 5m, 1h, 7d, got 'weekly'"),
    ("checks", 'alert_on = ["warning"]', "expected a list of statuses among warn, fail, error"),
    # taken, and every alert then failed to send, logged where nobody looks
    ("checks", 'webhook = "hooks.slack.com/services/T0/B0/X"',
     "expected an http:// or https:// URL, e.g. https://hooks.slack.com/services/..., got "
     "'hooks.slack.com/services/T0/B0/X'"),
    ("checks", 'webhook = "ftp://example.com/hook"', "expected an http:// or https:// URL"),
    ("loader", 'dedup_window = "a week"', "expected a duration like 24h, 7d or 2w, or all"),
    ("catalog", "reload_seconds = -1", "expected a number >= 0 (0: never reload), got -1"),
    ("collector", 'body_timeout_seconds = "30s"', "expected a number >= 0, got '30s'"),
    ("collector", 'max_backlog_bytes = "1GB"', "expected a whole number >= 1, got '1GB'"),
    # each of these was taken: every event was answered 503 while the server ran
    ("collector", "max_backlog_bytes = -5", "expected a whole number >= 1, got -5"),
    ("collector", "max_backlog_bytes = 0", "expected a whole number >= 1, got 0"),
    ("collector", "max_connections = 0", "expected a whole number >= 1, got 0"),
    ("collector", "trusted_proxy_header = 5", "expected a string, got 5"),
    ("collector", 'trusted_proxies = ["10.0.0.0/33"]', "'10.0.0.0/33' is not an IP address "
                                                     "or network"),
    ("collector", 'trusted_proxies = ["10.0.0.0/8"]', "needs trusted_proxy_header"),
    ("collector", 'rate_limit_per_second = "fast"', "expected a number > 0, got 'fast'"),
    ("collector", "rate_limit_burst = 0", "expected a number > 0, got 0"),
    # refused by the server's start, without the file's path or line
    ("collector", "rate_limit_burst = 100", "needs rate_limit_per_second (without it no "
                                            "rate is limited)"),
    ("log", "ack_timeout_seconds = 0", "expected a number > 0, got 0"),
    # read by nerve serve's privacy step only: lint and every other command said nothing,
    # and the server's refusal named neither the file's path nor the line
    ("privacy", 'personal = "encrypt"', "expected one of hash, drop, keep, got 'encrypt'"),
    ("privacy", 'ip = "mask"', "expected one of truncate, hash, drop, keep, got 'mask'"),
    ("privacy", 'user_id = "drop"', "expected one of keep, hash, got 'drop'"),
    # page URLs' query strings: a typo would keep storing them as sent
    ("privacy", 'url_query = "dorp"', _URL_QUERY + "got 'dorp'; did you mean 'drop'?"),
    ("privacy", 'url_query = "utm_*"',
     _URL_QUERY + """got 'utm_*' (a parameter's name goes in a list: ["utm_*"])"""),
    ("privacy", "url_query = []",
     _URL_QUERY + 'got []: an empty list keeps no parameter; write "drop" for that'),
    # read by nerve catalog lint, whose refusal named neither the path nor the line
    ("catalog", 'naming = "(["', "expected object_action, snake_case or a regex"),
    # a misspelt convention was taken as a regex: every event broke the naming rule
    ("catalog", 'naming = "objet_action"', "expected object_action, snake_case or a regex, "
                                           "got 'objet_action'; did you mean "
                                           "'object_action'? (as a regex, a plain word "
                                           "accepts only an event of that name)"),
    ("catalog", 'naming = "snake-case"', "expected object_action, snake_case or a regex, "
                                         "got 'snake-case'; did you mean 'snake_case'?"),
    ("catalog", 'min_description = "20"', "expected a whole number >= 0, got '20'"),
])
def test_a_value_a_setting_cannot_take_is_refused_when_the_workspace_loads(
        tmp_path: Path, section: str, setting: str, message: str) -> None:
    """Read first by a daily job or a server thread, "2 weeks" failed there, unseen (the
    retention job never ran), or crashed the server's start with a traceback."""
    root = _append(tmp_path, section, setting)
    lines = (root / "nerve.toml").read_text().splitlines()
    key = setting.split(" =", maxsplit=1)[0]
    with pytest.raises(WorkspaceError) as caught:
        Workspace.load(root)
    text = str(caught.value)
    assert text.startswith(f"{root / 'nerve.toml'}:")
    line = int(re.search(r"nerve.toml:(\d+):", text)[1])  # type: ignore[index]
    assert lines[line - 1] == setting
    assert f": [{section}] {key}: {message}" in text


def test_the_checked_forms_are_known_settings_and_take_their_documented_values() -> None:
    assert {(s, k) for s, keys in FORMS.items() for k in keys} <= {
        (s, k) for s, keys in SETTINGS.items() for k in keys}
    check_settings({"privacy": {"uncataloged_retention": "90d", "audit_retention": "forever",
                                "enforce_retention": False, "allow_sensitive": ["a.b"]},
                    "checks": {"every": 0, "alert_on": "warn", "webhook": "https://x.test"},
                    "loader": {"dedup_window": "all"}, "catalog": {"reload_seconds": 0.5},
                    "collector": {"commit_interval_ms": 2, "max_backlog_bytes": 1 << 30},
                    "log": {"ack_timeout_seconds": 2.5}}, "nerve.toml")
    check_settings({"privacy": {"personal": "drop", "ip": "keep", "user_id": "hash"},
                    "catalog": {"naming": "snake_case", "min_description": 0}}, "nerve.toml")
    check_settings({"catalog": {"naming": "[A-Z][A-Za-z]+"}}, "nerve.toml")


def test_the_data_folder_is_made_readable_by_its_user_only(tmp_path: Path) -> None:
    """With the usual umask (022), .nerve/ was 0755 and the warehouse 0644: raw personal
    data any local user could read."""
    previous = os.umask(0o022)
    try:
        ws = init_workspace(tmp_path / "ws")
        assert stat.S_IMODE(ws.data_dir.stat().st_mode) == 0o700
        # a clone of the workspace has no .nerve/: what makes it again makes it private
        shutil.rmtree(ws.data_dir)
        with Warehouse.for_workspace(ws):
            pass
        assert stat.S_IMODE(ws.data_dir.stat().st_mode) == 0o700
    finally:
        os.umask(previous)
