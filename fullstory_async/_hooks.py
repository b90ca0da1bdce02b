"""Hooks: observe every call and every attempt (metrics, tracing, audit) through one callback interface.

::

    class Printer(Hooks):
        def on_attempt(self, call: Call, attempt: Attempt) -> None:
            print(call.request.operation, attempt.number, attempt.status, attempt.retry_wait)

    Client(hooks=[Printer()])

Three events, in this order for each call:

* ``on_call_start(call)``: a call (a typed method, one page of a listing, or `Client.send`)
  begins. `Call.request` is a `RequestView`: no ``Authorization``, no body.
* ``on_attempt(call, attempt)``: one HTTP attempt ended, reported by the retry layer as soon
  as it decided what follows: `Attempt` has the attempt's number, its outcome
  (response or typed error), the seconds it waited in the rate governor, and the wait before
  the next attempt (``None`` when none follows).
* ``on_call_end(call, result)``: the call ended; `CallResult` has the response or the error
  the caller gets and the number of attempts.

Callbacks are synchronous and run on the event loop, so they must be quick. An exception
raised in one is logged (``WARNING`` on the ``fullstory_async`` logger) and ignored:
observing never breaks a call. With no hooks, the client's chain has no observer in it at
all, so unused hooks cost nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from types import MappingProxyType
from urllib.parse import urlencode

import attrs

from fullstory_async._messages import _SENSITIVE_HEADERS, ApiRequest, ApiResponse
from fullstory_async._pipeline import Handler

logger = logging.getLogger("fullstory_async")


@attrs.frozen
class RequestView:
    """A request as hooks see it: no ``Authorization``, ``Proxy-Authorization`` or ``Cookie`` header, no body."""

    method: str
    """HTTP method, upper case."""

    url: str
    """Full URL: base URL, path and query."""

    operation: str
    """The SDK operation (``"create_endpoint"``); empty for a raw request."""

    headers: Mapping[str, str]
    """The request's headers, less the sensitive ones."""

    body_size: int
    """Bytes of the request body (0 without one)."""


def view(base_url: str, request: ApiRequest) -> RequestView:
    """Return the `RequestView` of ``request`` sent to ``base_url``."""
    query = urlencode(request.params)
    headers = {k: v for k, v in request.headers.items() if k.lower() not in _SENSITIVE_HEADERS}
    return RequestView(
        request.method,
        base_url + request.path + (f"?{query}" if query else ""),
        request.operation,
        MappingProxyType(headers),
        len(request.body) if request.body is not None else 0,
    )


@attrs.frozen(eq=False)
class Call:
    """One call; the same object in every event of the call (hashable by identity, to key your own state)."""

    request: RequestView
    """The request as the caller made it."""

    started: float
    """``time.monotonic()`` when the call began."""


@attrs.frozen
class Attempt:
    """One HTTP attempt of a call, as the retry layer saw it end."""

    number: int
    """1 for the first attempt, 2 for the first retry..."""

    request: RequestView
    """What this attempt sent."""

    response: ApiResponse | None
    """The 2xx response, or ``None`` when the attempt failed."""

    error: BaseException | None
    """The typed error (`RateLimitError`, `ServerError`, `APIConnectionError`...), or ``None``."""

    started: float
    """``time.monotonic()`` when the attempt began (before any governor wait)."""

    duration: float
    """Seconds the attempt took, its governor wait included."""

    governor_wait: float
    """Seconds the attempt waited in the rate governor before it was sent (a pause after a 429, or pacing)."""

    retry_wait: float | None
    """Seconds the retry layer waits before the next attempt; ``None`` when no attempt follows.

    With ``RetryPolicy(wait=False)`` this is the wait that was skipped.
    """

    @property
    def sent(self) -> bool:
        """False when the SDK ended the attempt before sending it (the rate governor: a deadline, a close)."""
        return getattr(self.error, "sent", True) is not False

    @property
    def status(self) -> int | None:
        """The HTTP status of the response or of the error, ``None`` when no response came."""
        if self.response is not None:
            return self.response.status
        return getattr(self.error, "status", None)


@attrs.frozen
class CallResult:
    """How a call ended."""

    response: ApiResponse | None
    """The 2xx response the caller gets, or ``None``."""

    error: BaseException | None
    """The error the caller gets (``asyncio.CancelledError`` when cancelled), or ``None``."""

    attempts: int
    """HTTP attempts made (0 when no request was sent)."""

    duration: float
    """Seconds from the start of the call to its end."""


