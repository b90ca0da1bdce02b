"""InboxWorker: typed events, retries with backoff, timeouts, dead letters, drain, several workers on one inbox."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import Counter
from typing import Any

import pytest

from fullstory_async import InvalidArgumentError
from fullstory_async.receiving import (
    Inbox,
    InboxError,
    InboxRecord,
    InboxWorker,
    NoteCreatedData,
    WebhookEvent,
    open_inbox,
    signed_delivery,
)
from fullstory_async.testing import ManualClock

ORG = "o-1A2B3C-na1"


async def put_notes(inbox: Inbox, count: int) -> None:
    for n in range(count):
        body = signed_delivery("note.created", {"id": f"n-{n}", "text": "hi"}, secret="s", org_id=ORG)[0]
        await inbox.put(body, org_id=ORG, signed_at=1_700_000_000.0)


async def test_handler_gets_typed_events_and_completes_them(inbox_url: str) -> None:
    """A coroutine handler sees each stored event as a typed WebhookEvent; they end done."""
    seen: list[WebhookEvent] = []

    async def handler(event: WebhookEvent) -> None:
        seen.append(event)

    async with open_inbox(inbox_url) as inbox:
        await put_notes(inbox, 3)
        assert await InboxWorker(inbox, handler, concurrency=2).run_until_idle() == 3
        stats = await inbox.stats()
        records = [r async for r in inbox.export()]
    assert (stats.pending, stats.done) == (0, 3)
    assert sorted(e.data.id for e in seen if isinstance(e.data, NoteCreatedData)) == ["n-0", "n-1", "n-2"]
    assert {(e.org_id, e.signed_at.timestamp() if e.signed_at else None) for e in seen} == {(ORG, 1_700_000_000.0)}
    assert sorted(e.delivery_key for e in seen) == sorted([r.key for r in records])  # type: ignore[type-var]


async def test_plain_function_handler_runs_off_the_loop(tmp_path: object) -> None:
    """A plain function runs in a worker thread, never on the event loop's thread."""
    threads: list[int] = []
    async with open_inbox(f"sqlite:///{tmp_path}/i.db") as inbox:
        await put_notes(inbox, 2)
        await InboxWorker(inbox, lambda event: threads.append(threading.get_ident())).run_until_idle()
    assert len(threads) == 2
    assert threading.get_ident() not in threads


async def test_failures_are_retried_with_backoff_then_dead_lettered(tmp_path: object) -> None:
    """Attempts wait 1, 2, 4 s between them; after max_attempts the event is dead with its last error."""
    clock = ManualClock(1_700_000_000.0)
    calls: list[float] = []

    async def failing(event: WebhookEvent) -> None:
        calls.append(clock())
        raise RuntimeError(f"downstream refused #{len(calls)}")

    async with open_inbox(f"sqlite:///{tmp_path}/i.db", clock=clock) as inbox:
        await put_notes(inbox, 1)
        worker = InboxWorker(inbox, failing, max_attempts=4, base_delay=1.0)
        for n, wait in enumerate((0.0, 1.0, 2.0, 4.0)):
            if wait:
                clock.advance(wait - 0.001)
                assert await worker.run_until_idle() == 0
                assert len(calls) == n  # not due yet: nothing ran
                clock.advance(0.001)
            await worker.run_until_idle()
            assert len(calls) == n + 1
        assert [c - calls[0] for c in calls] == [0.0, 1.0, 3.0, 7.0]
        [record] = [r async for r in inbox.export()]
        stats = await inbox.stats()
    assert (record.status, record.attempts, record.last_error) == ("dead", 4, "RuntimeError: downstream refused #4")
    assert (stats.pending, stats.dead) == (0, 1)


async def test_a_handler_outliving_its_timeout_is_retried(tmp_path: object) -> None:
    """An attempt past handler_timeout counts as a failure ("timed out") and the event is retried."""
    attempts: list[int] = []

    async def slow_once(event: WebhookEvent) -> None:
        attempts.append(1)
        if len(attempts) == 1:
            await asyncio.Event().wait()

    async with open_inbox(f"sqlite:///{tmp_path}/i.db") as inbox:
        await put_notes(inbox, 1)
        worker = InboxWorker(inbox, slow_once, handler_timeout=0.05, base_delay=0)
        assert await worker.run_until_idle() == 1
        [record] = [r async for r in inbox.export()]
    assert len(attempts) == 2
    assert (record.status, record.attempts) == ("done", 2)


