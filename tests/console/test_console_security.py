"""The console's guards, each attacked: Host (DNS rebinding), Origin, token, session, CSRF, throttle, headers."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import aiohttp
import pytest

from fullstory_async.console import ConsoleSettings
from fullstory_async.console._security import CSP, LOGIN_BURST, LOGIN_EVERY
from fullstory_async.receiving import Inbox, open_inbox
from fullstory_async.testing import ManualClock
from tests.console.conftest import START, Console, ServeConsole, seed

TOKEN = "console-token-0123456789-abcdef"
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@pytest.fixture
async def inbox(tmp_path: object) -> AsyncIterator[Inbox]:
    clock = ManualClock(START)
    async with open_inbox(f"sqlite:///{tmp_path}/inbox.db", clock=clock, retention=None) as opened:
        await seed(opened, clock, 20)
        yield opened


def assert_no_token(console: Console) -> None:
    """Assert that the token appears in no response (head or body) the console sent."""
    assert console.seen
    for answer in console.seen:
        assert TOKEN not in answer
        assert TOKEN[:12] not in answer


async def log_in(console: Console, token: str = TOKEN) -> tuple[int, aiohttp.typedefs.LooseHeaders]:
    status, headers, _ = await console.post("/login", data={"token": token})
    return status, headers


# ------------------------------------------------------------------------------------------------ Host and Origin


@pytest.mark.parametrize("path", ["/", "/api/stats", "/api/deliveries", "/login", "/static/console.js", "/activity"])
async def test_a_foreign_host_is_refused_before_anything_else(
    inbox: Inbox, serve_console: ServeConsole, path: str
) -> None:
    """DNS rebinding: evil.example resolving to 127.0.0.1 reaches the socket with its own name in Host."""
    console = await serve_console(inbox)
    for host in (f"evil.example:{console.port}", "evil.example", f"127.0.0.1:{console.port + 1}", "", "127.0.0.1"):
        status, headers, text = await console.get(path, headers={"Host": host})
        assert status == 421, host
        assert not re.search("deliveries|csrf", text)
        assert headers["Content-Security-Policy"] == CSP
    for host in (f"127.0.0.1:{console.port}", f"localhost:{console.port}", f"[::1]:{console.port}"):
        status, _, _ = await console.get(path, headers={"Host": host})
        assert status == (303 if path == "/login" else 200), host  # no login without a token


async def test_a_foreign_host_cannot_replay(inbox: Inbox, serve_console: ServeConsole) -> None:
    console = await serve_console(inbox)
    csrf = await console.csrf()
    status, _, _ = await console.post(
        "/replay", data={"csrf": csrf, "status": "dead"}, headers={"Host": f"evil.example:{console.port}"}
    )
    assert status == 421
    assert (await inbox.stats()).dead == 5


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Origin": "null", "Sec-Fetch-Site": "cross-site"},  # a sandboxed frame of another site
        {"Origin": "http://127.0.0.1:1"},
        {"Origin": "http://localhost:{port}"},  # another origin than the Host the request names
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ],
)
async def test_a_state_changing_request_from_another_origin_is_refused(
    inbox: Inbox, serve_console: ServeConsole, headers: dict[str, str]
) -> None:
    console = await serve_console(inbox)
    csrf = await console.csrf()
    headers = {name: value.format(port=console.port) for name, value in headers.items()}
    status, _, text = await console.post("/replay", data={"csrf": csrf, "status": "dead"}, headers=headers)
    assert status == 403
    assert "origin" in text
    status, answer = await console.json("POST", "/api/replay", json={"status": "dead"}, headers=headers)
    assert (status, answer["error"].split(":")[0]) == (403, "origin")
    assert (await inbox.stats()).dead == 5
    same = {"Origin": f"http://127.0.0.1:{console.port}", "Sec-Fetch-Site": "same-origin"}
    status, _, _ = await console.post("/replay", data={"csrf": csrf, "status": "dead"}, headers=same)
    assert status == 200
    assert (await inbox.stats()).dead == 0


async def test_a_null_origin_from_our_own_page_is_accepted(inbox: Inbox, serve_console: ServeConsole) -> None:
    """Under a user's no-referrer policy a browser sends "Origin: null" on a same-origin form, with Sec-Fetch-Site."""
    console = await serve_console(inbox)
    csrf = await console.csrf()
    ours = {"Origin": "null", "Sec-Fetch-Site": "same-origin"}
    status, _, _ = await console.post("/replay", data={"csrf": csrf, "status": "dead"}, headers=ours)
    assert status == 200
    assert (await inbox.stats()).dead == 0


# ------------------------------------------------------------------------------------------------ CSRF


