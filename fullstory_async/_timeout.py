"""How long one attempt of a call may take."""

from __future__ import annotations

import attrs

from fullstory_async._exceptions import InvalidArgumentError
from fullstory_async._validation import number, validator

_SECONDS = validator("timeout.", minimum=0, above=True, allow_none=True)


@attrs.frozen
class Timeout:
    """Timeouts of one attempt (`RetryPolicy.operation_timeout` bounds all attempts together).

    ``Client(timeout=10)`` is shorthand for ``Timeout(total=10)``.
    """

    total: float | None = attrs.field(default=30.0, validator=_SECONDS)
    """Seconds for the whole attempt: connecting, sending and reading the response."""

    connect: float | None = attrs.field(default=5.0, validator=_SECONDS)
    """Seconds to open a new connection (TCP and TLS)."""


DEFAULT_TIMEOUT = Timeout()


def as_timeout(value: float | Timeout, field: str = "timeout") -> Timeout:
    """Accept a number of seconds or a `Timeout` and return a `Timeout`."""
    if isinstance(value, Timeout):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgumentError(field, f"must be seconds or a Timeout, got {type(value).__name__}")
    seconds = float(number(field, value, minimum=0, above=True))
    connect = DEFAULT_TIMEOUT.connect
    return Timeout(total=seconds, connect=min(connect, seconds) if connect is not None else None)
