"""Connection limits under hostile senders, on raw sockets: stalled heads, trickled bodies, a full house.

The issue's row ("300 connections that send headers and 1 byte of a 100-byte body, receiver
with 256 file descriptors") scaled down: a cap of 8 connections and timeouts of 0.3-0.5 s,
in-process through the same `serve` as ``fullstory-async receive``, and once against the
real command in a subprocess with a lowered ``RLIMIT_NOFILE``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import resource
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import attrs
import pytest
from aiohttp import web

from fullstory_async import InvalidArgumentError
from fullstory_async.cli import main
from fullstory_async.receiving import (
    Inbox,
    ReceiverSettings,
    WebhookReceiver,
    add_webhook_route,
    signed_delivery,
)
from fullstory_async.receiving._limits import FD_RESERVE, ConnectionLimits, serve

from .conftest import PATH, ServeReceiver

SECRET = "wh-secret-limits-4Tz8"
ORG = "o-1A2B3C-na1"
LIMITS = ConnectionLimits(head_timeout=0.3, keepalive_timeout=0.3, max_connections=8)
Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]
Start = Callable[..., Awaitable[int]]


def head(content_length: int, *extra: str, method: str = "POST", path: str = PATH) -> bytes:
    """Return a complete request head."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {content_length}", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def delivery(event_id: str) -> bytes:
    """Return a whole signed delivery as raw bytes: head and body."""
    body, headers = signed_delivery("note.created", {"id": event_id}, secret=SECRET, org_id=ORG)
    return head(len(body), *(f"{name}: {value}" for name, value in headers.items())) + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    """Read one response (head and ``Content-Length`` body); return its status and lower-cased headers."""
    lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:] if line)}
    await reader.readexactly(int(headers.get("content-length", "0")))
    return int(lines[0].split()[1]), headers


async def until_closed(reader: asyncio.StreamReader) -> float:
    """Wait until the server closes the connection (EOF or reset); return the loop time it did."""
    with contextlib.suppress(ConnectionError):
        while await reader.read(4096):
            pass
    return asyncio.get_running_loop().time()


