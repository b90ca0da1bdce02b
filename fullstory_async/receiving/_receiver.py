"""`WebhookReceiver`: verify a delivery, store it (or run the handler), and only then acknowledge it.

Answers (always without a body, so a refusal never explains itself to the sender):

====  ==========================================================================
202   verified and committed to the inbox (or a duplicate of a stored one); without
      an inbox, verified and the callback returned
400   correctly signed, but the body is not an event envelope; or the sender went away
      mid-body (nobody reads that answer; logged as a refusal, not a traceback)
401   any signature failure (missing, malformed, mismatch, unknown org, stale)
408   the body did not arrive within ``body_timeout`` (with ``Connection: close``)
413   the body is larger than ``max_body_bytes`` (never read past the limit)
500   without an inbox: the callback raised (the sender will retry)
503   the receiver is closing (a body still arriving is cut at once), or the inbox
      could not store the delivery within its ``commit_timeout`` (with
      ``Retry-After``: that bound, rounded up)
====  ==========================================================================

``GET <path>/health`` is liveness (``200`` while serving); ``GET <path>/health/ready`` is
readiness: ``503`` while the inbox cannot commit within its bound (`Inbox.ready`).

Refusals are logged on the ``fullstory_async.receiving`` logger, one line each with
the reason and the peer, rate-limited (`RefusalLog`): INFO for a missing or malformed
header (scanners), WARNING for the rest. ``handle`` serves aiohttp; ``asgi`` is the same
receiver as an ASGI application (`WebhookASGIApp`).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import math
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from typing import TypeAlias

from aiohttp import web

from fullstory_async._exceptions import InvalidArgumentError
from fullstory_async.receiving._asgi import WebhookASGIApp
from fullstory_async.receiving._envelope import parse_event, read_envelope
from fullstory_async.receiving._errors import SignatureVerificationError, VerificationFailure
from fullstory_async.receiving._events import WebhookEvent
from fullstory_async.receiving._hooks import (
    ReceivingHooks,
    note_refusal,
    note_verified,
    observe_delivery,
    timed_commit,
)
from fullstory_async.receiving._inbox import Inbox, InboxError
from fullstory_async.receiving._refusals import RefusalLog
from fullstory_async.receiving._settings import ReceiverSettings
from fullstory_async.receiving._settings import positive as positive  # re-exported for _worker
from fullstory_async.receiving._signature import SIGNATURE_HEADER, check_signature, normalize_secrets

logger = logging.getLogger("fullstory_async.receiving")

WebhookCallback: TypeAlias = Callable[[WebhookEvent], object]
"""A function or a coroutine function taking the event; an awaitable it returns is awaited."""

_CHUNK_BYTES = 64 * 1024
_QUIET_REASONS = frozenset({VerificationFailure.MISSING_HEADER, VerificationFailure.MALFORMED_HEADER})


def is_coroutine_function(func: object) -> bool:
    """Tell whether ``func`` is an ``async def`` function or an instance whose ``__call__`` is one."""
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(getattr(func, "__call__", None))  # noqa: B004


class WebhookReceiver:
    """Receives Fullstory webhook deliveries and acknowledges only what is held.

    Give it an ``inbox`` (`open_inbox`): each verified delivery is committed there before
    the ``202``, a repeated one is acknowledged without being stored again, and an
    `InboxWorker` processes them. Or give it a ``callback``: it runs before the response
    (a coroutine function on the loop, a plain function in a thread), ``202`` once it
    returned, ``500`` if it raised. Exactly one of the two.

    Serve it with aiohttp (``handle``, ``health``, or `add_webhook_route`) or as an ASGI
    application (``asgi``, e.g. ``fastapi_app.mount("/fullstory/webhooks", receiver.asgi)``).

    Args:
        secrets: the endpoint secret, or several while rotating (any one may match).
        callback: called with each verified `WebhookEvent` when there is no inbox.
        inbox: where verified deliveries are stored before they are acknowledged.
        settings: body size and time limits, replay window, org, shutdown wait, refusal
            log (`ReceiverSettings`; its defaults when ``None``).
        hooks: `ReceivingHooks` observing each delivery (`ReceivingMetrics`, the ``otel`` extra's tracing).

    """

    def __init__(
        self,
        secrets: str | Sequence[str],
        callback: WebhookCallback | None = None,
        *,
        inbox: Inbox | None = None,
        settings: ReceiverSettings | None = None,
        hooks: Sequence[ReceivingHooks] = (),
    ) -> None:
        if (callback is None) == (inbox is None):
            raise InvalidArgumentError("callback", "give exactly one of callback= and inbox=")
        if callback is not None and not callable(callback):
            raise InvalidArgumentError("callback", f"must be callable, got {type(callback).__name__}")
        if inbox is not None and not isinstance(inbox, Inbox):
            raise InvalidArgumentError("inbox", f"must be an Inbox from open_inbox(), got {type(inbox).__name__}")
        if settings is not None and not isinstance(settings, ReceiverSettings):
            raise InvalidArgumentError("settings", f"must be a ReceiverSettings, got {type(settings).__name__}")
        self.settings = settings = settings or ReceiverSettings()
        self._secrets = normalize_secrets(secrets)
        self._callback = callback
        self._callback_is_async = is_coroutine_function(callback)
        self.inbox = inbox
        self._refusals = settings.refusal_log or RefusalLog()
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._reading: set[asyncio.Timeout] = set()  # the deadlines of the bodies being read
        self.closed = False
        self.asgi = WebhookASGIApp(self)
        """This receiver as an ASGI application: ``POST /`` deliveries, ``GET /health``."""
        self._hooks = tuple(hooks)

    def __repr__(self) -> str:
        return (
            f"<WebhookReceiver secrets=<{len(self._secrets)} hidden> org_id={self.settings.org_id!r} "
            f"inbox={self.inbox!r} in_flight={self._in_flight} closed={self.closed}>"
        )

    def refuse(self, status: int, level: int, reason: str, peer: str | None) -> int:
        """Log one refusal line (rate-limited) and return ``status``."""
        self._refusals.log(level, "webhook refused %d (%s) from %s", status, reason, peer or "?")
        return status

    async def accept(self, body: bytes | None, signature_header: str | None, peer: str | None = None) -> int:
        """Decide the status for one delivery (``None`` body: it was over ``settings.max_body_bytes``).

        The framework-neutral core of ``handle`` and ``asgi``: returns only once the
        delivery is stored (or handled), so the caller can answer with the status.
        """
        if self._hooks:
            return await observe_delivery(self._hooks, lambda: self._accept(body, signature_header, peer))
        return await self._accept(body, signature_header, peer)

    async def _accept(self, body: bytes | None, signature_header: str | None, peer: str | None) -> int:
        if self.closed:
            return 503
        if body is None:
            note_refusal("body_too_large")
            return self.refuse(413, logging.WARNING, f"body over {self.settings.max_body_bytes} bytes", peer)
        settings = self.settings
        try:
            signer, signed_at = check_signature(
                body,
                signature_header,
                self._secrets,
                tolerance=settings.tolerance,
                org_id=settings.org_id,
                now=settings.clock(),
            )
            # The inbox needs only a well-formed envelope; typing the data waits for the worker.
            event = (
                read_envelope(body) if self.inbox is not None else parse_event(body, org_id=signer, signed_at=signed_at)
            )
        except SignatureVerificationError as exc:
            level = logging.INFO if exc.reason in _QUIET_REASONS else logging.WARNING
            status = 400 if exc.reason is VerificationFailure.MALFORMED_BODY else 401
            note_refusal(exc.reason.value)
            return self.refuse(status, level, f"{exc.reason.value}: {exc.detail}", peer)
        note_verified()
        self._in_flight += 1
        self._idle.clear()
        try:
            if isinstance(event, WebhookEvent):
                return await self._run_callback(event)
            return await self._store(body, signer, signed_at, peer)
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()

    async def _store(self, body: bytes, org_id: str, signed_at: datetime | None, peer: str | None) -> int:
        assert self.inbox is not None
        inbox, at = self.inbox, None if signed_at is None else signed_at.timestamp()
        try:
            stored = await timed_commit(
                lambda traceparent: inbox.put(body, org_id=org_id, signed_at=at, traceparent=traceparent)
            )
        except InboxError as exc:  # rate-limited like refusals: an outage must not flood the log
            note_refusal("not_stored")
            return self.refuse(503, logging.ERROR, f"not stored, the sender will retry: {exc}", peer)
        if not stored:
            logger.debug("webhook duplicate acknowledged without storing it again")
        return 202

    async def _run_callback(self, event: WebhookEvent) -> int:
        try:
            if self._callback_is_async:
                result = self._callback(event)  # type: ignore[misc]
            else:
                result = await asyncio.to_thread(self._callback, event)  # type: ignore[arg-type]
            if inspect.isawaitable(result):
                await result
        except Exception:
            logger.exception("webhook callback failed for a %s event; answered 500", event.event_name)
            note_refusal("callback_failed")
            return 500
        return 202

    async def handle(self, request: web.Request) -> web.Response:
        """Handle one delivery (the aiohttp handler: ``app.router.add_post(path, receiver.handle)``)."""
        if self.closed:
            return web.Response(status=503)
        try:
            async with self.body_deadline():
                body = await self._read_body(request)
        except TimeoutError:
            status = self.body_timed_out(request.remote)
            response = web.Response(status=status, headers=self.retry_after(status))
            response.force_close()  # the rest of the body is never read: the connection cannot be reused
            return response
        except ConnectionError:  # the sender went away mid-body: a refusal line, not aiohttp's traceback
            response = web.Response(status=self.refuse(400, logging.INFO, "body cut short", request.remote))
            response.force_close()
            return response
        status = await self.accept(body, request.headers.get(SIGNATURE_HEADER), request.remote)
        return web.Response(status=status, headers=self.retry_after(status))

    def retry_after(self, status: int) -> dict[str, str]:
        """Return the ``Retry-After`` header a ``503`` carries: the inbox's ``commit_timeout``, rounded up."""
        if status != 503 or self.inbox is None:
            return {}
        return {"Retry-After": str(math.ceil(self.inbox.commit_timeout))}

    async def ready(self, _request: web.Request) -> web.Response:
        """``GET <path>/health/ready``: ``200`` when the inbox commits within its bound, else ``503``."""
        document, status = await self.ready_status()
        return web.json_response(document, status=status, headers=self.retry_after(status))

    async def ready_status(self) -> tuple[dict[str, str], int]:
        """Return the readiness document and its HTTP status (waits at most the inbox's ``commit_timeout``)."""
        if self.closed:
            return {"status": "closing"}, 503
        if self.inbox is not None and not await self.inbox.ready():
            return {"status": "inbox unavailable"}, 503
        return {"status": "ready"}, 200

    @contextlib.asynccontextmanager
    async def body_deadline(self) -> AsyncIterator[None]:
        """Bound a body read by ``settings.body_timeout`` (`TimeoutError`); `aclose` ends it at once.

        A body still arriving when the receiver closes is not a delivery in progress: nothing
        was verified, so the sender is answered ``503`` (it retries) rather than holding the
        shutdown for up to ``body_timeout``.
        """
        async with asyncio.timeout(self.settings.body_timeout) as deadline:
            self._reading.add(deadline)
            try:
                yield
            finally:
                self._reading.discard(deadline)

    def body_timed_out(self, peer: str | None) -> int:
        """Return the status for a body cut by `body_deadline`: ``503`` when closing, else ``408`` (logged)."""
        if self.closed:
            return 503
        return self.refuse(408, logging.WARNING, f"body not received within {self.settings.body_timeout:g} s", peer)

    async def health(self, _request: web.Request) -> web.Response:
        """``200 {"status": "ok"}`` while serving, ``503 {"status": "closing"}`` after `aclose`."""
        document, status = self.health_status()
        return web.json_response(document, status=status)

    def health_status(self) -> tuple[dict[str, str], int]:
        """Return the health document and its HTTP status."""
        return ({"status": "closing"}, 503) if self.closed else ({"status": "ok"}, 200)

    async def _read_body(self, request: web.Request) -> bytes | None:
        """Read the whole body, or return ``None`` as soon as it is known to exceed the limit."""
        limit = self.settings.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            return None
        body = bytearray()
        while chunk := await request.content.read(min(_CHUNK_BYTES, limit + 1 - len(body))):
            body += chunk
            if len(body) > limit:
                return None
        return bytes(body)

    async def aclose(self) -> None:
        """Refuse new deliveries (``503``) and wait up to ``settings.shutdown_timeout`` for those in progress.

        Idempotent; `add_webhook_route` calls it on application cleanup. The inbox stays
        open: whoever opened it closes it.
        """
        self.closed = True
        now = asyncio.get_running_loop().time()
        for deadline in self._reading:  # bodies still arriving are cut now, answered 503
            if not deadline.expired():  # one that just expired is being cut already
                deadline.reschedule(now)
        try:
            await asyncio.wait_for(self._idle.wait(), self.settings.shutdown_timeout)
        except TimeoutError:
            logger.warning("%d webhook deliveries still in progress at shutdown", self._in_flight)

    async def on_cleanup(self, _app: web.Application) -> None:
        """Call `aclose` (an ``app.on_cleanup`` hook)."""
        await self.aclose()


def add_webhook_route(
    app: web.Application,
    path: str,
    secrets: str | Sequence[str],
    callback: WebhookCallback | None = None,
    *,
    inbox: Inbox | None = None,
    settings: ReceiverSettings | None = None,
    hooks: Sequence[ReceivingHooks] = (),
) -> WebhookReceiver:
    """Mount a `WebhookReceiver` on ``POST path`` (and ``GET path/health``, ``path/health/ready``); close it on cleanup.

    The arguments after ``path`` are those of `WebhookReceiver` (a test keeps the two
    signatures identical). Returns the receiver.
    """
    receiver = WebhookReceiver(secrets, callback, inbox=inbox, settings=settings, hooks=hooks)
    app.router.add_post(path, receiver.handle)
    app.router.add_get(f"{path.rstrip('/')}/health", receiver.health)
    app.router.add_get(f"{path.rstrip('/')}/health/ready", receiver.ready)
    app.on_cleanup.append(receiver.on_cleanup)
    return receiver
