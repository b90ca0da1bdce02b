"""The retry seam's records and options on the in-memory transport: attempts, decode, with_options, EventLoopError."""

from __future__ import annotations

import json
import math
import time

import pytest

from fullstory_async import (
    APIConnectionError,
    ApiRequest,
    ApiResponse,
    APITimeoutError,
    ClientClosedError,
    EventLoopError,
    FullstoryError,
    InvalidArgumentError,
    ResponseDecodeError,
    RetryPolicy,
    ServerError,
    Timeout,
)
from fullstory_async._retry import RetryMiddleware
from fullstory_async._validation import number

from .conftest import MakeClient

BUSY = {"code": "unavailable", "message": "busy"}


async def test_a_response_carries_the_attempts_it_took(fake: MakeClient, seed_body: bytes) -> None:
    """Two 503s then a 200: the endpoint comes back and the raw response says 3 attempts."""
    client, transport = fake((503, BUSY), (503, BUSY), (200, seed_body))
    response = await client.send(ApiRequest("GET", "/webhooks/v1/endpoints/x"))
    assert response.attempts == 3
    assert len(transport.requests) == 3


async def test_every_error_a_call_raises_carries_its_attempts(fake: MakeClient) -> None:
    """A GET that keeps failing raises after max_attempts with attempts == max_attempts; a refused POST with 1."""
    client, _ = fake(*[(503, BUSY)] * 3, (503, BUSY), retry=RetryPolicy(max_attempts=3, wait=False))
    with pytest.raises(ServerError) as info:
        await client.send(ApiRequest("GET", "/webhooks/v1/endpoints/x"))
    assert info.value.attempts == 3
    with pytest.raises(ServerError) as info:
        await client.send(ApiRequest("POST", "/webhooks/v1/endpoints", body=b"{}"))
    assert info.value.attempts == 1


async def test_a_raw_requests_decode_runs_inside_the_attempt(fake: MakeClient) -> None:
    """A raw GET whose decode raises fails its one attempt, not retried (deterministic); a decoded value is data."""
    client, transport = fake((200, b"{not json"), (200, {"ok": True}))
    with pytest.raises(ResponseDecodeError) as info:
        await client.send(ApiRequest("GET", "/webhooks/v1/event-types", decode=json.loads))
    assert info.value.attempts == 1
    assert len(transport.requests) == 1
    response = await client.send(ApiRequest("GET", "/webhooks/v1/event-types", decode=json.loads))
    assert response.data == {"ok": True}
    assert response.attempts == 1


async def test_a_garbled_answer_to_a_post_is_not_sent_again(fake: MakeClient) -> None:
    """A POST whose 2xx body does not decode fails once with ResponseDecodeError: it may have been applied."""
    client, transport = fake((200, b"{not json"))
    with pytest.raises(ResponseDecodeError) as info:
        await client.send(ApiRequest("POST", "/webhooks/v1/endpoints", body=b"{}", decode=json.loads))
    assert len(transport.requests) == 1
    assert info.value.attempts == 1


async def test_with_options_shares_the_governor_and_keeps_key_and_url(fake: MakeClient, seed_body: bytes) -> None:
    """A derived client has its own settings, the same governor and base URL, and sends the same key."""
    client, transport = fake((200, seed_body), (200, seed_body))
    derived = client.with_options(timeout=3, retry=RetryPolicy(max_attempts=1), max_response_bytes=2048)
    assert (derived.timeout, derived.retry.max_attempts, derived.max_response_bytes) == (Timeout(3, 3), 1, 2048)
    assert derived.governor is client.governor
    assert derived.base_url == client.base_url
    assert client.retry.max_attempts == 4  # the original is unchanged
    await derived.webhooks.get_endpoint("x")
    await client.webhooks.get_endpoint("x")
    first, second = transport.requests
    assert first.headers["Authorization"] == second.headers["Authorization"]
    with pytest.raises(TypeError):
        client.with_options(api_key="na1.other/ORG")  # type: ignore[call-arg]
    with pytest.raises(InvalidArgumentError, match=r"^retry:"):
        client.with_options(retry=3)  # type: ignore[arg-type]


async def test_closing_the_original_closes_every_derived_client(fake: MakeClient) -> None:
    """aclose() on the client that owns the session stops its with_options copies too."""
    client, _ = fake()
    derived = client.with_options(timeout=3)
    await client.aclose()
    assert derived.closed
    with pytest.raises(ClientClosedError):
        await derived.webhooks.get_endpoint("x")


def test_settings_are_read_only(fake: MakeClient) -> None:
    """Every setting is a read-only property."""
    client, _ = fake()
    for name, value in (("retry", RetryPolicy()), ("timeout", Timeout()), ("base_url", "x"), ("max_response_bytes", 1)):
        with pytest.raises(AttributeError):
            setattr(client, name, value)


def test_event_loop_error_is_a_typed_runtime_error() -> None:
    """EventLoopError is a FullstoryError and a RuntimeError (code catching RuntimeError keeps working)."""
    assert issubclass(EventLoopError, FullstoryError)
    assert issubclass(EventLoopError, RuntimeError)
    assert not issubclass(APIConnectionError, RuntimeError)


@pytest.mark.parametrize(
    ("value", "bounds"),
    [
        (True, {}),
        (math.nan, {}),
        (math.inf, {}),
        (10**400, {}),
        (-1, {}),
        (0, {"above": True}),
        (2.5, {"integer": True}),
        (1001, {"maximum": 1000}),
        (None, {}),
        ("3", {}),
    ],
)
def test_one_number_check_refuses_the_same_things_everywhere(value: object, bounds: dict[str, object]) -> None:
    """_validation.number refuses bools, NaN, infinities, huge ints and out-of-range values, naming the field."""
    with pytest.raises(InvalidArgumentError, match=r"^some\.field: must be ") as info:
        number("some.field", value, **bounds)  # type: ignore[arg-type]
    assert len(str(info.value)) < 200


async def test_a_call_with_nothing_left_of_its_deadline_sends_nothing() -> None:
    """A request whose operation deadline has passed fails at once with APITimeoutError and 0 attempts."""
    sent: list[ApiRequest] = []

    async def transport(request: ApiRequest) -> ApiResponse:
        sent.append(request)
        return ApiResponse(200)

    late = ApiRequest("GET", "/webhooks/v1/endpoints/x", deadline=time.monotonic() - 1)
    with pytest.raises(APITimeoutError) as info:
        await RetryMiddleware(RetryPolicy())(late, transport)
    assert sent == []
    assert info.value.attempts == 0
