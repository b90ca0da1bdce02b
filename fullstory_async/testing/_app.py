"""The aiohttp application: routing and the per-request pipeline around the handlers.

Each request goes: faults chosen -> latency -> (a fault before commit answers now) ->
``Authorization`` (401) -> rate limit (429) -> read-only key on a write (403) -> the
handler (400/404 or the result) -> (a fault after commit replaces the response) -> the
request log. Handlers are synchronous, so each one applies its change atomically.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from fullstory_async.testing._faults import Fault, FaultKind, Faults
from fullstory_async.testing._handlers import Handlers
from fullstory_async.testing._pagination import PaginationError
from fullstory_async.testing._ratelimit import RateLimiter
from fullstory_async.testing._requestlog import KeyRole, RecordedRequest, RequestLog, redact_headers
from fullstory_async.testing._responses import (
    FORBIDDEN,
    INVALID_ARGUMENT,
    JSON,
    NOT_FOUND,
    SERVER_ERROR,
    TOO_MANY_REQUESTS,
    UNAUTHORIZED,
    ApiError,
    error_response,
)
from fullstory_async.testing._routes import OPERATIONS, Operation

logger = logging.getLogger("fullstory_async.testing")

Handler = Callable[[web.Request, bytes], web.Response]
_LINGER_RESET = struct.pack("ii", 1, 0)


def _reset_connection(request: web.BaseRequest) -> None:
    """Drop the connection without an answer (RST, like a crashed backend)."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    transport.abort()


def _fault_response(fault: Fault) -> web.Response | None:
    if fault.kind is FaultKind.RESET:
        return None
    headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else None
    if fault.kind is FaultKind.ERROR:
        return error_response(fault.status, fault.code, fault.message, headers)
    content_type = "text/html" if fault.kind is FaultKind.HTML else JSON
    return web.Response(body=fault.body, status=fault.status, content_type=content_type, headers=headers)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class FakeApp:
    """The aiohttp ``web.Application`` of one fake and the state its handlers use."""

    def __init__(
        self,
        *,
        handlers: Handlers,
        faults: Faults,
        limiter: RateLimiter,
        log: RequestLog,
        keys: Mapping[str, KeyRole],
    ) -> None:
        self.handlers = handlers
        self.faults = faults
        self.limiter = limiter
        self.log = log
        self._keys = dict(keys)
        self._sleepers: set[asyncio.Future[None]] = set()
        self._closing = False
        self.app = web.Application()
        for operation in OPERATIONS:
            handler: Handler = getattr(handlers, operation.name)
            self.app.router.add_route(operation.method, operation.path, self._route(operation, handler))
        self.app.router.add_route("*", "/{tail:.*}", self._unknown_route)
        self.app.on_startup.append(self._on_startup)
        self.app.on_shutdown.append(self._on_shutdown)

    # -- lifecycle -------------------------------------------------------------------

    async def _on_startup(self, _: web.Application) -> None:
        self._closing = False

    async def _on_shutdown(self, _: web.Application) -> None:
        self.wake_sleepers()

    def wake_sleepers(self) -> None:
        """End every latency wait now (the fake is stopping); those requests get no answer."""
        self._closing = True
        for waiter in self._sleepers:
            _wake(waiter)

    async def _sleep(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        timer = loop.call_later(seconds, _wake, waiter)
        self._sleepers.add(waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._sleepers.discard(waiter)

    # -- pipeline --------------------------------------------------------------------

    def _route(self, operation: Operation, handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            return await self._dispatch(operation, handler, request)

        return handle

    async def _dispatch(self, operation: Operation, handler: Handler, request: web.Request) -> web.StreamResponse:
        body = await request.read() if request.body_exists else b""
        delay, fault, applied = (
            self.faults.select(operation.name, request.method, request.path, operation.path)
            if self.faults
            else (0.0, None, ())
        )
        role: KeyRole | None = None
        status: int | None = None
        late = sum(f.seconds for f in applied if f.kind is FaultKind.LATENCY and f.after_commit)
        try:
            if delay > late:
                await self._sleep(delay - late)
                if self._closing:
                    _reset_connection(request)
                    return web.Response()
            response: web.Response | None
            if fault is not None and not fault.after_commit:
                response = _fault_response(fault)
            else:
                role, response = self._serve(operation, handler, request, body)
                if fault is not None:
                    response = _fault_response(fault)
            if late:
                await self._sleep(late)
                if self._closing:
                    response = None
            if response is None:
                _reset_connection(request)
                return web.Response()  # written to a closed transport: nothing is sent
            status = response.status
            return response
        finally:
            if self.log.enabled:
                self._record(request, body, status, operation.name, role, applied)

    def _serve(
        self, operation: Operation, handler: Handler, request: web.Request, body: bytes
    ) -> tuple[KeyRole | None, web.Response]:
        role = self._authenticate(request)
        if role is None:
            return None, error_response(*UNAUTHORIZED)
        retry_after = self.limiter.acquire(role, operation.name)
        if retry_after is not None:
            return role, error_response(*TOO_MANY_REQUESTS, headers={"Retry-After": retry_after})
        if operation.writes and role == "read_only":
            return role, error_response(*FORBIDDEN)
        try:
            return role, handler(request, body)
        except ApiError as exc:
            return role, error_response(exc.status, exc.code, exc.message)
        except PaginationError as exc:
            return role, error_response(400, INVALID_ARGUMENT, str(exc))
        except Exception:
            logger.exception("fake Fullstory: handler %s failed", operation.name)
            return role, error_response(*SERVER_ERROR)

    def _authenticate(self, request: web.Request) -> KeyRole | None:
        header = request.headers.get("Authorization")
        if header is None:
            return None
        scheme, _, credential = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        return self._keys.get(credential.strip())

    def _record(
        self,
        request: web.Request,
        body: bytes,
        status: int | None,
        operation: str | None,
        role: KeyRole | None,
        applied: tuple[Fault, ...],
    ) -> None:
        self.log.append(
            RecordedRequest(
                method=request.method,
                path=request.path,
                query=dict(request.query),
                headers=redact_headers(request.headers),
                body=body,
                status=status,
                operation=operation,
                key_role=role,
                faults=applied,
            )
        )

    async def _unknown_route(self, request: web.Request) -> web.StreamResponse:
        body = await request.read() if request.body_exists else b""
        if self.log.enabled:
            self._record(request, body, NOT_FOUND[0], None, None, ())
        return error_response(*NOT_FOUND)
