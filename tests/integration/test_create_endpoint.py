"""Create Endpoint end to end: the real client against `FakeFullstory`, a real aiohttp server on 127.0.0.1."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from fullstory_async import (
    APIConnectionError,
    AuthenticationError,
    CreateEndpointRequest,
    EventType,
    PermissionDeniedError,
    RetryPolicy,
    ServerError,
    __version__,
)
from fullstory_async.testing import FakeFullstory, Fault, ManualClock, endpoint_id

URL = "https://example.com/fullstory-webhooks"
SECRET = "w7ixQjN7QEiWRwXUFfXneA"


def create_request() -> CreateEndpointRequest:
    """Return the create request of the issue's example."""
    return CreateEndpointRequest(url=URL, event_types=[EventType("note.created")], secret=SECRET)


async def test_create_succeeds() -> None:
    """A create reaches the server as camelCase JSON with the raw key, and returns the stored endpoint."""
    async with (
        FakeFullstory(wall_clock=ManualClock(1585778038.2)) as fake_fullstory,  # 2020-04-01T21:53:58.200Z
        fake_fullstory.client() as fs,
    ):
        endpoint = await fs.webhooks.create_endpoint(create_request())
    assert endpoint.url == URL
    assert endpoint.id == endpoint_id(URL)
    assert endpoint.enabled is True
    assert endpoint.event_types == (EventType("note.created"),)
    assert endpoint.created == datetime(2020, 4, 1, 21, 53, 58, 200_000, tzinfo=UTC)
    assert endpoint.created.tzinfo is UTC

    stored = fake_fullstory.endpoints[endpoint.id]
    assert stored.url == URL
    assert stored.secret == SECRET
    [recorded] = fake_fullstory.requests
    assert (recorded.method, recorded.path, recorded.status) == ("POST", "/webhooks/v1/endpoints", 200)
    assert recorded.key_role == "admin"  # the fake accepts only `Basic <raw key>`
    assert recorded.headers["Authorization"] == "Basic <redacted>"
    assert recorded.headers["Content-Type"] == "application/json"
    assert recorded.headers["Accept"] == "application/json"
    assert recorded.headers["User-Agent"].startswith(f"fullstory-async/{__version__} ")
    assert recorded.json() == {"url": URL, "eventTypes": [{"eventName": "note.created"}], "secret": SECRET}


async def test_429_with_retry_after_then_200_succeeds_after_about_a_second(fake_fullstory: FakeFullstory) -> None:
    """A 429 with Retry-After: 1 is waited out for real (about a second), then the create succeeds."""
    fake_fullstory.faults.add(Fault.too_many_requests(retry_after=1), route="create_endpoint", times=1)
    async with fake_fullstory.client(retry=RetryPolicy()) as fs:
        started = time.monotonic()
        endpoint = await fs.webhooks.create_endpoint(create_request())
        elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 5.0
    assert endpoint.url == URL
    assert [r.status for r in fake_fullstory.requests] == [429, 200]
    assert len(fake_fullstory.endpoints_with_url(URL)) == 1


async def test_401_raises_authentication_error(fake_fullstory: FakeFullstory) -> None:
    """An unknown key gets the documented 401 as AuthenticationError, once, and nothing is created."""
    async with fake_fullstory.client(api_key="na1.not-a-known-key/FAKEORG") as fs:
        with pytest.raises(AuthenticationError) as info:
            await fs.webhooks.create_endpoint(create_request())
    error = info.value
    assert (error.status, error.code, error.message) == (401, "unauthorized", "access is unauthorized")
    assert str(error) == "401 unauthorized: access is unauthorized (POST /webhooks/v1/endpoints)"
    assert "not-a-known-key" not in str(error)
    assert [r.status for r in fake_fullstory.requests] == [401]
    assert len(fake_fullstory.endpoints) == 0


async def test_read_only_key_raises_permission_denied(fake_fullstory: FakeFullstory) -> None:
    """A key that may not write gets the documented 403 as PermissionDeniedError."""
    async with fake_fullstory.client(api_key=fake_fullstory.read_only_api_key) as fs:
        with pytest.raises(PermissionDeniedError) as info:
            await fs.webhooks.create_endpoint(create_request())
    assert (info.value.code, info.value.message) == ("forbidden", "insufficient permissions")


async def test_html_502_is_a_server_error_and_not_retried(fake_fullstory: FakeFullstory) -> None:
    """A proxy's HTML 502 on create raises ServerError with a short excerpt, after a single attempt."""
    fake_fullstory.faults.add(Fault.bad_gateway_html(), route="create_endpoint")
    async with fake_fullstory.client(retry=RetryPolicy(wait=False)) as fs:
        with pytest.raises(ServerError) as info:
            await fs.webhooks.create_endpoint(create_request())
    assert info.value.status == 502
    assert info.value.code is None
    assert "<" not in info.value.message
    assert len(info.value.message) <= 203
    assert len(fake_fullstory.requests) == 1


async def test_connection_reset_is_not_retried_for_create(fake_fullstory: FakeFullstory) -> None:
    """A reset connection on create raises APIConnectionError after one attempt (it may have been applied)."""
    fake_fullstory.faults.add(Fault.connection_reset(), route="create_endpoint")
    async with fake_fullstory.client(retry=RetryPolicy(wait=False)) as fs:
        with pytest.raises(APIConnectionError):
            await fs.webhooks.create_endpoint(create_request())
    assert len(fake_fullstory.requests) == 1
