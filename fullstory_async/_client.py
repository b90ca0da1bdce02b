"""`Client`: configuration, the middleware chain and the session lifecycle."""

from __future__ import annotations

import asyncio
import ssl as _ssl
import sys
from collections.abc import Awaitable, Sequence
from types import TracebackType
from typing import Self

import aiohttp
import attrs

from fullstory_async._auth import Auth, check_base_url, resolve_api_key, resolve_base_url
from fullstory_async._error_decoder import response_decoder
from fullstory_async._exceptions import ClientClosedError, unsent
from fullstory_async._governor import RateGovernor, no_sleep
from fullstory_async._hooks import CallObserver, Hooks
from fullstory_async._messages import ApiRequest, ApiResponse
from fullstory_async._network import network_options
from fullstory_async._pipeline import Handler, Middleware, compose
from fullstory_async._retry import InFlight, RetryMiddleware, RetryPolicy
from fullstory_async._scrub import Secrets
from fullstory_async._timeout import DEFAULT_TIMEOUT, Timeout, as_timeout
from fullstory_async._transport import AiohttpTransport
from fullstory_async._validation import instance, number
from fullstory_async._version import __version__
from fullstory_async._webhooks import Webhooks

_PYTHON = ".".join(map(str, sys.version_info[:3]))
USER_AGENT = f"fullstory-async/{__version__} python/{_PYTHON} aiohttp/{aiohttp.__version__}"


def _check_count(name: str, value: object, least: int) -> int:
    return number(name, value, minimum=least, integer=True)  # type: ignore[no-any-return]


