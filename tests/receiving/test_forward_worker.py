"""Forwarding as a worker: the handler verdicts, the outage breaker, and the real ``forward`` command."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from fullstory_async.receiving import (
    DeadLetterError,
    Forwarder,
    ForwardHandler,
    ForwardTarget,
    Inbox,
    InboxWorker,
    RetryLaterError,
    ServiceUnavailableError,
    WebhookEvent,
    delivery_key,
    open_inbox,
    signed_delivery,
    verify_forwarded,
)
from fullstory_async.receiving._forward import UNREACHABLE_BEFORE_PAUSE
from fullstory_async.testing import ManualClock
from tests.conftest import Run
from tests.fakes import Serve

ORG = "o-1A2B3C-na1"
SIGN_SECRET = "whsec_" + base64.b64encode(b"forward-worker-test-key-32-bytes").decode()
ENV = {**os.environ, "FS_FORWARD_SECRET": SIGN_SECRET}


def bodies(count: int, prefix: str) -> list[bytes]:
    return [signed_delivery("note.created", {"id": f"{prefix}-{n}"}, secret="s", org_id=ORG)[0] for n in range(count)]


@pytest.fixture
async def inbox(tmp_path: Path) -> AsyncIterator[Inbox]:
    async with open_inbox(f"sqlite:///{tmp_path}/forward.db", clock=ManualClock(1_700_000_000.0)) as opened:
        yield opened


async def records(inbox: Inbox) -> dict[str, tuple[str, int, str | None]]:
    return {r.key: (r.status, r.attempts, r.last_error) async for r in inbox.export()}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_retry_later_waits_at_least_what_the_handler_asked(inbox: Inbox):
    """``RetryLaterError(after=)`` delays the next attempt by max(backoff, after); the attempt is counted."""
    [body] = bodies(1, "later")
    await inbox.put(body, org_id=ORG)

    async def handler(_event: WebhookEvent) -> None:
        raise RetryLaterError("503 busy", after=120)

    worker = InboxWorker(inbox, handler, base_delay=1, max_delay=3600)
    await worker.run_until_idle()
    [(status, attempts, error)] = (await records(inbox)).values()
    assert (status, attempts, error) == ("pending", 1, "503 busy")
    clock = inbox.clock
    assert isinstance(clock, ManualClock)
    clock.advance(119)
    assert await worker.run_until_idle() == 0  # not due yet: backoff alone (1 s) would have let it run
    clock.advance(1.001)
    await worker.run_until_idle()
    assert (await records(inbox)).popitem()[1][1] == 2


async def test_dead_letter_ends_the_event_at_once(inbox: Inbox):
    """``DeadLetterError`` buries the event on its first attempt, with the reason, whatever attempts remain."""
    [body] = bodies(1, "dead")
    await inbox.put(body, org_id=ORG)

    async def handler(_event: WebhookEvent) -> None:
        raise DeadLetterError("404 Not Found: no such tenant")

    await InboxWorker(inbox, handler, max_attempts=12).run_until_idle()
    assert list((await records(inbox)).values()) == [("dead", 1, "dead letter: 404 Not Found: no such tenant")]


async def test_service_unavailable_gives_the_event_back_and_pauses_claiming(inbox: Inbox):
    """The event is released uncounted and the worker claims nothing until its backoff passed, then one probe."""
    for body in bodies(3, "down"):
        await inbox.put(body, org_id=ORG)
    seen: list[int | None] = []
    down = True

    async def handler(event: WebhookEvent) -> None:
        seen.append(event.attempt)
        if down:
            raise ServiceUnavailableError("cannot connect")

    worker = InboxWorker(inbox, handler, concurrency=1, base_delay=2, max_delay=60)
    assert await worker.run_until_idle() == 0
    assert seen == [1]  # one event ran; the worker stopped claiming
    assert worker.claims_paused == 2
    assert {attempts for _status, attempts, _error in (await records(inbox)).values()} == {0}
    clock = inbox.clock
    assert isinstance(clock, ManualClock)
    clock.advance(2)
    await worker.run_until_idle()  # the probe fails again: the pause doubles
    assert (len(seen), worker.claims_paused) == (2, 4)
    clock.advance(4)
    down = False
    assert await worker.run_until_idle() == 3  # the probe got through: the breaker closed, everything flows
    assert {(status, attempts) for status, attempts, _ in (await records(inbox)).values()} == {("done", 1)}


async def test_an_outage_costs_twenty_attempts_not_every_events(inbox: Inbox, serve: Serve):
    """A service that is down: the first 19 failures count, then claiming pauses; when it is back, all arrive."""
    for body in bodies(40, "outage"):
        await inbox.put(body, org_id=ORG)
    port = free_port()
    forwarder = Forwarder(ForwardTarget(f"http://127.0.0.1:{port}/events", timeout=2), secret=SIGN_SECRET)
    worker = InboxWorker(inbox, ForwardHandler(forwarder), concurrency=4, max_attempts=12)
    async with forwarder:
        await worker.run_until_idle()
        before = await records(inbox)
        assert sum(attempts for _s, attempts, _e in before.values()) == UNREACHABLE_BEFORE_PAUSE - 1
        assert {status for status, _a, _e in before.values()} == {"pending"}
        assert worker.claims_paused > 0

        arrived: list[str] = []

        async def service(request: web.Request) -> web.Response:
            arrived.append(verify_forwarded(await request.read(), request.headers, SIGN_SECRET))
            return web.Response(status=204)

        app = web.Application()
        app.router.add_post("/events", service)
        runner = web.AppRunner(app)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", port).start()
            clock = inbox.clock
            assert isinstance(clock, ManualClock)
            clock.advance(3600)  # past the pause and every retry's delay
            assert await worker.run_until_idle() == 40
        finally:
            await runner.cleanup()
    assert sorted(arrived) == sorted(before)
    assert {status for status, _a, _e in (await records(inbox)).values()} == {"done"}


async def forward_command(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "fullstory_async", "forward", *args),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=ENV,
    )


async def test_the_forward_command_delivers_every_event_verified(tmp_path: Path, serve: Serve):
    """The real command: every stored event arrives once, verified; a 404 is a dead letter; SIGTERM exits 0."""
    url = f"sqlite:///{tmp_path}/cli.db"
    good, refused = bodies(20, "cli"), bodies(1, "refused")
    async with open_inbox(url) as inbox:
        for body in good + refused:
            await inbox.put(body, org_id=ORG)
    arrived: list[bytes] = []
    answered: list[bytes] = []
    everything = asyncio.Event()  # every event answered, the 404 too: else SIGTERM may come before it is claimed

    async def service(request: web.Request) -> web.Response:
        body = await request.read()
        verify_forwarded(body, request.headers, SIGN_SECRET)
        answered.append(body)
        if len(answered) == len(good + refused):
            everything.set()
        if body in refused:
            return web.Response(status=404, text="no such tenant")
        arrived.append(body)
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/events", service)
    target = await serve(app) + "/events"
    process = await forward_command("--inbox", url, "--to", target, "--sign-secret-env", "FS_FORWARD_SECRET")
    try:
        assert process.stdout is not None
        banner = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        assert banner == f"forwarding from {url} to {target}\n"
        await asyncio.wait_for(everything.wait(), 30)
    finally:
        process.send_signal(signal.SIGTERM)
        _out, err = await asyncio.wait_for(process.communicate(), 30)
    assert await process.wait() == 0
    assert sorted(arrived) == sorted(good)
    assert sorted(answered) == sorted(good + refused)
    assert SIGN_SECRET not in err.decode()
    async with open_inbox(url) as inbox:
        stats = await inbox.stats()
        exported = [r async for r in inbox.export()]
    assert (stats.done, stats.dead) == (20, 1)
    [dead] = [r for r in exported if r.status == "dead"]
    assert dead.last_error == "dead letter: 404 Not Found: no such tenant"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--to", "http://127.0.0.1:9/x"], "--sign-secret-env"),
        (["--to", "http://127.0.0.1:9/x", "--sign-secret-env", "FS_UNSET_VAR"], "FS_UNSET_VAR is not set"),
        (["--to", "http://events.internal/x", "--sign-secret-env", "FS_FORWARD_SECRET"], "--allow-insecure-http"),
        (["--to", "ftp://127.0.0.1/x", "--sign-secret-env", "FS_FORWARD_SECRET"], "--to: must be an absolute"),
        (
            ["--to", "https://127.0.0.1/x", "--sign-secret-env", "FS_FORWARD_SECRET", "--client-cert", "c.pem"],
            "client_key go together",
        ),
        (["--to", "https://127.0.0.1/x", "--sign-secret-env", "FS_BAD_SECRET"], "--sign-secret-env (FS_BAD_SECRET)"),
    ],
)
def test_usage_errors_exit_2_naming_the_flag(
    tmp_path: Path, args: list[str], message: str, cli: Callable[..., Run], monkeypatch: pytest.MonkeyPatch
):
    """A missing or bad secret, a refused URL or half a client certificate: exit 2 before anything runs."""
    monkeypatch.setenv("FS_FORWARD_SECRET", SIGN_SECRET)
    monkeypatch.setenv("FS_BAD_SECRET", "whsec_not-base64!")
    monkeypatch.delenv("FS_UNSET_VAR", raising=False)
    result = cli("forward", "--inbox", f"sqlite:///{tmp_path}/u.db", *args)
    assert result.code == 2
    assert message in result.err
    assert "whsec_not-base64!" not in result.err + result.out
    assert not (tmp_path / "u.db").exists()


async def test_receive_with_forward_to_stores_then_forwards_in_one_process(tmp_path: Path, serve: Serve):
    """``receive --forward-to``: every 202'd delivery reaches the service, verified, with no second process."""
    arrived: dict[str, bytes] = {}
    everything = asyncio.Event()
    items = [
        signed_delivery("note.created", {"id": f"both-{n}"}, secret="wh-secret-both-1", org_id=ORG) for n in range(8)
    ]

    async def service(request: web.Request) -> web.Response:
        body = await request.read()
        arrived[verify_forwarded(body, request.headers, SIGN_SECRET)] = body
        if len(arrived) == len(items):
            everything.set()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/events", service)
    target = await serve(app) + "/events"
    url = f"sqlite:///{tmp_path}/both.db"
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "fullstory_async", "receive", "--inbox", url, "--secret-env", "FS_RECEIVE_SECRET"),
        *("--port", "0", "--forward-to", target, "--sign-secret-env", "FS_FORWARD_SECRET"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**ENV, "FS_RECEIVE_SECRET": "wh-secret-both-1"},
    )
    try:
        assert process.stdout is not None
        first = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        second = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        receiver = first.split()[2]
        assert first.endswith(f" into {url}\n")
        assert second == f"forwarding to {target}\n"
        async with aiohttp.ClientSession() as session:
            for body, headers in items:
                async with session.post(receiver, data=body, headers=headers) as answer:
                    assert answer.status == 202
        await asyncio.wait_for(everything.wait(), 30)
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.communicate(), 30)
    assert await process.wait() == 0
    assert sorted(arrived.values()) == sorted(body for body, _headers in items)
    assert set(arrived) == {delivery_key(ORG, body) for body, _headers in items}


async def test_receive_refuses_a_bad_forward_option_before_serving(tmp_path: Path):
    """A ``--forward-to`` without its secret is a usage error naming the flag; nothing is served or created."""
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "fullstory_async", "receive", "--inbox", f"sqlite:///{tmp_path}/x.db"),
        *("--secret-env", "FS_RECEIVE_SECRET", "--port", "0", "--forward-to", "http://127.0.0.1:9/x"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**ENV, "FS_RECEIVE_SECRET": "wh-secret-both-1"},
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert await process.wait() == 2
    assert out == b""
    assert "--sign-secret-env" in err.decode()
    assert not (tmp_path / "x.db").exists()
