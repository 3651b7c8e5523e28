from pathlib import Path

import pytest

from nerve.errors import WorkspaceError
from nerve.workspace import Workspace, init_workspace


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
        ('[project]\nname="x"\n[collector]\nmax_event_bytes="big"\n', r"\[collector\]"),
        ("[project\n", "nerve.toml"),
    ],
)
def test_config_errors_name_the_key(tmp_path: Path, toml: str, message: str) -> None:
    (tmp_path / "nerve.toml").write_text(toml)
    with pytest.raises(WorkspaceError, match=message):
        Workspace.load(tmp_path)


def test_missing_workspace_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match="nerve init"):
        Workspace.load(tmp_path)


def test_env_var_selects_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    init_workspace(tmp_path / "w", "envws")
    monkeypatch.setenv("NERVE_WORKSPACE", str(tmp_path / "w"))
    assert Workspace.load().config.name == "envws"
