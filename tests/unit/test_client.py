"""The Client: the exact request, middleware wiring, timeouts, cancellation, lifecycle, secrets."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import aiohttp
import pytest
from aiohttp import web

from fullstory_async import (
    APIConnectionError,
    ApiRequest,
    ApiResponse,
    APITimeoutError,
    AuthenticationError,
    Client,
    ClientClosedError,
    CreateEndpointRequest,
    Endpoint,
    EventType,
    FullstoryError,
    Handler,
    InvalidArgumentError,
    RateLimitError,
    ResponseDecodeError,
    RetryPolicy,
    Timeout,
    __version__,
)
from tests.fakes import ENDPOINT, Gate, StubTransport, answering, is_server_task

SUBCATEGORY = (
    "CgsiCW8tSDkxLW5hMRIOCgRTZWF0GgZzeXN0ZW0SEwoHU2VnbWVudBoIZXZlcnlvbmUSEQoI"
    "U2VhcmNoaWUaBTQ5MTY4EhAKBUFsZXJ0EICAgICAqJkL"
)
TOO_MANY = {
    "message": "Too many requests. Client has exceeded the rate limit for this endpoint.",
    "code": "too_many_requests",
}
UNAUTHORIZED = {"message": "access is unauthorized", "code": "unauthorized"}


def seed_request(secret: str | None = None) -> CreateEndpointRequest:
    """Return the create request of the seed page's curl example."""
    return CreateEndpointRequest(
        url="https://example.com/fullstory-webhooks",
        event_types=[EventType("recording.event.custom", SUBCATEGORY)],
        secret=secret,
    )


# aiohttp adds these on the wire by itself; everything else is what the client sent.
async def test_create_endpoint_sends_the_exact_request(serve, api_key: str, secret: str, seed_body: bytes) -> None:
    """create_endpoint POSTs camelCase JSON to /webhooks/v1/endpoints with Basic <raw key> and JSON headers."""
    app, seen = answering(200, seed_body)
    async with Client(api_key=api_key, base_url=await serve(app)) as client:
        await client.webhooks.create_endpoint(seed_request(secret))
    [call] = seen
    assert (call.method, call.path_qs) == ("POST", "/webhooks/v1/endpoints")
    headers = call.sent_headers
    assert headers["Authorization"] == f"Basic {api_key}"
    assert headers["Accept"] == "application/json"
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"].startswith(f"fullstory-async/{__version__} python/")
    assert f"aiohttp/{aiohttp.__version__}" in headers["User-Agent"]
    assert set(headers) == {"Authorization", "Accept", "Content-Type", "User-Agent"}
    assert json.loads(call.body) == {
        "url": "https://example.com/fullstory-webhooks",
        "secret": secret,
        "eventTypes": [{"eventName": "recording.event.custom", "subcategory": SUBCATEGORY}],
    }


async def test_create_endpoint_body_omits_none_fields(fake, seed_body: bytes) -> None:
    """Without a secret or subcategory the body carries neither key (no nulls)."""
    client, transport = fake((200, seed_body))
    await client.webhooks.create_endpoint(
        CreateEndpointRequest(url="https://example.com/h", event_types=["note.created"])
    )
    assert transport.requests[0].body == b'{"url":"https://example.com/h","eventTypes":[{"eventName":"note.created"}]}'


async def test_create_endpoint_decodes_the_seed_response(fake, seed_body: bytes) -> None:
    """The seed page's example response comes back as an Endpoint with aware UTC times to the millisecond."""
    client, _ = fake((200, seed_body))
    endpoint = await client.webhooks.create_endpoint(seed_request())
    assert isinstance(endpoint, Endpoint)
    assert endpoint.id == "aHR0cHM6Ly9leGFtcGxlLmNvbS9mdWxsc3Rvcnktd2ViaG9va3M"
    assert endpoint.enabled is True
    assert endpoint.url == "https://example.com/fullstory-webhooks"
    assert endpoint.event_types == (EventType("recording.event.custom", SUBCATEGORY),)
    assert endpoint.created.isoformat() == "2020-04-01T21:53:58.200000+00:00"
    assert endpoint.modified == endpoint.created


