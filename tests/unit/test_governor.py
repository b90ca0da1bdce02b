"""The rate governor on virtual time: the model's behaviour on each limiter shape, and its contracts.

`VirtualLoop` is an asyncio loop whose clock jumps to the next timer whenever nothing is
ready to run, so a minute of paced traffic takes milliseconds and never sleeps. A `job`
runs workers that each call ``governor(request, server)`` and, like the retry layer,
wait a 429's ``Retry-After`` before trying the same item again. The simulated `Server`
uses the fake's own limiter (whole-second ``Retry-After``) on the virtual clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import random
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import attrs
import pytest

from fullstory_async import (
    ApiRequest,
    ApiResponse,
    APITimeoutError,
    ClientClosedError,
    InvalidArgumentError,
    NotFoundError,
    RateGovernor,
    RateLimitError,
    RetryPolicy,
)
from fullstory_async._pace import RoutePace
from fullstory_async.testing import ManualClock, RateLimit
from fullstory_async.testing._ratelimit import RateLimiter

T = TypeVar("T")
LATENCY = 0.004  # seconds per simulated request


class VirtualLoop(asyncio.SelectorEventLoop):
    """An event loop on virtual time: when nothing is ready, time jumps to the next timer."""

    def __init__(self) -> None:
        super().__init__()
        self._now = 0.0

    def time(self) -> float:
        return self._now

    def _run_once(self) -> None:
        ready: Any = self._ready  # type: ignore[attr-defined]
        scheduled: Any = self._scheduled  # type: ignore[attr-defined]
        if not ready and scheduled:
            self._now = max(self._now, scheduled[0].when())
        super()._run_once()  # type: ignore[misc]


def run(coroutine: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``coroutine()`` on a fresh `VirtualLoop`."""
    loop = VirtualLoop()
    try:
        return loop.run_until_complete(coroutine())
    finally:
        loop.close()


def now() -> float:
    return asyncio.get_running_loop().time()


def governor(**kwargs: Any) -> RateGovernor:
    """Return a governor on the running virtual loop's clock."""
    return RateGovernor(clock=now, **kwargs)


@attrs.define
class Server:
    """A simulated API: a `RateLimiter` (whole-second Retry-After) and optional stray 429s."""

    limit: RateLimit | None = None
    stray_every: int = 0  # every n-th admitted request is refused anyway
    answered: list[tuple[float, str, int]] = attrs.Factory(list)  # (time, operation, status)
    limiter: RateLimiter = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.limiter = RateLimiter(self.limit, now)

    async def __call__(self, request: ApiRequest) -> ApiResponse:
        await asyncio.sleep(LATENCY)
        retry_after = self.limiter.acquire("key", request.operation)
        if retry_after is None and self.stray_every and len(self.answered) % self.stray_every == self.stray_every - 1:
            retry_after = "1"
        self.answered.append((now(), request.operation, 200 if retry_after is None else 429))
        if retry_after is not None:
            raise RateLimitError("Too many requests.", status=429, retry_after=float(retry_after))
        return ApiResponse(200, {}, b"{}")

    def share_429(self, since: float = 0.0, until: float = math.inf) -> float:
        window = [status for at, _, status in self.answered if since <= at < until]
        return window.count(429) / max(len(window), 1)


async def job(
    server: Server,
    gov: RateGovernor | None,
    n: int,
    *,
    operation: str = "create_endpoint",
    concurrency: int = 32,
    done: list[float] | None = None,
) -> float:
    """Complete ``n`` calls of ``operation`` (429s retried after Retry-After); return the seconds taken."""
    start = now()
    items = iter(range(n))
    request = ApiRequest("POST", "/webhooks/v1/endpoints", operation=operation)

    async def worker() -> None:
        for _ in items:
            while True:
                try:
                    await (gov(request, server) if gov is not None else server(request))
                except RateLimitError as exc:
                    await asyncio.sleep(exc.retry_after or 1.0)
                    continue
                if done is not None:
                    done.append(now())
                break

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return now() - start


CREATE = ApiRequest("POST", "/webhooks/v1/endpoints", operation="create_endpoint")


async def ok(_request: ApiRequest) -> ApiResponse:
    return ApiResponse(200, {}, b"{}")


# -- the model: slow start, cut, grow, application-limited -------------------------------


