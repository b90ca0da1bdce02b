"""Raw responses: ``webhooks.with_raw_response`` gives status, headers and request id of a successful typed call."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import web

from fullstory_async import (
    ApiRequest,
    ApiResponse,
    Client,
    CreateEndpointRequest,
    Endpoint,
    EventType,
    NotFoundError,
    Page,
    RawResponse,
    RetryPolicy,
    ServerError,
    UpdateEndpointRequest,
)

from .conftest import API_KEY, SEED_ENDPOINT_BODY

ENDPOINT = json.loads(SEED_ENDPOINT_BODY)
ENDPOINT_ID = ENDPOINT["id"]


async def test_get_endpoint_against_a_raw_server(serve):
    """Over HTTP: the request id and every response header are there, and ``parse()`` is the plain result."""

    async def handler(request: web.Request) -> web.Response:
        return web.json_response(
            ENDPOINT, headers={"X-Request-Id": "req-123", "X-RateLimit-Remaining": "41", "Server": "raw"}
        )

    app = web.Application()
    app.router.add_get("/webhooks/v1/endpoints/{id}", handler)
    base_url = await serve(app)
    async with Client(api_key=API_KEY, base_url=base_url) as fs:
        raw = await fs.webhooks.with_raw_response.get_endpoint(ENDPOINT_ID)
        plain = await fs.webhooks.get_endpoint(ENDPOINT_ID)
    assert isinstance(raw, RawResponse)
    assert raw.status == 200
    assert raw.request_id == "req-123"
    assert raw.headers["x-ratelimit-remaining"] == "41"
    assert raw.headers["server"] == "raw"
    assert raw.attempts == 1
    assert isinstance(raw.parse(), Endpoint)
    assert raw.parse() == plain
    assert json.loads(raw.response.body) == ENDPOINT


async def test_attempts_of_a_retried_create(fake):
    """A create answered 429 twice, then 201: the raw response is the 201, with three attempts."""
    client, _ = fake(
        (429, {}, {"Retry-After": "1"}),
        (429, {}, {"Retry-After": "1"}),
        (201, ENDPOINT, {"X-Request-Id": "created-1"}),
    )
    request = CreateEndpointRequest(url=ENDPOINT["url"], event_types=[EventType("note.created")])
    raw = await client.webhooks.with_raw_response.create_endpoint(request)
    assert (raw.status, raw.request_id, raw.attempts) == (201, "created-1", 3)
    assert raw.parse().id == ENDPOINT_ID


async def test_update_that_reads_first_returns_the_update_response(fake):
    """``update_endpoint`` without ``enabled`` reads the endpoint first; the raw response is the update's."""
    client, transport = fake((200, ENDPOINT, {"X-Request-Id": "read"}), (200, ENDPOINT, {"X-Request-Id": "write"}))
    raw = await client.webhooks.with_raw_response.update_endpoint(
        ENDPOINT_ID, UpdateEndpointRequest(event_types=[EventType("note.created")])
    )
    assert [r.method for r in transport.requests] == ["GET", "POST"]
    assert raw.request_id == "write"


async def test_delete_and_pages(fake):
    """Every single-call operation is mirrored: a delete parses to None, a page to a `Page`."""
    client, _ = fake(
        (204, None, {"X-Request-Id": "gone"}),
        (200, {"endpoints": [ENDPOINT], "nextPaginationToken": "t2"}, {"X-Request-Id": "page-1"}),
        (200, {"eventTypes": []}, {"X-Request-Id": "types"}),
        (200, {"subcategoryDefs": [{"subcategory": "s1"}]}, {"X-Request-Id": "subs"}),
    )
    raw = client.webhooks.with_raw_response
    deleted = await raw.delete_endpoint(ENDPOINT_ID)
    assert (deleted.status, deleted.request_id, deleted.parse()) == (204, "gone", None)
    page = await raw.list_endpoints_page(page_size=1)
    assert isinstance(page.parse(), Page)
    assert page.parse().next_page_token == "t2"
    assert page.request_id == "page-1"
    assert (await raw.list_event_types()).parse() == []
    subcategories = await raw.list_event_subcategories_page("note.created")
    assert subcategories.request_id == "subs"
    assert [s.subcategory for s in subcategories.parse().items] == ["s1"]


async def test_failures_raise_the_typed_error(fake):
    """A failing call raises as the plain method does; the error carries the request id."""
    client, _ = fake((404, {"code": "not_found", "message": "nope"}, {"X-Request-Id": "missing-1"}))
    with pytest.raises(NotFoundError) as caught:
        await client.webhooks.with_raw_response.get_endpoint("missing")
    assert caught.value.request_id == "missing-1"


async def test_concurrent_raw_calls_keep_their_own_responses(fake):
    """Calls in flight at once on one raw view each get their own response."""

    async def reply(request: ApiRequest) -> ApiResponse:
        await asyncio.sleep(0)
        endpoint_id = request.path.rsplit("/", 1)[1]
        return ApiResponse(200, {"X-Request-Id": f"id-{endpoint_id}"}, SEED_ENDPOINT_BODY)

    client, _ = fake(*[reply] * 20)
    raw = client.webhooks.with_raw_response
    results = await asyncio.gather(*(raw.get_endpoint(f"e{i}") for i in range(20)))
    assert [r.request_id for r in results] == [f"id-e{i}" for i in range(20)]


async def test_with_options_composes(fake):
    """``fs.with_options(...).webhooks.with_raw_response`` runs under the derived client's settings."""
    client, transport = fake(*[(503, {})] * 4, (200, ENDPOINT, {"X-Request-Id": "ok"}))
    hasty = client.with_options(retry=RetryPolicy(max_attempts=1, wait=False))
    with pytest.raises(ServerError):
        await hasty.webhooks.with_raw_response.get_endpoint(ENDPOINT_ID)
    assert len(transport.requests) == 1
    raw = await client.with_options(timeout=7).webhooks.with_raw_response.get_endpoint(ENDPOINT_ID)
    assert (raw.request_id, raw.attempts) == ("ok", 4)  # the original policy: three 503s retried
    assert len(transport.requests) == 5
