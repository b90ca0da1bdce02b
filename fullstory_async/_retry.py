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
(``ApiRequest.deadline``: ``operation_timeout`` seconds from the start, the operation's `Budget`
when it runs within one, or earlier when the caller set one), which every layer below
shares: retry waits, governor pauses, pacing slots and each attempt's timeout. Retries
are logged on the ``fullstory_async`` logger.

The loop is `RetryMiddleware.__call__`, one ``while`` over the attempts from the first to the
last, with tenacity's `RetryCallState` as the record of the retries (made when the first attempt
fails, so a call that succeeds at once pays nothing for it) and the policy in tenacity's
terms (`retrying`: ``retry`` = `RetryPolicy.should_retry`, ``wait`` = ``Retry-After``, else
`RetryPolicy.backoff`, ``stop`` = `stop_after_attempt` or the deadline): send; on a failure set
the outcome on the state and consult ``retry``, ``wait`` and ``stop`` the way tenacity's own
iteration does; log, wait, go round. (Iterating ``AsyncRetrying`` itself, a copy per call since
its iteration state is per instance, cost more CPU per call than all the rest of the SDK: about
50 us at concurrency 64 against the overhead guard of 1.5 x raw aiohttp, docs/benchmarks.md.) What
the call did is kept in one `CallRecord` as its attempts end, and set once on the outcome:
``ApiResponse.attempts``, or ``attempts`` and ``sent`` of the `FullstoryError` raised.
`InFlight` is the one registry of what the client's ``aclose()`` ends.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import weakref
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import attrs
import tenacity

from fullstory_async import _budget
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
from fullstory_async._hooks import note_attempt_end, note_attempt_start, note_retry_wait
from fullstory_async._messages import ApiRequest, ApiResponse
from fullstory_async._pipeline import Handler
from fullstory_async._validation import validator

if TYPE_CHECKING:
    from fullstory_async._budget import Budget

logger = logging.getLogger("fullstory_async")


@attrs.frozen
class RetryPolicy:
    """How calls are retried. ``RetryPolicy(max_attempts=1)`` turns retries off.

    ``RetryPolicy(wait=False)`` is the switch for tests: nothing sleeps, but the waits it
    skips still count against ``operation_timeout``, so the attempt and time bounds behave
    as they would in real time.
    """

    max_attempts: int = attrs.field(default=4, validator=validator("RetryPolicy.", minimum=1, integer=True))
    """Attempts in total, the first one included."""

    operation_timeout: float | None = attrs.field(
        default=60.0, validator=validator("RetryPolicy.", above=True, allow_none=True)
    )
    """Seconds for the whole operation: every attempt and every wait (retry, governor, pacing).

    More than 0 (at 0 no call could start), or ``None``: no limit. The operation's *deadline*
    is the instant it ends (``operation_timeout`` seconds from its start, ``ApiRequest.deadline``):
    no wait is started that would end past it, and each attempt's timeout is cut to what is
    left. A bulk item (`ensure_endpoint`, one `provision`/`apply` item) has one such budget for
    all of its calls, counted from when it is admitted.
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


def retrying(policy: RetryPolicy) -> tenacity.AsyncRetrying:
    """``policy`` in tenacity's terms: the strategies `RetryMiddleware` consults after a failed attempt.

    The state they read is the call's `tenacity.RetryCallState`: ``args`` holds the request of
    the latest attempt (its ``deadline`` included), ``outcome`` its error.
    """

    def error(state: tenacity.RetryCallState) -> BaseException:
        assert state.outcome is not None
        exc = state.outcome.exception()
        assert exc is not None
        return exc

    def should_retry(state: tenacity.RetryCallState) -> bool:
        return policy.should_retry(state.args[0], error(state))

    def wait(state: tenacity.RetryCallState) -> float:
        exc = error(state)
        if isinstance(exc, RateLimitError) and exc.retry_after is not None:
            return exc.retry_after
        return policy.backoff(state.attempt_number)

    return tenacity.AsyncRetrying(
        retry=should_retry, wait=wait, stop=tenacity.stop_after_attempt(policy.max_attempts) | _PastDeadline()
    )


class _PastDeadline(tenacity.stop.stop_base):
    """Stop when the next wait would end past the deadline of the latest attempt's request."""

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        deadline: float | None = retry_state.args[0].deadline
        return deadline is not None and time.monotonic() + retry_state.upcoming_sleep > deadline


