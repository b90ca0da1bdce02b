"""One budget per bulk item, against raw aiohttp servers.

The request formula is reached and never passed, and a job at many times the server's rate
limit queues instead of failing its items for waiting.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import pytest
from aiohttp import web

from fullstory_async import (
    APITimeoutError,
    Client,
    ClientClosedError,
    CreateEndpointRequest,
    Endpoint,
    EventType,
    Outcome,
    ProvisionResult,
    RateGovernor,
    RetryPolicy,
    ServerError,
)
from fullstory_async._bulk.provision import derived_endpoint_id
from tests.fakes import Serve, app_of

API_KEY = "na1.BulkBudgetKey-Pq4z/ORG7"
ENDPOINTS = "/webhooks/v1/endpoints"
STAMP = "2020-04-01T21:53:58.200Z"


def endpoint_json(url: str, *names: str) -> dict[str, object]:
    """Return the wire form of the endpoint of ``url`` (its id derived from the URL, as the API does)."""
    return {
        "id": derived_endpoint_id(url),
        "created": STAMP,
        "modified": STAMP,
        "enabled": True,
        "url": url,
        "eventTypes": [{"eventName": name} for name in names],
    }


def error(status: int, **headers: str) -> web.Response:
    """Return an error answer in the API's shape."""
    return web.json_response({"code": "x", "message": f"status {status}"}, status=status, headers=headers)


async def results_of(stream: AsyncIterator[ProvisionResult]) -> list[ProvisionResult]:
    """Collect a provision stream, by input index."""
    return sorted([result async for result in stream], key=lambda result: result.index)


