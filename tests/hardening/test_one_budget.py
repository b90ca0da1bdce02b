"""One operation, one budget: each row of issue 10's probe table, against small raw aiohttp servers.

Every server here is written in the test (not FakeFullstory) and runs on 127.0.0.1. Each
test failed on the code before the retry seam was rebuilt. ``asyncio.timeout`` guards turn
a hang into a failure; they are not timing assertions.
"""

from __future__ import annotations

import asyncio
import gc
import gzip
import logging
import tracemalloc
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest
from aiohttp import web

from fullstory_async import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    Client,
    ClientClosedError,
    CreateEndpointRequest,
    NotFoundError,
    RateGovernor,
    RateLimitError,
    ResponseDecodeError,
    RetryPolicy,
    ServerError,
    UpdateEndpointRequest,
)
from tests.fakes import ENDPOINT, RetryWaits, Serve, app_of

API_KEY = "na1.OneBudgetKey-Qx7v/ORG9"
ENDPOINTS = "/webhooks/v1/endpoints"


async def consume(items: AsyncIterator[object]) -> None:
    """Walk an async iterator to its end."""
    async for _ in items:
        pass


def reset(request: web.Request) -> None:
    """Drop the connection without an answer."""
    assert request.transport is not None
    request.transport.abort()


async def test_a_garbled_2xx_is_one_failed_attempt_within_max_attempts(serve: Serve) -> None:
    """503, 503, 503 then a truncated 2xx body under max_attempts=4: exactly 4 requests, then ResponseDecodeError."""
    seen = 0

    async def handler(_request: web.Request) -> web.Response:
        nonlocal seen
        seen += 1
        if seen % 4:
            return web.json_response({"code": "unavailable", "message": "busy"}, status=503)
        return web.Response(body=b'{"id": "ep-1", "url": "https://exa', content_type="application/json")

    base = await serve(app_of(handler))
    async with Client(API_KEY, base_url=base, retry=RetryPolicy(max_attempts=4, wait=False)) as fs:
        with pytest.raises(ResponseDecodeError) as info:
            await asyncio.wait_for(fs.webhooks.get_endpoint("ep-1"), 10)
    assert seen == 4
    assert getattr(info.value, "attempts", None) == 4


@pytest.mark.parametrize("body", [b"[]", b'"ep-1"', b"42", b"null", b'[{"id": "ep-1"}]'])
async def test_a_2xx_json_body_that_is_no_object_is_one_typed_decode_failure(serve: Serve, body: bytes) -> None:
    """A raw server answering 200 with JSON that is not an object: a `ResponseDecodeError` naming it, never retried."""
    seen = 0

    async def handler(_request: web.Request) -> web.Response:
        nonlocal seen
        seen += 1
        return web.Response(body=body, content_type="application/json")

    base = await serve(app_of(handler))
    async with Client(API_KEY, base_url=base, retry=RetryPolicy(max_attempts=4, wait=False)) as fs:
        with pytest.raises(ResponseDecodeError) as info:
            await asyncio.wait_for(fs.webhooks.get_endpoint("ep-1"), 10)
    assert seen == 1  # the same bytes would fail the same way
    assert "expected a JSON object" in str(info.value)


async def refuse_until_paused(fs: Client, seen: Callable[[], int]) -> RateLimitError:
    """Send calls (each one attempt, operation_timeout 1 s) to a route refusing everything, until one never reaches it.

    Every call before must fail at once with the server's 429. Once nothing has got
    through, the governor pauses the whole route until ``Retry-After``: the call that
    finds the pause longer than its deadline fails at once too, without being sent.
    Returns its error.
    """
    hasty = fs.with_options(retry=RetryPolicy(max_attempts=1, operation_timeout=1.0))
    for _ in range(40):  # the governor decides after 20 refusals (src: fullstory_async/_pace.py)
        before = seen()
        with pytest.raises(RateLimitError) as refused:
            await hasty.webhooks.get_endpoint("ep-1")
        if seen() == before:
            return refused.value
    raise AssertionError("the governor never paused a route that admitted nothing")


