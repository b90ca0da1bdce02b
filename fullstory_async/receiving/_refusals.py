"""Refusal log lines, rate-limited so a chatty or hostile sender cannot flood the log.

At most ``burst`` lines per ``window`` seconds; past that, refusals are counted, and the
next line that may be written says how many were not logged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

logger = logging.getLogger("fullstory_async.receiving")


class RefusalLog:
    """Writes one line per refusal, at most ``burst`` lines every ``window`` seconds."""

    def __init__(self, *, burst: int = 10, window: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.burst = burst
        self.window = window
        self._clock = clock
        self._window_start = -float("inf")
        self._lines = 0
        self.suppressed = 0

    def log(self, level: int, message: str, *args: object) -> None:
        """Log ``message % args`` on one line, unless the window's budget is spent."""
        now = self._clock()
        if now - self._window_start >= self.window:
            self._window_start, self._lines = now, 0
        if self._lines >= self.burst:
            self.suppressed += 1
            return
        self._lines += 1
        if self.suppressed:
            message += " (%d more refusals not logged)"
            args = (*args, self.suppressed)
            self.suppressed = 0
        logger.log(level, message, *args)
