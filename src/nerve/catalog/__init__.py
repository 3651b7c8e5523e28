"""The catalog: events as code, loaded from a workspace's events/ folder.

>>> from nerve.catalog import Catalog
>>> Catalog.load("events")  # doctest: +SKIP
"""

from nerve.catalog._catalog import PAYLOAD_FIELD, Catalog, Violation
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
    "Catalog",
    "EventSpec",
    "PropertyGroup",
    "PropertySpec",
    "Version",
    "Violation",
    "parse_retention",
]