async def test_a_page_action_needs_the_csrf_token(inbox: Inbox, serve_console: ServeConsole) -> None:
    console = await serve_console(inbox)
    csrf = await console.csrf()
    for data, headers in (
        ({"status": "dead"}, {}),
        ({"status": "dead", "csrf": ""}, {}),
        ({"status": "dead", "csrf": csrf[:-1] + ("A" if csrf[-1] != "A" else "B")}, {}),
        ({"status": "dead"}, {"X-CSRF-Token": "wrong"}),
    ):
        status, _, text = await console.post("/replay", data=data, headers=headers)
        assert status == 403
        assert '<p role="alert" id="error">csrf: ' in text
    status, _, _ = await console.post(f"/deliveries/{'0' * 64}/replay", data={})
    assert status == 403
    assert (await inbox.stats()).dead == 5
    status, _, _ = await console.post("/replay", data={"status": "dead"}, headers={"X-CSRF-Token": csrf})
    assert status == 200
    assert (await inbox.stats()).dead == 0


async def test_each_console_has_its_own_csrf_token(inbox: Inbox, serve_console: ServeConsole) -> None:
    first, second = await serve_console(inbox), await serve_console(inbox)
    token = await first.csrf()
    assert token != await second.csrf()
    status, _, _ = await second.post("/replay", data={"status": "dead", "csrf": token})
    assert status == 403


# ------------------------------------------------------------------------------------------------ token and sessions


async def test_the_api_needs_the_bearer_token(inbox: Inbox, serve_console: ServeConsole) -> None:
    clock = ManualClock(0.0)
    console = await serve_console(inbox, ConsoleSettings(token=TOKEN, clock=clock))
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": TOKEN},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": "Bearer "},
        {"Authorization": f"Bearer {TOKEN}x"},
    ):
        for method, path in (("GET", "/api/deliveries"), ("GET", "/api/stats"), ("POST", "/api/replay")):
            status, answer = await console.json(method, path, headers=headers, json={"status": "dead"})
            assert (status, answer["error"].split(":")[0]) == (401, "authorization")
            clock.advance(LOGIN_EVERY)  # a wrong bearer token is a failed login (throttled)
    status, headers, _ = await console.get("/api/stats")
    assert headers["WWW-Authenticate"] == 'Bearer realm="fullstory-async console"'
    status, answer = await console.json("GET", "/api/stats", headers={"Authorization": f"Bearer {TOKEN}"})
    assert (status, answer["dead"]) == (200, 5)
    # A bearer call needs no CSRF token (no browser adds that header by itself).
    status, answer = await console.json(
        "POST", "/api/replay", json={"status": "dead"}, headers={"Authorization": f"bearer {TOKEN}"}
    )
    assert (status, answer["replayed"]) == (200, 5)
    assert_no_token(console)


async def test_pages_need_a_login_whose_cookie_is_a_session_not_the_token(
    inbox: Inbox, serve_console: ServeConsole
) -> None:
    clock = ManualClock(100.0)
    console = await serve_console(inbox, ConsoleSettings(token=TOKEN, session_ttl=600, clock=clock))
    for path in ("/", "/activity", f"/deliveries/{'0' * 64}"):
        status, headers, _ = await console.get(path)
        assert (status, headers["Location"]) == (303, "/login")
    status, _, text = await console.get("/login")
    assert status == 200
    assert '<label for="token">Token</label><input id="token" name="token" type="password"' in text
    status, _, text = await console.post("/login", data={"token": "wrong"})
    assert status == 401
    assert '<p role="alert" id="error">token: wrong token</p>' in text
    status, headers = await log_in(console)
    assert (status, headers["Location"]) == (303, "/")
    cookie = headers["Set-Cookie"]
    assert re.fullmatch(
        r"fs_console_session=[A-Za-z0-9_-]{43}; HttpOnly; Max-Age=600; Path=/; SameSite=Strict", cookie
    ), cookie
    status, _, text = await console.get("/")
    assert status == 200
    assert '<form id="logout" method="post" action="/logout">' in text
    assert_no_token(console)
    # The session ends server-side after session_ttl, whatever the browser keeps.
    clock.advance(599)
    assert (await console.get("/"))[0] == 200
    clock.advance(1)
    assert (await console.get("/"))[0] == 303
    status, _ = await console.json("GET", "/api/stats")
    assert status == 401


