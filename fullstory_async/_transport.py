"""The transport: the one core module that speaks aiohttp.

It turns an `ApiRequest` into an `ApiResponse`, or raises `APIConnectionError` /
`APITimeoutError`. It owns an ``aiohttp.ClientSession`` (created lazily inside the
running loop) unless one is passed in, which it then never closes. Redirects are not
followed, so the API key never travels to another origin.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time

import aiohttp
import yarl

from fullstory_async._exceptions import APIConnectionError, APITimeoutError, ClientClosedError, ResponseDecodeError
from fullstory_async._messages import ApiRequest, ApiResponse
from fullstory_async._timeout import Timeout

logger = logging.getLogger("fullstory_async")


class AiohttpTransport:
    """Send requests with aiohttp.

    Args:
        base_url: scheme, host and optional path prefix, without a trailing slash.
        timeout: default timeout of one attempt.
        session: a session to use instead of an owned one; never closed by the transport.
        max_connections: connection-pool size of the owned session (0 = unlimited).
        max_connections_per_host: per-host pool limit of the owned session (0 = unlimited).
        headers: headers sent with every request.
        max_response_bytes: larger response bodies are refused without being read whole.

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
    ) -> None:
        self.base_url = base_url
        self.timeout = timeout
        self._session = session
        self._owns_session = session is None
        self._limits = (max_connections, max_connections_per_host)
        self._headers = headers or {}
        self._max_response_bytes = max_response_bytes
        self._timeouts: dict[Timeout, aiohttp.ClientTimeout] = {}
        self._default_timeout = self._client_timeout(timeout)
        # Parsed URLs by path: aiohttp would parse the same string on every call otherwise.
        self._url = functools.lru_cache(maxsize=1024)(lambda path: yarl.URL(base_url + path, encoded=True))
        self.closed = False

    def _get_session(self) -> aiohttp.ClientSession:
        if self.closed:
            raise ClientClosedError("the client is closed; create a new Client")
        if self._session is not None and self._session.closed:  # the caller's own session, closed by them
            raise ClientClosedError("the aiohttp session given to the client is closed")
        if self._session is None:
            limit, per_host = self._limits
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=limit, limit_per_host=per_host),
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    def _client_timeout(self, timeout: Timeout) -> aiohttp.ClientTimeout:
        cached = self._timeouts.get(timeout)
        if cached is None:
            cached = self._timeouts[timeout] = aiohttp.ClientTimeout(total=timeout.total, sock_connect=timeout.connect)
        return cached

    async def __call__(self, request: ApiRequest) -> ApiResponse:
        session = self._get_session()
        headers = {**self._headers, **request.headers}
        if request.body is not None:
            headers.setdefault("Content-Type", "application/json")
        started = time.perf_counter()
        try:
            async with session.request(
                request.method,
                self._url(request.path),
                params=request.params or None,
                data=request.body,
                headers=headers,
                timeout=self._default_timeout if request.timeout is None else self._client_timeout(request.timeout),
                allow_redirects=False,
            ) as response:
                length = response.content_length
                if length is not None and length <= self._max_response_bytes:
                    body = await response.read()  # the usual case: a known length within the cap
                else:
                    body = await self._read(response, request)
                result = ApiResponse(status=response.status, headers=response.headers, body=body)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if (self.closed or session.closed) and (task is None or not task.cancelling()):
                # aiohttp cancels the calls queued for the pool when the session closes
                raise ClientClosedError("the client was closed while the call waited for a connection") from None
            raise
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise APITimeoutError(
                f"timed out after {time.perf_counter() - started:.3f}s ({request.method} {request.path})",
                method=request.method,
                path=request.path,
            ) from exc
        except aiohttp.ClientError as exc:
            raise APIConnectionError(
                f"connection error: {type(exc).__name__}: {exc} ({request.method} {request.path})",
                method=request.method,
                path=request.path,
            ) from exc
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s %s -> %d in %.1f ms",
                request.method,
                request.path,
                result.status,
                (time.perf_counter() - started) * 1000,
                extra={"fullstory_request_id": result.request_id, "fullstory_status": result.status},
            )
        return result

    async def _read(self, response: aiohttp.ClientResponse, request: ApiRequest) -> bytes:
        """Read a body of unknown or too large a length, never more than ``max_response_bytes`` + 1 bytes.

        A larger 2xx body is refused (`ResponseDecodeError`); a larger error body is cut
        to the limit, so the status still maps to its error class.
        """
        cap = self._max_response_bytes
        length = response.content_length
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
            size_text = f" of {length} bytes" if length is not None else ""
            raise ResponseDecodeError(
                f"body{size_text} exceeds max_response_bytes ({cap})", method=request.method, path=request.path
            )
        return body[:cap]

    async def aclose(self) -> None:
        """Close the owned session; idempotent. A session passed in is left open."""
        self.closed = True
        session, self._session = self._session, None
        if session is not None and self._owns_session and not session.closed:
            await session.close()
            await asyncio.sleep(0)
