"""What the bulk layer needs from the client: the `Operations` protocol and the `Budget` its calls share.

`Webhooks` (``client.webhooks``) implements `Operations`; the bulk modules are typed
against this protocol only, so they never import the client or `_webhooks` (the core
sits above the bulk layer, not beside it).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

import attrs

from fullstory_async._models import CreateEndpointRequest, Endpoint, UpdateEndpointRequest
from fullstory_async._retry import RetryPolicy

if TYPE_CHECKING:
    from fullstory_async._bulk.provision import OnExists
    from fullstory_async._bulk.results import Outcome
    from fullstory_async._governor import RateGovernor


@attrs.define
class Budget:
    """One operation's budget across several calls: the deadline they share and the attempts they made."""

    deadline: float | None
    """The ``time.monotonic()`` instant by which every call must end (``None``: no deadline)."""
    attempts: int = 0
    """HTTP attempts made so far, retries included."""
    seconds: float | None = None
    """The budget's length (the retry policy's ``deadline``)."""
    admit: Callable[[str], Awaitable[None]] | None = None
    """Awaited with the route of the first request, before it is sent (bulk admission); the budget starts after."""

    @classmethod
    def start(cls, policy: RetryPolicy, admit: Callable[[str], Awaitable[None]] | None = None) -> Budget:
        """Start a budget of ``policy.deadline`` seconds from now (restarted once ``admit`` returns)."""
        seconds = policy.deadline
        return cls(None if seconds is None else time.monotonic() + seconds, 0, seconds, admit)

    async def admitted(self, route: str) -> float | None:
        """Before the first request (of ``route``): wait for admission, if any; return the deadline of the request."""
        admit, self.admit = self.admit, None
        if admit is not None:
            await admit(route)
            if self.seconds is not None:
                self.deadline = time.monotonic() + self.seconds
        return self.deadline

    def left(self) -> float:
        """Seconds left (infinite without a deadline)."""
        return float("inf") if self.deadline is None else self.deadline - time.monotonic()


class Operations(Protocol):
    """The endpoint operations, settings and budget view the bulk layer uses (implemented by `Webhooks`)."""

    @property
    def retry_policy(self) -> RetryPolicy:
        """The client's retry policy (each bulk item's budget)."""

    @property
    def governor(self) -> RateGovernor | None:
        """The client's rate governor, which admits bulk items."""

    @property
    def budget(self) -> Budget | None:
        """The budget every call of this view runs under, or ``None``."""

    def _within(self, budget: Budget) -> Operations:
        """Return these operations with every call under ``budget``."""

    async def _sleep(self, seconds: float) -> None:
        """Wait ``seconds``; `ClientClosedError` at once if the client is closed meanwhile."""

    async def get_endpoint(self, endpoint_id: str) -> Endpoint:
        """Return one endpoint; `NotFoundError` if there is none."""

    async def create_endpoint(self, request: CreateEndpointRequest) -> Endpoint:
        """Create an endpoint."""

    async def update_endpoint(self, endpoint_id: str, request: UpdateEndpointRequest) -> Endpoint:
        """Change an endpoint."""

    async def delete_endpoint(self, endpoint_id: str) -> None:
        """Delete an endpoint."""

    async def ensure_endpoint(
        self, request: CreateEndpointRequest, *, on_exists: OnExists = "update"
    ) -> tuple[Endpoint, Outcome]:
        """Make the endpoint of ``request`` exist (under this view's budget, if it has one)."""

    async def find_endpoint_by_url(self, url: str) -> Endpoint | None:
        """Return the endpoint whose URL is exactly ``url``, or ``None``."""

    def list_endpoints(self) -> AsyncIterator[Endpoint]:
        """Iterate over all endpoints."""
