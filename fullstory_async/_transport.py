"""The transport: the one core module that speaks aiohttp.

It turns an `ApiRequest` into an `ApiResponse`, or raises a typed error: every aiohttp
failure becomes `APIConnectionError` / `APITimeoutError`, a closed client or session
`ClientClosedError`, a session of another event loop `EventLoopError`. It owns an
``aiohttp.ClientSession`` (created lazily inside the running loop) unless one is passed
in, which it then never closes. Redirects are not followed, so the API key never travels
to another origin. Bodies are capped after decompression, while streaming. A body in a
``Content-Encoding`` that cannot be decoded (``br`` without Brotli, corrupt gzip) is a
`ResponseDecodeError`, not a connection failure: the same bytes would fail again; on an
error status read after its headers (corrupt gzip) the body is dropped and the status decides.
"""

from __future__ import annotations

import asyncio
import functools
import ssl as _ssl
import time
from typing import Any

import aiohttp
import yarl
from aiohttp.http_exceptions import ContentEncodingError

from fullstory_async._exceptions import (
    APIConnectionError,
    APITimeoutError,
    ClientClosedError,
    EventLoopError,
    ResponseDecodeError,
    unsent,
)
from fullstory_async._messages import ApiRequest, ApiResponse
from fullstory_async._network import Proxy
from fullstory_async._timeout import Timeout


class SharedSession:
    """The aiohttp session (and so the connection pool) of a client and of its `with_options` copies."""

    def __init__(self, session: aiohttp.ClientSession | None, limits: tuple[int, int]) -> None:
        self._session = session
        self.owned = session is None
        self._limits = limits
        self._loop: asyncio.AbstractEventLoop | None = None
        self.closed = False

    @property
    def session(self) -> aiohttp.ClientSession | None:
        """The session, once created (an owned one is created by the first call)."""
        return self._session

    def check_loop(self) -> None:
        """Raise `EventLoopError` unless the running loop is the client's: its first call's, or the session's passed in.

        The client checks it once per call, before the rate governor (whose waits belong to one loop).
        """
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            if self._loop is None:
                self._loop = getattr(self._session, "_loop", None) or loop
                if self._loop is loop:
                    return
            raise EventLoopError(
                "the client's HTTP session belongs to another event loop; create the Client in the loop that uses it"
            )

    def get(self) -> aiohttp.ClientSession:
        """Return the session for a call in the client's loop, or raise the typed reason it cannot be used."""
        if self.closed:
            raise unsent(ClientClosedError("the client is closed; create a new Client"))
        session = self._session
        if session is None:
            limit, per_host = self._limits
            session = self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=limit, limit_per_host=per_host),
                cookie_jar=aiohttp.DummyCookieJar(),
            )
            # aiohttp re-sends an idempotent request once, unseen, when a kept-alive connection
            # drops; that would make one attempt two requests and break the max_attempts bound.
            # (The switch is private; aiohttp's own test client sets it the same way.)
            if hasattr(session, "_retry_connection"):
                session._retry_connection = False
        elif session.closed:
            raise unsent(ClientClosedError("the aiohttp session passed to the Client is closed"))
        return session

    async def aclose(self) -> None:
        """Close an owned session; idempotent. A session passed in is left open."""
        self.closed = True
        session = self._session
        if self.owned:
            self._session = None
        if session is not None and self.owned and not session.closed:
            await session.close()
            await asyncio.sleep(0)


@functools.lru_cache(maxsize=64)
def _client_timeout(timeout: Timeout) -> aiohttp.ClientTimeout:
    """Aiohttp's timeout for one of ours (bounded cache: a few distinct values in practice)."""
    return aiohttp.ClientTimeout(total=timeout.total, sock_connect=timeout.connect)