async def until(condition: Callable[[], object]) -> None:
    """Wait (up to 5 s, polling the loop) until ``condition()`` is true, e.g. a handler is reading a body."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition never held")


@pytest.fixture
async def streams() -> AsyncIterator[Callable[[int], Awaitable[Stream]]]:
    """Open raw connections to 127.0.0.1; all are closed after the test."""
    opened: list[asyncio.StreamWriter] = []

    async def connect(port: int) -> Stream:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        opened.append(writer)
        return reader, writer

    yield connect
    for writer in opened:
        writer.close()


@pytest.fixture
async def start(inbox: Inbox) -> AsyncIterator[Start]:
    """Serve an inbox receiver as ``receive`` does (`serve`, the gate in front); stopped after the test."""
    async with contextlib.AsyncExitStack() as stack:

        async def start_one(limits: ConnectionLimits = LIMITS, **settings: Any) -> int:
            app = web.Application()
            add_webhook_route(app, PATH, SECRET, inbox=inbox, settings=ReceiverSettings(**settings))
            return await stack.enter_async_context(serve(app, "127.0.0.1", 0, limits))

        yield start_one


async def test_stalled_and_trickled_heads_are_closed_at_the_head_timeout(
    start: Start, streams: Callable[[int], Awaitable[Stream]]
) -> None:
    """Silent, half-sent and byte-by-byte heads are all closed once ``head_timeout`` has passed."""
    port = await start(attrs.evolve(LIMITS, head_timeout=0.3, keepalive_timeout=30))
    began = asyncio.get_running_loop().time()
    silent = await streams(port)
    half = await streams(port)
    half[1].write(b"POST /fullstory/webhooks HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    trickled = await streams(port)
    trickled[1].write(b"POST /fullstory/webhooks HTTP/1.1\r\nX-Pad: ")

    async def trickle() -> None:  # a slowloris: one byte of an endless header every 50 ms, never idle long
        for _ in range(200):
            trickled[1].write(b"a")
            await asyncio.sleep(0.05)

    trickler = asyncio.create_task(trickle())
    try:
        closed_at = await asyncio.wait_for(asyncio.gather(*(until_closed(r) for r, _ in (silent, half, trickled))), 5)
    finally:
        trickler.cancel()
    assert min(closed_at) - began >= 0.25  # not before the deadline


async def test_an_idle_connection_is_closed_at_the_keepalive_timeout(
    start: Start, streams: Callable[[int], Awaitable[Stream]]
) -> None:
    """After its 202 a kept-alive connection may idle ``keepalive_timeout``, then it is closed."""
    port = await start(attrs.evolve(LIMITS, head_timeout=30, keepalive_timeout=0.3))
    reader, writer = await streams(port)
    writer.write(delivery("n-idle"))
    assert (await read_response(reader))[0] == 202
    await asyncio.wait_for(until_closed(reader), 5)


async def test_the_next_head_on_a_kept_alive_connection_has_the_head_timeout(
    start: Start, streams: Callable[[int], Awaitable[Stream]]
) -> None:
    """Idle time is ``keepalive_timeout``, but once the next request begins its head has ``head_timeout``."""
    port = await start(attrs.evolve(LIMITS, head_timeout=0.3, keepalive_timeout=30))
    reader, writer = await streams(port)
    writer.write(delivery("n-first"))
    assert (await read_response(reader))[0] == 202
    writer.write(b"POST /fullstory/webhooks HTTP/1.1\r\n")  # the next head begins, and stalls
    await asyncio.wait_for(until_closed(reader), 5)


async def test_a_trickled_body_is_answered_408_at_the_body_timeout(
    start: Start, streams: Callable[[int], Awaitable[Stream]], inbox: Inbox
) -> None:
    """A body sent one byte every 50 ms is cut at ``body_timeout`` (the whole body, not one read): 408, closed."""
    port = await start(body_timeout=0.4)
    reader, writer = await streams(port)
    writer.write(head(100) + b"{")

    async def trickle() -> None:
        for _ in range(99):  # the whole body would take 5 s
            await asyncio.sleep(0.05)
            writer.write(b" ")

    trickler = asyncio.create_task(trickle())
    try:
        status, headers = await asyncio.wait_for(read_response(reader), 5)
    finally:
        trickler.cancel()
    assert (status, headers["connection"].lower()) == (408, "close")
    await asyncio.wait_for(until_closed(reader), 5)
    assert (await inbox.stats()).pending == 0


async def test_at_the_cap_the_longest_waiting_head_is_evicted_for_a_valid_delivery(
    start: Start, streams: Callable[[int], Awaitable[Stream]], inbox: Inbox
) -> None:
    """8 connections stall mid-head at a cap of 8: a signed delivery gets its 202, the oldest staller is closed."""
    port = await start(attrs.evolve(LIMITS, head_timeout=30, keepalive_timeout=30))
    stalled = []
    for _ in range(8):
        reader, writer = await streams(port)
        writer.write(head(0, method="GET", path=f"{PATH}/health"))
        assert (await read_response(reader))[0] == 200  # admitted: now waiting for its next head
        writer.write(b"POST /fullstory/webhooks HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # ... which never ends
        stalled.append((reader, writer))
    body, headers = signed_delivery("note.created", {"id": "n-valid"}, secret=SECRET, org_id=ORG)
    async with aiohttp.ClientSession() as session:
        response = await asyncio.wait_for(session.post(f"http://127.0.0.1:{port}{PATH}", data=body, headers=headers), 5)
        assert response.status == 202
    assert [record.body async for record in inbox.export()] == [body]
    await asyncio.wait_for(until_closed(stalled[0][0]), 5)
    reader, writer = stalled[1]  # the others were left alone: this one can still finish its request
    writer.write(b"Content-Length: 0\r\n\r\n")
    assert (await asyncio.wait_for(read_response(reader), 5))[0] == 401


async def test_at_the_cap_with_every_connection_mid_body_a_new_one_gets_503(
    start: Start, streams: Callable[[int], Awaitable[Stream]]
) -> None:
    """The issue's row at a cap of 8: each sends its head and 1 byte of a 100-byte body; the 9th gets 503 at once."""
    port = await start(attrs.evolve(LIMITS, head_timeout=30, keepalive_timeout=30), body_timeout=30)
    for _ in range(8):
        reader, writer = await streams(port)
        writer.write(head(100, "Expect: 100-continue"))
        assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"  # its head is in
        writer.write(b"{")
    reader, writer = await streams(port)
    writer.write(delivery("n-late"))
    status, headers = await asyncio.wait_for(read_response(reader), 5)
    assert (status, headers["retry-after"], headers["connection"].lower()) == (503, "1", "close")
    await asyncio.wait_for(until_closed(reader), 5)
    body, signed = signed_delivery("note.created", {"id": "n-late"}, secret=SECRET, org_id=ORG)
    async with aiohttp.ClientSession() as session:  # a real client reads the same answer
        url = f"http://127.0.0.1:{port}{PATH}"
        response = await asyncio.wait_for(session.post(url, data=body, headers=signed), 5)
        assert (response.status, response.headers["Retry-After"]) == (503, "1")


