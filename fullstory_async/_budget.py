"""`Budget`: one operation's deadline and attempt count, shared by every call it makes.

Most operations are one call, and the retry layer gives each call its own deadline. An
operation of several calls (`update_endpoint` reading before it writes, `ensure_endpoint`,
one item of `provision` or `apply`) runs its calls ``within(budget)``: the retry layer then
takes each call's deadline from the budget and adds each call's attempts to it, so the
error of any call carries the attempts of the whole operation. A bulk item's budget also
carries its admission (``admit``): the first request waits for it, and the budget starts
then.

The budget travels in a context variable, not through the public API: the operations'
signatures, the middleware chain and the `ApiRequest` stay as they are for one-call use.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar

import attrs


@attrs.define
class Budget:
    """One operation's budget across several calls: the deadline they share and the attempts they made."""

    deadline: float | None
    """The ``time.monotonic()`` instant by which every call must end (``None``: no deadline)."""
    attempts: int = 0
    """HTTP attempts made so far, retries included (the retry layer adds each call's)."""
    seconds: float | None = None
    """The budget's length in seconds (the retry policy's ``operation_timeout``; ``None``: no limit)."""
    admit: Callable[[str], Awaitable[None]] | None = None
    """Awaited with the route of the first request, before it is sent (bulk admission); the budget starts after."""

    @classmethod
    def start(cls, seconds: float | None, admit: Callable[[str], Awaitable[None]] | None = None) -> Budget:
        """Start a budget of ``seconds`` from now (restarted once ``admit`` returns)."""
        return cls(None if seconds is None else time.monotonic() + seconds, 0, seconds, admit)

    async def admitted(self, route: str) -> None:
        """Before the first request (of ``route``): wait for admission; the budget starts then."""
        admit, self.admit = self.admit, None
        if admit is not None:
            await admit(route)
            if self.seconds is not None:
                self.deadline = time.monotonic() + self.seconds

    def left(self) -> float:
        """Seconds left (infinite without a deadline)."""
        return float("inf") if self.deadline is None else self.deadline - time.monotonic()


_current: ContextVar[Budget | None] = ContextVar("fullstory_async_budget", default=None)


def current() -> Budget | None:
    """Return the budget the calls made here run under, or ``None`` (each call its own deadline)."""
    return _current.get()


def attempts_so_far() -> int:
    """Return the attempts of the current operation so far (0 outside a budget): for an error raised between calls."""
    budget = _current.get()
    return 0 if budget is None else budget.attempts


@contextlib.contextmanager
def within(budget: Budget) -> Iterator[Budget]:
    """Run the calls made inside the ``with`` block under ``budget``."""
    token = _current.set(budget)
    try:
        yield budget
    finally:
        _current.reset(token)