def busy(pace: RoutePace, start: float, until: float, capacity: float = 10_000) -> float:
    """Start calls on ``pace`` from ``start`` to ``until`` as fast as it and a server taking ``capacity``/s allow.

    Each call is admitted at once; return when the next call could start.
    """
    at = start
    while (at := pace.ready_at(at)) < until:
        pace.take_slot(at)
        pace.on_success(at, at)
        at += 1 / capacity
    return at


def test_a_cut_paces_under_the_admitted_rate_regains_it_in_a_second_and_probes_past_it() -> None:
    """CUBIC over the admitted rate: 0.7 w_max after the cut, w_max again within a second, 2x within three."""
    pace = RoutePace(0.0, min_rate=1.0, max_rate=None)
    at = busy(pace, 0.0, 2.0, capacity=200)
    admitted = pace.admitted_rate(at)
    assert admitted == pytest.approx(200, rel=0.02)
    assert 200 < pace.rate <= 2.1 * 200  # slow start ran ahead of the server, to about twice what its traffic used
    for _ in range(2):  # two 429s: binding
        pace.take_slot(at)
        pace.on_refused(at, at, 1.0)
    assert pace.limit == pytest.approx(admitted, rel=0.01)
    assert pace.rate == pytest.approx(0.7 * admitted, rel=0.01)
    regained = busy(pace, at, at + 1.0)
    assert 0.95 * admitted <= pace.rate <= 1.05 * admitted
    busy(pace, regained, regained + 2.0)
    assert pace.rate >= 2 * admitted  # no refusal met: the limit is left behind


def test_slow_start_doubles_the_pace_while_the_route_uses_it() -> None:
    """A new route starts at 100/s and doubles about every 100 ms of traffic that keeps up with it."""
    pace = RoutePace(0.0, min_rate=1.0, max_rate=None)
    assert pace.rate == 100
    busy(pace, 0.0, 0.3)
    assert 600 <= pace.rate <= 1000


def test_a_route_that_does_not_use_its_pace_does_not_grow_it() -> None:
    """Calls at a third of the pace for 10 s, or a 10 s idle spell, leave the pace where it was (RFC 7661)."""
    for pace in (RoutePace(0.0, min_rate=1.0, max_rate=None), RoutePace(0.0, min_rate=1.0, max_rate=None)):
        pace.learn(100.0, 0.0)
        at = busy(pace, 0.0, 0.5)
        before = pace.rate
        while at < 10.0:
            pace.take_slot(at)
            pace.on_success(at, at)
            at += 3 / before
        assert pace.rate == pytest.approx(before, rel=0.01)  # the first gap may still count
        before = pace.rate
        pace.take_slot(30.0)  # and after 20 s idle
        assert pace.rate == before


def test_a_pace_held_at_a_crawl_by_max_rate_survives_long_gaps() -> None:
    """max_rate 0.01/s: calls 150 s apart are within two intervals, and the pace stays at the cap."""
    pace = RoutePace(0.0, min_rate=0.001, max_rate=0.01)
    for at in (0.0, 150.0, 300.0):
        pace.take_slot(at)
    assert pace.rate == 0.01


def test_one_429_among_successes_cuts_nothing_two_close_together_cut_once() -> None:
    """A stray 429 leaves the pace; a second among ten answers cuts; 429s of calls sent before that cut add nothing."""
    pace = RoutePace(0.0, min_rate=1.0, max_rate=None)
    at = busy(pace, 0.0, 1.0, capacity=500)
    rate = pace.rate
    assert pace.on_refused(at, at, 1.0) is False
    at = busy(pace, at, at + 0.1, capacity=500)  # more than ten successes: the stray is forgotten
    assert pace.on_refused(at, at, 1.0) is False
    assert pace.rate >= rate
    assert pace.on_refused(at, at, 1.0) is True  # a second one among the last ten answers
    cut = pace.rate
    assert pace.on_refused(at - 0.01, at + 0.01, 1.0) is False  # started before the cut: the same event
    assert pace.on_refused(at - 0.01, at + 0.01, 1.0) is False
    assert pace.rate == cut


