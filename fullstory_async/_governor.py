"""The rate governor: each route's calls paced at what the server admits.

Fullstory documents a rate limit "for this endpoint" but not its numbers, and answers
``429`` with a ``Retry-After`` in whole seconds, so every refused call costs a second.
The governor keeps a client's calls just under each limit without knowing it:

* **Per route.** A route is ``request.operation`` (``"create_endpoint"``...; a raw
  request without one uses its method). Each route has its own pace (`RoutePace`), so a
  limit on creates leaves lookups alone, and two clients never share anything.
* **CUBIC over what the server admits** (the AWS SDKs' adaptive retry mode). Every answer
  other than a 429 (a 404 of a lookup, any error status, a body that does not decode) was
  admitted by the limiter; a connection error or timeout says nothing either way and is not
  counted. A binding 429 (another among the route's last 10 answers) cuts the pace to 0.7 of
  the rate admitted in the last second; the pace then grows back as a cubic of the time. A
  stray 429 (alone among successes) changes nothing for anyone.
* **Refused calls wait, the rest keep the pace.** The retry layer holds a refused call
  for its ``Retry-After``; the other calls are not paused, they keep the pace. Only when
  nothing at all gets through is the route paused until ``Retry-After``.
* **Bounded waits.** A wait never runs past ``request.deadline``: a call whose slot or
  pause would end later fails at once (`APITimeoutError`, or `RateLimitError` for a
  pause). `close` wakes every waiting call with `ClientClosedError`.

The model, its sources and its tunables are in ``fullstory_async/_pace.py`` (and
docs/design.md); docs/benchmarks.md has the figures.
It sits inside the retry middleware, so every attempt is paced.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fullstory_async._exceptions import (
    APIError,
    APIStatusError,
    APITimeoutError,
    ClientClosedError,
    InvalidArgumentError,
    RateLimitError,
    ResponseDecodeError,
    shown,
    unsent,
)
from fullstory_async._hooks import note_governor_wait
from fullstory_async._messages import ApiRequest, ApiResponse
from fullstory_async._pace import RoutePace
from fullstory_async._pipeline import Handler
from fullstory_async._retry import note_held

logger = logging.getLogger("fullstory_async")


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
    """Per-route pacing at the rate the server admits (see the module docstring).

    Args:
        max_rate: never pace faster than this many requests per second: a number for
            every route, or a mapping ``{route: rate}`` (routes not in it are uncapped),
            e.g. to leave headroom for other tools sharing the org's limit.
        initial_rate: a limit you already know (requests per second): routes start
            as if a 429 had just met it (at 0.7 of it, regained within a second)
            instead of discovering it.
        min_rate: the pace never drops below this (requests per second).
        max_pause: a ``Retry-After`` longer than this pauses nobody (the retry policy gives
            up on it at once); the client sets it to its `RetryPolicy.max_retry_after`.
        clock: monotonic clock, injectable for tests.
        sleep: async sleep, injectable for tests.

    """

    def __init__(
        self,
        *,
        max_rate: float | Mapping[str, float] | None = None,
        initial_rate: float | None = None,
        min_rate: float = 1.0,
        max_pause: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.min_rate = _check_positive("min_rate", min_rate)
        self.max_pause = _check_positive("max_pause", max_pause)
        self.initial_rate = None if initial_rate is None else _check_positive("initial_rate", initial_rate)
        if isinstance(max_rate, Mapping):
            self.max_rate: float | dict[str, float] | None = {
                str(route): _check_positive(f"max_rate[{route!r}]", rate) for route, rate in max_rate.items()
            }
        else:
            self.max_rate = None if max_rate is None else _check_positive("max_rate", max_rate)
        self._clock = clock
        self._sleep = sleep
        self._routes: dict[str, RoutePace] = {}
        self._turnstiles: dict[str, asyncio.Lock] = {}
        self._queued: dict[str, int] = {}  # calls with a deadline waiting for a route's turnstile
        self._waiting: set[asyncio.Task[Any]] = set()
        self._closed = False
        self.rate_limited = 0
        """429 responses seen (all routes)."""

    def __repr__(self) -> str:
        routes = ", ".join(f"{name}={pace.rate:.1f}/s" for name, pace in sorted(self._routes.items()))
        return f"RateGovernor(routes={{{routes}}}, rate_limited={self.rate_limited})"

    @property
    def rates(self) -> dict[str, float]:
        """The current pace of each route seen so far, requests per second."""
        return {name: pace.rate for name, pace in self._routes.items()}

    @property
    def limits(self) -> dict[str, float]:
        """The admitted rate measured at each route's last binding 429 (CUBIC's ``w_max``), requests per second."""
        return {name: pace.limit for name, pace in self._routes.items() if pace.limit is not None}

    def _pace(self, route: str) -> RoutePace:
        pace = self._routes.get(route)
        if pace is None:
            cap = self.max_rate.get(route) if isinstance(self.max_rate, dict) else self.max_rate
            pace = RoutePace(self._clock(), min_rate=self.min_rate, max_rate=cap)
            if self.initial_rate is not None:
                pace.learn(self.initial_rate, self._clock())
            self._routes[route] = pace
            self._turnstiles[route] = asyncio.Lock()
        return pace

    # -- lifecycle ------------------------------------------------------------------

    def close(self) -> None:
        """Wake every waiting call with `ClientClosedError`; later calls raise it too. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for task in self._waiting:
            task.cancel()
        self._waiting.clear()

    def _check_open(self) -> None:
        if self._closed:
            raise unsent(ClientClosedError("the client is closed; create a new Client"))

    async def _wait(self, seconds: float) -> None:
        """Sleep, woken early by `close` (then raise `ClientClosedError`)."""
        task = asyncio.current_task()
        assert task is not None
        self._waiting.add(task)
        try:
            await self._sleep(seconds)
        except asyncio.CancelledError:
            if self._closed and task.uncancel() == 0:
                raise unsent(
                    ClientClosedError("the client was closed while the call waited for the rate limit")
                ) from None
            raise
        finally:
            self._waiting.discard(task)

    # -- waiting for a slot ---------------------------------------------------------

    async def wait_for_capacity(self, route: str) -> None:
        """Return once a call of ``route`` could start now without waiting here; reserves nothing.

        Calls queued for the route's slots (retries, in a job at the limit) come first: while
        any is queued, a new call would wait behind it, so this waits a pacing interval more.
        """
        pace = self._pace(route)
        turnstile = self._turnstiles[route]
        while True:
            self._check_open()
            now = self._clock()
            ready = pace.ready_at(now)
            if ready <= now and not turnstile.locked():
                return
            await self._wait(ready - now if ready > now else 1.0 / pace.rate)
            if self._clock() <= now:
                return  # sleeping is switched off

    async def _acquire(self, pace: RoutePace, route: str, deadline: float | None, arrived: float) -> float:
        """Wait for this call's turn on its route (it could not start on arrival); return the time it starts.

        Waiters queue in order on the route's turnstile, and each computes its slot only
        when it reaches the front, at the pace of that moment: a pace that drops while
        calls wait applies to all of them at once.
        """
        try:
            return await self._queue(pace, route, deadline)
        except asyncio.CancelledError:  # cancelled while held: nothing was sent
            note_held()
            raise
        finally:  # every hold is the attempt's, also one that ends in an error
            note_governor_wait(self._clock() - arrived)

    async def _queue(self, pace: RoutePace, route: str, deadline: float | None) -> float:
        """`_acquire`'s work: queue on the route's turnstile, then wait for the slot or the pause."""
        turnstile = self._turnstiles[route]
        now = self._clock()
        if self._sleep is no_sleep:
            deadline = None  # waits are skipped, so they cannot outlast the deadline
        if deadline is None:
            await turnstile.acquire()
        else:
            queued = self._queued.get(route, 0)
            expected = max(pace.ready_at(now) - now, queued / pace.rate)  # the turn of the calls ahead
            if time.monotonic() + expected > deadline:
                raise self._too_late(pace, wait=expected)
            self._queued[route] = queued + 1
            try:
                async with asyncio.timeout(max(deadline - time.monotonic(), 0.0)):
                    await turnstile.acquire()
            except TimeoutError:
                raise self._too_late(pace, queued=True) from None
            finally:
                self._queued[route] -= 1
        try:
            self._check_open()
            now = self._clock()
            while (ready := pace.ready_at(now)) > now:
                if deadline is not None and time.monotonic() + (ready - now) > deadline:
                    raise self._too_late(pace, wait=ready - now)
                paused = pace.paused_until
                await self._wait(ready - now)
                self._check_open()
                now = self._clock()
                if pace.paused_until <= paused:
                    break  # slept the whole wait (or sleeping is switched off)
            pace.take_slot(now)
            return now
        finally:
            turnstile.release()

    def _too_late(self, pace: RoutePace, *, wait: float = 0.0, queued: bool = False) -> Exception:
        paused = pace.paused_until - self._clock()
        error: APIError
        if paused > 0:
            error = RateLimitError(
                "rate limited: the pause the server asked for would end after the operation's deadline",
                status=429,
                code="too_many_requests",
                retry_after=paused,
            )
        else:
            what = "queued for" if queued else f"{wait:.3f}s more for"
            error = APITimeoutError(f"the operation's deadline would be exceeded waiting {what} a pacing slot")
        return unsent(error)

    def _pausable(self, retry_after: float | None) -> float | None:
        return retry_after if retry_after is not None and retry_after <= self.max_pause else None

    # -- the middleware -------------------------------------------------------------

    async def __call__(self, request: ApiRequest, call_next: Handler) -> ApiResponse:
        self._check_open()
        route = request.operation or request.method
        pace = self._routes.get(route) or self._pace(route)
        started = self._clock()
        if self._turnstiles[route].locked() or not pace.try_start(started):  # else the usual case: no wait
            started = await self._acquire(pace, route, request.deadline, started)
        try:
            response = await call_next(request)
        except RateLimitError as exc:
            self.rate_limited += 1
            if pace.on_refused(started, self._clock(), self._pausable(exc.retry_after)):
                logger.info(
                    "rate limited on %s: pace %.1f requests/s",
                    route,
                    pace.rate,
                    extra={"fullstory_route": route, "fullstory_rate": pace.rate},
                )
            raise
        except (APIStatusError, ResponseDecodeError):  # the server answered: the limiter let the call through
            pace.on_success(started, self._clock())
            raise
        pace.on_success(started, self._clock())
        return response
