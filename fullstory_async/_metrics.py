"""`Metrics`: counters of calls, attempts, 429s and waits, as a thin adapter on `Hooks`."""

from __future__ import annotations

import attrs

from fullstory_async._hooks import Attempt, Call, CallResult, Hooks


@attrs.define
class Metrics(Hooks):
    """Running totals over every call of the clients it is given to (``Client(hooks=[metrics])``).

    Read the fields (or `snapshot`) from your exporter: a Prometheus collector, a StatsD
    flush, a periodic log line. Every field only grows. For per-operation or per-status
    labels, subclass `Hooks` the same way: ``call.request.operation`` and ``attempt.status``
    are there.
    """

    calls: int = 0
    """Calls ended."""

    failed_calls: int = 0
    """Calls that ended in an error (cancellations included)."""

    attempts: int = 0
    """HTTP attempts made (first attempts and retries)."""

    retries: int = 0
    """Attempts after the first of their call."""

    rate_limited: int = 0
    """Attempts answered ``429``."""

    retry_waits: int = 0
    """Waits the retry layer took between attempts."""

    retry_wait_seconds: float = 0.0
    """Seconds of those waits (skipped ones included with ``RetryPolicy(wait=False)``)."""

    governor_waits: int = 0
    """Attempts the rate governor held back before sending."""

    governor_wait_seconds: float = 0.0
    """Seconds attempts spent held back by the rate governor."""

    def on_attempt(self, call: Call, attempt: Attempt) -> None:
        """Count the attempt, its 429 and its waits."""
        self.attempts += attempt.sent  # one the rate governor ended before sending is no HTTP attempt
        self.retries += attempt.sent and attempt.number > 1
        self.rate_limited += attempt.status == 429
        if attempt.retry_wait is not None:
            self.retry_waits += 1
            self.retry_wait_seconds += attempt.retry_wait
        if attempt.governor_wait > 0:
            self.governor_waits += 1
            self.governor_wait_seconds += attempt.governor_wait

    def on_call_end(self, call: Call, result: CallResult) -> None:
        """Count the call and whether it failed."""
        self.calls += 1
        self.failed_calls += result.error is not None

    def snapshot(self) -> dict[str, float]:
        """Return every counter by name, e.g. to export or log them at once."""
        return attrs.asdict(self)
