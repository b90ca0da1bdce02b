"""Retry: the `RetryPolicy` record and the tenacity middleware that applies it.

What is retried:

* ``429`` always (the server did not act), waiting the server's ``Retry-After`` when it
  sends one and it is within ``max_retry_after``; beyond that cap the `RateLimitError`
  is raised at once rather than waiting silently. Without ``Retry-After``: capped
  exponential backoff with full jitter.
* ``5xx`` in ``retry_statuses`` and connection errors/timeouts, only for idempotent
  calls (GET, DELETE): for a POST the server may have applied the change.

Every retry is bounded by ``max_attempts`` and by ``deadline`` (seconds across all
attempts and waits), and logged on the ``fullstory_async`` logger.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import attrs

from fullstory_async._exceptions import APIConnectionError, APIStatusError, InvalidArgumentError, RateLimitError, shown
from fullstory_async._hooks import note_retry_wait
from fullstory_async._messages import ApiRequest, ApiResponse
from fullstory_async._pipeline import Handler
from fullstory_async._timeout import Timeout

if TYPE_CHECKING:
    from tenacity import RetryCallState

logger = logging.getLogger("fullstory_async")


@attrs.define
class AttemptCounter:
    """HTTP attempts made inside a `count_attempts` block."""

    count: int = 0


_attempts: ContextVar[AttemptCounter | None] = ContextVar("fullstory_async_attempts", default=None)


@contextlib.contextmanager
def count_attempts() -> Iterator[AttemptCounter]:
    """Count the HTTP attempts the retry middleware makes in this task inside the block."""
    counter = AttemptCounter()
    token = _attempts.set(counter)
    try:
        yield counter
    finally:
        _attempts.reset(token)


def _at_least(minimum: float, *, allow_none: bool = False, integer: bool = False) -> Any:
    kind, what = (int, "an integer") if integer else (int | float, "a number")

    def check(_instance: object, attribute: attrs.Attribute[object], value: object) -> None:
        if value is None and allow_none:
            return
        if isinstance(value, bool) or not isinstance(value, kind) or not minimum <= value < math.inf:
            raise InvalidArgumentError(
                f"RetryPolicy.{attribute.name}", f"must be {what} >= {minimum}, got {shown(value)}"
            )

    return check


@attrs.frozen
class RetryPolicy:
    """How calls are retried. ``RetryPolicy(max_attempts=1)`` turns retries off.

    ``RetryPolicy(wait=False)`` is the switch for tests: nothing sleeps, but the
    deadline still counts the waits it skipped, so attempt and deadline bounds behave
    as they would in real time.
    """

    max_attempts: int = attrs.field(default=4, validator=_at_least(1, integer=True))
    """Attempts in total, the first one included."""

    deadline: float | None = attrs.field(default=60.0, validator=_at_least(0, allow_none=True))
    """Seconds across all attempts and waits; no retry is started that would end past it."""

    max_retry_after: float = attrs.field(default=60.0, validator=_at_least(0))
    """Longest ``Retry-After`` honoured; a longer one raises the `RateLimitError` at once."""

    backoff_initial: float = attrs.field(default=0.5, validator=_at_least(0))
    """First backoff step in seconds when the server gives no ``Retry-After``."""

    backoff_max: float = attrs.field(default=8.0, validator=_at_least(0))
    """Cap of one backoff wait in seconds."""

    jitter: bool = True
    """Randomise backoff waits (full jitter) so that many clients do not retry in step."""

    retry_statuses: frozenset[int] = frozenset({500, 502, 503, 504})
    """Server statuses retried for idempotent calls."""

    wait: bool = True
    """``False`` skips the sleeps (for tests)."""

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` when the server gives no ``Retry-After``.

        ``backoff_initial * 2**(attempt - 1)`` capped at ``backoff_max``; with ``jitter``, a
        uniform draw below that (full jitter).
        """
        ceiling = min(self.backoff_max, self.backoff_initial * 2 ** min(attempt - 1, 64))
        return random.uniform(0, ceiling) if self.jitter else ceiling

    def should_retry(self, request: ApiRequest, error: BaseException) -> bool:
        """Whether ``error`` from ``request`` is worth another attempt under this policy."""
        if isinstance(error, RateLimitError):
            return error.retry_after is None or error.retry_after <= self.max_retry_after
        if not request.is_idempotent:
            return False
        if isinstance(error, APIStatusError):
            return error.status in self.retry_statuses
        return isinstance(error, APIConnectionError)


