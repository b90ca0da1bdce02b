"""Hooks: call start and end, one event per attempt from inside the retry layer, governor waits, Metrics."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import attrs
import pytest

from fullstory_async import (
    APIConnectionError,
    ApiRequest,
    ApiResponse,
    Attempt,
    BadRequestError,
    Call,
    CallResult,
    Client,
    ClientClosedError,
    Handler,
    Hooks,
    InvalidArgumentError,
    Metrics,
    RateGovernor,
    RateLimitError,
    RetryPolicy,
    ServerError,
)

from .conftest import API_KEY, SECRET, SEED_ENDPOINT_BODY

NO_JITTER = RetryPolicy(wait=False, jitter=False)  # backoff waits 0.5, 1, 2...
ENDPOINT = json.loads(SEED_ENDPOINT_BODY)
LIST = ApiRequest("GET", "/webhooks/v1/endpoints", params=(("limit", "2"),), operation="list_endpoints")


class Recorder(Hooks):
    """Record every event as a tuple."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def on_call_start(self, call: Call) -> None:
        self.events.append(("start", call))

    def on_attempt(self, call: Call, attempt: Attempt) -> None:
        self.events.append(("attempt", call, attempt))

    def on_call_end(self, call: Call, result: CallResult) -> None:
        self.events.append(("end", call, result))

    def attempts(self) -> list[Attempt]:
        return [event[2] for event in self.events if event[0] == "attempt"]


async def test_a_call_that_retried_twice(fake):
    """Start, three attempts (two 503s with their waits, then the 200 with none), end: in that order, one call."""
    hooks = Recorder()
    client, _ = fake((503, {}), (503, {}), (200, ENDPOINT), retry=NO_JITTER, hooks=[hooks])
    await client.webhooks.get_endpoint("abc")
    kinds = [event[0] for event in hooks.events]
    assert kinds == ["start", "attempt", "attempt", "attempt", "end"]
    call = hooks.events[0][1]
    assert all(event[1] is call for event in hooks.events)
    assert call.request.method == "GET"
    assert call.request.operation == "get_endpoint"
    assert call.request.url == "https://api.fullstory.com/webhooks/v1/endpoints/abc"
    first, second, third = hooks.attempts()
    assert [a.number for a in (first, second, third)] == [1, 2, 3]
    assert [a.status for a in (first, second, third)] == [503, 503, 200]
    assert isinstance(first.error, ServerError)
    assert first.response is None
    assert third.response is not None
    assert third.error is None
    assert [a.retry_wait for a in (first, second, third)] == [0.5, 1.0, None]
    assert first.started <= second.started <= third.started
    result = hooks.events[-1][2]
    assert result.response.body == third.response.body
    assert result.response.attempts == result.attempts == 3  # stamped by the retry layer on the way out
    assert result.error is None


async def test_a_call_that_fails_reports_its_last_attempt_and_error(fake):
    """A call out of attempts: every attempt, the last with no wait, then the end with the caller's error."""
    hooks = Recorder()
    client, _ = fake(*[(503, {})] * 4, retry=NO_JITTER, hooks=[hooks])
    with pytest.raises(ServerError) as caught:
        await client.webhooks.get_endpoint("abc")
    assert [(a.number, a.retry_wait) for a in hooks.attempts()] == [(1, 0.5), (2, 1.0), (3, 2.0), (4, None)]
    result = hooks.events[-1][2]
    assert result.error is caught.value
    assert result.response is None
    assert result.attempts == 4


async def test_an_error_not_retried_is_one_attempt(fake):
    """A 400 is not retried: one attempt with its typed error and no wait."""
    hooks = Recorder()
    client, _ = fake((400, {"code": "invalid"}), hooks=[hooks])
    with pytest.raises(BadRequestError):
        await client.send(LIST)
    (attempt,) = hooks.attempts()
    assert isinstance(attempt.error, BadRequestError)
    assert (attempt.number, attempt.status, attempt.retry_wait) == (1, 400, None)


