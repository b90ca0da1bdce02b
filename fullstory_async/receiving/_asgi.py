"""`WebhookASGIApp`: a `WebhookReceiver` as a pure ASGI application (no Starlette dependency).

Mount it in FastAPI or Starlette (``app.mount("/fullstory/webhooks", receiver.asgi)``) or
serve it alone (``uvicorn module:receiver.asgi``). Relative to where it is mounted,
``POST /`` takes deliveries, ``GET /health`` reports liveness and ``GET /health/ready``
readiness (the inbox commits within its bound); anything else is 404
(405 for another method on ``/``). The body is read with the size cap before any check:
a larger ``Content-Length`` is refused without reading, a chunked body is never read
past the limit, and a body not received within ``body_timeout`` is answered ``408`` with
``Connection: close`` (an ASGI server such as uvicorn bounds neither the head nor the body).
On a ``lifespan`` shutdown (when served alone) the receiver closes.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any, Literal

from fullstory_async.receiving._signature import SIGNATURE_HEADER

if TYPE_CHECKING:
    from fullstory_async.receiving._receiver import WebhookReceiver

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
_SIGNATURE = SIGNATURE_HEADER.lower().encode("latin-1")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


class WebhookASGIApp:
    """The ASGI face of a `WebhookReceiver` (use ``receiver.asgi``)."""

    def __init__(self, receiver: WebhookReceiver) -> None:
        self.receiver = receiver

    def __repr__(self) -> str:
        return f"<WebhookASGIApp {self.receiver!r}>"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection scope."""
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path = scope.get("path", "/")
        root = scope.get("root_path", "")
        if root and path.startswith(root):  # Starlette keeps the mount prefix in path
            path = path[len(root) :]
        path = path.rstrip("/") or "/"
        method = scope.get("method", "GET")
        if path == "/health" and method in ("GET", "HEAD"):
            document, status = self.receiver.health_status()
            await _respond(send, status, json.dumps(document).encode(), b"application/json")
        elif path == "/health/ready" and method in ("GET", "HEAD"):
            document, status = await self.receiver.ready_status()
            await _respond(send, status, json.dumps(document).encode(), b"application/json", self.receiver)
        elif path != "/":
            await _respond(send, 404)
        elif method != "POST":
            await _respond(send, 405)
        elif self.receiver.closed:
            await _respond(send, 503)
        else:
            client = scope.get("client")
            peer = str(client[0]) if client else None
            try:
                async with self.receiver.body_deadline():
                    body = await self._read_body(scope, receive)
            except TimeoutError:
                await _respond(send, self.receiver.body_timed_out(peer), receiver=self.receiver, close=True)
                return
            if body is not False:
                status = await self.receiver.accept(body, _header(scope, _SIGNATURE), peer)
                await _respond(send, status, receiver=self.receiver)

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes | Literal[False] | None:
        """Read the body; ``None`` once it is known to exceed the cap; ``False`` if the client went away."""
        limit = self.receiver.settings.max_body_bytes
        length = _header(scope, b"content-length")
        if length is not None and length.strip().isdigit() and int(length) > limit:
            return None
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return False
            body += message.get("body", b"")
            if len(body) > limit:
                return None
            if not message.get("more_body", False):
                return bytes(body)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.receiver.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _respond(
    send: Send,
    status: int,
    body: bytes = b"",
    content_type: bytes | None = None,
    receiver: WebhookReceiver | None = None,
    *,
    close: bool = False,
) -> None:
    headers = [(b"content-length", str(len(body)).encode())]
    if content_type is not None:
        headers.append((b"content-type", content_type))
    if close:
        headers.append((b"connection", b"close"))
    if receiver is not None:
        headers += [(name.lower().encode(), value.encode()) for name, value in receiver.retry_after(status).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
