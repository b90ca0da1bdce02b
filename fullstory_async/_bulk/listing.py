"""The listing a plan is made from: complete, de-duplicated, and its fingerprint.

An offset-paged listing read while another writer inserts can repeat an endpoint on two
pages (or skip one). The plan reads every page with the SDK's one listing walk (a
pagination token seen twice, or more than `MAX_PAGES` pages, is an error, never a loop),
keeps each id once (its latest ``modified`` version), and fails as a whole when any page
fails: there is no plan from a partial listing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import TYPE_CHECKING

from fullstory_async._models import Endpoint

if TYPE_CHECKING:
    from collections.abc import Callable

    from fullstory_async._bulk.operations import Operations


async def complete_listing(webhooks: Operations, observe: Callable[[Endpoint], None] | None = None) -> list[Endpoint]:
    """Every endpoint once, in listing order (the latest version of an id listed twice).

    The walk is `Webhooks.list_endpoints`'s: a repeated token or more than `MAX_PAGES`
    pages raise `ResponseDecodeError`.
    """
    by_id: dict[str, Endpoint] = {}
    async for endpoint in webhooks.list_endpoints():
        seen = by_id.get(endpoint.id)
        if seen is None or endpoint.modified >= seen.modified:
            by_id[endpoint.id] = endpoint
        if observe is not None:
            observe(endpoint)  # a later create can then look its URL up in one GET
    return list(by_id.values())


def fingerprint(endpoints: Iterable[Endpoint]) -> str:
    """Return a digest of the endpoints' ids, URLs, states, event types and modification times."""
    rows = sorted(
        (
            e.id,
            e.url,
            e.enabled,
            sorted((t.event_name, t.subcategory or "") for t in e.event_types),
            e.modified.isoformat(),
        )
        for e in endpoints
    )
    return hashlib.sha256(json.dumps(rows, separators=(",", ":")).encode()).hexdigest()[:32]