@pytest.mark.parametrize("attempts", [1, 2, 3])
async def test_the_worst_item_makes_exactly_the_stated_number_of_requests(serve: Serve, attempts: int) -> None:
    """Every request as bad as it may be: one item makes (A + 1) * (L + A) requests, L = A once ids are known.

    Each lookup answers 503 until its last attempt (404), each create 429 until its last
    attempt (503, ambiguous; 409 in the last round), then the lookup finds the endpoint with
    other event types, and the update succeeds on its last attempt.
    """
    a = attempts
    known = "https://example.com/known"
    target = "https://example.com/target"
    counts = {"lookup": 0, "create": 0, "update": 0}
    served = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal served
        path = request.path
        if path == f"{ENDPOINTS}/{derived_endpoint_id(known)}":
            return web.json_response(endpoint_json(known, "note.created"))
        served += 1
        if request.method == "GET":
            counts["lookup"] += 1
            n = counts["lookup"]
            if n % a:
                return error(503)
            if n // a <= a:
                return error(404)
            return web.json_response(endpoint_json(target, "segment.created"))
        if path == ENDPOINTS:
            counts["create"] += 1
            n = counts["create"]
            if n % a:
                return error(429, **{"Retry-After": "0"})
            return error(409 if n // a == a else 503)
        counts["update"] += 1
        if counts["update"] % a:
            return error(429, **{"Retry-After": "0"})
        return web.json_response(endpoint_json(target, "note.created"))

    base = await serve(app_of(handler))
    retry = RetryPolicy(max_attempts=a, wait=False)
    requests = [CreateEndpointRequest(url=known, event_types=[EventType("note.created")])]
    requests.append(CreateEndpointRequest(url=target, event_types=[EventType("note.created")]))
    async with Client(API_KEY, base_url=base, retry=retry, rate_governor=False) as fs:
        results = await results_of(fs.webhooks.provision(requests, concurrency=1, prefetch=False))
    first, worst = results
    assert first.outcome is Outcome.UNCHANGED  # the client now knows ids are derived from URLs: L = A
    assert worst.outcome is Outcome.UPDATED, worst.error
    bound = (a + 1) * (a + a)
    assert served == bound
    assert worst.attempts == bound


async def test_a_failed_item_reports_every_attempt_it_made(serve: Serve) -> None:
    """An item that fails carries the attempts of all its calls, in its result and on its error."""
    served = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal served
        served += 1
        if request.method == "GET":
            return error(404)
        return error(503)

    base = await serve(app_of(handler))
    retry = RetryPolicy(max_attempts=3, wait=False)
    url = "https://example.com/fails"
    async with Client(API_KEY, base_url=base, retry=retry, rate_governor=False) as fs:
        fs.webhooks._provisioner.observe(derived(url))  # ids are known to be derived: one GET per lookup
        [result] = await results_of(fs.webhooks.provision([CreateEndpointRequest(url=url)], prefetch=False))
    assert isinstance(result.error, ServerError)
    assert result.attempts == served == 3 * (1 + 1)  # three rounds of lookup (1 attempt) and create (1 attempt)
    assert result.error.attempts == result.attempts


async def test_an_item_never_outlives_its_budget(serve: Serve) -> None:
    """Lookups, creates and waits of one ensure_endpoint share one deadline: no fresh deadline per call.

    Every answer takes 0.3 s and the budget is 1 s, so at most 4 requests start (the 5th would
    begin past the deadline); with a deadline per call, 50 rounds would make 100 requests.
    """
    served = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal served
        served += 1
        await asyncio.sleep(0.3)
        if request.method == "GET":
            return error(404)
        return error(503)

    base = await serve(app_of(handler))
    retry = RetryPolicy(max_attempts=50, operation_timeout=1.0, backoff_initial=0.01, backoff_max=0.01)
    async with Client(API_KEY, base_url=base, retry=retry, rate_governor=False) as fs:
        fs.webhooks._provisioner.observe(derived("https://example.com/slow"))
        with pytest.raises((ServerError, APITimeoutError)) as info:
            await asyncio.wait_for(
                fs.webhooks.ensure_endpoint(CreateEndpointRequest(url="https://example.com/slow")), 5
            )
    assert 1 <= served <= 4
    assert info.value.attempts == served


async def test_a_job_far_above_the_rate_limit_queues_instead_of_failing(serve: Serve) -> None:
    """Concurrency 64 against a 20/s fixed-window limit and a 2 s budget per item: every item succeeds.

    Without admission every item's budget would start at once, and the later ones would
    wait in the governor longer than their budget.
    """
    window, allowed = 0.1, 2
    hits: dict[int, int] = {}

    async def handler(request: web.Request) -> web.Response:
        now = time.monotonic()
        slot = math.floor(now / window)
        hits[slot] = hits.get(slot, 0) + 1
        if hits[slot] > allowed:
            return error(429, **{"Retry-After": f"{(slot + 1) * window - now:.3f}"})
        if request.method == "GET":
            return web.json_response({"endpoints": []})
        body = await request.json()
        return web.json_response(endpoint_json(body["url"], "note.created"))

    base = await serve(app_of(handler))
    items = [CreateEndpointRequest(url=f"https://example.com/h{i}", event_types=["note.created"]) for i in range(60)]
    async with Client(API_KEY, base_url=base, retry=RetryPolicy(operation_timeout=2.0, max_attempts=10)) as fs:
        results = await asyncio.wait_for(results_of(fs.webhooks.provision(items, concurrency=64)), 30)
    failed = [(r.index, type(r.error).__name__) for r in results if not r.ok]
    assert failed == []


def derived(url: str) -> Endpoint:
    """Return an endpoint of ``url`` whose id is derived from it (teaches a client that ids are derived)."""
    when = datetime(2020, 4, 1, tzinfo=UTC)
    return Endpoint(derived_endpoint_id(url), when, when, True, url, ())


async def test_aclose_wakes_an_item_waiting_to_look_again(serve: Serve) -> None:
    """An ensure_endpoint backing off (30 s) after an ambiguous create ends at once in ClientClosedError on aclose()."""
    created = asyncio.Event()

    async def handler(request: web.Request) -> web.Response:
        if request.method == "GET":
            return error(404)
        created.set()
        return error(503)

    base = await serve(app_of(handler))
    retry = RetryPolicy(max_attempts=3, operation_timeout=None, backoff_initial=30, backoff_max=30, jitter=False)
    fs = Client(API_KEY, base_url=base, retry=retry, rate_governor=False)
    fs.webhooks._provisioner.observe(derived("https://example.com/paused"))
    task = asyncio.create_task(fs.webhooks.ensure_endpoint(CreateEndpointRequest(url="https://example.com/paused")))
    await asyncio.wait_for(created.wait(), 5)
    await asyncio.sleep(0.05)  # let it reach its back-off
    assert not task.done()
    await fs.aclose()
    with pytest.raises(ClientClosedError):
        await asyncio.wait_for(task, 2)


async def test_aclose_mid_job_under_pacing_gives_every_item_taken_its_result(serve: Serve) -> None:
    """Items waiting for the governor's capacity when the client closes still get a result each (ClientClosedError)."""

    async def handler(request: web.Request) -> web.Response:
        if request.method == "GET":
            return web.json_response({"endpoints": []})
        body = await request.json()
        await asyncio.sleep(0.2)
        return web.json_response(endpoint_json(body["url"], "note.created"))

    base = await serve(app_of(handler))
    taken: list[int] = []

    def items() -> Iterator[CreateEndpointRequest]:
        for i in range(200):
            taken.append(i)
            yield CreateEndpointRequest(url=f"https://example.com/c{i}", event_types=["note.created"])

    fs = Client(API_KEY, base_url=base, rate_governor=RateGovernor(max_rate=5))
    results: list[ProvisionResult] = []

    first_result = asyncio.Event()

    async def consume() -> None:
        async for result in fs.webhooks.provision(items(), concurrency=16):
            results.append(result)
            first_result.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first_result.wait(), 10)  # an item done, the rest waiting for the paced creates
    await fs.aclose()
    with pytest.raises(ClientClosedError):
        await asyncio.wait_for(task, 5)
    assert sorted(r.index for r in results) == taken
    assert any(isinstance(r.error, ClientClosedError) for r in results)