async def test_rate_limited_attempt_reports_the_server_wait(fake):
    """A 429 attempt carries its RateLimitError and the Retry-After the retry layer waits."""
    hooks = Recorder()
    client, _ = fake((429, {}, {"Retry-After": "7"}), (200, {"endpoints": []}), hooks=[hooks])
    await client.send(LIST)
    first, second = hooks.attempts()
    assert isinstance(first.error, RateLimitError)
    assert (first.status, first.retry_wait) == (429, 7.0)
    assert (second.status, second.retry_wait) == (200, None)


async def test_governor_pause_is_reported_on_the_attempt_it_held(fake):
    """A route where nothing gets through: the governor's pause (and each pacing slot) is on the attempt it held.

    Paced at ``max_rate`` 0.5/s (a slot every 2 s, fake clock), every call refused with
    ``Retry-After: 3``. The second 429 binds (a first one alone is a stray) with nothing
    admitted, so the governor pauses the route for the ``Retry-After`` once: the attempt
    after it reports the 3 s pause, the others their 2 s slots.
    """
    now = [1000.0]

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    governor = RateGovernor(clock=lambda: now[0], sleep=sleep, max_rate=0.5, min_rate=0.5)
    hooks = Recorder()
    refused = (429, {}, {"Retry-After": "3"})
    client, _ = fake(
        *[refused] * 6, (200, {}), rate_governor=governor, hooks=[hooks], retry=RetryPolicy(max_attempts=7, wait=False)
    )
    await client.send(LIST)
    attempts = hooks.attempts()
    assert [a.status for a in attempts] == [429] * 6 + [200]
    assert [a.governor_wait for a in attempts] == pytest.approx([0.0, 2.0, 3.0, 2.0, 2.0, 2.0, 2.0])
    assert [a.retry_wait for a in attempts] == [3.0] * 6 + [None]
    assert now[0] == pytest.approx(1013.0)  # the governor held the call exactly that long, no more


async def test_a_governor_hold_that_ends_in_an_error_is_reported(fake):
    """A call held on a pause and woken by ``aclose()`` reports the time it was held on its attempt."""
    now = [0.0]
    held = asyncio.Event()

    async def sleep(seconds: float) -> None:
        now[0] += seconds / 2  # half the wait has passed when the client is closed
        held.set()
        await asyncio.Event().wait()

    governor = RateGovernor(clock=lambda: now[0], sleep=sleep, max_rate=0.5, min_rate=0.5)
    hooks = Recorder()
    client, _ = fake((200, {}), rate_governor=governor, hooks=[hooks])
    await client.send(LIST)
    second = asyncio.create_task(client.send(LIST))
    await held.wait()
    await client.aclose()
    with pytest.raises(ClientClosedError):
        await second
    first, held_attempt = hooks.attempts()
    assert first.governor_wait == 0.0
    assert isinstance(held_attempt.error, ClientClosedError)
    assert held_attempt.governor_wait == pytest.approx(1.0)


async def test_requests_are_redacted_views(fake):
    """Views hold no Authorization, Proxy-Authorization or Cookie header and no body; the key is nowhere."""

    async def add_headers(request: ApiRequest, call_next: Handler) -> ApiResponse:
        request = request.with_header("Cookie", "session=abcdef123456").with_header("X-Trace", "t1")
        return await call_next(request.with_header("Proxy-Authorization", "Basic cHJveHk6cGFzcw=="))

    hooks = Recorder()
    client, transport = fake((201, ENDPOINT), hooks=[hooks], middleware=[add_headers])
    body = b'{"url": "https://example.com/h", "secret": "%s"}' % SECRET.encode()
    await client.send(ApiRequest("POST", "/webhooks/v1/endpoints", body=body, operation="create_endpoint"))
    assert transport.requests[0].headers["Authorization"] == f"Basic {API_KEY}"  # it was sent
    (attempt,) = hooks.attempts()
    for request in (hooks.events[0][1].request, attempt.request):
        assert {k.lower() for k in request.headers} & {"authorization", "proxy-authorization", "cookie"} == set()
        assert request.body_size == len(body)
    assert attempt.request.headers["X-Trace"] == "t1"
    shown = repr(hooks.events)
    assert API_KEY not in shown
    assert SECRET not in shown
    assert "abcdef123456" not in shown


