"""Adversarial review of handler isolation and receiving observability (issue 18, items 3 and 6).

Each test is a way an attacker or an operator broke the first version: a storm of scrapes on
``/metrics``, the metrics port off loopback, a schema migration queued behind another
session's lock on a real PostgreSQL, a tracing hook giving the inbox something that is no
``traceparent``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from fullstory_async.cli import _receiving
from fullstory_async.receiving import (
    Delivery,
    InboxError,
    InboxStats,
    InboxWorker,
    ReceivingHooks,
    ReceivingMetrics,
    WebhookEvent,
    WebhookReceiver,
    _postgres,
    open_inbox,
    signed_delivery,
)
from fullstory_async.receiving._inbox import SCHEMA_VERSION
from fullstory_async.testing import ManualClock

from .test_observability import parse_exposition, schema_1_inbox


async def raw_get(port: int, path: str, headers: dict[str, str | bytes] | None = None) -> tuple[int, bytes]:
    """GET with a hand-written HTTP/1.1 request on a plain socket (header values as given); return status and body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = [f"GET {path} HTTP/1.1".encode(), f"Host: 127.0.0.1:{port}".encode(), b"Connection: close"]
    head += [k.encode() + b": " + (v if isinstance(v, bytes) else v.encode()) for k, v in (headers or {}).items()]
    writer.write(b"\r\n".join(head) + b"\r\n\r\n")
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    await writer.wait_closed()
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


async def test_a_storm_of_scrapes_costs_the_inbox_one_count_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """40 scrapes at once while the inbox is slow to count: one `stats` call, shared; every scrape answered.

    The first version started one count per scrape and left each running after its scrape gave
    up: on a SQLite inbox of a million events (0.3 s a count, on the writer thread) 30 scrapes
    held a valid delivery's commit for 9 s; on PostgreSQL 60 scrapes took the pool from the
    deliveries for 2 s and no scrape got its gauges.
    """
    monkeypatch.setattr(_receiving, "_STATS_TIMEOUT", 0.2)
    async with open_inbox(f"sqlite:///{tmp_path}/i.db") as inbox:
        counted = inbox.stats
        calls = 0
        gate = asyncio.Event()

        async def slow_stats() -> InboxStats:
            nonlocal calls
            calls += 1
            await gate.wait()
            return await counted()

        monkeypatch.setattr(inbox, "stats", slow_stats)
        runner = web.AppRunner(_receiving._metrics_app(ReceivingMetrics(), inbox))
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = runner.addresses[0][1]
            answers = await asyncio.gather(*(raw_get(port, "/metrics") for _ in range(40)))
            assert {status for status, _ in answers} == {200}
            assert all(b"fullstory_inbox_events" not in body for _, body in answers)  # the count is late
            assert calls == 1  # the first version: 40, each left running on the database
            gate.set()
            status, body = await raw_get(port, "/metrics")
            assert status == 200
            samples = parse_exposition(body.decode())
            assert samples[("fullstory_inbox_events", frozenset({("status", "pending")}))] == 0
        finally:
            await runner.cleanup()


def _receive_args(tmp_path: Path, *extra: str) -> list[str]:
    return [
        *(sys.executable, "-m", "fullstory_async", "receive", "--inbox", f"sqlite:///{tmp_path}/i.db"),
        *("--secret-env", "FS_REVIEW_SECRET", "--port", "0", "--metrics-port", "0", *extra),
    ]


TOKEN = "metrics-token-Zq81xv"
SECRET = "wh-secret-review-3"
ORG = "o-1A2B3C-na1"
ENV: dict[str, Any] = {**os.environ, "FS_REVIEW_SECRET": SECRET, "FS_REVIEW_TOKEN": TOKEN}


