"""Execution match: do a predicted query's rows equal the gold query's? Pure.

Two rules, a setting of the reward and of evaluation:

- ``multiset`` (the Spider test-suite rule): rows compared as a multiset (duplicates count), in order only
  when the gold query has ORDER BY; columns compared by position, in the gold's order.
- ``set`` (BIRD's): the sets of rows are equal (duplicates and order ignored).

Values: NULL equals NULL; numbers equal when close (``math.isclose``, relative 1e-6 and absolute 1e-9: an
AVG written two ways differs in the last bits), an integer and a float by value (1 = 1.0); text and bytes
exactly; a number never equals text ("1" is not 1, as SQLite's ``=`` on a typed column says).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

COMPARISONS = ("multiset", "set")
REL_TOL = 1e-6
ABS_TOL = 1e-9

Row = Sequence[Any]


def _key(value: Any) -> tuple:
    """A sort key that orders values of different types apart (NULL, numbers, text, bytes)."""
    if value is None:
        return (0, 0)
    if isinstance(value, bool | int | float):
        return (1, float(value)) if not (isinstance(value, float) and math.isnan(value)) else (1, math.inf)
    if isinstance(value, str):
        return (2, value)
    return (3, bytes(value))


def values_equal(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    numeric = (bool, int, float)
    if isinstance(a, numeric) and isinstance(b, numeric):
        if isinstance(a, int) and isinstance(b, int):
            return a == b
        return math.isclose(float(a), float(b), rel_tol=REL_TOL, abs_tol=ABS_TOL)
    if isinstance(a, numeric) or isinstance(b, numeric):
        return False
    return a == b


def rows_equal(a: Row, b: Row) -> bool:
    return len(a) == len(b) and all(values_equal(x, y) for x, y in zip(a, b, strict=True))


def _sorted(rows: Sequence[Row]) -> list[Row]:
    return sorted(rows, key=lambda row: tuple(_key(v) for v in row))


def _distinct(rows: Sequence[Row]) -> list[Row]:
    """Sorted rows without repeats (neighbours equal within the tolerance collapse into one)."""
    out: list[Row] = []
    for row in _sorted(rows):
        if not out or not rows_equal(out[-1], row):
            out.append(row)
    return out


def execution_match(
    predicted: Sequence[Row], gold: Sequence[Row], *, comparison: str = "multiset", ordered: bool = False
) -> bool:
    """Whether ``predicted`` rows match ``gold`` rows under ``comparison``; ``ordered``: the gold query has
    ORDER BY (the multiset rule then compares rows in order)."""
    if comparison not in COMPARISONS:
        raise ValueError(f"unknown comparison {comparison!r} (known: {', '.join(COMPARISONS)})")
    if comparison == "set":
        left, right = _distinct(predicted), _distinct(gold)
    elif ordered:
        left, right = list(predicted), list(gold)
    else:
        left, right = _sorted(predicted), _sorted(gold)
    return len(left) == len(right) and all(rows_equal(a, b) for a, b in zip(left, right, strict=True))
