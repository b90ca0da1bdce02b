"""provision never raises for server faults and never hangs: prefetch fallback, sessions closed mid-job."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import aiohttp
import pytest

from fullstory_async import Client, ClientClosedError, CreateEndpointRequest, Outcome, RetryPolicy, parse_desired_state
from fullstory_async.testing import FakeFullstory, Fault


def request(i: int) -> CreateEndpointRequest:
    return CreateEndpointRequest(url=f"https://example.com/stream/{i}", event_types=["note.created"], secret="s-123456")


class Counted:
    """An input that records how many items were taken from it."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.taken = 0

    def __iter__(self) -> Iterator[CreateEndpointRequest]:
        for i in range(self.n):
            self.taken += 1
            yield request(i)


async def test_a_failed_prefetch_falls_back_to_per_item_lookups() -> None:
    """A listing that fails after retries does not escape: every item gets its result, found by lookups."""
    async with FakeFullstory() as fake, fake.client(retry=RetryPolicy(max_attempts=2, wait=False)) as fs:
        existing = fake.add_endpoint(request(0).url, event_types=("note.created",))
        fake.faults.add(Fault.server_error(503), route="list_endpoints")
        results = [r async for r in fs.webhooks.provision([request(i) for i in range(5)], prefetch=True)]
    assert sorted(r.index for r in results) == [0, 1, 2, 3, 4]
    assert all(r.ok for r in results), [r.error for r in results]
    by_index = {r.index: r for r in results}
    assert by_index[0].outcome is Outcome.UNCHANGED
    assert by_index[0].endpoint is not None
    assert by_index[0].endpoint.id == existing.id
    assert {by_index[i].outcome for i in range(1, 5)} == {Outcome.CREATED}
    assert len(fake.endpoints) == 5


@pytest.mark.parametrize("closer", ["user_session", "client"])
async def test_closing_mid_job_ends_the_stream_with_a_result_per_taken_item(closer: str) -> None:
    """Closing the user's session (or the client) mid-job: a result for each taken item, then ClientClosedError."""
    items = Counted(10_000)
    seen: list[int] = []
    async with FakeFullstory() as fake, aiohttp.ClientSession() as session:
        fake.faults.add(Fault.latency(0.05), route="create_endpoint")
        fs = Client(fake.api_key, base_url=fake.url, session=session, retry=RetryPolicy(wait=False))

        async def consume() -> None:
            async for result in fs.webhooks.provision(items, concurrency=8, prefetch=False):
                seen.append(result.index)
                if len(seen) == 3:
                    await (session.close() if closer == "user_session" else fs.aclose())

        with pytest.raises(ClientClosedError):
            await asyncio.wait_for(consume(), 10)
        await fs.aclose()
    assert sorted(seen) == list(range(items.taken))
    assert items.taken <= 3 + 2 * 8 + 1


async def test_apply_ends_with_client_closed_after_the_results_of_started_changes() -> None:
    """Closing the client mid-apply: each change already started gets its result, then ClientClosedError."""
    desired = parse_desired_state(
        "\n".join(
            f'[[endpoints]]\nurl = "https://example.com/apply/{i}"\nevent_types = ["note.created"]' for i in range(200)
        )
    )
    seen: list[str] = []
    async with FakeFullstory() as fake:
        fake.faults.add(Fault.latency(0.05), route="create_endpoint")
        fs = fake.client(retry=RetryPolicy(wait=False))
        plan = await fs.webhooks.plan(desired)

        async def consume() -> None:
            async for result in fs.webhooks.apply(plan, concurrency=4):
                seen.append(result.change.url)
                if len(seen) == 2:
                    await fs.aclose()

        with pytest.raises(ClientClosedError):
            await asyncio.wait_for(consume(), 10)
    assert 2 <= len(seen) <= 2 + 2 * 4
    assert len(seen) == len(set(seen))
