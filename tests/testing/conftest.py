"""Helpers for the fake server's own tests: raw HTTP through a plain aiohttp session."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import attrs
import pytest
from multidict import CIMultiDictProxy

from fullstory_async.testing import FakeFullstory


@attrs.frozen
class Reply:
    status: int
    body: Any
    headers: CIMultiDictProxy[str]
    raw: bytes


class Api:
    """Send raw requests to a fake; ``key=None`` sends no Authorization header."""

    def __init__(self, session: aiohttp.ClientSession, fake: FakeFullstory) -> None:
        self.session = session
        self.fake = fake

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: bytes | None = None,
        params: dict[str, str] | None = None,
        key: str | None = "admin",
        auth: str | None = None,
    ) -> Reply:
        headers = {}
        if auth is not None:
            headers["Authorization"] = auth
        elif key is not None:
            secret = self.fake.read_only_api_key if key == "read_only" else self.fake.api_key
            headers["Authorization"] = f"Basic {secret}"
        async with self.session.request(
            method, self.fake.url + path, json=json, data=data, params=params, headers=headers
        ) as response:
            raw = await response.read()
            try:
                body: Any = await response.json(content_type=None)
            except ValueError:
                body = raw.decode(errors="replace")
            return Reply(response.status, body, response.headers, raw)

    async def create(self, url: str, event_types: list[dict[str, str]] | None = None, **extra: Any) -> Reply:
        payload = {
            "url": url,
            "eventTypes": event_types if event_types is not None else [{"eventName": "note.created"}],
            **extra,
        }
        return await self.call("POST", "/webhooks/v1/endpoints", json=payload)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    # force_close: no pooled connection outlives a test's fake (fault tests drop connections).
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        yield session


@pytest.fixture
def api_factory() -> type[Api]:
    return Api


@pytest.fixture
async def api(fake_fullstory: FakeFullstory, session: aiohttp.ClientSession) -> Api:
    return Api(session, fake_fullstory)
