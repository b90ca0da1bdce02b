"""Adversarial review of forwarding (#21): services shaped unlike our own, bad TLS files, credentials, SIGKILL."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import socket
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import closing
from pathlib import Path

import pytest
from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from fullstory_async import InvalidArgumentError
from fullstory_async.receiving import (
    ForwardHandler,
    InboxWorker,
    SignatureVerificationError,
    delivery_key,
    open_inbox,
    signed_delivery,
    verify_forwarded,
)
from fullstory_async.receiving._forward import (
    ATTEMPT_HEADER,
    UNREACHABLE_BEFORE_PAUSE,
    Forwarder,
    ForwardOutcome,
    ForwardTarget,
)
from fullstory_async.receiving._forwarded import sign_forwarded
from fullstory_async.testing import ManualClock
from tests.fakes import Pki, Serve

SECRET = "whsec_" + base64.b64encode(b"review-forward-signing-key-32by!").decode()
ORG = "o-1A2B3C-na1"
ENV = {**os.environ, "FS_FORWARD_SECRET": SECRET, "FS_RECEIVE_SECRET": "wh-review-receive-1"}


@pytest.fixture
async def raw_service() -> AsyncIterator[Callable[..., Awaitable[str]]]:
    """Serve a raw-socket "service" on 127.0.0.1 that reads a request and writes ``answer`` bytes as they are.

    ``then="close"`` closes the connection after the answer; ``"hang"`` keeps it open and silent.
    """
    servers: list[asyncio.Server] = []
    hold = asyncio.Event()

    async def start(answer: bytes, then: str = "close") -> str:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
            )
            await reader.readexactly(length)
            writer.write(answer)
            await writer.drain()
            if then == "hang":
                await hold.wait()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        servers.append(server)
        return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/events?token=svc-url-t0ken-value"

    yield start
    hold.set()
    for server in servers:
        server.close()
        await server.wait_closed()


async def forward_once(url: str, **target: object) -> ForwardOutcome:
    async with Forwarder(ForwardTarget(url, **target), secret=SECRET) as forwarder:  # type: ignore[arg-type]
        return await forwarder.forward(b'{"eventName":"note.created"}', webhook_id="ab" * 32, attempt=1)


CUT = b"Content-Length: 1000\r\n\r\nno such tenant"  # promises 1000 bytes, sends 14


@pytest.mark.parametrize(
    ("answer", "then", "outcome", "status", "retry_after"),
    [
        (b"HTTP/1.1 400 Bad Request\r\n" + CUT, "close", "dead", 400, None),
        (b"HTTP/1.1 400 Bad Request\r\n" + CUT, "hang", "dead", 400, None),
        (b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:9/elsewhere\r\n" + CUT, "close", "dead", 302, None),
        (b"HTTP/1.1 503 Busy\r\nRetry-After: 30\r\n" + CUT, "close", "retry", 503, 30.0),
    ],
)
async def test_an_answer_whose_body_is_cut_short_or_stalls_keeps_its_status(
    raw_service, answer: bytes, then: str, outcome: str, status: int, retry_after: float | None
):
    """The status line is the answer: a 400 with a broken body is a dead letter, not "no answer" retried 12 times.

    Before: ``retry``, status ``None``, ``unreachable`` (each such refusal counted towards the outage pause).
    """
    result = await forward_once(await raw_service(answer, then), timeout=0.5)
    assert (result.outcome, result.status, result.retry_after, result.unreachable) == (
        outcome,
        status,
        retry_after,
        False,
    )
    assert result.error is not None
    assert "answer cut short" in result.error
    if status == 302:
        assert "redirect to http://127.0.0.1:9/elsewhere not followed" in result.error
    else:
        assert "no such tenant" in result.error


async def test_a_malformed_answer_keeps_the_url_query_out_of_the_error(raw_service):
    """A service speaking no HTTP: aiohttp's error text ends with the URL, whose query may hold a token."""
    url = await raw_service(b"HELLO, not HTTP\r\n\r\n")
    result = await forward_once(url, timeout=0.5)
    assert (result.outcome, result.unreachable) == ("retry", True)
    assert result.error is not None
    assert "svc-url-t0ken-value" not in result.error
    assert "Bad status line" in result.error


