"""Fixtures for the receiving tests: receivers served on 127.0.0.1 with a client session."""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from fullstory_async.receiving import Inbox, ReceiverSettings, WebhookReceiver, add_webhook_route, open_inbox

PATH = "/fullstory/webhooks"


class Site:
    """A receiver served on 127.0.0.1, with a client session to reach it."""

    def __init__(self, server: TestServer, session: aiohttp.ClientSession, receiver: WebhookReceiver) -> None:
        self.server = server
        self.session = session
        self.receiver = receiver
        self.url = str(server.make_url(PATH))

    async def post(self, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        """POST raw bytes; return the status and the response body."""
        async with self.session.post(self.url, data=body, headers=headers or {}) as response:
            return response.status, await response.read()

    async def stop(self) -> None:
        """Close the session, then the server (which runs the application's cleanup)."""
        await self.session.close()
        await self.server.close()


ServeReceiver = Callable[..., Awaitable[Site]]


@pytest.fixture
async def serve_receiver() -> AsyncIterator[ServeReceiver]:
    """Start ``add_webhook_route`` receivers on free ports; all are stopped after the test."""
    sites: list[Site] = []

    async def start(
        secrets: Any, callback: Any, *, inbox: Inbox | None = None, hooks: Any = (), **settings: Any
    ) -> Site:
        """Mount a receiver; ``settings`` are the fields of its `ReceiverSettings`."""
        app = web.Application()
        receiver = add_webhook_route(
            app, PATH, secrets, callback, inbox=inbox, settings=ReceiverSettings(**settings), hooks=hooks
        )
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        site = Site(server, aiohttp.ClientSession(), receiver)
        sites.append(site)
        return site

    yield start
    for site in sites:
        await site.stop()


POSTGRES_DSN_ENV = "FULLSTORY_TEST_POSTGRES_DSN"


def postgres_dsn() -> str:
    """Return the test database DSN; skip without it locally, fail without it in CI (``CI`` set).

    Under pytest-xdist each worker gets its own database beside the given one (``<name>_gw0``...):
    the tests empty and fill their database, so two workers must not share one.
    """
    dsn = os.environ.get(POSTGRES_DSN_ENV)
    if not dsn:
        message = f"{POSTGRES_DSN_ENV} is not set: no PostgreSQL to test against (.ci/run starts one)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    return _worker_database(dsn, worker) if worker else dsn


@functools.cache
def _worker_database(dsn: str, worker: str) -> str:
    """Create (once) and return the database of one xdist worker on the server of ``dsn``."""
    import asyncpg

    parts = urlsplit(dsn)
    name = f"{parts.path.lstrip('/') or 'postgres'}_{worker}"

    async def create() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
                await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    with concurrent.futures.ThreadPoolExecutor(1) as thread:  # called from tests already on a loop
        thread.submit(asyncio.run, create()).result()
    return parts._replace(path=f"/{name}").geturl()


async def reset_postgres(dsn: str) -> None:
    """Drop the inbox tables, so each test starts from an empty database."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "DROP TABLE IF EXISTS fullstory_inbox, fullstory_inbox_schema, fullstory_inbox_attempts, "
            "fullstory_inbox_backfill"
        )
    finally:
        await conn.close()


async def empty_inbox_url(engine: str, tmp_path: Any) -> str:
    """Return an empty inbox URL of ``engine`` (PostgreSQL: the CI database, emptied)."""
    if engine == "sqlite":
        return f"sqlite:///{tmp_path}/inbox.db"
    dsn = postgres_dsn()
    await reset_postgres(dsn)
    return dsn


@pytest.fixture(params=["sqlite", "postgres"])
async def inbox_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """Return an empty inbox URL of each engine (PostgreSQL: the CI database, emptied)."""
    return await empty_inbox_url(request.param, tmp_path)


@pytest.fixture
async def postgres_url() -> str:
    """Return the CI PostgreSQL DSN, its inbox tables dropped."""
    dsn = postgres_dsn()
    await reset_postgres(dsn)
    return dsn


@pytest.fixture
async def inbox(tmp_path: Path) -> AsyncIterator[Inbox]:
    """Open an empty SQLite inbox in the test's directory."""
    async with open_inbox(f"sqlite:///{tmp_path}/inbox.db") as opened:
        yield opened


@pytest.fixture
def require_postgres() -> Callable[[], str]:
    """Return the function the PostgreSQL fixtures use to find (or demand) the database."""
    return postgres_dsn