async def test_query_parameters_are_part_of_the_url(fake):
    """The view's URL carries the request's query, percent-encoded (a listing's page size and token)."""
    hooks = Recorder()
    client, _ = fake((200, {"endpoints": []}), hooks=[hooks])
    await client.send(attrs.evolve(LIST, params=(("limit", "2"), ("paginationToken", "a+b/c="))))
    url = "https://api.fullstory.com/webhooks/v1/endpoints?limit=2&paginationToken=a%2Bb%2Fc%3D"
    assert hooks.attempts()[0].request.url == url


async def test_a_connection_error_is_an_attempt_without_status(fake):
    """An attempt that got no response has ``status is None`` and its APIConnectionError."""
    hooks = Recorder()
    client, _ = fake(APIConnectionError("reset", method="GET", path="/x"), (200, {}), hooks=[hooks])
    await client.send(LIST)
    first, _second = hooks.attempts()
    assert first.status is None
    assert isinstance(first.error, APIConnectionError)


async def test_concurrent_calls_keep_their_own_attempts(fake):
    """Attempts of calls running at once are reported on the right call."""
    hooks = Recorder()

    async def reply(request: ApiRequest) -> ApiResponse:
        await asyncio.sleep(0)
        status = 503 if request.params == (("n", "fail"),) else 200
        return ApiResponse(status, {}, b"{}")

    client, _ = fake(*[reply] * 30, hooks=[hooks])
    requests = [ApiRequest("GET", f"/p{i}", params=(("n", "fail" if i % 2 else "ok"),)) for i in range(10)]
    results = await asyncio.gather(*(client.send(r) for r in requests), return_exceptions=True)
    assert sum(isinstance(r, ServerError) for r in results) == 5
    for event in hooks.events:
        if event[0] == "attempt":
            assert event[2].request.url == event[1].request.url
    ends = {event[1].request.url: event[2].attempts for event in hooks.events if event[0] == "end"}
    assert sorted(ends.values()) == [1] * 5 + [4] * 5


async def test_a_cancelled_call_ends_with_cancelled_error(fake):
    """Cancelling a call emits its end with the CancelledError and the attempt that was running."""
    hooks = Recorder()
    started = asyncio.Event()

    async def hang(request: ApiRequest) -> ApiResponse:
        started.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    client, _ = fake(hang, hooks=[hooks])
    task = asyncio.create_task(client.send(LIST))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    (attempt,) = hooks.attempts()
    assert isinstance(attempt.error, asyncio.CancelledError)
    assert isinstance(hooks.events[-1][2].error, asyncio.CancelledError)


async def test_a_failing_hook_is_logged_and_ignored(fake, caplog):
    """A hook that raises does not break the call nor the other hooks; a WARNING names it."""

    class Broken(Hooks):
        def on_attempt(self, call: Call, attempt: Attempt) -> None:
            raise RuntimeError("boom")

    good = Recorder()
    client, _ = fake((200, {}), hooks=[Broken(), good])
    with caplog.at_level(logging.WARNING, logger="fullstory_async"):
        response = await client.send(LIST)
    assert response.status == 200
    assert len(good.attempts()) == 1
    assert "Broken.on_attempt raised" in caplog.text


async def test_every_page_of_a_listing_is_a_call(fake):
    """``list_endpoints`` makes one call per page, each observed with its own start and end."""
    hooks = Recorder()
    page1 = {"endpoints": [ENDPOINT], "nextPaginationToken": "t2"}
    client, _ = fake((200, page1), (200, {"endpoints": [ENDPOINT]}), hooks=[hooks])
    assert len([ep async for ep in client.webhooks.list_endpoints()]) == 2
    assert [event[0] for event in hooks.events] == ["start", "attempt", "end"] * 2


