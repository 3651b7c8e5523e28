"""The catalog: events as code, loaded from a workspace's events/ folder.

>>> from nerve.catalog import Catalog
>>> Catalog.load("events")  # doctest: +SKIP
"""

from nerve.catalog._catalog import PAYLOAD_FIELD, Catalog, Violation
from nerve.catalog._diff import Change, EventVerdict, check_bumps, diff_catalogs
from nerve.catalog._lint import RULES, Finding, LintConfig, lint_catalog
from nerve.catalog._model import (
    EVENT_TYPES,
    PII_CLASSES,
    PROPERTY_TYPES,
    EventSpec,
    PropertyGroup,
    PropertySpec,
    Version,
    parse_retention,
)

__all__ = [
    "EVENT_TYPES",
    "PAYLOAD_FIELD",
    "PII_CLASSES",
    "PROPERTY_TYPES",
    "RULES",
    "Catalog",
    "Change",
    "EventSpec",
    "EventVerdict",
    "Finding",
    "LintConfig",
    "PropertyGroup",
    "PropertySpec",
    "Version",
    "Violation",
    "check_bumps",
    "diff_catalogs",
    "lint_catalog",
    "parse_retention",
]
