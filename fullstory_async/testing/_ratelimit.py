"""Rate limiting: a token bucket or a fixed window per API key (optionally per key and operation).

The service documents a per-second rate limit and a burst limit that "will recharge over
time", answered with 429 and a ``Retry-After`` header in seconds (reference §5). Its real
algorithm is not documented, so two shapes are offered: a token bucket (``burst``
requests at once, refilled at ``rate`` per second) and a fixed window (at most ``rate``
requests in each whole second of the clock, ``fixed_window=True``). A limit may apply to
some operations only (``operations``). The limiter reads an injectable monotonic clock,
so tests advance a `ManualClock` instead of sleeping::

    clock = ManualClock()
    fake = FakeFullstory(rate_limit=RateLimit(rate=2, burst=3), clock=clock)
    ...
    clock.advance(0.5)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import attrs

from fullstory_async.testing._responses import format_retry_after
from fullstory_async.testing._routes import OPERATION_NAMES

_EPSILON = 1e-9


def _check_operations(_: object, __: object, value: frozenset[str] | None) -> None:
    unknown = sorted(value - OPERATION_NAMES) if value is not None else []
    if unknown or value == frozenset():
        raise ValueError(f"operations: unknown or empty: {unknown or '[]'}; known: {sorted(OPERATION_NAMES)}")


@attrs.frozen
class RateLimit:
    """Rate-limit settings: a token bucket (``burst`` at once, refilled at ``rate`` per second) or a fixed window."""

    rate: float = attrs.field(validator=attrs.validators.gt(0))
    """Tokens added per second."""

    burst: int = attrs.field(default=1, validator=attrs.validators.ge(1))
    """Bucket size: requests allowed back to back from a full bucket."""

    per_operation: bool = False
    """One bucket per key and operation ("the rate limit for this endpoint") instead of per key."""

    fractional_retry_after: bool = False
    """Send ``Retry-After`` with milliseconds (``"0.250"``) instead of whole seconds (ceil, >= 1)."""

    fixed_window: bool = False
    """Count requests in fixed one-second windows of the clock (``[n, n + 1)``): at most
    ``rate`` each (rounded down), ``Retry-After`` until the next window; ``burst`` is unused."""

    operations: frozenset[str] | None = attrs.field(
        default=None, converter=attrs.converters.optional(frozenset), validator=_check_operations
    )
    """Limit only these operations (e.g. ``{"create_endpoint"}``); others are never limited.
    ``None`` (the default) limits every operation."""

    def __attrs_post_init__(self) -> None:
        if self.fixed_window and self.rate < 1:
            raise ValueError(f"rate: a fixed window needs at least 1 request per second, got {self.rate!r}")


class ManualClock:
    """A monotonic clock that only moves when told to; pass it as ``clock=``."""

    __slots__ = ("_now",)

    def __init__(self, start: float = 0.0) -> None:
        self._now = start

    def __call__(self) -> float:
        return self._now

    def __repr__(self) -> str:
        return f"ManualClock({self._now!r})"

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds`` (not backward)."""
        if seconds < 0:
            raise ValueError("a monotonic clock cannot go back")
        self._now += seconds


class _Bucket:
    __slots__ = ("stamp", "tokens")

    def __init__(self, tokens: float, stamp: float) -> None:
        self.tokens = tokens
        self.stamp = stamp


class RateLimiter:
    """The buckets of one fake; off while ``limit`` is None."""

    __slots__ = ("_buckets", "_clock", "_limit")

    def __init__(self, limit: RateLimit | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._limit = limit
        self._clock = clock
        self._buckets: dict[tuple[str, str], _Bucket] = {}

    @property
    def limit(self) -> RateLimit | None:
        """The settings; setting them (or None, to turn limiting off) refills every bucket."""
        return self._limit

    @limit.setter
    def limit(self, value: RateLimit | None) -> None:
        self._limit = value
        self._buckets.clear()

    def reset(self) -> None:
        """Refill every bucket."""
        self._buckets.clear()

    def acquire(self, key: str, operation: str) -> str | None:
        """Take a token for ``key``: None if allowed, else the ``Retry-After`` value to send."""
        limit = self._limit
        if limit is None or (limit.operations is not None and operation not in limit.operations):
            return None
        now = self._clock()
        bucket_key = (key, operation if limit.per_operation else "")
        if limit.fixed_window:
            return self._count_in_window(bucket_key, now, limit)
        bucket = self._buckets.get(bucket_key)
        if bucket is None:
            bucket = self._buckets[bucket_key] = _Bucket(float(limit.burst), now)
        else:
            elapsed = max(now - bucket.stamp, 0.0)
            bucket.tokens = min(float(limit.burst), bucket.tokens + elapsed * limit.rate)
            bucket.stamp = now
        if bucket.tokens >= 1 - _EPSILON:
            bucket.tokens = max(bucket.tokens - 1, 0.0)
            return None
        wait = (1 - bucket.tokens) / limit.rate
        return format_retry_after(wait, fractional=limit.fractional_retry_after)

    def _count_in_window(self, bucket_key: tuple[str, str], now: float, limit: RateLimit) -> str | None:
        # A bucket here holds the requests counted so far (tokens) in the window starting at stamp.
        window = float(math.floor(now + _EPSILON))
        bucket = self._buckets.get(bucket_key)
        if bucket is None or bucket.stamp != window:
            bucket = self._buckets[bucket_key] = _Bucket(0.0, window)
        if bucket.tokens < math.floor(limit.rate + _EPSILON):
            bucket.tokens += 1
            return None
        return format_retry_after(window + 1 - now, fractional=limit.fractional_retry_after)