async def test_items_are_admitted_on_the_route_of_their_first_request(serve: Serve) -> None:
    """With lookups paced (prefetch off), items queue at admission instead of failing for the lookup's slot."""

    async def handler(request: web.Request) -> web.Response:
        if request.method == "GET" and request.path == ENDPOINTS:
            return web.json_response({"endpoints": []})
        if request.method == "GET":
            return error(404)
        body = await request.json()
        return web.json_response(endpoint_json(body["url"], "note.created"))

    base = await serve(app_of(handler))
    items = [CreateEndpointRequest(url=f"https://example.com/r{i}", event_types=["note.created"]) for i in range(20)]
    governor = RateGovernor(max_rate={"get_endpoint": 10})
    retry = RetryPolicy(operation_timeout=0.5)
    async with Client(API_KEY, base_url=base, retry=retry, rate_governor=governor) as fs:
        results = await asyncio.wait_for(results_of(fs.webhooks.provision(items, concurrency=64, prefetch=False)), 30)
    assert [(r.index, r.error) for r in results if not r.ok] == []
    assert {r.outcome for r in results} == {Outcome.CREATED}


async def test_skipped_back_offs_between_creates_count_against_the_budget(serve: Serve) -> None:
    """RetryPolicy(wait=False): the back-offs before looking again are skipped but charged, as real ones would be."""
    creates = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal creates
        if request.method == "GET":
            return error(404)
        creates += 1
        return error(503)

    base = await serve(app_of(handler))
    retry = RetryPolicy(
        wait=False, max_attempts=10, operation_timeout=5, backoff_initial=2, backoff_max=2, jitter=False
    )
    async with Client(API_KEY, base_url=base, retry=retry, rate_governor=False) as fs:
        fs.webhooks._provisioner.observe(derived("https://example.com/skipped"))
        with pytest.raises(ServerError):
            await fs.webhooks.ensure_endpoint(CreateEndpointRequest(url="https://example.com/skipped"))
    assert creates == 3  # 2 s + 2 s of back-off fit a 5 s budget; a third does not


async def test_a_create_applied_then_cut_off_is_never_sent_again(serve: Serve) -> None:
    """A server that stores each create, then drops the connection: every URL is created once, never twice.

    Not FakeFullstory: a raw server whose GET finds what its POST stored, and whose POST
    commits before the connection is cut (the ambiguous case the SDK must settle by reading).
    """
    stored: dict[str, dict[str, object]] = {}
    posts: dict[str, int] = {}

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.method == "POST":
            body = await request.json()
            url = body["url"]
            posts[url] = posts.get(url, 0) + 1
            stored[url] = endpoint_json(url, *(t["eventName"] for t in body.get("eventTypes", [])))
            assert request.transport is not None
            request.transport.close()  # committed, then the answer is lost
            return web.Response()
        endpoint_id = request.match_info["tail"].rsplit("/", 1)[-1]
        for endpoint in stored.values():
            if endpoint["id"] == endpoint_id:
                return web.json_response(endpoint)
        return error(404)

    base = await serve(app_of(handler))
    urls = [f"https://example.com/cut/{n}" for n in range(20)]
    requests = [CreateEndpointRequest(url=url, event_types=[EventType("note.created")]) for url in urls]
    async with Client(API_KEY, base_url=base, retry=RetryPolicy(wait=False), rate_governor=False) as fs:
        fs.webhooks._provisioner.observe(derived(urls[0]))  # ids are known to be derived: one GET per lookup
        results = await results_of(fs.webhooks.provision(requests, prefetch=False, concurrency=8))
    assert [result.outcome for result in results] == [Outcome.CREATED] * len(urls)  # settled by reading it back
    assert posts == dict.fromkeys(urls, 1)  # and never re-sent


async def test_an_item_refused_as_existing_reports_the_lookups_it_made(serve: Serve) -> None:
    """on_exists="error": the item's EndpointExistsError carries its attempts (its lookup's 429 retry too)."""
    served = 0
    url = "https://example.com/exists"

    async def handler(request: web.Request) -> web.Response:
        nonlocal served
        served += 1
        if served == 1:
            return error(429, **{"Retry-After": "0"})
        return web.json_response(endpoint_json(url, "note.created"))

    base = await serve(app_of(handler))
    async with Client(API_KEY, base_url=base, retry=RetryPolicy(wait=False), rate_governor=False) as fs:
        requests = [CreateEndpointRequest(url=url, event_types=[EventType("note.created")])]
        [result] = await results_of(fs.webhooks.provision(requests, on_exists="error", prefetch=False))
    assert result.outcome is Outcome.FAILED
    assert served == result.attempts == 2
    assert result.error is not None
    assert result.error.attempts == 2