def test_a_route_where_nothing_is_admitted_waits_out_retry_after_once_then_trickles() -> None:
    """Every call refused (Retry-After 5): the route is held 5 s, then sends at min_rate, not held again per call."""

    async def scenario() -> list[float]:
        arrivals: list[float] = []

        async def refuse(_request: ApiRequest) -> ApiResponse:
            arrivals.append(now())
            await asyncio.sleep(LATENCY)
            raise RateLimitError("Too many requests.", status=429, retry_after=5.0)

        gov = governor(min_rate=2)

        async def hostile_caller() -> None:  # retries at once, ignoring Retry-After: only the governor holds it
            while now() < 20:
                with contextlib.suppress(RateLimitError):
                    await gov(CREATE, refuse)

        await asyncio.gather(*(hostile_caller() for _ in range(16)))
        return arrivals

    arrivals = run(scenario)
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert sum(gap >= 4.9 for gap in gaps) == 1  # held once for the Retry-After ...
    assert len(arrivals) <= 16 + 2 * 20  # ... then at most min_rate; unpaced it would be thousands


def test_a_retry_after_longer_than_max_pause_holds_nobody() -> None:
    """Retry-After 30 with max_pause 10: the route is not held (the retry policy gives up on such a wait itself)."""

    async def scenario() -> list[float]:
        arrivals: list[float] = []

        async def refuse(_request: ApiRequest) -> ApiResponse:
            arrivals.append(now())
            raise RateLimitError("Too many requests.", status=429, retry_after=30.0)

        gov = governor(max_pause=10, min_rate=2)
        while now() < 5:
            with contextlib.suppress(RateLimitError):
                await gov(CREATE, refuse)
        return arrivals

    gaps = [b - a for a, b in itertools.pairwise(run(scenario))]
    assert max(gaps) <= 0.5 + 1e-9  # min_rate 2/s: paced, never held


def test_initial_rate_starts_just_under_a_known_limit() -> None:
    """initial_rate=150 on a 150/s bucket: the first second already runs near the limit, with few 429s."""

    async def scenario() -> tuple[int, float]:
        server, done = Server(RateLimit(rate=150, burst=15)), []
        await job(server, governor(initial_rate=150), 300, concurrency=64, done=done)
        return sum(t <= 1.0 for t in done), server.share_429()

    first_second, share = run(scenario)
    assert first_second >= 0.7 * 150
    assert share <= 0.05


# -- the model on each limiter shape ------------------------------------------------------


def test_stray_429s_slow_nobody() -> None:
    """One 429 in 100 on an unlimited server: the job takes what it takes without the governor, no limit learned."""

    async def scenario() -> tuple[float, float, RateGovernor]:
        bare = await job(Server(stray_every=100), None, 2000)
        gov = governor()
        governed = await job(Server(stray_every=100), gov, 2000)
        return bare, governed, gov

    bare, governed, gov = run(scenario)
    assert gov.limits == {}
    assert gov.rate_limited >= 15
    assert governed <= bare + 0.6  # slow start's first half second at most; no pause for anyone


@attrs.define
class RandomStrays(Server):
    """An unlimited server answering in ``latency`` (at most ``concurrency / latency`` a second); 1% 429s at random."""

    latency: float = 0.1
    rng: random.Random = attrs.Factory(lambda: random.Random(7))

    async def __call__(self, request: ApiRequest) -> ApiResponse:
        await asyncio.sleep(self.latency)
        refused = self.rng.random() < 0.01
        self.answered.append((now(), request.operation, 429 if refused else 200))
        if refused:
            raise RateLimitError("Too many requests.", status=429, retry_after=1.0)
        return ApiResponse(200, {}, b"{}")


def test_random_stray_429s_cost_little() -> None:
    """1% 429s at random, 640/s server: pairs of strays close together do cut, yet the job runs at >= 0.8x unpaced."""

    async def scenario() -> tuple[float, float]:
        bare = await job(RandomStrays(), None, 3000, concurrency=64)
        governed = await job(RandomStrays(), governor(), 3000, concurrency=64)
        return bare, governed

    bare, governed = run(scenario)
    assert bare / governed >= 0.8


def test_a_binding_limit_is_learned_from_what_the_server_admits() -> None:
    """A 100/s token bucket with whole-second Retry-After: the job runs near 100/s with few 429s."""

    async def scenario() -> tuple[float, Server, RateGovernor]:
        server = Server(RateLimit(rate=100, burst=10))
        gov = governor()
        return await job(server, gov, 1000, concurrency=64), server, gov

    seconds, server, gov = run(scenario)
    assert 1000 / seconds >= 0.85 * 100
    assert server.share_429() <= 0.10
    assert gov.limits["create_endpoint"] == pytest.approx(100, rel=0.15)


