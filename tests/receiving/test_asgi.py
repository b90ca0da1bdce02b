"""The ASGI receiver: driven by a tiny in-test ASGI server, and mounted in FastAPI (httpx's ASGI transport)."""

from __future__ import annotations

import json
from typing import Any

import httpx
from fastapi import FastAPI

from fullstory_async.receiving import Inbox, ReceiverSettings, WebhookReceiver, sign, signed_delivery

SECRET = "wh-secret-9Qx7LmPz"
ORG = "o-1A2B3C-na1"


async def call(
    app: Any,
    method: str,
    path: str,
    *,
    chunks: list[bytes] = (b"",),  # type: ignore[assignment]
    headers: dict[str, str] | None = None,
    root_path: str = "",
) -> tuple[int, bytes, int]:
    """Drive one ASGI request; return the status, the response body and how many body chunks the app read."""
    messages = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1} for i, chunk in enumerate(chunks)
    ]
    read = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal read
        read += 1
        return messages[read - 1] if read <= len(messages) else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": method,
        "path": root_path + path,
        "root_path": root_path,
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
        "client": ("127.0.0.1", 5000),
    }
    await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, body, read


async def test_asgi_delivery_is_committed_then_acknowledged(inbox: Inbox) -> None:
    """POST / with a signed delivery in three chunks: 202, and the inbox holds the exact bytes."""
    app = WebhookReceiver(SECRET, inbox=inbox).asgi
    body, headers = signed_delivery("note.created", {"id": "n-1"}, secret=SECRET, org_id=ORG)
    chunks = [body[:10], body[10:20], body[20:]]
    assert (await call(app, "POST", "/", chunks=chunks, headers=headers))[0] == 202
    assert [r.body async for r in inbox.export()] == [body]


async def test_asgi_size_cap_before_verification(inbox: Inbox) -> None:
    """A declared oversize is refused without reading; a chunked one is not read past the limit."""
    app = WebhookReceiver(SECRET, inbox=inbox, settings=ReceiverSettings(max_body_bytes=100)).asgi
    status, _, read = await call(app, "POST", "/", chunks=[b"x" * 50] * 10, headers={"Content-Length": "500"})
    assert (status, read) == (413, 0)
    status, _, read = await call(app, "POST", "/", chunks=[b"x" * 60] * 10)
    assert (status, read) == (413, 2)
    assert [r async for r in inbox.export()] == []


async def test_asgi_refusals_routes_and_health(inbox: Inbox) -> None:
    """401 forged, 400 signed non-event, 404 elsewhere, 405 GET /, health 200 then 503 after the lifespan ends."""
    receiver = WebhookReceiver(SECRET, inbox=inbox)
    app = receiver.asgi
    body, headers = signed_delivery("test", {}, secret=SECRET, org_id=ORG)
    forged = {**headers, "Fullstory-Signature": sign(body, "nope", ORG)}
    assert (await call(app, "POST", "/", chunks=[body], headers=forged))[0] == 401
    not_event = {"Fullstory-Signature": sign(b"{}", SECRET, ORG)}
    assert (await call(app, "POST", "/", chunks=[b"{}"], headers=not_event))[0] == 400
    assert (await call(app, "POST", "/other"))[0] == 404
    assert (await call(app, "GET", "/"))[0] == 405
    status, document, _ = await call(app, "GET", "/health")
    assert (status, json.loads(document)) == (200, {"status": "ok"})
    lifespan = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    replies: list[str] = []

    async def receive() -> dict[str, str]:
        return next(lifespan)

    async def send(message: dict[str, str]) -> None:
        replies.append(message["type"])

    await app({"type": "lifespan"}, receive, send)
    assert replies == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert (await call(app, "GET", "/health"))[0] == 503
    assert (await call(app, "POST", "/", chunks=[body], headers=headers))[0] == 503
    assert [r async for r in inbox.export()] == []


async def test_mounted_in_fastapi(inbox: Inbox) -> None:
    """app.mount("/fullstory/webhooks", receiver.asgi): deliveries and health reach it under the prefix."""
    api = FastAPI()
    api.mount("/fullstory/webhooks", WebhookReceiver(SECRET, inbox=inbox).asgi)
    body, headers = signed_delivery("test", {}, secret=SECRET, org_id=ORG)
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.post("/fullstory/webhooks/", content=body, headers=headers)).status_code == 202
        # Starlette redirects the mount point without its slash: the endpoint URL must end with "/".
        assert (await client.post("/fullstory/webhooks", content=body, headers=headers)).status_code == 307
        assert (await client.get("/fullstory/webhooks/health")).json() == {"status": "ok"}
    assert [r.body async for r in inbox.export()] == [body]
