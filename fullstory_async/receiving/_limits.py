"""Connection limits for a server we run ourselves (``fullstory-async receive``).

aiohttp bounds a request head only through its keep-alive timer (armed at connect and after
each response, it closes a connection still waiting for a head: one number for both waits),
and caps header count and size in its parser. It neither caps connections nor bounds a
body. `ConnectionGate` adds what is missing in front of aiohttp's own protocol, which it
wraps (`_Connection` delegates every protocol call):

- a new connection has ``head_timeout`` to deliver a complete request head; after a
  response it may stay idle ``keepalive_timeout``, and once a byte of the next request
  arrives its head again has ``head_timeout``; past either, the connection is closed;
- at ``max_connections``, a new connection closes the one that has waited longest for its
  request head (least-recently-active eviction: the waiting connections are kept in the
  order they began to wait), so a valid sender never waits behind stalled ones; a new
  connection that has sent nothing yet is spared for its first 0.1 s, so a burst of new
  connections cannot push out a prompt sender before its request is read;
- when none is waiting (every connection is in a request, which the receiver bounds with
  its body timeout and the inbox with its commit timeout), the new connection is answered
  ``503``, ``Retry-After: 1``, ``Connection: close`` as soon as its request begins, without
  parsing it; it is closed by the sender or after a second. At most 32 such at once: past
  that, the oldest is closed, answered or not (a sender retries a reset as it retries a 503).

The body deadline is the receiver's own (`ReceiverSettings.body_timeout`), so it also holds
under servers we do not run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from ssl import SSLContext
from typing import Any

import attrs
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.log import server_logger

from fullstory_async._exceptions import InvalidArgumentError
from fullstory_async.receiving._refusals import RefusalLog
from fullstory_async.receiving._settings import positive

_BACKLOG = 32  # also the most connections asyncio accepts in one go, before the gate sees them
_MAX_REFUSING = 32  # refused connections lingering at once; past it the oldest is closed
FD_RESERVE = 4 * _BACKLOG + _MAX_REFUSING + 32
"""Descriptors ``max_connections`` must leave free (192): the connections between the kernel and
the gate (asyncio accepts a burst of up to the listen backlog, 32, per loop iteration, attaches
it to the gate one iteration later, and an evicted or refused connection's descriptor is closed
one iteration after that: under a connect flood up to four bursts are in flight, 128), refused
connections lingering (32), and the process itself (listening sockets, the inbox's files or pool,
stdio, the event loop: 32)."""
_FIRST_BYTE_GRACE = 0.1  # seconds: longer than a prompt sender takes to send its first bytes after connecting
_REFUSAL_LINGER = 1.0  # seconds a refused connection has to send its request, read the 503 and close
_REFUSAL = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@attrs.frozen(kw_only=True)
class ConnectionLimits:
    """The bounds of `ConnectionGate` and of aiohttp's parser (the ``receive`` flags of the same names)."""

    head_timeout: float = 10.0
    keepalive_timeout: float = 15.0
    max_connections: int = 512
    max_headers: int = 64
    max_header_bytes: int = 8190

    def __attrs_post_init__(self) -> None:
        positive("head_timeout", self.head_timeout)
        positive("keepalive_timeout", self.keepalive_timeout)
        for name in ("max_connections", "max_headers", "max_header_bytes"):
            positive(name, getattr(self, name), integer=True)

    def server_options(self) -> dict[str, Any]:
        """Keyword arguments for aiohttp's server: ``web.AppRunner(app, **limits.server_options())``."""
        return {
            "max_headers": self.max_headers,
            "max_field_size": self.max_header_bytes,  # one header line
            "max_line_size": self.max_header_bytes,  # the request line
            # The gate's timers close first; aiohttp's keep-alive timer stays as a backstop.
            "keepalive_timeout": self.head_timeout + self.keepalive_timeout,
            # A request whose body was not read (408, 413, 404) closes at once, not after 10 s of lingering.
            "lingering_time": 0,
        }


def descriptor_room() -> int | None:
    """Return the connections the file-descriptor limit leaves room for (its soft limit less `FD_RESERVE`).

    ``None`` when there is no limit to read (not on Unix, or unlimited).
    """
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Unix: no limit to read
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else max(soft - FD_RESERVE, 0)


