"""`FakeFullstory`: configuration, lifecycle (bind 127.0.0.1, stop fast) and inspection."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from aiohttp import web

from fullstory_async.testing._app import FakeApp
from fullstory_async.testing._catalogue import Catalogue, EventTypeDef
from fullstory_async.testing._faults import Faults
from fullstory_async.testing._handlers import DuplicateUrlPolicy, Handlers
from fullstory_async.testing._pagination import LimitPolicy
from fullstory_async.testing._payload import parse_create_object
from fullstory_async.testing._ratelimit import RateLimit, RateLimiter
from fullstory_async.testing._requestlog import RequestLog
from fullstory_async.testing._responses import ApiError
from fullstory_async.testing._store import (
    EndpointStore,
    StoredEndpoint,
    StoredEventType,
    endpoint_id,
)

if TYPE_CHECKING:
    from fullstory_async import Client

_SHUTDOWN_TIMEOUT = 1.0
_DUPLICATE_URL_POLICIES = ("error", "replace", "return_existing", "allow")


def make_api_key(org_id: str = "FAKEORG", region: str = "na1") -> str:
    """Return a random key shaped like a real one: ``"na1.<random>/FAKEORG"``."""
    return f"{region}.{secrets.token_urlsafe(24)}/{org_id}"


class FakeFullstory:
    """An in-process fake of the Fullstory Webhooks v1 API (an aiohttp server).

    ::

        async with FakeFullstory() as fake:
            async with fake.client() as fs:
                await fs.webhooks.create_endpoint(...)
            assert len(fake.endpoints_with_url("https://example.com/hook")) == 1

    Args:
        catalogue: the event types offered (a `Catalogue` or `EventTypeDef` items);
            default `Catalogue.default`.
        duplicate_url: what a create with a URL already in use does (the docs do not
            say): ``"error"`` (400 ``already_exists``, the default), ``"replace"``
            (the old endpoint is deleted and a new one created), ``"return_existing"``
            (200 with the existing endpoint, unchanged) or ``"allow"`` (a second
            endpoint with another id). A URL-changing update onto a used URL is a 400
            ``already_exists`` unless ``"allow"``.
        out_of_range_limit: ``"error"`` (400 for ``limit`` outside 1..max, default) or
            ``"clamp"``.
        rate_limit: a `RateLimit` to enable the token bucket (off by default).
        clock: monotonic clock of the rate limiter (default ``time.monotonic``).
        wall_clock: epoch seconds for ``created``/``modified`` (default ``time.time``).
        seed: seed of the fault rules' random draws.
        request_log_size: how many requests `requests` keeps (0 turns it off).
        api_key: the admin key (default: a random ``na1.<random>/FAKEORG``).
        read_only_api_key: a key that may read but gets 403 on writes (default: random).
        org_id: the org id that ends the generated keys (``"FAKEORG"``).
        host: address to bind; port: port to bind (0 = a free one).

    """

    def __init__(
        self,
        *,
        catalogue: Catalogue | Iterable[EventTypeDef] | None = None,
        duplicate_url: DuplicateUrlPolicy = "error",
        out_of_range_limit: LimitPolicy = "error",
        rate_limit: RateLimit | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        seed: int = 0,
        request_log_size: int = 1000,
        api_key: str | None = None,
        read_only_api_key: str | None = None,
        org_id: str = "FAKEORG",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if duplicate_url not in _DUPLICATE_URL_POLICIES:
            raise ValueError(f"duplicate_url must be one of {_DUPLICATE_URL_POLICIES}")
        if out_of_range_limit not in ("error", "clamp"):
            raise ValueError("out_of_range_limit must be 'error' or 'clamp'")
        self.org_id = org_id
        """The org id, the suffix of the keys."""
        self.api_key = api_key or make_api_key(org_id)
        """The admin key: full access."""
        self.read_only_api_key = read_only_api_key or make_api_key(org_id)
        """A key that may read but gets 403 ``forbidden`` on writes."""
        if self.api_key == self.read_only_api_key:
            raise ValueError("api_key and read_only_api_key must differ")
        self.catalogue = (
            catalogue
            if isinstance(catalogue, Catalogue)
            else Catalogue(catalogue if catalogue is not None else Catalogue.default())
        )
        """The event types offered."""
        self.faults = Faults(seed)
        """The fault rules (`Faults.add`, `Faults.clear`)."""
        self.requests = RequestLog(request_log_size)
        """The most recent requests (`RequestLog`), newest last."""
        self._store = EndpointStore(wall_clock)
        self._limiter = RateLimiter(rate_limit, clock)
        self._handlers = Handlers(
            self._store, self.catalogue, duplicate_url=duplicate_url, limit_policy=out_of_range_limit
        )
        self._fake_app = FakeApp(
            handlers=self._handlers,
            faults=self.faults,
            limiter=self._limiter,
            log=self.requests,
            keys={self.api_key: "admin", self.read_only_api_key: "read_only"},
        )
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self._url: str | None = None

    def __repr__(self) -> str:
        where = self._url or "not started"
        return f"<FakeFullstory {where} endpoints={len(self._store)}>"

    # -- lifecycle -------------------------------------------------------------------

    @property
    def app(self) -> web.Application:
        """The aiohttp application, for ``aiohttp.test_utils.TestServer`` and friends."""
        return self._fake_app.app

    @property
    def url(self) -> str:
        """Base URL to connect to, e.g. ``"http://127.0.0.1:54321"`` (only once started).

        Bound on every interface (``host="0.0.0.0"``), it names the loopback address.
        """
        if self._url is None:
            raise RuntimeError("FakeFullstory is not started: use `async with` or start()")
        return self._url

    async def start(self) -> None:
        """Bind ``host:port`` and serve; a stopped fake may start again, its state kept."""
        if self._runner is not None:
            raise RuntimeError("FakeFullstory is already started")
        runner = web.AppRunner(
            self.app,
            handle_signals=False,
            access_log=None,
            handler_cancellation=True,
            shutdown_timeout=_SHUTDOWN_TIMEOUT,
        )
        await runner.setup()
        self._runner = runner
        try:
            site = web.TCPSite(runner, self._host, self._port, reuse_address=True)
            await site.start()
        except BaseException:
            await self.stop()
            raise
        host, port = runner.addresses[0][:2]
        if host in ("0.0.0.0", "::"):  # bound on every interface: the URL names one a client can reach
            host = "127.0.0.1" if host == "0.0.0.0" else "::1"
        host = f"[{host}]" if ":" in host else host
        self._url = f"http://{host}:{port}"

    async def stop(self) -> None:
        """Stop serving; requests waiting on injected latency are dropped. Idempotent."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        # Let connections accepted in this loop iteration attach to the server first: on
        # Python 3.11 a connection accepted just before the listener closes is leaked
        # (asyncio Server._attach asserts). cleanup() then closes the listener, and only
        # then runs on_shutdown, which ends latency waits, so a client retrying a dropped
        # request is refused instead of half-accepted.
        await asyncio.sleep(0)
        await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # -- configuration -----------------------------------------------------------------

    @property
    def rate_limit(self) -> RateLimit | None:
        """The rate limit; assign a `RateLimit` or None (off) at any time (buckets refill)."""
        return self._limiter.limit

    @rate_limit.setter
    def rate_limit(self, value: RateLimit | None) -> None:
        self._limiter.limit = value

    @property
    def duplicate_url(self) -> DuplicateUrlPolicy:
        """The duplicate-URL policy (see the class docstring)."""
        return self._handlers.duplicate_url

    # -- inspection --------------------------------------------------------------------

    @property
    def endpoints(self) -> Mapping[str, StoredEndpoint]:
        """A live read-only mapping id -> `StoredEndpoint` (secret included)."""
        return self._store.view

    def endpoints_with_url(self, url: str) -> list[StoredEndpoint]:
        """Every stored endpoint whose URL is exactly ``url`` (O(n) scan)."""
        return self._store.with_url(url)

    def add_endpoint(
        self,
        url: str,
        event_types: Iterable[StoredEventType | str] = ("note.created",),
        secret: str = "",
        *,
        enabled: bool = True,
    ) -> StoredEndpoint:
        """Store an endpoint directly (no HTTP, no faults, no log), as a create would.

        Event types are `StoredEventType` or plain names, checked against the catalogue.
        Raises ``ValueError`` where the API would answer 400 (a URL in use included,
        unless ``duplicate_url="allow"``). Fast enough to seed 100,000 endpoints.
        """
        wire = [{"eventName": e} if isinstance(e, str) else e.to_wire() for e in event_types]
        try:
            fields = parse_create_object({"url": url, "eventTypes": wire}, self.catalogue)
        except ApiError as exc:
            raise ValueError(exc.message) from None
        new_id = endpoint_id(url)
        if self._store.get(new_id) is not None:
            if self.duplicate_url != "allow":
                raise ValueError("an endpoint with this url already exists")
            new_id = self._store.free_id(url)
        return self._store.add(url, fields.event_types or (), secret, enabled=enabled, id=new_id)

    async def deliver(
        self,
        event_name: str,
        data: Mapping[str, Any] | None = None,
        *,
        endpoint_id: str,
        version: int = 1,
        timestamp: int | None = None,
    ) -> int:
        """POST a signed event to an endpoint's URL as Fullstory does; return the receiver's status.

        ``data`` defaults to the event's documented sample (`sample_event_data`).

        The body is ``{"eventName", "version", "data"}`` signed with the endpoint's stored
        secret and this fake's ``org_id`` (``Fullstory-Signature`` header). Like Fullstory,
        it delivers only event types the endpoint subscribes to (``"test"`` always), and
        only to enabled endpoints with a secret; anything else is a ``ValueError``.
        """
        import aiohttp

        from fullstory_async.testing._delivery import deliver_event
        from fullstory_async.testing._samples import sample_event_data

        endpoint = self._store.get(endpoint_id)
        if endpoint is None:
            raise ValueError(f"no endpoint with id {endpoint_id!r}")
        if not endpoint.enabled:
            raise ValueError(f"endpoint {endpoint_id!r} is disabled")
        if not endpoint.secret:
            raise ValueError(f"endpoint {endpoint_id!r} has no secret to sign with")
        if event_name != "test" and event_name not in {t.event_name for t in endpoint.event_types}:
            raise ValueError(f"endpoint {endpoint_id!r} does not subscribe to {event_name!r}")
        async with aiohttp.ClientSession() as session:
            return await deliver_event(
                session,
                endpoint.url,
                event_name=event_name,
                data=sample_event_data(event_name) if data is None else data,
                secret=endpoint.secret,
                org_id=self.org_id,
                version=version,
                timestamp=timestamp,
            )

    def reset(self) -> None:
        """Forget endpoints, requests and fault rules; refill rate buckets; reseed."""
        self._store.clear()
        self.requests.clear()
        self.faults.clear(reseed=True)
        self._limiter.reset()

    def client(self, **kwargs: Any) -> Client:
        """Return a `fullstory_async.Client` for this fake (api key and base URL preset).

        Keyword arguments go to ``Client``, e.g. ``retry=RetryPolicy(wait=False)``. The
        client ignores the environment's proxies (``trust_env=False``): the fake is local.
        """
        from fullstory_async import Client

        kwargs.setdefault("trust_env", False)
        kwargs.setdefault("api_key", self.api_key)
        kwargs.setdefault("base_url", self.url)
        return Client(**kwargs)
