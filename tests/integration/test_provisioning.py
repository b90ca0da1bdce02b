"""ensure_endpoint and provision against FakeFullstory: reconciliation under ambiguous faults, no duplicates."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterator

import pytest

from fullstory_async import (
    APIConnectionError,
    Client,
    CreateEndpointRequest,
    EndpointExistsError,
    EventType,
    InvalidArgumentError,
    Outcome,
    ResponseDecodeError,
    RetryPolicy,
    ServerError,
)
from fullstory_async.testing import FakeFullstory, Fault
from tests.fakes import gate_in_front_of

URL = "https://example.com/hooks/provisioned"


def request(url: str = URL, *names: str) -> CreateEndpointRequest:
    return CreateEndpointRequest(url=url, event_types=list(names or ["note.created"]), secret="prov-secret-123")


def fast_client(fake: FakeFullstory, **kwargs: object) -> Client:
    return fake.client(retry=RetryPolicy(max_attempts=6, wait=False), **kwargs)


def assert_no_duplicates(fake: FakeFullstory) -> None:
    urls = Counter(endpoint.url for endpoint in fake.endpoints.values())
    assert [url for url, count in urls.items() if count > 1] == []


async def test_ensure_creates_then_rerun_is_unchanged() -> None:
    """The first ensure creates; the second changes nothing and sends no write."""
    async with FakeFullstory() as fake, fast_client(fake) as fs:
        endpoint, outcome = await fs.webhooks.ensure_endpoint(request())
        assert outcome is Outcome.CREATED
        writes_before = sum(1 for r in fake.requests if r.method != "GET")
        again, outcome = await fs.webhooks.ensure_endpoint(request())
        assert outcome is Outcome.UNCHANGED
        assert again.id == endpoint.id
        assert sum(1 for r in fake.requests if r.method != "GET") == writes_before
        assert len(fake.endpoints_with_url(URL)) == 1


async def test_ensure_updates_differing_event_types_and_keeps_enabled_state() -> None:
    """An existing endpoint with other event types is updated; a disabled one stays disabled."""
    async with FakeFullstory() as fake, fast_client(fake) as fs:
        created = await fs.webhooks.create_endpoint(request(URL, "note.created"))
        from fullstory_async import UpdateEndpointRequest

        await fs.webhooks.update_endpoint(created.id, UpdateEndpointRequest(enabled=False))
        endpoint, outcome = await fs.webhooks.ensure_endpoint(request(URL, "segment.created"))
    assert outcome is Outcome.UPDATED
    assert endpoint.event_types == (EventType("segment.created"),)
    assert endpoint.enabled is False


async def test_ensure_on_exists_skip_and_error() -> None:
    """on_exists="skip" returns the endpoint untouched; "error" raises EndpointExistsError with it."""
    async with FakeFullstory() as fake, fast_client(fake) as fs:
        created = await fs.webhooks.create_endpoint(request(URL, "note.created"))
        skipped, outcome = await fs.webhooks.ensure_endpoint(request(URL, "segment.created"), on_exists="skip")
        assert (skipped, outcome) == (created, Outcome.SKIPPED)
        with pytest.raises(EndpointExistsError) as info:
            await fs.webhooks.ensure_endpoint(request(URL), on_exists="error")
        assert info.value.endpoint.id == created.id
        with pytest.raises(InvalidArgumentError):
            await fs.webhooks.ensure_endpoint(request(), on_exists="merge")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "fault",
    [
        Fault.server_error_after_commit(),
        Fault.connection_reset_after_commit(),
        Fault.bad_gateway_html(after_commit=True),
        Fault.invalid_json(),
    ],
    ids=["5xx-after-commit", "reset-after-commit", "html-502-after-commit", "malformed-200"],
)
async def test_ensure_reconciles_after_an_ambiguous_failure(fault: Fault) -> None:
    """A create that fails after the server applied it is found by lookup, not created twice."""
    async with FakeFullstory() as fake, fast_client(fake) as fs:
        fake.faults.add(fault, route="create_endpoint", times=1)
        endpoint, outcome = await fs.webhooks.ensure_endpoint(request())
        assert outcome is Outcome.CREATED
        assert [e.id for e in fake.endpoints_with_url(URL)] == [endpoint.id]
        creates = [r for r in fake.requests if r.method == "POST"]
        assert len(creates) == 1  # the lookup found it: no second create


async def test_ensure_retries_a_create_the_server_never_applied() -> None:
    """A 5xx before commit is retried after a lookup shows the URL absent."""
    async with FakeFullstory() as fake, fast_client(fake) as fs:
        fake.faults.add(Fault.server_error(503), route="create_endpoint", times=2)
        _, outcome = await fs.webhooks.ensure_endpoint(request())
        assert outcome is Outcome.CREATED
        assert len([r for r in fake.requests if r.method == "POST"]) == 3
        assert len(fake.endpoints_with_url(URL)) == 1


async def test_ensure_after_a_timeout_while_the_server_is_slow() -> None:
    """A create that times out (the server applies it late) still ends with exactly one endpoint."""
    fake = FakeFullstory()
    gate = gate_in_front_of(fake)
    async with fake, fast_client(fake, timeout=0.05) as fs:
        fake.faults.add(Fault.latency(0.3), route="create_endpoint", times=1)
        endpoint, _ = await fs.webhooks.ensure_endpoint(request())
        await gate.idle()  # the slow request finishes on the server side
        assert [e.id for e in fake.endpoints_with_url(URL)] == [endpoint.id]


async def test_ensure_after_a_timeout_once_the_server_applied_the_create() -> None:
    """Timeout after commit: the server created it, the answer came too late; the lookup finds it."""
    async with FakeFullstory() as fake, fast_client(fake, timeout=0.05) as fs:
        fake.faults.add(Fault.latency(0.3, after_commit=True), route="create_endpoint", times=1)
        endpoint, outcome = await fs.webhooks.ensure_endpoint(request())
        assert outcome is Outcome.CREATED
        assert [e.id for e in fake.endpoints_with_url(URL)] == [endpoint.id]
        assert len([r for r in fake.requests if r.method == "POST"]) <= 1  # the late answer is still pending


async def test_ensure_gives_up_after_max_attempts_without_duplicates() -> None:
    """Persistent ambiguous failures raise the last error after max_attempts, never duplicating."""
    async with FakeFullstory() as fake, fake.client(retry=RetryPolicy(max_attempts=3, wait=False)) as fs:
        fake.faults.add(Fault.server_error(500), route="create_endpoint")
        with pytest.raises(ServerError):
            await fs.webhooks.ensure_endpoint(request())
        assert len([r for r in fake.requests if r.method == "POST"]) == 3
        assert fake.endpoints_with_url(URL) == []


async def test_provision_with_faults_of_every_kind_reports_every_item_once() -> None:
    """300 items through 10% seeded faults: one result each, every endpoint exactly once."""
    fake = FakeFullstory(seed=7)
    gate = gate_in_front_of(fake)
    async with fake, fast_client(fake, timeout=0.2) as fs:
        for fault in (
            Fault.server_error_after_commit(),
            Fault.server_error(502),
            Fault.connection_reset_after_commit(),
            Fault.connection_reset(),
            Fault.bad_gateway_html(),
            Fault.invalid_json(),
            Fault.latency(0.5),
        ):
            fake.faults.add(fault, probability=0.015)
        requests = (request(f"https://example.com/bulk/{i}") for i in range(300))
        results = [r async for r in fs.webhooks.provision(requests, concurrency=16)]
        assert sorted(r.index for r in results) == list(range(300))
        failed = [r for r in results if not r.ok]
        # an invalid JSON answer is deterministic (not asked again): its item can fail with it
        assert all(isinstance(r.error, ServerError | APIConnectionError | ResponseDecodeError) for r in failed)
        created = {r.endpoint.url for r in results if r.endpoint is not None}
        assert len(created) == 300 - len(failed)
        assert len(failed) <= 3
        await gate.idle()  # slow requests still in the fake finish
        assert_no_duplicates(fake)
        assert {e.url for e in fake.endpoints.values()} >= created


async def test_provision_rerun_is_a_no_op() -> None:
    """Provisioning the same items again reports unchanged and writes nothing."""
    async with FakeFullstory() as fake, fast_client(fake) as fs:
        items = [request(f"https://example.com/rerun/{i}") for i in range(50)]
        first = Counter([r.outcome async for r in fs.webhooks.provision(items)])
        posts = len([r for r in fake.requests if r.method == "POST"])
        second = Counter([r.outcome async for r in fs.webhooks.provision(items)])
    assert first == {Outcome.CREATED: 50}
    assert second == {Outcome.UNCHANGED: 50}
    assert len([r for r in fake.requests if r.method == "POST"]) == posts


async def test_provision_takes_an_async_iterable_and_reports_bad_items() -> None:
    """Bad items fail with InvalidArgumentError naming their index; the rest succeed."""

    async def items() -> AsyncIterator[object]:
        yield request("https://example.com/async/0")
        yield {"url": "https://example.com/async/1"}
        yield request("https://example.com/async/2")

    async with FakeFullstory() as fake, fast_client(fake) as fs:
        results = {r.index: r async for r in fs.webhooks.provision(items())}  # type: ignore[arg-type]
    assert results[0].outcome is Outcome.CREATED
    assert results[2].outcome is Outcome.CREATED
    assert results[1].outcome is Outcome.FAILED
    assert isinstance(results[1].error, InvalidArgumentError)
    assert results[1].error.field == "requests[1]"
    assert results[1].endpoint is None


async def test_provision_same_url_twice_makes_one_endpoint() -> None:
    """Two items with one URL (even with duplicates allowed by the server) give one endpoint."""
    async with FakeFullstory(duplicate_url="allow") as fake, fast_client(fake) as fs:
        items = [request(URL), request(URL), request(URL, "segment.created")]
        outcomes = Counter([r.outcome async for r in fs.webhooks.provision(items, concurrency=3)])
        assert len(fake.endpoints_with_url(URL)) == 1
    assert outcomes[Outcome.CREATED] == 1
    assert outcomes[Outcome.FAILED] == 0


async def test_provision_on_exists_error_fails_existing_items() -> None:
    """With on_exists="error", items whose URL exists fail with EndpointExistsError; others are created."""
    async with FakeFullstory() as fake, fast_client(fake) as fs:
        await fs.webhooks.create_endpoint(request(URL))
        items = [request(URL), request("https://example.com/new")]
        results = {r.index: r async for r in fs.webhooks.provision(items, on_exists="error")}
    assert isinstance(results[0].error, EndpointExistsError)
    assert results[1].outcome is Outcome.CREATED


async def test_provision_raises_the_input_error_after_the_results() -> None:
    """An input iterable that raises stops the job; results already started are still yielded."""

    def items() -> Iterator[CreateEndpointRequest]:
        yield request("https://example.com/ok/0")
        yield request("https://example.com/ok/1")
        raise RuntimeError("input broke")

    async with FakeFullstory() as fake, fast_client(fake) as fs:
        seen: list[int] = []

        async def consume() -> None:
            async for result in fs.webhooks.provision(items(), concurrency=1):
                seen.append(result.index)

        with pytest.raises(RuntimeError, match="input broke"):
            await consume()
    assert seen == [0, 1]


async def test_provision_stopped_early_leaves_no_task_behind() -> None:
    """Breaking out of the result loop cancels the workers: no task of the job is left running."""
    async with FakeFullstory() as fake, fast_client(fake) as fs:
        job = fs.webhooks.provision((request(f"https://example.com/early/{i}") for i in range(1000)), concurrency=8)
        async for _ in job:
            break
        await job.aclose()  # type: ignore[attr-defined]
        workers = [t for t in asyncio.all_tasks() if "stream_map" in t.get_coro().__qualname__]  # type: ignore[union-attr]
        assert workers == []


async def test_provision_counts_attempts_per_item() -> None:
    """The attempts field counts the HTTP requests of an item, retries included."""
    async with FakeFullstory() as fake, fast_client(fake) as fs:
        fake.faults.add(Fault.too_many_requests(retry_after=0), route="create_endpoint", times=2)
        (result,) = [r async for r in fs.webhooks.provision([request()], prefetch=True)]
    assert result.outcome is Outcome.CREATED
    assert result.attempts == 3  # create, 429, 429 then 200: the prefetch listing is the job's own
