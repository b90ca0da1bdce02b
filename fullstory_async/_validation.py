"""Checks of settings and arguments: each raises `InvalidArgumentError` naming the field.

One implementation of "a number within bounds" and "an instance of a class", used by
every setting (`RetryPolicy`, `Timeout`, `Client`, the bulk operations' arguments), so
they all refuse the same things the same way: ``True`` is not a number, ``nan`` and
``inf`` are not finite, an int too large for a float is refused rather than overflowing
later, and the message says what was expected and shows what was given.
"""

from __future__ import annotations

import math
from typing import Any, TypeVar

from fullstory_async._exceptions import InvalidArgumentError, shown

T = TypeVar("T")


def number(
    field: str,
    value: object,
    *,
    minimum: float = 0,
    maximum: float = math.inf,
    integer: bool = False,
    above: bool = False,
    allow_none: bool = False,
) -> Any:
    """Return ``value`` if it is a finite number in range, else raise naming ``field``.

    ``above`` makes ``minimum`` exclusive; ``integer`` refuses floats; ``allow_none``
    accepts ``None``.
    """
    if value is None and allow_none:
        return None
    kind, what = (int, "an integer") if integer else (int | float, "a number")
    if isinstance(value, bool) or not isinstance(value, kind):
        raise InvalidArgumentError(field, f"must be {what}{_range(minimum, maximum, above)}, got {shown(value)}")
    try:
        as_float = float(value)
    except OverflowError:  # an int too large for a float
        as_float = math.inf
    low_ok = as_float > minimum if above else as_float >= minimum
    if not (low_ok and as_float <= maximum and math.isfinite(as_float)):
        raise InvalidArgumentError(field, f"must be {what}{_range(minimum, maximum, above)}, got {shown(value)}")
    return value


def _range(minimum: float, maximum: float, above: bool) -> str:
    low = f" > {minimum:g}" if above else f" >= {minimum:g}"
    if maximum == math.inf:
        return low
    return f" from {minimum:g} to {maximum:g}"


def validator(prefix: str = "", **bounds: Any) -> Any:
    """Return an attrs validator applying `number` to a field, named ``prefix + attribute name``."""

    def check(_instance: object, attribute: Any, value: object) -> None:
        number(f"{prefix}{attribute.name}", value, **bounds)

    return check


def instance(field: str, value: object, cls: type[T]) -> T:
    """Return ``value`` if it is a ``cls``, else raise naming ``field``."""
    if not isinstance(value, cls):
        raise InvalidArgumentError(field, f"must be a {cls.__name__}, got {type(value).__name__}")
    return value