async def test_a_retry_after_beyond_the_deadline_fails_both_calls_at_once(serve: Serve) -> None:
    """429 Retry-After 4 under operation_timeout=1: neither the refused call nor one held by a route pause waits for it.

    A stray 429 pauses nobody (the next call goes through); a route that admits nothing
    is paused, and a call whose deadline ends before the pause fails at once.
    """
    seen = 0
    refuse_all = False

    async def handler(_request: web.Request) -> web.Response:
        nonlocal seen
        seen += 1
        if seen == 1 or refuse_all:
            return web.json_response({"code": "rate", "message": "slow"}, status=429, headers={"Retry-After": "4"})
        return web.json_response(ENDPOINT)

    base = await serve(app_of(handler))
    async with Client(API_KEY, base_url=base, retry=RetryPolicy(operation_timeout=1.0)) as fs:
        async with asyncio.timeout(3):
            with pytest.raises(RateLimitError) as first:
                await fs.webhooks.get_endpoint("ep-1")
            await fs.webhooks.get_endpoint("ep-1")  # a stray 429: the next call is not paused
    assert first.value.retry_after == 4.0
    assert seen == 2

    refuse_all = True
    async with Client(API_KEY, base_url=base, retry=RetryPolicy(operation_timeout=1.0)) as fs:
        async with asyncio.timeout(10):
            held = await refuse_until_paused(fs, lambda: seen)
            sent = seen
            with pytest.raises(RateLimitError) as second:
                await fs.webhooks.get_endpoint("ep-1")
    for error in (held, second.value):
        assert error.retry_after is not None
        assert 3.0 < error.retry_after <= 4.0  # what the pause still needed: nobody waited a second of it
    assert seen == sent  # the paused call never reached the server


async def test_aclose_wakes_every_call_waiting_on_a_pause(serve: Serve) -> None:
    """429 Retry-After 8: one call waiting to retry, ten on the route's pause; aclose() ends all eleven at once."""
    seen = 0
    waits = RetryWaits()

    async def handler(_request: web.Request) -> web.Response:
        nonlocal seen
        seen += 1
        return web.json_response({"code": "rate", "message": "slow"}, status=429, headers={"Retry-After": "8"})

    base = await serve(app_of(handler))
    fs = Client(API_KEY, base_url=base, hooks=[waits])
    first = asyncio.create_task(fs.webhooks.get_endpoint("ep-1"))
    await asyncio.wait_for(waits.waiting.wait(), 5)
    assert waits.waits == [8.0]  # the first call waits 8 s in the retry layer
    await asyncio.wait_for(refuse_until_paused(fs, lambda: seen), 10)  # and the route is paused 8 s
    sent = seen
    waiting = [asyncio.create_task(fs.webhooks.get_endpoint("ep-1")) for _ in range(10)]
    await asyncio.sleep(0.05)
    assert not any(task.done() for task in [first, *waiting])
    await fs.aclose()
    async with asyncio.timeout(1.5):
        results = await asyncio.gather(first, *waiting, return_exceptions=True)
    assert [type(result) for result in results] == [ClientClosedError] * 11
    assert seen == sent  # the ten never reached the server


async def test_a_listing_whose_tokens_cycle_ends_in_a_typed_error(serve: Serve) -> None:
    """Tokens cycling A, B, A, B...: the walk stops at the first token seen before, with ResponseDecodeError."""
    seen = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal seen
        seen += 1
        token = "B" if request.query.get("paginationToken") == "A" else "A"
        return web.json_response({"endpoints": [ENDPOINT], "nextPaginationToken": token})

    base = await serve(app_of(handler))
    async with Client(API_KEY, base_url=base, retry=RetryPolicy(max_attempts=1)) as fs:
        with pytest.raises(ResponseDecodeError) as info:
            await asyncio.wait_for(consume(fs.webhooks.list_endpoints()), 5)
    assert seen == 3  # "", A, B; B names A again
    assert info.value.field == "$.nextPaginationToken"