def test_recovery_after_the_limit_is_lifted() -> None:
    """20/s then lifted: the next 2,000 calls of the same governor average at least 200/s."""

    async def scenario() -> float:
        server = Server(RateLimit(rate=20, burst=5))
        gov = governor()
        await job(server, gov, 100)
        server.limiter.limit = None
        return 2000 / await job(server, gov, 2000)

    assert run(scenario) >= 200


def test_a_quiet_spell_below_the_pace_does_not_forget_the_limit() -> None:
    """100/s learned; then 30 calls/s for 6 s (the service is quiet); then a burst: paced at the limit, few 429s."""

    async def scenario() -> tuple[float, float, float]:
        server, gov = Server(RateLimit(rate=100, burst=10)), governor()
        await job(server, gov, 600, concurrency=64)
        quiet = now()
        while now() - quiet < 6:
            with contextlib.suppress(RateLimitError):
                await gov(CREATE, server)
            await asyncio.sleep(1 / 30)
        burst = now()
        seconds = await job(server, gov, 600, concurrency=64)
        return gov.rates["create_endpoint"], 600 / seconds, server.share_429(since=burst)

    pace, rate, share = run(scenario)
    assert pace <= 150  # not grown by the quiet spell
    assert rate >= 85
    assert share <= 0.10


def test_bursts_with_pauses_under_a_second_keep_the_limit() -> None:
    """100/s learned; then bursts of 80 calls with 0.9 s pauses: each burst paced near the limit."""

    async def scenario() -> list[float]:
        server, gov = Server(RateLimit(rate=100, burst=10)), governor()
        await job(server, gov, 600, concurrency=64)
        shares = []
        for _ in range(8):
            burst = now()
            await job(server, gov, 80, concurrency=64)
            shares.append(server.share_429(since=burst))
            await asyncio.sleep(0.9)
        return shares

    assert max(run(scenario)) <= 0.10


def test_convergence_after_the_limit_drops() -> None:
    """200/s drops to 50/s mid-job: over the next 10 s, at most 10% 429s and at least 0.8 x 50/s."""

    async def scenario() -> tuple[float, float]:
        server = Server(RateLimit(rate=200, burst=20))
        done: list[float] = []
        running = asyncio.ensure_future(job(server, governor(), 3000, concurrency=64, done=done))
        await asyncio.sleep(5)
        server.limiter.limit = RateLimit(rate=50, burst=5)
        dropped = now()
        await asyncio.sleep(10)
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        completed = sum(dropped < t <= dropped + 10 for t in done)
        return server.share_429(dropped, dropped + 10), completed / 10

    share, rate = run(scenario)
    assert share <= 0.10
    assert rate >= 0.8 * 50


def test_a_limit_on_one_route_leaves_the_others_alone() -> None:
    """Creates limited to 50/s, lookups unlimited: lookups run free while creates keep their limit."""

    async def scenario() -> tuple[float, float, RateGovernor]:
        server = Server(RateLimit(rate=50, burst=5, operations={"create_endpoint"}))
        gov = governor()
        creates = job(server, gov, 300, operation="create_endpoint", concurrency=16)
        lookups = job(server, gov, 3000, operation="get_endpoint", concurrency=16)
        create_seconds, lookup_seconds = await asyncio.gather(creates, lookups)
        return 300 / create_seconds, 3000 / lookup_seconds, gov

    create_rate, lookup_rate, gov = run(scenario)
    assert create_rate >= 0.8 * 50
    assert lookup_rate >= 10 * 50
    assert set(gov.limits) == {"create_endpoint"}


def test_two_clients_in_one_process_stay_independent() -> None:
    """Two governors, one limited server each (50/s and unlimited): each runs as if alone."""

    async def scenario() -> tuple[float, float, RateGovernor, RateGovernor]:
        limited, free = governor(), governor()
        a = job(Server(RateLimit(rate=50, burst=5)), limited, 300)
        b = job(Server(), free, 3000)
        seconds_a, seconds_b = await asyncio.gather(a, b)
        return 300 / seconds_a, 3000 / seconds_b, limited, free

    rate_a, rate_b, limited, free = run(scenario)
    assert rate_a >= 0.8 * 50
    assert rate_b >= 20 * 50
    assert "create_endpoint" in limited.limits
    assert free.limits == {}


