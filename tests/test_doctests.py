"""The examples in nerve's docstrings are tests too: a reader of the code trusts them
first, so they must stay true (two had gone stale before this ran in CI)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import nerve

MODULES = sorted(m.name for m in pkgutil.walk_packages(nerve.__path__, "nerve.")
                 if not m.name.endswith("__main__"))


@pytest.mark.parametrize("name", ["nerve", *MODULES])
def test_the_examples_in_docstrings_hold(name: str) -> None:
    module = importlib.import_module(name)
    failed, _ = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert failed == 0, f"{name}: {failed} docstring example(s) failed (printed above)"
