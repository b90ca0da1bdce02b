"""The bulk, sync and testing API as a user writes it: type-checked by mypy strict, never run."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fullstory_async import (
    Action,
    ApplyResult,
    Client,
    CreateEndpointRequest,
    DesiredEndpoint,
    DesiredState,
    Endpoint,
    EndpointExistsError,
    EventType,
    Outcome,
    Plan,
    ProvisionResult,
    RateGovernor,
    RetryPolicy,
    load_desired_state,
)
from fullstory_async.testing import FakeFullstory, Fault, RateLimit


async def requests(n: int) -> AsyncIterator[CreateEndpointRequest]:
    for i in range(n):
        yield CreateEndpointRequest(url=f"https://example.com/{i}", event_types=["note.created"], secret="s")


async def provision(fs: Client) -> list[ProvisionResult]:
    failed: list[ProvisionResult] = []
    async for result in fs.webhooks.provision(requests(100), concurrency=8, on_exists="skip", prefetch=False):
        if not result.ok:
            failed.append(result)
        elif result.outcome is Outcome.CREATED and result.endpoint is not None:
            print(result.index, result.url, result.endpoint.id, result.attempts)
    return failed


async def ensure(fs: Client) -> Endpoint | None:
    try:
        endpoint, outcome = await fs.webhooks.ensure_endpoint(
            CreateEndpointRequest(url="https://example.com/h", event_types=["note.created"]), on_exists="error"
        )
    except EndpointExistsError as exc:
        return exc.endpoint
    print(outcome.value)
    return endpoint


async def sync(fs: Client) -> int:
    desired: DesiredState = load_desired_state("endpoints.toml")
    plan: Plan = await fs.webhooks.plan(desired, prune=True, rotate_secrets=False)
    deletes = [c for c in plan.changes if c.action is Action.DELETE]
    scoped = DesiredState(
        [DesiredEndpoint("https://example.com/hooks/a", (EventType("note.created"),), enabled=False)],
        scope=["https://example.com/hooks/"],
    )
    checked: Plan = await fs.webhooks.plan(scoped, prune=True, max_deletes=None, allow_unlisted_event_types=True)
    warnings: tuple[str, ...] = checked.unlisted
    fingerprint: str = checked.fingerprint
    print(warnings, fingerprint)
    results: list[ApplyResult] = [r async for r in fs.webhooks.apply(plan, concurrency=4)]
    return len(deletes) + len(checked.pending) + checked.outside_scope + sum(1 for r in results if not r.ok)


async def main() -> None:
    async with FakeFullstory(rate_limit=RateLimit(rate=50, burst=5)) as fake:
        fake.faults.add(Fault.server_error_after_commit(), route="create_endpoint", probability=0.1)
        governor = RateGovernor(initial_rate=40, min_rate=2, max_rate={"create_endpoint": 30})
        async with fake.client(retry=RetryPolicy(wait=False), rate_governor=governor) as fs:
            print(len(await provision(fs)), await ensure(fs), await sync(fs), governor.rates, governor.limits)
        status: int = await fake.deliver("test", {"message": "hi"}, endpoint_id="x")
        print(status, len(fake.endpoints_with_url("https://example.com/h")))
