"""`ReceiverSettings`: how a receiver treats a delivery, in one record shared by every way to build one.

`WebhookReceiver` and `add_webhook_route` both take ``settings=ReceiverSettings(...)``
(as httpx takes ``limits=Limits(...)``): one definition, so the two cannot drift apart.
A new per-receiver option is a field here, validated here, and nowhere else.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import attrs

from fullstory_async._exceptions import InvalidArgumentError
from fullstory_async.receiving._refusals import RefusalLog
from fullstory_async.receiving._signature import DEFAULT_TOLERANCE, check_tolerance

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
DEFAULT_BODY_TIMEOUT = 30.0


def positive(name: str, value: float, *, integer: bool = False) -> None:
    """Raise `InvalidArgumentError` naming ``name`` unless ``value`` is a positive (integer) number."""
    kinds = int if integer else int | float
    if not isinstance(value, kinds) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
        raise InvalidArgumentError(name, f"must be a positive {'integer' if integer else 'number'}, got {value!r}")


@attrs.frozen(kw_only=True)
class ReceiverSettings:
    """How a `WebhookReceiver` bounds, checks and logs deliveries (every field optional, validated here)."""

    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    """Larger bodies are refused with ``413`` (never read past the limit)."""

    body_timeout: float = DEFAULT_BODY_TIMEOUT
    """Seconds to receive the whole body once the request head is in; a slower body is
    answered ``408`` with ``Connection: close``. The receiver enforces it itself, so it holds
    under any server (aiohttp, uvicorn, ...)."""

    tolerance: float | None = DEFAULT_TOLERANCE
    """Replay window of the signature timestamp, in seconds; ``None`` disables it."""

    org_id: str | None = None
    """If given, deliveries signed for another org are refused."""

    shutdown_timeout: float = 10.0
    """On `WebhookReceiver.aclose`, how long deliveries in progress may finish (``0``: do not wait)."""

    refusal_log: RefusalLog | None = None
    """How refusals are logged (a new `RefusalLog`, 10 lines every 10 s, when ``None``)."""

    clock: Callable[[], float] = time.time
    """The wall clock in seconds since the epoch, for the replay window (tests)."""

    def __attrs_post_init__(self) -> None:
        positive("max_body_bytes", self.max_body_bytes, integer=True)
        positive("body_timeout", self.body_timeout)
        check_tolerance(self.tolerance)
        if self.org_id is not None and (not isinstance(self.org_id, str) or not self.org_id):
            raise InvalidArgumentError("org_id", "must be a non-empty string or None")
        if self.shutdown_timeout != 0:  # 0 is allowed: do not wait
            positive("shutdown_timeout", self.shutdown_timeout)
        if self.refusal_log is not None and not isinstance(self.refusal_log, RefusalLog):
            raise InvalidArgumentError("refusal_log", f"must be a RefusalLog, got {type(self.refusal_log).__name__}")
