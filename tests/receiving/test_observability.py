"""An operator's view of receiving: metrics counted from real deliveries, Prometheus text on ``--metrics-port``, spans.

Deliveries are raw HTTP/1.1 requests written on a socket (not our client), to a real ``receive``
process; the ``/metrics`` page is parsed by a strict reader of the text exposition format.
Spans come from the OpenTelemetry SDK's in-memory exporter.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sqlite3
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from fullstory_async.otel import OpenTelemetryReceivingHooks
from fullstory_async.receiving import (
    InboxWorker,
    ReceivingMetrics,
    WebhookEvent,
    WebhookReceiver,
    open_inbox,
    sign,
    signed_delivery,
)
from fullstory_async.receiving._inbox import migrations
from fullstory_async.testing import ManualClock

from .conftest import ServeReceiver

SECRET = "wh-secret-metrics-9Tb4"
ORG = "o-1A2B3C-na1"

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*)\})? (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_exposition(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Read Prometheus text format strictly: every sample belongs to a family declared by HELP and TYPE before it."""
    assert text.endswith("\n")
    types: dict[str, str] = {}
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in {"counter", "gauge", "histogram"}, line
            assert name not in types, f"family {name} declared twice"
            types[name] = kind
            continue
        match = _SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        name, labels, value = match.groups()
        family = re.sub(r"_(bucket|sum|count)$", "", name) if name not in types else name
        assert family in types, f"{name} has no # TYPE before it"
        key = (name, frozenset(_LABEL.findall(labels or "")))
        assert key not in samples, f"duplicate sample {line!r}"
        samples[key] = float(value)
    for family, kind in types.items():
        if kind == "histogram":
            buckets = sorted(
                (float(dict(labels)["le"]), n) for (name, labels), n in samples.items() if name == f"{family}_bucket"
            )
            assert [n for _, n in buckets] == sorted(n for _, n in buckets), "buckets not cumulative"
            assert buckets[-1] == (float("inf"), samples[(f"{family}_count", frozenset())])
    return samples


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


