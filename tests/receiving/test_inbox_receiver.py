"""Receivers with an inbox (aiohttp and ASGI): 2xx only after commit, duplicates, refusals never stored."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from fullstory_async.receiving import (
    Inbox,
    InboxError,
    ReceiverSettings,
    RefusalLog,
    WebhookReceiver,
    add_webhook_route,
    sign,
    signed_delivery,
)

SECRET = "wh-secret-9Qx7LmPz"
ORG = "o-1A2B3C-na1"


@pytest.fixture
async def site(inbox: Inbox) -> AsyncIterator[tuple[str, aiohttp.ClientSession, WebhookReceiver]]:
    app = web.Application()
    receiver = add_webhook_route(app, "/hooks", SECRET, inbox=inbox, settings=ReceiverSettings(max_body_bytes=4096))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    async with aiohttp.ClientSession() as session:
        yield str(server.make_url("/hooks")), session, receiver
    await server.close()


async def post(session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]) -> int:
    async with session.post(url, data=body, headers=headers) as response:
        return response.status


async def stored(inbox: Inbox) -> list[bytes]:
    return [record.body async for record in inbox.export()]


async def test_verified_delivery_is_stored_then_acknowledged_and_a_repeat_is_not_stored_again(
    site: Any, inbox: Inbox
) -> None:
    """202 for the delivery and for its re-signed repeat; the inbox holds it once."""
    url, session, _ = site
    body, headers = signed_delivery("note.created", {"id": "n-1"}, secret=SECRET, org_id=ORG)
    assert await post(session, url, body, headers) == 202
    resigned = {**headers, "Fullstory-Signature": sign(body, SECRET, ORG, timestamp=int(time.time()) + 5)}
    assert await post(session, url, body, resigned) == 202
    assert await stored(inbox) == [body]


async def test_the_2xx_waits_for_the_commit(site: Any, inbox: Inbox, monkeypatch: pytest.MonkeyPatch) -> None:
    """While the inbox has not committed, no response leaves; once it has, the 202 does."""
    url, session, _ = site
    gate = asyncio.Event()
    entered = asyncio.Event()
    real_put = inbox.put

    async def slow_put(*args: Any, **kwargs: Any) -> bool:
        entered.set()
        await gate.wait()
        return await real_put(*args, **kwargs)

    monkeypatch.setattr(inbox, "put", slow_put)
    body, headers = signed_delivery("test", {}, secret=SECRET, org_id=ORG)
    answer = asyncio.create_task(post(session, url, body, headers))
    await entered.wait()
    await asyncio.sleep(0.01)  # the response would have left by now if it did not wait
    assert not answer.done()
    gate.set()
    assert await answer == 202
    assert await stored(inbox) == [body]


async def test_an_inbox_failure_is_a_503_never_a_2xx(
    site: Any, inbox: Inbox, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """If the commit fails, the sender gets 503 (and retries); nothing is acknowledged."""
    url, session, _ = site

    async def broken_put(*args: Any, **kwargs: Any) -> bool:
        raise InboxError("disk I/O error")

    monkeypatch.setattr(inbox, "put", broken_put)
    body, headers = signed_delivery("test", {}, secret=SECRET, org_id=ORG)
    caplog.set_level(logging.INFO, logger="fullstory_async.receiving")
    for _ in range(30):
        assert await post(session, url, body, headers) == 503
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert 1 <= len(errors) <= 10  # one line each, rate-limited
    assert "not stored, the sender will retry: disk I/O error" in errors[0]


@pytest.mark.parametrize(
    ("make", "status"),
    [
        (lambda body, headers: (body, {**headers, "Fullstory-Signature": sign(body, "forged", ORG)}), 401),
        (lambda body, headers: (body + b" ", headers), 401),
        (lambda body, headers: (body, {"Content-Type": "application/json"}), 401),
        (lambda body, headers: (b"[1]", {"Fullstory-Signature": sign(b"[1]", SECRET, ORG)}), 400),
        (lambda body, headers: (b"x" * 4097, headers), 413),
    ],
)
async def test_refused_deliveries_are_never_stored(site: Any, inbox: Inbox, make: Any, status: int) -> None:
    """Forged, tampered, unsigned, non-event and oversized deliveries get their status and leave no trace."""
    url, session, _ = site
    body, headers = make(*signed_delivery("test", {}, secret=SECRET, org_id=ORG))
    assert await post(session, url, body, headers) == status
    assert await stored(inbox) == []


async def test_health_route_and_503_while_closing(site: Any) -> None:
    """GET <path>/health is 200 ok while serving; after aclose it and deliveries answer 503."""
    url, session, receiver = site
    async with session.get(f"{url}/health") as response:
        assert (response.status, await response.json()) == (200, {"status": "ok"})
    await receiver.aclose()
    async with session.get(f"{url}/health") as response:
        assert (response.status, await response.json()) == (503, {"status": "closing"})
    assert await post(session, url, *signed_delivery("test", {}, secret=SECRET, org_id=ORG)) == 503


async def test_refusal_lines_are_rate_limited(inbox: Inbox, caplog: pytest.LogCaptureFixture) -> None:
    """200 forged deliveries write at most burst lines per window, then one line says how many were not logged."""
    now = [0.0]
    receiver = WebhookReceiver(
        SECRET, inbox=inbox, settings=ReceiverSettings(refusal_log=RefusalLog(burst=5, window=10, clock=lambda: now[0]))
    )
    body = signed_delivery("test", {}, secret=SECRET, org_id=ORG)[0]
    caplog.set_level(logging.INFO, logger="fullstory_async.receiving")
    for _ in range(200):
        assert await receiver.accept(body, sign(body, "forged", ORG)) == 401
    assert len(caplog.records) == 5
    assert all("\n" not in r.getMessage() for r in caplog.records)
    now[0] = 10.0
    assert await receiver.accept(body, sign(body, "forged", ORG)) == 401
    assert "195 more refusals not logged" in caplog.records[-1].getMessage()
    assert SECRET not in caplog.text
