"""OpenTelemetry adapter: spans and attempt spans from the SDK's in-memory exporter; no secret in any attribute."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from fullstory_async import (
    ApiRequest,
    ApiResponse,
    APITimeoutError,
    BadRequestError,
    Client,
    CreateEndpointRequest,
    EventType,
    Handler,
    NotFoundError,
    RateGovernor,
    RetryPolicy,
    UpdateEndpointRequest,
)
from fullstory_async.otel import OpenTelemetryHooks
from tests.fakes import app_of

from .conftest import API_KEY, SECRET, SEED_ENDPOINT_BODY

PROXY_PASSWORD = "pr0xy-p4ss-in-a-header"


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    yield exporter
    exporter.clear()


@pytest.fixture
def tracing(exporter: InMemorySpanExporter) -> OpenTelemetryHooks:
    """Hooks on a private tracer provider exporting to memory (the global provider is left alone)."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return OpenTelemetryHooks(tracer_provider=provider)


def every_text(spans: tuple[ReadableSpan, ...]) -> list[str]:
    """Every span name, attribute value, event name and event attribute value, as text."""
    texts: list[str] = []
    for span in spans:
        texts.append(span.name)
        texts.extend(f"{k}={v}" for k, v in (span.attributes or {}).items())
        texts.append(str(span.status.description))
        for event in span.events:
            texts.append(event.name)
            texts.extend(f"{k}={v}" for k, v in (event.attributes or {}).items())
    return texts


def split(spans: tuple[ReadableSpan, ...]) -> tuple[ReadableSpan, list[ReadableSpan]]:
    (call,) = [span for span in spans if span.kind is SpanKind.INTERNAL]
    attempts = sorted((span for span in spans if span.kind is SpanKind.CLIENT), key=lambda s: s.start_time or 0)
    return call, attempts


async def test_a_create_that_retried_twice(fake, exporter, tracing):
    """One call span with three CLIENT attempt spans (429, 429, 201), the waits as events, no secret anywhere."""
    now = [50.0]

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    async def with_proxy_header(request: ApiRequest, call_next: Handler) -> ApiResponse:
        return await call_next(request.with_header("Proxy-Authorization", f"Basic {PROXY_PASSWORD}"))

    client, _ = fake(
        (429, {}, {"Retry-After": "1"}),
        (429, {}, {"Retry-After": "2", "X-Request-Id": "req-2"}),
        (201, json.loads(SEED_ENDPOINT_BODY)),
        retry=RetryPolicy(wait=False, jitter=False),
        rate_governor=RateGovernor(clock=lambda: now[0], sleep=sleep, max_rate=0.5, min_rate=0.5),
        hooks=[tracing],
        middleware=[with_proxy_header],
    )
    request = CreateEndpointRequest(url="https://example.com/h", event_types=[EventType("note.created")], secret=SECRET)
    await client.webhooks.create_endpoint(request)

    spans = exporter.get_finished_spans()
    assert len(spans) == 4
    call, attempts = split(spans)
    assert call.name == "fullstory create_endpoint"
    assert call.attributes is not None
    assert call.attributes["fullstory.operation"] == "create_endpoint"
    assert call.attributes["fullstory.attempts"] == 3
    assert call.attributes["http.response.status_code"] == 201
    assert call.status.status_code is StatusCode.UNSET

    url = "https://api.fullstory.com/webhooks/v1/endpoints"
    expected: list[dict[str, Any]] = [
        {"http.response.status_code": 429, "error.type": "429"},
        {
            "http.response.status_code": 429,
            "error.type": "429",
            "http.request.resend_count": 1,
            "fullstory.request_id": "req-2",
        },
        {"http.response.status_code": 201, "http.request.resend_count": 2},
    ]
    for span, extra in zip(attempts, expected, strict=True):
        assert span.name == "POST"
        assert span.parent is not None
        assert span.parent.span_id == call.context.span_id
        assert span.context.trace_id == call.context.trace_id
        assert dict(span.attributes or {}) == {
            "http.request.method": "POST",
            "url.full": url,
            "server.address": "api.fullstory.com",
            "server.port": 443,
            **extra,
        }
        assert call.start_time <= span.start_time <= span.end_time <= call.end_time  # type: ignore[operator]
    assert [span.status.status_code for span in attempts] == [StatusCode.ERROR, StatusCode.ERROR, StatusCode.UNSET]

    retry_waits = [dict(e.attributes or {}) for e in call.events if e.name == "fullstory.retry_wait"]
    assert retry_waits == [
        {"fullstory.attempt": 1, "fullstory.wait_seconds": 1.0},
        {"fullstory.attempt": 2, "fullstory.wait_seconds": 2.0},
    ]
    governor_waits = [[dict(e.attributes or {}) for e in span.events] for span in attempts]
    # paced at the known limit 0.5/s (fake clock): attempts 2 and 3 each held 2 s for their slot
    assert governor_waits == [[], [{"fullstory.wait_seconds": 2.0}], [{"fullstory.wait_seconds": 2.0}]]

    texts = every_text(spans)
    for secret in (API_KEY, SECRET, PROXY_PASSWORD, "Basic"):
        assert not [text for text in texts if secret in text], secret


async def test_a_failed_call_is_an_error_span(fake, exporter, tracing):
    """A call ending in an error sets error.type and ERROR status on its span, with the exception recorded."""
    client, _ = fake((404, {"code": "not_found", "message": "no such endpoint"}), hooks=[tracing])
    with pytest.raises(NotFoundError):
        await client.webhooks.get_endpoint("missing")
    call, (attempt,) = split(exporter.get_finished_spans())
    assert call.status.status_code is StatusCode.ERROR
    assert call.attributes is not None
    assert call.attributes["error.type"] == "404"
    assert call.attributes["fullstory.attempts"] == 1
    assert [event.name for event in call.events] == ["exception"]
    assert attempt.attributes is not None
    assert attempt.attributes["error.type"] == "404"
    assert API_KEY not in " ".join(every_text((call, attempt)))


