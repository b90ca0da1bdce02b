"""The rate governor: one client-wide pace for every request, learned from the server's 429s.

Fullstory documents a rate limit but not its numbers, and answers ``429`` with a
``Retry-After`` in whole seconds. Hitting the limit is therefore expensive: every 429
costs at least a second. The governor keeps a client's calls just under the limit:

* Until the first 429 it does nothing (no pacing, no cost for occasional calls).
* On a 429 **every** call of the client waits until the ``Retry-After`` moment, instead
  of each one hitting the limit in turn (no thundering herd).
* From then on it paces request starts at a rate that adapts: slow start (the rate
  doubles every ``doubling_time`` seconds of successes) until the first overshoot, then
  an additive approach to just under the last rate that failed, with a slow probe above
  it; each 429 decreases the rate multiplicatively, more the sooner it came (AIMD).

It sits inside the retry middleware, so every attempt is paced.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable

from fullstory_async._exceptions import APITimeoutError, ClientClosedError, InvalidArgumentError, RateLimitError, shown
from fullstory_async._hooks import note_governor_wait
from fullstory_async._messages import ApiRequest, ApiResponse
from fullstory_async._pipeline import Handler

logger = logging.getLogger("fullstory_async")

_FALLBACK_PAUSE = 1.0  # a 429 without Retry-After pauses this long
_TARGET = 0.9  # approach this fraction of the last rate that failed
_PROBE = 0.005  # then grow this fraction per second of successes
_MIN_WINDOW = 0.25  # shortest window the first rate estimate extrapolates from


async def no_sleep(_seconds: float) -> None:
    """Return at once (``RetryPolicy(wait=False)``): skipped waits take no time, so no deadline applies."""


def _check_positive(name: str, value: object) -> float:
    """Return ``value`` as a float if it is a positive finite number, else raise naming ``name``."""
    try:
        number = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else math.nan
    except OverflowError:  # an int too large for a float
        number = math.inf
    if not 0 < number < math.inf:
        raise InvalidArgumentError(name, f"must be a positive number, got {shown(value)}")
    return number


class RateGovernor:
    """Client-wide pacing that adapts to the server's rate limit (AIMD).

    Args:
        initial_rate: requests per second to start pacing at; ``None`` (the default)
            sends freely until the first 429, then paces from the rate observed.
        min_rate: the pace never drops below this (requests per second).
        doubling_time: seconds of successes that double the rate in slow start.
        approach_time: time constant (seconds) of the climb back after a decrease.
        max_pause: a ``Retry-After`` longer than this pauses nobody (the retry policy gives
            up on it at once, and calls should fail fast rather than wait silently); the
            client sets it to its `RetryPolicy.max_retry_after`.
        clock: monotonic clock, injectable for tests.
        sleep: async sleep, injectable for tests.

    """

    def __init__(
        self,
        *,
        initial_rate: float | None = None,
        min_rate: float = 1.0,
        doubling_time: float = 0.5,
        approach_time: float = 1.0,
        max_pause: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        settings = (
            ("min_rate", min_rate),
            ("doubling_time", doubling_time),
            ("approach_time", approach_time),
            ("max_pause", max_pause),
        )
        for name, value in settings:
            _check_positive(name, value)
        if initial_rate is not None:
            initial_rate = _check_positive("initial_rate", initial_rate)
        self.min_rate = float(min_rate)
        self.doubling_time = float(doubling_time)
        self.approach_time = float(approach_time)
        self.max_pause = float(max_pause)
        self._clock = clock
        self._sleep = sleep
        self.rate: float | None = initial_rate
        """Current pace in requests per second; ``None`` while not pacing."""
        self.paused_until = 0.0
        """Clock time until which every call waits (after a 429)."""
        self.rate_limited = 0
        """429 responses seen."""
        self._slow_start = True
        self._ceiling: float | None = None  # the last rate that failed
        self._next_slot = 0.0
        self._episode_start = clock()  # when the current run without 429s began
        self._recent: deque[float] = deque()  # success times in the last second, while not pacing
        self._turnstile = asyncio.Lock()
        self._closed = False
        self._sleeping: set[asyncio.Future[None]] = set()

    def __repr__(self) -> str:
        rate = "unlimited" if self.rate is None else f"{self.rate:.1f}/s"
        return f"RateGovernor(rate={rate}, rate_limited={self.rate_limited})"

    def close(self) -> None:
        """Wake every call waiting here at once with `ClientClosedError`; later calls raise it too. Idempotent."""
        self._closed = True
        for sleeping in self._sleeping:
            sleeping.cancel()

    @property
    def closed(self) -> bool:
        """True once `close` was called."""
        return self._closed

    async def _nap(self, seconds: float) -> None:
        """Sleep, unless `close` interrupts it."""
        if self._closed:
            raise ClientClosedError("the client was closed")
        nap = asyncio.ensure_future(self._sleep(seconds))
        self._sleeping.add(nap)
        try:
            await nap
        except asyncio.CancelledError:
            if self.closed and nap.cancelled():
                raise ClientClosedError("the client was closed while the call waited on the rate governor") from None
            raise
        finally:
            self._sleeping.discard(nap)

    def _check_deadline(self, ready: float, now: float, request: ApiRequest | None) -> None:
        deadline = None if request is None else request.deadline
        if deadline is None or self._sleep is no_sleep or ready - now <= deadline - time.monotonic():
            return
        if self.paused_until >= ready:
            raise RateLimitError(
                "the rate limit pause outlasts the operation's deadline",
                status=429,
                retry_after=ready - now,
                method=request.method if request else "",
                path=request.path if request else "",
            )
        raise APITimeoutError("the operation's deadline would be exceeded waiting for a pacing slot")

    async def wait_for_capacity(self, route: str) -> None:
        """Return as soon as a request of ``route`` could start now without waiting here; reserve nothing."""
        del route  # one pace for every route
        async with self._turnstile:
            now = self._clock()
            while (ready := self._ready_at()) > now:
                await self._nap(ready - now)
                if self._clock() <= now:
                    break  # sleeping is switched off
                now = self._clock()
        if self._closed:
            raise ClientClosedError("the client was closed")

    async def _acquire(self, request: ApiRequest | None = None) -> float:
        """Wait for this request's turn; return the time it starts.

        Waiters queue in order on one turnstile, and each computes its slot only when it
        reaches the front, at the rate of that moment: a rate that grows while requests
        wait speeds up all of them, and only one task sleeps at a time. A wait that would
        end past ``request.deadline`` fails at once.
        """
        async with self._turnstile:
            now = self._clock()
            ready = self._ready_at()
            while ready > now:
                self._check_deadline(ready, now, request)
                paused = self.paused_until
                await self._nap(ready - now)
                now = self._clock()
                if self.paused_until <= paused:
                    break  # slept the whole wait (or sleeping is switched off)
                ready = self._ready_at()  # paused again while waiting
            if self._closed:
                raise ClientClosedError("the client was closed")
            if self.rate is not None:
                # Late wake-ups must not slow the pace: keep up to one interval of credit.
                interval = 1.0 / self.rate
                self._next_slot = max(now - interval, self._next_slot) + interval
            return now

    def _ready_at(self) -> float:
        return self.paused_until if self.rate is None else max(self.paused_until, self._next_slot)

    def _on_success(self, now: float) -> None:
        rate = self.rate
        if rate is None:
            self._recent.append(now)
            while self._recent and self._recent[0] < now - 1.0:
                self._recent.popleft()
            return
        if self._slow_start:
            rate *= 2.0 ** (1.0 / (rate * self.doubling_time))
        elif self._ceiling is not None and rate < _TARGET * self._ceiling:
            rate += (_TARGET * self._ceiling - rate) / (rate * self.approach_time)
        else:
            rate *= 1.0 + _PROBE / rate
        self.rate = rate

    def _on_rate_limited(self, sent_at: float, retry_after: float | None) -> None:
        now = self._clock()
        self.rate_limited += 1
        pause = retry_after if retry_after is not None else _FALLBACK_PAUSE
        if pause <= self.max_pause:
            self.paused_until = max(self.paused_until, now + pause)
        if sent_at < self._episode_start:
            return  # sent before the last decrease: already accounted for
        episode = now - self._episode_start
        self._episode_start = self.paused_until
        if self.rate is None:
            # What the server allowed in the last second, over at least a quarter second.
            window = max(_MIN_WINDOW, now - self._recent[0]) if self._recent else 1.0
            self.rate = max(self.min_rate, len(self._recent) / min(window, 1.0))
            self._recent.clear()
        elif self._slow_start:
            self._slow_start = False
            self._ceiling = self.rate
            self.rate = max(self.min_rate, self.rate / 2)
        else:
            # The sooner the limit was hit again, the further above it the pace was.
            factor = 0.7 if episode < 1.0 else 0.85 if episode < 3.0 else 0.95
            self._ceiling = self.rate if episode >= 3.0 else self.rate * factor / _TARGET
            self.rate = max(self.min_rate, self.rate * factor)
        logger.info(
            "rate limited: every call pauses %.3fs; pace now %.1f requests/s",
            pause,
            self.rate,
            extra={"fullstory_wait": pause, "fullstory_rate": self.rate},
        )

    async def __call__(self, request: ApiRequest, call_next: Handler) -> ApiResponse:
        sent_at = self._clock()
        if self._closed:
            raise ClientClosedError("the client was closed")
        if self.rate is not None or self.paused_until > sent_at:
            arrived, sent_at = sent_at, await self._acquire(request)
            note_governor_wait(sent_at - arrived)
        try:
            response = await call_next(request)
        except RateLimitError as exc:
            self._on_rate_limited(sent_at, exc.retry_after)
            raise
        self._on_success(self._clock())
        return response
