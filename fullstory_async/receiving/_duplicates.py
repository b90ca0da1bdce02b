"""Remembering recent deliveries, so a repeated one can be dropped.

Fullstory's payloads carry no delivery id, so a delivery is identified by the SHA-256
of its raw body: a redelivery of the same event (whatever its signature timestamp) is
a duplicate, and so is a second event whose body is byte-for-byte the same. Memory is
bounded twice: entries expire after the window, and the oldest go first past
``max_entries``.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable


class DuplicateFilter:
    """Says whether a body was already seen within the last ``window`` seconds.

    Args:
        window: how long a body is remembered, in seconds (> 0).
        max_entries: how many bodies are remembered at most (> 0).
        clock: seconds as a float; expected not to go backwards.

    """

    def __init__(self, window: float, *, max_entries: int, clock: Callable[[], float]) -> None:
        self.window = window
        self.max_entries = max_entries
        self._clock = clock
        self._seen: OrderedDict[bytes, float] = OrderedDict()  # digest -> first seen, oldest first

    def __len__(self) -> int:
        return len(self._seen)

    def check(self, body: bytes) -> bool:
        """Return ``True`` if ``body`` was seen within the window; otherwise remember it and return ``False``."""
        now = self._clock()
        self._expire(now)
        key = hashlib.sha256(body).digest()
        if key in self._seen:
            return True
        self._seen[key] = now
        while len(self._seen) > self.max_entries:
            self._seen.popitem(last=False)
        return False

    def _expire(self, now: float) -> None:
        while self._seen:
            oldest = next(iter(self._seen.values()))
            if now - oldest <= self.window:
                return
            self._seen.popitem(last=False)
