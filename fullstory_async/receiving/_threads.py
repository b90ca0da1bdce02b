"""`HandlerThreads`: a worker's own threads for a plain-function handler, with hung threads replaced.

A bounded thread pool (not asyncio's shared default executor, which other code fills too)
of ``size`` slots. A thread cannot be killed, so a call abandoned by its caller (its
timeout passed, or the worker was cancelled) keeps its thread until the function returns:
that thread is *stuck*, and its slot gets a new thread, while at most ``size`` threads are
stuck at once (so never more than ``2 * size`` threads). Past that, `healthy` is False and
the pool has one free slot fewer per further stuck thread: the worker stops claiming rather
than time out events on threads that never ran them. A stuck thread whose function
returns leaves (or takes a free slot back), so the pool heals when the hung calls end.
`stuck_on` names the arguments of the stuck calls, so a caller can refuse to start a second
call on what a stuck one still holds (the worker: one stuck thread per event at most).
A caller's ``started`` callback runs on its loop when a thread takes the call, so a timeout
can count from there: the time a loaded machine takes to schedule the thread is not the call's.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import queue
import threading
from collections.abc import Callable
from typing import Any


class NoIdleThread(Exception):
    """Every thread of the pool is busy or stuck: the call was not started."""


class _Job:
    __slots__ = ("arg", "context", "finished", "func", "future", "started")

    def __init__(
        self,
        func: Callable[[Any], object],
        arg: object,
        future: asyncio.Future[object],
        started: Callable[[], object] | None,
    ) -> None:
        self.func = func
        self.arg = arg
        self.future = future
        self.started = started
        self.context = contextvars.copy_context()  # the caller's context (a tracing span), as asyncio.to_thread
        self.finished = False


class HandlerThreads:
    """Up to ``size`` calls at once on threads of their own, stuck threads replaced up to ``size`` times."""

    def __init__(self, size: int, name: str) -> None:
        self.size = size
        self.name = name
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._live = 0
        self._idle = 0
        self._stuck: set[_Job] = set()  # calls abandoned by their caller and still running
        self._closed = False

    def __repr__(self) -> str:
        return f"<HandlerThreads size={self.size} live={self._live} idle={self._idle} stuck={self.stuck}>"

    @property
    def stuck(self) -> int:
        """Threads still running a call their caller gave up on."""
        return len(self._stuck)

    def stuck_on(self) -> list[object]:
        """Return the arguments of the calls still running after their caller gave up on them."""
        with self._lock:
            return [job.arg for job in self._stuck]

    @property
    def healthy(self) -> bool:
        """False while more threads are stuck than there are replacements (``size``)."""
        return self.stuck <= self.size

    @property
    def available(self) -> bool:
        """Whether a `call` made now finds a thread (an idle one, or a slot for a new one)."""
        return self._idle > 0 or self._live < self._target()

    def _target(self) -> int:
        return self.size + min(len(self._stuck), self.size)

    async def call(
        self, func: Callable[[Any], object], arg: object, *, started: Callable[[], object] | None = None
    ) -> object:
        """Return ``func(arg)`` run on an idle thread; raise `NoIdleThread` at once when none is free.

        ``started`` is called on the caller's loop once a thread took the call, just before
        ``func`` runs (not if the caller gave up first). Cancelling the caller (a timeout)
        abandons the call: its thread runs on, counted stuck.
        """
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        job = _Job(func, arg, future, started)
        with self._lock:
            self._closed = False
            if not self._idle and self._live < self._target():  # start threads as calls need them
                self._live += 1
                self._idle += 1
                threading.Thread(target=self._serve, name=self.name, daemon=True).start()
            if not self._idle:
                raise NoIdleThread
            self._idle -= 1
        self._jobs.put(job)
        try:
            return await future
        except asyncio.CancelledError:
            with self._lock:
                if not job.finished:
                    self._stuck.add(job)
            raise

    def close(self) -> None:
        """Let the idle threads end, and the busy ones once their call returns (a later `call` starts new ones)."""
        with self._lock:
            self._closed = True
            for _ in range(self._idle):
                self._jobs.put(None)
            self._live -= self._idle
            self._idle = 0

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            if job.started is not None:
                with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                    job.future.get_loop().call_soon_threadsafe(_begin, job.future, job.started)
            try:
                result, error = job.context.run(job.func, job.arg), None
            except Exception as exc:  # handed to the caller, who decides
                result, error = None, exc
            except BaseException as exc:  # SystemExit, KeyboardInterrupt: a failure of this call, not of the loop
                result, error = None, RuntimeError(f"the handler raised {type(exc).__name__}")
            with self._lock:  # counted idle before the caller hears: its next call finds this thread free
                job.finished = True
                self._stuck.discard(job)
                leave = self._closed or self._live > self._target()
                if leave:
                    self._live -= 1
                else:
                    self._idle += 1
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits for this result
                job.future.get_loop().call_soon_threadsafe(_settle, job.future, result, error)
            if leave:
                return


def _begin(future: asyncio.Future[object], started: Callable[[], object]) -> None:
    if not future.done():  # else the caller gave up on it
        started()


def _settle(future: asyncio.Future[object], result: object, error: BaseException | None) -> None:
    if future.done():  # the caller gave up on it
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)
