"""Handlers cannot starve each other: a hung plain-function handler costs its own event a timeout, nothing else.

The worker runs plain functions on its own threads (never asyncio's shared default executor),
replaces a thread stuck in a timed-out call up to ``concurrency`` times, then reports itself
unhealthy (one ERROR) and stops claiming instead of failing events it never ran. Attempts count
runs in which the handler was called, a run whose process was killed included.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from fullstory_async.receiving import Inbox, InboxWorker, WebhookEvent, open_inbox, signed_delivery
from fullstory_async.receiving._inbox import NEVER_FINISHED
from fullstory_async.testing import ManualClock

ORG = "o-1A2B3C-na1"


async def put_notes(inbox: Inbox, ids: list[str]) -> None:
    for note_id in ids:
        body = signed_delivery("note.created", {"id": note_id, "text": "hi"}, secret="s", org_id=ORG)[0]
        await inbox.put(body, org_id=ORG)


def note_id(event: WebhookEvent) -> str:
    return str(event.raw["data"]["id"])


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    """Give hung handlers an event to wait on, set at the end of the test so their threads end."""
    released = threading.Event()
    yield released
    released.set()


async def test_six_hung_handlers_do_not_fail_forty_healthy_events(tmp_path: Path, gate: threading.Event) -> None:
    """The issue's row: a plain handler hangs on 6 events; the 40 healthy ones are all run and done.

    The loop's shared default executor has 6 threads here, as asyncio gives a 2-core machine:
    the old worker ran handlers there, so the 6 hung calls held every thread and the 40 healthy
    events went dead "timed out" without the handler ever being called.
    """
    asyncio.get_running_loop().set_default_executor(concurrent.futures.ThreadPoolExecutor(6))
    called: list[str] = []

    def handler(event: WebhookEvent) -> None:
        called.append(note_id(event))
        if note_id(event).startswith("hang"):
            gate.wait(30)

    async with open_inbox(f"sqlite:///{tmp_path}/i.db") as inbox:
        await put_notes(inbox, [f"hang-{n}" for n in range(6)] + [f"ok-{n}" for n in range(40)])
        worker = InboxWorker(inbox, handler, concurrency=6, handler_timeout=0.3, lease=5, max_attempts=1)
        assert await worker.run_until_idle() == 40
        records = {json.loads(r.body)["data"]["id"]: r async for r in inbox.export()}
    assert sorted(n for n in called if n.startswith("ok")) == sorted(f"ok-{n}" for n in range(40))
    assert {r.status for n, r in records.items() if n.startswith("ok")} == {"done"}
    assert {(r.status, r.last_error) for n, r in records.items() if n.startswith("hang")} == {
        ("dead", "timed out after 0.3 s")
    }
    assert worker.healthy  # 6 stuck threads, 6 replacements


async def test_past_its_replacements_a_worker_is_unhealthy_logs_once_and_stops_claiming(
    tmp_path: Path, gate: threading.Event, caplog: pytest.LogCaptureFixture
) -> None:
    """Concurrency 2: 2 stuck threads are replaced; the 3rd makes it unhealthy; the events it never ran keep 0 attempts.

    Once the hung calls return, the worker is healthy again and handles the rest.
    """
    called: list[str] = []

    def handler(event: WebhookEvent) -> None:
        called.append(note_id(event))
        gate.wait(30)

    ids = [f"n-{n}" for n in range(7)]
    async with open_inbox(f"sqlite:///{tmp_path}/i.db") as inbox:
        await put_notes(inbox, ids)
        worker = InboxWorker(inbox, handler, concurrency=2, handler_timeout=0.3, lease=5, base_delay=60)
        with caplog.at_level(logging.INFO, logger="fullstory_async.receiving"):
            assert await worker.run_until_idle() == 0
            assert not worker.healthy
            after = {json.loads(r.body)["data"]["id"]: r async for r in inbox.export()}
            ran = set(called)
            assert len(ran) == 4  # two pairs: the first pair's threads replaced, the second pair's not
            assert {after[n].attempts for n in ran} == {1}
            assert {(after[n].status, after[n].attempts, after[n].last_error) for n in set(ids) - ran} == {
                ("pending", 0, None)
            }
            unhealthy = [r for r in caplog.records if r.levelno == logging.ERROR and "unhealthy" in r.getMessage()]
            assert len(unhealthy) == 1
            assert await worker.run_until_idle() == 0  # still unhealthy: claims nothing
            assert len(called) == 4

            gate.set()  # the hung calls return: their threads leave or take their slot back
            for _ in range(500):
                if worker.healthy:
                    break
                await asyncio.sleep(0.01)
            assert worker.healthy
            assert await worker.run_until_idle() == 3  # the three never claimed
        assert sorted(called[4:]) == sorted(set(ids) - ran)
        assert [r.levelno for r in caplog.records if "unhealthy" in r.getMessage()] == [logging.ERROR]


class LateThreads:
    """A handler thread's job queue that hands out nothing until ``scheduled`` is set (a late thread)."""

    def __init__(self, jobs: queue.SimpleQueue[object]) -> None:
        self.jobs = jobs
        self.scheduled = threading.Event()
        self.queued = asyncio.Event()  # put() runs on the loop

    def put(self, job: object) -> None:
        self.jobs.put(job)
        self.queued.set()

    def get(self) -> object:
        self.scheduled.wait(30)
        return self.jobs.get()