def check_descriptors(max_connections: int) -> None:
    """Raise `InvalidArgumentError` if ``max_connections`` does not fit the file-descriptor limit less `FD_RESERVE`."""
    room = descriptor_room()
    if room is not None and max_connections > room:
        raise InvalidArgumentError(
            "--max-connections",
            f"{max_connections} is above the file-descriptor limit {room + FD_RESERVE} less {FD_RESERVE} kept for "
            f"the process (at most {room}): lower it or raise the limit (ulimit -n)",
        )


@asynccontextmanager
async def serve(
    app: web.Application, host: str, port: int, limits: ConnectionLimits, *, ssl: SSLContext | None = None
) -> AsyncIterator[int]:
    """Serve ``app`` on ``host:port`` within ``limits`` (over TLS with ``ssl``); yield the bound port; then clean up.

    Like aiohttp's ``AppRunner`` and ``TCPSite``, with a `ConnectionGate` in front.
    """
    gate = ConnectionGate(limits)
    app.middlewares.append(gate.middleware)
    options = limits.server_options()
    runner = web.AppRunner(app, access_log=None, handle_signals=False, logger=_ServerLog(), **options)
    await runner.setup()
    assert runner.server is not None
    server: asyncio.Server | None = None
    try:
        server = await gate.listen(runner.server, host, port, ssl=ssl)
        yield server.sockets[0].getsockname()[1]
    finally:
        if server is not None:
            await asyncio.sleep(0)  # connections accepted this iteration attach first (3.11 asserts otherwise)
            server.close()
        await runner.cleanup()


class _ServerLog(logging.Logger):
    """aiohttp's server logger under `serve`: a malformed request is one rate-limited refusal line.

    aiohttp logs every request its parser rejects (a scanner, a probe, a header over the caps)
    as an ERROR with a traceback: a stream of them would fill the log. Here each is a line
    of a `RefusalLog` (at most 10 every 10 s), like the receiver's own refusals; anything
    else goes on to aiohttp's ``aiohttp.server`` logger unchanged.
    """

    def __init__(self) -> None:
        super().__init__(server_logger.name)
        self.parent = server_logger
        self._refusals = RefusalLog()

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kwargs: Any) -> None:
        """Log a malformed request as a refusal line; anything else as aiohttp would."""
        if isinstance(exc_info, HttpProcessingError):
            # The parser's words only: after a colon it quotes the bytes (a header line: maybe a token).
            detail = str(exc_info.message).strip().partition(":")[0][:120] or type(exc_info).__name__
            peer = args[0] if args else "?"
            self._refusals.log(logging.INFO, "request refused %d (malformed: %s) from %s", exc_info.code, detail, peer)
            return
        server_logger.exception(msg, *args, exc_info=exc_info, **kwargs)


