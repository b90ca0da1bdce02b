"""An aiohttp.web receiver: read, verify, answer at once, run the callback in the background.

Answers (always without a body, so a refusal never explains itself to the sender):

====  ==========================================================================
202   verified (or a dropped duplicate); the callback runs after the response
400   correctly signed, but the body is not an event envelope
401   any signature failure (missing, malformed, mismatch, unknown org, stale)
413   the body is larger than ``max_body_bytes`` (never read past the limit)
503   the receiver is closed (the application is shutting down)
====  ==========================================================================

Refusals are logged on the ``fullstory_async.receiving`` logger with their reason and
the peer address: INFO for a missing or malformed header (scanners), WARNING for the
rest. Callback exceptions are logged with their traceback and never reach the sender.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import TypeAlias

from aiohttp import web

from fullstory_async._exceptions import InvalidArgumentError
from fullstory_async.receiving._duplicates import DuplicateFilter
from fullstory_async.receiving._errors import SignatureVerificationError, VerificationFailure
from fullstory_async.receiving._events import WebhookEvent
from fullstory_async.receiving._signature import (
    DEFAULT_TOLERANCE,
    SIGNATURE_HEADER,
    check_tolerance,
    normalize_secrets,
    verify,
)

logger = logging.getLogger("fullstory_async.receiving")

WebhookCallback: TypeAlias = Callable[[WebhookEvent], object]
"""A function or a coroutine function taking the event; an awaitable it returns is awaited."""

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
_CHUNK_BYTES = 64 * 1024
_QUIET_REASONS = frozenset({VerificationFailure.MISSING_HEADER, VerificationFailure.MALFORMED_HEADER})


def _is_coroutine_function(func: object) -> bool:
    # The second test catches instances whose __call__ is async (not a callability test).
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(getattr(func, "__call__", None))  # noqa: B004


def _positive(name: str, value: float, *, integer: bool = False) -> None:
    kinds = int if integer else int | float
    if not isinstance(value, kinds) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
        raise InvalidArgumentError(name, f"must be a positive {'integer' if integer else 'number'}, got {value!r}")


class WebhookReceiver:
    """Receives Fullstory webhook deliveries in an aiohttp application.

    ``handle`` is the request handler; `add_webhook_route` mounts it and closes the
    receiver on application cleanup. Verified events go to ``callback`` in a background
    task, after the ``202`` response: a coroutine function is awaited on the event loop,
    a plain function runs in the default thread pool (``asyncio.to_thread``) so it
    cannot stall the server (cancelling such a callback at shutdown stops waiting for
    it; the thread itself runs to its end).

    Args:
        secrets: the endpoint secret, or several while rotating (any one may match).
        callback: called with each verified `WebhookEvent`.
        max_body_bytes: larger bodies are refused with ``413``.
        tolerance: replay window of the signature timestamp, in seconds; ``None`` disables it.
        org_id: if given, deliveries signed for another org are refused.
        dedupe_window: if given, a body already accepted within this many seconds is
            acknowledged (``202``) without calling ``callback`` again.
        dedupe_max_entries: how many recent bodies the de-duplication remembers at most.
        shutdown_timeout: on `aclose`, how long running callbacks may finish before
            they are cancelled.
        clock: the wall clock in seconds since the epoch (``time.time``), for the
            replay window and the de-duplication window; replace it in tests.

    """

    def __init__(
        self,
        secrets: str | Sequence[str],
        callback: WebhookCallback,
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        tolerance: float | None = DEFAULT_TOLERANCE,
        org_id: str | None = None,
        dedupe_window: float | None = None,
        dedupe_max_entries: int = 10_000,
        shutdown_timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not callable(callback):
            raise InvalidArgumentError("callback", f"must be callable, got {type(callback).__name__}")
        _positive("max_body_bytes", max_body_bytes, integer=True)
        _positive("dedupe_max_entries", dedupe_max_entries, integer=True)
        if dedupe_window is not None:
            _positive("dedupe_window", dedupe_window)
        if shutdown_timeout != 0:  # 0 is allowed: cancel at once
            _positive("shutdown_timeout", shutdown_timeout)
        self._secrets = normalize_secrets(secrets)
        self._tolerance = check_tolerance(tolerance)
        self._callback = callback
        self._callback_is_async = _is_coroutine_function(callback)
        self.max_body_bytes = max_body_bytes
        self.org_id = org_id
        self.shutdown_timeout = shutdown_timeout
        self._clock = clock
        self._duplicates = (
            None
            if dedupe_window is None
            else DuplicateFilter(dedupe_window, max_entries=dedupe_max_entries, clock=clock)
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self.closed = False

    def __repr__(self) -> str:
        return (
            f"<WebhookReceiver secrets=<{len(self._secrets)} hidden> org_id={self.org_id!r} "
            f"pending={len(self._tasks)} closed={self.closed}>"
        )

    @property
    def pending_callbacks(self) -> int:
        """How many callbacks are running or waiting to run."""
        return len(self._tasks)

    async def handle(self, request: web.Request) -> web.Response:
        """Handle one delivery (the aiohttp handler: ``app.router.add_post(path, receiver.handle)``)."""
        body = await self._read_body(request)
        if body is None:
            logger.warning("webhook refused (body over %d bytes) from %s", self.max_body_bytes, request.remote)
            return web.Response(status=413)
        try:
            event = verify(
                body,
                request.headers.get(SIGNATURE_HEADER),
                self._secrets,
                tolerance=self._tolerance,
                org_id=self.org_id,
                now=self._clock(),
            )
        except SignatureVerificationError as exc:
            level = logging.INFO if exc.reason in _QUIET_REASONS else logging.WARNING
            logger.log(level, "webhook refused (%s: %s) from %s", exc.reason.value, exc.detail, request.remote)
            return web.Response(status=400 if exc.reason is VerificationFailure.MALFORMED_BODY else 401)
        if self.closed:  # checked last, with no await before the task starts: none may outlive aclose()
            return web.Response(status=503)
        if self._duplicates is not None and self._duplicates.check(body):
            logger.info("webhook duplicate dropped (%s)", event.event_name)
            return web.Response(status=202)
        task = asyncio.get_running_loop().create_task(self._run(event), name=f"fullstory-webhook:{event.event_name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return web.Response(status=202)

    async def _read_body(self, request: web.Request) -> bytes | None:
        """Read the whole body, or return ``None`` as soon as it is known to exceed the limit."""
        limit = self.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            return None
        body = bytearray()
        while chunk := await request.content.read(min(_CHUNK_BYTES, limit + 1 - len(body))):
            body += chunk
            if len(body) > limit:
                return None
        return bytes(body)

    async def _run(self, event: WebhookEvent) -> None:
        try:
            if self._callback_is_async:
                result = self._callback(event)
            else:
                result = await asyncio.to_thread(self._callback, event)
            if inspect.isawaitable(result):
                await result
        except Exception:
            logger.exception("webhook callback failed for a %s event", event.event_name)

    async def join(self) -> None:
        """Wait until every callback started so far (and any they lead to) has finished."""
        while self._tasks:
            await asyncio.wait(list(self._tasks))

    async def aclose(self) -> None:
        """Refuse new deliveries (``503``), let callbacks finish within ``shutdown_timeout``, cancel the rest.

        Idempotent; `add_webhook_route` calls it on application cleanup.
        """
        self.closed = True
        if not self._tasks:
            return
        _done, pending = await asyncio.wait(list(self._tasks), timeout=self.shutdown_timeout)
        for task in pending:
            task.cancel()
        if pending:
            logger.warning("cancelled %d webhook callback(s) still running at shutdown", len(pending))
            await asyncio.gather(*pending, return_exceptions=True)

    async def on_cleanup(self, _app: web.Application) -> None:
        """Call `aclose` (an ``app.on_cleanup`` hook)."""
        await self.aclose()


def add_webhook_route(
    app: web.Application,
    path: str,
    secrets: str | Sequence[str],
    callback: WebhookCallback,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    tolerance: float | None = DEFAULT_TOLERANCE,
    org_id: str | None = None,
    dedupe_window: float | None = None,
    dedupe_max_entries: int = 10_000,
    shutdown_timeout: float = 10.0,
    clock: Callable[[], float] = time.time,
) -> WebhookReceiver:
    """Mount a `WebhookReceiver` on ``POST path`` and close it on the application's cleanup.

    The arguments after ``path`` are those of `WebhookReceiver`. Returns the receiver
    (its ``join`` is handy in tests).
    """
    receiver = WebhookReceiver(
        secrets,
        callback,
        max_body_bytes=max_body_bytes,
        tolerance=tolerance,
        org_id=org_id,
        dedupe_window=dedupe_window,
        dedupe_max_entries=dedupe_max_entries,
        shutdown_timeout=shutdown_timeout,
        clock=clock,
    )
    app.router.add_post(path, receiver.handle)
    app.on_cleanup.append(receiver.on_cleanup)
    return receiver
