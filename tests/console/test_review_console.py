"""The console attacked as a hostile client would (review of #22): each test is a break that was found, then fixed.

Raw sockets against the console served as ``inbox serve`` serves it (`serve`, with the
connection limits of ``receive``), on both inbox engines where the database is part of it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fullstory_async.cli import main
from fullstory_async.console import ConsoleSettings, console_app
from fullstory_async.console._security import LOGIN_BURST, LoginThrottle
from fullstory_async.receiving import Inbox, delivery_key, open_inbox
from fullstory_async.receiving._limits import ConnectionLimits, serve
from fullstory_async.testing import ManualClock
from tests.console.conftest import START, seed

TOKEN = "review-console-token-0123456789"
LIMITS = ConnectionLimits(head_timeout=0.5, keepalive_timeout=0.5)


@pytest.fixture
async def inbox(inbox_url: str) -> AsyncIterator[Inbox]:
    """An inbox of each engine holding 20 deliveries (5 dead)."""
    clock = ManualClock(START)
    async with open_inbox(inbox_url, clock=clock, retention=None) as opened:
        await seed(opened, clock, 20)
        yield opened


async def exchange(port: int, request: bytes, wait: float = 5.0) -> bytes:
    """Send raw bytes, return all the console answers before it closes (b"" if still open after ``wait``)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        return await asyncio.wait_for(reader.read(), wait)
    except TimeoutError:
        return b""
    finally:
        writer.close()


def http(method: str, target: str, port: int, body: bytes = b"", **headers: str) -> bytes:
    """A request in bytes (``latin-1``: a header may hold any byte), closing the connection after its answer."""
    head = f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n"
    head += "".join(f"{name.replace('_', '-')}: {value}\r\n" for name, value in headers.items())
    if body or method == "POST":
        head += f"Content-Length: {len(body)}\r\n"
    return head.encode("latin-1") + b"\r\n" + body


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def cursor(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# ------------------------------------------------------------------------------------------------ hostile input: 400, not 500


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=%C2%B2", "limit"),  # "²".isdigit() is true, int("²") raises
        ("limit=" + "9" * 5000, "limit"),  # past int()'s 4,300 digits
        ("since=" + "9" * 5000 + "d", "since"),
        ("until=" + "9" * 5000 + "h", "until"),
        ("event_type=a%00b", "event_type"),  # PostgreSQL refuses NUL in text: was 503 "the inbox did not answer"
        ("cursor=" + cursor(b'[1.0, "\\u0000"]'), "cursor"),
        ("cursor=" + cursor(b'[1.0, "\\ud800"]'), "cursor"),  # a lone surrogate: SQLite 500, PostgreSQL 503
        ("cursor=" + cursor(b"[" * 3000), "cursor"),  # RecursionError
    ],
)
async def test_hostile_list_input_is_a_400_naming_its_field(inbox: Inbox, query: str, field: str) -> None:
    async with serve(console_app(inbox), "127.0.0.1", 0, LIMITS) as port:
        answer = await exchange(port, http("GET", f"/api/deliveries?{query}", port))
        assert status_of(answer) == 400, answer[:300]
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"].startswith(f"{field}: ")
        page = await exchange(port, http("GET", f"/?{query}", port))
        assert status_of(page) == 400, page[:300]
        assert f'<p role="alert" id="error">{field}: '.encode() in page


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"[" * 30_000, "body"),  # RecursionError in json.loads
        (b'{"event_type": "\\ud800"}', "event_type"),
        (b'{"event_type": "a\\u0000b"}', "event_type"),
        (b'{"since": "' + b"1" * 4400 + b'm"}', "since"),
    ],
)
async def test_a_hostile_replay_request_is_a_400_naming_its_field(inbox: Inbox, body: bytes, field: str) -> None:
    async with serve(console_app(inbox), "127.0.0.1", 0, LIMITS) as port:
        answer = await exchange(port, http("POST", "/api/replay", port, body, Content_Type="application/json"))
    assert status_of(answer) == 400, answer[:300]
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"].startswith(f"{field}: ")
    assert (await inbox.stats()).dead == 5


