"""Asyncio-native SDK for the Fullstory Webhooks API (v1).

::

    from fullstory_async import Client, CreateEndpointRequest, EventType

    async with Client() as fs:  # API key from FULLSTORY_API_KEY
        endpoint = await fs.webhooks.create_endpoint(
            CreateEndpointRequest(url="https://example.com/hook", event_types=[EventType("note.created")])
        )
"""

from fullstory_async._bulk.desired import (
    DesiredEndpoint,
    DesiredState,
    DesiredStateError,
    load_desired_state,
    parse_desired_state,
)
from fullstory_async._bulk.reconcile import Action, Change, Plan
from fullstory_async._bulk.results import ApplyResult, Outcome, ProvisionResult
from fullstory_async._client import Client
from fullstory_async._exceptions import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
    EndpointExistsError,
    EventLoopError,
    FullstoryError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseDecodeError,
    ServerError,
)
from fullstory_async._governor import RateGovernor
from fullstory_async._hooks import Attempt, Call, CallResult, Hooks, RequestView
from fullstory_async._messages import ApiRequest, ApiResponse
from fullstory_async._metrics import Metrics
from fullstory_async._models import (
    CreateEndpointRequest,
    Endpoint,
    EventType,
    EventTypeDefinition,
    Page,
    Subcategory,
    UpdateEndpointRequest,
)
from fullstory_async._pipeline import Handler, Middleware
from fullstory_async._raw import RawResponse, RawWebhooks
from fullstory_async._retry import RetryPolicy
from fullstory_async._timeout import Timeout
from fullstory_async._version import __version__
from fullstory_async._webhooks import Webhooks

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "Action",
    "ApiRequest",
    "ApiResponse",
    "ApplyResult",
    "Attempt",
    "AuthenticationError",
    "BadRequestError",
    "Call",
    "CallResult",
    "Change",
    "Client",
    "ClientClosedError",
    "CreateEndpointRequest",
    "DesiredEndpoint",
    "DesiredState",
    "DesiredStateError",
    "Endpoint",
    "EndpointExistsError",
    "EventLoopError",
    "EventType",
    "EventTypeDefinition",
    "FullstoryError",
    "Handler",
    "Hooks",
    "InvalidArgumentError",
    "Metrics",
    "Middleware",
    "NotFoundError",
    "Outcome",
    "Page",
    "PermissionDeniedError",
    "Plan",
    "ProvisionResult",
    "RateGovernor",
    "RateLimitError",
    "RawResponse",
    "RawWebhooks",
    "RequestView",
    "ResponseDecodeError",
    "RetryPolicy",
    "ServerError",
    "Subcategory",
    "Timeout",
    "UpdateEndpointRequest",
    "Webhooks",
    "__version__",
    "load_desired_state",
    "parse_desired_state",
]