class ConnectionGate:
    """Counts, times and evicts the connections of one server (see the module docstring).

    `serve` installs ``gate.middleware`` on the application (it tells the gate when a request
    head is complete and when its response is ready) and listens with ``gate.listen``.
    """

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self._factory: Callable[[], asyncio.Protocol] | None = None
        self._open: dict[asyncio.BaseTransport, _Connection] = {}
        self._waiting: dict[_Connection, None] = {}  # waiting for a request head, longest first
        self._refused: dict[_Connection, None] = {}  # answered (or about to be) 503, oldest first

    def __repr__(self) -> str:
        return f"<ConnectionGate open={len(self._open)} waiting={len(self._waiting)} refused={len(self._refused)}>"

    async def listen(
        self, factory: Callable[[], asyncio.Protocol], host: str, port: int, *, ssl: SSLContext | None = None
    ) -> asyncio.Server:
        """Serve connections made by ``factory`` (aiohttp's ``runner.server``) on ``host:port`` (TLS with ``ssl``)."""
        self._factory = factory
        loop = asyncio.get_running_loop()
        return await loop.create_server(lambda: _Connection(self), host, port, backlog=_BACKLOG, ssl=ssl)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Mark the connection as in a request while ``handler`` runs."""
        connection = self._open.get(request.transport) if request.transport is not None else None
        if connection is None:
            return await handler(request)
        connection.in_request()
        try:
            return await handler(request)
        finally:
            connection.wait_for_head(idle=True)

    def admit(self, connection: _Connection) -> asyncio.Protocol | None:
        """Return the protocol that serves a new connection, or ``None`` if it is to be answered 503."""
        assert connection.transport is not None
        assert self._factory is not None
        if len(self._open) >= self.limits.max_connections:
            now = asyncio.get_running_loop().time()
            oldest = next((waiting for waiting in self._waiting if waiting.evictable(now)), None)
            if oldest is None:
                if len(self._refused) >= _MAX_REFUSING:  # the reserve is spent: close the oldest, answered first
                    answered = (refused for refused in self._refused if refused.answered)
                    self.evict(next(answered, next(iter(self._refused))))
                self._refused[connection] = None
                return None
            self.evict(oldest)
        self._open[connection.transport] = connection
        return self._factory()

    def evict(self, connection: _Connection) -> None:
        """Close ``connection`` and stop counting it at once (its ``connection_lost`` comes later)."""
        self.forget(connection)
        connection.close()

    def forget(self, connection: _Connection) -> None:
        """Stop tracking ``connection`` (it is closed or closing); idempotent."""
        connection.closed = True
        connection.cancel_timer()
        self._waiting.pop(connection, None)
        self._refused.pop(connection, None)
        if connection.transport is not None and self._open.get(connection.transport) is connection:
            del self._open[connection.transport]

    def waiting(self, connection: _Connection, waiting: bool) -> None:
        """Move ``connection`` to the end of the waiting order, or out of it."""
        self._waiting.pop(connection, None)
        if waiting:
            self._waiting[connection] = None


class _Connection(asyncio.Protocol):
    """Wraps aiohttp's protocol for one connection: the gate's timers, then every call delegated.

    A refused connection (no inner protocol) answers the first bytes of its request with
    the 503 and a FIN, discards the rest, and is closed by the sender or after `_REFUSAL_LINGER`.
    """

    def __init__(self, gate: ConnectionGate) -> None:
        self._gate = gate
        self._inner: asyncio.Protocol | None = None
        self.transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._idle = False  # after a response, before a byte of the next request
        self.answered = False  # a refused connection's 503 is written
        self.closed = False
        self._heard = False  # a byte has arrived
        self._since = 0.0  # loop time of connection_made

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._since = asyncio.get_running_loop().time()
        self._inner = self._gate.admit(self)
        if self._inner is None:
            self._timer = asyncio.get_running_loop().call_later(_REFUSAL_LINGER, self.close)
        else:
            self.wait_for_head(idle=False)
            self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self._heard = True
        if self._inner is None:  # refused: answer once the request has begun (a client may not read
            if not self.answered and self.transport is not None:  # an answer that precedes it)
                self.answered = True
                self.transport.write(_REFUSAL)
                self.transport.write_eof()
            return
        if self._idle:
            self.wait_for_head(idle=False)
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return None if self._inner is None else self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._gate.forget(self)
        if self._inner is not None:
            self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def evictable(self, now: float) -> bool:
        """Whether the gate may close this waiting connection for a new one.

        Once it has sent a byte (or had a response), yes; a silent new connection only after
        `_FIRST_BYTE_GRACE`, so that in a burst of new connections a prompt sender is read
        before a newer one can push it out.
        """
        return self._heard or now - self._since >= _FIRST_BYTE_GRACE

    def in_request(self) -> None:
        """Stop the head deadline: the request's head is in; the body and commit timeouts bound the rest."""
        self.cancel_timer()
        self._idle = False
        self._gate.waiting(self, False)

    def wait_for_head(self, *, idle: bool) -> None:
        """Wait for a request head: ``keepalive_timeout`` while ``idle``, else ``head_timeout``."""
        if self.closed:  # the response of a request whose connection is gone
            return
        limits = self._gate.limits
        self.cancel_timer()
        if not self._idle:  # a connection keeps its place in the waiting order from idle to head
            self._gate.waiting(self, True)
        self._idle = idle
        delay = limits.keepalive_timeout if idle else limits.head_timeout
        self._timer = asyncio.get_running_loop().call_later(delay, self.close)

    def cancel_timer(self) -> None:
        """Cancel the pending deadline, if any."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def close(self) -> None:
        """Close the connection (a deadline passed, or it was evicted); what was written is sent first."""
        self._timer = None
        if self.transport is not None:
            self.transport.close()
