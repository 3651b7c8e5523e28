"""Targeting conditions on a unit's attributes; no dependencies, so SDKs can use it."""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["OPERATORS", "matches_targeting"]

OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "eq": operator.eq, "ne": operator.ne, "gt": operator.gt, "gte": operator.ge,
    "lt": operator.lt, "lte": operator.le,
    "in": lambda value, wanted: value in wanted,
    "not_in": lambda value, wanted: value not in wanted,
}


def matches_targeting(attributes: Mapping[str, Mapping[str, Any]],
                      given: Mapping[str, Any]) -> bool:
    """Whether a unit's ``given`` attributes meet every condition (a missing one does not).

    >>> matches_targeting({"age": {"gte": 65}}, {"age": 70}), matches_targeting(
    ...     {"age": {"gte": 65}}, {"age": 40})
    (True, False)
    """
    for name, conditions in attributes.items():
        if name not in given or given[name] is None:
            return False
        value = given[name]
        for op, wanted in conditions.items():
            try:
                ok = bool(OPERATORS[op](value, wanted))
            except TypeError:
                ok = False
            if not ok:
                return False
    return True
