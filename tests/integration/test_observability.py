"""Hooks, Metrics and OpenTelemetry over real HTTP: a raw aiohttp server that fails twice, then answers."""

from __future__ import annotations

import json

import pytest
from aiohttp import web
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from fullstory_async import Client, Metrics, RetryPolicy
from fullstory_async.otel import OpenTelemetryHooks
from tests.fakes import Serve

API_KEY = "na1.0bs3rv4bilityK3y/ORG9"


@pytest.fixture
async def flaky_server(serve: Serve) -> str:
    """``GET /webhooks/v1/event-types``: 503, then 429 with a fractional Retry-After, then 200."""
    replies = [
        web.Response(status=503, text="<html>upstream down</html>", content_type="text/html"),
        web.json_response({"code": "rate_limited"}, status=429, headers={"Retry-After": "0.25"}),
        web.json_response({"eventTypes": []}, headers={"X-Request-Id": "third"}),
    ]

    async def handler(request: web.Request) -> web.Response:
        assert request.headers["Authorization"] == f"Basic {API_KEY}"
        return replies.pop(0)

    app = web.Application()
    app.router.add_get("/webhooks/v1/event-types", handler)
    return await serve(app)


async def test_a_call_retried_twice_over_http(flaky_server):
    """Metrics and spans agree with what the server did; the key is in no span."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    metrics = Metrics()
    hooks = [metrics, OpenTelemetryHooks(tracer_provider=provider)]
    async with Client(api_key=API_KEY, base_url=flaky_server, retry=RetryPolicy(wait=False), hooks=hooks) as fs:
        assert await fs.webhooks.list_event_types() == []

    assert metrics.attempts == 3
    assert metrics.retries == 2
    assert metrics.rate_limited == 1
    assert metrics.retry_waits == 2
    spans = exporter.get_finished_spans()
    (call,) = [s for s in spans if s.kind is SpanKind.INTERNAL]
    attempts = sorted((s for s in spans if s.kind is SpanKind.CLIENT), key=lambda s: s.start_time or 0)
    port = int(flaky_server.rsplit(":", 1)[1])
    assert [dict(s.attributes or {}) for s in attempts] == [
        {
            "http.request.method": "GET",
            "url.full": f"{flaky_server}/webhooks/v1/event-types",
            "server.address": "127.0.0.1",
            "server.port": port,
            "http.response.status_code": status,
            **extra,
        }
        for status, extra in [
            (503, {"error.type": "503"}),
            (429, {"error.type": "429", "http.request.resend_count": 1}),
            (200, {"http.request.resend_count": 2, "fullstory.request_id": "third"}),
        ]
    ]
    waits = [dict(e.attributes or {}) for e in call.events if e.name == "fullstory.retry_wait"]
    assert [w["fullstory.attempt"] for w in waits] == [1, 2]
    assert waits[1]["fullstory.wait_seconds"] == 0.25  # the server's Retry-After
    dumped = json.dumps([json.loads(s.to_json()) for s in spans])
    assert API_KEY not in dumped
    assert "Basic" not in dumped
