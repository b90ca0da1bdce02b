"""Fault soak, small and fixed-seed (``bench/soak.py`` runs 10,000): every call ends in a result or a typed error.

Against FakeFullstory with 10% of requests faulted, spread over every kind of fault, each
outcome must be the one its fault implies (read back from the fake's request log), no call
may outlive a global deadline, and the client's pool must be whole at the end (seen at a gate
in front of the fake's handlers).
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from typing import Any

import pytest

from fullstory_async import (
    APIConnectionError,
    APITimeoutError,
    Client,
    CreateEndpointRequest,
    Endpoint,
    FullstoryError,
    Outcome,
    RateLimitError,
    ResponseDecodeError,
    RetryPolicy,
    ServerError,
)
from fullstory_async.testing import FakeFullstory, Fault, FaultKind, RecordedRequest
from tests.fakes import Gate, gate_in_front_of

TIMEOUT = 2.0  # per attempt; generous so a loaded machine never times out a healthy request (1.0 did, at load 8)
DEADLINE = 10.0  # the whole soak (about 5 s at load 8)
FAULTS = Fault.every_kind(slow=1.5 * TIMEOUT, quick=0.01)
ERROR_OF = {
    FaultKind.HTML: ServerError,
    FaultKind.RESET: APIConnectionError,
    FaultKind.INVALID_JSON: ResponseDecodeError,
    FaultKind.WRONG_SHAPE: ResponseDecodeError,
}


def requests(n: int) -> list[CreateEndpointRequest]:
    return [
        CreateEndpointRequest(
            url=f"https://soak.example.com/hooks/{i}", event_types=["note.created"], secret=f"soak-secret-{i:04d}"
        )
        for i in range(n)
    ]


async def run_all(n: int, call: Any, concurrency: int = 64) -> list[object]:
    """Call ``call(i)`` for 0..n-1 with ``concurrency`` workers under the global deadline; keep each outcome."""
    outcomes: list[object] = [None] * n
    queue = iter(range(n))

    async def worker() -> None:
        for i in queue:
            try:
                outcomes[i] = await call(i)
            except Exception as exc:  # the property: every failure is typed (checked by the caller)
                outcomes[i] = exc

    async with asyncio.timeout(DEADLINE), asyncio.TaskGroup() as group:
        for _ in range(concurrency):
            group.create_task(worker())
    return outcomes


async def check_pool_is_whole(fake: FakeFullstory, gate: Gate, client: Client) -> None:
    """After a soak, with faults off: the client's 100 connections (the default) all go on the wire at once."""
    fake.faults.clear()
    await gate.check_pool_width(client.webhooks.list_endpoints_page, 100)


def expected_outcome(faults: tuple[Fault, ...]) -> tuple[type[Any], bool]:
    """Return what the last attempt of a create must end in, and whether the fake stored the endpoint."""
    slow_before = any(f.kind is FaultKind.LATENCY and not f.after_commit and f.seconds > TIMEOUT for f in faults)
    slow_after = any(f.kind is FaultKind.LATENCY and f.after_commit and f.seconds > TIMEOUT for f in faults)
    other = next((f for f in faults if f.kind is not FaultKind.LATENCY), None)
    committed = not slow_before and (other is None or other.after_commit)
    if slow_before or slow_after:
        return APITimeoutError, committed
    if other is None:
        return Endpoint, True
    if other.kind is FaultKind.ERROR:
        return (RateLimitError if other.status == 429 else ServerError), committed
    return ERROR_OF[other.kind], committed


