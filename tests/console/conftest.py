"""Fixtures for the console tests: a seeded inbox of each engine (``inbox_url``), the console on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import attrs
import pytest
from aiohttp.test_utils import TestServer

from fullstory_async.console import ConsoleSettings, console_app
from fullstory_async.receiving import Inbox, InboxAttempt, delivery_key, open_inbox
from fullstory_async.testing import ManualClock
from tests.receiving.conftest import empty_inbox_url

START = 1_800_000_000.0
"""The seeded inbox's first delivery (seconds since the epoch); one more every 10 s."""

HOSTILE = '<script>alert("body")</script><img src=x onerror=alert(1)>'


@pytest.fixture(params=["sqlite", "postgres"])
async def inbox_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Return an empty inbox URL of each engine (PostgreSQL: FULLSTORY_TEST_POSTGRES_DSN, required in CI)."""
    return await empty_inbox_url(request.param, tmp_path)


@attrs.define
class Seeded:
    """An open inbox with 30 deliveries (newest last in ``keys``): 0-9 done, 10-14 dead, the rest pending."""

    inbox: Inbox
    clock: ManualClock
    keys: list[str]


async def seed(inbox: Inbox, clock: ManualClock, count: int = 30) -> list[str]:
    """Store ``count`` deliveries 10 s apart; settle the first 10 done and the next 5 dead (with an error)."""
    keys = []
    for n in range(count):
        kind = "note.created" if n % 2 else "segment.created"
        body = json.dumps({"eventName": kind, "n": n, "text": HOSTILE}).encode()
        await inbox.put(body, org_id="org-1")
        keys.append(delivery_key("org-1", body))
        clock.advance(10)
    claimed = {record.key: record for record in await inbox.claim(15, lease=60)}
    for n, key in enumerate(keys[:15]):
        run = InboxAttempt(1, clock(), 0.25, "done" if n < 10 else "dead", None if n < 10 else "503 Busy: <b>x</b>")
        if n < 10:
            await inbox.complete(claimed[key], attempt=run)
        else:
            await inbox.bury(claimed[key], error="503 Busy: <b>x</b>", attempt=run)
    return keys


@pytest.fixture
async def seeded(inbox_url: str) -> AsyncIterator[Seeded]:
    """Open the inbox of each engine with a manual clock and 30 deliveries."""
    clock = ManualClock(START)
    async with open_inbox(inbox_url, clock=clock, retention=None) as inbox:
        yield Seeded(inbox, clock, await seed(inbox, clock))


class Console:
    """The console served on 127.0.0.1 (a real socket), with a client session that keeps its cookies."""

    def __init__(self, server: TestServer, session: aiohttp.ClientSession) -> None:
        self.server = server
        self.session = session
        self.port = server.port
        self.seen: list[str] = []  # every response's head and body, for the no-secret checks

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def request(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any, str]:
        """Send a request (no redirect followed); return the status, headers and text."""
        kwargs.setdefault("allow_redirects", False)
        async with self.session.request(method, self.url(path), **kwargs) as response:
            text = await response.text(errors="replace")
            self.seen.append(f"{response.status} {dict(response.headers)!r}\n{text}")
            return response.status, response.headers, text

    async def get(self, path: str, **kwargs: Any) -> tuple[int, Any, str]:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> tuple[int, Any, str]:
        return await self.request("POST", path, **kwargs)

    async def json(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        status, _, text = await self.request(method, path, **kwargs)
        return status, json.loads(text)

    async def csrf(self, path: str = "/") -> str:
        """Return the CSRF token a page carries."""
        _, _, text = await self.get(path)
        return text.split('<meta name="csrf-token" content="', 1)[1].split('"', 1)[0]


ServeConsole = Callable[..., Awaitable[Console]]


@pytest.fixture
async def serve_console() -> AsyncIterator[ServeConsole]:
    """Serve `console_app` of an inbox on 127.0.0.1; each is stopped after the test."""
    consoles: list[Console] = []

    async def start(inbox: Inbox, settings: ConsoleSettings | None = None) -> Console:
        server = TestServer(console_app(inbox, settings), host="127.0.0.1")
        await server.start_server()
        console = Console(server, aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)))
        consoles.append(console)
        return console

    yield start
    for console in consoles:
        await console.session.close()
        await console.server.close()
