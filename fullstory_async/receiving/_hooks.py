"""Receiving hooks: observe every delivery and every handler run (metrics, tracing) through one callback interface.

The receiving side's counterpart of the client's `Hooks`, in the same shape::

    class Printer(ReceivingHooks):
        def on_delivery_end(self, delivery: Delivery, result: DeliveryResult) -> None:
            print(result.status, result.outcome, result.reason, result.commit_duration)

    WebhookReceiver(secrets, inbox=inbox, hooks=[Printer()])
    InboxWorker(inbox, handler, hooks=[Printer()])

Four events:

* ``on_delivery_start(delivery)`` and ``on_delivery_end(delivery, result)``: one delivery
  (one ``POST``) through a `WebhookReceiver`; `DeliveryResult` has the status answered, the
  outcome (accepted, duplicate, refused and why) and how long verifying and committing took.
  A tracing hook may set `Delivery.traceparent` in ``on_delivery_start``: it is stored with
  the event, and the handler run that processes it carries it (`HandlerRun.delivery_traceparent`).
* ``on_run_start(run)`` and ``on_run_end(run, result)``: one handler run of an `InboxWorker`
  on one claimed event; `RunResult` has how the handler ended and what the inbox recorded.

As with the client's hooks, callbacks are synchronous and run on the event loop (keep them
quick); one that raises is logged (``WARNING`` on the ``fullstory_async`` logger) and ignored;
with no hooks nothing observes anything.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from typing import Literal

import attrs

from fullstory_async._hooks import _emit

logger = logging.getLogger("fullstory_async")

DeliveryOutcome = Literal["accepted", "duplicate", "refused"]
RunOutcome = Literal["ok", "error", "timeout", "cancelled", "not_run"]

REFUSAL_REASONS = (
    "missing_header",
    "malformed_header",
    "mismatch",
    "unknown_org",
    "stale_timestamp",
    "malformed_body",
    "body_too_large",
    "not_stored",
    "closing",
    "callback_failed",
    "aborted",
)
"""Every `DeliveryResult.reason`: the `VerificationFailure` values, then the receiver's own."""

RUN_OUTCOMES: tuple[RunOutcome, ...] = ("ok", "error", "timeout", "cancelled", "not_run")
"""Every `RunResult.outcome`."""


@attrs.define(eq=False)
class Delivery:
    """One delivery; the same object in both events (hashable by identity, to key your own state)."""

    started: float
    """``time.monotonic()`` when the receiver began reading it."""

    traceparent: str | None = None
    """A W3C ``traceparent`` naming the delivery's span, set by a tracing hook in ``on_delivery_start``;
    stored with the event so the handler run's span can link to it."""


@attrs.frozen
class DeliveryResult:
    """How a delivery ended."""

    status: int
    """The HTTP status answered (0 when the request was abandoned before an answer)."""

    outcome: DeliveryOutcome
    """``"accepted"`` (verified and committed, or the callback returned), ``"duplicate"`` (a repeat
    of a stored delivery, acknowledged without storing it again) or ``"refused"``."""

    reason: str | None
    """Why it was refused (one of `REFUSAL_REASONS`), ``None`` otherwise."""

    verify_duration: float
    """Seconds from the start to the end of the checks (signature, envelope)."""

    commit_duration: float | None
    """Seconds the inbox took to commit it (or find it stored), ``None`` when it was not stored."""

    duration: float
    """Seconds from the start to the answer."""


@attrs.frozen(eq=False)
class HandlerRun:
    """One run of a worker's handler on one claimed event; the same object in both events."""

    key: str
    """The event's delivery key."""

    event_name: str | None
    """The event's ``eventName``; ``None`` when the stored body is not an event."""

    attempt: int
    """Which attempt this is (1 for the first run)."""

    started: float
    """``time.monotonic()`` when the run began."""

    delivery_traceparent: str | None
    """The `Delivery.traceparent` stored with the event, if a tracing hook set one."""


