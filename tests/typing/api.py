"""The public API used as a user would; type-checked by ``mypy --strict``, never run.

Nothing here executes on import: everything lives in ``async def`` functions.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from datetime import datetime

import aiohttp

import fullstory_async
from fullstory_async import (
    APIConnectionError,
    ApiRequest,
    ApiResponse,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    Client,
    ClientClosedError,
    CreateEndpointRequest,
    Endpoint,
    EventLoopError,
    EventType,
    FullstoryError,
    Handler,
    InvalidArgumentError,
    Middleware,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseDecodeError,
    RetryPolicy,
    ServerError,
    Timeout,
)

log = logging.getLogger("my_service")


async def timing(request: ApiRequest, call_next: Handler) -> ApiResponse:
    """Log how long each call takes (a user middleware)."""
    started = time.perf_counter()
    response = await call_next(request.with_header("X-Trace-Id", "abc"))
    log.info("%s %s -> %d in %.3fs", request.method, request.path, response.status, time.perf_counter() - started)
    return response


class Counter:
    """A middleware written as a class with ``__call__``."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, request: ApiRequest, call_next: Handler) -> ApiResponse:
        self.calls += 1
        return await call_next(request)


async def in_memory(request: ApiRequest) -> ApiResponse:
    """Answer every request in memory, as unit tests do."""
    return ApiResponse(status=200, headers={"Content-Type": "application/json"}, body=b"{}")


def middleware_stack() -> Sequence[Middleware]:
    counter: Middleware = Counter()
    first: Middleware = timing
    return [first, counter]


async def create(fs: Client) -> Endpoint:
    request = CreateEndpointRequest(
        url="https://example.com/fullstory-webhooks",
        event_types=[EventType("note.created"), "segment.created", EventType("recording.event.custom", "CgsiCW8t")],
        secret="w7ixQjN7QEiWRwXUFfXneA",
    )
    endpoint: Endpoint = await fs.webhooks.create_endpoint(request, timeout=10)
    again: Endpoint = await fs.webhooks.create_endpoint(request, timeout=Timeout(total=5, connect=1))
    created: datetime = endpoint.created
    names: list[str] = [t.event_name for t in again.event_types]
    subcategory: str | None = endpoint.event_types[0].subcategory
    enabled: bool = endpoint.enabled
    print(endpoint.id, created.isoformat(), names, subcategory, enabled)
    return endpoint


async def handle_errors(fs: Client) -> str | None:
    try:
        await create(fs)
    except RateLimitError as exc:
        retry_after: float | None = exc.retry_after
        return f"slow down for {retry_after}"
    except (BadRequestError, NotFoundError, PermissionDeniedError, AuthenticationError) as exc:
        status: int = exc.status
        code: str | None = exc.code
        return f"{status} {code}: {exc.message} (request id {exc.request_id})"
    except ServerError as exc:
        body: bytes = exc.body
        return body.decode(errors="replace")
    except APIStatusError as exc:
        return exc.headers.get("location")
    except APITimeoutError as exc:
        timeout: TimeoutError = exc
        return str(timeout)
    except APIConnectionError as exc:
        return f"{exc.method} {exc.path}"
    except ResponseDecodeError as exc:
        return f"{exc.field}: {exc.reason}"
    except ClientClosedError:
        return None
    except InvalidArgumentError as exc:
        bad_input: ValueError = exc
        return f"{exc.field}: {exc.problem} {bad_input}"
    except FullstoryError as exc:
        return repr(exc)
    return None


async def main() -> None:
    retry = RetryPolicy(
        max_attempts=5, operation_timeout=30.0, max_retry_after=20.0, backoff_initial=0.25, backoff_max=4.0
    )
    async with Client(
        api_key="na1.example/ORG",
        timeout=Timeout(total=20, connect=3),
        retry=retry,
        middleware=middleware_stack(),
        max_connections=50,
        max_connections_per_host=10,
    ) as fs:
        print(await handle_errors(fs))
        patient: Client = fs.with_options(timeout=120, retry=RetryPolicy(max_attempts=8), max_response_bytes=1 << 20)
        settings: tuple[str, Timeout, RetryPolicy, int] = (
            patient.base_url,
            patient.timeout,
            patient.retry,
            patient.max_response_bytes,
        )
        print(settings)
        raw = await patient.send(ApiRequest("GET", "/webhooks/v1/event-types", decode=json.loads))
        attempts: int = raw.attempts
        print(raw.data, attempts)
        try:
            await patient.webhooks.get_endpoint("missing")
        except EventLoopError as exc:
            print(exc)
        except FullstoryError as exc:
            failed_after: int = exc.attempts
            print(failed_after)

    async with aiohttp.ClientSession() as session:
        client = Client(base_url="http://127.0.0.1:8080", timeout=2.5, session=session, retry=RetryPolicy(wait=False))
        try:
            response: ApiResponse = await client.send(ApiRequest("GET", "/webhooks/v1/endpoints"))
            print(response.status, response.request_id, response.is_success)
        finally:
            await client.aclose()
        closed: bool = client.closed
        print(closed)

    async with Client("na1.example/ORG", transport=in_memory, retry=RetryPolicy(max_attempts=1)) as fs:
        await create(fs)


async def network_options(ca_file: str) -> None:
    """Use a proxy with credentials, a private CA and a client certificate; or no proxy from the environment."""
    import ssl

    context = ssl.create_default_context(cafile=ca_file)
    context.load_cert_chain("client.pem", "client.key")
    async with Client(proxy="http://user:pass@proxy.corp:3128", ssl=context) as fs:
        await fs.webhooks.get_endpoint("id")
    async with Client(trust_env=False) as fs:
        await fs.webhooks.get_endpoint("id")


async def raw_responses_and_hooks(fs: Client, request: CreateEndpointRequest) -> None:
    """Read headers and request ids of typed calls; observe calls with hooks, metrics and tracing."""
    from fullstory_async import Attempt, Call, CallResult, Hooks, Metrics, RawResponse
    from fullstory_async.otel import OpenTelemetryHooks

    raw: RawResponse[Endpoint] = await fs.webhooks.with_raw_response.create_endpoint(request, timeout=5)
    endpoint: Endpoint = raw.parse()
    request_id: str | None = raw.request_id
    remaining: str | None = raw.headers.get("x-ratelimit-remaining")
    status: int = raw.status
    attempts: int = raw.attempts
    patient = fs.with_options(timeout=120).webhooks.with_raw_response
    deleted: RawResponse[None] = await patient.delete_endpoint(endpoint)
    print(request_id, remaining, status, attempts, deleted.status)

    class Latency(Hooks):
        def on_attempt(self, call: Call, attempt: Attempt) -> None:
            print(call.request.operation, attempt.number, attempt.status, attempt.duration, attempt.retry_wait)

        def on_call_end(self, call: Call, result: CallResult) -> None:
            print(result.attempts, result.error)

    metrics = Metrics()
    async with Client(hooks=[Latency(), metrics, OpenTelemetryHooks()]) as observed:
        await observed.webhooks.list_event_types()
    total: int = metrics.attempts
    print(total, metrics.snapshot())


def a_misspelt_name_is_an_error() -> None:
    """Check the names loaded on first use too: a misspelt one is an error, not an ``object``."""
    print(fullstory_async.Plann)  # type: ignore[attr-defined]
