"""What the bulk wing uses of the core: the `Operations` protocol, the public endpoint operations.

`Webhooks` (``client.webhooks``) implements it; the bulk modules are typed against this
protocol only, so they never import the client or `_webhooks` (the bulk wing is built on
the core's public operations, not the other way round). The settings a bulk job runs
under (the retry policy, the rate governor, a sleep that ends when the client closes) are
handed to `Provisioner` by ``client.webhooks``; a bulk item's calls share one core
`Budget` (`fullstory_async._budget`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Protocol

from fullstory_async._models import CreateEndpointRequest, Endpoint, EventTypeDefinition, Subcategory

if TYPE_CHECKING:
    from fullstory_async._models import UpdateEndpointRequest
    from fullstory_async._results import Outcome


class Operations(Protocol):
    """The endpoint and catalogue operations the bulk wing uses (implemented by `Webhooks`)."""

    async def get_endpoint(self, endpoint_id: str) -> Endpoint:
        """Return one endpoint; `NotFoundError` if there is none."""

    async def create_endpoint(self, request: CreateEndpointRequest) -> Endpoint:
        """Create an endpoint."""

    async def update_endpoint(self, endpoint_id: str, request: UpdateEndpointRequest) -> Endpoint:
        """Change an endpoint."""

    async def delete_endpoint(self, endpoint_id: str) -> None:
        """Delete an endpoint."""

    async def ensure_endpoint(self, request: CreateEndpointRequest) -> tuple[Endpoint, Outcome]:
        """Make the endpoint of ``request`` exist (under the current budget, if there is one)."""

    async def find_endpoint_by_url(self, url: str) -> Endpoint | None:
        """Return the endpoint whose URL is exactly ``url``, or ``None``."""

    def list_endpoints(self) -> AsyncIterator[Endpoint]:
        """Iterate over all endpoints."""

    async def list_event_types(self) -> list[EventTypeDefinition]:
        """Return the event types the organisation can subscribe to."""

    def list_event_subcategories(self, event_name: str) -> AsyncIterator[Subcategory]:
        """Iterate over all subcategories of ``event_name``."""
