"""`Client`: configuration, the middleware chain and the session lifecycle."""

from __future__ import annotations

import asyncio
import ssl as _ssl
import sys
from collections.abc import Sequence
from types import TracebackType
from typing import Self

import aiohttp

from fullstory_async._auth import Auth, check_base_url, default_base_url, resolve_api_key
from fullstory_async._error_decoder import decode_errors
from fullstory_async._exceptions import ClientClosedError, InvalidArgumentError, shown
from fullstory_async._governor import RateGovernor
from fullstory_async._hooks import AttemptObserver, CallObserver, Hooks
from fullstory_async._messages import ApiRequest, ApiResponse
from fullstory_async._network import network_options
from fullstory_async._pipeline import Handler, Middleware, compose
from fullstory_async._retry import RetryMiddleware, RetryPolicy
from fullstory_async._timeout import DEFAULT_TIMEOUT, Timeout, as_timeout
from fullstory_async._transport import AiohttpTransport
from fullstory_async._version import __version__
from fullstory_async._webhooks import Webhooks

_PYTHON = ".".join(map(str, sys.version_info[:3]))
USER_AGENT = f"fullstory-async/{__version__} python/{_PYTHON} aiohttp/{aiohttp.__version__}"


async def _no_sleep(_seconds: float) -> None:
    """Sleep that returns at once (``RetryPolicy(wait=False)``)."""


class Client:
    """An asynchronous client for the Fullstory Webhooks API.

    ::

        async with Client() as fs:  # key from FULLSTORY_API_KEY
            endpoint = await fs.webhooks.create_endpoint(CreateEndpointRequest(url=...))

    Args:
        api_key: the API key (Admin or Architect for webhooks); defaults to
            ``$FULLSTORY_API_KEY``. A missing key raises `InvalidArgumentError` here.
        base_url: API root; defaults to ``https://api.eu1.fullstory.com`` for ``eu1.``
            keys and ``https://api.fullstory.com`` otherwise. Plain ``http`` only for
            loopback hosts unless ``allow_insecure_http``.
        timeout: seconds, or a `Timeout`, for each attempt; calls take their own too.
        retry: the `RetryPolicy`.
        session: an ``aiohttp.ClientSession`` to use; the client never closes it.
        middleware: your middleware, outermost first; it wraps the built-in
            auth -> retry -> error decoding chain, so it sees each call once and never
            sees the ``Authorization`` header.
        max_connections: pool size of the client's own session (0 = unlimited).
        max_connections_per_host: per-host pool limit (0 = unlimited).
        max_response_bytes: response bodies larger than this are refused.
        allow_insecure_http: allow a plain ``http`` base URL to a non-loopback host.
        rate_governor: pace all calls of this client under the server's rate limit
            (`RateGovernor`, on by default); ``False`` turns it off.
        transport: an async ``(ApiRequest) -> ApiResponse`` to use instead of aiohttp,
            e.g. an in-memory handler in unit tests (the session options are then unused).
        proxy: the ``http://`` proxy of every request (``http://user:pass@proxy:3128``);
            overrides the environment's.
        trust_env: use ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``ALL_PROXY`` / ``NO_PROXY`` from
            the environment (as curl and httpx do; nothing else is bypassed, not even
            loopback). Read here, once; unused with a ``session`` passed in.
        ssl: an ``ssl.SSLContext`` for the API's TLS: a private CA, a client certificate.
        hooks: `Hooks` that observe every call and every attempt (metrics, tracing); none
            by default, and then observing costs nothing.

    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float | Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        session: aiohttp.ClientSession | None = None,
        middleware: Sequence[Middleware] = (),
        max_connections: int = 100,
        max_connections_per_host: int = 0,
        max_response_bytes: int = 10 * 1024 * 1024,
        allow_insecure_http: bool = False,
        rate_governor: bool | RateGovernor = True,
        transport: Handler | None = None,
        proxy: str | None = None,
        trust_env: bool = True,
        ssl: _ssl.SSLContext | None = None,
        hooks: Sequence[Hooks] = (),
    ) -> None:
        for name, value, least in (
            ("max_connections", max_connections, 0),
            ("max_connections_per_host", max_connections_per_host, 0),
            ("max_response_bytes", max_response_bytes, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise InvalidArgumentError(name, f"must be an integer >= {least}, got {shown(value)}")
        key = resolve_api_key(api_key)
        self.base_url = check_base_url(base_url or default_base_url(key), allow_insecure_http=allow_insecure_http)
        self.timeout = as_timeout(timeout)
        self.retry = retry if retry is not None else RetryPolicy()
        proxy_used, ssl = network_options(
            self.base_url,
            proxy=proxy,
            ssl=ssl,
            trust_env=trust_env and session is None,
            allow_insecure_http=allow_insecure_http,
        )
        self._transport = AiohttpTransport(
            self.base_url,
            timeout=self.timeout,
            session=session,
            max_connections=max_connections,
            max_connections_per_host=max_connections_per_host,
            headers={"Accept": "application/json", "User-Agent": USER_AGENT},
            max_response_bytes=max_response_bytes,
            proxy=proxy_used,
            ssl=ssl,
        )
        if rate_governor is True:
            sleep = asyncio.sleep if self.retry.wait else _no_sleep
            rate_governor = RateGovernor(max_pause=self.retry.max_retry_after, sleep=sleep)
        self.governor: RateGovernor | None = rate_governor or None
        """The client's `RateGovernor`, or ``None``."""
        chain: list[Middleware] = [*middleware, Auth(key), RetryMiddleware(self.retry, self.timeout)]
        if hooks:
            for index, hook in enumerate(hooks):
                if not isinstance(hook, Hooks):
                    raise InvalidArgumentError(f"hooks[{index}]", f"must be a Hooks instance, got {shown(hook)}")
            chain = [CallObserver(hooks, self.base_url), *chain, AttemptObserver(self.base_url)]
        if self.governor is not None:
            chain.append(self.governor)
        chain.append(decode_errors)
        self._send = compose(chain, transport or self._transport)
        self.webhooks: Webhooks = Webhooks(self)
        """The Webhooks v1 operations."""

    def __repr__(self) -> str:
        return f"Client(base_url={self.base_url!r}, api_key=<redacted>)"

    async def send(self, request: ApiRequest) -> ApiResponse:
        """Send a raw `ApiRequest` through the whole middleware chain.

        Returns the 2xx `ApiResponse`; any other status raises its `APIStatusError`.
        The typed methods on `webhooks` are built on this.
        """
        if self._transport.closed:
            raise ClientClosedError("the client is closed; create a new Client")
        return await self._send(request)

    @property
    def closed(self) -> bool:
        """True once `aclose` has been called."""
        return self._transport.closed

    async def aclose(self) -> None:
        """Close the client's own HTTP session. Idempotent; a session passed in stays open."""
        await self._transport.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
