"""The request log: what the fake received and answered, newest last, bounded.

The ``Authorization`` header is stored redacted (its scheme kept, e.g. ``"Basic
<redacted>"``); which key was used is in `RecordedRequest.key_role`. Bodies are kept
raw (they may hold an endpoint secret), so they never appear in a ``repr``.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterator, Mapping
from typing import Any, Literal

import attrs

from fullstory_async.testing._faults import Fault

KeyRole = Literal["admin", "read_only"]
"""Which of the fake's keys authenticated a request."""

REDACTED = "<redacted>"


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Copy ``headers``, replacing the credential of ``Authorization``."""
    result = dict(headers)
    for name in result:
        if name.lower() == "authorization":
            scheme, sep, _ = result[name].partition(" ")
            result[name] = f"{scheme} {REDACTED}" if sep else REDACTED
    return result


@attrs.frozen
class RecordedRequest:
    """One request as the fake saw it, and what it answered."""

    method: str
    """HTTP method."""

    path: str
    """Request path (percent-decoded)."""

    query: Mapping[str, str] = attrs.field(eq=False)
    """Query parameters (the first value of each)."""

    headers: Mapping[str, str] = attrs.field(eq=False, repr=False)
    """Request headers, ``Authorization`` redacted."""

    body: bytes = attrs.field(repr=False)
    """Raw request body (may hold a secret)."""

    status: int | None
    """Response status; None when no response was sent (connection reset, cancelled)."""

    operation: str | None
    """Operation name (``"create_endpoint"`` ...); None for an unknown route."""

    key_role: KeyRole | None
    """Which key authenticated it; None when it was not checked or failed."""

    faults: tuple[Fault, ...] = ()
    """The faults applied (latency included)."""

    def json(self) -> Any:
        """Parse the body as JSON (raises ``ValueError`` when it is not JSON)."""
        return json.loads(self.body)


class RequestLog:
    """The most recent ``maxlen`` requests (``fake.requests``); ``maxlen=0`` turns it off."""

    __slots__ = ("_records",)

    def __init__(self, maxlen: int = 1000) -> None:
        if maxlen < 0:
            raise ValueError("maxlen must be >= 0")
        self._records: deque[RecordedRequest] = deque(maxlen=maxlen)

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[RecordedRequest]:
        return iter(tuple(self._records))

    def __getitem__(self, index: int) -> RecordedRequest:
        return self._records[index]

    def __repr__(self) -> str:
        return f"RequestLog({len(self._records)} of max {self.maxlen})"

    @property
    def maxlen(self) -> int:
        """The bound."""
        return self._records.maxlen or 0

    @property
    def enabled(self) -> bool:
        """Whether requests are recorded at all."""
        return self._records.maxlen != 0

    def append(self, record: RecordedRequest) -> None:
        """Record one request (the oldest falls out when full)."""
        self._records.append(record)

    def clear(self) -> None:
        """Forget every recorded request."""
        self._records.clear()

    def for_operation(self, operation: str) -> list[RecordedRequest]:
        """Return the recorded requests of one operation, oldest first."""
        return [r for r in self._records if r.operation == operation]
