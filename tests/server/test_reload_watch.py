"""``CatalogWatch``: when a running server loads events/ again (no server needed)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from serverkit import EVENTS

from nerve.errors import CatalogError
from nerve.server._reload import CatalogWatch, catalog_fingerprint
from nerve.workspace import Workspace

SIGNUP = "name: signup\nproperties:\n  plan: {type: string, pii: none}\n"


def test_a_change_is_loaded_once_it_holds_still(
        make_workspace: Callable[..., Workspace]) -> None:
    ws = make_workspace(EVENTS)
    watch = CatalogWatch(ws.events_dir, catalog_fingerprint(ws.events_dir))
    assert watch.settled_change() is None  # nothing changed
    (ws.events_dir / "versions").mkdir(exist_ok=True)
    (ws.events_dir / "versions" / "signup.v1.yaml").write_text(SIGNUP, encoding="utf-8")
    assert watch.settled_change() is None  # changed since the last look: maybe mid-save
    change = watch.settled_change()
    assert change is not None
    catalog = watch.load(change)
    assert catalog is not None
    assert "signup" in catalog
    assert watch.settled_change() is None  # loaded: not again


def test_a_broken_catalog_is_tried_once_per_change(
        make_workspace: Callable[..., Workspace]) -> None:
    ws = make_workspace(EVENTS)
    watch = CatalogWatch(ws.events_dir, catalog_fingerprint(ws.events_dir))
    (ws.events_dir / "groups").mkdir(exist_ok=True)
    (ws.events_dir / "groups" / "device.yaml").write_text("name: device\nproperties: [",
                                                         encoding="utf-8")
    watch.settled_change()
    change = watch.settled_change()
    assert change is not None
    with pytest.raises(CatalogError, match=r"groups/device\.yaml:2"):
        watch.load(change)
    assert watch.settled_change() is None  # the same files are not tried again
    (ws.events_dir / "groups" / "device.yaml").unlink()
    watch.settled_change()
    fixed = watch.settled_change()
    assert fixed is not None
    assert watch.load(fixed) is not None


def test_files_that_change_while_loading_are_loaded_again(
        make_workspace: Callable[..., Workspace]) -> None:
    ws = make_workspace(EVENTS)
    watch = CatalogWatch(ws.events_dir, catalog_fingerprint(ws.events_dir))
    (ws.events_dir / "signup.yaml").write_text(SIGNUP, encoding="utf-8")
    watch.settled_change()
    change = watch.settled_change()
    assert change is not None
    (ws.events_dir / "signup.yaml").write_text(SIGNUP + "  source: {type: string}\n",
                                               encoding="utf-8")
    assert watch.load(change) is None  # not the files of ``change`` any more
    watch.settled_change()
    again = watch.settled_change()
    assert again is not None
    catalog = watch.load(again)
    assert catalog is not None
    spec = catalog.get("signup")
    assert spec is not None
    assert spec.property("source") is not None
