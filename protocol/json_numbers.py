"""Numbers in decoded JSON. Python's bool is an int, so a ``true`` sent where a count, an id or a size belongs
passes ``isinstance(value, int)``; every check of a number that someone else wrote goes through these instead."""

from __future__ import annotations

from typing import TypeGuard


def is_int(value: object) -> TypeGuard[int]:
    """An integer, not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> TypeGuard[int | float]:
    """An integer or a float, not a bool (infinities and NaN included: the caller bounds the value)."""
    return isinstance(value, int | float) and not isinstance(value, bool)