def test_url_credentials_stay_out_of_the_reprs():
    """``ForwardTarget``'s repr (attrs) showed the URL's password and query; the forwarder's never did."""
    target = ForwardTarget("https://svc:hunter2-pass@events.internal/fs?code=azure-function-key")
    for text in (repr(target), repr(Forwarder(target, secret=SECRET))):
        assert "hunter2-pass" not in text
        assert "azure-function-key" not in text
        assert "https://events.internal/fs" in text


def test_a_bad_ca_file_is_named_as_the_ca_file(tmp_path: Path, pki: Pki):
    """Before: a missing or non-PEM ``ca_file`` was reported as ``client_cert`` (``--client-cert``)."""
    not_pem = tmp_path / "ca.txt"
    not_pem.write_text("not a certificate\n")
    for path in (tmp_path / "missing.pem", not_pem):
        with pytest.raises(InvalidArgumentError) as refused:
            ForwardTarget("https://127.0.0.1/x", ca_file=str(path)).ssl_context()
        assert refused.value.field == "ca_file"
    with pytest.raises(InvalidArgumentError) as refused:
        ForwardTarget(
            "https://127.0.0.1/x", ca_file=str(pki.ca), client_cert=str(not_pem), client_key=str(not_pem)
        ).ssl_context()
    assert refused.value.field == "client_cert"


async def run_cli(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "fullstory_async", *args),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=ENV,
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    return await process.wait(), out.decode(), err.decode()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("forward", "--to", "https://127.0.0.1/x", "--ca-file", "/nonexistent/ca.pem"), "--ca-file: cannot be loaded"),
        (
            (
                "receive",
                "--secret-env",
                "FS_RECEIVE_SECRET",
                "--port",
                "0",
                "--sign-secret-env",
                "FS_FORWARD_SECRET",
                "--forward-to",
                "http://events.internal/x",
            ),
            "--forward-to: plain http",  # before: "--to", a flag receive does not have
        ),
        (  # before: accepted and ignored, so nothing was ever forwarded
            ("receive", "--secret-env", "FS_RECEIVE_SECRET", "--port", "0", "--sign-secret-env", "FS_FORWARD_SECRET"),
            "--sign-secret-env: is an option of forwarding: it needs --forward-to URL",
        ),
    ],
)
async def test_forwarding_usage_errors_name_the_flag_the_user_typed(
    tmp_path: Path, args: tuple[str, ...], message: str
):
    command, *rest = args
    extra = ("--sign-secret-env", "FS_FORWARD_SECRET") if command == "forward" else ()
    code, out, err = await run_cli(command, "--inbox", f"sqlite:///{tmp_path}/u.db", *rest, *extra)
    assert (code, out) == (2, "")
    assert message in err
    assert not (tmp_path / "u.db").exists()


