"""`InboxWorker`: process the events of an inbox at least once, with retries and dead letters.

Each claimed event is handed to the handler as a `WebhookEvent`. A handler that returns
completes the event (``done``); one that raises or outlives ``handler_timeout`` is
retried after ``min(max_delay, base_delay * 2 ** (attempt - 1))`` seconds, until
``max_attempts`` attempts, when the event becomes a dead letter (``dead``; ``inbox
requeue --dead`` brings it back). A claim lasts ``lease`` seconds (longer than
``handler_timeout``): if this process dies mid-handler, another worker takes the event
again after that, and an event whose last allowed attempt never finished (a handler that
kills the process) is made dead by that claim instead of handed out again. An outcome is
recorded only while this worker's claim still holds the event (otherwise it is dropped,
logged at INFO). A ``CancelledError`` raised by the handler itself (not by stopping the
worker) is an ordinary failure. So a handler may see an event more than once: make it
idempotent (key your side effects by `InboxRecord.key`).

An event's failures are its own: an attempt is counted by the claim that hands the event
to the handler (so a run whose process died still counts), and a claimed event this
worker cannot run (every handler thread stuck, see `HandlerThreads`) is given back
uncounted (`Inbox.release`). A plain-function handler runs on the worker's own threads,
never asyncio's shared default executor, so a hung handler costs its own event a timeout
and nothing else: an event whose previous run is still stuck on a thread here is not run
again by this worker (that attempt fails at once, `STILL_RUNNING`), so an event on which
the handler hangs every time holds one thread and ends dead, not every thread in turn.

A handler may also raise one of the verdicts of `_verdicts`: `RetryLaterError` (wait at least
its ``after``), `DeadLetterError` (dead now) or `ServiceUnavailableError` (the event goes back
uncounted and claiming pauses for the backoff, then one event at a time probes: a circuit breaker).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import math
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from fullstory_async._exceptions import InvalidArgumentError
from fullstory_async._hooks import _emit
from fullstory_async.receiving._envelope import parse_event
from fullstory_async.receiving._errors import SignatureVerificationError
from fullstory_async.receiving._events import WebhookEvent
from fullstory_async.receiving._hooks import HandlerRun, ReceivingHooks, RunOutcome, RunResult
from fullstory_async.receiving._inbox import Inbox, InboxAttempt, InboxError, InboxRecord, Outcome, scrub
from fullstory_async.receiving._receiver import is_coroutine_function, positive
from fullstory_async.receiving._threads import HandlerThreads, NoIdleThread
from fullstory_async.receiving._verdicts import DeadLetterError, RetryLaterError, ServiceUnavailableError

logger = logging.getLogger("fullstory_async.receiving")

EventHandler = Callable[[WebhookEvent], object]
"""A coroutine function, or a plain function (run on one of the worker's own threads), taking the event.

A handler that returns a `str` on success has it kept, scrubbed, as the run's `InboxAttempt.detail`
(`ForwardHandler` returns the service's HTTP status); any other return value is ignored."""

Recorded = Literal["done", "retry", "dead"] | None

STILL_RUNNING = "not run: its previous run is still running on this worker (a call that outlived handler_timeout)"
"""The error of an attempt not run because the event's previous run, abandoned at its timeout, has not returned."""


class InboxWorker:
    """Takes events from an inbox and runs ``handler`` on each, at least once.

    ::

        worker = InboxWorker(inbox, handle_event, concurrency=4)
        await worker.run()              # until worker.stop() (or cancellation)
        await worker.run_until_idle()   # or: everything due now, then return (tests, cron jobs)

    Args:
        inbox: the inbox to process (`open_inbox`); several workers, in several processes,
            may share it.
        handler: called with each `WebhookEvent`; a plain function runs on the worker's own
            threads, ``concurrency`` of them (a timed-out call cannot be interrupted: it runs to its
            end, unawaited, on a thread of its own while a new thread takes its place, at most
            ``concurrency`` times at once; past that the worker is not `healthy` and claims nothing).
            A `str` it returns is kept in the run's history (`InboxAttempt.detail`).
        concurrency: events handled at once by this worker.
        max_attempts: attempts before an event becomes a dead letter.
        handler_timeout: seconds one attempt may take, counted from when the handler starts (for a
            plain function, when its thread takes the call).
        base_delay: the first retry's delay in seconds, doubled on each further attempt.
        max_delay: the longest retry delay.
        lease: seconds a claim lasts (default ``handler_timeout + 30``); must be longer than
            ``handler_timeout``.
        poll_interval: seconds between looks at an idle inbox for events stored by other
            processes and for retries falling due (an event stored through this process
            wakes the worker at once).
        drain_timeout: on `stop`, seconds the handlers in progress may finish.
        hooks: `ReceivingHooks` observing each handler run (`ReceivingMetrics`, the ``otel`` extra's tracing).

    """

    def __init__(
        self,
        inbox: Inbox,
        handler: EventHandler,
        *,
        concurrency: int = 1,
        max_attempts: int = 5,
        handler_timeout: float = 30.0,
        base_delay: float = 1.0,
        max_delay: float = 300.0,
        lease: float | None = None,
        poll_interval: float = 1.0,
        drain_timeout: float = 30.0,
        hooks: Sequence[ReceivingHooks] = (),
    ) -> None:
        if not callable(handler):
            raise InvalidArgumentError("handler", f"must be callable, got {type(handler).__name__}")
        positive("concurrency", concurrency, integer=True)
        positive("max_attempts", max_attempts, integer=True)
        for name, value in (("handler_timeout", handler_timeout), ("poll_interval", poll_interval)):
            positive(name, value)
        for name, value in (("base_delay", base_delay), ("max_delay", max_delay), ("drain_timeout", drain_timeout)):
            if value != 0:
                positive(name, value)
        self.inbox = inbox
        self._handler = handler
        self._handler_is_async = is_coroutine_function(handler)
        self.concurrency = concurrency
        self.max_attempts = max_attempts
        self.handler_timeout = handler_timeout
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.lease = handler_timeout + 30.0 if lease is None else lease
        positive("lease", self.lease)
        if self.lease <= handler_timeout:
            raise InvalidArgumentError(
                "lease",
                f"must be longer than handler_timeout ({handler_timeout:g} s), got {self.lease!r}: "
                "an attempt still running when its lease ends is handed to another worker",
            )
        self.poll_interval = poll_interval
        self.drain_timeout = drain_timeout
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self.handled = 0
        """Events completed by this worker."""
        self._hooks = tuple(hooks)
        self._threads = HandlerThreads(concurrency, name="fullstory-inbox-handler")
        self._unhealthy_logged = False
        self._outage = 0  # the open circuit breaker's backoff step: 1 when it opened, one more per failed probe
        self._probes: set[str] = set()  # keys claimed while the breaker was half open
        self._claims_paused_until = -math.inf  # on the inbox's clock

    def __repr__(self) -> str:
        return f"<InboxWorker inbox={self.inbox!r} in_progress={len(self._tasks)} handled={self.handled}>"

    def retry_delay(self, attempt: int) -> float:
        """Seconds before the next attempt after failed attempt number ``attempt`` (1-based)."""
        return float(min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))

    @property
    def healthy(self) -> bool:
        """False while more of a plain-function handler's threads are stuck than can be replaced (``concurrency``).

        An unhealthy worker claims nothing (it would time out events on threads that never ran
        them); it is healthy again once enough hung handler calls returned.
        """
        return self._threads.healthy

    @property
    def claims_paused(self) -> float:
        """Seconds before this worker claims again after a `ServiceUnavailableError` (0 when it claims)."""
        return max(0.0, self._claims_paused_until - self.inbox.clock())

    async def _fill(self) -> int:
        """Claim and start as many events as there are free slots; return how many started."""
        if not self.healthy or self.claims_paused:
            return 0
        if self._unhealthy_logged:
            self._unhealthy_logged = False
            logger.warning("worker healthy again: its stuck handler threads returned; claiming events again")
        free = self.concurrency - len(self._tasks)
        probing = self._outage > 0  # decided before the claim: the breaker may open while it runs
        if probing:  # the breaker is half open: one event at a time probes the destination
            free = min(free, 1 - len(self._tasks))
        if free <= 0:
            return 0
        records = await self.inbox.claim(free, lease=self.lease, max_attempts=self.max_attempts)
        for record in records:
            if record.status == "dead":  # its last attempt never finished: the claim buried it
                logger.error("event %s dead after %d attempts: %s", record.key[:12], record.attempts, record.last_error)
                run = self._run(record, None)
                self._emit("on_run_end", run, RunResult("not_run", "dead", record.last_error, 0.0))
                continue
            if probing:
                self._probes.add(record.key)
            task = asyncio.get_running_loop().create_task(
                self._process(record), name=f"fullstory-inbox:{record.key[:12]}"
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            task.add_done_callback(functools.partial(self._probe_ended, record.key))
        return len(records)

    def _probe_ended(self, key: str, _task: asyncio.Task[None]) -> None:
        self._probes.discard(key)

    async def run_until_idle(self) -> int:
        """Handle every event due now (and retries that fall due meanwhile); return how many completed."""
        before = self.handled
        try:
            while await self._fill() or self._tasks:
                if self._tasks:
                    await asyncio.wait(list(self._tasks), return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._threads.close()
        return self.handled - before

    async def run(self) -> None:
        """Process events until `stop` is called (even before `run` started); then drain (see `stop`)."""
        try:
            while not self._stopping.is_set():
                self.inbox.arrival.clear()  # before claiming: an event stored after the claim sets it again
                try:
                    started = await self._fill()
                except InboxError as exc:  # the database is away: try again after the poll interval
                    logger.warning("cannot claim events, retrying in %g s: %s", self.poll_interval, exc)
                    started = 0
                waiters: set[asyncio.Future[Any]] = {
                    *self._tasks,
                    asyncio.ensure_future(self._stopping.wait()),
                    asyncio.ensure_future(self.inbox.arrival.wait()),
                }
                timeout = None if self._tasks and len(self._tasks) >= self.concurrency else self.poll_interval
                if started and len(self._tasks) < self.concurrency:
                    timeout = 0  # there may be more
                _done, pending = await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                for waiter in pending - self._tasks:
                    waiter.cancel()
        finally:
            await self._drain()
            self._threads.close()

    async def stop(self) -> None:
        """Stop claiming, for good; `run` returns once the handlers in progress end (or ``drain_timeout`` passed)."""
        self._stopping.set()

    async def _drain(self) -> None:
        if not self._tasks:
            return
        _done, pending = await asyncio.wait(list(self._tasks), timeout=self.drain_timeout)
        for task in pending:
            task.cancel()
        if pending:
            logger.warning("%d event handler(s) cancelled at shutdown; they will be retried", len(pending))
            await asyncio.gather(*pending, return_exceptions=True)

    def _emit(self, event: str, *args: object) -> None:
        if self._hooks:
            _emit(self._hooks, event, *args)

    def _run(self, record: InboxRecord, event: WebhookEvent | None) -> HandlerRun:
        run = HandlerRun(
            record.key,
            None if event is None else event.event_name,
            record.attempts,
            time.monotonic(),
            record.traceparent,
        )
        self._emit("on_run_start", run)
        return run

    async def _process(self, record: InboxRecord) -> None:
        try:
            signed_at = None if record.signed_at is None else datetime.fromtimestamp(record.signed_at, UTC)
            event: WebhookEvent | None = parse_event(
                record.body, org_id=record.org_id, signed_at=signed_at, delivery_key=record.key, attempt=record.attempts
            )
            error = None
        except SignatureVerificationError as exc:  # stored by something other than a receiver
            event, error = None, f"not an event: {exc.detail}"
        hung = event is not None and not self._handler_is_async and self._hung_on(record.key)
        if event is not None and not self._handler_is_async and not hung and not self._threads.available:
            await self._release(record)  # every thread is stuck: give it back unrun, its attempt uncounted
            return
        run = self._run(record, event)
        outcome: RunOutcome = "not_run"
        recorded: Recorded = None
        try:
            if event is None:
                recorded = self._settled(record, "dead", await self.inbox.bury(record, error=str(error)))
            elif hung:  # one thread per hung event: its retries must not take the worker's other threads too
                error = STILL_RUNNING
                recorded = await self._failed(record, error, run)
            else:
                outcome, recorded, error = await self._attempt(record, event, run)
        except InboxError as exc:  # the outcome was not recorded: the lease brings the event back
            logger.warning("event %s: outcome not recorded, it will be retried: %s", record.key[:12], exc)
        except asyncio.CancelledError:
            outcome, error = "cancelled", "cancelled at shutdown"
            raise
        finally:
            self._emit("on_run_end", run, RunResult(outcome, recorded, error, time.monotonic() - run.started))

    async def _release(self, record: InboxRecord) -> None:
        with contextlib.suppress(InboxError):  # else the lease brings it back (that claim's attempt counted)
            await self.inbox.release(record)

    def _history(self, record: InboxRecord, run: HandlerRun, outcome: Outcome, error: str | None) -> InboxAttempt:
        """Return the run as the event's history keeps it (its error scrubbed)."""
        duration = time.monotonic() - run.started
        detail = None if error is None else scrub(error)
        return InboxAttempt(record.attempts, self.inbox.clock() - duration, duration, outcome, detail)

    async def _attempt(
        self, record: InboxRecord, event: WebhookEvent, run: HandlerRun
    ) -> tuple[RunOutcome, Recorded, str | None]:
        try:
            async with asyncio.timeout(None) as deadline:  # set when the handler starts, see _call
                said = await self._call(event, deadline)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is None or not task.cancelling():  # the handler raised it; this worker was not cancelled
                error = "CancelledError: raised by the handler (the worker was not cancelled)"
                return "error", await self._failed(record, error, run), error
            with contextlib.suppress(Exception):
                await asyncio.shield(self.inbox.retry(record, error="cancelled at shutdown", delay=0))
            raise
        except NoIdleThread:  # a thread got stuck since this event was started: it never ran
            await self._release(record)
            return "not_run", None, None
        except ServiceUnavailableError as exc:
            self._pause_claims(exc.reason, probe=record.key in self._probes)
            await self._release(record)
            return "not_run", None, exc.reason[:1000]
        except DeadLetterError as exc:
            self._answered()
            error = scrub(f"dead letter: {exc.reason}")
            logger.error("event %s dead after attempt %d: %s", record.key[:12], record.attempts, error)
            history = self._history(record, run, "dead", error)
            return (
                "error",
                self._settled(record, "dead", await self.inbox.bury(record, error=error, attempt=history)),
                error,
            )
        except RetryLaterError as exc:
            self._answered()
            return "error", await self._failed(record, exc.reason, run, after=exc.after), exc.reason[:1000]
        except Exception as exc:
            self._answered()
            timed_out = isinstance(exc, TimeoutError)
            error = f"timed out after {self.handler_timeout:g} s" if timed_out else f"{type(exc).__name__}: {exc}"
            if timed_out:
                self._check_health()
            return ("timeout" if timed_out else "error"), await self._failed(record, error, run), error[:1000]
        self._answered()
        history = self._history(record, run, "done", said if isinstance(said, str) else None)
        recorded = self._settled(record, "done", await self.inbox.complete(record, attempt=history))
        self.handled += recorded is not None
        return "ok", recorded, None

    def _hung_on(self, key: str) -> bool:
        """Whether a call of the handler on this event outlived its timeout and is still running here."""
        return any(isinstance(arg, WebhookEvent) and arg.delivery_key == key for arg in self._threads.stuck_on())

    def _check_health(self) -> None:
        if not self.healthy and not self._unhealthy_logged:
            self._unhealthy_logged = True
            logger.error(
                "worker unhealthy: %d handler threads are stuck in calls that outlived handler_timeout, more than "
                "the %d replacements allowed; it claims no more events until they return (restart the process if "
                "they never do)",
                self._threads.stuck,
                self.concurrency,
            )

    def _answered(self) -> None:
        """Close the breaker: the destination gave a verdict other than unavailable."""
        if self._outage:
            logger.warning("destination answering again after %d failed probe(s): claiming as usual", self._outage - 1)
        self._outage = 0

    def _pause_claims(self, reason: str, *, probe: bool) -> None:
        """Open the breaker, or step its backoff on a failed probe (events already in flight when it opened do not)."""
        if self._outage and not probe:
            return
        self._outage += 1
        pause = self.retry_delay(self._outage)
        self._claims_paused_until = max(self._claims_paused_until, self.inbox.clock() + pause)
        if self._outage == 1:
            logger.warning(
                "destination unavailable, claiming paused for %g s, then one event at a time: %s", pause, reason
            )

    async def _failed(
        self, record: InboxRecord, error: str, run: HandlerRun, *, after: float | None = None
    ) -> Recorded:
        error = scrub(error)
        if record.attempts >= self.max_attempts:
            logger.error("event %s dead after %d attempts: %s", record.key[:12], record.attempts, error)
            history = self._history(record, run, "dead", error)
            return self._settled(record, "dead", await self.inbox.bury(record, error=error, attempt=history))
        delay = min(self.max_delay, max(self.retry_delay(record.attempts), after or 0.0))
        logger.warning("event %s attempt %d failed, retry in %g s: %s", record.key[:12], record.attempts, delay, error)
        history = self._history(record, run, "retry", error)
        return self._settled(record, "retry", await self.inbox.retry(record, error=error, delay=delay, attempt=history))

    @staticmethod
    def _settled(record: InboxRecord, outcome: Literal["done", "retry", "dead"], applied: bool) -> Recorded:
        if not applied:
            logger.info(
                "event %s: outcome %r dropped: this worker's claim ended (its lease ran out) and another "
                "worker owns the event now",
                record.key[:12],
                outcome,
            )
            return None
        return outcome

    async def _call(self, event: WebhookEvent, deadline: asyncio.Timeout) -> object:
        def start() -> None:  # the attempt's clock starts with the handler, not while its thread is scheduled
            deadline.reschedule(asyncio.get_running_loop().time() + self.handler_timeout)

        if self._handler_is_async:
            start()
            result = self._handler(event)
        else:
            result = await self._threads.call(self._handler, event, started=start)
        if inspect.isawaitable(result):
            return await result
        return result