async def test_a_csrf_header_that_is_not_utf8_is_refused_not_a_500(inbox: Inbox) -> None:
    async with serve(console_app(inbox), "127.0.0.1", 0, LIMITS) as port:
        form = b"status=dead"
        answer = await exchange(
            port,
            http("POST", "/replay", port, form, Content_Type="application/x-www-form-urlencoded", X_CSRF_Token="\xff"),
        )
    assert status_of(answer) == 403, answer[:300]
    assert b'<p role="alert" id="error">csrf: ' in answer
    assert (await inbox.stats()).dead == 5


# ------------------------------------------------------------------------------------------------ what an event sent


async def test_a_body_holding_a_lone_surrogate_escape_shows_on_its_page(inbox: Inbox) -> None:
    """``"\\ud800"`` is valid JSON in valid UTF-8; decoded, it cannot be encoded back: the page showed a 500."""
    body = b'{"eventName": "note.created", "text": "\\ud800 <b>x</b>"}'
    await inbox.put(body, org_id="org-1")
    key = delivery_key("org-1", body)
    async with serve(console_app(inbox), "127.0.0.1", 0, LIMITS) as port:
        answer = await exchange(port, http("GET", f"/deliveries/{key}", port))
    assert status_of(answer) == 200, answer[:300]
    assert b"\\ud800 &lt;b&gt;x&lt;/b&gt;" in answer  # the text as sent, escaped


@pytest.mark.parametrize("name", ["\\ud800", "a\\u0000b"])
async def test_an_event_name_the_database_cannot_hold_is_stored_without_a_type(inbox: Inbox, name: str) -> None:
    """A lone surrogate (either engine) or NUL (PostgreSQL) in ``eventName``: ``put`` failed, so did every retry."""
    body = f'{{"eventName": "{name}", "version": 1, "data": {{}}}}'.encode()
    await inbox.put(body, org_id="org-1")
    entry = await inbox.get(delivery_key("org-1", body))
    assert entry is not None
    assert (entry.record.event_type, entry.record.body) == (None, body)
    async with serve(console_app(inbox), "127.0.0.1", 0, LIMITS) as port:
        assert status_of(await exchange(port, http("GET", f"/deliveries/{entry.record.key}", port))) == 200
        assert status_of(await exchange(port, http("GET", "/", port))) == 200


# ------------------------------------------------------------------------------------------------ logins and bodies


@pytest.mark.parametrize("inbox_url", ["sqlite"], indirect=True)
async def test_concurrent_failed_logins_get_no_more_guesses_than_the_burst(inbox: Inbox) -> None:
    """Twenty logins whose heads all arrive before their bodies: each was checked before any failure counted."""
    form = b"token=not-the-token-but-long-enough"
    head = http("POST", "/login", 0, form, Content_Type="application/x-www-form-urlencoded")
    async with serve(console_app(inbox, ConsoleSettings(token=TOKEN, hosts=None)), "127.0.0.1", 0, LIMITS) as port:
        connections = [await asyncio.open_connection("127.0.0.1", port) for _ in range(20)]
        for _, writer in connections:
            writer.write(head[: -len(form)])
        await asyncio.sleep(0.05)  # every head is parsed and its handler waiting for the body
        for _, writer in connections:
            writer.write(form)
        statuses = [status_of(await reader.read()) for reader, _ in connections]
        for _, writer in connections:
            writer.close()
    assert statuses.count(401) == LOGIN_BURST, statuses
    assert statuses.count(429) == 20 - LOGIN_BURST