async def test_too_many_or_too_large_headers_are_refused(
    start: Start, streams: Callable[[int], Awaitable[Stream]]
) -> None:
    """More than ``max_headers`` header lines, or one over ``max_header_bytes``: 400; just under: served."""
    port = await start(attrs.evolve(LIMITS, head_timeout=30, max_headers=16, max_header_bytes=1024))
    cases = [
        ([f"X-Filler-{i}: 1" for i in range(20)], 400),
        ([f"X-Filler-{i}: 1" for i in range(10)], 401),
        (["X-Big: " + "a" * 2000], 400),
        (["X-Big: " + "a" * 900], 401),
    ]
    for extra, expected in cases:
        reader, writer = await streams(port)
        writer.write(head(0, *extra))
        assert (await asyncio.wait_for(read_response(reader), 5))[0] == expected, extra[0]


async def test_max_connections_above_the_descriptor_limit_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """In process: a cap that does not fit ``RLIMIT_NOFILE`` less the reserve exits 2 naming both numbers."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        pytest.skip("no file-descriptor limit to exceed")
    monkeypatch.setenv("FS_LIMITS_SECRET", SECRET)
    argv = ["receive", "--inbox", f"sqlite:///{tmp_path}/x.db", "--secret-env", "FS_LIMITS_SECRET", "--port", "0"]
    assert await asyncio.to_thread(main, [*argv, "--max-connections", str(soft - FD_RESERVE + 1)]) == 2
    err = capsys.readouterr().err
    assert f"{soft - FD_RESERVE + 1} is above the file-descriptor limit {soft} less {FD_RESERVE}" in err
    assert not (tmp_path / "x.db").exists()  # refused before anything was opened


def _receive_argv(inbox_url: str, *extra: str) -> list[str]:
    command = [sys.executable, "-m", "fullstory_async", "receive", "--inbox", inbox_url, "--port", "0"]
    return [*command, "--secret-env", "FS_LIMITS_SECRET", *extra]


def _nofile(limit: int) -> Callable[[], None]:
    def lower() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    return lower


@contextlib.asynccontextmanager
async def _receiving(tmp_path: Any, *extra: str, nofile: int | None = None) -> AsyncIterator[tuple[str, str, int]]:
    """Run ``fullstory-async receive`` (under ``nofile`` descriptors); yield its URL, its metrics URL and its pid.

    On exit it is sent SIGTERM: it must exit 0 without ever having run out of descriptors.
    """
    process = await asyncio.create_subprocess_exec(
        *_receive_argv(f"sqlite:///{tmp_path}/x.db", *extra),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "FS_LIMITS_SECRET": SECRET},
        preexec_fn=None if nofile is None else _nofile(nofile),
    )
    assert process.stdout is not None
    try:
        url = (await asyncio.wait_for(process.stdout.readline(), 30)).decode().split()[2]
        metrics = ""
        if "--metrics-port" in extra:
            metrics = (await asyncio.wait_for(process.stdout.readline(), 30)).decode().split()[2]
        yield url, metrics, process.pid
    finally:
        process.terminate()
        _, err = await asyncio.wait_for(process.communicate(), 30)
    assert b"Too many open files" not in err, err.decode()[-2000:]
    assert process.returncode == 0


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/")[0])


async def _deliver_with_retries(url: str, event_id: str) -> list[object]:
    """POST a valid delivery as Fullstory does: retry a 503 (after Retry-After) or a reset; return the outcomes."""
    body, headers = signed_delivery("note.created", {"id": event_id}, secret=SECRET, org_id=ORG)
    outcomes: list[object] = []
    async with aiohttp.ClientSession() as session:
        for _ in range(10):
            try:
                async with session.post(url, data=body, headers=headers) as response:
                    outcomes.append(response.status)
                    if response.status == 202:
                        break
                    assert (response.status, response.headers["Retry-After"]) == (503, "1")
            except aiohttp.ClientConnectionError as exc:  # a refusal closed unanswered past the reserve
                outcomes.append(type(exc).__name__)
            await asyncio.sleep(1)
    return outcomes


async def test_receive_with_256_descriptors_refuses_the_default_cap(tmp_path: Any) -> None:
    """The real command under ``ulimit -n 256``: the default ``--max-connections 512`` exits 2 naming both."""
    process = await asyncio.create_subprocess_exec(
        *_receive_argv(f"sqlite:///{tmp_path}/x.db"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "FS_LIMITS_SECRET": SECRET},
        preexec_fn=_nofile(256),
    )
    _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2, err
    assert f"--max-connections: 512 is above the file-descriptor limit 256 less {FD_RESERVE}".encode() in err


async def test_receive_under_a_flood_of_stalled_bodies_still_acknowledges_a_valid_sender(tmp_path: Any) -> None:
    """The real command, 136 descriptors, a cap of 8: 150 senders stall mid-body; a valid one still gets 202.

    The stallers are refused (503) or cut at the body timeout (408); every one of them is
    closed; the receiver never runs out of descriptors; a sender honouring ``Retry-After``
    has its 202 within a few seconds.
    """
    bounds = ("--max-connections", "8", "--body-timeout", "0.5")
    async with _receiving(tmp_path, *bounds, nofile=8 + FD_RESERVE) as (url, _, _):

        async def stall() -> Stream:
            reader, writer = await asyncio.open_connection("127.0.0.1", _port(url))
            writer.write(head(100) + b"{")
            return reader, writer

        # Every staller is connected and has sent its head before the valid sender starts.
        stalled = await asyncio.wait_for(asyncio.gather(*(stall() for _ in range(150))), 30)
        outcomes = await _deliver_with_retries(url, "n-flood")
        assert outcomes[-1] == 202, outcomes
        try:  # every staller was closed by the receiver
            await asyncio.wait_for(asyncio.gather(*(until_closed(reader) for reader, _ in stalled)), 30)
        finally:
            for _, writer in stalled:
                writer.close()
        async with aiohttp.ClientSession() as session, session.get(f"{url.rstrip('/')}/health") as response:
            assert response.status == 200


async def test_a_mounted_aiohttp_route_enforces_the_body_timeout(
    serve_receiver: ServeReceiver, streams: Callable[[int], Awaitable[Stream]]
) -> None:
    """In the user's own aiohttp app (no gate), the receiver still cuts a stalled body at ``body_timeout``."""
    site = await serve_receiver(SECRET, lambda event: None, body_timeout=0.3)
    assert site.server.port is not None
    reader, writer = await streams(site.server.port)
    writer.write(head(100) + b"{")
    status, headers = await asyncio.wait_for(read_response(reader), 5)
    assert (status, headers["connection"].lower()) == (408, "close")