class InFlight:
    """The one registry of what a client's ``aclose()`` ends: its calls, from the retry layer down, and its sleeps.

    Every call is tracked from when it enters the retry layer until it ends, wherever it
    waits (a bulk item's admission, a retry wait, the rate governor, the pool, the
    server's answer): `close` cancels it, and the retry layer turns that cancellation into
    `ClientClosedError`. A `with_options` copy has its own registry, a child of its
    parent's: closing the copy ends its own calls; closing the parent ends the calls of both.
    """

    def __init__(self, parent: InFlight | None = None) -> None:
        self._parent = parent
        self._closed = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ended: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()  # the tasks `close` cancelled

    @property
    def closed(self) -> bool:
        """Whether `close` was called on this registry or on its parent."""
        return self._closed or (self._parent is not None and self._parent.closed)

    def enter(self) -> asyncio.Task[Any]:
        """Track the running task until `leave`; raise `ClientClosedError` if closed."""
        if self.closed:
            raise unsent(ClientClosedError("the client is closed; create a new Client"))
        task = asyncio.current_task()
        assert task is not None
        registry: InFlight | None = self
        while registry is not None:
            registry._tasks.add(task)
            registry = registry._parent
        return task

    def leave(self, task: asyncio.Task[Any]) -> None:
        """Stop tracking ``task``."""
        registry: InFlight | None = self
        while registry is not None:
            registry._tasks.discard(task)
            registry = registry._parent

    def cancelled_by_close(self, task: asyncio.Task[Any]) -> bool:
        """In an ``except CancelledError``: whether it was `close`'s alone (then raise `ClientClosedError`).

        A cancellation of the caller's own (before the close, or after it) stays a `CancelledError`.
        """
        registry: InFlight | None = self
        while registry is not None:
            if task in registry._ended:
                return task.uncancel() == 0
            registry = registry._parent
        return False

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds``; raise `ClientClosedError` if the client is (or gets) closed."""
        task = self.enter()
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            if self.cancelled_by_close(task):
                error = ClientClosedError("the client was closed while the call waited")
                error.attempts = _budget.attempts_so_far()  # a bulk item's back-off: the item's attempts
                raise error from None
            raise
        finally:
            self.leave(task)

    def close(self) -> None:
        """End every tracked call and sleep at once with `ClientClosedError`; idempotent."""
        self._closed = True
        me = asyncio.current_task()  # a call that closes its own client ends normally
        for task in self._tasks:
            if task is not me and not task.cancelling():  # not one its caller is cancelling already
                task.cancel()
                self._ended.add(task)
        self._tasks.clear()


@attrs.define
class CallRecord:
    """What one call did, kept by the retry layer as each attempt ends and set once on its outcome."""

    attempts: int = 0
    """Attempts sent (one the SDK ended before sending is not one)."""
    ambiguous: bool = False
    """Whether a sent attempt failed without a clear answer (a reset, a timeout, a 5xx, a garbled 2xx)."""
    request_id: str | None = None
    """The server's request id of the latest answer that carried one."""
    held: bool = False
    """Whether the attempt in progress was cancelled while the rate governor held it (`note_held`)."""

    @property
    def sent(self) -> bool:
        """Whether any attempt was sent: then the server may have applied the call."""
        return self.attempts > 0

    def begin(self) -> None:
        """Count an attempt as it starts."""
        self.attempts += 1
        self.held = False

    def end(self, response: ApiResponse | None, error: BaseException | None = None) -> None:
        """Record how the attempt ended: uncount it if nothing was sent; note an ambiguous failure."""
        if self.held or (isinstance(error, FullstoryError) and not error.sent):
            self.attempts -= 1  # ended before it was sent: not an attempt
        elif isinstance(error, FullstoryError) and not isinstance(error, RateLimitError):
            self.ambiguous = True
        self.request_id = (response.request_id if response else getattr(error, "request_id", None)) or self.request_id


