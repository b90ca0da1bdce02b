"""How long one attempt of a call may take."""

from __future__ import annotations

import math
from typing import Any

import attrs

from fullstory_async._exceptions import InvalidArgumentError


def _positive_or_none(name: str) -> Any:
    def check(_instance: object, _attribute: object, value: float | None) -> None:
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf
        ):
            raise InvalidArgumentError(f"timeout.{name}", f"must be positive seconds or None, got {value!r}")

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
    if not 0 < value < math.inf:
        raise InvalidArgumentError(field, f"must be a positive number of seconds, got {value!r}")
    connect = DEFAULT_TIMEOUT.connect
    return Timeout(total=float(value), connect=min(connect, value) if connect is not None else None)
