"""Raw responses: the typed operations, returning the HTTP response's status, headers and request id too.

::

    raw = await fs.webhooks.with_raw_response.get_endpoint(endpoint_id)
    print(raw.request_id, raw.headers.get("x-ratelimit-remaining"))
    endpoint = raw.parse()

As in the OpenAI SDK, ``with_raw_response`` mirrors each single-call operation. It composes
with `Client.with_options`: ``fs.with_options(timeout=5).webhooks.with_raw_response``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Concatenate, Generic, ParamSpec, TypeVar

import attrs

from fullstory_async._messages import ApiRequest, ApiResponse
from fullstory_async._webhooks import Webhooks

T = TypeVar("T")
P = ParamSpec("P")


@attrs.frozen
class RawResponse(Generic[T]):
    """A successful call's HTTP response and its typed result (`parse`)."""

    response: ApiResponse
    """The final 2xx response: status, headers (lower-case names), raw body, attempts."""

    _parsed: T = attrs.field(repr=False)

    @property
    def status(self) -> int:
        """The HTTP status code."""
        return self.response.status

    @property
    def headers(self) -> Mapping[str, str]:
        """The response headers, with lower-case names."""
        return self.response.headers

    @property
    def request_id(self) -> str | None:
        """The server's request id, when a response header carries one."""
        return self.response.request_id

    @property
    def attempts(self) -> int:
        """HTTP attempts the call took, retries included."""
        return self.response.attempts

    def parse(self) -> T:
        """Return the typed result the plain method returns (an `Endpoint`, a `Page`, a list...)."""
        return self._parsed


class _Recording(Webhooks):
    """The operations of one raw call: each 2xx response of the client is kept."""

    def __init__(self, webhooks: Webhooks) -> None:
        super().__init__(webhooks._client)
        self.responses: list[ApiResponse] = []

    async def _send(self, request: ApiRequest) -> ApiResponse:
        response = await super()._send(request)
        self.responses.append(response)
        return response


def _raw(
    webhooks: Webhooks, method: Callable[Concatenate[Webhooks, P], Awaitable[T]]
) -> Callable[P, Awaitable[RawResponse[T]]]:
    async def call(*args: P.args, **kwargs: P.kwargs) -> RawResponse[T]:
        recording = _Recording(webhooks)  # one per call: calls in flight at once keep their own responses
        parsed = await method(recording, *args, **kwargs)
        return RawResponse(recording.responses[-1], parsed)  # the last: update_endpoint may read first

    call.__doc__ = method.__doc__
    return call


class RawWebhooks:
    """``client.webhooks.with_raw_response``: each single-call operation, returning a `RawResponse`."""

    def __init__(self, webhooks: Webhooks) -> None:
        self.create_endpoint = _raw(webhooks, Webhooks.create_endpoint)
        self.get_endpoint = _raw(webhooks, Webhooks.get_endpoint)
        self.update_endpoint = _raw(webhooks, Webhooks.update_endpoint)
        self.delete_endpoint = _raw(webhooks, Webhooks.delete_endpoint)
        self.list_endpoints_page = _raw(webhooks, Webhooks.list_endpoints_page)
        self.list_event_types = _raw(webhooks, Webhooks.list_event_types)
        self.list_event_subcategories_page = _raw(webhooks, Webhooks.list_event_subcategories_page)
