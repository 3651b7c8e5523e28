"""Packages whose names load on first use (nerve._lazy): every exported name resolves."""

from __future__ import annotations

import importlib

import pytest

LAZY = ["nerve.quality", "nerve.semantic", "nerve.server", "nerve.warehouse"]


@pytest.mark.parametrize("package", LAZY)
def test_every_exported_name_resolves_to_the_package_s_own(package: str) -> None:
    module = importlib.import_module(package)
    for name in module.__all__:
        value = getattr(module, name)
        # a class or function comes from one of the package's own modules
        assert getattr(value, "__module__", package).startswith(package), (name, value)


@pytest.mark.parametrize("package", LAZY)
def test_an_unknown_name_is_an_attribute_error(package: str) -> None:
    module = importlib.import_module(package)
    with pytest.raises(AttributeError, match="no attribute 'Nonesuch'"):
        module.Nonesuch  # noqa: B018
    with pytest.raises(ImportError):
        exec(f"from {package} import Nonesuch")
