"""How long one attempt of a call may take."""

from __future__ import annotations

import math
from typing import Any

import attrs

from fullstory_async._exceptions import InvalidArgumentError, shown


def _seconds(value: object) -> float | None:
    """``value`` as positive finite float seconds, or ``None`` if it is not one (bools and huge ints included)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        seconds = float(value)
    except OverflowError:  # an int too large for a float
        return None
    return seconds if 0 < seconds < math.inf else None


def _positive_or_none(name: str) -> Any:
    def check(_instance: object, _attribute: object, value: float | None) -> None:
        if value is not None and _seconds(value) is None:
            raise InvalidArgumentError(f"timeout.{name}", f"must be positive seconds or None, got {shown(value)}")

    return check


@attrs.frozen
class Timeout:
    """Timeouts of one attempt (the retry deadline bounds all attempts together).

    ``Client(timeout=10)`` is shorthand for ``Timeout(total=10)``.
    """

    total: float | None = attrs.field(default=30.0, validator=_positive_or_none("total"))
    """Seconds for the whole attempt: connecting, sending and reading the response."""

    connect: float | None = attrs.field(default=5.0, validator=_positive_or_none("connect"))
    """Seconds to open a new connection (TCP and TLS)."""


DEFAULT_TIMEOUT = Timeout()


def as_timeout(value: float | Timeout, field: str = "timeout") -> Timeout:
    """Accept a number of seconds or a `Timeout` and return a `Timeout`."""
    if isinstance(value, Timeout):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgumentError(field, f"must be seconds or a Timeout, got {type(value).__name__}")
    seconds = _seconds(value)
    if seconds is None:
        raise InvalidArgumentError(field, f"must be a positive number of seconds, got {shown(value)}")
    connect = DEFAULT_TIMEOUT.connect
    return Timeout(total=seconds, connect=min(connect, seconds) if connect is not None else None)
