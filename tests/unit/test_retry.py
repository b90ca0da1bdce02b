"""Retry: what is retried, how long it waits, and the attempt and deadline bounds."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import attrs
import pytest
import tenacity

from fullstory_async import (
    APIConnectionError,
    ApiRequest,
    ApiResponse,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    CreateEndpointRequest,
    InvalidArgumentError,
    NotFoundError,
    RateLimitError,
    RetryPolicy,
    ServerError,
)
from fullstory_async._retry import RetryMiddleware, retrying

TOO_MANY = {
    "message": "Too many requests. Client has exceeded the rate limit for this endpoint.",
    "code": "too_many_requests",
}
SERVER_ERROR = {"message": "Server error was encountered", "code": "server_error"}
CREATE = CreateEndpointRequest(url="https://example.com/fullstory-webhooks", event_types=["note.created"])


def rate_limited(retry_after: str | None = "1") -> tuple[int, dict[str, str], dict[str, str]]:
    return 429, TOO_MANY, ({"Retry-After": retry_after} if retry_after is not None else {})


def get(path: str = "/webhooks/v1/endpoints/abc") -> ApiRequest:
    return ApiRequest("GET", path)


@pytest.fixture
def retry_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Capture the INFO records of the fullstory_async logger."""
    caplog.set_level(logging.INFO, logger="fullstory_async")
    return caplog


def retries(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "fullstory_async" and r.getMessage().startswith("retrying")]


async def test_429_is_retried_for_post(fake, seed_body: bytes) -> None:
    """A rate-limited create is retried (the server did not act) and then succeeds."""
    client, transport = fake(rate_limited("1"), rate_limited("1"), (200, seed_body))
    endpoint = await client.webhooks.create_endpoint(CREATE)
    assert endpoint.url == "https://example.com/fullstory-webhooks"
    assert [r.method for r in transport.requests] == ["POST"] * 3
    assert transport.requests[0].body == transport.requests[2].body


async def test_429_without_retry_after_is_retried_with_backoff(fake, seed_body: bytes, retry_log) -> None:
    """A 429 without Retry-After is retried after a capped backoff wait."""
    policy = RetryPolicy(wait=False, jitter=False, backoff_initial=0.25, backoff_max=8)
    client, transport = fake(rate_limited(None), (200, seed_body), retry=policy)
    await client.webhooks.create_endpoint(CREATE)
    assert len(transport.requests) == 2
    assert [r.fullstory_wait for r in retries(retry_log)] == [0.25]


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_5xx_not_retried_for_post(fake, status: int) -> None:
    """A create answered with 5xx is not retried: the endpoint may have been created."""
    client, transport = fake((status, SERVER_ERROR))
    with pytest.raises(ServerError) as info:
        await client.webhooks.create_endpoint(CREATE)
    assert info.value.status == status
    assert len(transport.requests) == 1


@pytest.mark.parametrize(
    "error",
    [APIConnectionError("reset", method="POST", path="/x"), APITimeoutError("slow", method="POST", path="/x")],
)
async def test_connection_errors_not_retried_for_post(fake, error: APIConnectionError) -> None:
    """A create that failed without a response (reset, timeout) is not retried."""
    client, transport = fake(error)
    with pytest.raises(type(error)):
        await client.webhooks.create_endpoint(CREATE)
    assert len(transport.requests) == 1


@pytest.mark.parametrize("method", ["GET", "DELETE"])
@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_5xx_retried_for_get_and_delete(fake, method: str, status: int) -> None:
    """GET and DELETE are retried on 500/502/503/504 until a success."""
    client, transport = fake((status, SERVER_ERROR), (status, b"<html>bad gateway</html>"), (200, {}))
    response = await client.send(ApiRequest(method, "/webhooks/v1/endpoints/abc"))
    assert response.status == 200
    assert len(transport.requests) == 3


