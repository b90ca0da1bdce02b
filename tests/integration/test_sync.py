"""Declarative sync against FakeFullstory: plan, apply, re-apply changes nothing, prune, rotate secrets."""

from __future__ import annotations

from collections import Counter

from fullstory_async import (
    Action,
    CreateEndpointRequest,
    EventType,
    Outcome,
    RetryPolicy,
    UpdateEndpointRequest,
    parse_desired_state,
)
from fullstory_async.testing import FakeFullstory, Fault

DESIRED = """
scope = ["https://example.com/sync/"]

[[endpoints]]
url = "https://example.com/sync/notes"
event_types = ["note.created"]
secret_env = "SYNC_SECRET"

[[endpoints]]
url = "https://example.com/sync/segments"
event_types = ["segment.created"]
secret_env = "SYNC_SECRET"
enabled = false

[[endpoints]]
url = "https://example.com/sync/existing"
event_types = ["note.created", "segment.created"]
"""
ENV = {"SYNC_SECRET": "sync-secret-value"}


async def seed(fake: FakeFullstory) -> None:
    async with fake.client() as fs:
        existing = await fs.webhooks.create_endpoint(
            CreateEndpointRequest(url="https://example.com/sync/existing", event_types=["note.created"])
        )
        await fs.webhooks.update_endpoint(existing.id, UpdateEndpointRequest(enabled=False))
        await fs.webhooks.create_endpoint(
            CreateEndpointRequest(url="https://example.com/sync/stale", event_types=["note.created"])
        )


async def test_plan_lists_creates_updates_and_deletes_only_with_prune() -> None:
    """The plan creates missing URLs, updates drifted ones, and deletes extras only with prune."""
    desired = parse_desired_state(DESIRED, environ=ENV)
    async with FakeFullstory() as fake:
        await seed(fake)
        async with fake.client() as fs:
            plan = await fs.webhooks.plan(desired)
            pruning = await fs.webhooks.plan(desired, prune=True)
    assert {c.url for c in plan.creates} == {"https://example.com/sync/notes", "https://example.com/sync/segments"}
    (update,) = plan.updates
    assert update.url == "https://example.com/sync/existing"
    assert update.fields == ("event_types", "enabled")
    assert plan.deletes == ()
    assert [c.url for c in pruning.deletes] == ["https://example.com/sync/stale"]
    assert not plan.is_empty


async def test_apply_reaches_the_desired_state_and_reapply_changes_nothing() -> None:
    """Applying makes the server match; planning again is empty and applying it writes nothing."""
    desired = parse_desired_state(DESIRED, environ=ENV)
    async with FakeFullstory() as fake:
        await seed(fake)
        async with fake.client() as fs:
            results = [r async for r in fs.webhooks.apply(await fs.webhooks.plan(desired, prune=True))]
            assert all(r.ok for r in results)
            assert Counter(r.outcome for r in results) == {
                Outcome.CREATED: 2,
                Outcome.UPDATED: 1,
                Outcome.DELETED: 1,
            }
            by_url = {e.url: e for e in fake.endpoints.values()}
            assert set(by_url) == {d.url for d in desired.endpoints}
            assert by_url["https://example.com/sync/segments"].enabled is False
            assert by_url["https://example.com/sync/existing"].enabled is True
            assert by_url["https://example.com/sync/notes"].secret == "sync-secret-value"

            writes = sum(1 for r in fake.requests if r.method != "GET")
            again = await fs.webhooks.plan(desired, prune=True)
            assert again.is_empty
            outcomes = [r.outcome async for r in fs.webhooks.apply(again)]
            assert outcomes == [Outcome.UNCHANGED] * 3
            assert sum(1 for r in fake.requests if r.method != "GET") == writes


async def test_rotate_secrets_updates_every_endpoint_with_a_secret() -> None:
    """Secret drift is invisible; rotate_secrets sends every desired secret again."""
    desired = parse_desired_state(DESIRED, environ=ENV)
    rotated = parse_desired_state(DESIRED, environ={"SYNC_SECRET": "new-sync-secret"})
    async with FakeFullstory() as fake, fake.client() as fs:
        async for _ in fs.webhooks.apply(await fs.webhooks.plan(desired)):
            pass
        assert (await fs.webhooks.plan(rotated)).is_empty  # a changed secret cannot be seen
        plan = await fs.webhooks.plan(rotated, rotate_secrets=True)
        assert {c.url for c in plan.updates} == {"https://example.com/sync/notes", "https://example.com/sync/segments"}
        assert all(c.fields == ("secret",) for c in plan.updates)
        async for result in fs.webhooks.apply(plan):
            assert result.ok
        secrets = {e.url: e.secret for e in fake.endpoints.values()}
    assert secrets["https://example.com/sync/notes"] == "new-sync-secret"
    assert secrets["https://example.com/sync/segments"] == "new-sync-secret"


async def test_apply_reports_every_change_when_some_fail() -> None:
    """A failing update is reported as failed while the other changes still happen."""
    desired = parse_desired_state(DESIRED, environ=ENV)
    async with FakeFullstory() as fake:
        await seed(fake)
        async with fake.client(retry=RetryPolicy(max_attempts=2, wait=False)) as fs:
            plan = await fs.webhooks.plan(desired)
            fake.faults.add(Fault.server_error(503), route="update_endpoint")
            results = [r async for r in fs.webhooks.apply(plan)]
    failed = {r.change.url: r.change.action for r in results if not r.ok}
    assert len(results) == len(plan.changes)
    assert failed == {
        "https://example.com/sync/existing": Action.UPDATE,
        "https://example.com/sync/segments": Action.CREATE,  # created, but disabling it is an update
    }
    assert [r.change.url for r in results if r.outcome is Outcome.CREATED] == ["https://example.com/sync/notes"]


async def test_delete_of_an_endpoint_already_gone_succeeds() -> None:
    """A planned delete whose endpoint vanished before apply still reports deleted."""
    desired = parse_desired_state('scope = ["https://example.com/"]\nendpoints = []', environ={})
    async with FakeFullstory() as fake:
        await seed(fake)
        async with fake.client() as fs:
            plan = await fs.webhooks.plan(desired, prune=True)
            for change in plan.deletes:
                assert change.current is not None
                await fs.webhooks.delete_endpoint(change.current.id)
            results = [r async for r in fs.webhooks.apply(plan)]
    assert [r.outcome for r in results] == [Outcome.DELETED, Outcome.DELETED]
    assert fake.endpoints == {}


def test_event_type_order_is_not_drift() -> None:
    """Event types compare as sets: the same types in another order are unchanged."""
    from datetime import UTC, datetime

    from fullstory_async import DesiredEndpoint, Endpoint
    from fullstory_async._bulk.reconcile import _diff

    now = datetime.now(UTC)
    current = Endpoint("id", now, now, True, "https://x", (EventType("b"), EventType("a")))
    desired = DesiredEndpoint("https://x", (EventType("a"), EventType("b")))
    assert _diff(desired, current, rotate_secrets=False) == ()