_record: ContextVar[CallRecord | None] = ContextVar("fullstory_async_call_record", default=None)


def note_held() -> None:
    """Report that the attempt in progress was cancelled while the rate governor held it: nothing was sent.

    The rate governor calls this (its one report to the retry layer); the retry layer then
    counts no attempt for it, and a `ClientClosedError` it becomes says ``sent=False``.
    """
    record = _record.get()
    if record is not None:
        record.held = True


class RetryMiddleware:
    """Middleware that runs the rest of the chain (one attempt) under a `RetryPolicy`.

    For each call, top to bottom: track it in ``in_flight`` (so ``aclose()`` ends it),
    wait for its budget's admission (a bulk item's first request), set its deadline on the
    request for every layer below, run the attempts, and set what the `CallRecord` says on
    the outcome once.
    """

    def __init__(self, policy: RetryPolicy, in_flight: InFlight | None = None) -> None:
        self.policy = policy
        self.in_flight = in_flight or InFlight()
        self._retrying = retrying(policy)

    async def __call__(self, request: ApiRequest, call_next: Handler) -> ApiResponse:
        budget = _budget.current()
        record = CallRecord()
        task = self.in_flight.enter()
        token = _record.set(record)
        try:
            if budget is not None and budget.admit is not None:
                await budget.admitted(request.operation or request.method)  # a bulk item's first request
            attempt = self._with_deadline(request, budget)
            state: tenacity.RetryCallState | None = None  # tenacity's record of the retries, from the first failure
            while True:
                try:
                    response = await self._attempt(attempt, call_next, record, task)
                except FullstoryError as exc:
                    state = self._failed(state, attempt, exc)
                    if not self._retrying.retry(state):
                        raise
                    state.upcoming_sleep = self._retrying.wait(state)
                    if self._retrying.stop(state):
                        raise  # out of attempts, or the wait would end past the deadline
                    self._log_retry(state, record, exc)
                    attempt = await self._wait(state)
                    continue
                self._settle(record, budget)
                return response.with_outcome(attempts=record.attempts)
        except FullstoryError as exc:
            exc.attempts, exc.sent = self._settle(record, budget), record.sent
            raise
        except asyncio.CancelledError as exc:  # between attempts: in a retry wait or the budget's admission
            error = self._closed_error(exc, task, record)
            if not isinstance(error, ClientClosedError):
                raise
            error.attempts, error.sent = self._settle(record, budget), record.sent
            raise error from None
        finally:
            _record.reset(token)
            self.in_flight.leave(task)

    async def _attempt(
        self, request: ApiRequest, call_next: Handler, record: CallRecord, task: asyncio.Task[Any]
    ) -> ApiResponse:
        """Send one attempt down the chain; record how it ended (a close becomes its `ClientClosedError`)."""
        record.begin()
        note_attempt_start(request)
        try:
            response = await call_next(request)
        except BaseException as exc:
            error = self._closed_error(exc, task, record) if isinstance(exc, asyncio.CancelledError) else exc
            note_attempt_end(None, error)
            if isinstance(error, NotFoundError) and record.ambiguous and request.method == "DELETE":
                return self._already_deleted(request, record, error)
            record.end(None, error)
            if error is exc:
                raise
            raise error from None
        note_attempt_end(response, None)
        record.end(response)
        return response

    def _failed(
        self, state: tenacity.RetryCallState | None, request: ApiRequest, error: FullstoryError
    ) -> tenacity.RetryCallState:
        """Record a failed attempt of ``request`` on the call's `RetryCallState`, made at the first failure."""
        if state is None:
            state = tenacity.RetryCallState(self._retrying, None, (request,), {})
        else:
            state.prepare_for_next_attempt()
            state.args = (request,)
        state.set_exception((type(error), error, error.__traceback__))
        return state

    async def _wait(self, state: tenacity.RetryCallState) -> ApiRequest:
        """Wait ``state.upcoming_sleep``; return the next attempt's request (``wait=False``: deadline earlier)."""
        seconds, request = state.upcoming_sleep, state.args[0]
        assert isinstance(request, ApiRequest)
        state.idle_for += seconds  # as tenacity's own iteration keeps it
        if self.policy.wait:
            await asyncio.sleep(seconds)  # the call is tracked: aclose() ends this wait
            return request
        return request if request.deadline is None else request.with_deadline(request.deadline - seconds)

    def _closed_error(
        self, cancelled: asyncio.CancelledError, task: asyncio.Task[Any], record: CallRecord
    ) -> BaseException:
        """In an ``except CancelledError``: `ClientClosedError` if ``aclose()`` cancelled the call, else ``cancelled``.

        The error of an attempt the rate governor held (`note_held`) says nothing was sent.
        """
        if not self.in_flight.cancelled_by_close(task):
            return cancelled
        error = ClientClosedError("the client was closed while the call was waiting or in flight")
        return unsent(error) if record.held else error

    @staticmethod
    def _settle(record: CallRecord, budget: Budget | None) -> int:
        """Add the call's attempts to its budget; return the attempts its error reports (the operation's)."""
        if budget is None:
            return record.attempts
        budget.attempts += record.attempts
        return budget.attempts

    def _with_deadline(self, request: ApiRequest, budget: Budget | None) -> ApiRequest:
        """Return ``request`` with the call's deadline: its budget's, else ``operation_timeout`` from now.

        The caller's own ``request.deadline`` wins if it is earlier.
        """
        now = time.monotonic()
        if budget is not None:
            deadline = budget.deadline
        else:
            timeout = self.policy.operation_timeout
            deadline = None if timeout is None else now + timeout
        if request.deadline is not None and (deadline is None or request.deadline < deadline):
            deadline = request.deadline
        if deadline is not None and deadline <= now:
            # An operation's later call (a bulk item's lookup after a timed-out create) with nothing left.
            raise unsent(
                APITimeoutError(
                    f"the operation's deadline passed before this call ({request.method} {request.path})",
                    method=request.method,
                    path=request.path,
                )
            )
        return request.with_deadline(deadline)

    def _log_retry(self, state: tenacity.RetryCallState, record: CallRecord, error: FullstoryError) -> None:
        request, number, wait = state.args[0], state.attempt_number, state.upcoming_sleep
        note_retry_wait(wait)
        status = getattr(error, "status", None)
        logger.info(
            "retrying %s %s: attempt %d of %d failed with %s; waiting %.3fs",
            request.method,
            request.path,
            number,
            self.policy.max_attempts,
            status if status is not None else type(error).__name__,
            wait,
            extra={
                "fullstory_method": request.method,
                "fullstory_path": request.path,
                "fullstory_attempt": number,
                "fullstory_wait": wait,
                "fullstory_status": status,
                "fullstory_request_id": record.request_id,
            },
        )

    def _already_deleted(self, request: ApiRequest, record: CallRecord, error: NotFoundError) -> ApiResponse:
        """Succeed: a DELETE found 404 after an ambiguous attempt, so that attempt deleted it."""
        logger.info(
            "%s %s: 404 after an ambiguous attempt; it was deleted by that attempt (attempt %d)",
            request.method,
            request.path,
            record.attempts,
            extra={"fullstory_method": request.method, "fullstory_path": request.path, "fullstory_status": 404},
        )
        return ApiResponse(204, error.headers, b"", None)