async def test_a_forwarder_killed_mid_flight_loses_nothing_and_resends_the_same_id(tmp_path: Path, serve: Serve):
    """SIGKILL while the service holds the request: after the lease, a new forwarder resends it, same webhook-id.

    At least once: the event is neither lost nor marked done by the dead process; the service
    sees one id twice (attempts 1 and 2) and de-duplicates on it.
    """
    url = f"sqlite:///{tmp_path}/killed.db"
    body = signed_delivery("note.created", {"id": "killed-1"}, secret="s", org_id=ORG)[0]
    async with open_inbox(url) as inbox:
        await inbox.put(body, org_id=ORG)
    seen: list[tuple[str, str]] = []
    arrived, delivered = asyncio.Event(), asyncio.Event()

    async def service(request: web.Request) -> web.Response:
        received = await request.read()
        seen.append((verify_forwarded(received, request.headers, SECRET), request.headers[ATTEMPT_HEADER]))
        if len(seen) == 1:
            arrived.set()
            await asyncio.Event().wait()  # never answers: the forwarder dies holding it
        delivered.set()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/events", service)
    target = await serve(app) + "/events"
    args = ("--inbox", url, "--to", target, "--sign-secret-env", "FS_FORWARD_SECRET", "--timeout", "5")

    async def forwarder() -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "fullstory_async", "forward", *args),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env=ENV,
        )

    first = await forwarder()
    await asyncio.wait_for(arrived.wait(), 30)
    first.kill()
    await first.wait()
    with closing(sqlite3.connect(tmp_path / "killed.db")) as conn:
        assert conn.execute("SELECT status, attempts FROM fullstory_inbox").fetchall() == [("pending", 1)]
        with conn:  # the killed claim's lease runs out (instead of waiting its 40 s)
            conn.execute("UPDATE fullstory_inbox SET next_attempt_at = 0")
    second = await forwarder()
    try:
        await asyncio.wait_for(delivered.wait(), 30)
    finally:
        second.send_signal(signal.SIGTERM)
        _out, err = await asyncio.wait_for(second.communicate(), 30)
    assert await second.wait() == 0
    key = delivery_key(ORG, body)
    assert seen == [(key, "1"), (key, "2")]
    async with open_inbox(url) as inbox:
        [record] = [r async for r in inbox.export()]
    assert (record.status, record.attempts) == ("done", 2)
    assert SECRET not in err.decode()


