"""Deterministic seeded train/dev/test splits for collections that have none."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

SPLITS = ("train", "dev", "test")


def split_ids(
    ids: Sequence[str], seed: int = 0, fractions: tuple[float, float, float] = (0.6, 0.1, 0.3)
) -> dict[str, list[str]]:
    """Order ids by a seeded hash (independent of input order), then cut by ``fractions``.

    With three or more ids every split gets at least one.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or sum(fractions) <= 0:
        raise ValueError(f"fractions must be three non-negative numbers, got {fractions}")
    ordered = sorted(ids, key=lambda i: hashlib.sha256(f"{seed}:{i}".encode()).hexdigest())
    n, total = len(ordered), sum(fractions)
    sizes = [round(n * f / total) for f in fractions]
    if n >= 3:
        sizes = [max(s, 1) if f > 0 else 0 for s, f in zip(sizes, fractions, strict=True)]
    # Give rounding leftovers to (or take them from) the largest split.
    largest = max(range(3), key=lambda i: sizes[i])
    sizes[largest] += n - sum(sizes)
    out, start = {}, 0
    for name, size in zip(SPLITS, sizes, strict=True):
        out[name] = ordered[start : start + size]
        start += size
    return out
