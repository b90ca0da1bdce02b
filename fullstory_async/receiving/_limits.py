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
  order they began to wait), so a valid sender never waits behind stalled ones;
- when none is waiting (every connection is in a request, which the receiver bounds with
  its body timeout and the inbox with its commit timeout), the new connection is answered
  ``503``, ``Retry-After: 1``, ``Connection: close`` at once, without reading its request.

The body deadline is the receiver's own (`ReceiverSettings.body_timeout`), so it also holds
under servers we do not run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
from aiohttp import web

from fullstory_async._exceptions import InvalidArgumentError
from fullstory_async.receiving._settings import positive

FD_RESERVE = 64
"""Descriptors ``max_connections`` must leave free: half for the process itself (listening
sockets, the inbox's files or pool, stdio, the event loop), half for refused connections."""
_MAX_REFUSING = FD_RESERVE // 2
_REFUSAL_LINGER = 1.0  # seconds a refused connection waits for the sender to read the 503 and close
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


def check_descriptors(max_connections: int) -> None:
    """Raise `InvalidArgumentError` if ``max_connections`` does not fit the file-descriptor limit less `FD_RESERVE`."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Unix: no limit to read
        return
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and max_connections > soft - FD_RESERVE:
        raise InvalidArgumentError(
            "--max-connections",
            f"{max_connections} is above the file-descriptor limit {soft} less {FD_RESERVE} kept for the "
            f"process (at most {max(soft - FD_RESERVE, 0)}): lower it or raise the limit (ulimit -n)",
        )


class ConnectionGate:
    """Counts, times and evicts the connections of one server (see the module docstring).

    Install ``gate.middleware`` on the application (it tells the gate when a request head
    is complete and when its response is ready), then ``await gate.listen(runner.server, host, port)``.
    """

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self._factory: Callable[[], asyncio.Protocol] | None = None
        self._open: dict[asyncio.BaseTransport, _Connection] = {}
        self._waiting: dict[_Connection, None] = {}  # waiting for a request head, longest first
        self._refusing = 0

    def __repr__(self) -> str:
        return f"<ConnectionGate open={len(self._open)} waiting={len(self._waiting)} refusing={self._refusing}>"

    async def listen(self, factory: Callable[[], asyncio.Protocol], host: str, port: int) -> asyncio.Server:
        """Serve connections made by ``factory`` (aiohttp's ``runner.server``) on ``host:port``."""
        self._factory = factory
        return await asyncio.get_running_loop().create_server(lambda: _Connection(self), host, port)

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
        """Return the protocol that serves a new connection, or ``None`` if it is refused."""
        assert connection.transport is not None
        assert self._factory is not None
        if len(self._open) >= self.limits.max_connections:
            if not self._waiting:
                self._refuse(connection.transport)
                return None
            oldest = next(iter(self._waiting))
            self.forget(oldest)
            oldest.close()
        self._open[connection.transport] = connection
        return self._factory()

    def _refuse(self, transport: asyncio.Transport) -> None:
        self._refusing += 1  # until connection_lost
        if self._refusing > _MAX_REFUSING:  # the reserve is spent: no answer, the sender retries anyway
            transport.abort()
            return
        transport.write(_REFUSAL)
        transport.write_eof()  # the 503 then FIN; the sender's own close (or the linger) ends it
        asyncio.get_running_loop().call_later(_REFUSAL_LINGER, transport.close)

    def forget(self, connection: _Connection) -> None:
        """Stop tracking ``connection`` (it is closed or closing); idempotent."""
        connection.closed = True
        connection.cancel_timer()
        self._waiting.pop(connection, None)
        if connection.transport is not None and self._open.get(connection.transport) is connection:
            del self._open[connection.transport]

    def refusal_ended(self) -> None:
        """Count a refused connection as gone."""
        self._refusing -= 1

    def waiting(self, connection: _Connection, waiting: bool) -> None:
        """Move ``connection`` to the end of the waiting order, or out of it."""
        self._waiting.pop(connection, None)
        if waiting:
            self._waiting[connection] = None


class _Connection(asyncio.Protocol):
    """Wraps aiohttp's protocol for one connection: the gate's timers, then every call delegated."""

    def __init__(self, gate: ConnectionGate) -> None:
        self._gate = gate
        self._inner: asyncio.Protocol | None = None
        self.transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._idle = False  # after a response, before a byte of the next request
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._inner = self._gate.admit(self)
        if self._inner is not None:
            self.wait_for_head(idle=False)
            self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._inner is None:  # refused: the request is discarded
            return
        if self._idle:
            self.wait_for_head(idle=False)
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return None if self._inner is None else self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._inner is None:
            self._gate.refusal_ended()
            return
        self._gate.forget(self)
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

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
        """Close the connection (a deadline passed, or it was evicted)."""
        self._timer = None
        if self.transport is not None:
            self.transport.close()