async def test_one_outage_opens_the_breaker_once_not_once_per_event_in_flight(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    """16 events in flight when the 20th failure opens the breaker: the pause is 1 s, then 2 s, not an hour.

    Before: every in-flight event's ``ServiceUnavailableError`` was one more backoff step, so a
    blip of 20 refused connections paused a 16-wide forwarder for ``max_delay`` (3600 s).
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    clock = ManualClock(1_700_000_000.0)
    bodies = [signed_delivery("note.created", {"id": f"burst-{n}"}, secret="s", org_id=ORG)[0] for n in range(40)]
    arrived: list[str] = []

    async def service(request: web.Request) -> web.Response:
        arrived.append(verify_forwarded(await request.read(), request.headers, SECRET, tolerance=None))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/events", service)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    try:
        async with (
            open_inbox(f"sqlite:///{tmp_path}/burst.db", clock=clock) as inbox,
            Forwarder(ForwardTarget(f"http://127.0.0.1:{port}/events", timeout=0.5), secret=SECRET) as forwarder,
        ):
            for body in bodies:
                await inbox.put(body, org_id=ORG)
            worker = InboxWorker(inbox, ForwardHandler(forwarder), concurrency=16, max_attempts=12, max_delay=3600)
            await worker.run_until_idle()  # the service is down: the breaker opens
            assert worker.claims_paused == 1.0
            clock.advance(1)
            await worker.run_until_idle()  # one probe, still down
            assert worker.claims_paused == 2.0
            await web.TCPSite(runner, "127.0.0.1", port).start()
            clock.advance(2)
            assert await worker.run_until_idle() == 40  # a probe gets through: claiming as usual again
            attempts = [r.attempts async for r in inbox.export()]
    finally:
        await runner.cleanup()
    assert sorted(arrived) == sorted(delivery_key(ORG, body) for body in bodies)
    assert sum(attempts) == 40 + UNREACHABLE_BEFORE_PAUSE - 1  # the outage cost 19 attempts, the probes none
    breaker = [r.getMessage() for r in caplog.records if "destination" in r.getMessage()]
    assert len(breaker) == 2  # it opened once and closed once, each said
    assert breaker[0].startswith("destination unavailable, claiming paused for 1 s")
    assert breaker[1] == "destination answering again after 1 failed probe(s): claiming as usual"


def test_the_verifier_and_the_reference_library_agree_at_the_edges():
    """Timestamps at the tolerance edge and several signatures: ``verify_forwarded`` and ``standardwebhooks`` agree."""
    body, key = b'{"eventName":"note.created"}', "cd" * 32
    other = "whsec_" + base64.b64encode(b"another-secret-of-thirty-two-by!").decode()
    now = int(time.time())

    def ours(headers: dict[str, str], at: float) -> bool:
        try:
            return verify_forwarded(body, headers, SECRET, now=at) == key
        except SignatureVerificationError:
            return False

    def library(headers: dict[str, str]) -> bool:
        try:
            Webhook(SECRET).verify(body, headers)
        except WebhookVerificationError:
            return False
        return True

    for skew, accepted in ((-300, True), (300, True), (-301, False), (301, False)):
        assert ours(sign_forwarded(body, secret=SECRET, webhook_id=key, timestamp=now + skew), now) is accepted
    for skew, accepted in ((-290, True), (290, True), (-310, False), (310, False)):  # the library reads the clock
        headers = sign_forwarded(body, secret=SECRET, webhook_id=key, timestamp=now + skew)
        assert (ours(headers, time.time()), library(headers)) == (accepted, accepted)
    good = sign_forwarded(body, secret=SECRET, webhook_id=key, timestamp=now)
    rotated = sign_forwarded(body, secret=other, webhook_id=key, timestamp=now)["webhook-signature"]
    for signatures, accepted in (
        (f"{rotated} {good['webhook-signature']}", True),
        (f"{good['webhook-signature']} {rotated}", True),
        (f"{rotated} {rotated}", False),
    ):
        headers = {**good, "webhook-signature": signatures}
        assert (ours(headers, now), library(headers)) == (accepted, accepted)


@pytest.mark.parametrize("concurrency", [0, -1, 2.5, True])
def test_a_forwarder_refuses_a_concurrency_that_is_not_a_positive_integer(concurrency: object):
    """Before: accepted; 0 became aiohttp's "no connection limit"."""
    with pytest.raises(InvalidArgumentError) as refused:
        Forwarder(ForwardTarget("http://127.0.0.1:9/x"), secret=SECRET, concurrency=concurrency)  # type: ignore[arg-type]
    assert refused.value.field == "concurrency"


async def test_the_forward_command_resumes_within_seconds_after_an_outage(tmp_path: Path):
    """The real command, 16 wide, against a service that is down then up: every event arrives, none dead.

    Before: the outage paused it for ``--max-delay`` (here 600 s), so nothing arrived after the service came back.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"sqlite:///{tmp_path}/outage.db"
    bodies = [signed_delivery("note.created", {"id": f"outage-{n}"}, secret="s", org_id=ORG)[0] for n in range(40)]
    async with open_inbox(url) as inbox:
        for body in bodies:
            await inbox.put(body, org_id=ORG)
    arrived: set[str] = set()
    everything = asyncio.Event()

    async def service(request: web.Request) -> web.Response:
        arrived.add(verify_forwarded(await request.read(), request.headers, SECRET))
        if len(arrived) == len(bodies):
            everything.set()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/events", service)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "fullstory_async", "forward", "--inbox", url, "--sign-secret-env", "FS_FORWARD_SECRET"),
        *("--to", f"http://127.0.0.1:{port}/events", "--timeout", "0.5", "--max-delay", "600"),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=ENV,
    )
    try:
        assert process.stderr is not None
        while b"claiming paused" not in await asyncio.wait_for(process.stderr.readline(), 30):
            pass  # the service is down: the breaker opens
        await web.TCPSite(runner, "127.0.0.1", port).start()
        await asyncio.wait_for(everything.wait(), 30)  # a probe within a second or two, then everything
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.communicate(), 30)
        await runner.cleanup()
    assert arrived == {delivery_key(ORG, body) for body in bodies}