async def test_the_asgi_app_enforces_the_body_timeout(inbox: Inbox) -> None:
    """Under an ASGI server that never bounds a body (uvicorn), the app answers 408 with Connection: close."""
    app = WebhookReceiver(SECRET, inbox=inbox, settings=ReceiverSettings(body_timeout=0.3)).asgi
    never = asyncio.Event()
    sent: list[dict[str, Any]] = []
    chunks = [{"type": "http.request", "body": b"{", "more_body": True}]

    async def receive() -> dict[str, Any]:
        if chunks:
            return chunks.pop()
        await never.wait()  # the rest of the body never comes
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": [(b"content-length", b"100")], "client": None}
    await asyncio.wait_for(app(scope, receive, send), 5)
    assert sent[0]["status"] == 408
    assert (b"connection", b"close") in sent[0]["headers"]


def test_receiver_and_route_take_the_same_arguments() -> None:
    """``add_webhook_route(app, path, ...)`` takes exactly `WebhookReceiver`'s arguments: they cannot drift."""
    route = list(inspect.signature(add_webhook_route).parameters.values())[2:]
    receiver = list(inspect.signature(WebhookReceiver).parameters.values())
    assert [(p.name, p.kind, p.default) for p in route] == [(p.name, p.kind, p.default) for p in receiver]
    assert [p.name for p in receiver] == ["secrets", "callback", "inbox", "settings", "hooks"]


