"""Golden diff cases: tests/catalog/golden/<case>/{before,after}/ and expected.json.

Each case is a catalog before and after a change; expected.json pins every change (kind,
level, path, versions, line) and each event's verdict. Regenerate after a deliberate rule
change with ``NERVE_UPDATE_GOLDEN=1 pytest tests/catalog/test_diff_golden.py`` and review
the JSON diff like code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from nerve.catalog import Catalog
from nerve.catalog._diff import check_bumps, diff_catalogs

GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "before").is_dir())


def _result(case: Path) -> dict[str, Any]:
    old = Catalog.load(case / "before")
    new = Catalog.load(case / "after")
    changes = diff_catalogs(old, new)
    verdicts = check_bumps(old, new, changes)
    return {
        "changes": [{"event": c.event, "kind": c.kind, "level": c.level, "path": c.path,
                     "old_version": str(c.old_version) if c.old_version else None,
                     "new_version": str(c.new_version) if c.new_version else None,
                     "file": Path(c.file).relative_to(case).as_posix() if c.file else None,
                     "line": c.line} for c in changes],
        "verdicts": [{"event": v.event, "required": v.required, "declared": v.declared,
                      "ok": v.ok} for v in verdicts],
    }


def test_there_are_golden_cases() -> None:
    assert len(CASES) >= 20


@pytest.mark.parametrize("case", CASES)
def test_golden_diff(case: str) -> None:
    expected_file = GOLDEN / case / "expected.json"
    result = _result(GOLDEN / case)
    if os.environ.get("NERVE_UPDATE_GOLDEN"):
        expected_file.write_text(json.dumps(result, indent=2) + "\n")
    expected = json.loads(expected_file.read_text())
    assert result == expected