@pytest.mark.parametrize("method", ["GET", "DELETE"])
async def test_connection_errors_retried_for_get_and_delete(fake, method: str) -> None:
    """GET and DELETE are retried after connection errors and timeouts."""
    client, transport = fake(APIConnectionError("reset"), APITimeoutError("timed out"), ApiResponse(200, body=b"{}"))
    assert (await client.send(ApiRequest(method, "/webhooks/v1/endpoints/abc"))).status == 200
    assert len(transport.requests) == 3


async def test_post_marked_idempotent_is_retried_on_5xx(fake) -> None:
    """A POST whose request says it is idempotent is retried like a GET."""
    client, transport = fake((503, SERVER_ERROR), (200, {}))
    await client.send(ApiRequest("POST", "/x", body=b"{}", idempotent=True))
    assert len(transport.requests) == 2


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (404, NotFoundError),
        (501, ServerError),
        (418, APIStatusError),
    ],
)
async def test_other_statuses_not_retried_even_for_get(fake, status: int, error: type[APIStatusError]) -> None:
    """4xx other than 429, and 5xx outside retry_statuses (501), fail at once even for GET."""
    client, transport = fake((status, {"code": "x", "message": "no"}))
    with pytest.raises(APIStatusError) as info:
        await client.send(get())
    assert type(info.value) is error
    assert info.value.status == status
    assert len(transport.requests) == 1


async def test_retry_statuses_is_configurable(fake) -> None:
    """A status added to retry_statuses is retried for GET; one removed is not."""
    client, transport = fake(
        (501, SERVER_ERROR), (200, {}), retry=RetryPolicy(wait=False, retry_statuses=frozenset({501}))
    )
    await client.send(get())
    assert len(transport.requests) == 2
    client, transport = fake((500, SERVER_ERROR), retry=RetryPolicy(wait=False, retry_statuses=frozenset()))
    with pytest.raises(ServerError):
        await client.send(get())
    assert len(transport.requests) == 1


@pytest.mark.parametrize(("header", "wait"), [("1", 1.0), ("2.5", 2.5), ("0", 0.0), ("0.125", 0.125)])
async def test_retry_after_is_the_wait(fake, retry_log, header: str, wait: float) -> None:
    """The server's Retry-After (whole or fractional seconds) is exactly the wait before the retry."""
    client, _ = fake(rate_limited(header), (200, {}))
    await client.send(get())
    assert [r.fullstory_wait for r in retries(retry_log)] == [wait]


async def test_retry_after_http_date_is_the_wait(fake, retry_log) -> None:
    """A Retry-After HTTP-date waits until that moment."""
    when = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=30)
    client, _ = fake(rate_limited(format_datetime(when, usegmt=True)), (200, {}))
    await client.send(get())
    [record] = retries(retry_log)
    assert 28.0 <= record.fullstory_wait <= 30.0


async def test_retry_after_counts_against_the_deadline(fake) -> None:
    """Skipped waits (wait=False) are counted: Retry-After 10 under operation_timeout 25 allows exactly 3 attempts."""
    policy = RetryPolicy(wait=False, max_attempts=10, operation_timeout=25)
    # without the governor, whose pauses (not skipped by wait=False) would end the call sooner
    client, transport = fake(*[rate_limited("10")] * 10, retry=policy, rate_governor=False)
    async with asyncio.timeout(1):  # a hang guard: nothing sleeps
        with pytest.raises(RateLimitError) as info:
            await client.webhooks.create_endpoint(CREATE)
    assert len(transport.requests) == 3
    assert info.value.retry_after == 10.0


async def test_no_operation_timeout_leaves_only_the_attempt_bound(fake) -> None:
    """With operation_timeout=None, long waits are bounded by max_attempts alone."""
    policy = RetryPolicy(wait=False, max_attempts=3, operation_timeout=None, max_retry_after=10_000)
    client, transport = fake(*[rate_limited("5000")] * 3, retry=policy)
    with pytest.raises(RateLimitError):
        await client.send(get())
    assert len(transport.requests) == 3