@pytest.mark.parametrize("field", ["head_timeout", "keepalive_timeout", "max_connections", "max_headers"])
def test_limits_refuse_a_bound_that_is_not_positive(field: str) -> None:
    """A zero bound would close every connection (or admit none): refused, naming the field."""
    with pytest.raises(InvalidArgumentError) as info:
        ConnectionLimits(**{field: 0})
    assert info.value.field == field


async def test_closing_cuts_a_body_still_arriving_rather_than_waiting_the_body_timeout(
    inbox: Inbox, streams: Callable[[int], Awaitable[Stream]]
) -> None:
    """A sender trickling a body cannot hold ``receive``'s drain for ``body_timeout``: it is answered 503 at once.

    Nothing of it was verified, so it is not a delivery in progress; the sender retries the 503.
    """
    app = web.Application()
    receiver = add_webhook_route(app, PATH, SECRET, inbox=inbox, settings=ReceiverSettings(body_timeout=60))
    loop = asyncio.get_running_loop()
    async with serve(app, "127.0.0.1", 0, LIMITS) as port:
        reader, writer = await streams(port)
        writer.write(head(100) + b"{")
        await until(lambda: receiver._reading)  # its handler is reading the body
        started = loop.time()
        await asyncio.wait_for(receiver.aclose(), 5)
        status, headers = await asyncio.wait_for(read_response(reader), 5)
    assert loop.time() - started < 5  # the drain and the server's cleanup, not the 60 s body timeout
    assert (status, headers["connection"].lower(), headers["retry-after"]) == (503, "close", "5")


async def test_closing_the_asgi_app_cuts_a_body_still_arriving(inbox: Inbox) -> None:
    """The same under an ASGI server: a lifespan shutdown answers a body still arriving 503, not after the timeout."""
    receiver = WebhookReceiver(SECRET, inbox=inbox, settings=ReceiverSettings(body_timeout=60))
    reading, sent = asyncio.Event(), []

    async def receive() -> dict[str, Any]:
        reading.set()
        await asyncio.Event().wait()  # the rest of the body never comes
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": [(b"content-length", b"100")], "client": None}
    request = asyncio.create_task(receiver.asgi(scope, receive, send))
    await reading.wait()
    await asyncio.wait_for(receiver.aclose(), 5)
    await asyncio.wait_for(request, 5)
    assert sent[0]["status"] == 503
    assert (b"connection", b"close") in sent[0]["headers"]