def test_hooks_must_be_hooks_instances():
    """``hooks=`` takes `Hooks` instances; anything else is refused naming its index."""
    from fullstory_async import Client

    with pytest.raises(InvalidArgumentError) as caught:
        Client(api_key=API_KEY, hooks=[Recorder(), print])  # type: ignore[list-item]
    assert caught.value.field == "hooks[1]"


async def test_metrics_count_attempts_429s_and_waits(fake):
    """Metrics: calls, failures, attempts, retries, 429s, retry waits and governor waits, summed."""
    now = [0.0]

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    metrics = Metrics()
    governor = RateGovernor(clock=lambda: now[0], sleep=sleep, max_rate=0.5, min_rate=0.5)
    client, _ = fake(
        (429, {}, {"Retry-After": "2"}),
        (503, {}),
        (200, {}),
        (400, {}),
        retry=NO_JITTER,
        rate_governor=governor,
        hooks=[metrics],
    )
    await client.send(LIST)
    with pytest.raises(BadRequestError):
        await client.send(LIST)
    snapshot = metrics.snapshot()
    # paced at max_rate 0.5/s: every attempt after the first held 2 s for its slot
    assert snapshot.pop("governor_wait_seconds") == pytest.approx(6.0)
    assert snapshot == {
        "calls": 2,
        "failed_calls": 1,
        "attempts": 4,
        "retries": 2,
        "rate_limited": 1,
        "retry_waits": 2,
        "retry_wait_seconds": 3.0,  # Retry-After 2, then the backoff of attempt 2 (1 s)
        "governor_waits": 3,
    }


async def test_clients_from_with_options_keep_the_hooks(fake):
    """A client from ``with_options`` reports to the same hooks, under its own retry policy."""
    hooks = Recorder()
    client, _ = fake((503, {}), (200, {}), hooks=[hooks])
    hasty = client.with_options(retry=RetryPolicy(max_attempts=1))
    with pytest.raises(ServerError):
        await hasty.send(LIST)
    await client.send(LIST)
    assert [event[0] for event in hooks.events] == ["start", "attempt", "end"] * 2
    assert [(a.status, a.retry_wait) for a in hooks.attempts()] == [(503, None), (200, None)]


async def test_an_attempt_ended_in_the_governor_is_not_counted_as_sent() -> None:
    """Closed while it waits for its pacing slot: the call reports 0 attempts, metrics count none, the attempt says so.

    The hooks counted it as an HTTP attempt (1), while the error said 0 and nothing was sent.
    """
    sent: list[ApiRequest] = []

    async def answer(request: ApiRequest) -> ApiResponse:
        sent.append(request)
        return ApiResponse(200, {}, b"{}")

    hooks, metrics = Recorder(), Metrics()
    fs = Client(API_KEY, transport=answer, rate_governor=RateGovernor(max_rate=1.0), hooks=[hooks, metrics])
    await fs.send(ApiRequest("GET", "/x", operation="op"))
    waiting = asyncio.ensure_future(fs.send(ApiRequest("GET", "/x", operation="op")))
    for _ in range(20):  # let it reach the governor's wait for the next slot, a second away
        await asyncio.sleep(0)
    await fs.aclose()
    with pytest.raises(ClientClosedError) as info:
        await waiting
    result = hooks.events[-1][2]
    assert (info.value.attempts, result.attempts, len(sent), metrics.attempts) == (0, 0, 1, 1)
    assert [attempt.sent for attempt in hooks.attempts()] == [True, False]


async def test_a_closed_client_refuses_a_call_before_sending_it() -> None:
    """A call on a closed client: ClientClosedError, nothing sent (attempts 0, sent False)."""

    async def answer(_request: ApiRequest) -> ApiResponse:
        raise AssertionError("nothing may be sent")

    fs = Client(API_KEY, transport=answer)
    await fs.aclose()
    with pytest.raises(ClientClosedError) as info:
        await fs.send(ApiRequest("GET", "/x", operation="op"))
    assert (info.value.attempts, info.value.sent) == (0, False)
