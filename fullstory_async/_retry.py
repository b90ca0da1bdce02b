"""Retry: the `RetryPolicy` record and `RetryMiddleware`, the one retry loop of the SDK.

What is retried:

* ``429`` always (the server did not act), waiting the server's ``Retry-After`` when it
  sends one and it is within ``max_retry_after``; beyond that cap, or beyond what is left
  of the deadline, the `RateLimitError` is raised at once rather than waiting silently.
  Without ``Retry-After``: capped exponential backoff with full jitter.
* ``5xx`` in ``retry_statuses``, connection errors and timeouts, only for idempotent
  calls (GET, DELETE): for a POST the server may have applied the change. A 2xx body
  that does not decode (`ResponseDecodeError`) is never retried: the same bytes fail the
  same way again.
* A DELETE answered 404 after an earlier attempt failed ambiguously has succeeded (the
  earlier attempt deleted it); this is logged at INFO.

Every call is bounded by ``max_attempts`` requests and by one deadline
(``ApiRequest.deadline``: ``deadline`` seconds from the start, or earlier when the caller
set one), which every layer below shares: retry waits, governor pauses, pacing slots
and each attempt's timeout. Retries are logged on the ``fullstory_async`` logger.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import weakref
from typing import TYPE_CHECKING, Any

import attrs

from fullstory_async._exceptions import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    ClientClosedError,
    FullstoryError,
    NotFoundError,
    RateLimitError,
    unsent,
)
from fullstory_async._hooks import note_retry_wait
from fullstory_async._messages import ApiRequest, ApiResponse
from fullstory_async._pipeline import Handler
from fullstory_async._validation import validator

if TYPE_CHECKING:
    from tenacity import RetryCallState

logger = logging.getLogger("fullstory_async")


@attrs.frozen
class RetryPolicy:
    """How calls are retried. ``RetryPolicy(max_attempts=1)`` turns retries off.

    ``RetryPolicy(wait=False)`` is the switch for tests: nothing sleeps, but the
    deadline still counts the waits it skipped, so attempt and deadline bounds behave
    as they would in real time.
    """

    max_attempts: int = attrs.field(default=4, validator=validator("RetryPolicy.", minimum=1, integer=True))
    """Attempts in total, the first one included."""

    deadline: float | None = attrs.field(default=60.0, validator=validator("RetryPolicy.", allow_none=True))
    """Seconds for the whole operation: all attempts and every wait (retry, governor, pacing).

    No wait is started that would end past it, and each attempt's timeout is cut to what
    is left. A bulk item (`ensure_endpoint`, one `provision`/`apply` item) has one such
    budget for all of its calls, counted from when it is admitted.
    """

    max_retry_after: float = attrs.field(default=60.0, validator=validator("RetryPolicy."))
    """Longest ``Retry-After`` honoured; a longer one raises the `RateLimitError` at once."""

    backoff_initial: float = attrs.field(default=0.5, validator=validator("RetryPolicy."))
    """First backoff step in seconds when the server gives no ``Retry-After``."""

    backoff_max: float = attrs.field(default=8.0, validator=validator("RetryPolicy."))
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
        if isinstance(error, FullstoryError) and not error.sent:  # ended before sending (a deadline too near, a close)
            return False
        if isinstance(error, RateLimitError):
            return error.retry_after is None or error.retry_after <= self.max_retry_after
        if not request.is_idempotent:
            return False
        if isinstance(error, APIStatusError):
            return error.status in self.retry_statuses
        return isinstance(error, APIConnectionError)  # a ResponseDecodeError is deterministic: never retried


class Calls:
    """The calls of one client in flight (from the retry layer down) and its waits: `close` ends each at once.

    A `with_options` copy has its own, a child of its parent's: closing the copy ends its
    own calls; closing the parent ends the calls of both.
    """

    def __init__(self, parent: Calls | None = None) -> None:
        self._parent = parent
        self._closed = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ended: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()  # the tasks `close` cancelled

    @property
    def closed(self) -> bool:
        """Whether `close` was called on these calls or on their parent's."""
        return self._closed or (self._parent is not None and self._parent.closed)

    def enter(self) -> asyncio.Task[Any]:
        """Track the running task until `leave`; raise `ClientClosedError` if closed."""
        if self.closed:
            raise unsent(ClientClosedError("the client is closed; create a new Client"))
        task = asyncio.current_task()
        assert task is not None
        calls: Calls | None = self
        while calls is not None:
            calls._tasks.add(task)
            calls = calls._parent
        return task

    def leave(self, task: asyncio.Task[Any]) -> None:
        """Stop tracking ``task``."""
        calls: Calls | None = self
        while calls is not None:
            calls._tasks.discard(task)
            calls = calls._parent

    def cancelled_by_close(self, task: asyncio.Task[Any]) -> bool:
        """In an ``except CancelledError``: whether it was `close`'s alone (then raise `ClientClosedError`).

        A cancellation of the caller's own (before the close, or after it) stays a `CancelledError`.
        """
        calls: Calls | None = self
        while calls is not None:
            if task in calls._ended:
                return task.uncancel() == 0
            calls = calls._parent
        return False

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds``; raise `ClientClosedError` if the client is (or gets) closed."""
        task = self.enter()
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            if self.cancelled_by_close(task):
                raise ClientClosedError("the client was closed while the call waited") from None
            raise
        finally:
            self.leave(task)

    def close(self) -> None:
        """End every tracked call and wait at once with `ClientClosedError`; idempotent."""
        self._closed = True
        me = asyncio.current_task()  # a call that closes its own client ends normally
        for task in self._tasks:
            if task is not me and not task.cancelling():  # not one the governor's close (or its caller) ended
                task.cancel()
                self._ended.add(task)
        self._tasks.clear()


class RetryMiddleware:
    """Middleware that runs the rest of the chain (one attempt) under a `RetryPolicy`.

    It sets the operation's deadline on the request (``ApiRequest.deadline``) for every
    layer below, and stamps the attempt count on the outcome: ``ApiResponse.attempts``,
    or ``attempts`` of the `FullstoryError` raised. Each call is tracked in ``calls``
    until it ends, so the client's ``aclose()`` ends it at once (`ClientClosedError`),
    wherever it waits below: a retry wait, the governor, the pool, the server's answer.
    """

    def __init__(self, policy: RetryPolicy, calls: Calls | None = None) -> None:
        self.policy = policy
        self.calls = calls or Calls()

    async def __call__(self, request: ApiRequest, call_next: Handler) -> ApiResponse:
        policy = self.policy
        now = time.monotonic()
        if policy.deadline is not None and (request.deadline is None or now + policy.deadline < request.deadline):
            request = request.with_deadline(now + policy.deadline)
        if request.deadline is not None and request.deadline <= now:
            # An operation's later call (a bulk item's lookup after a timed-out create) with nothing left.
            raise APITimeoutError(
                f"the operation's deadline passed before this call ({request.method} {request.path})",
                method=request.method,
                path=request.path,
            )
        calls = self.calls
        task = calls.enter()
        call: _Call | None = None
        try:
            # The first attempt runs without tenacity or a _Call: most calls succeed, and cost nothing more.
            try:
                return await call_next(request)
            except FullstoryError as exc:
                call = _Call(policy, request, call_next, attempts=1)
                call.stamp(exc)
                if policy.max_attempts == 1 or not policy.should_retry(request, exc):
                    raise
                first_error = exc
            try:
                return await call.retry(first_error)
            except FullstoryError as exc:
                exc.sent = exc.attempts > 0  # the call's: an earlier attempt may have been applied
                raise
        except asyncio.CancelledError as exc:
            if calls.cancelled_by_close(task):
                error = ClientClosedError("the client was closed while the call was waiting or in flight")
                held = getattr(exc, "sent", True) is False  # closed while held in the rate governor
                error.attempts = (1 if call is None else call.attempts) - held
                error.sent = error.attempts > 0
                raise error from None
            raise
        finally:
            calls.leave(task)


class _Call:
    """The attempts of a call whose first attempt failed: the unit tenacity retries.

    `stamp` counts every failed attempt, the first included (which `RetryMiddleware` runs
    itself); `attempt` runs each later one and stamps its outcome; `before_sleep` runs
    before each wait.
    """

    def __init__(self, policy: RetryPolicy, request: ApiRequest, call_next: Handler, *, attempts: int) -> None:
        self.policy = policy
        self.request = request
        self.call_next = call_next
        self.attempts = attempts
        self.ambiguous = False  # an earlier attempt may have been applied by the server

    def stamp(self, error: FullstoryError) -> None:
        """Stamp the attempt count on ``error``, the outcome of the latest attempt."""
        if not error.sent:  # ended before sending: no attempt was made
            self.attempts -= 1
        else:
            self.ambiguous = self.ambiguous or not isinstance(error, RateLimitError)
        error.attempts = self.attempts

    async def attempt(self) -> ApiResponse:
        """Run one more attempt; stamp the attempt count on its response or error."""
        self.attempts += 1
        try:
            response = await self.call_next(self.request)
        except FullstoryError as exc:
            if isinstance(exc, NotFoundError) and self.ambiguous and self.request.method == "DELETE":
                return self._already_deleted(exc)
            self.stamp(exc)
            raise
        return response.with_outcome(attempts=self.attempts)

    async def retry(self, first_error: FullstoryError) -> ApiResponse:
        """Retry after ``first_error`` (the failed first attempt) until success or the policy gives up."""
        from tenacity import AsyncRetrying, retry_if_exception

        replayed = False

        async def attempt() -> ApiResponse:
            nonlocal replayed
            if not replayed:  # tenacity's attempt 1 is the one that already failed
                replayed = True
                raise first_error
            return await self.attempt()

        retrying = AsyncRetrying(
            stop=self.stop,
            wait=self.wait,
            retry=retry_if_exception(lambda error: self.policy.should_retry(self.request, error)),
            sleep=self.sleep,
            before_sleep=self.before_sleep,
            reraise=True,
        )
        return await retrying(attempt)

    def stop(self, state: RetryCallState) -> bool:
        """Stop at ``max_attempts``, or when the next wait would end past the deadline."""
        if state.attempt_number >= self.policy.max_attempts:
            return True
        deadline = self.request.deadline
        return deadline is not None and time.monotonic() + state.upcoming_sleep > deadline

    def wait(self, state: RetryCallState) -> float:
        """Wait what the server's ``Retry-After`` says, else the policy's jittered backoff."""
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, RateLimitError) and error.retry_after is not None:
            return error.retry_after
        return self.policy.backoff(state.attempt_number)

    async def sleep(self, seconds: float) -> None:
        if self.policy.wait:
            await asyncio.sleep(seconds)  # the call is tracked: the client's aclose() ends this wait
        elif self.request.deadline is not None:
            # Nothing sleeps, but the deadline still counts the wait it skipped.
            self.request = self.request.with_deadline(self.request.deadline - seconds)

    def before_sleep(self, state: RetryCallState) -> None:
        note_retry_wait(state.upcoming_sleep)
        error = state.outcome.exception() if state.outcome else None
        status = getattr(error, "status", None)
        request = self.request
        logger.info(
            "retrying %s %s: attempt %d of %d failed with %s; waiting %.3fs",
            request.method,
            request.path,
            state.attempt_number,
            self.policy.max_attempts,
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

    def _already_deleted(self, error: NotFoundError) -> ApiResponse:
        """Succeed: a DELETE found 404 after an ambiguous attempt, so that attempt deleted it."""
        request = self.request
        logger.info(
            "%s %s: 404 after an ambiguous attempt; it was deleted by that attempt (attempt %d)",
            request.method,
            request.path,
            self.attempts,
            extra={"fullstory_method": request.method, "fullstory_path": request.path, "fullstory_status": 404},
        )
        return ApiResponse(204, error.headers, b"", None, self.attempts)