async def test_a_connect_flood_never_runs_receive_out_of_descriptors(tmp_path: Any) -> None:
    """3,000 sockets connect at once to the real command at its tightest descriptor limit (cap + `FD_RESERVE`).

    asyncio accepts bursts of connections before the gate counts them and frees an evicted
    one's descriptor an iteration later: the reserve covers that, so accept() never fails with
    EMFILE (which would pause accepting for a second and log a traceback) and a valid sender
    is still acknowledged.
    """
    flood = 3000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < flood + 100:
        pytest.skip(f"this test opens {flood} sockets; the descriptor limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, flood + 100), hard))
    sockets: list[socket.socket] = []
    try:
        async with _receiving(tmp_path, "--max-connections", "8", nofile=8 + FD_RESERVE) as (url, _, _):
            for n in range(flood):
                sock = socket.socket()
                sock.setblocking(False)
                sock.connect_ex(("127.0.0.1", _port(url)))
                sockets.append(sock)
                if n % 50 == 0:
                    await asyncio.sleep(0)  # the receiver accepts while the flood goes on
            outcomes = await _deliver_with_retries(url, "n-connect-flood")
            assert outcomes[-1] == 202, outcomes
            for sock in sockets:
                sock.close()
    finally:
        for sock in sockets:
            sock.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def test_the_metrics_port_holds_a_few_connections_not_another_cap_of_descriptors(tmp_path: Any) -> None:
    """A flood of silent connections to ``--metrics-port`` is held to its own small cap; a scrape still answers.

    With the receiver's cap (512 by default) the metrics port alone could take as many descriptors
    as ``--max-connections`` was checked against, and run the receiver out of them.
    """
    sockets: list[socket.socket] = []
    async with _receiving(tmp_path, "--metrics-port", "0", "--head-timeout", "60") as (_, metrics_url, pid):
        descriptors = f"/proc/{pid}/fd"
        before = len(os.listdir(descriptors))
        for _ in range(100):
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", _port(metrics_url)))
            sockets.append(sock)
            await asyncio.sleep(0.002)  # past the first-byte grace of the earliest: they may be evicted
        held = 100
        for _ in range(200):  # refused connections linger a second; then at most the cap stays
            held = len(os.listdir(descriptors)) - before
            if held <= 8:
                break
            await asyncio.sleep(0.05)
        try:
            assert held <= 8
            async with aiohttp.ClientSession() as session, session.get(metrics_url) as response:
                assert response.status == 200
        finally:
            for sock in sockets:
                sock.close()


async def test_closing_just_as_a_body_deadline_expires_is_not_an_error(inbox: Inbox) -> None:
    """`aclose` between a body deadline firing and its request resuming: no RuntimeError, the body still cut."""
    receiver = WebhookReceiver(SECRET, inbox=inbox)

    async def read() -> None:
        async with receiver.body_deadline():
            await asyncio.Event().wait()

    request = asyncio.create_task(read())
    await asyncio.sleep(0)
    (deadline,) = receiver._reading
    deadline.reschedule(asyncio.get_running_loop().time())  # fires on the next iteration
    await asyncio.sleep(0)  # it fired: the request is cancelled but has not resumed yet
    assert deadline.expired()
    assert receiver._reading
    await receiver.aclose()
    with pytest.raises(TimeoutError):
        await request


@pytest.mark.parametrize("ending", ["half-close", "reset"])
async def test_bodies_cut_short_are_rate_limited_refusal_lines_not_tracebacks(
    inbox: Inbox, streams: Callable[[int], Awaitable[Stream]], caplog: pytest.LogCaptureFixture, ending: str
) -> None:
    """Senders that go away mid-body (aiohttp logged an ERROR traceback for each) are refusal lines, rate-limited."""
    app = web.Application()
    receiver = add_webhook_route(app, PATH, SECRET, inbox=inbox)
    caplog.set_level(logging.DEBUG)
    async with serve(app, "127.0.0.1", 0, LIMITS) as port:
        for _ in range(12):
            reader, writer = await streams(port)
            writer.write(head(100) + b'{"eventName"')
            await until(lambda: receiver._reading)  # its handler is reading the body
            if ending == "reset":
                writer.transport.abort()
            else:
                writer.write_eof()
                await until_closed(reader)
            await until(lambda: not receiver._reading)  # the handler is done with it
    lines = [record for record in caplog.records if record.name.startswith(("aiohttp", "fullstory_async"))]
    assert all(record.exc_info is None for record in lines), [record.getMessage() for record in lines]
    assert sum("webhook refused 400 (body cut short)" in record.getMessage() for record in lines) == 10