@attrs.frozen
class RunResult:
    """How a handler run ended."""

    outcome: RunOutcome
    """``"ok"`` (returned), ``"error"`` (raised), ``"timeout"`` (outlived ``handler_timeout``),
    ``"cancelled"`` (the worker stopped mid-run) or ``"not_run"`` (the handler was not called: the
    stored body is not an event, no attempt was left after a run that never finished, or the
    event's previous run is still stuck on one of the worker's threads)."""

    recorded: Literal["done", "retry", "dead"] | None
    """What the inbox recorded; ``None`` when nothing was (this worker's claim had ended, or the
    worker stopped)."""

    error: str | None
    """Why the run failed, as stored in ``last_error``."""

    duration: float
    """Seconds the run took."""


class ReceivingHooks:
    """Callbacks on deliveries and handler runs. Subclass and override what you need; every method does nothing."""

    def on_delivery_start(self, delivery: Delivery) -> None:
        """Observe the start of a delivery (a tracing hook may set ``delivery.traceparent``)."""

    def on_delivery_end(self, delivery: Delivery, result: DeliveryResult) -> None:
        """Observe how a delivery ended."""

    def on_run_start(self, run: HandlerRun) -> None:
        """Observe the start of a handler run."""

    def on_run_end(self, run: HandlerRun, result: RunResult) -> None:
        """Observe how a handler run ended."""


class _Observed:
    """What the receiver notes about the delivery in progress (`note_refusal`, `timed_commit`)."""

    __slots__ = ("commit_duration", "delivery", "duplicate", "reason", "verified")

    def __init__(self, delivery: Delivery) -> None:
        self.delivery = delivery
        self.reason: str | None = None
        self.verified: float | None = None
        self.commit_duration: float | None = None
        self.duplicate = False


_current: ContextVar[_Observed | None] = ContextVar("fullstory_async_delivery", default=None)


def note_refusal(reason: str) -> None:
    """Record why the delivery in progress is refused (the receiver calls this)."""
    observed = _current.get()
    if observed is not None:
        observed.reason = reason


def note_verified() -> None:
    """Record that the delivery in progress passed its checks (the receiver calls this)."""
    observed = _current.get()
    if observed is not None:
        observed.verified = time.monotonic()


_TRACEPARENT = re.compile(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")
"""A W3C ``traceparent`` (version, trace id, parent id, flags): 55 characters, the most a delivery stores."""


def _traceparent(value: object) -> str | None:
    """Return ``value`` if it is a W3C ``traceparent``, else ``None``: a hook's mistake never fails a commit."""
    if value is None or (isinstance(value, str) and _TRACEPARENT.fullmatch(value)):
        return value
    shown = f"a {len(value)}-character string" if isinstance(value, str) else type(value).__name__
    logger.warning("Delivery.traceparent set by a hook is not a W3C traceparent (%s); not stored", shown)
    return None


async def timed_commit(put: Callable[[str | None], Awaitable[bool]]) -> bool:
    """Run ``put(traceparent)`` for the delivery in progress, timing it; return what it returned."""
    observed = _current.get()
    if observed is None:
        return await put(None)
    traceparent = _traceparent(observed.delivery.traceparent)
    start = time.monotonic()
    stored = await put(traceparent)
    observed.commit_duration = time.monotonic() - start
    observed.duplicate = not stored
    return stored


async def observe_delivery(hooks: Sequence[ReceivingHooks], accept: Callable[[], Awaitable[int]]) -> int:
    """Run ``accept()`` (which returns the status) between ``on_delivery_start`` and ``on_delivery_end``."""
    observed = _Observed(Delivery(time.monotonic()))
    token = _current.set(observed)
    _emit(hooks, "on_delivery_start", observed.delivery)
    status = 0
    try:
        status = await accept()
        return status
    finally:
        _current.reset(token)
        end = time.monotonic()
        started = observed.delivery.started
        reason = observed.reason
        if 200 <= status < 300:
            outcome: DeliveryOutcome = "duplicate" if observed.duplicate else "accepted"
        else:
            outcome, reason = "refused", reason or ("closing" if status == 503 else "aborted")
        verified = observed.verified if observed.verified is not None else end
        result = DeliveryResult(status, outcome, reason, verified - started, observed.commit_duration, end - started)
        _emit(hooks, "on_delivery_end", observed.delivery, result)
