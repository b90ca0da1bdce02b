"""Contract: the SDK's `Client`, through `fake.client()`, decodes every response of the fake."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from fullstory_async import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    Client,
    CreateEndpointRequest,
    Endpoint,
    EventType,
    EventTypeDefinition,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseDecodeError,
    RetryPolicy,
    ServerError,
    Subcategory,
    UpdateEndpointRequest,
)
from fullstory_async.testing import FakeFullstory, Fault, ManualClock, RateLimit, endpoint_id

URL = "https://example.com/hook"
NO_RETRY = RetryPolicy(max_attempts=1)


def note_request(url: str = URL, secret: str = "s3cr3t") -> CreateEndpointRequest:
    return CreateEndpointRequest(url=url, event_types=[EventType("note.created")], secret=secret)


async def test_create_decodes_into_an_endpoint(fake_fullstory: FakeFullstory, fullstory_client: Client) -> None:
    """create_endpoint returns an Endpoint matching what the fake stored, datetimes in UTC."""
    sub = fake_fullstory.catalogue.get("recording.event.custom").subcategories[0]  # type: ignore[union-attr]
    request = CreateEndpointRequest(
        url=URL, event_types=[EventType("note.created"), EventType("recording.event.custom", sub.subcategory)]
    )
    endpoint = await fullstory_client.webhooks.create_endpoint(request)
    stored = fake_fullstory.endpoints[endpoint.id]
    assert isinstance(endpoint, Endpoint)
    assert (endpoint.id, endpoint.url, endpoint.enabled) == (endpoint_id(URL), URL, True)
    assert endpoint.event_types == (EventType("note.created"), EventType("recording.event.custom", sub.subcategory))
    assert endpoint.created.tzinfo is not None
    assert endpoint.created == datetime.fromisoformat(stored.created.replace("Z", "+00:00")).astimezone(UTC)


async def test_get_list_update_delete_round_trip(fake_fullstory: FakeFullstory, fullstory_client: Client) -> None:
    """get, list (all pages), update (disable, keep, move) and delete all decode."""
    webhooks = fullstory_client.webhooks
    created = await webhooks.create_endpoint(note_request())
    assert await webhooks.get_endpoint(created.id) == created
    for i in range(150):
        fake_fullstory.add_endpoint(f"https://example.com/more/{i}")
    listed = [e.id async for e in webhooks.list_endpoints()]
    assert listed == list(fake_fullstory.endpoints)
    page = await webhooks.list_endpoints_page(page_size=10)
    assert (len(page.items), page.next_page_token is not None) == (10, True)

    disabled = await webhooks.update_endpoint(created.id, UpdateEndpointRequest(enabled=False))
    assert disabled.enabled is False
    kept = await webhooks.update_endpoint(created.id, UpdateEndpointRequest(secret="rotated"))
    assert kept.enabled is False  # the SDK sends `disabled` explicitly; the fake re-enables otherwise
    assert fake_fullstory.endpoints[created.id].secret == "rotated"
    moved = await webhooks.update_endpoint(created.id, UpdateEndpointRequest(url=URL + "/v2"))
    assert moved.id == endpoint_id(URL + "/v2")
    assert await webhooks.find_endpoint_by_url(URL + "/v2") == moved

    await webhooks.delete_endpoint(moved.id)
    with pytest.raises(NotFoundError) as info:
        await webhooks.get_endpoint(moved.id)
    assert info.value.code == "resource_not_found"


async def test_event_types_and_subcategories_decode(fake_fullstory: FakeFullstory, fullstory_client: Client) -> None:
    """list_event_types and list_event_subcategories decode into the SDK's models."""
    event_types = await fullstory_client.webhooks.list_event_types()
    assert all(isinstance(e, EventTypeDefinition) for e in event_types)
    assert [(e.event_name, e.has_subcategories) for e in event_types] == [
        (d.event_name, d.has_subcategories) for d in fake_fullstory.catalogue
    ]
    subs = [s async for s in fullstory_client.webhooks.list_event_subcategories("recording.event.custom")]
    assert all(isinstance(s, Subcategory) for s in subs)
    expected = fake_fullstory.catalogue.get("recording.event.custom").subcategories  # type: ignore[union-attr]
    assert [s.subcategory for s in subs] == [s.subcategory for s in expected]
    assert subs[-1].display_name == subs[-1].subcategory  # empty display name falls back to the value


