"""Cancellation and lifecycle: no leaked connection or task, idempotent close, a closed client says so, no warnings."""

from __future__ import annotations

import asyncio
import gc
import inspect
import warnings
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from fullstory_async import (
    APIConnectionError,
    ApiRequest,
    ApiResponse,
    APITimeoutError,
    Change,
    Client,
    ClientClosedError,
    CreateEndpointRequest,
    DesiredEndpoint,
    DesiredState,
    Plan,
    RateGovernor,
    RetryPolicy,
    UpdateEndpointRequest,
    Webhooks,
)
from fullstory_async._bulk.reconcile import Action, _sealed
from tests.fakes import ENDPOINT, Gate, RetryWaits, app_of, is_server_task

API_KEY = "na1.LifecycleKey-Jm2x/ORG4"


async def consume(iterator: AsyncIterator[Any]) -> list[Any]:
    return [item async for item in iterator]


async def test_cancelling_1000_in_flight_calls_leaves_no_connection_and_no_task(gate: Gate) -> None:
    """1,000 calls (100 on the wire, 900 queued for the pool) cancelled: the whole pool free again, no task left.

    Seen from the server: 100 arrive and no more (the pool's width); after the cancel, 101
    new calls put 100 on the wire again, so no connection was kept and no slot was lost.
    """
    before = asyncio.all_tasks()
    request = CreateEndpointRequest(url="https://example.com/hook", secret="LifecycleSecret-4hQ")
    calls: list[Callable[[Client], Any]] = [
        lambda c: c.webhooks.create_endpoint(request),
        lambda c: c.webhooks.get_endpoint("ep-1"),
        lambda c: consume(c.webhooks.list_endpoints()),
        lambda c: c.webhooks.update_endpoint("ep-1", UpdateEndpointRequest(event_types=["note.created"])),
    ]
    async with Client(API_KEY, base_url=gate.base_url, retry=RetryPolicy(wait=False)) as client:
        tasks = [asyncio.create_task(calls[n % len(calls)](client)) for n in range(1000)]
        await gate.arrivals(100)  # the default pool size
        for _ in range(50):  # what else could reach the server now does
            await asyncio.sleep(0)
        assert gate.arrived == 100
        assert not any(task.done() for task in tasks)

        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(result, asyncio.CancelledError) for result in results)
        gc.collect()  # finalise abandoned listing generators now, not at some later test
        for _ in range(3):
            await asyncio.sleep(0)
        assert {task for task in asyncio.all_tasks() - before if not is_server_task(task)} == set()

        gate.release.set()
        server_tasks = asyncio.all_tasks() - before
        if server_tasks:
            await asyncio.wait(server_tasks, timeout=5)
        assert asyncio.all_tasks() == before

        await gate.check_pool_width(lambda: client.webhooks.get_endpoint("ep-1"), 100)  # the client still works


async def test_cancelling_during_a_retry_wait_leaves_no_connection(serve) -> None:
    """A call cancelled while it sleeps before a retry holds no connection and leaves no task.

    The client has one connection: another call gets it while the first sleeps, and after it is cancelled.
    """
    attempts = 0
    first_answered = asyncio.Event()

    async def unavailable_once(_request: web.Request) -> web.Response:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            first_answered.set()
            return web.json_response({"code": "unavailable", "message": "later"}, status=503)
        return web.json_response(ENDPOINT)

    app = app_of(unavailable_once)
    base = await serve(app)
    retry = RetryPolicy(backoff_initial=30, backoff_max=30, jitter=False, max_attempts=5, operation_timeout=None)
    before = asyncio.all_tasks()
    async with asyncio.timeout(10), Client(API_KEY, base_url=base, retry=retry, max_connections=1) as client:
        call = asyncio.create_task(client.webhooks.get_endpoint("ep-1"))
        await first_answered.wait()
        assert (await client.webhooks.get_endpoint("ep-1")).id == "ep-1"
        assert not call.done()
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert (await client.webhooks.get_endpoint("ep-1")).id == "ep-1"
    assert attempts == 3  # the cancelled call's one attempt, and the two calls beside it
    assert {task for task in asyncio.all_tasks() - before if not is_server_task(task)} == set()


async def test_closing_twice_or_concurrently_is_fine() -> None:
    """aclose() may be called twice, concurrently, and after `async with`; the client reports closed."""
    client = Client(API_KEY, base_url="http://127.0.0.1:9")
    client._transport.shared.get()  # as after a first call
    await asyncio.gather(client.aclose(), client.aclose())
    await client.aclose()
    assert client.closed
    async with Client(API_KEY) as other:
        pass
    await other.aclose()
    assert other.closed


