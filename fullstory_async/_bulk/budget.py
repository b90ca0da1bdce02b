"""One budget per bulk item, and the admission that starts it.

`ensure_endpoint` and each item of `provision` and `apply` make several calls (lookups,
a create, an update). They run within one core `Budget`: one deadline (the retry policy's
``operation_timeout`` seconds from when the item is admitted) and one attempt count. `Admission`
admits the items of a job at the pace the client's rate governor can serve (on the route
of each item's first request), so a job queues before its items' budgets start instead
of failing them for waiting.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from fullstory_async._budget import Budget, within
from fullstory_async._exceptions import APITimeoutError, FullstoryError, RateLimitError

if TYPE_CHECKING:
    from fullstory_async._governor import RateGovernor

T = TypeVar("T")


class Admission:
    """Admits the items of one bulk job at the pace the client's rate governor can serve.

    The server's rate limit is not known up front, so a job does not open with
    ``concurrency`` items at once: items run in a window that starts at one item, doubles
    with every item that succeeds (up to ``concurrency``) and halves when an item fails
    for waiting (`RateLimitError`, `APITimeoutError`). An item in the window is admitted by
    its first request: one at a time, each waits until the governor could start a request
    of that request's route now (`RateGovernor.wait_for_capacity`; a lookup's route for a
    lookup, a create's for a create), then is sent at once, taking that capacity. The
    item's budget starts then; an item that sends nothing waits for nothing.
    """

    def __init__(self, governor: RateGovernor | None, concurrency: int) -> None:
        self._governor = governor
        self._limit = concurrency
        self.window = 1
        """Items that may run at once now."""
        self._active = 0
        self._waiting: list[asyncio.Future[None]] = []
        self._turn = asyncio.Lock()

    async def enter(self) -> None:
        """Wait for a place in the window, then hold it. Every `enter` that returns must be paired with one `leave`."""
        while self._active >= self.window:
            waiter = asyncio.get_running_loop().create_future()
            self._waiting.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiting:
                    self._waiting.remove(waiter)
        self._active += 1

    async def admit(self, route: str) -> None:
        """Wait until the governor could start a request of ``route`` now (`ClientClosedError` once closed)."""
        if self._governor is None:
            return
        # One admission at a time: the item admitted sends its request (which takes the
        # governor's slot) without yielding, before the next one asks for capacity.
        async with self._turn:
            await self._governor.wait_for_capacity(route)

    def leave(self) -> None:
        """Give the place back; wake the items waiting for one."""
        self._active -= 1
        self._wake()

    def _wake(self) -> None:
        waiting, self._waiting = self._waiting, []
        for waiter in waiting:  # each checks the window again
            if not waiter.done():
                waiter.set_result(None)

    def record(self, error: FullstoryError | None) -> None:
        """Grow the window after a success, shrink it after a failure for waiting."""
        if error is None:
            if self.window < self._limit:
                self.window = min(self._limit, self.window * 2)
                self._wake()
        elif isinstance(error, RateLimitError | APITimeoutError):
            self.window = max(1, self.window // 2)


async def budgeted(
    seconds: float | None, work: Callable[[], Awaitable[T]], *, admission: Admission | None = None
) -> tuple[T | None, FullstoryError | None, int]:
    """Run ``work`` within one new budget of ``seconds``; return its result or typed error, and the attempts.

    With ``admission``, the item first waits for a place in the job's window, and its first
    request for the governor's capacity on its route (inside the retry layer, so the
    client's ``aclose()`` ends that wait too): the budget starts then. Every
    `FullstoryError`, one raised while waiting included (`ClientClosedError` on
    ``aclose()``), is returned, never raised: each item gets exactly one result. The
    error of a call carries the attempts of the whole item (the retry layer counts them
    into the budget).
    """
    if admission is not None:
        await admission.enter()  # only a cancellation ends this wait
    budget = Budget.start(seconds, None if admission is None else admission.admit)
    try:
        with within(budget):
            result = await work()
    except FullstoryError as exc:
        if admission is not None:
            admission.record(exc)
        return None, exc, budget.attempts
    finally:
        if admission is not None:
            admission.leave()
    if admission is not None:
        admission.record(None)
    return result, None, budget.attempts
