"""`Webhooks`: the typed Webhooks v1 operations, reached as ``client.webhooks``."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from fullstory_async import _converter
from fullstory_async._exceptions import InvalidArgumentError, ResponseDecodeError
from fullstory_async._messages import ApiRequest
from fullstory_async._models import CreateEndpointRequest, Endpoint
from fullstory_async._timeout import Timeout, as_timeout

if TYPE_CHECKING:
    from fullstory_async._client import Client

T = TypeVar("T")

ENDPOINTS = "/webhooks/v1/endpoints"


def _require(value: object, cls: type[T], field: str) -> T:
    if not isinstance(value, cls):
        raise InvalidArgumentError(field, f"must be a {cls.__name__}, got {type(value).__name__}")
    return value


class Webhooks:
    """Webhook endpoints, event types and subcategories (``client.webhooks``)."""

    def __init__(self, client: Client) -> None:
        self._client = client

    async def _call(self, request: ApiRequest, cls: type[T]) -> T:
        response = await self._client.send(request)
        try:
            return _converter.decode(response.body, cls)
        except ResponseDecodeError as exc:
            raise ResponseDecodeError(
                exc.reason, field=exc.field, body=response.body, method=request.method, path=request.path
            ) from exc.__cause__

    async def create_endpoint(
        self, request: CreateEndpointRequest, *, timeout: float | Timeout | None = None
    ) -> Endpoint:
        """Create an endpoint (``POST /webhooks/v1/endpoints``) and return it.

        Not idempotent: after a timeout, reset or 5xx the endpoint may exist, so such
        failures are not retried (429 is). ``timeout`` overrides the client's for this call.
        """
        _require(request, CreateEndpointRequest, "request")
        return await self._call(
            ApiRequest(
                "POST",
                ENDPOINTS,
                body=_converter.encode(request),
                timeout=None if timeout is None else as_timeout(timeout),
                operation="create_endpoint",
            ),
            Endpoint,
        )
