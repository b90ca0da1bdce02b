"""`Webhooks`: the typed Webhooks v1 operations, reached as ``client.webhooks``."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

from fullstory_async import _budget, _converter
from fullstory_async._converter import EndpointList, EventTypeList, SubcategoryList
from fullstory_async._exceptions import InvalidArgumentError, ResponseDecodeError
from fullstory_async._messages import ApiRequest, ApiResponse
from fullstory_async._models import (
    CreateEndpointRequest,
    Endpoint,
    EventTypeDefinition,
    Page,
    Subcategory,
    UpdateEndpointRequest,
    check_unicode,
    check_url,
)
from fullstory_async._results import DEFAULT_MAX_DELETES, Outcome
from fullstory_async._timeout import Timeout, as_timeout
from fullstory_async._validation import instance, number

if TYPE_CHECKING:
    from fullstory_async._bulk.desired import DesiredState
    from fullstory_async._bulk.provision import OnExists, Provisioner
    from fullstory_async._bulk.reconcile import Plan
    from fullstory_async._bulk.results import ApplyResult, ProvisionResult
    from fullstory_async._client import Client
    from fullstory_async._raw import RawWebhooks

T = TypeVar("T")

ENDPOINTS = "/webhooks/v1/endpoints"
EVENT_TYPES = "/webhooks/v1/event-types"
MAX_ENDPOINTS_PAGE = 100
MAX_SUBCATEGORIES_PAGE = 1000
MAX_PAGES = 100_000
"""Most pages one listing walks (10 million endpoints at 100 a page) before it is refused as endless."""
MAX_TOKEN_BYTES = 4096
"""Longest next-page token a listing walk accepts: it goes back in the query string, and a request
line over 8 KiB is refused by common servers (aiohttp's own limit is 8,190); real tokens are tens of bytes."""

TimeoutArg = float | Timeout | None


def _segment(value: object, field: str) -> str:
    """Percent-encode one path segment; reject empty or non-string values before any I/O."""
    if not isinstance(value, str):
        raise InvalidArgumentError(field, f"must be a string, got {type(value).__name__}")
    if not value.strip():
        raise InvalidArgumentError(field, "must not be empty")
    if value in (".", ".."):  # a dot segment: URL normalisation would send the call to the parent path
        raise InvalidArgumentError(field, f"must not be {value!r}")
    check_unicode(field, value)
    return quote(value, safe="")


def _endpoint_path(endpoint: str | Endpoint) -> str:
    endpoint_id = endpoint.id if isinstance(endpoint, Endpoint) else endpoint
    return f"{ENDPOINTS}/{_segment(endpoint_id, 'endpoint_id')}"


def _page_params(page_size: int | None, page_token: str | None, maximum: int) -> tuple[tuple[str, str], ...]:
    params: list[tuple[str, str]] = []
    if page_size is not None:
        number("page_size", page_size, minimum=1, maximum=maximum, integer=True)
        params.append(("limit", str(page_size)))
    if page_token is not None:
        if not isinstance(page_token, str) or not page_token:
            raise InvalidArgumentError("page_token", "must be a non-empty string or None")
        params.append(("paginationToken", page_token))
    return tuple(params)


def _decoder(cls: type[T]) -> Callable[[bytes], T]:
    """How a 2xx body of ``cls`` is decoded (``ApiRequest.decode``)."""
    return functools.partial(_converter.decode, cls=cls)


_ENDPOINT = _decoder(Endpoint)
_ENDPOINT_LIST = _decoder(EndpointList)
_EVENT_TYPE_LIST = _decoder(EventTypeList)
_SUBCATEGORY_LIST = _decoder(SubcategoryList)


def _timeout(timeout: TimeoutArg) -> Timeout | None:
    return None if timeout is None else as_timeout(timeout)


async def _walk(fetch: Callable[[str | None], Awaitable[Page[T]]], token: str | None) -> AsyncIterator[T]:
    """Yield every item, one page in memory at a time, until a page has no next token.

    A token already seen in this walk (a server that cycles), a token longer than
    `MAX_TOKEN_BYTES` or more than `MAX_PAGES` pages end the walk with
    `ResponseDecodeError`: it never loops for ever. Tokens are remembered by a 16-byte
    digest, so a walk holds one page and its digests, whatever the tokens' size.
    """
    seen: set[bytes] = set() if token is None else {_digest(token)}
    for _ in range(MAX_PAGES):
        page = await fetch(token)
        for item in page.items:
            yield item
        token = page.next_page_token
        if token is None:
            return
        size = len(token.encode("utf-8", "surrogatepass"))
        if size > MAX_TOKEN_BYTES:
            raise ResponseDecodeError(
                f"nextPaginationToken is {size} bytes, over the {MAX_TOKEN_BYTES} a token may have",
                field="$.nextPaginationToken",
            )
        digest = _digest(token)
        if digest in seen:
            raise ResponseDecodeError(
                f"nextPaginationToken repeats a token already seen (after {len(seen)} pages): the listing cycles",
                field="$.nextPaginationToken",
            )
        seen.add(digest)
    raise ResponseDecodeError(f"the listing did not end within {MAX_PAGES} pages", field="$.nextPaginationToken")


def _digest(token: str) -> bytes:
    return hashlib.blake2b(token.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class Webhooks:
    """Webhook endpoints, event types and subcategories (``client.webhooks``).

    Every method takes ``timeout=`` (seconds or a `Timeout`) to override the client's
    timeout for each attempt of that call.
    """

    def __init__(self, client: Client) -> None:
        self._client = client

    @property
    def with_raw_response(self) -> RawWebhooks:
        """The single-call operations, each returning a `RawResponse` (status, headers, request id, `parse()`)."""
        from fullstory_async._raw import RawWebhooks

        return RawWebhooks(self)

    @functools.cached_property
    def _provisioner(self) -> Provisioner:
        """The bulk wing behind `ensure_endpoint`, `provision`, `plan` and `apply`: built on these operations.

        Imported on first use, here only: the core never imports the bulk wing otherwise.
        """
        from fullstory_async._bulk.provision import Provisioner

        client = self._client
        return Provisioner(self, retry=client.retry, governor=client.governor, sleep=client._sleep)

    def _send(self, request: ApiRequest) -> Awaitable[ApiResponse]:
        """Send one request of an operation through the client (overridden by the raw response's recording)."""
        return self._client._into_chain(request)

    def _request(
        self,
        method: str,
        path: str,
        operation: str,
        timeout: TimeoutArg,
        decode: Callable[[bytes], Any] | None = None,
        *,
        body: bytes | None = None,
        params: tuple[tuple[str, str], ...] = (),
    ) -> ApiRequest:
        """Build the request of an operation (``decode`` reads its 2xx body)."""
        return ApiRequest(
            method, path, params, timeout=_timeout(timeout), operation=operation, body=body, decode=decode
        )

    # -- endpoints ---------------------------------------------------------------------------

    async def create_endpoint(self, request: CreateEndpointRequest, *, timeout: TimeoutArg = None) -> Endpoint:
        """Create an endpoint (``POST /webhooks/v1/endpoints``) and return it.

        Not idempotent: after a timeout, reset or 5xx the endpoint may exist, so such
        failures are not retried (429 is).
        """
        instance("request", request, CreateEndpointRequest)
        body = _converter.encode(request)
        response = await self._send(self._request("POST", ENDPOINTS, "create_endpoint", timeout, _ENDPOINT, body=body))
        return response.data  # type: ignore[no-any-return]

    async def get_endpoint(self, endpoint_id: str | Endpoint, *, timeout: TimeoutArg = None) -> Endpoint:
        """Return one endpoint (``GET /webhooks/v1/endpoints/{id}``); `NotFoundError` if there is none."""
        path = _endpoint_path(endpoint_id)
        response = await self._send(self._request("GET", path, "get_endpoint", timeout, _ENDPOINT))
        return response.data  # type: ignore[no-any-return]

    async def update_endpoint(
        self, endpoint_id: str | Endpoint, request: UpdateEndpointRequest, *, timeout: TimeoutArg = None
    ) -> Endpoint:
        """Change an endpoint (``POST /webhooks/v1/endpoints/{id}``) and return it.

        The API re-enables an endpoint whenever ``disabled`` is absent from an update, so
        this method always sends it: with ``request.enabled=None`` it first reads the
        endpoint (one extra GET) and keeps its current state; the read and the update share
        one budget (one deadline, ``max_attempts`` per request, ``attempts`` of both).
        Changing the URL changes the id: use the returned `Endpoint`'s ``id`` from then on.
        """
        path = _endpoint_path(endpoint_id)
        instance("request", request, UpdateEndpointRequest)
        if request.enabled is not None:
            return await self._update(path, request, request.enabled, timeout)
        budget = _budget.current() or _budget.Budget.start(self._client.retry.operation_timeout)
        with _budget.within(budget):  # one call, one budget: the read and the write share it
            enabled = (await self.get_endpoint(endpoint_id, timeout=timeout)).enabled
            return await self._update(path, request, enabled, timeout)

    async def _update(self, path: str, request: UpdateEndpointRequest, enabled: bool, timeout: TimeoutArg) -> Endpoint:
        body = _converter.encode_update(request, enabled=enabled)
        response = await self._send(self._request("POST", path, "update_endpoint", timeout, _ENDPOINT, body=body))
        return response.data  # type: ignore[no-any-return]

    async def delete_endpoint(self, endpoint_id: str | Endpoint, *, timeout: TimeoutArg = None) -> None:
        """Delete an endpoint (``DELETE /webhooks/v1/endpoints/{id}``); `NotFoundError` if there is none.

        Idempotent: a DELETE retried after an ambiguous failure (timeout, reset, 5xx) that
        then finds 404 has succeeded (the earlier attempt deleted it), and returns.
        """
        path = _endpoint_path(endpoint_id)
        await self._send(self._request("DELETE", path, "delete_endpoint", timeout))

    async def list_endpoints_page(
        self, *, page_size: int | None = None, page_token: str | None = None, timeout: TimeoutArg = None
    ) -> Page[Endpoint]:
        """Return one page of endpoints (``GET /webhooks/v1/endpoints``).

        ``page_size`` is 1..100 (the API's default and maximum is 100); pass the page's
        ``next_page_token`` as ``page_token`` for the next one.
        """
        params = _page_params(page_size, page_token, MAX_ENDPOINTS_PAGE)
        request = self._request("GET", ENDPOINTS, "list_endpoints", timeout, _ENDPOINT_LIST, params=params)
        wire: EndpointList = (await self._send(request)).data
        return Page(wire.endpoints, wire.next_pagination_token or None)

    def list_endpoints(
        self, *, page_size: int | None = None, page_token: str | None = None, timeout: TimeoutArg = None
    ) -> AsyncIterator[Endpoint]:
        """Iterate over all endpoints, fetching one page at a time: ``async for ep in fs.webhooks.list_endpoints()``.

        Arguments are checked when called, before any I/O; ``page_token`` resumes a listing.
        """
        _page_params(page_size, page_token, MAX_ENDPOINTS_PAGE)

        def fetch(token: str | None) -> Awaitable[Page[Endpoint]]:
            return self.list_endpoints_page(page_size=page_size, page_token=token, timeout=timeout)

        return _walk(fetch, page_token)

    async def find_endpoint_by_url(self, url: str, *, timeout: TimeoutArg = None) -> Endpoint | None:
        """Return the endpoint whose URL is exactly ``url``, or ``None``.

        Walks the whole listing: O(pages) requests. Endpoints are identified by URL, so
        there is at most one.
        """
        check_url("url", url)
        async for endpoint in self.list_endpoints(timeout=timeout):
            if endpoint.url == url:
                return endpoint
        return None

    # -- reconciling and bulk -------------------------------------------------------------------

    async def ensure_endpoint(
        self, request: CreateEndpointRequest, *, on_exists: OnExists = "update"
    ) -> tuple[Endpoint, Outcome]:
        """Make the endpoint of ``request`` exist, safely: never a second endpoint for one URL.

        Looks the URL up first and creates only when it is absent; after an ambiguous
        failure (timeout, reset, 5xx, malformed answer) it looks again before retrying,
        up to the retry policy's ``max_attempts``. Re-running it changes nothing.

        An endpoint that exists is handled as ``on_exists`` says: ``"update"`` (the
        default) updates its event types (and sets the secret, if given) when they differ,
        else returns it `Outcome.UNCHANGED`; ``"skip"`` returns it untouched
        (`Outcome.SKIPPED`); ``"error"`` raises `EndpointExistsError`. The enabled state
        of an existing endpoint is kept. Secrets are write-only, so a differing secret
        alone cannot be detected.

        Returns:
            The endpoint and the `Outcome` (created, updated, unchanged or skipped).

        """
        return await self._provisioner.ensure(request, on_exists)

    def provision(
        self,
        requests: Iterable[CreateEndpointRequest] | AsyncIterable[CreateEndpointRequest],
        *,
        concurrency: int = 16,
        on_exists: OnExists = "update",
        prefetch: bool = True,
    ) -> AsyncGenerator[ProvisionResult, None]:
        """Ensure many endpoints concurrently; yield one `ProvisionResult` per item as each finishes.

        ``requests`` may be any iterable or async iterable and is consumed lazily, so
        memory stays flat however many items stream through. Each item is handled like
        `ensure_endpoint`; one failure never stops the others, and every item gets a
        result (an item that is not a `CreateEndpointRequest` fails with
        `InvalidArgumentError`). Results come in completion order: use ``result.index``.

        With ``prefetch`` (the default) the existing endpoints are listed once up front
        (one request per 100 endpoints), so absent URLs are created without a lookup each.
        The client's `RateGovernor` keeps the job under the server's rate limit.

        ::

            async for result in fs.webhooks.provision(requests, concurrency=32):
                print(result.index, result.outcome, result.error)
        """
        return self._provisioner.provision(requests, concurrency=concurrency, on_exists=on_exists, prefetch=prefetch)

    async def plan(
        self,
        desired: DesiredState,
        *,
        prune: bool = False,
        rotate_secrets: bool = False,
        max_deletes: int | None = DEFAULT_MAX_DELETES,
        allow_unlisted_event_types: bool = False,
    ) -> Plan:
        """Compare ``desired`` with the endpoints that exist; return what `apply` would do.

        First every event type and subcategory of ``desired`` is checked against the
        catalogue (`InvalidArgumentError` names the entry, the value and a suggestion;
        ``allow_unlisted_event_types`` accepts values the catalogue does not list).
        Then one complete, de-duplicated listing: creates for desired URLs that do not
        exist, updates where event types or the enabled state differ, the rest
        unchanged. With ``prune``, which needs ``desired.scope``, endpoints inside the
        scope that ``desired`` does not list are deleted (never a desired URL), at most
        ``max_deletes`` of them (``None``: no limit) or the plan is refused. Secrets are
        write-only: with ``rotate_secrets`` every desired secret is sent again. Any
        failure means no plan.
        """
        return await self._provisioner.plan(
            desired,
            prune=prune,
            rotate_secrets=rotate_secrets,
            max_deletes=max_deletes,
            allow_unlisted_event_types=allow_unlisted_event_types,
        )

    def apply(self, plan: Plan, *, concurrency: int = 16) -> AsyncGenerator[ApplyResult, None]:
        """Execute a `Plan` made by `plan` concurrently; yield one `ApplyResult` per change as each finishes.

        Creates go through `ensure_endpoint` (never a duplicate); updates always state
        the enabled flag; a delete of an endpoint that is already gone succeeds. One
        failure never stops the others. Planning and applying again changes nothing.
        A plan not made by `plan` (not validated) is refused.
        """
        return self._provisioner.apply(plan, concurrency=concurrency)

    # -- event types -------------------------------------------------------------------------

    async def list_event_types(self, *, timeout: TimeoutArg = None) -> list[EventTypeDefinition]:
        """Return the event types the organisation can subscribe to (``GET /webhooks/v1/event-types``)."""
        request = self._request("GET", EVENT_TYPES, "list_event_types", timeout, _EVENT_TYPE_LIST)
        wire: EventTypeList = (await self._send(request)).data
        return list(wire.event_defs)

    async def list_event_subcategories_page(
        self,
        event_name: str,
        *,
        page_size: int | None = None,
        page_token: str | None = None,
        timeout: TimeoutArg = None,
    ) -> Page[Subcategory]:
        """Return one page of an event type's subcategories (``page_size`` 1..1000, the API's default)."""
        path = f"{EVENT_TYPES}/{_segment(event_name, 'event_name')}/subcategories"
        params = _page_params(page_size, page_token, MAX_SUBCATEGORIES_PAGE)
        request = self._request("GET", path, "list_event_subcategories", timeout, _SUBCATEGORY_LIST, params=params)
        wire: SubcategoryList = (await self._send(request)).data
        items = tuple(Subcategory(s.subcategory, s.display_name or s.subcategory) for s in wire.subcategory_defs)
        return Page(items, wire.next_pagination_token or None)

    def list_event_subcategories(
        self,
        event_name: str,
        *,
        page_size: int | None = None,
        page_token: str | None = None,
        timeout: TimeoutArg = None,
    ) -> AsyncIterator[Subcategory]:
        """Iterate over all subcategories of ``event_name`` (an event type with ``has_subcategories``).

        An empty display name falls back to the subcategory value.
        """
        _segment(event_name, "event_name")
        _page_params(page_size, page_token, MAX_SUBCATEGORIES_PAGE)

        def fetch(token: str | None) -> Awaitable[Page[Subcategory]]:
            return self.list_event_subcategories_page(
                event_name, page_size=page_size, page_token=token, timeout=timeout
            )

        return _walk(fetch, page_token)