async def test_retry_after_above_cap_raises_at_once(fake, retry_log) -> None:
    """A Retry-After longer than max_retry_after raises the RateLimitError after one attempt, without waiting."""
    client, transport = fake(rate_limited("120"), (200, {}), retry=RetryPolicy(wait=False, max_retry_after=60))
    with pytest.raises(RateLimitError) as info:
        await client.webhooks.create_endpoint(CREATE)
    assert len(transport.requests) == 1
    assert info.value.retry_after == 120.0
    assert info.value.code == "too_many_requests"
    assert retries(retry_log) == []


async def test_retry_after_equal_to_cap_is_honoured(fake, retry_log) -> None:
    """A Retry-After exactly at max_retry_after is still waited for."""
    client, transport = fake(
        rate_limited("60"), (200, {}), retry=RetryPolicy(wait=False, max_retry_after=60, operation_timeout=None)
    )
    await client.send(get())
    assert len(transport.requests) == 2
    assert [r.fullstory_wait for r in retries(retry_log)] == [60.0]


@pytest.mark.parametrize("attempts", [2, 3, 5])
async def test_max_attempts_bounds_retries(fake, attempts: int) -> None:
    """A call is attempted at most max_attempts times and then raises the last error."""
    policy = RetryPolicy(wait=False, max_attempts=attempts, operation_timeout=None)
    client, transport = fake(*[(503, SERVER_ERROR)] * 10, retry=policy)
    with pytest.raises(ServerError) as info:
        await client.send(get())
    assert len(transport.requests) == attempts
    assert info.value.code == "server_error"


async def test_default_policy_makes_four_attempts(fake) -> None:
    """The default policy gives up after 4 attempts."""
    client, transport = fake(*[rate_limited("1")] * 10, retry=attrs.evolve(RetryPolicy(), wait=False))
    with pytest.raises(RateLimitError):
        await client.webhooks.create_endpoint(CREATE)
    assert len(transport.requests) == 4


@pytest.mark.parametrize(
    "reply", [rate_limited("1"), (500, SERVER_ERROR), APIConnectionError("reset")], ids=["429", "500", "conn"]
)
async def test_max_attempts_one_disables_retries(fake, reply: object, retry_log) -> None:
    """RetryPolicy(max_attempts=1) makes one attempt for anything, even a GET."""
    client, transport = fake(reply, (200, {}), retry=RetryPolicy(max_attempts=1))
    with pytest.raises((RateLimitError, ServerError, APIConnectionError)):
        await client.send(get())
    assert len(transport.requests) == 1
    assert retries(retry_log) == []


async def test_rate_limit_error_after_giving_up_carries_retry_after(fake) -> None:
    """When retries run out the caller gets the last RateLimitError with its retry_after."""
    client, _ = fake(*[rate_limited("2")] * 2, retry=RetryPolicy(wait=False, max_attempts=2))
    with pytest.raises(RateLimitError) as info:
        await client.send(get())
    assert info.value.retry_after == 2.0
    assert info.value.status == 429


async def test_every_retry_is_logged_at_info(fake, retry_log) -> None:
    """Each retry logs method, path, attempt, wait and status at INFO; the final failure is not a retry."""
    client, _ = fake(rate_limited("1.5"), (503, SERVER_ERROR), APIConnectionError("reset"), (200, {}))
    await client.send(get("/webhooks/v1/endpoints/abc"))
    records = retries(retry_log)
    assert [r.levelno for r in records] == [logging.INFO] * 3
    assert [r.fullstory_attempt for r in records] == [1, 2, 3]
    assert [r.fullstory_status for r in records] == [429, 503, None]
    assert records[0].fullstory_wait == 1.5
    assert all(r.fullstory_method == "GET" and r.fullstory_path == "/webhooks/v1/endpoints/abc" for r in records)
    assert records[0].getMessage() == (
        "retrying GET /webhooks/v1/endpoints/abc: attempt 1 of 4 failed with 429; waiting 1.500s"
    )
    assert "failed with APIConnectionError" in records[2].getMessage()