class AiohttpTransport:
    """Send requests with aiohttp.

    Args:
        base_url: scheme, host and optional path prefix, without a trailing slash.
        timeout: default timeout of one attempt.
        session: a session to use instead of an owned one; never closed by the transport.
        max_connections: connection-pool size of the owned session (0 = unlimited).
        max_connections_per_host: per-host pool limit of the owned session (0 = unlimited).
        headers: headers sent with every request.
        max_response_bytes: larger response bodies (after decompression) are refused
            without being read whole.
        shared: the `SharedSession` of another transport to use (`derive`).
        proxy: the proxy every request goes through, or ``None``.
        ssl: the TLS context of every request (a private CA, a client certificate), or ``None``.

    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout: Timeout,
        session: aiohttp.ClientSession | None = None,
        max_connections: int = 100,
        max_connections_per_host: int = 0,
        headers: dict[str, str] | None = None,
        max_response_bytes: int = 10 * 1024 * 1024,
        shared: SharedSession | None = None,
        proxy: Proxy | None = None,
        ssl: _ssl.SSLContext | None = None,
    ) -> None:
        self.base_url = base_url
        self.timeout = timeout
        self.shared = shared or SharedSession(session, (max_connections, max_connections_per_host))
        self._headers = headers or {}
        self._max_response_bytes = max_response_bytes
        self._default_timeout = _client_timeout(timeout)
        # Parsed URLs by path: aiohttp would parse the same string on every call otherwise.
        self._url = functools.lru_cache(maxsize=1024)(lambda path: yarl.URL(base_url + path, encoded=True))
        self._proxy, self._ssl = proxy, ssl
        self._options: dict[str, Any] = {}  # per-request proxy and TLS options
        if proxy is not None:
            self._options["proxy"] = yarl.URL(proxy.url)
        if proxy is not None and proxy.authorization is not None:
            if base_url.startswith("https:"):  # sent on the CONNECT request only
                self._options["proxy_headers"] = {"Proxy-Authorization": proxy.authorization}
            else:  # a plain request goes to the proxy whole
                self._headers = {**self._headers, "Proxy-Authorization": proxy.authorization}
        if ssl is not None:
            self._options["ssl"] = ssl

    def derive(self, *, timeout: Timeout, max_response_bytes: int) -> AiohttpTransport:
        """Return a transport with other settings on the same session and pool."""
        return AiohttpTransport(
            self.base_url,
            timeout=timeout,
            headers=self._headers,
            max_response_bytes=max_response_bytes,
            shared=self.shared,
            proxy=self._proxy,
            ssl=self._ssl,
        )

    @property
    def closed(self) -> bool:
        """True once the shared session was closed by `aclose`."""
        return self.shared.closed

    @property
    def _session(self) -> aiohttp.ClientSession | None:
        return self.shared.session

    def _timeout_for(self, request: ApiRequest) -> tuple[aiohttp.ClientTimeout, bool]:
        """Aiohttp's timeout of this attempt, cut to what is left of the deadline; and whether it was cut."""
        timeout = request.timeout or self.timeout
        deadline = request.deadline
        left = None if deadline is None else deadline - time.monotonic()
        if left is None or (timeout.total is not None and left >= timeout.total):
            return (self._default_timeout if request.timeout is None else _client_timeout(timeout)), False
        if left <= 0:
            raise APITimeoutError(
                f"the operation's deadline passed before the attempt ({request.method} {request.path})",
                method=request.method,
                path=request.path,
            )
        connect = left if timeout.connect is None else min(timeout.connect, left)
        return aiohttp.ClientTimeout(total=left, sock_connect=connect), True

    async def __call__(self, request: ApiRequest) -> ApiResponse:
        session = self.shared.get()
        headers = {**self._headers, **request.headers}
        if request.body is not None:
            headers.setdefault("Content-Type", "application/json")
        timeout, cut = self._timeout_for(request)
        started = time.perf_counter()
        try:
            async with session.request(
                request.method,
                self._url(request.path),
                params=request.params or None,
                data=request.body,
                headers=headers,
                timeout=timeout,
                allow_redirects=False,
                **self._options,
            ) as response:
                length = response.content_length
                plain = (
                    length is not None and length <= self._max_response_bytes and not response.headers.get(_ENCODING)
                )
                try:  # the usual case: a known length within the cap, not compressed, read at once
                    body = await response.read() if plain else await self._read(response, request)
                except (aiohttp.ClientError, RuntimeError) as exc:
                    if _encoding_error(exc) is None or 200 <= response.status < 300:
                        raise
                    body = b""  # an error status says what happened without its (undecodable) body
                result = ApiResponse(status=response.status, headers=response.headers, body=body)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if (self.shared.closed or session.closed) and (task is None or not task.cancelling()):
                # aiohttp cancels the calls queued for the pool when the session closes; a caller's
                # own cancellation stays a CancelledError
                raise self._closed_error(session) from None
            raise
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            if self.shared.closed or session.closed:
                raise self._closed_error(session) from exc
            why = "the operation's deadline was reached" if cut else "timed out"
            raise APITimeoutError(
                f"{why} after {time.perf_counter() - started:.3f}s ({request.method} {request.path})",
                method=request.method,
                path=request.path,
            ) from exc
        except (aiohttp.ClientError, RuntimeError) as exc:
            if self.shared.closed or session.closed:
                raise self._closed_error(session) from exc
            undecodable = _encoding_error(exc)
            if undecodable is not None:  # the bytes arrived: decoding them failed
                raise ResponseDecodeError(
                    f"the body's Content-Encoding cannot be decoded ({undecodable.message})",
                    method=request.method,
                    path=request.path,
                ) from exc
            raise APIConnectionError(
                f"connection error: {type(exc).__name__}: {exc} ({request.method} {request.path})",
                method=request.method,
                path=request.path,
            ) from exc
        return result

    def _closed_error(self, session: aiohttp.ClientSession) -> ClientClosedError:
        if self.shared.closed:
            return ClientClosedError("the client was closed while the call was in flight or queued")
        return ClientClosedError("the aiohttp session passed to the Client was closed while the call was in flight")

    async def _read(self, response: aiohttp.ClientResponse, request: ApiRequest) -> bytes:
        """Read a body of unknown, too large a length or compressed, never more than ``max_response_bytes`` + 1 bytes.

        The cap counts decoded bytes: aiohttp (>= 3.14.4) inflates in bounded chunks as
        they are read, so a compressed bomb is refused after about the cap, never inflated
        whole. A larger 2xx body is refused (`ResponseDecodeError`); a larger error body
        is cut to the limit, so the status still maps to its error class.
        """
        cap = self._max_response_bytes
        length = None if response.headers.get(_ENCODING) else response.content_length  # compressed: not the size
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_chunked(64 * 1024):
            chunks.append(chunk)
            size += len(chunk)
            if size > cap:
                break
        body = b"".join(chunks)
        if size <= cap:
            return body
        if 200 <= response.status < 300:
            what = f"body of {length} bytes" if length is not None else f"body ({size} bytes decoded when refused)"
            raise ResponseDecodeError(
                f"{what} exceeds max_response_bytes ({cap}) once decoded",
                method=request.method,
                path=request.path,
            )
        return body[:cap]

    async def aclose(self) -> None:
        """Close the shared session if owned; idempotent. A session passed in is left open."""
        await self.shared.aclose()


_ENCODING = "Content-Encoding"


def _encoding_error(exc: BaseException) -> ContentEncodingError | None:
    """Return the aiohttp `ContentEncodingError` among ``exc``'s causes (aiohttp wraps it twice), or ``None``."""
    cause: BaseException | None = exc
    for _ in range(4):
        if cause is None or isinstance(cause, ContentEncodingError):
            return cause
        cause = cause.__cause__
    return None
