"""Safe, idempotent create (`ensure_endpoint`) and streaming bulk provisioning (`provision`).

A plain create is not idempotent: after a timeout, a reset or a 5xx the endpoint may or
may not exist. Here nothing is created until the URL is known to be absent, and after an
ambiguous failure the URL is looked up again before any new attempt, so no number of
retries makes a second endpoint for one URL, and re-running a job changes nothing.

Looking a URL up: endpoint ids appear to be the unpadded base64url of the URL (API
reference §2.2), so one ``GET /endpoints/{id}`` finds it. A 404 there is conclusive only
once this client has seen an endpoint whose id is derived that way; until then, and for
ever if one is seen that is not, the lookup falls back to walking the listing.

One budget per item: `ensure_endpoint` and each `provision` item run their lookups,
create and reconcile within one core `Budget` (the retry policy's ``operation_timeout``, from
when the item is admitted), each request bounded by ``max_attempts`` (A). With P the pages of a
full listing (0 once ids are known to be derived from URLs), a lookup makes at most
``L = A * (1 + P)`` requests, and one item at most ``(A + 1) * (L + A)``: A rounds of
lookup and create, then after a create refused as existing one more lookup and an update.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Literal

from fullstory_async import _budget
from fullstory_async._bulk.budget import Admission, budgeted
from fullstory_async._bulk.operations import Operations
from fullstory_async._bulk.results import ApplyResult, ProvisionResult
from fullstory_async._bulk.streaming import stream_map
from fullstory_async._exceptions import (
    APIConnectionError,
    APIStatusError,
    ClientClosedError,
    EndpointExistsError,
    FullstoryError,
    InvalidArgumentError,
    NotFoundError,
    ResponseDecodeError,
    ServerError,
    shown,
)
from fullstory_async._models import CreateEndpointRequest, Endpoint, EventType, UpdateEndpointRequest
from fullstory_async._results import Outcome
from fullstory_async._retry import RetryPolicy
from fullstory_async._validation import instance, number

if TYPE_CHECKING:
    from fullstory_async._bulk.desired import DesiredState
    from fullstory_async._bulk.reconcile import Plan
    from fullstory_async._governor import RateGovernor

logger = logging.getLogger("fullstory_async")

OnExists = Literal["skip", "update", "error"]
_ON_EXISTS = ("skip", "update", "error")
# Failures after which a create may or may not have been applied.
_AMBIGUOUS = (ServerError, APIConnectionError, ResponseDecodeError)


def derived_endpoint_id(url: str) -> str:
    """Return the id Fullstory appears to give the endpoint of ``url``: unpadded base64url of the URL."""
    return base64.urlsafe_b64encode(url.encode()).rstrip(b"=").decode()


def _same_event_types(a: Iterable[EventType], b: Iterable[EventType]) -> bool:
    return set(a) == set(b)


def differs(existing: Endpoint, request: CreateEndpointRequest) -> bool:
    """Whether ``existing`` must be updated to match ``request`` (secrets cannot be compared).

    An empty ``event_types`` in the request means "no opinion": the API cannot clear them.
    """
    return bool(request.event_types) and not _same_event_types(existing.event_types, request.event_types)


class Provisioner:
    """The bulk wing's entry: ``client.webhooks.ensure_endpoint``, ``provision``, ``plan`` and ``apply``.

    Built by ``client.webhooks`` on first use, on its public operations (``webhooks``) and
    the client's settings: ``retry`` (each item's budget and ``max_attempts``), ``governor``
    (which admits a job's items) and ``sleep`` (a wait that ends when the client closes).
    """

    def __init__(
        self,
        webhooks: Operations,
        *,
        retry: RetryPolicy,
        governor: RateGovernor | None,
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        self.webhooks = webhooks
        self.retry = retry
        self.governor = governor
        self.sleep = sleep
        self._ids_derived: bool | None = None  # None: not yet known

    async def plan(
        self,
        desired: DesiredState,
        *,
        prune: bool,
        rotate_secrets: bool,
        max_deletes: int | None,
        allow_unlisted_event_types: bool,
    ) -> Plan:
        """See `Webhooks.plan`."""
        from fullstory_async._bulk import reconcile  # on first use: most programs never plan

        return await reconcile.plan(
            self,
            desired,
            prune=prune,
            rotate_secrets=rotate_secrets,
            max_deletes=max_deletes,
            allow_unlisted_event_types=allow_unlisted_event_types,
        )

    def apply(self, plan: Plan, *, concurrency: int) -> AsyncGenerator[ApplyResult, None]:
        """See `Webhooks.apply`: the arguments are checked here, before any change runs."""
        from fullstory_async._bulk import reconcile

        check_concurrency(concurrency)
        return reconcile.apply(self, reconcile.check_plan(plan), concurrency=concurrency)

    def observe(self, endpoint: Endpoint) -> None:
        """Learn from an endpoint whether ids are derived from URLs."""
        if self._ids_derived is not False:
            self._ids_derived = endpoint.id == derived_endpoint_id(endpoint.url)

    async def lookup(self, url: str) -> Endpoint | None:
        """Return the endpoint with exactly this URL, or ``None`` when there is none."""
        try:
            endpoint: Endpoint | None = await self.webhooks.get_endpoint(derived_endpoint_id(url))
        except NotFoundError:
            endpoint = None
        if endpoint is not None and endpoint.url == url:
            self.observe(endpoint)
            return endpoint
        if self._ids_derived:
            return None
        return await self.webhooks.find_endpoint_by_url(url)

    async def reconcile(
        self, existing: Endpoint, request: CreateEndpointRequest, on_exists: OnExists
    ) -> tuple[Endpoint, Outcome]:
        """Bring an existing endpoint in line with ``request`` as ``on_exists`` says."""
        if on_exists == "skip":
            return existing, Outcome.SKIPPED
        if on_exists == "error":
            error = EndpointExistsError(existing)
            error.attempts = _budget.attempts_so_far()  # the item's lookups
            raise error
        if not differs(existing, request):
            return existing, Outcome.UNCHANGED
        update = UpdateEndpointRequest(event_types=request.event_types, secret=request.secret, enabled=existing.enabled)
        updated = await self.webhooks.update_endpoint(existing.id, update)
        self.observe(updated)
        return updated, Outcome.UPDATED

    async def ensure(self, request: CreateEndpointRequest, on_exists: object) -> tuple[Endpoint, Outcome]:
        """`Webhooks.ensure_endpoint`: `create` within the current budget, else within a new one."""
        instance("request", request, CreateEndpointRequest)
        checked = check_on_exists(on_exists)
        if _budget.current() is not None:
            return await self.create(request, checked)
        result, error, _attempts = await budgeted(self.retry.operation_timeout, lambda: self.create(request, checked))
        if error is not None:
            raise error
        assert result is not None
        return result

    async def create(
        self, request: CreateEndpointRequest, on_exists: OnExists, *, known_absent: bool = False
    ) -> tuple[Endpoint, Outcome]:
        """Create ``request`` unless its URL exists; after an ambiguous failure look again before retrying."""
        attempt = 0
        while True:
            if not known_absent:
                existing = await self.lookup(request.url)
                if existing is not None:
                    return await self._settle(existing, request, on_exists, attempt)
            attempt += 1
            try:
                endpoint = await self.webhooks.create_endpoint(request)
            except _AMBIGUOUS as exc:
                if attempt >= self.retry.max_attempts or not exc.sent:
                    raise  # out of attempts, or refused before sending (nothing to look for)
                if not await self._pause(attempt):
                    raise  # the wait would outlast the item's budget: the ambiguous failure stands
                known_absent = False
                continue
            except APIStatusError as exc:
                # A create refused because the URL exists (the API documents no code for it).
                if exc.status not in (400, 409):
                    raise
                existing = await self.lookup(request.url)
                if existing is None:
                    raise
                return await self._settle(existing, request, on_exists, 0)
            self.observe(endpoint)
            return endpoint, Outcome.CREATED

    async def _settle(
        self, existing: Endpoint, request: CreateEndpointRequest, on_exists: OnExists, our_attempts: int
    ) -> tuple[Endpoint, Outcome]:
        if our_attempts and not differs(existing, request):
            return existing, Outcome.CREATED  # our ambiguous attempt did create it
        return await self.reconcile(existing, request, on_exists)

    async def _pause(self, attempt: int) -> bool:
        """Back off before looking again after an ambiguous create; False when that would outlast the budget."""
        wait = self.retry.backoff(attempt)
        budget = _budget.current()
        if budget is not None and wait >= budget.left():
            return False
        if self.retry.wait:
            await self.sleep(wait)
        elif budget is not None and budget.deadline is not None:
            budget.deadline -= wait  # skipped (wait=False), still counted, as the retry layer counts its waits
        return True

    def provision(
        self,
        requests: Iterable[CreateEndpointRequest] | AsyncIterable[CreateEndpointRequest],
        *,
        concurrency: int,
        on_exists: object,
        prefetch: bool,
    ) -> AsyncGenerator[ProvisionResult, None]:
        """See `Webhooks.provision`: the arguments are checked here, before the job starts."""
        check_concurrency(concurrency)
        if not isinstance(requests, Iterable | AsyncIterable) or isinstance(requests, str | bytes):
            raise InvalidArgumentError("requests", f"must be an iterable of requests, got {type(requests).__name__}")
        return self._provision(requests, concurrency, check_on_exists(on_exists), prefetch)

    async def _provision(
        self,
        requests: Iterable[object] | AsyncIterable[object],
        concurrency: int,
        on_exists: OnExists,
        prefetch: bool,
    ) -> AsyncGenerator[ProvisionResult, None]:
        job = _Job(await self._prefetch() if prefetch else None, Admission(self.governor, concurrency))

        async def one(number: int, item: object) -> ProvisionResult:
            return await self._one(number, item, on_exists, job)

        async with contextlib.aclosing(stream_map(requests, one, concurrency=concurrency)) as results:
            async for result in results:
                yield result

    async def _prefetch(self) -> dict[str, Endpoint] | None:
        """List every endpoint once; ``None`` (per-item lookups) when the listing fails."""
        existing: dict[str, Endpoint] = {}
        try:
            async for endpoint in self.webhooks.list_endpoints():
                existing.setdefault(endpoint.url, endpoint)
                self.observe(endpoint)
        except ClientClosedError:
            raise
        except FullstoryError as exc:
            logger.warning("prefetch listing failed (%s); looking each URL up instead", type(exc).__name__)
            return None
        return existing

    async def _one(self, number: int, item: object, on_exists: OnExists, job: _Job) -> ProvisionResult:
        if not isinstance(item, CreateEndpointRequest):
            error = InvalidArgumentError(
                f"requests[{number}]", f"must be a CreateEndpointRequest, got {type(item).__name__}"
            )
            return ProvisionResult(number, None, None, error, Outcome.FAILED, 0)
        request = item

        async def work() -> tuple[Endpoint, Outcome]:
            known = job.known(request.url)
            if isinstance(known, Endpoint):
                return await self.reconcile(known, request, on_exists)
            return await self.create(request, on_exists, known_absent=known)

        async with job.url_lock(item.url):
            result, failure, attempts = await budgeted(self.retry.operation_timeout, work, admission=job.admission)
        if failure is not None:
            return ProvisionResult(number, item, None, failure, Outcome.FAILED, attempts)
        assert result is not None
        return ProvisionResult(number, item, result[0], None, result[1], attempts)


class _Job:
    """The shared state of one `provision` run: what is known to exist, and per-URL locks.

    Memory is flat in the input: the prefetched endpoints are dropped as they are used,
    and URLs already handled are remembered by hash only.
    """

    def __init__(self, existing: dict[str, Endpoint] | None, admission: Admission) -> None:
        self._existing = existing
        self.admission = admission
        self._handled: set[int] = set()
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    def known(self, url: str) -> Endpoint | bool:
        """Return the prefetched endpoint for ``url``, else whether it is known to be absent."""
        handled = hash(url) in self._handled
        self._handled.add(hash(url))
        if self._existing is None:
            return False
        endpoint = self._existing.pop(url, None)
        return endpoint if endpoint is not None else not handled

    @contextlib.asynccontextmanager
    async def url_lock(self, url: str) -> AsyncIterator[None]:
        """Serialise items with the same URL within the job."""
        lock, users = self._locks.get(url, (asyncio.Lock(), 0))
        self._locks[url] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[url]
            if users == 1:
                del self._locks[url]
            else:
                self._locks[url] = (lock, users - 1)


def check_concurrency(concurrency: object) -> int:
    """Validate a bulk job's ``concurrency`` (1 to 1000)."""
    return number("concurrency", concurrency, minimum=1, maximum=1000, integer=True)  # type: ignore[no-any-return]


def check_on_exists(value: object) -> OnExists:
    """Validate an ``on_exists`` argument."""
    if value not in _ON_EXISTS:
        raise InvalidArgumentError("on_exists", f"must be one of {', '.join(_ON_EXISTS)}, got {shown(value)}")
    return value  # type: ignore[return-value]