def test_a_fixed_window_is_paced_without_a_storm_of_429s() -> None:
    """100 per whole second: after the first window, the pace fits the window."""

    async def scenario() -> tuple[float, Server]:
        server = Server(RateLimit(rate=100, fixed_window=True))
        return await job(server, governor(), 1500, concurrency=64), server

    seconds, server = run(scenario)
    assert 1500 / seconds >= 0.85 * 100
    assert server.share_429() <= 0.10


@attrs.define
class BurstServer(Server):
    """A fixed window of ``allowed`` calls per ``window`` seconds, answering 429 until the next window."""

    window: float = 0.1
    allowed: int = 2
    counts: dict[int, int] = attrs.Factory(dict)

    async def __call__(self, request: ApiRequest) -> ApiResponse:
        await asyncio.sleep(LATENCY)
        slot = math.floor(now() / self.window)
        self.counts[slot] = self.counts.get(slot, 0) + 1
        admitted = self.counts[slot] <= self.allowed
        self.answered.append((now(), request.operation, 200 if admitted else 429))
        if not admitted:
            raise RateLimitError("Too many requests.", status=429, retry_after=(slot + 1) * self.window - now())
        return ApiResponse(200, {}, b"{}")


@pytest.mark.parametrize(("window", "allowed"), [(0.1, 2), (0.25, 10), (0.2, 10)])
def test_a_window_shorter_than_a_second_is_measured_over_a_second(window: float, allowed: int) -> None:
    """2 per 100 ms is 20/s, 10 per 250 ms 40/s: learned over a second, not inside one burst or one window."""

    async def scenario() -> tuple[float, RateGovernor]:
        server, gov = BurstServer(window=window, allowed=allowed), governor()
        return await job(server, gov, 600, concurrency=32), gov

    seconds, gov = run(scenario)
    assert 600 / seconds >= 0.8 * allowed / window
    assert gov.limits["create_endpoint"] == pytest.approx(allowed / window, rel=0.25)


@attrs.define
class WholeSecondWindow(Server):
    """``allowed`` calls per whole second of a clock ``phase`` seconds ahead, refused with ``Retry-After: 1``."""

    phase: float = 0.0
    allowed: int = 40
    counts: dict[int, int] = attrs.Factory(dict)

    async def __call__(self, request: ApiRequest) -> ApiResponse:
        await asyncio.sleep(LATENCY)
        second = math.floor(now() + self.phase)
        self.counts[second] = self.counts.get(second, 0) + 1
        admitted = self.counts[second] <= self.allowed
        self.answered.append((now(), request.operation, 200 if admitted else 429))
        if not admitted:
            raise RateLimitError("Too many requests.", status=429, retry_after=1.0)
        return ApiResponse(200, {}, b"{}")


@pytest.mark.parametrize("concurrency", [16, 32])  # 16: `provision`'s default
@pytest.mark.parametrize("phase", [i / 10 for i in range(10)])
def test_a_whole_second_window_is_paced_whatever_part_of_it_the_job_starts_in(phase: float, concurrency: int) -> None:
    """40 per whole second, the job starting anywhere in a second: the job runs at the window's rate."""

    async def scenario() -> float:
        return 320 / await job(WholeSecondWindow(phase=phase), governor(), 320, concurrency=concurrency)

    assert run(scenario) >= 0.85 * 40


@pytest.mark.parametrize("phase", [i / 20 for i in range(20)])
def test_a_whole_second_window_costs_few_refusals_whatever_part_of_it_the_job_starts_in(phase: float) -> None:
    """40 per whole second, 200 items at concurrency 32: at most 25% refused, well under a client without governor.

    Learning the window costs up to one refusal per worker in each of the route's first two windows
    (as without a governor: a refused call waits its Retry-After); the later windows a few probes each.
    """

    async def scenario() -> tuple[float, float]:
        governed, bare = WholeSecondWindow(phase=phase), WholeSecondWindow(phase=phase)
        await job(governed, governor(), 200, concurrency=32)
        await job(bare, None, 200, concurrency=32)
        return governed.share_429(), bare.share_429()

    governed, bare = run(scenario)
    assert governed <= 0.25
    assert bare >= 0.3  # what the bound is worth: without a governor every worker meets most windows once