@pytest.mark.parametrize("inbox_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("path", ["/login", "/api/replay"])
async def test_a_body_that_never_ends_is_cut_by_the_head_deadline(
    inbox: Inbox, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A request body sent slowly held a connection for ever: 512 of them and the console answered nobody."""
    settings = ConsoleSettings(token=TOKEN) if path == "/login" else ConsoleSettings()
    kind = "application/x-www-form-urlencoded" if path == "/login" else "application/json"
    async with serve(console_app(inbox, settings), "127.0.0.1", 0, LIMITS) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(http("POST", path, port, b"x" * 100, Content_Type=kind)[:-90])  # 10 bytes of 100
        try:
            closed = await asyncio.wait_for(reader.read(), 5)  # the deadline is 0.5 s
        except TimeoutError:
            pytest.fail("the console still waits for the body after 5 s")
        finally:
            writer.close()
    assert closed == b""
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]  # no traceback per sender


@pytest.mark.parametrize("inbox_url", ["sqlite"], indirect=True)
async def test_an_oversized_authorization_header_keeps_the_token_out_of_the_log(
    inbox: Inbox, caplog: pytest.LogCaptureFixture
) -> None:
    """aiohttp's refusal of a header line over the cap quotes the line; the refusal log line quoted that."""
    caplog.set_level(logging.INFO)
    async with serve(console_app(inbox, ConsoleSettings(token=TOKEN)), "127.0.0.1", 0, LIMITS) as port:
        answer = await exchange(port, http("GET", "/api/stats", port, Authorization=f"Bearer {TOKEN}{'a' * 9000}"))
    assert status_of(answer) == 400
    refusals = [record.getMessage() for record in caplog.records if "request refused 400" in record.getMessage()]
    assert refusals
    assert not [line for line in refusals if TOKEN[:12] in line]


def test_failed_logins_count_per_ipv6_network_and_per_ipv4_address() -> None:
    """One IPv6 host holds a /64: counted per address, it had 2^64 buckets of five guesses."""
    throttle = LoginThrottle(ManualClock(0.0))
    for n in range(LOGIN_BURST):
        throttle.failed(f"2001:db8:1:2::{n + 1:x}")
    assert throttle.wait("2001:db8:1:2:ffff:ffff:ffff:ffff") > 0
    assert throttle.wait("2001:db8:1:3::1") == 0
    for _ in range(LOGIN_BURST):
        throttle.failed("::ffff:192.0.2.1")  # an IPv4 client of a dual-stack socket: its own address, not a /64
    assert throttle.wait("::ffff:192.0.2.2") == 0
    assert throttle.wait("192.0.2.2") == 0
    assert throttle.wait("192.0.2.1") > 0  # the same address, mapped or not
    assert throttle.wait("?") == 0


# ------------------------------------------------------------------------------------------------ the command line


def test_a_console_behind_a_proxy_needs_a_token_even_on_loopback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A proxy in front reaches the console from elsewhere: a loopback bind with it served the inbox to anyone."""
    missing = tmp_path / "inbox.db"
    assert main(["inbox", "serve", "--inbox", f"sqlite:///{missing}", "--behind-tls-proxy"]) == 2
    assert "--token-env" in capsys.readouterr().err
    assert not missing.exists()


def test_a_time_ago_past_any_integer_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path}/inbox.db"
    assert main(["inbox", "replay", "--inbox", url, "--since", "9" * 5000 + "d"]) == 2
    assert "--since" in capsys.readouterr().err


async def test_a_loopback_console_behind_a_proxy_answers_the_host_the_proxy_forwards(tmp_path: Path) -> None:
    """The docs: behind --behind-tls-proxy "any Host the proxy forwards is accepted"; on 127.0.0.1 it was 421."""
    url = f"sqlite:///{tmp_path}/inbox.db"
    async with open_inbox(url):
        pass
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fullstory_async", "inbox", "serve", "--inbox", url, "--port", "0",
        "--behind-tls-proxy", "--token-env", "CONSOLE_TOKEN",
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "CONSOLE_TOKEN": TOKEN},
    )  # fmt: skip
    try:
        assert process.stderr is not None
        line = (await asyncio.wait_for(process.stderr.readline(), 30)).decode()
        port = int(line.rsplit(":", 1)[1].strip(" /\n"))
        answer = await exchange(port, http("GET", "/", port).replace(b"127.0.0.1:", b"console.example.com:"))
        assert status_of(answer) == 303  # to the login, not 421
        assert b"Location: /login" in answer
    finally:
        process.terminate()
        await process.wait()