async def test_retry_log_carries_the_request_id(fake, retry_log) -> None:
    """The retry record carries the failed response's request id."""
    client, _ = fake((429, TOO_MANY, {"Retry-After": "1", "X-Request-Id": "req-7"}), (200, {}))
    await client.send(get())
    assert retries(retry_log)[0].fullstory_request_id == "req-7"


async def test_backoff_is_exponential_and_capped(fake, retry_log) -> None:
    """Without Retry-After and without jitter, waits double from backoff_initial up to backoff_max."""
    policy = RetryPolicy(
        wait=False, jitter=False, backoff_initial=1, backoff_max=3, max_attempts=5, operation_timeout=None
    )
    client, _ = fake(*[(500, SERVER_ERROR)] * 5, retry=policy)
    with pytest.raises(ServerError):
        await client.send(get())
    assert [r.fullstory_wait for r in retries(retry_log)] == [1, 2, 3, 3]


async def test_jittered_backoff_stays_within_the_cap(fake, retry_log) -> None:
    """With jitter each wait lies between 0 and its exponential step, never above backoff_max."""
    policy = RetryPolicy(wait=False, backoff_initial=1, backoff_max=3, max_attempts=6, operation_timeout=None)
    client, _ = fake(*[(500, SERVER_ERROR)] * 6, retry=policy)
    with pytest.raises(ServerError):
        await client.send(get())
    waits = [r.fullstory_wait for r in retries(retry_log)]
    assert len(waits) == 5
    assert all(0 <= w <= min(3, 2**i) for i, w in enumerate(waits))


async def test_deadline_stops_backoff(fake) -> None:
    """Backoff waits count against the deadline too."""
    policy = RetryPolicy(
        wait=False, jitter=False, backoff_initial=4, backoff_max=4, max_attempts=10, operation_timeout=10
    )
    client, transport = fake(*[(500, SERVER_ERROR)] * 10, retry=policy)
    with pytest.raises(ServerError):
        await client.send(get())
    assert len(transport.requests) == 3  # 4 + 4 = 8 s of waits fit; a third 4 s wait would end at 12 s


async def test_middleware_retries_the_inner_chain_directly() -> None:
    """RetryMiddleware calls the rest of the chain again for a retriable error."""
    calls = 0

    async def flaky(request: ApiRequest) -> ApiResponse:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise RateLimitError("slow down", status=429, retry_after=0.5)
        return ApiResponse(200)

    response = await RetryMiddleware(RetryPolicy(wait=False))(ApiRequest("POST", "/x"), flaky)
    assert (response.status, calls) == (200, 3)


async def test_a_retry_has_what_is_left_of_the_deadline() -> None:
    """With 25 s of a 30 s operation_timeout spent waiting, the next attempt must end within 5 s (its deadline)."""
    seen: list[float | None] = []

    async def limited(request: ApiRequest) -> ApiResponse:
        seen.append(request.deadline)
        if len(seen) == 1:
            raise RateLimitError("slow down", status=429, retry_after=25)
        return ApiResponse(200)

    policy = RetryPolicy(wait=False, operation_timeout=30, max_retry_after=60)
    started = time.monotonic()
    response = await RetryMiddleware(policy)(ApiRequest("GET", "/x"), limited)
    first, second = seen
    assert first is not None
    assert second is not None
    assert first - started == pytest.approx(30, abs=0.5)
    assert second - started == pytest.approx(5, abs=0.5)  # the skipped 25 s wait counted
    assert response.attempts == 2


