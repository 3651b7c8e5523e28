"""A package's names imported on first use (PEP 562), so that a process pays only for the
modules it runs: ``nerve --version`` imports neither SciPy nor Ibis, and a collector
worker never imports DuckDB.

A package imports its names under ``if TYPE_CHECKING:`` (for type checkers and readers)
and lists them again by the module that defines them:

>>> __getattr__ = names_from(__name__, {"_warehouse": ("Warehouse",)})  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def names_from(package: str, modules: Mapping[str, Iterable[str]]) -> Callable[[str], Any]:
    """The package's ``__getattr__``; ``modules`` maps each of its modules to the names it
    gives the package."""
    where = {name: module for module, names in modules.items() for name in names}

    def lookup(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{where[name]}"), name)
        setattr(sys.modules[package], name, value)  # found once; later lookups skip this
        return value

    return lookup