async def test_status_errors_map_to_the_sdk_exceptions(fake_fullstory: FakeFullstory) -> None:
    """400, 401, 403, 404, 429 and 5xx from the fake raise the SDK's typed errors with codes."""
    async with fake_fullstory.client(retry=NO_RETRY) as fs:
        await fs.webhooks.create_endpoint(note_request())
        with pytest.raises(BadRequestError) as duplicate:
            await fs.webhooks.create_endpoint(note_request())
        assert duplicate.value.code == "already_exists"
        with pytest.raises(NotFoundError):
            await fs.webhooks.delete_endpoint("bm9wZQ")
        fake_fullstory.faults.add(Fault.server_error_after_commit(), route="create_endpoint", times=1)
        with pytest.raises(ServerError) as server:
            await fs.webhooks.create_endpoint(note_request("https://example.com/ambiguous"))
        assert (server.value.status, server.value.code) == (500, "server_error")
        assert len(fake_fullstory.endpoints_with_url("https://example.com/ambiguous")) == 1
    async with fake_fullstory.client(api_key="na1.wrong/FAKEORG", retry=NO_RETRY) as fs:
        with pytest.raises(AuthenticationError) as unauthorized:
            await fs.webhooks.list_event_types()
        assert unauthorized.value.code == "unauthorized"
    async with fake_fullstory.client(api_key=fake_fullstory.read_only_api_key, retry=NO_RETRY) as fs:
        with pytest.raises(PermissionDeniedError) as forbidden:
            await fs.webhooks.create_endpoint(note_request("https://example.com/ro"))
        assert forbidden.value.code == "forbidden"


async def test_rate_limit_becomes_rate_limit_error_with_retry_after() -> None:
    """The fake's 429 decodes into RateLimitError carrying Retry-After in seconds."""
    fake = FakeFullstory(rate_limit=RateLimit(rate=0.5, burst=1), clock=ManualClock())
    async with fake, fake.client(retry=NO_RETRY) as fs:
        await fs.webhooks.list_event_types()
        with pytest.raises(RateLimitError) as info:
            await fs.webhooks.list_event_types()
    assert (info.value.code, info.value.retry_after) == ("too_many_requests", 2.0)


@pytest.mark.parametrize("fault", [Fault.invalid_json(), Fault.wrong_shape()])
async def test_malformed_bodies_raise_response_decode_error(fake_fullstory: FakeFullstory, fault: Fault) -> None:
    """A 200 body that is not JSON, or not an Endpoint, raises ResponseDecodeError."""
    fake_fullstory.faults.add(fault, route="create_endpoint", times=1)
    async with fake_fullstory.client(retry=NO_RETRY) as fs:
        with pytest.raises(ResponseDecodeError):
            await fs.webhooks.create_endpoint(note_request())


async def test_html_502_is_a_server_error(fake_fullstory: FakeFullstory) -> None:
    """The proxy's HTML 502 page raises ServerError with status 502 and no JSON code."""
    fake_fullstory.faults.add(Fault.bad_gateway_html(), times=1)
    async with fake_fullstory.client(retry=NO_RETRY) as fs:
        with pytest.raises(ServerError) as info:
            await fs.webhooks.list_event_types()
    assert info.value.status == 502


async def test_reset_and_latency_raise_connection_and_timeout_errors(fake_fullstory: FakeFullstory) -> None:
    """A dropped connection raises APIConnectionError; injected latency past the timeout raises APITimeoutError."""
    fake_fullstory.faults.add(Fault.connection_reset_after_commit(), route="create_endpoint", times=1)
    fake_fullstory.faults.add(Fault.latency(5.0), route="get_endpoint", times=1)
    async with fake_fullstory.client(retry=NO_RETRY, timeout=0.1) as fs:
        with pytest.raises(APIConnectionError):
            await fs.webhooks.create_endpoint(note_request())
        with pytest.raises(APITimeoutError):
            await fs.webhooks.get_endpoint(endpoint_id(URL))
    assert len(fake_fullstory.endpoints_with_url(URL)) == 1