async def test_a_forged_or_ended_session_cookie_is_refused(inbox: Inbox, serve_console: ServeConsole) -> None:
    console = await serve_console(inbox, ConsoleSettings(token=TOKEN))
    for value in ("x", TOKEN, "A" * 43):
        status, _, _ = await console.get("/", headers={"Cookie": f"fs_console_session={value}"})
        assert status == 303
    await log_in(console)
    csrf = await console.csrf()
    status, headers, _ = await console.post("/logout", data={"csrf": csrf})
    assert (status, headers["Location"]) == (303, "/login")
    assert "Max-Age=0" in headers["Set-Cookie"] or "expires=" in headers["Set-Cookie"].lower()
    # The same cookie replayed after logout: the session is gone server-side.
    status, _, _ = await console.get("/")
    assert status == 303


async def test_a_logged_in_page_still_needs_csrf_and_an_api_call_with_a_session_too(
    inbox: Inbox, serve_console: ServeConsole
) -> None:
    console = await serve_console(inbox, ConsoleSettings(token=TOKEN))
    await log_in(console)
    csrf = await console.csrf()
    assert (await console.post("/replay", data={"status": "dead"}))[0] == 403
    status, answer = await console.json("POST", "/api/replay", json={"status": "dead"})
    assert (status, answer["error"].split(":")[0]) == (403, "csrf")
    status, answer = await console.json("POST", "/api/replay", json={"status": "dead"}, headers={"X-CSRF-Token": csrf})
    assert (status, answer["replayed"]) == (200, 5)
    assert (await console.post("/logout", data={}))[0] == 403  # logging out needs it too


async def test_the_cookie_is_secure_under_tls(inbox: Inbox, serve_console: ServeConsole) -> None:
    console = await serve_console(inbox, ConsoleSettings(token=TOKEN, secure=True))
    _, headers = await log_in(console)
    assert "; Secure" in headers["Set-Cookie"]


async def test_failed_logins_are_throttled_per_address(inbox: Inbox, serve_console: ServeConsole) -> None:
    clock = ManualClock(0.0)
    console = await serve_console(inbox, ConsoleSettings(token=TOKEN, clock=clock))
    for _ in range(LOGIN_BURST):
        assert (await log_in(console, "wrong"))[0] == 401
    status, headers = await log_in(console, "wrong")
    assert status == 429
    assert headers["Retry-After"] == str(int(LOGIN_EVERY))
    assert (await log_in(console))[0] == 429  # even the right token waits: no guess is answered meanwhile
    clock.advance(LOGIN_EVERY)
    assert (await log_in(console, "wrong"))[0] == 401
    assert (await log_in(console, "wrong"))[0] == 429
    clock.advance(LOGIN_EVERY)
    assert (await log_in(console))[0] == 303
    assert_no_token(console)


async def test_without_a_token_there_is_no_login(inbox: Inbox, serve_console: ServeConsole) -> None:
    console = await serve_console(inbox)
    status, headers, _ = await console.get("/login")
    assert (status, headers["Location"]) == (303, "/")
    status, _, _ = await console.post("/login", data={"token": "x"})
    assert status == 303


# ------------------------------------------------------------------------------------------------ headers


async def test_every_response_carries_the_security_headers(inbox: Inbox, serve_console: ServeConsole) -> None:
    console = await serve_console(inbox, ConsoleSettings(token=TOKEN))
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    answers = [
        await console.get("/"),  # 303
        await console.get("/login"),
        await console.post("/login", data={"token": "wrong"}),  # 401
        await console.get("/static/console.js"),
        await console.get("/static/console.css"),
        await console.get("/static/nothing.js"),  # 404
        await console.get("/api/stats"),  # 401
        await console.get("/api/stats", headers=bearer),
        await console.get("/api/deliveries?limit=0", headers=bearer),  # 400
        await console.get("/api/replay", headers=bearer),  # 405
        await console.post("/api/replay", data=b"{" * 70_000, headers={**bearer, "Content-Type": "application/json"}),
        await console.get("/", headers={"Host": "evil.example"}),  # 421
    ]
    statuses = [status for status, _, _ in answers]
    assert statuses == [303, 200, 401, 200, 200, 404, 401, 200, 400, 405, 413, 421]
    for status, headers, _ in answers:
        for name, value in HEADERS.items():
            assert headers.get(name) == value, (status, name)
    assert answers[3][1]["Content-Type"].startswith("text/javascript")
    assert answers[4][1]["Content-Type"].startswith("text/css")
    await log_in(console)
    for path in ("/", "/activity", f"/deliveries/{'0' * 64}"):
        _, headers, text = await console.get(path)
        assert headers["Content-Security-Policy"] == CSP
        assert not re.search(r"style=|onclick|<script>", text)  # nothing inline
        assert text.startswith('<!DOCTYPE html>\n<html lang="en">')
        assert re.search("<title>.+</title>.*<main", text)