async def test_eu1_key_talks_to_the_eu1_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """A client with an eu1. key sends to https://api.eu1.fullstory.com (seen by an aiohttp middleware; no socket)."""
    monkeypatch.delenv("FULLSTORY_BASE_URL", raising=False)
    urls: list[str] = []

    async def record(request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType) -> aiohttp.ClientResponse:
        urls.append(str(request.url))
        raise aiohttp.ClientConnectionError("recorded, not sent")

    session = aiohttp.ClientSession(middlewares=(record,))
    async with session, Client(api_key="eu1.abc/ORG", session=session, retry=RetryPolicy(wait=False)) as client:
        with pytest.raises(APIConnectionError):
            await client.webhooks.get_endpoint("ep-1", timeout=1)
    assert urls
    assert set(urls) == {"https://api.eu1.fullstory.com/webhooks/v1/endpoints/ep-1"}


async def test_base_url_prefix_is_kept(serve, api_key: str, seed_body: bytes) -> None:
    """A base_url with a path prefix (a proxy) keeps the prefix before the API path."""
    app, seen = answering(200, seed_body)
    async with Client(api_key=api_key, base_url=await serve(app) + "/fs/") as client:
        await client.webhooks.create_endpoint(seed_request())
    assert [call.path_qs for call in seen] == ["/fs/webhooks/v1/endpoints"]


async def test_decode_error_through_the_client(fake) -> None:
    """A 200 body that does not fit raises ResponseDecodeError naming the call and the field."""
    client, _ = fake((200, {"id": "x", "created": "2020-04-01T21:53:58.200Z", "url": "https://e.com"}))
    with pytest.raises(ResponseDecodeError) as info:
        await client.webhooks.create_endpoint(seed_request())
    assert info.value.field == "$.modified"
    assert str(info.value) == (
        "could not decode response at $.modified: required field missing (POST /webhooks/v1/endpoints)"
    )


async def test_user_middleware_is_outermost_and_sees_each_call_once(fake, api_key: str, seed_body: bytes) -> None:
    """User middleware wraps the built-ins: one call in, retries hidden inside, no Authorization header seen."""
    seen: list[ApiRequest] = []
    responses: list[ApiResponse] = []

    async def spy(request: ApiRequest, call_next: Handler) -> ApiResponse:
        seen.append(request)
        response = await call_next(request)
        responses.append(response)
        return response

    client, transport = fake((429, TOO_MANY, {"Retry-After": "1"}), (200, seed_body), middleware=[spy])
    await client.webhooks.create_endpoint(seed_request())
    assert len(seen) == 1
    assert [r.status for r in responses] == [200]
    assert not any(name.lower() == "authorization" for name in seen[0].headers)
    assert len(transport.requests) == 2
    assert all(r.headers["Authorization"] == f"Basic {api_key}" for r in transport.requests)
    assert seen[0].operation == "create_endpoint"


async def test_user_middleware_sees_the_callers_deadline_and_retry_sets_the_operations(fake, seed_body: bytes) -> None:
    """A typed call reaches user middleware with no deadline; retry, inside, sets ``operation_timeout`` from then.

    A deadline the middleware sets wins when it is earlier (docs/middleware.md).
    """
    seen: list[float | None] = []

    async def spy(request: ApiRequest, call_next: Handler) -> ApiResponse:
        seen.append(request.deadline)
        return await call_next(request)

    async def hasty(request: ApiRequest, call_next: Handler) -> ApiResponse:
        return await call_next(request.with_deadline(time.monotonic() + 5))

    retry = RetryPolicy(wait=False, operation_timeout=30)
    client, transport = fake((200, seed_body), retry=retry, middleware=[spy])
    before = time.monotonic()
    await client.webhooks.create_endpoint(seed_request())
    after = time.monotonic()
    assert seen == [None]
    deadline = transport.requests[0].deadline
    assert deadline is not None
    assert before + 30 <= deadline <= after + 30

    client, transport = fake((200, seed_body), retry=retry, middleware=[hasty])
    before = time.monotonic()
    await client.webhooks.create_endpoint(seed_request())
    deadline = transport.requests[0].deadline
    assert deadline is not None
    assert before + 5 <= deadline <= time.monotonic() + 5


