"""What the reconciling operations report: the `Outcome` of each item and its result record.

`ensure_endpoint` returns an `Outcome`; `provision` yields one `ProvisionResult` per input
item, `apply` one `ApplyResult` per planned change; both carry the outcome, the endpoint as
it now is, the typed error of a failure and the HTTP requests the item made. They live in
the core (the bulk wing builds them), so `Webhooks` can name them without importing it.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

import attrs

from fullstory_async._exceptions import FullstoryError
from fullstory_async._models import CreateEndpointRequest, Endpoint

if TYPE_CHECKING:
    from fullstory_async._bulk.reconcile import Change


DEFAULT_MAX_DELETES = 10
"""``plan(prune=True)`` refuses to delete more endpoints than this unless ``max_deletes`` is raised."""


class Outcome(enum.StrEnum):
    """What happened to one desired endpoint."""

    CREATED = "created"
    """It did not exist and was created."""
    UPDATED = "updated"
    """It existed with other settings and was updated."""
    UNCHANGED = "unchanged"
    """It existed with these settings already."""
    SKIPPED = "skipped"
    """It existed and was left as it was (``on_exists="skip"``)."""
    DELETED = "deleted"
    """It was deleted (declarative sync with ``prune``)."""
    FAILED = "failed"
    """The item failed; see its ``error``."""


@attrs.frozen
class ProvisionResult:
    """The outcome of one input item of `Webhooks.provision`."""

    index: int
    """Position of the item in the input, from 0."""
    request: CreateEndpointRequest | None
    """The request, or ``None`` when the item was not a `CreateEndpointRequest`."""
    endpoint: Endpoint | None
    """The endpoint as it now is; ``None`` on failure."""
    error: FullstoryError | None
    """The typed error on failure; ``None`` on success."""
    outcome: Outcome
    """What happened."""
    attempts: int
    """HTTP requests made for this item (lookups, creates, updates and retries), failures included."""

    @property
    def ok(self) -> bool:
        """True when the item succeeded."""
        return self.error is None

    @property
    def url(self) -> str | None:
        """The item's URL, when it had one."""
        return self.request.url if self.request is not None else None


@attrs.frozen
class ApplyResult:
    """The outcome of one `Change` of an applied plan."""

    change: Change
    """The planned change."""
    endpoint: Endpoint | None
    """The endpoint as it now is (``None`` after a delete or on failure)."""
    error: FullstoryError | None
    """The typed error on failure."""
    outcome: Outcome
    """What happened."""
    attempts: int
    """HTTP requests made for this change."""

    @property
    def ok(self) -> bool:
        """True when the change succeeded."""
        return self.error is None