async def run_to_end(args: list[str]) -> tuple[int | None, bytes, bytes]:
    """Run a command expected to exit at once; one still running after 30 s is stopped (and the test fails)."""
    process = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=ENV
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return process.returncode, out, err


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "metrics.example"])
async def test_metrics_off_loopback_without_a_token_is_refused(tmp_path: Path, host: str) -> None:
    """`--metrics-host` off loopback without `--metrics-token-env`: exit 2 naming both, nothing bound or created."""
    code, out, err = await run_to_end(_receive_args(tmp_path, "--metrics-host", host))
    assert code == 2, err
    assert out == b""
    assert b"--metrics-host" in err
    assert b"--metrics-token-env" in err
    assert not (tmp_path / "i.db").exists()


async def test_a_metrics_token_is_required_of_every_scrape_and_never_shown(tmp_path: Path) -> None:
    """With `--metrics-token-env`, a scrape without ``Authorization: Bearer <token>`` (or with another) gets 401."""
    process = await asyncio.create_subprocess_exec(
        *_receive_args(tmp_path, "--metrics-token-env", "FS_REVIEW_TOKEN"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=ENV,
    )
    assert process.stdout is not None
    try:
        banner = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        metrics_line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        assert banner.startswith("receiving on ")
        port = int(metrics_line.split()[2].rsplit(":", 1)[1].split("/")[0])
        refused = [
            await raw_get(port, "/metrics"),
            await raw_get(port, "/metrics", {"Authorization": "Bearer not-the-token"}),
            await raw_get(port, "/metrics", {"Authorization": f"Basic {TOKEN}"}),
            await raw_get(port, "/metrics", {"Authorization": f"Bearer {TOKEN}x"}),
            await raw_get(port, "/metrics", {"Authorization": b"Bearer \xff\xfe"}),  # not UTF-8: was a 500
        ]
        assert {status for status, _ in refused} == {401}
        assert all(b"fullstory_" not in body for _, body in refused)
        status, body = await raw_get(port, "/metrics", {"Authorization": f"Bearer {TOKEN}"})
        assert status == 200
        assert ("fullstory_inbox_events", frozenset({("status", "pending")})) in parse_exposition(body.decode())
    finally:
        process.terminate()
        out, err = await asyncio.wait_for(process.communicate(), 30)
    assert TOKEN.encode() not in banner.encode() + metrics_line.encode() + out + err


async def test_an_empty_metrics_token_is_a_usage_error(tmp_path: Path) -> None:
    """A token variable that is unset or empty would let every scrape in: exit 2 naming the variable."""
    code, _out, err = await run_to_end(_receive_args(tmp_path, "--metrics-token-env", "FS_REVIEW_UNSET"))
    assert code == 2, err
    assert b"FS_REVIEW_UNSET" in err


async def test_a_migration_behind_another_sessions_lock_gives_up_without_stalling_the_receivers(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rolling upgrade while a session (an operator's psql, idle in transaction) holds a lock on the inbox.

    ``ALTER TABLE`` waits for that lock, and while it waits every later statement on the table
    (the old instances' ``INSERT`` of each delivery) queues behind it: the first version's
    ``open_inbox`` waited forever and so did every delivery. Now the migration waits at most its
    lock timeout, then fails naming the cause, nothing changed, and the receivers went on.
    """
    import asyncpg

    monkeypatch.setattr(_postgres, "_MIGRATION_LOCK_TIMEOUT", 0.3, raising=False)
    await schema_1_inbox(postgres_url)
    holder = await asyncpg.connect(postgres_url)
    old_receiver = await asyncpg.connect(postgres_url)
    try:
        await holder.execute("BEGIN; SELECT count(*) FROM fullstory_inbox")  # left open

        async def open_new() -> None:
            async with open_inbox(postgres_url):
                pass

        upgrade = asyncio.create_task(open_new())
        insert = (
            "INSERT INTO fullstory_inbox (key, org_id, body, received_at, next_attempt_at) VALUES ($1, 'o', 'x', 1, 1)"
        )
        await asyncio.wait_for(old_receiver.execute(insert, "a"), 2)  # waited the lock timeout, not the open's bound
        with pytest.raises(InboxError, match="lock") as failed:
            await asyncio.wait_for(upgrade, 10)
        assert f"schema version {SCHEMA_VERSION}" in str(failed.value)
        assert await old_receiver.fetchval("SELECT max(version) FROM fullstory_inbox_schema") == 1
        await asyncio.wait_for(old_receiver.execute(insert, "b"), 1)
        await holder.execute("ROLLBACK")
        async with open_inbox(postgres_url) as inbox:  # the lock gone, it migrates
            assert {r.key: r.traceparent async for r in inbox.export()} == {"a": None, "b": None}
    finally:
        await holder.close()
        await old_receiver.close()


async def test_instances_starting_together_migrate_a_schema_1_inbox_once(postgres_url: str) -> None:
    """Six instances open a schema-1 inbox at once: each opens (the advisory lock's wait is not the lock timeout)."""
    await schema_1_inbox(postgres_url)

    async def open_one() -> None:
        async with open_inbox(postgres_url):
            pass

    await asyncio.wait_for(asyncio.gather(*(open_one() for _ in range(6))), 30)
    import asyncpg

    conn = await asyncpg.connect(postgres_url)
    try:
        versions = await conn.fetch("SELECT version FROM fullstory_inbox_schema ORDER BY 1")
        assert [row["version"] for row in versions] == list(range(1, SCHEMA_VERSION + 1))
    finally:
        await conn.close()


class _Stamp(ReceivingHooks):
    """A tracing hook with a bug: it sets `Delivery.traceparent` to something else than a W3C traceparent."""

    def __init__(self, value: object) -> None:
        self.value = value

    def on_delivery_start(self, delivery: Delivery) -> None:
        delivery.traceparent = self.value  # type: ignore[assignment]


VALID_TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.mark.parametrize(
    "value",
    [12345, "x" * 100_000, "00-zz", VALID_TRACEPARENT + "\n", VALID_TRACEPARENT],
    ids=["int", "100k-characters", "malformed", "newline", "valid"],
)
async def test_a_hooks_traceparent_is_stored_only_when_it_is_one(
    inbox_url: str, value: object, caplog: pytest.LogCaptureFixture
) -> None:
    """Only a W3C traceparent set by a hook is stored; anything else is dropped with a WARNING, the delivery stored.

    What a hook sets is data it gives the inbox: on PostgreSQL a non-string made every delivery
    503 forever, and on both engines any string (a megabyte) was stored with every event.
    """
    async with open_inbox(inbox_url) as inbox:
        receiver = WebhookReceiver(SECRET, inbox=inbox, hooks=[_Stamp(value)])
        body, headers = signed_delivery("note.created", {"id": "n"}, secret=SECRET, org_id=ORG)
        assert await receiver.accept(body, headers["Fullstory-Signature"]) == 202
        [record] = [r async for r in inbox.export()]
    valid = value == VALID_TRACEPARENT
    assert record.traceparent == (value if valid else None)
    warned = [r.getMessage() for r in caplog.records if "not a W3C traceparent" in r.getMessage()]
    assert len(warned) == (0 if valid else 1)
    assert all(len(message) < 200 for message in warned)  # the value itself is not logged


async def test_a_release_after_the_lease_ran_out_never_uncounts_the_next_claim(inbox_url: str) -> None:
    """Two workers on one inbox: A's claim runs out, B claims; A's late release changes nothing (B's attempt stands).

    A claim is identified by its lease end, so a release (like an outcome) applies only to the
    claim it came from: the late release neither gives B's claim back nor uncounts B's attempt.
    """
    clock = ManualClock(1_700_000_000.0)
    async with open_inbox(inbox_url, clock=clock) as a, open_inbox(inbox_url, clock=clock) as b:
        body = signed_delivery("note.created", {"id": "raced"}, secret=SECRET, org_id=ORG)[0]
        await a.put(body, org_id=ORG)
        [by_a] = await a.claim(1, lease=5, max_attempts=3)
        assert await b.claim(1, lease=5, max_attempts=3) == []  # A holds it
        clock.advance(5)  # A's lease ends before A gives the event back
        [by_b] = await b.claim(1, lease=5, max_attempts=3)
        assert (by_a.attempts, by_b.attempts) == (1, 2)
        assert not await a.release(by_a)
        assert not await a.complete(by_a)
        [now] = [r async for r in b.export()]
        assert (now.status, now.attempts, now.next_attempt_at) == ("pending", 2, by_b.next_attempt_at)
        assert await b.release(by_b)  # B's own release uncounts B's claim only
        [after] = [r async for r in b.export()]
        assert (after.status, after.attempts) == ("pending", 1)


_HUNG_FOREVER = """
import asyncio, sys, threading
from fullstory_async.receiving import InboxWorker, open_inbox, signed_delivery

def handler(event):  # never returns: its threads can only be abandoned
    threading.Event().wait()

async def main(url, concurrency):
    async with open_inbox(url) as inbox:
        for n in range(20):
            body = signed_delivery("note.created", {"id": n}, secret="s", org_id="o-1A2B3C-na1")[0]
            await inbox.put(body, org_id="o-1A2B3C-na1")
        worker = InboxWorker(inbox, handler, concurrency=concurrency, handler_timeout=0.1, lease=5,
                             base_delay=0.01, poll_interval=0.05, drain_timeout=0.1)
        running = asyncio.create_task(worker.run())
        for _ in range(1000):  # bounded: about 2 * concurrency timeouts of 0.1 s
            if not worker.healthy:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)  # a few more poll intervals: an unhealthy worker starts nothing more
        handlers = sum(t.name == "fullstory-inbox-handler" for t in threading.enumerate())
        await worker.stop()
        await running
        stats = await inbox.stats()
        print(worker.healthy, handlers, stats.pending, stats.dead, flush=True)

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


@pytest.mark.parametrize("concurrency", [1, 3])
async def test_a_handler_hung_forever_on_every_event_leaves_threads_bounded_and_the_process_exits(
    tmp_path: Path, concurrency: int
) -> None:
    """Every call hangs forever: at most 2 x concurrency threads, nothing failed it never ran, and the process exits.

    The stuck threads cannot be joined; they are daemon threads, so neither `stop` nor the
    interpreter's exit waits for them.
    """
    script = [sys.executable, "-c", _HUNG_FOREVER, f"sqlite:///{tmp_path}/i.db", str(concurrency)]
    code, out, err = await run_to_end(script)
    assert code == 0, err
    healthy, threads, pending, dead = out.decode().split()
    assert (healthy, int(threads), int(pending), int(dead)) == ("False", 2 * concurrency, 20, 0)


async def test_a_hung_call_that_returns_late_records_no_second_outcome(tmp_path: Path) -> None:
    """A plain handler outlives its timeout, then returns: the timeout's retry stands, nothing else is recorded.

    Its thread goes back to the pool (the worker is healthy again) and the next run of the event
    is attempt 2; the metrics count two runs, one per outcome.
    """
    gate = threading.Event()
    returned = threading.Event()
    calls: list[int] = []

    def handler(event: WebhookEvent) -> None:
        calls.append(event.attempt)
        if len(calls) == 1:
            gate.wait(30)
            returned.set()

    metrics = ReceivingMetrics()
    clock = ManualClock(1_700_000_000.0)
    async with open_inbox(f"sqlite:///{tmp_path}/i.db", clock=clock) as inbox:
        await inbox.put(signed_delivery("note.created", {"id": "late"}, secret=SECRET, org_id=ORG)[0], org_id=ORG)
        worker = InboxWorker(inbox, handler, concurrency=1, handler_timeout=0.2, lease=5, base_delay=1, hooks=[metrics])
        try:
            assert await worker.run_until_idle() == 0
        finally:
            gate.set()
        assert await asyncio.to_thread(returned.wait, 30)
        for _ in range(1000):  # the thread settles its late result on the loop, then leaves
            if worker._threads.stuck == 0:
                break
            await asyncio.sleep(0.005)
        assert worker.healthy
        [record] = [r async for r in inbox.export()]
        assert (record.status, record.attempts, record.last_error) == ("pending", 1, "timed out after 0.2 s")
        clock.advance(1)
        assert await worker.run_until_idle() == 1
        [record] = [r async for r in inbox.export()]
    assert (record.status, record.attempts, calls) == ("done", 2, [1, 2])
    assert {k: v for k, v in metrics.handler_runs.items() if v} == {"timeout": 1, "ok": 1}
    assert (metrics.retries, metrics.dead_letters) == (1, 0)


async def test_the_worker_hands_each_run_its_attempt_number(inbox_url: str) -> None:
    """`WebhookEvent.attempt` (what a forwarding handler re-sends) is the inbox's count: 1, then 2 after a failure.

    The worker of issue 18's item 3 never passed it (``attempt=None``); the forward merge set it too.
    """
    seen: list[int | None] = []

    async def handler(event: WebhookEvent) -> None:
        seen.append(event.attempt)
        if len(seen) == 1:
            raise RuntimeError("first run fails")

    clock = ManualClock(1_700_000_000.0)
    async with open_inbox(inbox_url, clock=clock) as inbox:
        await inbox.put(signed_delivery("note.created", {"id": "a"}, secret=SECRET, org_id=ORG)[0], org_id=ORG)
        worker = InboxWorker(inbox, handler, base_delay=1)
        assert await worker.run_until_idle() == 0
        clock.advance(1)
        assert await worker.run_until_idle() == 1
    assert seen == [1, 2]


async def test_one_event_that_hangs_every_run_costs_one_thread_not_the_worker(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A poison event on which the handler hangs for good, among healthy ones (concurrency 1).

    The first version ran each retry of it on a new thread: its 2nd attempt left 2 threads stuck,
    more than the 1 replacement, so the worker went unhealthy and stopped claiming every other
    event for good. An event whose previous run is still stuck on this worker is not run again
    there: the attempt fails at once ("still running"), so the event ends dead after its
    attempts, holding one thread, and the worker goes on.
    """
    gate = threading.Event()
    poison_calls = 0

    def handler(event: WebhookEvent) -> None:
        nonlocal poison_calls
        if event.raw["data"]["id"] == "poison":
            poison_calls += 1
            gate.wait(30)

    clock = ManualClock(1_700_000_000.0)
    try:
        async with open_inbox(f"sqlite:///{tmp_path}/i.db", clock=clock) as inbox:

            async def put(note: str) -> None:
                body = signed_delivery("note.created", {"id": note}, secret=SECRET, org_id=ORG)[0]
                await inbox.put(body, org_id=ORG)

            await put("poison")
            for n in range(3):
                await put(f"ok-{n}")
            worker = InboxWorker(
                inbox, handler, concurrency=1, handler_timeout=0.2, lease=5, base_delay=1, max_attempts=3
            )
            assert await worker.run_until_idle() == 3
            for step in range(2):  # the poison event's 2nd and 3rd attempts fall due, with new healthy events
                clock.advance(10)
                for n in range(3):
                    await put(f"ok-{step}-{n}")
                assert await worker.run_until_idle() == 3
                assert worker.healthy
            records = {r.body: r async for r in inbox.export()}
    finally:
        gate.set()
    [poison] = [r for r in records.values() if b'"poison"' in r.body]
    assert poison_calls == 1
    assert (poison.status, poison.attempts) == ("dead", 3)
    assert "still running" in (poison.last_error or "")
    assert sorted(r.status for r in records.values() if r is not poison) == ["done"] * 9
    assert not [r for r in caplog.records if "unhealthy" in r.getMessage()]
