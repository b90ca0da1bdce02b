"""The console attacked as a hostile client would (review of #22): the breaks found (then fixed), and what held.

Raw sockets against the console served as ``inbox serve`` serves it (`serve`, with the
connection limits of ``receive``), on both inbox engines where the database is part of it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import re
import sys
from collections.abc import AsyncIterator
from html import escape, unescape
from pathlib import Path
from urllib.parse import urlencode

import pytest

from fullstory_async._exceptions import InvalidArgumentError
from fullstory_async.cli import main
from fullstory_async.console import ConsoleSettings, console_app
from fullstory_async.console._pages import BODY_SHOWN
from fullstory_async.console._security import (
    _MAX_CLIENTS,
    LOGIN_BURST,
    LOGIN_EVERY,
    MAX_SESSIONS,
    LoginThrottle,
    Sessions,
)
from fullstory_async.receiving import Inbox, InboxFilter, _replaying, delivery_key, open_inbox
from fullstory_async.receiving._limits import ConnectionLimits, serve
from fullstory_async.testing import ManualClock
from tests.console.conftest import START, seed

TOKEN = "review-console-token-0123456789"
LIMITS = ConnectionLimits(head_timeout=0.5, keepalive_timeout=0.5)


@pytest.fixture
async def inbox(inbox_url: str) -> AsyncIterator[Inbox]:
    """Open an inbox of each engine holding 20 deliveries (5 dead)."""
    clock = ManualClock(START)
    async with open_inbox(inbox_url, clock=clock, retention=None) as opened:
        await seed(opened, clock, 20)
        yield opened


async def exchange(port: int, request: bytes) -> bytes:
    """Send raw bytes, return all the console answers before it closes (b"" if still open after 5 s)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        return await asyncio.wait_for(reader.read(), 5)
    except TimeoutError:
        return b""
    finally:
        writer.close()


