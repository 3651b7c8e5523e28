"""The public names of nerve.catalog and nerve.quarantine, pinned (httpx-style)."""

from __future__ import annotations

import nerve.catalog
import nerve.quarantine


def test_catalog_exports() -> None:
    assert sorted(nerve.catalog.__all__) == sorted([
        "EVENT_TYPES", "PAYLOAD_FIELD", "PII_CLASSES", "PROPERTY_TYPES", "RULES", "Catalog",
        "Change", "EventSpec", "EventVerdict", "Finding", "LintConfig", "PropertyGroup",
        "PropertySpec", "Version", "Violation", "check_bumps", "diff_catalogs",
        "lint_catalog", "parse_retention"])
    for name in nerve.catalog.__all__:
        assert hasattr(nerve.catalog, name), name


def test_quarantine_exports() -> None:
    assert sorted(nerve.quarantine.__all__) == ["Decision", "ReplayReport", "judge_rows",
                                                "preview", "preview_query", "replay"]