# Every public coroutine/iterator of `Webhooks`, called on a closed client.
PLAN = _sealed(
    Plan(creates=(Change(Action.CREATE, "https://example.com/a", DesiredEndpoint("https://example.com/a")),))
)
CLOSED_CALLS: dict[str, Callable[[Client], Any]] = {
    "create_endpoint": lambda c: c.webhooks.create_endpoint(CreateEndpointRequest(url="https://example.com/a")),
    "get_endpoint": lambda c: c.webhooks.get_endpoint("ep-1"),
    "update_endpoint": lambda c: c.webhooks.update_endpoint("ep-1", UpdateEndpointRequest(enabled=True)),
    "delete_endpoint": lambda c: c.webhooks.delete_endpoint("ep-1"),
    "list_endpoints_page": lambda c: c.webhooks.list_endpoints_page(),
    "list_endpoints": lambda c: consume(c.webhooks.list_endpoints()),
    "find_endpoint_by_url": lambda c: c.webhooks.find_endpoint_by_url("https://example.com/a"),
    "ensure_endpoint": lambda c: c.webhooks.ensure_endpoint(CreateEndpointRequest(url="https://example.com/a")),
    "provision": lambda c: consume(c.webhooks.provision([CreateEndpointRequest(url="https://example.com/a")])),
    "plan": lambda c: c.webhooks.plan(DesiredState((DesiredEndpoint("https://example.com/a"),))),
    "apply": lambda c: consume(c.webhooks.apply(PLAN)),
    "list_event_types": lambda c: c.webhooks.list_event_types(),
    "list_event_subcategories_page": lambda c: c.webhooks.list_event_subcategories_page("segment.trend.alert"),
    "list_event_subcategories": lambda c: consume(c.webhooks.list_event_subcategories("segment.trend.alert")),
}


def test_the_closed_client_check_covers_every_public_method() -> None:
    """CLOSED_CALLS names every public method of Webhooks (a new method must be added there)."""
    public = {name for name, member in inspect.getmembers(Webhooks) if not name.startswith("_") and callable(member)}
    assert public == set(CLOSED_CALLS)


@pytest.mark.parametrize("operation", sorted(CLOSED_CALLS))
async def test_a_closed_client_raises_client_closed_error(operation: str) -> None:
    """After aclose() every public method raises ClientClosedError (a RuntimeError), before any I/O."""
    client = Client(API_KEY, base_url="http://127.0.0.1:9", retry=RetryPolicy(wait=False))
    await client.aclose()
    error: ClientClosedError | None = None
    try:
        result = await CLOSED_CALLS[operation](client)
    except ClientClosedError as exc:
        error = exc
    else:  # bulk operations report per item: every item failed with ClientClosedError
        items = result if isinstance(result, list) else []
        assert items, f"{operation} on a closed client returned {result!r}"
        assert all(isinstance(item.error, ClientClosedError) for item in items)
    if error is not None:
        assert isinstance(error, RuntimeError)
        assert "closed" in str(error)
    assert client._transport._session is None


async def test_send_on_a_closed_client_raises_client_closed_error() -> None:
    """Client.send, the raw entry point, refuses too."""
    client = Client(API_KEY)
    await client.aclose()
    with pytest.raises(ClientClosedError):
        await client.send(ApiRequest("GET", "/webhooks/v1/endpoints"))


async def test_calls_waiting_for_a_connection_when_the_client_closes_get_client_closed_error(gate: Gate) -> None:
    """aclose() with calls queued for the pool ends them in ClientClosedError, never a stray CancelledError."""
    client = Client(API_KEY, base_url=gate.base_url, max_connections=2, retry=RetryPolicy(wait=False))
    tasks = [asyncio.create_task(client.webhooks.get_endpoint("ep-1")) for _ in range(6)]
    await gate.arrivals(2)
    await client.aclose()
    results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 10)
    assert [type(result).__name__ for result in results] == ["ClientClosedError"] * 6


async def test_in_flight_calls_end_promptly_when_the_client_closes(gate: Gate) -> None:
    """aclose() while calls wait on the server ends them at once with ClientClosedError, a POST too."""
    client = Client(API_KEY, base_url=gate.base_url, max_connections=3, retry=RetryPolicy(wait=False))
    request = CreateEndpointRequest(url="https://example.com/hook")
    tasks = [asyncio.create_task(client.webhooks.get_endpoint("ep-1")) for _ in range(2)]
    tasks.append(asyncio.create_task(client.webhooks.create_endpoint(request)))
    await gate.arrivals(3)
    await client.aclose()
    results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 5)
    assert [type(result) for result in results] == [ClientClosedError, ClientClosedError, ClientClosedError]