async def test_a_gzip_bomb_is_refused_while_streaming(serve: Serve) -> None:
    """A small gzip body inflating to 64 MB under max_response_bytes=1 MiB is refused without being inflated whole."""
    bomb = gzip.compress(b" " * (64 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < 300 * 1024

    async def handler(_request: web.Request) -> web.Response:
        return web.Response(body=bomb, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})

    base = await serve(app_of(handler))
    async with Client(API_KEY, base_url=base, max_response_bytes=1024 * 1024, retry=RetryPolicy(max_attempts=1)) as fs:
        tracemalloc.start()
        try:
            with pytest.raises(ResponseDecodeError) as info:
                await fs.webhooks.get_endpoint("ep-1")
            _current, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert "max_response_bytes" in info.value.reason
    assert str(len(bomb)) not in info.value.reason  # the compressed Content-Length is not the decoded size
    assert "decoded when refused" in info.value.reason
    assert peak < 16 * 1024 * 1024  # inflating it whole would take 64 MB


async def test_a_delete_retried_after_a_reset_that_finds_404_succeeds(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    """DELETE applied, connection reset, retried, 404: success (it is gone), logged at INFO."""
    seen = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal seen
        seen += 1
        if seen == 1:
            reset(request)  # applied, but the answer is lost
            return web.Response()
        return web.json_response({"code": "not_found", "message": "no such endpoint"}, status=404)

    base = await serve(app_of(handler))
    caplog.set_level(logging.INFO, "fullstory_async")
    async with Client(API_KEY, base_url=base, retry=RetryPolicy(wait=False)) as fs:
        await fs.webhooks.delete_endpoint("ep-1")
        with pytest.raises(NotFoundError):  # a first attempt that finds 404 is still NotFoundError
            await fs.webhooks.delete_endpoint("ep-1")
    assert seen == 3
    assert any("404 after an ambiguous attempt" in r.getMessage() and r.levelno == logging.INFO for r in caplog.records)


async def test_settings_are_read_only_and_with_options_is_effective(serve: Serve) -> None:
    """Assigning fs.retry fails; fs.with_options(retry=...) is effective on the same session and the original stays."""
    seen = 0

    async def handler(_request: web.Request) -> web.Response:
        nonlocal seen
        seen += 1
        return web.json_response({"code": "unavailable", "message": "busy"}, status=503)

    base = await serve(app_of(handler))
    async with Client(API_KEY, base_url=base, retry=RetryPolicy(wait=False)) as fs:
        with pytest.raises(AttributeError):
            fs.retry = RetryPolicy(max_attempts=1)  # type: ignore[misc]
        once = fs.with_options(retry=RetryPolicy(max_attempts=1))
        with pytest.raises(ServerError):
            await once.webhooks.get_endpoint("ep-1")
        assert seen == 1
        with pytest.raises(ServerError):
            await fs.webhooks.get_endpoint("ep-1")
        assert seen == 1 + 4
        await once.aclose()  # closing the derived client leaves the shared session open
        assert once.closed
        assert not fs.closed
        with pytest.raises(ServerError):
            await fs.webhooks.get_endpoint("ep-1")


async def test_distinct_per_call_timeouts_keep_memory_flat(serve: Serve) -> None:
    """1,000 calls with distinct per-call timeouts (and a deadline each) leave no per-call cache entry behind."""

    async def handler(_request: web.Request) -> web.Response:
        return web.json_response(ENDPOINT)

    base = await serve(app_of(handler))
    sdk_logger = logging.getLogger("fullstory_async")
    level = sdk_logger.level
    sdk_logger.setLevel(logging.INFO)  # the suite's log capture keeps every DEBUG record: not ours to count
    async with Client(API_KEY, base_url=base, rate_governor=False) as fs:
        for i in range(100):  # warm up pools, caches (64 timeouts) and interned strings
            await fs.webhooks.get_endpoint("ep-1", timeout=5 + i / 1000)
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.take_snapshot()
            for i in range(1000):
                await fs.webhooks.get_endpoint("ep-1", timeout=10 + i / 1000)
            gc.collect()
            after = tracemalloc.take_snapshot()
        finally:
            tracemalloc.stop()
            sdk_logger.setLevel(level)
    ours = [tracemalloc.Filter(inclusive=True, filename_pattern="*fullstory_async*")]  # not the test's log capture
    diff = after.filter_traces(ours).compare_to(before.filter_traces(ours), "lineno")
    growth = sum(stat.size_diff for stat in diff)
    assert growth < 64 * 1024  # one cached timeout per value was ~260 B a call: ~260 KB


async def test_a_closed_user_session_gives_typed_errors(serve: Serve) -> None:
    """The user's own session closed with calls in flight and queued for its pool: each ends in ClientClosedError."""
    release = asyncio.Event()
    arrived = asyncio.Event()

    async def handler(_request: web.Request) -> web.Response:
        arrived.set()
        await release.wait()
        return web.json_response(ENDPOINT)

    base = await serve(app_of(handler))
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1))
    fs = Client(API_KEY, base_url=base, session=session, retry=RetryPolicy(wait=False))
    request = CreateEndpointRequest(url="https://example.com/hook")
    tasks = [asyncio.create_task(fs.webhooks.create_endpoint(request))]
    tasks += [asyncio.create_task(fs.webhooks.get_endpoint("ep-1")) for _ in range(3)]
    await asyncio.wait_for(arrived.wait(), 5)
    await session.close()
    async with asyncio.timeout(5):
        results = await asyncio.gather(*tasks, return_exceptions=True)
    release.set()
    assert [type(result) for result in results] == [ClientClosedError] * 4
    with pytest.raises(ClientClosedError):
        await fs.webhooks.get_endpoint("ep-1")
    await fs.aclose()