def test_a_burst_of_one_is_run_near_its_rate() -> None:
    """A 1,500/s token bucket with a burst of 1 (the fake's default) refuses two calls closer than its interval."""

    async def scenario() -> float:
        return await job(Server(RateLimit(rate=1500)), governor(), 3000, concurrency=64)

    assert 3000 / run(scenario) > 500


@pytest.mark.parametrize(("rate", "burst"), [(3000, 1500), (5000, 1000), (1500, 500)])
def test_slow_start_is_still_paced_when_a_bursty_limiter_first_binds(rate: int, burst: int) -> None:
    """A bucket with a large burst hides its limit for a while: slow start is still paced when the first 429 comes."""

    async def scenario() -> float:
        server, gov, paces = Server(RateLimit(rate=rate, burst=burst)), governor(), []

        async def spy(request: ApiRequest) -> ApiResponse:
            pace = gov.rates[request.operation]
            try:
                return await server(request)
            except RateLimitError:
                paces.append(pace)
                raise

        await job(spy, gov, 5000, concurrency=64)  # type: ignore[arg-type]
        return paces[0]

    assert run(scenario) < 4 * 16_000  # at most 2x what 64 workers answered in 4 ms could send


def test_max_rate_caps_the_pace_per_route() -> None:
    """max_rate={"create_endpoint": 20} keeps creates at 20/s on an unlimited server; other routes are free."""

    async def scenario() -> tuple[float, float]:
        gov = governor(max_rate={"create_endpoint": 20})
        creates = job(Server(), gov, 100, concurrency=8)
        lookups = job(Server(), gov, 1000, operation="get_endpoint", concurrency=8)
        a, b = await asyncio.gather(creates, lookups)
        return 100 / a, 1000 / b

    creates, lookups = run(scenario)
    assert creates == pytest.approx(20, rel=0.1)
    assert lookups > 200


def starts_of(gov: RateGovernor, n: int, **kwargs: Any) -> list[float]:
    """Run a job of ``n`` calls through ``gov`` on an unlimited server; return when each call left."""
    starts: list[float] = []
    server = Server()

    async def counted(request: ApiRequest) -> ApiResponse:
        starts.append(now())
        return await server(request)

    async def scenario() -> None:
        await job(counted, gov, n, **kwargs)  # type: ignore[arg-type]

    run(scenario)
    return starts


def test_the_first_burst_of_a_new_route_is_paced() -> None:
    """64 workers on a new route: the first 100 ms send what 100/s doubling every 100 ms allows, not 64 at once."""
    starts = starts_of(governor(), 1000, concurrency=64)
    assert sum(at < 0.01 for at in starts) <= 2
    assert sum(at < 0.1 for at in starts) <= 100 * 0.1 / math.log(2) + 2  # integral of 100 * 2 ** (t / 0.1)


def test_a_paced_route_sends_call_by_call_never_in_batches() -> None:
    """At max_rate, calls leave one interval apart: a limiter with a burst of one admits each."""
    starts = [at for at in starts_of(governor(max_rate=400), 400, concurrency=64) if at > 0.3]
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert len(gaps) > 200
    assert min(gaps) == pytest.approx(1 / 400, rel=0.01)


def test_a_call_waking_late_does_not_release_every_waiter() -> None:
    """Slow start, 100 workers queued; one pacing sleep overruns by 2 s (a blocked loop): the queue leaves paced."""
    clock = ManualClock(1000.0)
    late = [False]
    starts: list[float] = []

    async def sleep(seconds: float) -> None:
        clock.advance(seconds + (2.0 if late[0] else 0.0))
        late[0] = False
        await asyncio.sleep(0)

    async def counted(_request: ApiRequest) -> ApiResponse:
        starts.append(clock())
        late[0] = late[0] or len(starts) == 20
        await asyncio.sleep(0)
        return ApiResponse(200, {}, b"{}")

    async def scenario() -> None:
        gov = RateGovernor(clock=clock, sleep=sleep)

        async def worker() -> None:
            for _ in range(5):
                await gov(CREATE, counted)

        await asyncio.gather(*(worker() for _ in range(100)))

    asyncio.run(scenario())
    after = [at for at in starts if at > 1001.5]
    assert after.count(min(after)) <= 2