def forget_a_client(**kwargs: Any) -> None:
    client = Client(API_KEY, **kwargs)
    assert client._transport._session is None
    del client


def test_a_forgotten_unused_client_does_not_warn() -> None:
    """A client that was never used and never closed creates no session, so garbage collection warns nothing."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        forget_a_client()
        forget_a_client(base_url="http://127.0.0.1:9", max_connections=5)
        gc.collect()
    assert [str(w.message) for w in caught] == []


async def test_a_forgotten_unused_client_made_in_a_loop_does_not_warn() -> None:
    """Inside a running loop too: building a client opens nothing until its first call."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        forget_a_client()
        await asyncio.sleep(0)
        gc.collect()
    assert [str(w.message) for w in caught] == []


async def test_a_used_and_closed_client_leaves_no_warning(gate: Gate) -> None:
    """A client that made a call and was closed leaves no ResourceWarning once collected."""
    gate.release.set()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with Client(API_KEY, base_url=gate.base_url) as client:
            await client.webhooks.get_endpoint("ep-1")
        del client
        await asyncio.sleep(0)
        gc.collect()
    assert [str(w.message) for w in caught] == []


async def test_aclose_ends_calls_in_flight_and_queued_on_a_session_passed_in(gate: Gate) -> None:
    """With the caller's own session: calls on the wire and queued for its pool end at once; the session stays open."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=2)) as session:
        client = Client(API_KEY, base_url=gate.base_url, session=session, retry=RetryPolicy(wait=False))
        request = CreateEndpointRequest(url="https://example.com/hook")
        tasks = [asyncio.create_task(client.webhooks.create_endpoint(request))]
        tasks += [asyncio.create_task(client.webhooks.get_endpoint("ep-1")) for _ in range(5)]
        await gate.arrivals(2)
        await client.aclose()
        results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 2)
        gate.release.set()
        assert [type(result).__name__ for result in results] == ["ClientClosedError"] * 6
        assert not session.closed


async def test_closing_a_derived_client_ends_only_its_own_calls(serve) -> None:
    """A with_options copy's aclose() wakes its call waiting a 30 s Retry-After; the parent's call and pool go on."""
    slow_arrived = asyncio.Event()
    release = asyncio.Event()

    async def handler(request: web.Request) -> web.Response:
        if request.path.endswith("/slow"):
            slow_arrived.set()
            await release.wait()
            return web.json_response(ENDPOINT)
        return web.json_response({"code": "x", "message": "wait"}, status=429, headers={"Retry-After": "30"})

    app = app_of(handler)
    base = await serve(app)
    waits = RetryWaits()
    async with Client(API_KEY, base_url=base, rate_governor=False, hooks=[waits]) as client:
        derived = client.with_options(timeout=10)
        waiting = asyncio.create_task(derived.webhooks.get_endpoint("limited"))
        parents = asyncio.create_task(client.webhooks.get_endpoint("slow"))
        await asyncio.wait_for(slow_arrived.wait(), 5)
        await asyncio.wait_for(waits.waiting.wait(), 5)  # the limited call is in its retry wait
        assert waits.waits == [30.0]
        await derived.aclose()
        with pytest.raises(ClientClosedError):
            await asyncio.wait_for(waiting, 2)
        assert not parents.done()  # still on the wire, on the shared pool
        release.set()
        assert (await asyncio.wait_for(parents, 5)).id == "ep-1"
        assert derived.closed
        assert not client.closed
        assert (await client.webhooks.get_endpoint("slow")).id == "ep-1"
        with pytest.raises(ClientClosedError):
            await derived.webhooks.get_endpoint("slow")


def test_a_contended_governor_under_a_second_event_loop_raises_event_loop_error() -> None:
    """Concurrent calls of a client reused under a second asyncio.run all fail typed, none with a bare RuntimeError."""

    async def transport(request: ApiRequest) -> ApiResponse:
        await asyncio.sleep(0)
        return ApiResponse(200, {}, b'{"eventDefs": []}')

    client = Client(API_KEY, transport=transport, rate_governor=RateGovernor(initial_rate=1000))

    async def burst() -> list[object]:
        return await asyncio.gather(*(client.webhooks.list_event_types() for _ in range(6)), return_exceptions=True)

    assert asyncio.run(burst()) == [[]] * 6
    assert [type(result).__name__ for result in asyncio.run(burst())] == ["EventLoopError"] * 6


@pytest.mark.parametrize("governor", [False, True])
async def test_a_callers_cancel_stays_a_cancel_when_the_client_closes_right_after(governor: bool) -> None:
    """The caller cancels a call in flight, then the client closes before the call runs again: CancelledError.

    (The close used to take the caller's cancellation for its own and raise ClientClosedError.)
    """
    started = asyncio.Event()

    async def hang(_request: ApiRequest) -> ApiResponse:
        started.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    fs = Client(API_KEY, transport=hang, retry=RetryPolicy(wait=False), rate_governor=governor)
    task = asyncio.ensure_future(fs.webhooks.get_endpoint("ep-1"))
    await started.wait()
    task.cancel()
    await fs.aclose()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_calls_queued_behind_the_governor_or_on_a_closed_copy_made_no_attempt() -> None:
    """Calls closed while they wait in the governor (queued behind another, or on a closed copy) made no attempt.

    Both end with ClientClosedError, attempts 0, nothing sent.
    """
    sent: list[ApiRequest] = []

    async def answer(request: ApiRequest) -> ApiResponse:
        sent.append(request)
        return ApiResponse(200, {}, b"{}")

    fs = Client(API_KEY, transport=answer, rate_governor=RateGovernor(max_rate=1.0))
    copy = fs.with_options(timeout=5)
    await fs.send(ApiRequest("GET", "/x", operation="op"))
    on_copy = asyncio.ensure_future(copy.send(ApiRequest("GET", "/x", operation="op")))
    queued = asyncio.ensure_future(fs.send(ApiRequest("GET", "/x", operation="op")))
    for _ in range(30):  # one waits for the next slot, a second away; the other queues behind it
        await asyncio.sleep(0)
    await copy.aclose()
    await fs.aclose()
    for call in (on_copy, queued):
        with pytest.raises(ClientClosedError) as info:
            await call
        assert (info.value.attempts, info.value.sent) == (0, False)
    assert len(sent) == 1


async def test_an_ambiguous_delete_then_an_unsent_retry_still_says_sent() -> None:
    """A DELETE reset after it was written, then a retry the governor refuses (deadline): the error says sent.

    It said ``sent=False`` (the last attempt's), as if nothing could have been deleted.
    """
    seen: list[str] = []

    async def reset(request: ApiRequest) -> ApiResponse:
        seen.append(request.method)
        raise APIConnectionError("reset after the request was written", method=request.method, path=request.path)

    retry = RetryPolicy(operation_timeout=0.5, backoff_initial=0.01, jitter=False)
    async with Client(API_KEY, transport=reset, rate_governor=RateGovernor(max_rate=1.0), retry=retry) as fs:
        with pytest.raises(APITimeoutError) as info:
            await fs.send(ApiRequest("DELETE", "/webhooks/v1/endpoints/e1", operation="delete_endpoint"))
    assert seen == ["DELETE"]
    assert (info.value.attempts, info.value.sent) == (1, True)


async def test_closing_one_client_leaves_a_governor_it_shares_with_another_open() -> None:
    """Two clients share one RateGovernor: closing one ends its own held call only; the other's goes on.

    aclose() ends calls through the client's one registry, not by closing the shared governor
    (which used to fail every call of the other client with ClientClosedError).
    """
    sent: list[str] = []

    async def answer(request: ApiRequest) -> ApiResponse:
        sent.append(request.path)
        return ApiResponse(200, {}, b"{}")

    governor = RateGovernor(max_rate=1.0)
    first = Client(API_KEY, transport=answer, rate_governor=governor)
    second = Client(API_KEY, transport=answer, rate_governor=governor)
    await first.send(ApiRequest("GET", "/first", operation="op"))
    held = asyncio.ensure_future(first.send(ApiRequest("GET", "/held", operation="op")))
    for _ in range(30):  # it waits for the next slot, a second away
        await asyncio.sleep(0)
    await first.aclose()
    with pytest.raises(ClientClosedError) as info:
        await held
    assert (info.value.attempts, info.value.sent) == (0, False)
    response = await asyncio.wait_for(second.send(ApiRequest("GET", "/second", operation="op")), 5)
    assert response.status == 200
    assert sent == ["/first", "/second"]
    await second.aclose()
