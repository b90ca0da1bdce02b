"""deliver_event: the signed POST Fullstory sends, checked by a capturing server on 127.0.0.1."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from fullstory_async.testing._delivery import deliver_event, encode_envelope

SECRET = "wh-secret-9Qx7LmPz"
ORG_ID = "o-1A2B3C-na1"


class Capture:
    """A server that records requests and answers with a chosen status."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.status = 202
        self.headers: dict[str, str] = {}

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((request.method, dict(request.headers), await request.read()))
        return web.Response(status=self.status, headers=self.headers, text="ignored")


@pytest.fixture
async def capture() -> AsyncIterator[tuple[Capture, str, aiohttp.ClientSession]]:
    """Start a capturing server on 127.0.0.1 and open a session."""
    recorder = Capture()
    app = web.Application()
    app.router.add_route("*", "/hook", recorder.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    session = aiohttp.ClientSession()
    yield recorder, str(server.make_url("/hook")), session
    await session.close()
    await server.close()


async def test_posts_the_signed_envelope(capture: Any) -> None:
    """One POST with JSON content type, the envelope body and a signature over those exact bytes."""
    recorder, url, session = capture
    data = {"id": "n1", "text": "café"}
    status = await deliver_event(
        session, url, event_name="note.created", data=data, secret=SECRET, org_id=ORG_ID, timestamp=1_700_000_000
    )
    assert status == 202
    [(method, headers, body)] = recorder.requests
    assert method == "POST"
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"eventName": "note.created", "version": 1, "data": data}
    match = re.fullmatch(r"o:([^,]+),t:(\d+),v:(.+)", headers["Fullstory-Signature"])
    assert match is not None
    org, timestamp, signature = match.groups()
    assert (org, timestamp) == (ORG_ID, "1700000000")
    message = body + b":" + org.encode() + b":" + timestamp.encode()
    assert signature == base64.b64encode(hmac.new(SECRET.encode(), message, hashlib.sha256).digest()).decode()


async def test_returns_the_receivers_status_and_follows_no_redirect(capture: Any) -> None:
    """Whatever the receiver answers (500, a redirect) is returned as is."""
    recorder, url, session = capture
    recorder.status = 500
    assert await deliver_event(session, url, event_name="test", data={}, secret=SECRET, org_id=ORG_ID) == 500
    recorder.status, recorder.headers = 307, {"Location": "/elsewhere"}
    assert await deliver_event(session, url, event_name="test", data={}, secret=SECRET, org_id=ORG_ID) == 307
    assert len(recorder.requests) == 2


async def test_version_and_default_timestamp(capture: Any) -> None:
    """The version is sent as given, and the timestamp defaults to now in seconds."""
    recorder, url, session = capture
    await deliver_event(session, url, event_name="x.y", data={"a": 1}, secret=SECRET, org_id=ORG_ID, version=2)
    [(_, headers, body)] = recorder.requests
    assert json.loads(body)["version"] == 2
    timestamp = int(headers["Fullstory-Signature"].split(",")[1][2:])
    assert 1_600_000_000 < timestamp < 10_000_000_000


def test_envelope_is_compact_utf8_json() -> None:
    """The body is compact JSON with non-ASCII text as UTF-8 bytes."""
    assert encode_envelope("test", {"m": "é"}) == '{"eventName":"test","version":1,"data":{"m":"é"}}'.encode()