class Hooks:
    """Callbacks on calls and attempts. Subclass and override what you need; every method here does nothing."""

    def on_call_start(self, call: Call) -> None:
        """Observe the start of a call."""

    def on_attempt(self, call: Call, attempt: Attempt) -> None:
        """Observe an attempt that ended, once the retry layer decided what follows (``attempt.retry_wait``)."""

    def on_call_end(self, call: Call, result: CallResult) -> None:
        """Observe the end of a call: ``result`` holds what the caller gets."""


def _emit(hooks: Sequence[object], event: str, *args: object) -> None:
    """Call ``event`` on every hook (client `Hooks` and `ReceivingHooks` alike); log and ignore what raises."""
    for hook in hooks:
        try:
            getattr(hook, event)(*args)
        except Exception:
            logger.warning("hook %s.%s raised; ignored", type(hook).__name__, event, exc_info=True)


class _Running:
    """The attempt in progress or waiting for the retry layer's decision."""

    __slots__ = ("duration", "error", "governor_wait", "number", "request", "response", "started")

    def __init__(self, number: int, request: RequestView) -> None:
        self.number = number
        self.request = request
        self.started = time.monotonic()
        self.duration: float | None = None
        self.governor_wait = 0.0
        self.response: ApiResponse | None = None
        self.error: BaseException | None = None


class _CallState:
    __slots__ = ("attempts", "base_url", "call", "hooks", "running")

    def __init__(self, call: Call, hooks: Sequence[Hooks], base_url: str) -> None:
        self.call = call
        self.hooks = hooks
        self.base_url = base_url
        self.attempts = 0
        self.running: _Running | None = None

    def report(self, wait: float | None) -> None:
        """Emit the ended attempt, if one waits to be reported, with the wait that follows it."""
        done, self.running = self.running, None
        if done is None or done.duration is None:
            return
        attempt = Attempt(
            done.number,
            done.request,
            done.response,
            done.error,
            done.started,
            done.duration,
            done.governor_wait,
            wait,
        )
        _emit(self.hooks, "on_attempt", self.call, attempt)


_current: ContextVar[_CallState | None] = ContextVar("fullstory_async_call", default=None)


def note_attempt_start(request: ApiRequest) -> None:
    """Start timing an attempt of the observed call (the retry layer calls this as it sends one)."""
    state = _current.get()
    if state is not None:
        state.report(None)  # an earlier attempt the retry layer gave no wait for
        state.attempts += 1
        state.running = _Running(state.attempts, view(state.base_url, request))


def note_attempt_end(response: ApiResponse | None, error: BaseException | None) -> None:
    """Record how the attempt in progress ended (the retry layer calls this); it is reported with the wait after it."""
    state = _current.get()
    if state is not None and state.running is not None:
        running = state.running
        running.response, running.error = response, error
        running.duration = time.monotonic() - running.started


def note_retry_wait(seconds: float) -> None:
    """Report the attempt that just failed, with the wait before the next one (the retry layer calls this)."""
    state = _current.get()
    if state is not None:
        state.report(seconds)


def note_governor_wait(seconds: float) -> None:
    """Add ``seconds`` to the governor wait of the attempt in progress (the rate governor calls this)."""
    state = _current.get()
    if state is not None and state.running is not None:
        state.running.governor_wait += seconds


class CallObserver:
    """Middleware, outermost: emits ``on_call_start`` and ``on_call_end`` and keeps the call's state."""

    def __init__(self, hooks: Sequence[Hooks], base_url: str) -> None:
        self.hooks = tuple(hooks)
        self.base_url = base_url

    async def __call__(self, request: ApiRequest, call_next: Handler) -> ApiResponse:
        call = Call(view(self.base_url, request), time.monotonic())
        state = _CallState(call, self.hooks, self.base_url)
        token = _current.set(state)
        _emit(self.hooks, "on_call_start", call)
        response: ApiResponse | None = None
        error: BaseException | None = None
        try:
            response = await call_next(request)
            return response
        except BaseException as exc:
            error = exc
            raise
        finally:
            _current.reset(token)
            state.report(None)
            attempts = response.attempts if response is not None else getattr(error, "attempts", state.attempts)
            result = CallResult(response, error, attempts, time.monotonic() - call.started)
            _emit(self.hooks, "on_call_end", call, result)