async def test_soak_of_500_creates_every_outcome_is_the_one_its_fault_implies() -> None:
    """500 creates, 10% faulted: each ends in the Endpoint or the typed error its fault implies; nothing leaks."""
    n = 500
    wanted = requests(n)
    fake = FakeFullstory(seed=7, request_log_size=4 * n)
    gate = gate_in_front_of(fake)
    async with fake:
        for fault in FAULTS:
            fake.faults.add(fault, probability=0.1 / len(FAULTS))
        async with fake.client(retry=RetryPolicy(wait=False), timeout=TIMEOUT) as client:
            outcomes = await run_all(n, lambda i: client.webhooks.create_endpoint(wanted[i]))
            await check_pool_is_whole(fake, gate, client)
        attempts: dict[str, list[RecordedRequest]] = defaultdict(list)
        for record in fake.requests:
            if record.operation == "create_endpoint":
                attempts[record.json()["url"]].append(record)
        stored = {endpoint.url for endpoint in fake.endpoints.values()}

    faulted = Counter(f.kind for records in attempts.values() for r in records for f in r.faults)
    assert set(faulted) == set(FaultKind), "every kind of fault was injected"
    kinds: Counter[str] = Counter()
    for request, outcome in zip(wanted, outcomes, strict=True):
        assert isinstance(outcome, Endpoint | FullstoryError), f"{request.url}: {outcome!r}"
        last = attempts[request.url][-1]
        expected, committed = expected_outcome(last.faults)
        assert type(outcome) is expected, f"{request.url}: {last.faults} -> {outcome!r}"
        assert (request.url in stored) is committed, f"{request.url}: {last.faults}"
        if isinstance(outcome, Endpoint):
            assert outcome.url == request.url
        kinds[type(outcome).__name__] += 1
    assert kinds["Endpoint"] > 0.8 * n
    assert {"ServerError", "APIConnectionError", "APITimeoutError", "ResponseDecodeError"} <= set(kinds)


async def test_soak_of_300_ensures_makes_no_duplicate() -> None:
    """300 ensure_endpoint calls through the same faults, on a fake that allows duplicate URLs: none is made."""
    n = 300
    wanted = requests(n)
    fake = FakeFullstory(seed=11, duplicate_url="allow", request_log_size=8 * n)
    gate = gate_in_front_of(fake)
    async with fake:
        for fault in FAULTS:
            fake.faults.add(fault, probability=0.1 / len(FAULTS))
        async with fake.client(retry=RetryPolicy(wait=False), timeout=TIMEOUT) as client:
            outcomes = await run_all(n, lambda i: client.webhooks.ensure_endpoint(wanted[i]))
            await check_pool_is_whole(fake, gate, client)
        per_url = Counter(endpoint.url for endpoint in fake.endpoints.values())
        ambiguous = sum(1 for r in fake.requests if r.operation == "create_endpoint" and r.faults)

    assert ambiguous > 0, "some creates met a fault"
    assert [url for url, count in per_url.items() if count > 1] == []
    for request, outcome in zip(wanted, outcomes, strict=True):
        if isinstance(outcome, FullstoryError):
            assert per_url[request.url] <= 1
            continue
        assert isinstance(outcome, tuple)
        endpoint, result = outcome
        assert result is Outcome.CREATED
        assert endpoint.url == request.url
        assert per_url[request.url] == 1
    assert sum(isinstance(o, tuple) for o in outcomes) > 0.95 * n


@pytest.mark.parametrize("concurrency", [1, 64])
async def test_a_deadline_ends_a_soak_that_would_hang(concurrency: int) -> None:
    """Against a server that never answers, the global deadline (not the test runner) ends every call."""
    fake = FakeFullstory()
    gate = gate_in_front_of(fake)
    async with fake:
        fake.faults.add(Fault.latency(60))
        async with fake.client(retry=RetryPolicy(wait=False), timeout=60) as client:
            async with asyncio.timeout(2):  # a hang guard: the calls end soon after the deadline
                with pytest.raises(TimeoutError):
                    async with asyncio.timeout(0.3):  # the soak's global deadline
                        await run_all(10, lambda i: client.webhooks.get_endpoint(f"ep-{i}"), concurrency)
            await check_pool_is_whole(fake, gate, client)