class _Budget:
    """Time spent by one call (real time plus the waits skipped with ``wait=False``).

    As a tenacity stop condition it ends the retries at ``max_attempts`` or when the next
    wait would end past the deadline.
    """

    def __init__(self, policy: RetryPolicy, start: float) -> None:
        self.policy = policy
        self.start = start
        self.skipped = 0.0

    def elapsed(self) -> float:
        return time.monotonic() - self.start + self.skipped

    def __call__(self, state: RetryCallState) -> bool:
        if state.attempt_number >= self.policy.max_attempts:
            return True
        deadline = self.policy.deadline
        return deadline is not None and self.elapsed() + state.upcoming_sleep > deadline

    async def sleep(self, seconds: float) -> None:
        if self.policy.wait:
            await asyncio.sleep(seconds)
        else:
            self.skipped += seconds


def _server_first_wait(policy: RetryPolicy) -> Callable[[RetryCallState], float]:
    """Wait what the server's ``Retry-After`` says, else the policy's backoff."""

    def wait(state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, RateLimitError) and error.retry_after is not None:
            return error.retry_after
        return policy.backoff(state.attempt_number)

    return wait


class RetryMiddleware:
    """Middleware that retries the rest of the chain under a `RetryPolicy`.

    ``timeout`` is the client's timeout of one attempt: a retry's own timeout is cut to what
    is left of the deadline, so a call never runs much past it.
    """

    def __init__(self, policy: RetryPolicy, timeout: Timeout | None = None) -> None:
        self.policy = policy
        self.timeout = timeout
        self._wait = _server_first_wait(policy)

    async def __call__(self, request: ApiRequest, call_next: Handler) -> ApiResponse:
        counter = _attempts.get()
        if counter is not None:
            call_next = _counting(call_next, counter)
        policy = self.policy
        started = time.monotonic()
        # The first attempt runs without tenacity: most calls succeed, and cost nothing more.
        try:
            return await call_next(request)
        except Exception as exc:
            if policy.max_attempts == 1 or not policy.should_retry(request, exc):
                raise
            first_error = exc

        replayed = False

        async def attempt(request: ApiRequest) -> ApiResponse:
            nonlocal replayed
            if not replayed:  # tenacity's attempt 1 is the one that already failed
                replayed = True
                raise first_error
            return await call_next(self._within_deadline(request, budget))

        from tenacity import AsyncRetrying, retry_if_exception

        budget = _Budget(policy, started)
        retrying = AsyncRetrying(
            stop=budget,
            wait=self._wait,
            retry=retry_if_exception(lambda error: policy.should_retry(request, error)),
            sleep=budget.sleep,
            before_sleep=lambda state: _log_retry(request, state, policy),
            reraise=True,
        )
        return await retrying(attempt, request)

    def _within_deadline(self, request: ApiRequest, budget: _Budget) -> ApiRequest:
        """Cut the attempt's timeout to what is left of the deadline."""
        deadline = self.policy.deadline
        timeout = request.timeout or self.timeout
        if deadline is None or timeout is None:
            return request
        left = max(deadline - budget.elapsed(), 0.001)
        if timeout.total is not None and timeout.total <= left:
            return request
        connect = None if timeout.connect is None else min(timeout.connect, left)
        return attrs.evolve(request, timeout=Timeout(total=left, connect=connect))


def _counting(call_next: Handler, counter: AttemptCounter) -> Handler:
    async def attempt(request: ApiRequest) -> ApiResponse:
        counter.count += 1
        return await call_next(request)

    return attempt


def _log_retry(request: ApiRequest, state: RetryCallState, policy: RetryPolicy) -> None:
    note_retry_wait(state.upcoming_sleep)
    error = state.outcome.exception() if state.outcome else None
    status = getattr(error, "status", None)
    logger.info(
        "retrying %s %s: attempt %d of %d failed with %s; waiting %.3fs",
        request.method,
        request.path,
        state.attempt_number,
        policy.max_attempts,
        status if status is not None else type(error).__name__,
        state.upcoming_sleep,
        extra={
            "fullstory_method": request.method,
            "fullstory_path": request.path,
            "fullstory_attempt": state.attempt_number,
            "fullstory_wait": state.upcoming_sleep,
            "fullstory_status": status,
            "fullstory_request_id": getattr(error, "request_id", None),
        },
    )