async def test_user_middlewares_run_in_order_and_their_headers_reach_the_wire(fake, seed_body: bytes) -> None:
    """The first user middleware is outermost; headers they add reach the transport."""
    order: list[str] = []

    def tagger(name: str):  # type: ignore[no-untyped-def]
        async def mw(request: ApiRequest, call_next: Handler) -> ApiResponse:
            order.append(name)
            return await call_next(request.with_header(f"X-{name}", "1"))

        return mw

    client, transport = fake((200, seed_body), middleware=[tagger("A"), tagger("B")])
    await client.webhooks.create_endpoint(seed_request())
    assert order == ["A", "B"]
    assert transport.requests[0].headers["X-A"] == transport.requests[0].headers["X-B"] == "1"


async def test_user_middleware_sees_the_final_typed_error_once(fake) -> None:
    """After retries give up, user middleware sees the typed error exactly once."""
    errors: list[BaseException] = []

    async def spy(request: ApiRequest, call_next: Handler) -> ApiResponse:
        try:
            return await call_next(request)
        except FullstoryError as exc:
            errors.append(exc)
            raise

    client, transport = fake(
        *[(429, TOO_MANY, {"Retry-After": "1"})] * 3, retry=RetryPolicy(wait=False, max_attempts=3), middleware=[spy]
    )
    with pytest.raises(RateLimitError):
        await client.webhooks.create_endpoint(seed_request())
    assert len(transport.requests) == 3
    assert [type(e) for e in errors] == [RateLimitError]


async def test_middleware_that_does_not_call_next_sends_nothing(fake) -> None:
    """A user middleware can answer or refuse a call before anything is sent."""

    async def refuse(request: ApiRequest, call_next: Handler) -> ApiResponse:
        raise PermissionError("not in this environment")

    client, transport = fake(middleware=[refuse])
    with pytest.raises(PermissionError):
        await client.webhooks.create_endpoint(seed_request())
    assert transport.requests == []


@pytest.mark.parametrize("timeout", [0, -1, float("inf"), float("nan"), "5", True, None])
def test_bad_client_timeout_is_rejected(api_key: str, timeout: object) -> None:
    """A non-positive, infinite or non-number timeout is rejected at construction naming timeout."""
    with pytest.raises(InvalidArgumentError) as info:
        Client(api_key=api_key, timeout=timeout)  # type: ignore[arg-type]
    assert info.value.field == "timeout"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (10, Timeout(total=10.0, connect=5.0)),
        (2.5, Timeout(total=2.5, connect=2.5)),
        (Timeout(total=None, connect=1), Timeout(total=None, connect=1)),
    ],
)
def test_client_timeout_forms(api_key: str, given: float | Timeout, expected: Timeout) -> None:
    """Seconds become a total timeout (connect capped at 5 s); a Timeout is kept as given."""
    assert Client(api_key=api_key, timeout=given).timeout == expected


def test_client_defaults(api_key: str) -> None:
    """By default: 30 s total / 5 s connect per attempt, the default RetryPolicy, no session yet."""
    client = Client(api_key=api_key)
    assert client.timeout == Timeout(total=30.0, connect=5.0)
    assert client.retry == RetryPolicy()
    assert client._transport._session is None
    assert not client.closed


@pytest.mark.parametrize("value", [0, -1, "1", True, float("inf")])
def test_bad_timeout_record_is_rejected(value: object) -> None:
    """Timeout validates its fields (a bool is not a number of seconds) and names them."""
    with pytest.raises(InvalidArgumentError) as info:
        Timeout(total=value)  # type: ignore[arg-type]
    assert info.value.field == "timeout.total"
    with pytest.raises(InvalidArgumentError) as info:
        Timeout(connect=value)  # type: ignore[arg-type]
    assert info.value.field == "timeout.connect"


async def test_per_client_timeout(gate: Gate, api_key: str) -> None:
    """A call slower than the client's timeout raises APITimeoutError, also a TimeoutError; a POST is not retried."""
    async with Client(api_key=api_key, base_url=gate.base_url, timeout=0.05) as client:
        with pytest.raises(APITimeoutError) as info:
            await client.webhooks.create_endpoint(seed_request())
    assert isinstance(info.value, TimeoutError)
    assert (info.value.method, info.value.path) == ("POST", "/webhooks/v1/endpoints")
    assert gate.arrived == 1


@pytest.mark.parametrize("timeout", [0.05, Timeout(total=0.05)])
async def test_per_call_timeout(gate: Gate, api_key: str, timeout: float | Timeout) -> None:
    """A call's own timeout (seconds or Timeout) replaces the client's 30 s default."""
    async with Client(api_key=api_key, base_url=gate.base_url) as client:
        with pytest.raises(TimeoutError):
            await client.webhooks.create_endpoint(seed_request(), timeout=timeout)


