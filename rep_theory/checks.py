"""Argument checks shared by every layer: one rule, one message format.

Each check returns the normalised value or raises with a message that names the argument, the value
it got and what was expected: ``TypeError`` for a value of the wrong type, ``ValueError`` for one out
of range.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

__all__ = ["check_int", "check_float"]


def check_int(name: str, value: Any, *, low: int | None = None, high: int | None = None,
              integral_float: bool = False) -> int:
    """``value`` as an ``int`` in ``[low, high]`` (either bound optional).

    ``integral_float``: accept a float with an integral value (``1e3`` in a JSON config).
    Booleans are never integers here.

    >>> check_int("seed", 3, low=0)
    3
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):  # numpy ints are Integral
        if integral_float and isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise TypeError(f"{name} must be an integer, got {name}={value!r}")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        if high is None:
            bound = f">= {low}"
        elif low is None:
            bound = f"<= {high}"
        else:
            bound = f"in [{low}, {high}]"
        raise ValueError(f"{name} must be an integer {bound}, got {name}={value!r}")
    return value


def check_float(name: str, value: Any) -> float:
    """``value`` as a finite ``float`` (ints accepted, booleans not)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {name}={value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {name}={value!r}")
    return value