async def test_the_timeout_counts_from_when_the_handler_starts_not_while_its_thread_is_scheduled(
    tmp_path: Path,
) -> None:
    """A thread that takes 4 timeouts to start running the handler: the event is done at its first attempt.

    The old worker started the clock with the call: it failed the attempt "timed out" before the
    handler ran, and the late thread then ran the handler anyway, on an event already put back.
    """
    called: list[str] = []
    async with open_inbox(f"sqlite:///{tmp_path}/i.db") as inbox:
        await put_notes(inbox, ["late"])
        worker = InboxWorker(inbox, lambda event: called.append(note_id(event)), handler_timeout=0.05, lease=5)
        late = LateThreads(worker._threads._jobs)
        worker._threads._jobs = late
        running = asyncio.ensure_future(worker.run_until_idle())
        await asyncio.sleep(0.2)  # the thread is late: longer than handler_timeout
        late.scheduled.set()
        assert await running == 1
        [record] = [r async for r in inbox.export()]
    assert called == ["late"]
    assert (record.status, record.attempts, record.last_error) == ("done", 1, None)
    assert worker.healthy


async def test_a_call_given_up_before_its_thread_started_never_starts_a_clock(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Stopped while the handler's thread is still late: the attempt is put back, nothing raises on the loop.

    The late thread then runs the handler (a thread cannot be recalled), but the worker's
    timeout is gone: starting it then would raise in a loop callback.
    """
    ran = threading.Event()
    async with open_inbox(f"sqlite:///{tmp_path}/i.db") as inbox:
        await put_notes(inbox, ["late"])
        worker = InboxWorker(inbox, lambda _event: ran.set(), handler_timeout=0.05, lease=5, drain_timeout=0.01)
        late = LateThreads(worker._threads._jobs)
        worker._threads._jobs = late
        running = asyncio.ensure_future(worker.run())
        await late.queued.wait()
        await worker.stop()
        await running  # the drain gave up on the call
        late.scheduled.set()
        assert await asyncio.to_thread(ran.wait, 30)
        for _ in range(3):  # the thread's callbacks, queued before the handler ran, run on the next turns
            await asyncio.sleep(0)
        [record] = [r async for r in inbox.export()]
    assert (record.status, record.attempts, record.last_error) == ("pending", 1, "cancelled at shutdown")
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_release_gives_a_claim_back_without_counting_it(inbox_url: str) -> None:
    """Inbox.release: the event is pending and due at once, its attempts as before the claim; only while held."""
    clock = ManualClock(1_700_000_000.0)
    async with open_inbox(inbox_url, clock=clock) as inbox:
        await put_notes(inbox, ["a"])
        [first] = await inbox.claim(1, lease=60)
        assert first.attempts == 1
        assert await inbox.release(first)
        assert not await inbox.release(first)  # that claim no longer holds it
        clock.advance(1)  # a claim is identified by its lease end: the next one must end later
        [again] = await inbox.claim(1, lease=60)  # due at once, not after the lease
        assert (again.status, again.attempts) == ("pending", 1)
        assert not await inbox.release(first)
        assert await inbox.complete(again)


_KILLER = """
import asyncio, os, signal, sys
from fullstory_async.receiving import InboxWorker, open_inbox

def kill():  # an OOM kill, a segfault: the handler never returns
    with open(sys.argv[3], "a") as f:
        f.write("call\\n")
    os.kill(os.getpid(), signal.SIGKILL)

def plain(event):  # a plain function, on the worker's own thread
    kill()

async def coroutine(event):  # on the worker's loop
    kill()

async def main(url, now, handler):
    async with open_inbox(url, retention=None, clock=lambda: now) as inbox:
        await InboxWorker(inbox, handler, max_attempts=2, handler_timeout=1, lease=60).run_until_idle()

asyncio.run(main(sys.argv[1], float(sys.argv[2]), {"plain": plain, "coroutine": coroutine}[sys.argv[4]]))
"""


async def test_a_handler_killed_mid_run_still_spends_its_attempt(inbox_url: str, tmp_path: Path) -> None:
    """SIGKILL in a handler, coroutine then plain: each run counts; after max_attempts runs the next claim buries it."""
    async with open_inbox(inbox_url, clock=ManualClock(1_700_000_000.0)) as inbox:
        await put_notes(inbox, ["poison"])
    calls = tmp_path / "calls"
    attempts = []
    for run, handler in enumerate(("coroutine", "plain", "plain")):  # each process starts after the last one's lease
        now = 1_700_000_000.0 + 1000 * run
        argv = [sys.executable, "-c", _KILLER, inbox_url, str(now), str(calls), handler]
        child = await asyncio.to_thread(subprocess.run, argv, timeout=60, check=False)
        async with open_inbox(inbox_url) as inbox:
            [record] = [r async for r in inbox.export()]
        attempts.append((child.returncode, record.status, record.attempts))
    assert attempts == [(-9, "pending", 1), (-9, "pending", 2), (0, "dead", 2)]
    assert calls.read_text().split() == ["call", "call"]
    assert record.last_error == NEVER_FINISHED
