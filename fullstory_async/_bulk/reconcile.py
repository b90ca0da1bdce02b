"""Declarative sync: compare a `DesiredState` with what exists (`plan`), then make it so (`apply`).

Secrets are write-only in the API: a secret that differs cannot be seen, so a plan never
shows secret drift. ``rotate_secrets=True`` sends every desired secret again (an update
for every endpoint that has one).
"""

from __future__ import annotations

import contextlib
import enum
import functools
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING

import attrs

from fullstory_async._bulk.budget import Admission, budgeted
from fullstory_async._bulk.catalogue_check import check_event_types
from fullstory_async._bulk.desired import DesiredEndpoint, DesiredState
from fullstory_async._bulk.listing import complete_listing, fingerprint
from fullstory_async._bulk.results import ApplyResult
from fullstory_async._bulk.scope import UrlKey, in_scope, is_ambiguous, url_key
from fullstory_async._bulk.streaming import stream_map
from fullstory_async._exceptions import InvalidArgumentError, NotFoundError, shown
from fullstory_async._models import Endpoint, UpdateEndpointRequest
from fullstory_async._results import DEFAULT_MAX_DELETES, Outcome

if TYPE_CHECKING:
    from fullstory_async._bulk.operations import Operations
    from fullstory_async._bulk.provision import Provisioner


class Action(enum.StrEnum):
    """What a plan does to one endpoint."""

    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    UNCHANGED = "unchanged"


@attrs.frozen
class Change:
    """One line of a `Plan`."""

    action: Action
    """What to do."""
    url: str
    """The endpoint's URL."""
    desired: DesiredEndpoint | None = None
    """The desired endpoint (``None`` for a delete)."""
    current: Endpoint | None = None
    """The endpoint as it exists (``None`` for a create)."""
    fields: tuple[str, ...] = ()
    """For an update, what differs: ``event_types``, ``enabled``, ``secret`` (only when rotating)."""


@attrs.frozen
class Plan:
    """What `apply` would do, grouped by action; build it with `Webhooks.plan`."""

    creates: tuple[Change, ...] = ()
    updates: tuple[Change, ...] = ()
    deletes: tuple[Change, ...] = ()
    unchanged: tuple[Change, ...] = ()
    outside_scope: int = 0
    """Endpoints outside the desired state's scope, left alone."""
    ambiguous: tuple[str, ...] = ()
    """URLs of listed endpoints that servers may read two ways (`path_problem`), not desired: never pruned."""
    unlisted: tuple[str, ...] = ()
    """Event types or subcategories the catalogue does not list, accepted by ``allow_unlisted_event_types``."""
    fingerprint: str = ""
    """A digest of the endpoints the plan was made from (in scope): a saved plan is stale when it changes."""
    _seal: object = attrs.field(default=None, init=False, eq=False, repr=False)

    @property
    def validated(self) -> bool:
        """True when `Webhooks.plan` made it (checked against the catalogue); `apply` refuses any other plan.

        A copy changed with ``attrs.evolve`` or a `Plan` built by hand is not validated.
        """
        return self._seal is _SEAL

    @property
    def changes(self) -> tuple[Change, ...]:
        """Every change, in the order `apply` starts them: creates, updates, deletes, unchanged."""
        return self.creates + self.updates + self.deletes + self.unchanged

    @property
    def pending(self) -> tuple[Change, ...]:
        """The changes that change something: creates, updates, deletes."""
        return self.creates + self.updates + self.deletes

    @property
    def is_empty(self) -> bool:
        """True when applying would change nothing."""
        return not self.pending


def _diff(desired: DesiredEndpoint, current: Endpoint, rotate_secrets: bool) -> tuple[str, ...]:
    fields = []
    if desired.event_types and set(desired.event_types) != set(current.event_types):
        fields.append("event_types")
    if desired.enabled != current.enabled:
        fields.append("enabled")
    if rotate_secrets and desired.secret is not None:
        fields.append("secret")
    return tuple(fields)


_SEAL = object()
"""Set on each `Plan` that `plan` makes; neither the constructor nor ``attrs.evolve`` can set it."""


def _sealed(plan: Plan) -> Plan:
    object.__setattr__(plan, "_seal", _SEAL)
    return plan


def check_plan(plan: object) -> Plan:
    """Return ``plan`` if `apply` may run it: a `Plan` made (and validated) by `Webhooks.plan`."""
    if not isinstance(plan, Plan):
        raise InvalidArgumentError("plan", f"must be a Plan, got {type(plan).__name__}")
    if not plan.validated:
        raise InvalidArgumentError(
            "plan", "was not made by webhooks.plan() (built by hand or changed with attrs.evolve): plan again"
        )
    return plan