async def test_per_call_timeout_can_be_longer_than_the_clients(gate: Gate, api_key: str) -> None:
    """A longer per-call timeout lets a call outlive the client's short default.

    The held call is still running after a call on the 0.05 s default timed out beside it.
    """
    async with asyncio.timeout(10), Client(api_key=api_key, base_url=gate.base_url, timeout=0.05) as client:
        call = asyncio.create_task(client.webhooks.create_endpoint(seed_request(), timeout=10))
        await gate.arrivals(1)
        with pytest.raises(APITimeoutError):
            await client.webhooks.create_endpoint(seed_request())  # a POST: one attempt
        assert not call.done()
        gate.release.set()
        endpoint = await call
    assert endpoint.id == ENDPOINT["id"]


async def test_timeouts_are_retried_for_get(gate: Gate, api_key: str) -> None:
    """An idempotent GET that times out is retried up to max_attempts, then raises APITimeoutError."""
    retry = RetryPolicy(wait=False, max_attempts=3)
    async with Client(api_key=api_key, base_url=gate.base_url, timeout=0.05, retry=retry) as client:
        with pytest.raises(APITimeoutError):
            await client.webhooks.get_endpoint("abc")
    assert gate.arrived == 3


async def test_cancellation_leaves_no_connection_or_task(gate: Gate, api_key: str) -> None:
    """Cancelling an in-flight call releases its connection and leaves no task behind; the client still works.

    The client has one connection: a call after the cancelled one (and one after that) can
    only be sent if the connection came back to the pool.
    """
    before = asyncio.all_tasks()
    async with asyncio.timeout(10), Client(api_key=api_key, base_url=gate.base_url, max_connections=1) as client:
        call = asyncio.create_task(client.webhooks.create_endpoint(seed_request()))
        await gate.arrivals(1)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        client_tasks = {t for t in asyncio.all_tasks() - before if not is_server_task(t)}
        assert client_tasks == set()

        gate.release.set()
        server_tasks = {t for t in asyncio.all_tasks() - before if is_server_task(t)}
        if server_tasks:
            await asyncio.wait(server_tasks, timeout=5)
        assert asyncio.all_tasks() == before

        for _ in range(2):
            endpoint = await client.webhooks.create_endpoint(seed_request())
            assert endpoint.enabled
    assert gate.arrived == 3


async def test_aclose_is_idempotent_and_closes_the_owned_session(serve, api_key: str, seed_body: bytes) -> None:
    """Aclose closes the session the client created; a second aclose is harmless."""
    app, _ = answering(200, seed_body)
    client = Client(api_key=api_key, base_url=await serve(app))
    await client.webhooks.create_endpoint(seed_request())
    session = client._transport._session
    assert session is not None
    await client.aclose()
    await client.aclose()
    assert session.closed
    assert client.closed


async def test_use_after_close_raises_client_closed_error(api_key: str) -> None:
    """Every call after aclose raises ClientClosedError (a RuntimeError) before any I/O."""
    client = Client(api_key=api_key)
    await client.aclose()
    with pytest.raises(ClientClosedError):
        await client.webhooks.create_endpoint(seed_request())
    with pytest.raises(RuntimeError):
        await client.send(ApiRequest("GET", "/webhooks/v1/endpoints"))
    assert client._transport._session is None


async def test_async_with_closes_even_on_error(serve, api_key: str) -> None:
    """Leaving `async with` by an exception still closes the client."""
    app, _ = answering(401, json.dumps(UNAUTHORIZED).encode())
    base = await serve(app)
    with pytest.raises(AuthenticationError):
        async with Client(api_key=api_key, base_url=base) as client:
            await client.webhooks.create_endpoint(seed_request())
    assert client.closed
    assert client._transport._session is None


async def test_passed_in_session_is_used_and_left_open(serve, api_key: str, seed_body: bytes) -> None:
    """A session passed in carries the calls and is not closed by the client."""
    user_agents: list[str] = []

    async def create(request: web.Request) -> web.Response:
        user_agents.append(request.headers["User-Agent"])
        return web.Response(body=seed_body, content_type="application/json")

    app = web.Application()
    app.router.add_post("/webhooks/v1/endpoints", create)
    base = await serve(app)
    async with aiohttp.ClientSession() as session:
        async with Client(api_key=api_key, base_url=base, session=session) as client:
            await client.webhooks.create_endpoint(seed_request())
            assert client._transport._session is session
        assert client.closed
        assert not session.closed
        async with session.post(base + "/webhooks/v1/endpoints") as response:
            assert response.status == 200
    assert len(user_agents) == 2
    assert user_agents[0].startswith("fullstory-async/")