def http(method: str, target: str, port: int, body: bytes = b"", **headers: str) -> bytes:
    """Return a request in bytes (``latin-1``: a header may hold any byte); the connection closes after it."""
    head = f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n"
    head += "".join(f"{name.replace('_', '-')}: {value}\r\n" for name, value in headers.items())
    if body or method == "POST":
        head += f"Content-Length: {len(body)}\r\n"
    return head.encode("latin-1") + b"\r\n" + body


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def cursor(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# -------------------------------------------------------------------------------------------- hostile input: 400


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
    r"""``"\ud800"`` is valid JSON in valid UTF-8; decoded, it cannot be encoded back: the page showed a 500."""
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
        await asyncio.sleep(0.05)  # the heads parsed first (the old code then failed); the fix needs no timing
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
    """The parser's refusal of a header line over the cap quotes the line; the refusal log line quoted that."""
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


# ------------------------------------------------------------------------------------------------ attacks that held


@pytest.mark.parametrize("inbox_url", ["sqlite"], indirect=True)
async def test_a_login_posted_from_another_site_is_refused(inbox: Inbox) -> None:
    """Login CSRF: a page elsewhere posting the login form (the token would have to be guessed anyway)."""
    async with serve(console_app(inbox, ConsoleSettings(token=TOKEN)), "127.0.0.1", 0, LIMITS) as port:
        form = f"token={TOKEN}".encode()
        for headers in (
            {"Origin": "http://evil.example"},
            {"Origin": "null"},
            {"Origin": f"http://localhost:{port}"},
            {"Sec-Fetch-Site": "cross-site"},
        ):
            request = http("POST", "/login", port, form, Content_Type="application/x-www-form-urlencoded", **headers)
            answer = await exchange(port, request)
            assert status_of(answer) == 403, headers
            assert b"Set-Cookie" not in answer


def test_the_login_throttle_and_the_sessions_stay_bounded_under_a_flood() -> None:
    clock = ManualClock(0.0)
    throttle = LoginThrottle(clock)
    for n in range(3 * _MAX_CLIENTS):
        throttle.failed(f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}")
    assert len(throttle._buckets) == _MAX_CLIENTS
    assert throttle.wait(f"10.0.{(3 * _MAX_CLIENTS - 1) >> 8 & 255}.{(3 * _MAX_CLIENTS - 1) & 255}") == 0  # 4 left
    sessions = Sessions(ConsoleSettings(token=TOKEN, clock=clock))
    first, _ = sessions.start()
    for _ in range(MAX_SESSIONS):
        sessions.start()
    assert len(sessions._sessions) == MAX_SESSIONS
    assert sessions.find(first) is None  # the oldest ended


@pytest.mark.parametrize("inbox_url", ["sqlite"], indirect=True)
async def test_filters_reflected_into_the_page_stay_text(inbox: Inbox) -> None:
    hostile = '"><script>alert(1)</script><a href="javascript:alert(2)">'
    query = urlencode({"event_type": hostile, "status": "dead", "limit": "2"})
    async with serve(console_app(inbox), "127.0.0.1", 0, LIMITS) as port:
        page = (await exchange(port, http("GET", f"/?{query}", port))).decode()
        refused = (await exchange(port, http("GET", f"/?{urlencode({'since': hostile})}", port))).decode()
    assert status_of(page.encode()) == 200
    for text in (page, refused):
        assert "<script>alert" not in text
        assert 'href="javascript:' not in text
        assert "&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in text
        assert len(re.findall(r"<script\b", text)) == 1  # only our own file
        assert re.findall(r'href="([^"]*)"', text)
        assert all(href.startswith(("/", "#")) for href in re.findall(r'href="([^"]*)"', text))


@pytest.mark.parametrize("inbox_url", ["sqlite"], indirect=True)
async def test_read_only_refuses_every_method_and_spelling_of_an_action(inbox: Inbox) -> None:
    """With a valid CSRF token and the right content types: every spelling of an action path, every method."""
    keys = [record.key for record in (await inbox.list(InboxFilter(status="dead"), None, 5)).records]
    paths = [
        "/replay", "/replay/", "//replay", "/%72eplay", "/REPLAY", "/api/replay", "/api//replay", "/api/replay?x=1",
        f"/deliveries/{keys[0]}/replay", f"/deliveries/{keys[0][:8]}/replay", f"/deliveries/{keys[0]}%2Freplay",
        f"/deliveries/{keys[0]}/replay/", f"/deliveries/{keys[0].upper()}/replay",
    ]  # fmt: skip
    async with serve(console_app(inbox, ConsoleSettings(read_only=True)), "127.0.0.1", 0, LIMITS) as port:
        page = (await exchange(port, http("GET", "/", port))).decode()
        csrf = page.split('<meta name="csrf-token" content="', 1)[1].split('"', 1)[0]
        for path in paths:
            for method in ("POST", "PUT", "PATCH", "DELETE"):
                form = f"csrf={csrf}&status=dead&all=1&yes=1".encode()
                kind = "application/x-www-form-urlencoded"
                if "/api/" in path:
                    form, kind = b'{"status": "dead", "all": true, "yes": true}', "application/json"
                answer = await exchange(port, http(method, path, port, form, Content_Type=kind, X_CSRF_Token=csrf))
                assert status_of(answer) in (403, 404, 405), (method, path, answer[:200])
    assert (await inbox.stats()).dead == 5


@pytest.mark.parametrize("inbox_url", ["sqlite"], indirect=True)
async def test_an_ambiguous_key_prefix_is_refused_as_inbox_replay_refuses_it(inbox_url: str) -> None:
    """Two stored keys sharing their first 8 hex digits (found once by a birthday search over ~2^17 bodies)."""
    async with open_inbox(inbox_url, retention=None) as inbox:
        await _refuse_an_ambiguous_prefix(inbox)


async def _refuse_an_ambiguous_prefix(inbox: Inbox) -> None:
    twins = [json.dumps({"eventName": "note.created", "n": n}).encode() for n in (115040, 124471)]
    prefix = "36436928"
    for twin in twins:
        key = delivery_key("org-1", twin)
        assert key.startswith(prefix)
        await inbox.put(twin, org_id="org-1")
        claimed = await inbox.claim(1, lease=60)
        await inbox.bury(claimed[0], error="x")
        assert claimed[0].key == key
    with pytest.raises(InvalidArgumentError) as refused:
        await _replaying.replay(inbox, _replaying.parse_filter(key=prefix))
    async with serve(console_app(inbox), "127.0.0.1", 0, LIMITS) as port:
        answer = await exchange(port, http("POST", "/api/replay", port, f'{{"key": "{prefix}"}}'.encode(),
                                           Content_Type="application/json"))  # fmt: skip
        assert status_of(answer) == 400
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1]) == {"error": str(refused.value)}
        page = (await exchange(port, http("GET", "/", port))).decode()
        csrf = page.split('<meta name="csrf-token" content="', 1)[1].split('"', 1)[0]
        for path, form in (("/replay", f"csrf={csrf}&key={prefix}"), (f"/deliveries/{prefix}/replay", f"csrf={csrf}")):
            request = http("POST", path, port, form.encode(), Content_Type="application/x-www-form-urlencoded")
            answer = await exchange(port, request)
            assert status_of(answer) == 400
            assert f'<p role="alert" id="error">{escape(str(refused.value))}</p>'.encode() in answer
    assert (await inbox.stats()).dead == 2


