"""Argument checks of the public API: a clear error naming the argument, not a failure deep inside numpy."""

from __future__ import annotations

from numbers import Real

import numpy as np


def positive_int(name: str, value: object) -> int:
    """`value` as an int, when it is an integer of at least 1 (bools are not integers here)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def random_seed(value: object) -> int | None:
    """A seed for numpy's generator: None (fresh entropy) or a non-negative integer."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"seed must be None or a non-negative integer, got {value!r}")
    return int(value)


def check_threshold(threshold: object) -> float:
    """A similarity threshold must be a real number in [-1, 1]."""
    if isinstance(threshold, bool) or not isinstance(threshold, Real) or not -1.0 <= float(threshold) <= 1.0:
        raise ValueError(f"threshold must be between -1 and 1 (a real number), got {threshold!r}")
    return float(threshold)