async def test_stop_drains_the_handlers_in_progress(tmp_path: object) -> None:
    """After stop(), run() lets the running handler finish, claims nothing more, and returns."""
    started = asyncio.Event()
    release = asyncio.Event()
    handled: list[str] = []

    async def handler(event: WebhookEvent) -> None:
        started.set()
        await release.wait()
        handled.append(event.event_name)

    async with open_inbox(f"sqlite:///{tmp_path}/i.db") as inbox:
        await put_notes(inbox, 3)
        worker = InboxWorker(inbox, handler, concurrency=1, poll_interval=0.01)
        running = asyncio.create_task(worker.run())
        await started.wait()
        await worker.stop()
        await asyncio.sleep(0)
        assert not running.done()
        release.set()
        await running
        stats = await inbox.stats()
    assert handled == ["note.created"]
    assert (stats.done, stats.pending) == (1, 2)


async def test_a_handler_cut_off_by_the_drain_timeout_is_due_again_at_once(tmp_path: object) -> None:
    """A handler still running after drain_timeout is cancelled and its event is pending and due."""
    started = asyncio.Event()

    async def stuck(event: WebhookEvent) -> None:
        started.set()
        await asyncio.Event().wait()

    async with open_inbox(f"sqlite:///{tmp_path}/i.db") as inbox:
        await put_notes(inbox, 1)
        worker = InboxWorker(inbox, stuck, drain_timeout=0, poll_interval=0.01)
        running = asyncio.create_task(worker.run())
        await started.wait()
        await worker.stop()
        await running
        [record] = await inbox.claim(1, lease=60)
    assert record.last_error == "cancelled at shutdown"