def test_a_time_ago_past_any_integer_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path}/inbox.db"
    assert main(["inbox", "replay", "--inbox", url, "--since", "9" * 5000 + "d"]) == 2
    assert "--since" in capsys.readouterr().err


@pytest.mark.parametrize("inbox_url", ["sqlite"], indirect=True)
async def test_a_body_over_the_display_cap_is_shown_as_sent_not_parsed(inbox: Inbox) -> None:
    """Parsing a body of megabytes to show its first 256 KiB held the event loop (10 MB of JSON: 7 s)."""
    body = json.dumps({"eventName": "big", "items": [{"n": n} for n in range(40_000)]}).encode()
    assert len(body) > BODY_SHOWN
    await inbox.put(body, org_id="org-1")
    async with serve(console_app(inbox), "127.0.0.1", 0, LIMITS) as port:
        page = (await exchange(port, http("GET", f"/deliveries/{delivery_key('org-1', body)}", port))).decode()
    shown = unescape(page.split('<pre id="body">', 1)[1].split("</pre>", 1)[0])
    assert shown == body[:BODY_SHOWN].decode()
    assert "shown as sent, not pretty-printed" in page
    assert "truncated" in page


@pytest.mark.parametrize("inbox_url", ["sqlite"], indirect=True)
async def test_bearer_guesses_are_throttled_like_logins(inbox: Inbox) -> None:
    """The API compared every ``Authorization: Bearer`` at full speed: the login throttle guarded the form only."""
    clock = ManualClock(0.0)
    settings = ConsoleSettings(token=TOKEN, clock=clock)
    async with serve(console_app(inbox, settings), "127.0.0.1", 0, LIMITS) as port:

        async def call(token: str) -> bytes:
            return await exchange(port, http("GET", "/api/stats", port, Authorization=f"Bearer {token}"))

        statuses = [status_of(await call(f"guess-{n:02d}-0123456789abcdef")) for n in range(LOGIN_BURST + 3)]
        assert statuses == [401] * LOGIN_BURST + [429] * 3
        answer = await call(TOKEN)  # even the right token waits: no guess is answered meanwhile
        assert status_of(answer) == 429
        assert b"Retry-After: 2\r\n" in answer
        form = http("POST", "/login", port, f"token={TOKEN}".encode(), Content_Type="application/x-www-form-urlencoded")
        assert status_of(await exchange(port, form)) == 429  # one throttle for both ways in
        clock.advance(LOGIN_EVERY)
        assert status_of(await call(TOKEN)) == 200
        assert status_of(await call(TOKEN)) == 200  # a right token costs nothing