@pytest.mark.parametrize(
    ("error", "method", "expected"),
    [
        (RateLimitError("x", status=429), "POST", True),
        (RateLimitError("x", status=429, retry_after=60), "POST", True),
        (RateLimitError("x", status=429, retry_after=60.5), "GET", False),
        (ServerError("x", status=500), "GET", True),
        (ServerError("x", status=500), "POST", False),
        (ServerError("x", status=501), "GET", False),
        (BadRequestError("x", status=400), "GET", False),
        (APIConnectionError("x"), "DELETE", True),
        (APITimeoutError("x"), "GET", True),
        (APITimeoutError("x"), "POST", False),
        (ValueError("bug"), "GET", False),
    ],
)
def test_should_retry(error: BaseException, method: str, expected: bool) -> None:
    """should_retry encodes the policy: 429 always (within the cap), 5xx and connection errors only if idempotent."""
    assert RetryPolicy().should_retry(ApiRequest(method, "/"), error) is expected


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_attempts", 0),
        ("max_attempts", -1),
        ("max_attempts", True),
        ("max_attempts", "3"),
        ("max_attempts", 2.5),
        ("max_attempts", 3.0),
        ("operation_timeout", -1),
        ("operation_timeout", 0),  # every call would fail unsent, "deadline passed" naming no setting
        ("operation_timeout", math.inf),
        ("max_retry_after", -0.5),
        ("max_retry_after", math.nan),
        ("backoff_initial", -1),
        ("backoff_max", "8"),
    ],
)
def test_policy_validation(field: str, value: object) -> None:
    """RetryPolicy rejects nonsense with an InvalidArgumentError naming the field."""
    with pytest.raises(InvalidArgumentError) as info:
        RetryPolicy(**{field: value})  # type: ignore[arg-type]
    assert info.value.field == f"RetryPolicy.{field}"


def test_policy_defaults_and_frozen() -> None:
    """The default policy: 4 attempts, 60 s operation_timeout, 60 s Retry-After cap, waits on; records are frozen."""
    policy = RetryPolicy()
    assert (policy.max_attempts, policy.operation_timeout, policy.max_retry_after, policy.wait) == (4, 60.0, 60.0, True)
    assert policy.retry_statuses == frozenset({500, 502, 503, 504})
    assert RetryPolicy(operation_timeout=None).operation_timeout is None
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        policy.max_attempts = 2  # type: ignore[misc]


def test_the_old_deadline_setting_is_refused_by_name() -> None:
    """The duration was renamed ``operation_timeout`` (a deadline is an instant): the old keyword fails loudly."""
    with pytest.raises(TypeError, match="unexpected keyword argument 'deadline'"):
        RetryPolicy(deadline=30.0)  # type: ignore[call-arg]
    assert not hasattr(RetryPolicy(), "deadline")


def failed(policy: RetryPolicy, request: ApiRequest, error: BaseException, attempt: int) -> tenacity.RetryCallState:
    """Return the RetryCallState after failed attempt number ``attempt`` of ``request``, as the retry loop keeps it."""
    state = tenacity.RetryCallState(retrying(policy), None, (request,), {})
    state.attempt_number = attempt
    state.set_exception((type(error), error, None))
    return state


def test_the_policy_is_tenacity_strategies_on_the_call_state() -> None:
    """The strategies: should_retry; Retry-After, else backoff; stop at max_attempts or a wait past the deadline."""
    policy = RetryPolicy(max_attempts=3, jitter=False, backoff_initial=0.5)
    strategies = retrying(policy)
    limited = RateLimitError("slow down", status=429, retry_after=7.0)
    broken = ServerError("down", status=503)
    post, get_now = ApiRequest("POST", "/x"), ApiRequest("GET", "/x", deadline=time.monotonic() + 5)

    state = failed(policy, post, limited, 1)
    assert strategies.retry(state)
    assert strategies.wait(state) == 7.0
    state.upcoming_sleep = 7.0
    assert not strategies.stop(state)  # no deadline on the request: only max_attempts counts
    state = failed(policy, get_now, limited, 1)
    state.upcoming_sleep = strategies.wait(state)
    assert strategies.stop(state)  # 7 s would end past the deadline 5 s away
    assert not strategies.retry(failed(policy, post, broken, 1))  # a 503 of a POST: maybe applied
    state = failed(policy, get_now, broken, 2)
    assert strategies.retry(state)
    assert strategies.wait(state) == 1.0  # backoff: 0.5 * 2
    state.upcoming_sleep = 1.0
    assert not strategies.stop(state)
    assert strategies.stop(failed(policy, get_now, broken, 3))  # the third attempt was the last
