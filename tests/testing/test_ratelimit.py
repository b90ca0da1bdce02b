"""Rate limiting: token bucket, 429 body and Retry-After, driven by a manual clock (no sleeping)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiohttp
import pytest

from fullstory_async.testing import FakeFullstory, ManualClock, RateLimit
from fullstory_async.testing._ratelimit import RateLimiter
from fullstory_async.testing._responses import format_retry_after

if TYPE_CHECKING:
    from conftest import Api

ENDPOINTS = "/webhooks/v1/endpoints"
TOO_MANY = {
    "message": "Too many requests. Client has exceeded the rate limit for this endpoint.",
    "code": "too_many_requests",
}


async def test_burst_then_429_with_retry_after(session: aiohttp.ClientSession, api_factory: type[Api]) -> None:
    """After `burst` requests the next is 429 with the documented body and Retry-After in seconds."""
    clock = ManualClock()
    async with FakeFullstory(rate_limit=RateLimit(rate=0.5, burst=3), clock=clock) as fake:
        api = api_factory(session, fake)
        statuses = [(await api.call("GET", ENDPOINTS)).status for _ in range(3)]
        limited = await api.call("GET", ENDPOINTS)
        clock.advance(1.0)  # half a token: still limited, one more second to wait
        still = await api.call("GET", ENDPOINTS)
        clock.advance(1.0)
        again = await api.call("GET", ENDPOINTS)
    assert statuses == [200, 200, 200]
    assert (limited.status, limited.body) == (429, TOO_MANY)
    assert limited.headers["Retry-After"] == "2"
    assert (still.status, still.headers["Retry-After"]) == (429, "1")
    assert again.status == 200
    assert [r.status for r in fake.requests] == [200, 200, 200, 429, 429, 200]


async def test_fractional_retry_after(session: aiohttp.ClientSession, api_factory: type[Api]) -> None:
    """fractional_retry_after sends milliseconds instead of whole seconds."""
    clock = ManualClock()
    limit = RateLimit(rate=4, burst=1, fractional_retry_after=True)
    async with FakeFullstory(rate_limit=limit, clock=clock) as fake:
        api = api_factory(session, fake)
        await api.call("GET", ENDPOINTS)
        limited = await api.call("GET", ENDPOINTS)
        clock.advance(0.25)
        after_wait = await api.call("GET", ENDPOINTS)
    assert (limited.status, limited.headers["Retry-After"]) == (429, "0.250")
    assert after_wait.status == 200


async def test_keys_have_separate_buckets(session: aiohttp.ClientSession, api_factory: type[Api]) -> None:
    """The admin and read-only keys are limited independently; failed auth takes no token."""
    async with FakeFullstory(rate_limit=RateLimit(rate=1, burst=1), clock=ManualClock()) as fake:
        api = api_factory(session, fake)
        unauthenticated = await api.call("GET", ENDPOINTS, key=None)
        admin = [(await api.call("GET", ENDPOINTS)).status for _ in range(2)]
        read_only = [(await api.call("GET", ENDPOINTS, key="read_only")).status for _ in range(2)]
    assert unauthenticated.status == 401
    assert admin == read_only == [200, 429]


async def test_per_operation_buckets(session: aiohttp.ClientSession, api_factory: type[Api]) -> None:
    """per_operation=True gives each operation its own bucket."""
    async with FakeFullstory(rate_limit=RateLimit(rate=1, per_operation=True), clock=ManualClock()) as fake:
        api = api_factory(session, fake)
        listing = [(await api.call("GET", ENDPOINTS)).status for _ in range(2)]
        types = [(await api.call("GET", "/webhooks/v1/event-types")).status for _ in range(2)]
    assert listing == types == [200, 429]


async def test_off_by_default_and_switchable_at_runtime(api: Api) -> None:
    """No limit by default; assigning fake.rate_limit turns it on, None turns it off."""
    assert api.fake.rate_limit is None
    assert {(await api.call("GET", ENDPOINTS)).status for _ in range(20)} == {200}
    api.fake.rate_limit = RateLimit(rate=0.001, burst=1)
    assert [(await api.call("GET", ENDPOINTS)).status for _ in range(2)] == [200, 429]
    api.fake.rate_limit = None
    assert (await api.call("GET", ENDPOINTS)).status == 200


async def test_limit_on_one_operation_only(session: aiohttp.ClientSession, api_factory: type[Api]) -> None:
    """operations={"create_endpoint"} limits creates; listings stay unlimited."""
    limit = RateLimit(rate=0.001, burst=1, operations={"create_endpoint"})
    async with FakeFullstory(rate_limit=limit, clock=ManualClock()) as fake:
        api = api_factory(session, fake)
        listing = {(await api.call("GET", ENDPOINTS)).status for _ in range(5)}
        creates = [
            (await api.call("POST", ENDPOINTS, json={"url": f"https://e.com/{i}", "eventTypes": []})).status
            for i in range(2)
        ]
    assert listing == {200}
    assert creates[1] == 429


def test_fixed_window_counts_per_whole_second_of_the_clock() -> None:
    """A fixed window admits `rate` requests per [n, n+1) second; Retry-After runs to the next window."""
    clock = ManualClock(10.2)
    limiter = RateLimiter(RateLimit(rate=3, fixed_window=True, fractional_retry_after=True), clock)
    assert [limiter.acquire("k", "op") for _ in range(4)] == [None, None, None, "0.800"]
    clock.advance(0.7)  # 10.9: same window
    assert limiter.acquire("k", "op") == "0.100"
    clock.advance(0.1)  # 11.0: a new window, the full allowance again (no carry-over, no smoothing)
    assert [limiter.acquire("k", "op") for _ in range(4)] == [None, None, None, "1.000"]
    whole = RateLimiter(RateLimit(rate=1, fixed_window=True), ManualClock(5.5))
    assert [whole.acquire("k", "op") for _ in range(2)] == [None, "1"]


def test_bucket_refills_at_rate_up_to_burst() -> None:
    """Tokens accrue at `rate` per second and never exceed `burst`."""
    clock = ManualClock()
    limiter = RateLimiter(RateLimit(rate=10, burst=5), clock)
    assert [limiter.acquire("k", "op") for _ in range(6)][-1] == "1"
    clock.advance(100)  # far more than needed: capped at 5
    assert sum(limiter.acquire("k", "op") is None for _ in range(10)) == 5
    clock.advance(0.3)
    assert sum(limiter.acquire("k", "op") is None for _ in range(10)) == 3


@pytest.mark.parametrize(
    ("seconds", "whole", "fractional"),
    [(0.0001, "1", "0.001"), (0.25, "1", "0.250"), (1.0, "1", "1.000"), (1.0000001, "2", "1.001"), (2.5, "3", "2.500")],
)
def test_retry_after_rounds_up(seconds: float, whole: str, fractional: str) -> None:
    """Retry-After is ceil(seconds) and at least 1; the fractional form rounds up to ms."""
    assert format_retry_after(seconds) == whole
    assert format_retry_after(seconds, fractional=True) == fractional


def test_rate_limit_settings_are_validated() -> None:
    """A non-positive rate or a burst below 1 is refused; the manual clock never goes back."""
    with pytest.raises(ValueError, match="rate"):
        RateLimit(rate=0)
    with pytest.raises(ValueError, match="burst"):
        RateLimit(rate=1, burst=0)
    with pytest.raises(ValueError, match="fixed window"):
        RateLimit(rate=0.5, fixed_window=True)
    with pytest.raises(ValueError, match="operations"):
        RateLimit(rate=1, operations={"create"})
    with pytest.raises(ValueError, match="back"):
        ManualClock().advance(-1)
