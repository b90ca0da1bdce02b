"""What a handler may say about an event besides returning or failing: the worker's three verdicts.

An `InboxWorker` handler that returns completes the event; one that raises anything else fails
this attempt, retried with the worker's backoff. These three exceptions say more:

- `RetryLaterError`: a failed attempt that should not be retried before ``after`` seconds (a
  downstream ``Retry-After``); the wait is ``max(backoff, after)``, at most the worker's ``max_delay``.
- `DeadLetterError`: never retry; the event is a dead letter now (a downstream 4xx: the same
  event would be refused again). It costs the remaining attempts, not the time they would take.
- `ServiceUnavailableError`: the event was not handled at all, because what it goes to is down.
  The event goes back uncounted and the worker stops claiming, as a circuit breaker opens
  (M. Nygard, *Release It!*): it waits its backoff, then lets one event through as a probe,
  and claims as usual again once a probe gets any other verdict. An outage burns no event's attempts.
"""

from __future__ import annotations


class RetryLaterError(Exception):
    """Raise from a handler: this attempt failed; retry no sooner than ``after`` seconds."""

    def __init__(self, reason: str, *, after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.after = after


class DeadLetterError(Exception):
    """Raise from a handler: this event must never be retried; it becomes a dead letter now."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ServiceUnavailableError(Exception):
    """Raise from a handler: the event was not handled because its destination is down; pause claiming."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