async def plan(
    wing: Provisioner,
    desired: DesiredState,
    *,
    prune: bool,
    rotate_secrets: bool,
    max_deletes: int | None = DEFAULT_MAX_DELETES,
    allow_unlisted_event_types: bool = False,
) -> Plan:
    """See `Webhooks.plan`."""
    if not isinstance(desired, DesiredState):
        raise InvalidArgumentError("desired", f"must be a DesiredState, got {type(desired).__name__}")
    if prune and desired.scope is None:
        raise InvalidArgumentError(
            "scope",
            "prune needs a scope: declare the URL prefixes the desired state owns "
            '(scope = ["https://hooks.example.com/"] at the top of the file); '
            "without one, prune would delete endpoints that other tools own",
        )
    if max_deletes is not None and (
        isinstance(max_deletes, bool) or not isinstance(max_deletes, int) or max_deletes < 0
    ):
        raise InvalidArgumentError("max_deletes", f"must be an integer >= 0 or None, got {shown(max_deletes)}")
    unlisted = await check_event_types(wing.webhooks, desired, allow_unlisted=allow_unlisted_event_types)
    listing = await complete_listing(wing.webhooks, wing.observe)
    wanted = {url_key(endpoint.url): endpoint for endpoint in desired.endpoints}  # the one URL identity
    matched: set[UrlKey | None] = set()
    updates: list[Change] = []
    deletes: list[Change] = []
    unchanged: list[Change] = []
    ambiguous: list[str] = []
    seen: list[Endpoint] = []  # what the plan was made from: every endpoint but those outside the scope
    for current in listing:
        key = url_key(current.url)
        target = wanted.get(key) if key is not None else None
        if target is None:
            if is_ambiguous(current.url):
                ambiguous.append(current.url)  # never pruned, whatever the scope
            elif desired.scope is not None and not in_scope(current.url, desired.scope):
                continue
            elif prune:
                deletes.append(Change(Action.DELETE, current.url, None, current))
            seen.append(current)
            continue
        seen.append(current)
        if key in matched:  # a second endpoint with a desired URL: never deleted, left alone
            continue
        matched.add(key)  # spelt otherwise (`HOOKS.example.com`, `:443`): that endpoint, kept as the server spells it
        fields = _diff(target, current, rotate_secrets)
        bucket = updates if fields else unchanged
        bucket.append(Change(Action.UPDATE if fields else Action.UNCHANGED, current.url, target, current, fields))
    if max_deletes is not None and len(deletes) > max_deletes:
        raise InvalidArgumentError(
            "max_deletes",
            f"the plan would delete {len(deletes)} endpoints, more than the limit of {max_deletes}: check the "
            f"desired state and its scope, then allow it with max_deletes={len(deletes)} (CLI: --max-deletes "
            f"{len(deletes)})",
        )
    creates = [Change(Action.CREATE, target.url, target) for key, target in wanted.items() if key not in matched]
    made = Plan(
        tuple(creates),
        tuple(updates),
        tuple(deletes),
        tuple(unchanged),
        outside_scope=len(listing) - len(seen),
        ambiguous=tuple(ambiguous),
        unlisted=unlisted,
        fingerprint=fingerprint(seen),
    )
    return _sealed(made)


async def apply(wing: Provisioner, plan: Plan, *, concurrency: int) -> AsyncGenerator[ApplyResult, None]:
    """See `Webhooks.apply`."""
    admission = Admission(wing.governor, concurrency)
    webhooks = wing.webhooks

    async def run(_index: int, change: Change) -> ApplyResult:
        work = functools.partial(_execute, webhooks, change)
        result, error, attempts = await budgeted(wing.retry.operation_timeout, work, admission=admission)
        if error is not None or result is None:
            return ApplyResult(change, None, error, Outcome.FAILED, attempts)
        return ApplyResult(change, result[0], None, result[1], attempts)

    check_plan(plan)
    async with contextlib.aclosing(stream_map(plan.changes, run, concurrency=concurrency)) as results:
        async for result in results:
            yield result


async def _execute(webhooks: Operations, change: Change) -> tuple[Endpoint | None, Outcome]:
    desired = change.desired
    if change.action is Action.UNCHANGED:
        return change.current, Outcome.UNCHANGED
    if change.action is Action.DELETE:
        assert change.current is not None
        with contextlib.suppress(NotFoundError):  # already gone: the desired state holds
            await webhooks.delete_endpoint(change.current.id)
        return None, Outcome.DELETED
    assert desired is not None
    if change.action is Action.CREATE:
        endpoint, outcome = await webhooks.ensure_endpoint(desired.create_request())
        if endpoint.enabled == desired.enabled:
            return endpoint, outcome
        updated = await webhooks.update_endpoint(endpoint.id, UpdateEndpointRequest(enabled=desired.enabled))
        return updated, outcome
    assert change.current is not None
    update = UpdateEndpointRequest(
        event_types=desired.event_types if "event_types" in change.fields else None,
        secret=desired.secret if "secret" in change.fields else None,
        enabled=desired.enabled,
    )
    return await webhooks.update_endpoint(change.current.id, update), Outcome.UPDATED
