"""Asyncio-native SDK for the Fullstory Webhooks API (v1).

::

    from fullstory_async import Client, CreateEndpointRequest, EventType

    async with Client() as fs:  # API key from FULLSTORY_API_KEY
        endpoint = await fs.webhooks.create_endpoint(
            CreateEndpointRequest(url="https://example.com/hook", event_types=[EventType("note.created")])
        )
"""

import typing

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
from fullstory_async._results import Outcome
from fullstory_async._retry import RetryPolicy
from fullstory_async._timeout import Timeout
from fullstory_async._version import __version__
from fullstory_async._webhooks import Webhooks

if typing.TYPE_CHECKING:
    from fullstory_async._bulk.desired import (
        DesiredEndpoint,
        DesiredState,
        DesiredStateError,
        load_desired_state,
        parse_desired_state,
    )
    from fullstory_async._bulk.reconcile import Action, Change, Plan
    from fullstory_async._bulk.results import ApplyResult, ProvisionResult
    from fullstory_async._metrics import Metrics
    from fullstory_async._raw import RawResponse, RawWebhooks

# What a program uses only if it asks for it loads on first use: the bulk wing's names (desired-state
# files, plan and apply, the results of provision and apply), `Metrics` and the raw responses
# (`webhooks.with_raw_response` imports them itself). Every program would pay their import time.
_ON_FIRST_USE = {
    "Metrics": "fullstory_async._metrics",
    "RawResponse": "fullstory_async._raw",
    "RawWebhooks": "fullstory_async._raw",
    "ApplyResult": "fullstory_async._bulk.results",
    "ProvisionResult": "fullstory_async._bulk.results",
    "Action": "fullstory_async._bulk.reconcile",
    "Change": "fullstory_async._bulk.reconcile",
    "Plan": "fullstory_async._bulk.reconcile",
    "DesiredEndpoint": "fullstory_async._bulk.desired",
    "DesiredState": "fullstory_async._bulk.desired",
    "DesiredStateError": "fullstory_async._bulk.desired",
    "load_desired_state": "fullstory_async._bulk.desired",
    "parse_desired_state": "fullstory_async._bulk.desired",
}


if not typing.TYPE_CHECKING:  # a type checker reads the imports above (and refuses a misspelt name)

    def __getattr__(name: str) -> object:
        module = _ON_FIRST_USE.get(name)
        if module is None:
            raise AttributeError(f"module 'fullstory_async' has no attribute {name!r}")
        import importlib

        value = getattr(importlib.import_module(module), name)
        globals()[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*globals(), *_ON_FIRST_USE})


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