async def test_max_response_bytes_refuses_a_large_body(serve, api_key: str) -> None:
    """A response larger than max_response_bytes raises ResponseDecodeError instead of being read."""
    app, _ = answering(200, b'{"id": "' + b"x" * 5000 + b'"}')
    async with Client(api_key=api_key, base_url=await serve(app), max_response_bytes=4096) as client:
        with pytest.raises(ResponseDecodeError, match=r"max_response_bytes \(4096\)"):
            await client.webhooks.create_endpoint(seed_request())


async def test_connection_error_through_the_client(serve, api_key: str) -> None:
    """A dropped connection on create surfaces as APIConnectionError after one attempt (a POST is not re-sent)."""
    hits: list[str] = []

    async def drop(request: web.Request) -> web.Response:
        hits.append(request.path)
        assert request.transport is not None
        request.transport.close()
        return web.Response()

    app = web.Application()
    app.router.add_post("/webhooks/v1/endpoints", drop)
    async with Client(api_key=api_key, base_url=await serve(app)) as client:
        with pytest.raises(APIConnectionError):
            await client.webhooks.create_endpoint(seed_request())
    assert hits == ["/webhooks/v1/endpoints"]


async def test_secrets_never_leak(
    serve, api_key: str, secret: str, seed_body: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """The API key and the endpoint secret appear in no repr, no str(exc) and no log record at DEBUG."""
    caplog.set_level(logging.DEBUG)
    script = [
        (429, TOO_MANY, {"Retry-After": "0.5"}),
        (200, None, {}),
        (401, UNAUTHORIZED, {}),
        (200, {"id": 5}, {}),
    ]

    async def create(request: web.Request) -> web.Response:
        assert request.headers["Authorization"] == f"Basic {api_key}"
        status, payload, headers = script.pop(0)
        if payload is None:
            return web.Response(body=seed_body, content_type="application/json", headers=headers)
        return web.json_response(payload, status=status, headers=headers)

    app = web.Application()
    app.router.add_post("/webhooks/v1/endpoints", create)
    base = await serve(app)
    texts: list[str] = []
    seen: list[ApiRequest] = []

    async def spy(request: ApiRequest, call_next: Handler) -> ApiResponse:
        seen.append(request)
        return await call_next(request)

    request = seed_request(secret)
    texts.append(repr(request))
    async with Client(api_key=api_key, base_url=base, retry=RetryPolicy(wait=False), middleware=[spy]) as client:
        texts += [repr(client), str(client.__dict__), repr(client.webhooks)]
        await client.webhooks.create_endpoint(request)
        for expected in (AuthenticationError, ResponseDecodeError):
            with pytest.raises(expected) as info:
                await client.webhooks.create_endpoint(request)
            texts += [str(info.value), repr(info.value), str(info.value.args)]
    with pytest.raises(ClientClosedError) as closed:
        await client.webhooks.create_endpoint(request)
    texts += [str(closed.value), repr(seen[0])]
    for bad in ("na1.bad key " + api_key, 123):
        with pytest.raises(InvalidArgumentError) as bad_key:
            Client(api_key=bad)  # type: ignore[arg-type]
        texts.append(str(bad_key.value))

    stub = StubTransport((200, seed_body))
    async with Client(api_key=api_key, transport=stub) as client:
        await client.webhooks.create_endpoint(request)
    assert stub.requests[0].headers["Authorization"] == f"Basic {api_key}"
    texts.append(repr(stub.requests[0]))

    assert any(r.name == "fullstory_async" and r.levelno == logging.DEBUG for r in caplog.records)
    assert any(r.name == "fullstory_async" and r.getMessage().startswith("retrying") for r in caplog.records)
    for record in caplog.records:
        texts += [record.getMessage(), repr(record.__dict__)]
    texts.append(caplog.text)
    key_body = api_key.split(".", 1)[1]
    for text in texts:
        assert key_body not in text
        assert secret not in text