def test_a_negative_clock_paces_from_its_first_call() -> None:
    """An injected clock may be negative: calls leave at once and at the pace, none waits for 0."""
    clock = ManualClock(-7.0037)
    starts: list[float] = []

    async def sleep(seconds: float) -> None:
        clock.advance(seconds)
        await asyncio.sleep(0)

    async def counted(_request: ApiRequest) -> ApiResponse:
        starts.append(clock() + 7.0037)
        return ApiResponse(200, {}, b"{}")

    async def scenario() -> None:
        gov = RateGovernor(clock=clock, sleep=sleep)

        async def worker() -> None:
            while clock() + 7.0037 < 0.3:
                await gov(CREATE, counted)

        await asyncio.gather(*(worker() for _ in range(64)))

    asyncio.run(scenario())
    assert min(starts) == 0
    assert sum(0.2 <= at < 0.3 for at in starts) >= 40  # slow start: 400-800/s by then


def test_answers_other_than_429_count_as_admitted() -> None:
    """A lookup route answered 404 (absent URLs) learns and keeps its limit as one answered 200 does."""

    async def lookups(status: int) -> tuple[float, RateGovernor]:
        server, gov = Server(RateLimit(rate=20, fixed_window=True)), governor()
        request = ApiRequest("GET", "/webhooks/v1/endpoints/x", operation="get_endpoint")
        items = iter(range(600))

        async def worker() -> None:
            for _ in items:
                while True:
                    try:
                        await gov(request, answering)
                    except RateLimitError as exc:
                        await asyncio.sleep(exc.retry_after or 1.0)
                        continue
                    except NotFoundError:
                        pass
                    break

        async def answering(request: ApiRequest) -> ApiResponse:
            response = await server(request)
            if status == 404:
                raise NotFoundError("no such endpoint", status=404)
            return response

        start = now()
        await asyncio.gather(*(worker() for _ in range(64)))
        return now() - start, gov

    ok_seconds, _ = run(lambda: lookups(200))
    missing_seconds, gov = run(lambda: lookups(404))
    assert missing_seconds <= 1.15 * ok_seconds
    assert gov.rates["get_endpoint"] > 5 * gov.min_rate


# -- contracts: close, capacity, deadlines, settings ---------------------------------------


def test_close_wakes_every_waiting_call_with_client_closed() -> None:
    """close() ends every wait at once with ClientClosedError; later calls and capacity waits raise it too."""

    async def scenario() -> list[BaseException | ApiResponse]:
        gov = governor(max_rate=1)

        calls = [asyncio.ensure_future(gov(CREATE, ok)) for _ in range(5)]
        await asyncio.sleep(0.5)
        started = now()
        gov.close()
        gov.close()  # idempotent
        results = await asyncio.gather(*calls, return_exceptions=True)
        assert now() == started  # at once
        with pytest.raises(ClientClosedError):
            await gov(CREATE, ok)
        with pytest.raises(ClientClosedError):
            await gov.wait_for_capacity("create_endpoint")
        return results

    results = run(scenario)
    assert isinstance(results[0], ApiResponse)
    assert all(isinstance(r, ClientClosedError) for r in results[1:])


def test_wait_for_capacity_returns_when_a_call_could_start() -> None:
    """wait_for_capacity waits for the pacing slot, reserves nothing, and returns at once on a free route."""

    async def scenario() -> tuple[float, float]:
        gov = governor(max_rate=2)

        await gov.wait_for_capacity("get_endpoint")
        free = now()
        await gov(CREATE, ok)
        await gov.wait_for_capacity("create_endpoint")
        waited = now() - free
        await gov.wait_for_capacity("create_endpoint")  # reserved nothing: still free
        return free, waited

    free, waited = run(scenario)
    assert free == 0
    assert waited == pytest.approx(0.5)


def test_wait_for_capacity_waits_behind_the_calls_queued_for_slots() -> None:
    """At 2/s with four calls queued for slots (0.5 s to 2.0 s), capacity comes after the last of them (2.5 s).

    A bulk job admits its items with wait_for_capacity: an item admitted while calls are queued
    would start its budget waiting behind them (retries of refused calls, in a job at the limit).
    """

    async def scenario() -> tuple[float, int]:
        gov = governor(max_rate=2)
        started: list[float] = []

        async def counted(_request: ApiRequest) -> ApiResponse:
            started.append(now())
            return ApiResponse(200, {}, b"{}")

        calls = [asyncio.ensure_future(gov(CREATE, counted)) for _ in range(5)]
        await asyncio.sleep(0.3)
        await gov.wait_for_capacity("create_endpoint")
        admitted = now()
        await asyncio.gather(*calls)
        return admitted, len(started)

    admitted, started = run(scenario)
    assert started == 5
    assert admitted == pytest.approx(2.5)


