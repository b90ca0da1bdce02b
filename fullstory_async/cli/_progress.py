"""Progress of long jobs (provision, apply): a one-line bar on a terminal, and the summary at the end.

The bar is a single carriage-return-rewritten line on stderr, redrawn at most ten times a
second (and at once when an item fails), and only when stderr is a terminal: never in a pipe,
a file or a CI log. It is cleared before any notice and at the end. The summary line is
always printed on stderr; it counts an item even when printing its result failed, and
says the count is partial when the job stopped early (Ctrl-C, a closed stdout).
"""

from __future__ import annotations

import time
from collections import Counter
from types import TracebackType
from typing import Self, TextIO

from fullstory_async import Outcome
from fullstory_async.cli._output import Console

_REDRAW_EVERY = 0.1
_ORDER = (Outcome.CREATED, Outcome.UPDATED, Outcome.UNCHANGED, Outcome.SKIPPED, Outcome.DELETED, Outcome.FAILED)


def is_terminal(stream: TextIO) -> bool:
    """Whether ``stream`` is a terminal (False for anything without a working ``isatty``)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


class Progress:
    """Count outcomes; draw the bar when ``enabled``; print the summary on exit.

    ::

        with Progress(console, total=None, enabled=True) as progress:
            for outcome in ...:
                progress.advance(outcome)
    """

    def __init__(self, console: Console, *, total: int | None, enabled: bool) -> None:
        self._console = console
        self._stream = console.err
        self.total = total
        self.enabled = enabled
        self.counts: Counter[Outcome] = Counter()
        self._started = time.monotonic()
        self._drawn_at = 0.0
        self._width = 0
        self.interrupted = False
        self.output_closed = False

    @property
    def done(self) -> int:
        """Items finished so far."""
        return sum(self.counts.values())

    @property
    def failed(self) -> int:
        """Items that failed so far."""
        return self.counts[Outcome.FAILED]

    def elapsed(self) -> float:
        """Seconds since the start."""
        return time.monotonic() - self._started

    def _rate(self) -> float:
        elapsed = self.elapsed()
        return self.done / elapsed if elapsed > 0 else 0.0

    def advance(self, outcome: Outcome) -> None:
        """Count one finished item; redraw the bar when due, at the last item, or at once on a failure."""
        self.counts[outcome] += 1
        due = time.monotonic() - self._drawn_at >= _REDRAW_EVERY
        if self.enabled and (due or self.done == self.total or outcome is Outcome.FAILED):
            self._draw()

    def _draw(self) -> None:
        self._drawn_at = time.monotonic()
        if self.total:
            filled = 20 * self.done // self.total
            bar = f"[{'#' * filled}{'.' * (20 - filled)}] {self.done}/{self.total}"
        else:
            bar = f"{self.done}/?"
        text = f"{bar}  {self._rate():.1f}/s  {self.failed} failed"
        self._stream.write("\r" + text.ljust(self._width))
        self._stream.flush()
        self._width = len(text)
        self._console.clear_status = self.clear

    def clear(self) -> None:
        """Erase the bar, if one is shown."""
        if self._width:
            self._stream.write("\r" + " " * self._width + "\r")
            self._stream.flush()
            self._width = 0
        self._console.clear_status = None

    def summary(self) -> str:
        """``4 items in 0.12s (33.3/s): 3 created, 0 updated, ...``."""
        elapsed = self.elapsed()
        counts = ", ".join(f"{self.counts[outcome]} {outcome}" for outcome in _ORDER)
        head = (
            "interrupted after " if self.interrupted else "output closed; stopped after " if self.output_closed else ""
        )
        line = f"{head}{self.done} item(s) in {elapsed:.2f}s ({self._rate():.1f}/s): {counts}"
        if head:  # the stream was closed with items in flight: cancelled, they may have taken effect
            line += " (partial count: items in flight when it stopped may also have been made)"
        return line

    def __enter__(self) -> Self:
        if self.enabled:
            self._draw()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.clear()
        if exc_type is not None and not issubclass(exc_type, Exception):
            self.interrupted = True  # Ctrl-C (a cancelled task): still say what was done
        elif exc_type is not None and issubclass(exc_type, BrokenPipeError):
            self.output_closed = True  # `apply ... | head -1`
        self._console.notice(self.summary())
