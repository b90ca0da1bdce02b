"""What a bulk job reports: the result record of each item, with its core `Outcome`.

`provision` yields one `ProvisionResult` per input item, `apply` one `ApplyResult` per
planned change; both carry the outcome, the endpoint as it now is, the typed error of a
failure and the HTTP requests the item made.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from fullstory_async._exceptions import FullstoryError
from fullstory_async._models import CreateEndpointRequest, Endpoint
from fullstory_async._results import Outcome

if TYPE_CHECKING:
    from fullstory_async._bulk.reconcile import Change


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