async def test_the_call_span_is_current_while_the_call_runs(fake, exporter, tracing):
    """Spans started inside the call (by user middleware, or an aiohttp instrumentation) are its children."""
    from opentelemetry import trace

    inner: list[Any] = []

    async def observe(request: ApiRequest, call_next: Handler) -> ApiResponse:
        inner.append(trace.get_current_span().get_span_context())
        return await call_next(request)

    client, _ = fake((200, {"eventTypes": []}), hooks=[tracing], middleware=[observe])
    await client.webhooks.list_event_types()
    call, _ = split(exporter.get_finished_spans())
    assert inner[0].span_id == call.context.span_id
    assert not trace.get_current_span().get_span_context().is_valid  # detached after the call


def test_the_adapter_needs_only_the_api():
    """``fullstory_async.otel`` imports ``opentelemetry`` API modules only, never the SDK."""
    import ast
    import inspect

    import fullstory_async.otel as module

    imported = {
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(ast.parse(inspect.getsource(module)))
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert {name for name in imported if name and name.startswith("opentelemetry")} <= {
        "opentelemetry",
        "opentelemetry.context",
        "opentelemetry.trace",
        "opentelemetry.trace.propagation.tracecontext",  # W3C traceparent, part of opentelemetry-api
        "opentelemetry.util.types",
    }


def test_without_the_extra_the_import_error_says_what_to_install(monkeypatch):
    """Importing the adapter without opentelemetry-api raises ImportError naming the extra to install."""
    import importlib
    import sys

    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    monkeypatch.delitem(sys.modules, "fullstory_async.otel")
    with pytest.raises(ImportError, match=r'pip install "fullstory-async\[otel\]"'):
        importlib.import_module("fullstory_async.otel")


ECHOED_SECRET = 'echo-S3cret-"q"-\\-\u00e9-81'  # a quote, a backslash, non-ASCII: every escaping of it


async def test_a_secret_echoed_by_the_server_reaches_no_error_text_body_or_span(serve, exporter, tracing):
    """A raw server answers 400 repeating the request body: the secret is <redacted> everywhere."""

    async def echo(request: web.Request) -> web.Response:
        if request.method == "GET":  # update_endpoint reads the endpoint first
            return web.Response(body=SEED_ENDPOINT_BODY, content_type="application/json")
        sent = await request.text()
        return web.json_response(
            {"code": f"bad:{sent}", "message": f"invalid request: {sent}", "got": sent}, status=400
        )

    app = app_of(echo)
    async with Client(
        api_key=API_KEY,
        base_url=await serve(app),
        hooks=[tracing],
        retry=RetryPolicy(wait=False),
    ) as client:
        errors = []
        with pytest.raises(BadRequestError) as created:
            await client.webhooks.create_endpoint(
                CreateEndpointRequest(url="https://example.com/h", event_types=["note.created"], secret=ECHOED_SECRET)
            )
        errors.append(created.value)
        with pytest.raises(BadRequestError) as updated:
            await client.webhooks.update_endpoint("ep-1", UpdateEndpointRequest(secret=ECHOED_SECRET))
        errors.append(updated.value)
    escaped = json.dumps(ECHOED_SECRET)[1:-1]
    for error in errors:
        assert "invalid request" in str(error)
        assert "<redacted>" in str(error)
        assert b"<redacted>" in error.body
        for text in (str(error), repr(error), str(error.code), error.body.decode("utf-8"), str(error.args)):
            assert ECHOED_SECRET not in text
            assert escaped not in text
            assert "S3cret" not in text
    texts = every_text(exporter.get_finished_spans())
    assert any("<redacted>" in text for text in texts)
    assert not [text for text in texts if "S3cret" in text]


async def test_an_attempt_the_governor_ended_is_an_event_not_a_client_span(exporter, tracing):
    """A call whose deadline comes before its pacing slot: no HTTP client span (nothing was sent), one event."""

    async def answer(_request: ApiRequest) -> ApiResponse:
        return ApiResponse(200, {}, b"{}")

    fs = Client(API_KEY, transport=answer, rate_governor=RateGovernor(max_rate=1.0), hooks=[tracing])
    await fs.send(ApiRequest("GET", "/x", operation="op"))
    exporter.clear()
    with pytest.raises(APITimeoutError):
        await fs.send(ApiRequest("GET", "/x", operation="op", deadline=time.monotonic() + 0.2))
    await fs.aclose()
    spans = exporter.get_finished_spans()
    assert [span.kind for span in spans] == [SpanKind.INTERNAL]
    assert [event.name for event in spans[0].events] == ["fullstory.not_sent", "exception"]
    assert spans[0].attributes["fullstory.attempts"] == 0


async def test_a_request_id_echoing_the_key_reaches_no_span(serve, exporter, tracing):
    """A 2xx whose X-Request-Id is the API key: the attempt's ``fullstory.request_id`` says <redacted>."""

    async def echo(request: web.Request) -> web.Response:
        return web.json_response({"endpoints": []}, headers={"X-Request-Id": request.headers["Authorization"]})

    async with Client(api_key=API_KEY, base_url=await serve(app_of(echo)), hooks=[tracing]) as client:
        await client.webhooks.list_endpoints_page()
    texts = every_text(exporter.get_finished_spans())
    assert any("<redacted>" in text for text in texts)
    assert not [text for text in texts if API_KEY.split(".", 1)[1][:12] in text]