async def raw_post(port: int, path: str, body: bytes, headers: dict[str, str]) -> int:
    """POST with a hand-written HTTP/1.1 request on a plain socket; return the status."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    if "Content-Length" not in headers:
        head.append(f"Content-Length: {len(body)}")
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), 10)
    writer.close()
    await writer.wait_closed()
    return int(status_line.split()[1])


async def test_receive_serves_metrics_counted_from_raw_deliveries(tmp_path: Path) -> None:
    """Valid, duplicate, forged, unsigned and oversized deliveries are counted; inbox gauges; loopback by default."""
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "fullstory_async", "receive", "--inbox", f"sqlite:///{tmp_path}/i.db"),
        *("--secret-env", "FS_METRICS_SECRET", "--port", "0", "--path", "/hooks"),
        *("--max-body-bytes", "2000", "--metrics-port", "0"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "FS_METRICS_SECRET": SECRET},
    )
    assert process.stdout is not None
    try:
        banner = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        metrics_line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        port = int(banner.split()[2].rsplit(":", 1)[1].split("/")[0])
        assert re.fullmatch(r"metrics on http://127\.0\.0\.1:\d+/metrics\n", metrics_line), metrics_line
        metrics_url = metrics_line.split()[2]

        body, headers = signed_delivery("note.created", {"id": "n-1"}, secret=SECRET, org_id=ORG)
        resigned = {"Fullstory-Signature": sign(body, SECRET, ORG, timestamp=int(headers_ts(headers)) + 5)}
        forged = {"Fullstory-Signature": sign(body, "not-the-secret", ORG)}
        statuses = [
            await raw_post(port, "/hooks", body, headers),
            await raw_post(port, "/hooks", body, resigned),  # the same delivery, signed again later
            await raw_post(port, "/hooks", body, forged),
            await raw_post(port, "/hooks", body, {}),
            await raw_post(port, "/hooks", b"x" * 3000, headers),
        ]
        assert statuses == [202, 202, 401, 401, 413]

        async with aiohttp.ClientSession() as session, session.get(metrics_url) as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
            samples = parse_exposition(await response.text())
    finally:
        process.terminate()
        await asyncio.wait_for(process.communicate(), 30)

    assert value(samples, "fullstory_receiver_deliveries_total", outcome="accepted") == 1
    assert value(samples, "fullstory_receiver_deliveries_total", outcome="duplicate") == 1
    assert value(samples, "fullstory_receiver_deliveries_total", outcome="refused") == 3
    refusals = {dict(labels)["reason"]: v for (name, labels), v in samples.items() if name.endswith("refusals_total")}
    assert {reason: n for reason, n in refusals.items() if n} == {
        "mismatch": 1,
        "missing_header": 1,
        "body_too_large": 1,
    }
    assert value(samples, "fullstory_receiver_commit_seconds_count") == 2  # the stored one and the duplicate's look-up
    assert 0 < value(samples, "fullstory_receiver_commit_seconds_sum") < 30
    assert value(samples, "fullstory_inbox_events", status="pending") == 1
    assert value(samples, "fullstory_inbox_events", status="done") == 0
    assert 0 <= value(samples, "fullstory_inbox_oldest_pending_age_seconds") < 60
    assert value(samples, "fullstory_worker_handler_runs_total", outcome="ok") == 0  # receive runs no handler


def headers_ts(headers: dict[str, str]) -> str:
    return dict(part.split(":", 1) for part in headers["Fullstory-Signature"].split(","))["t"]


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    yield exporter
    exporter.clear()


async def test_spans_and_metrics_of_deliveries_and_handler_runs(
    tmp_path: Path, serve_receiver: ServeReceiver, exporter: InMemorySpanExporter
) -> None:
    """A delivery span (verify, commit) per POST; a run span per handler run, linked to its delivery's span.

    One event fails once then succeeds (a retry), another always fails (a dead letter after 2 runs);
    a plain handler runs inside its run span (the span is current on the worker's thread).
    """
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing = OpenTelemetryReceivingHooks(tracer_provider=provider)
    metrics = ReceivingMetrics()
    clock = ManualClock(1_700_000_000.0)
    seen_spans: dict[str, list[int]] = {}
    lock = threading.Lock()

    def handler(event: WebhookEvent) -> None:
        note = str(event.raw["data"]["id"])
        with lock:
            seen_spans.setdefault(note, []).append(trace.get_current_span().get_span_context().span_id)
            runs = len(seen_spans[note])
        if note == "poison" or (note == "flaky" and runs == 1):
            raise RuntimeError(f"{note} failed")

    async with open_inbox(f"sqlite:///{tmp_path}/i.db", clock=clock) as inbox:
        site = await serve_receiver(SECRET, None, inbox=inbox, hooks=[tracing, metrics])
        for note in ("flaky", "poison"):
            body, headers = signed_delivery("note.created", {"id": note}, secret=SECRET, org_id=ORG)
            assert (await site.post(body, headers))[0] == 202
        assert (await site.post(b"{}", {"Fullstory-Signature": sign(b"{}", "wrong", ORG)}))[0] == 401
        stored = {r.key: r async for r in inbox.export()}

        worker = InboxWorker(inbox, handler, max_attempts=2, base_delay=1, hooks=[tracing, metrics])
        await worker.run_until_idle()
        clock.advance(1.5)
        await worker.run_until_idle()

    spans = exporter.get_finished_spans()
    deliveries = [s for s in spans if s.name == "fullstory webhook delivery"]
    assert len(deliveries) == 3
    assert {s.kind for s in deliveries} == {SpanKind.SERVER}
    refused = [s for s in deliveries if s.attributes["fullstory.delivery.outcome"] == "refused"]
    assert [(s.attributes["http.response.status_code"], s.attributes["fullstory.refusal_reason"]) for s in refused] == [
        (401, "mismatch")
    ]
    for delivery in deliveries:
        children = sorted(s.name for s in spans if s.parent and s.parent.span_id == delivery.context.span_id)
        accepted = delivery.attributes["fullstory.delivery.outcome"] == "accepted"
        assert children == (["commit", "verify"] if accepted else ["verify"])

    runs = [s for s in spans if s.name == "fullstory handle note.created"]
    assert len(runs) == 4  # flaky: error then ok; poison: error, error
    by_delivery = {d.context.span_id: d for d in deliveries}
    for run in runs:
        assert run.kind is SpanKind.CONSUMER
        [link] = run.links
        delivery = by_delivery[link.context.span_id]
        assert link.context.trace_id == delivery.context.trace_id
        key = run.attributes["fullstory.delivery_key"]
        context = delivery.context
        assert stored[key].traceparent == f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"
    outcomes = sorted((r.attributes["fullstory.attempt"], r.attributes["fullstory.run.outcome"]) for r in runs)
    assert outcomes == [(1, "error"), (1, "error"), (2, "error"), (2, "ok")]
    failed = [r for r in runs if r.attributes["fullstory.run.outcome"] == "error"]
    assert {r.status.status_code for r in failed} == {StatusCode.ERROR}
    assert sorted(span_id for ids in seen_spans.values() for span_id in ids) == sorted(r.context.span_id for r in runs)

    assert (metrics.accepted, metrics.duplicates, metrics.refusals["mismatch"]) == (2, 0, 1)
    assert metrics.commits == 2
    assert {k: v for k, v in metrics.handler_runs.items() if v} == {"ok": 1, "error": 3}
    assert (metrics.retries, metrics.dead_letters) == (2, 1)


async def test_without_a_tracing_sdk_nothing_is_stored_and_nothing_breaks(tmp_path: Path) -> None:
    """The API alone (no SDK provider) records nothing: no traceparent is stored, runs have no link."""
    tracing = OpenTelemetryReceivingHooks(tracer_provider=trace.NoOpTracerProvider())
    async with open_inbox(f"sqlite:///{tmp_path}/i.db") as inbox:
        receiver = WebhookReceiver(SECRET, inbox=inbox, hooks=[tracing])
        body, headers = signed_delivery("test", {}, secret=SECRET, org_id=ORG)
        assert await receiver.accept(body, headers["Fullstory-Signature"]) == 202
        [record] = [r async for r in inbox.export()]
        assert record.traceparent is None
        assert await InboxWorker(inbox, lambda event: None, hooks=[tracing]).run_until_idle() == 1


async def schema_1_inbox(inbox_url: str, *rows: tuple[object, ...]) -> None:
    """Create an inbox as an SDK of schema 1 left it (no traceparent column), holding ``rows``.

    A row is (key, org_id, body, received_at, next_attempt_at).
    """
    insert = "INSERT INTO fullstory_inbox (key, org_id, body, received_at, next_attempt_at) VALUES "
    if inbox_url.startswith("sqlite"):
        with contextlib.closing(sqlite3.connect(inbox_url.removeprefix("sqlite:///"))) as conn, conn:
            conn.execute("CREATE TABLE fullstory_inbox_schema (version INTEGER NOT NULL)")
            for statement in migrations(blob="BLOB", real="REAL", serial="INTEGER PRIMARY KEY")[1]:
                conn.execute(statement)
            conn.execute("INSERT INTO fullstory_inbox_schema VALUES (1)")
            conn.executemany(insert + "(?, ?, ?, ?, ?)", rows)
        return
    import asyncpg

    conn = await asyncpg.connect(inbox_url)
    try:
        await conn.execute("CREATE TABLE fullstory_inbox_schema (version INTEGER NOT NULL)")
        for statement in migrations(blob="BYTEA", real="DOUBLE PRECISION", serial="BIGSERIAL PRIMARY KEY")[1]:
            await conn.execute(statement)
        await conn.execute("INSERT INTO fullstory_inbox_schema VALUES (1)")
        if rows:
            await conn.executemany(insert + "($1, $2, $3, $4, $5)", rows)
    finally:
        await conn.close()


async def test_an_inbox_of_schema_1_is_migrated_and_its_events_processed(inbox_url: str) -> None:
    """Schema 2 adds the traceparent column: a schema-1 inbox with a pending event opens, migrates, and is processed."""
    body = signed_delivery("test", {}, secret=SECRET, org_id=ORG)[0]
    await schema_1_inbox(inbox_url, ("k" * 64, ORG, body, 1_700_000_000.0, 1_700_000_000.0))
    metrics = ReceivingMetrics()
    async with open_inbox(inbox_url) as inbox:
        [before] = [r async for r in inbox.export()]
        assert before.traceparent is None
        assert await InboxWorker(inbox, lambda event: None, hooks=[metrics]).run_until_idle() == 1
        assert (await inbox.stats()).done == 1
    assert metrics.handler_runs["ok"] == 1


async def test_dead_letters_without_a_handler_run_are_counted(tmp_path: Path) -> None:
    """A stored body that is no event is buried without calling the handler: outcome not_run, one dead letter."""
    metrics = ReceivingMetrics()
    called: list[WebhookEvent] = []
    async with open_inbox(f"sqlite:///{tmp_path}/i.db") as inbox:
        await inbox.put(b"not an event", org_id=ORG)
        await InboxWorker(inbox, called.append, hooks=[metrics]).run_until_idle()
    assert called == []
    assert ({k: v for k, v in metrics.handler_runs.items() if v}, metrics.dead_letters) == ({"not_run": 1}, 1)
    text = metrics.prometheus()
    assert 'fullstory_worker_handler_runs_total{outcome="not_run"} 1\n' in text
    assert "fullstory_worker_dead_letters_total 1\n" in text
    assert "fullstory_inbox_events" not in text  # no stats given: the gauges are left out