@attrs.frozen
class _Settings:
    """A client's configuration: one frozen record, read through the client's properties."""

    base_url: str
    timeout: Timeout
    retry: RetryPolicy
    max_response_bytes: int


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
        max_response_bytes: response bodies larger than this once decompressed are refused.
        allow_insecure_http: allow a plain ``http`` base URL to a non-loopback host.
        rate_governor: pace all calls of this client under the server's rate limit
            (`RateGovernor`, on by default); ``False`` turns it off.
        transport: an async ``(ApiRequest) -> ApiResponse`` to use instead of aiohttp,
            e.g. an in-memory handler in unit tests (the session options are then unused).
        proxy: the ``http://`` proxy of every request (``http://user:pass@proxy:3128``);
            overrides the environment's.
        trust_env: use ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``ALL_PROXY`` / ``NO_PROXY`` from
            the environment (as curl and httpx do; nothing else is bypassed, not even
            loopback). Read here, once; unused with a ``session`` or ``transport`` passed in.
        ssl: an ``ssl.SSLContext`` for the API's TLS: a private CA, a client certificate.
        hooks: `Hooks` that observe every call and every attempt (metrics, tracing); none
            by default, and then observing costs nothing.

    Settings are read-only (``client.retry``, ``client.timeout``...); `with_options`
    returns a client with other ones on the same session, pool and governor.

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
        _check_count("max_connections", max_connections, 0)
        _check_count("max_connections_per_host", max_connections_per_host, 0)
        key = resolve_api_key(api_key)
        settings = _Settings(
            base_url=check_base_url(resolve_base_url(base_url, key), allow_insecure_http=allow_insecure_http),
            timeout=as_timeout(timeout),
            retry=_check_retry(retry),
            max_response_bytes=_check_count("max_response_bytes", max_response_bytes, 1),
        )
        proxy_used, ssl = network_options(
            settings.base_url,
            proxy=proxy,
            ssl=ssl,
            trust_env=trust_env and session is None and transport is None,
            allow_insecure_http=allow_insecure_http,
        )
        for index, hook in enumerate(hooks):
            instance(f"hooks[{index}]", hook, Hooks)
        aiohttp_transport = AiohttpTransport(
            settings.base_url,
            timeout=settings.timeout,
            session=session,
            max_connections=max_connections,
            max_connections_per_host=max_connections_per_host,
            headers={"Accept": "application/json", "User-Agent": USER_AGENT},
            max_response_bytes=settings.max_response_bytes,
            proxy=proxy_used,
            ssl=ssl,
        )
        if rate_governor is True:
            sleep = asyncio.sleep if settings.retry.wait else no_sleep
            rate_governor = RateGovernor(max_pause=settings.retry.max_retry_after, sleep=sleep)
        self._in_flight = InFlight()
        self._secrets = Secrets(key)  # what server text is scrubbed of; shared with with_options copies
        self._setup(
            settings, aiohttp_transport, Auth(key), tuple(middleware), rate_governor or None, transport, tuple(hooks)
        )

    def _setup(
        self,
        settings: _Settings,
        aiohttp_transport: AiohttpTransport,
        auth: Auth,
        middleware: tuple[Middleware, ...],
        governor: RateGovernor | None,
        transport: Handler | None,
        hooks: tuple[Hooks, ...],
    ) -> None:
        self._settings = settings
        self._transport = aiohttp_transport
        self._auth = auth
        self._middleware = middleware
        self._governor = governor
        self._custom_transport = transport
        self._hooks = hooks
        chain: list[Middleware] = [*middleware, auth, RetryMiddleware(settings.retry, self._in_flight)]
        if hooks:  # observers only when observed: no cost otherwise
            chain = [CallObserver(hooks, settings.base_url), *chain]
        if governor is not None:
            chain.append(governor)
        chain.append(response_decoder(self._secrets))
        self._chain = compose(chain, transport or aiohttp_transport)
        self.webhooks: Webhooks = Webhooks(self)
        """The Webhooks v1 operations."""

    def with_options(
        self,
        *,
        timeout: float | Timeout | None = None,
        retry: RetryPolicy | None = None,
        max_response_bytes: int | None = None,
    ) -> Client:
        """Return a client with other settings on the same session, connection pool and rate governor.

        ::

            patient = fs.with_options(timeout=120, retry=RetryPolicy(max_attempts=8))

        Settings not given are kept. The API key and base URL cannot change (another
        organisation gets its own `Client`, and so its own rate governor); the shared
        governor keeps this client's ``max_retry_after`` and ``wait``. Closing the
        derived client ends its own calls (waiting or in flight) with `ClientClosedError` and
        leaves the shared session, pool and governor alone; closing this one closes both.
        """
        settings = attrs.evolve(
            self._settings,
            timeout=self._settings.timeout if timeout is None else as_timeout(timeout),
            retry=self._settings.retry if retry is None else _check_retry(retry),
            max_response_bytes=self._settings.max_response_bytes
            if max_response_bytes is None
            else _check_count("max_response_bytes", max_response_bytes, 1),
        )
        derived = Client.__new__(Client)
        derived._in_flight = InFlight(parent=self._in_flight)  # closing the copy ends its calls; this one, both
        derived._secrets = self._secrets
        transport = self._transport.derive(timeout=settings.timeout, max_response_bytes=settings.max_response_bytes)
        derived._setup(
            settings, transport, self._auth, self._middleware, self._governor, self._custom_transport, self._hooks
        )
        derived._root = False
        return derived

    _root = True  # a client made by the constructor owns the session; one from with_options shares it

    @property
    def base_url(self) -> str:
        """The API root the client talks to."""
        return self._settings.base_url

    @property
    def timeout(self) -> Timeout:
        """The default timeout of each attempt."""
        return self._settings.timeout

    @property
    def retry(self) -> RetryPolicy:
        """The `RetryPolicy` of every call (and of each bulk item's budget)."""
        return self._settings.retry

    @property
    def max_response_bytes(self) -> int:
        """The largest response body accepted, counted after decompression."""
        return self._settings.max_response_bytes

    @property
    def governor(self) -> RateGovernor | None:
        """The client's `RateGovernor` (shared with `with_options` copies), or ``None``."""
        return self._governor

    def __repr__(self) -> str:
        return f"Client(base_url={self.base_url!r}, api_key=<redacted>)"

    async def send(self, request: ApiRequest) -> ApiResponse:
        """Send a raw `ApiRequest` through the whole middleware chain.

        Returns the 2xx `ApiResponse` (``data`` holds the body decoded by
        ``request.decode``; ``attempts`` the attempts it took); any other status raises its
        `APIStatusError`. The typed methods on `webhooks` are built on this.
        """
        return await self._into_chain(request)

    def _into_chain(self, request: ApiRequest) -> Awaitable[ApiResponse]:
        """Check that a call may start (the client open, this loop its own); return the chain's awaitable.

        `send` awaits it; the typed operations, already running in the loop, hand it to their
        own ``await`` (one coroutine frame fewer on every call).
        """
        if self.closed:
            raise unsent(ClientClosedError("the client is closed; create a new Client"))
        self._transport.shared.check_loop()  # before the governor, whose waits belong to one loop
        return self._chain(request)

    async def _sleep(self, seconds: float) -> None:
        """Wait ``seconds`` as the retry layer waits: `ClientClosedError` at once when the client closes."""
        await self._in_flight.sleep(seconds)

    @property
    def closed(self) -> bool:
        """True once `aclose` has been called on this client (or on the one it derives from)."""
        return self._in_flight.closed or self._transport.closed

    async def aclose(self) -> None:
        """Close the client; idempotent.

        Every call waiting in it or in flight (a retry wait, a governor pause, a pacing
        slot, the connection pool, the server's answer) ends at once with
        `ClientClosedError`, with the client's own session or one passed in (which stays
        open). A client from `with_options` only stops itself: its own calls end, the
        shared session, pool and governor and the other clients are left alone.
        """
        self._in_flight.close()  # the one registry: every call of this client (and of its copies) ends now
        if self._root:
            await self._transport.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


def _check_retry(retry: object) -> RetryPolicy:
    return RetryPolicy() if retry is None else instance("retry", retry, RetryPolicy)