async def test_a_post_in_flight_at_aclose_reports_client_closed(serve: Serve) -> None:
    """aclose() while a create waits on the server: ClientClosedError, not APIConnectionError."""
    arrived = asyncio.Event()

    async def handler(_request: web.Request) -> web.Response:
        arrived.set()
        await asyncio.sleep(30)
        return web.json_response(ENDPOINT)

    base = await serve(app_of(handler))
    fs = Client(API_KEY, base_url=base)
    task = asyncio.create_task(fs.webhooks.create_endpoint(CreateEndpointRequest(url="https://example.com/hook")))
    await asyncio.wait_for(arrived.wait(), 5)
    await fs.aclose()
    with pytest.raises(ClientClosedError):
        await asyncio.wait_for(task, 5)


def test_a_client_used_under_a_second_event_loop_says_so() -> None:
    """A Client reused under a second asyncio.run raises a typed error naming the event loop."""
    fs = Client(API_KEY, base_url="http://127.0.0.1:9", retry=RetryPolicy(max_attempts=1))

    async def call() -> None:
        await fs.webhooks.get_endpoint("ep-1")

    with asyncio.Runner() as first:
        with pytest.raises(APIConnectionError):  # nothing listens on port 9; the session now belongs to this loop
            first.run(call())
        with pytest.raises(RuntimeError) as info:
            asyncio.run(call())
        first.run(fs.aclose())
    assert type(info.value).__name__ == "EventLoopError"
    assert "event loop" in str(info.value)


async def test_a_governor_refusal_before_sending_is_not_an_attempt(serve: Serve) -> None:
    """A pacing wait past the deadline fails the call at once with attempts 0 and nothing sent; no retry."""
    sent: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        sent.append(request.path)
        return web.json_response({"eventDefs": []})

    base = await serve(app_of(handler))
    governor = RateGovernor(max_rate=0.4)  # one request per 2.5 s
    async with Client(API_KEY, base_url=base, retry=RetryPolicy(operation_timeout=1.0), rate_governor=governor) as fs:
        await fs.webhooks.list_event_types()
        with pytest.raises(APITimeoutError) as info:
            await asyncio.wait_for(fs.webhooks.list_event_types(), 5)
    assert info.value.attempts == 0
    assert not info.value.sent
    assert len(sent) == 1


async def test_a_delete_refused_before_sending_is_not_ambiguous(serve: Serve) -> None:
    """A DELETE whose first attempt the governor refused unsent never reports a 404 as a successful delete."""

    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"code": "not_found", "message": "no such endpoint"}, status=404)

    base = await serve(app_of(handler))
    async with Client(API_KEY, base_url=base, rate_governor=RateGovernor(max_rate=1.0)) as fs:
        with pytest.raises(NotFoundError):
            await fs.webhooks.delete_endpoint("x0")  # takes the route's slot: the next one in 1 s
        queued = [asyncio.create_task(fs.webhooks.delete_endpoint(f"x{i}")) for i in range(1, 7)]
        await asyncio.sleep(0.01)
        short = fs.with_options(retry=RetryPolicy(operation_timeout=2.5, backoff_initial=0.1, jitter=False))
        delete = asyncio.create_task(short.webhooks.delete_endpoint("never-existed"))
        await asyncio.sleep(0.02)  # refused: six calls queued ahead of it would outlast its deadline
        for task in queued:
            task.cancel()
        with pytest.raises(APIError) as info:  # not None: nothing of this call was ever deleted
            await asyncio.wait_for(delete, 5)
    assert isinstance(info.value, NotFoundError) or info.value.attempts == 0


async def test_update_endpoint_reads_and_writes_under_one_deadline(serve: Serve) -> None:
    """update_endpoint(enabled=None): the GET's retry waits come out of the POST's deadline too."""
    served = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal served
        served += 1
        if served % 4:
            return web.json_response({"code": "x", "message": "slow down"}, status=429, headers={"Retry-After": "0.3"})
        return web.json_response(ENDPOINT)

    base = await serve(app_of(handler))
    retry = RetryPolicy(max_attempts=4, operation_timeout=1.1)
    async with Client(API_KEY, base_url=base, retry=retry, rate_governor=False) as fs:
        with pytest.raises(RateLimitError) as info:  # 3 waits of 0.3 s on the GET leave no room for the POST's
            await asyncio.wait_for(fs.webhooks.update_endpoint("ep-1", UpdateEndpointRequest(event_types=["a.b"])), 5)
    assert served == 5
    assert info.value.attempts == 5  # the read's 4 and the update's 1
