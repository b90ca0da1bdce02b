"""The routing table: the seven Webhooks v1 operations, by name, method and path."""

from __future__ import annotations

import attrs


@attrs.frozen
class Operation:
    """One API operation the fake serves."""

    name: str
    """Operation name, as used by fault rules and the request log, e.g. ``"get_endpoint"``."""

    method: str
    """HTTP method."""

    path: str
    """aiohttp route template, e.g. ``"/webhooks/v1/endpoints/{id}"``."""

    writes: bool
    """Whether it changes state (a read-only key gets 403)."""


ENDPOINTS = "/webhooks/v1/endpoints"
EVENT_TYPES = "/webhooks/v1/event-types"

OPERATIONS: tuple[Operation, ...] = (
    Operation("create_endpoint", "POST", ENDPOINTS, writes=True),
    Operation("list_endpoints", "GET", ENDPOINTS, writes=False),
    Operation("get_endpoint", "GET", ENDPOINTS + "/{id}", writes=False),
    Operation("update_endpoint", "POST", ENDPOINTS + "/{id}", writes=True),
    Operation("delete_endpoint", "DELETE", ENDPOINTS + "/{id}", writes=True),
    Operation("list_event_types", "GET", EVENT_TYPES, writes=False),
    Operation(
        "list_event_subcategories",
        "GET",
        EVENT_TYPES + "/{event_name}/subcategories",
        writes=False,
    ),
)

OPERATION_NAMES: frozenset[str] = frozenset(op.name for op in OPERATIONS)