async def test_workers_sharing_a_postgres_inbox_handle_each_event_once(postgres_url: str) -> None:
    """Three workers (own connection pools, as separate processes would have) split 120 events: each once."""
    counts: Counter[str] = Counter()

    async def handler(event: WebhookEvent) -> None:
        assert isinstance(event.data, NoteCreatedData)
        counts[str(event.data.id)] += 1
        await asyncio.sleep(0)

    async with open_inbox(postgres_url) as inbox:
        await put_notes(inbox, 120)

    async def one_worker() -> int:
        async with open_inbox(postgres_url) as own:
            return await InboxWorker(own, handler, concurrency=4).run_until_idle()

    handled = await asyncio.gather(*(one_worker() for _ in range(3)))
    assert sum(handled) == 120
    assert len(counts) == 120
    assert set(counts.values()) == {1}


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"concurrency": 0}, "concurrency"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"handler_timeout": 0}, "handler_timeout"),
        ({"base_delay": -1}, "base_delay"),
        ({"lease": 0}, "lease"),
        ({"lease": 30, "handler_timeout": 30}, "lease"),
        ({"lease": 10}, "lease"),
    ],
)
async def test_bad_worker_settings_are_refused(tmp_path: object, kwargs: dict[str, float], field: str) -> None:
    """Invalid settings raise InvalidArgumentError naming the setting."""
    async with open_inbox(f"sqlite:///{tmp_path}/i.db") as inbox:
        with pytest.raises(InvalidArgumentError) as info:
            InboxWorker(inbox, print, **kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


async def test_a_running_worker_wakes_when_this_process_stores_an_event(tmp_path: object) -> None:
    """With a poll interval of an hour, an event put through this inbox is handled at once."""
    handled = asyncio.Event()

    async def handler(event: WebhookEvent) -> None:
        handled.set()

    async with open_inbox(f"sqlite:///{tmp_path}/i.db") as inbox:
        worker = InboxWorker(inbox, handler, poll_interval=3600)
        running = asyncio.create_task(worker.run())
        await asyncio.sleep(0)
        await put_notes(inbox, 1)
        await asyncio.wait_for(handled.wait(), 10)
        await worker.stop()
        await running


async def test_an_unreachable_inbox_neither_kills_the_worker_nor_loses_the_event(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failing claim is retried after the poll interval; a failing complete leaves the event to come back."""
    clock = ManualClock(1_700_000_000.0)
    calls: list[str] = []
    handled = asyncio.Event()

    async def handler(event: WebhookEvent) -> None:
        calls.append(event.event_name)
        handled.set()

    async with open_inbox(f"sqlite:///{tmp_path}/i.db", clock=clock) as inbox:
        await put_notes(inbox, 1)
        real_claim, real_complete = inbox.claim, inbox.complete
        failures = {"claim": 1, "complete": 1}

        async def claim(limit: int, *, lease: float, max_attempts: int | None = None) -> list[InboxRecord]:
            if failures["claim"]:
                failures["claim"] -= 1
                raise InboxError("database is locked")
            return await real_claim(limit, lease=lease, max_attempts=max_attempts)

        async def complete(record: InboxRecord, **history: Any) -> bool:
            if failures["complete"]:
                failures["complete"] -= 1
                raise InboxError("disk I/O error")
            return await real_complete(record, **history)

        monkeypatch.setattr(inbox, "claim", claim)
        monkeypatch.setattr(inbox, "complete", complete)
        worker = InboxWorker(inbox, handler, poll_interval=0.01, lease=60)
        running = asyncio.create_task(worker.run())
        await handled.wait()  # the claim failed once, then worked
        await worker.stop()
        await running
        assert (await inbox.stats()).pending == 1  # complete failed: not done, not lost
        clock.advance(61)  # the lease ends
        assert await worker.run_until_idle() == 1
        assert (await inbox.stats()).done == 1
    assert calls == ["note.created", "note.created"]


async def test_stop_before_run_started_still_stops_it(tmp_path: object) -> None:
    """A worker stopped before its run() task got to start returns at once instead of running forever."""
    async with open_inbox(f"sqlite:///{tmp_path}/i.db") as inbox:
        worker = InboxWorker(inbox, print, poll_interval=3600)
        running = asyncio.create_task(worker.run())
        await worker.stop()
        await asyncio.wait_for(running, 10)


async def test_a_handler_raising_cancelled_error_itself_is_an_ordinary_failure(tmp_path: object) -> None:
    """CancelledError from the handler (the worker not cancelled): backoff, attempts, then a dead letter."""
    clock = ManualClock(1_700_000_000.0)
    calls: list[float] = []

    async def handler(event: WebhookEvent) -> None:
        calls.append(clock())
        raise asyncio.CancelledError  # e.g. awaiting a future someone else cancelled

    async with open_inbox(f"sqlite:///{tmp_path}/i.db", clock=clock) as inbox:
        await put_notes(inbox, 1)
        worker = InboxWorker(inbox, handler, max_attempts=3, base_delay=60)
        for wait in (0, 60, 120):
            clock.advance(wait)
            assert await asyncio.wait_for(worker.run_until_idle(), 10) == 0
        assert await worker.run_until_idle() == 0
        [record] = [r async for r in inbox.export()]
    assert [c - calls[0] for c in calls] == [0, 60, 180]
    assert (record.status, record.attempts) == ("dead", 3)
    assert record.last_error is not None
    assert record.last_error.startswith("CancelledError: raised by the handler")


async def test_a_stale_worker_cannot_undo_what_the_new_claim_holder_did(
    inbox_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A's lease runs out mid-handler, B completes the event; A's late failure is dropped (logged), not buried."""
    clock = ManualClock(1_700_000_000.0)
    calls: list[str] = []
    async with open_inbox(inbox_url, clock=clock) as inbox:
        await put_notes(inbox, 1)
        in_a, b_done = asyncio.Event(), asyncio.Event()

        async def slow_failing(event: WebhookEvent) -> None:
            calls.append("A")
            in_a.set()
            await b_done.wait()
            raise RuntimeError("A failed late")

        async def fine(event: WebhookEvent) -> None:
            calls.append("B")

        a = InboxWorker(inbox, slow_failing, max_attempts=1, handler_timeout=10, lease=60)
        b = InboxWorker(inbox, fine, handler_timeout=10, lease=60)
        running_a = asyncio.create_task(a.run_until_idle())
        await in_a.wait()
        clock.advance(61)  # A's lease ran out: B takes the event and completes it
        assert await b.run_until_idle() == 1
        b_done.set()
        with caplog.at_level(logging.INFO, logger="fullstory_async.receiving"):
            assert await running_a == 0
        [record] = [r async for r in inbox.export()]
        assert (record.status, record.last_error) == ("done", None)
        assert await inbox.requeue_dead() == 0
        assert await b.run_until_idle() == 0
    assert calls == ["A", "B"]
    assert any("outcome 'dead' dropped" in r.getMessage() and r.levelno == logging.INFO for r in caplog.records)
