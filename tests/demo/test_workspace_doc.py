"""docs/demo.md draws the demo's workspace: every entry `nerve demo` creates is in it."""

import re
from pathlib import Path

from nerve.demo._run import prepare_workspace

DOC = Path(__file__).parents[2] / "docs" / "demo.md"


def test_the_drawn_tree_names_every_entry_of_the_demo_workspace(tmp_path: Path) -> None:
    text = DOC.read_text(encoding="utf-8")
    tree = text.split("## What is in the workspace", 1)[1].split("```")[1]
    drawn = set(re.findall(r"[├└]── (\S+?)/?\s", tree))
    workspace = prepare_workspace(tmp_path / "nerve-demo")
    created = {p.name for p in workspace.root.iterdir()} - {".gitignore"}
    assert created - {"ground_truth.json"} <= drawn, created - drawn