async def test_a_pacing_wait_past_the_deadline_fails_at_once() -> None:
    """A slot further away than the request's deadline raises APITimeoutError without waiting, nothing sent."""
    gov = RateGovernor(max_rate=1)
    sent: list[ApiRequest] = []

    async def counted(request: ApiRequest) -> ApiResponse:
        sent.append(request)
        return ApiResponse(200, {}, b"{}")

    await gov(CREATE, counted)
    late = ApiRequest("POST", "/webhooks/v1/endpoints", operation="create_endpoint", deadline=time.monotonic() + 0.2)
    started = time.monotonic()
    with pytest.raises(APITimeoutError, match="deadline") as info:
        await gov(late, counted)
    assert time.monotonic() - started < 0.1
    assert sent == [CREATE]
    assert info.value.sent is False


def test_a_pause_past_the_deadline_fails_with_rate_limit_error() -> None:
    """A route paused by Retry-After beyond the deadline raises RateLimitError carrying the wait, at once."""

    async def scenario() -> tuple[RateLimitError, float]:
        gov, sent = governor(), []

        async def refused(request: ApiRequest) -> ApiResponse:
            sent.append(request)
            raise RateLimitError("Too many requests.", status=429, retry_after=30.0)

        async def attempt() -> None:
            with pytest.raises(RateLimitError):
                await gov(CREATE, refused)

        attempts = [asyncio.ensure_future(attempt()) for _ in range(40)]  # all refused: the route pauses 30 s
        await asyncio.sleep(2)
        late = ApiRequest("POST", "/webhooks/v1/endpoints", operation="create_endpoint", deadline=time.monotonic() + 1)
        started = now()
        with pytest.raises(RateLimitError) as info:
            await gov(late, refused)
        waited = now() - started
        assert late not in sent
        assert info.value.sent is False
        gov.close()
        await asyncio.gather(*attempts, return_exceptions=True)
        return info.value, waited

    error, waited = run(scenario)
    assert waited == 0
    assert error.retry_after is not None
    assert 25 < error.retry_after <= 30


def test_governor_validates_its_settings() -> None:
    """Non-positive settings are rejected naming the setting, per-route caps included."""
    with pytest.raises(InvalidArgumentError) as info:
        RateGovernor(min_rate=0)
    assert info.value.field == "min_rate"
    with pytest.raises(InvalidArgumentError) as info:
        RateGovernor(max_rate={"create_endpoint": 0})
    assert info.value.field == "max_rate['create_endpoint']"


@pytest.mark.parametrize(
    ("setting", "value"),
    [("initial_rate", 10**400), ("initial_rate", "5"), ("min_rate", True), ("max_pause", -1), ("max_rate", -2)],
)
def test_governor_refuses_unusable_numbers(setting: str, value: object) -> None:
    """Huge, textual, boolean, negative or zero settings are refused naming the setting."""
    with pytest.raises(InvalidArgumentError) as info:
        RateGovernor(**{setting: value})  # type: ignore[arg-type]
    assert info.value.field == setting


async def test_the_client_governor_pauses_no_longer_than_the_retry_policy_waits() -> None:
    """Client() builds its governor with max_pause = RetryPolicy.max_retry_after."""
    from fullstory_async import Client

    async with Client("na1.governor-test-key/ORG", retry=RetryPolicy(max_retry_after=7)) as fs:
        assert fs.governor is not None
        assert fs.governor.max_pause == 7


def test_the_admitted_window_holds_at_most_a_second_of_answers_however_long_the_route_runs() -> None:
    """Bounded memory: 60 s of answers at 1,000/s, then only refusals, keep at most one second's worth."""
    pace = RoutePace(0.0, min_rate=1.0, max_rate=None)
    at = 0.0
    for _ in range(60_000):
        at += 0.001
        pace.on_success(at, at)
    assert len(pace._admitted) <= 1_001
    assert pace.admitted_rate(at) == pytest.approx(1_000, rel=0.01)
    for _ in range(5):  # after a quiet spell, refusals only: the window empties when it is read
        at += 2.0
        pace.on_refused(at, at, None)
    assert pace.admitted_rate(at) == 0
    assert len(pace._admitted) == 0
