"""The rate governor: client-wide pause on 429, adaptive pacing, no cost before the first 429."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from fullstory_async import (
    ApiRequest,
    ApiResponse,
    CreateEndpointRequest,
    InvalidArgumentError,
    RateGovernor,
    RateLimitError,
    RetryPolicy,
)
from fullstory_async.testing import FakeFullstory, ManualClock, RateLimit

REQUEST = ApiRequest("GET", "/webhooks/v1/endpoints")


class VirtualTime:
    """A manual clock whose sleeps move time forward instead of waiting."""

    def __init__(self) -> None:
        self.clock = ManualClock(1000.0)
        self.sleeps: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        target = self.clock() + seconds
        await asyncio.sleep(0)  # let concurrent sleepers register: they overlap, they do not add up
        if target > self.clock():
            self.clock.advance(target - self.clock())


def ok_handler() -> ApiResponse:
    return ApiResponse(200, {}, b"{}")


def limited(retry_after: float | None) -> RateLimitError:
    return RateLimitError("Too many requests.", status=429, code="too_many_requests", retry_after=retry_after)


async def test_no_pacing_before_the_first_429() -> None:
    """Until the server says 429 the governor never waits."""
    vt = VirtualTime()
    governor = RateGovernor(clock=vt.clock, sleep=vt.sleep)

    async def handler(_request: ApiRequest) -> ApiResponse:
        return ok_handler()

    for _ in range(100):
        await governor(REQUEST, handler)
    assert vt.sleeps == []
    assert governor.rate is None


async def test_a_429_pauses_every_call_until_retry_after() -> None:
    """After a 429 with Retry-After 2, the next calls start no earlier than 2 s later."""
    vt = VirtualTime()
    governor = RateGovernor(clock=vt.clock, sleep=vt.sleep)
    started: list[float] = []

    async def handler(_request: ApiRequest) -> ApiResponse:
        started.append(vt.clock())
        if len(started) == 1:
            raise limited(2.0)
        return ok_handler()

    with pytest.raises(RateLimitError):
        await governor(REQUEST, handler)
    assert governor.paused_until == pytest.approx(1002.0)
    await asyncio.gather(*(governor(REQUEST, handler) for _ in range(3)))
    assert all(t >= 1002.0 for t in started[1:])
    assert governor.rate_limited == 1


async def test_pacing_spaces_requests_at_the_learned_rate() -> None:
    """Once pacing, request starts are at least 1/rate apart."""
    vt = VirtualTime()
    governor = RateGovernor(initial_rate=10, clock=vt.clock, sleep=vt.sleep, doubling_time=1000)
    started: list[float] = []

    async def handler(_request: ApiRequest) -> ApiResponse:
        started.append(vt.clock())
        return ok_handler()

    for _ in range(5):
        await governor(REQUEST, handler)
    gaps = [b - a for a, b in itertools.pairwise(started)]
    # One interval of credit lets the first two go together; from then on the pace holds.
    assert all(gap == pytest.approx(0.1, rel=0.01) for gap in gaps[1:])
    assert started[-1] - started[0] == pytest.approx(0.3, rel=0.01)


async def test_slow_start_doubles_then_halves_on_the_first_overshoot() -> None:
    """In slow start a doubling time of successes doubles the rate; the first 429 halves it."""
    vt = VirtualTime()
    governor = RateGovernor(initial_rate=10, doubling_time=1.0, clock=vt.clock, sleep=vt.sleep)
    calls = 0

    async def handler(_request: ApiRequest) -> ApiResponse:
        nonlocal calls
        calls += 1
        if calls == 31:
            raise limited(1.0)
        return ok_handler()

    for _ in range(30):
        await governor(REQUEST, handler)
    assert governor.rate is not None
    before = governor.rate
    assert 30 < before < 45  # 10/s doubled over about two seconds of successes
    with pytest.raises(RateLimitError):
        await governor(REQUEST, handler)
    assert governor.rate == pytest.approx(before / 2)


async def test_429s_of_one_wave_decrease_the_rate_once() -> None:
    """Requests already sent when the first 429 arrives do not decrease the rate again."""
    vt = VirtualTime()
    governor = RateGovernor(clock=vt.clock, sleep=vt.sleep)

    async def ok(_request: ApiRequest) -> ApiResponse:
        return ok_handler()

    async def rejected(_request: ApiRequest) -> ApiResponse:
        await asyncio.sleep(0)
        raise limited(1.0)

    for _ in range(10):
        await governor(REQUEST, ok)
        vt.clock.advance(0.1)
    results = await asyncio.gather(*(governor(REQUEST, rejected) for _ in range(5)), return_exceptions=True)
    assert all(isinstance(r, RateLimitError) for r in results)
    assert governor.rate_limited == 5
    assert governor.rate == pytest.approx(10 / 1.0)  # the rate seen in the last second, decreased once


def test_governor_validates_its_settings() -> None:
    """Non-positive settings are rejected naming the setting."""
    with pytest.raises(InvalidArgumentError) as info:
        RateGovernor(min_rate=0)
    assert info.value.field == "min_rate"
    with pytest.raises(InvalidArgumentError):
        RateGovernor(initial_rate=-1)


async def _burst(governed: bool) -> tuple[int, int]:
    """Fire 50 concurrent creates at a fake limited to 100/s (burst 5); return (429s answered, endpoints made).

    Real time, but short: the fake sends fractional Retry-After values (about 10 ms), which
    both the governor and the retry policy honour.
    """
    limit = RateLimit(rate=100, burst=5, fractional_retry_after=True)
    governor = RateGovernor(doubling_time=0.1) if governed else False
    async with FakeFullstory(rate_limit=limit) as fake:
        async with fake.client(retry=RetryPolicy(max_attempts=20), rate_governor=governor) as fs:
            requests = [
                CreateEndpointRequest(url=f"https://example.com/burst/{i}", event_types=["note.created"])
                for i in range(50)
            ]
            await asyncio.gather(*(fs.webhooks.create_endpoint(r) for r in requests), return_exceptions=True)
        return sum(1 for entry in fake.requests if entry.status == 429), len(fake.endpoints)


async def test_governor_cuts_429s_of_a_burst() -> None:
    """A burst of 50 concurrent calls against a limited fake gets far fewer 429s with the governor."""
    with_governor, created = await _burst(governed=True)
    without, _ = await _burst(governed=False)
    assert created == 50
    assert with_governor * 2 < without


async def test_a_retry_after_above_max_pause_pauses_nobody() -> None:
    """A Retry-After longer than max_pause is not waited for: later calls go at once (and fail fast)."""
    vt = VirtualTime()
    governor = RateGovernor(max_pause=60, clock=vt.clock, sleep=vt.sleep)

    async def rejected(_request: ApiRequest) -> ApiResponse:
        raise limited(3600.0)

    with pytest.raises(RateLimitError):
        await governor(REQUEST, rejected)
    assert governor.paused_until < vt.clock()
    with pytest.raises(RateLimitError):
        await governor(REQUEST, rejected)
    assert sum(vt.sleeps) < 60


async def test_the_client_governor_pauses_no_longer_than_the_retry_policy_waits() -> None:
    """Client() builds its governor with max_pause = RetryPolicy.max_retry_after."""
    from fullstory_async import Client

    async with Client("na1.governor-test-key/ORG", retry=RetryPolicy(max_retry_after=7)) as fs:
        assert fs.governor is not None
        assert fs.governor.max_pause == 7


@pytest.mark.parametrize(
    ("setting", "value"),
    [("initial_rate", 10**400), ("initial_rate", "5"), ("min_rate", True), ("max_pause", -1), ("doubling_time", 0)],
)
def test_governor_refuses_unusable_numbers(setting: str, value: object) -> None:
    """Huge, textual, boolean, negative or zero settings are refused naming the setting."""
    with pytest.raises(InvalidArgumentError) as info:
        RateGovernor(**{setting: value})  # type: ignore[arg-type]
    assert info.value.field == setting
