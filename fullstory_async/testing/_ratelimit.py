"""Rate limiting: a token bucket per API key (optionally per key and operation).

The service documents a per-second rate limit and a burst limit that "will recharge over
time", answered with 429 and a ``Retry-After`` header in seconds (reference §5). The
limiter reads an injectable monotonic clock, so tests advance a `ManualClock` instead of
sleeping::

    clock = ManualClock()
    fake = FakeFullstory(rate_limit=RateLimit(rate=2, burst=3), clock=clock)
    ...
    clock.advance(0.5)
"""

from __future__ import annotations

import time
from collections.abc import Callable

import attrs

from fullstory_async.testing._responses import format_retry_after

_EPSILON = 1e-9


@attrs.frozen
class RateLimit:
    """Token-bucket settings: ``burst`` requests at once, refilled at ``rate`` per second."""

    rate: float = attrs.field(validator=attrs.validators.gt(0))
    """Tokens added per second."""

    burst: int = attrs.field(default=1, validator=attrs.validators.ge(1))
    """Bucket size: requests allowed back to back from a full bucket."""

    per_operation: bool = False
    """One bucket per key and operation ("the rate limit for this endpoint") instead of per key."""

    fractional_retry_after: bool = False
    """Send ``Retry-After`` with milliseconds (``"0.250"``) instead of whole seconds (ceil, >= 1)."""


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
        if limit is None:
            return None
        now = self._clock()
        bucket_key = (key, operation if limit.per_operation else "")
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
