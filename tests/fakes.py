"""The suite's stand-ins for the Fullstory API, one per purpose (see tests/README.md).

- `StubTransport`: replaces only aiohttp. ``Client(transport=StubTransport(...))`` runs the
  whole middleware chain (auth, retry, governor, decoding) on scripted replies, no socket.
- `ServedFake`: a `FakeFullstory` on its own event loop in a daemon thread, for code that runs
  its own loop (the CLI's ``main()``, a docs sample). Async tests start ``FakeFullstory()`` directly.
- `answering`: the smallest raw aiohttp app (one fixed answer, requests recorded) for tests that
  look at what reaches the wire; start it with the ``serve`` fixture (tests/conftest.py).
- `Gate`: a raw app that holds every request until released, counting arrivals: how a test sees
  what is in flight (timeouts, cancellation, the pool's width) from the server's side
  (the ``gate`` fixture); `gate_in_front_of` puts one before a `FakeFullstory`'s handlers.
- `RetryWaits`: hooks that tell when a call has begun a retry wait, so a test need not sleep
  to get there.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import attrs
from aiohttp import web
from multidict import CIMultiDict

from fullstory_async import ApiRequest, ApiResponse, Attempt, Call, Hooks
from fullstory_async.testing import FakeFullstory

T = TypeVar("T")

Serve = Callable[..., Awaitable[str]]
"""The ``serve`` fixture: ``await serve(app[, ssl_context])`` runs ``app`` on 127.0.0.1 and returns its base URL."""

Answer = Callable[[ApiRequest], Awaitable[ApiResponse]]
Reply = ApiResponse | tuple[Any, ...] | BaseException | Answer
"""A scripted reply: a response, a ``(status, body[, headers])`` tuple, an exception to raise,
or an async callable that gets the request."""


def as_response(status: int = 200, body: object = None, headers: dict[str, str] | None = None) -> ApiResponse:
    """Build an `ApiResponse`; a dict/list body is JSON-encoded, bytes are kept as they are."""
    raw = body if isinstance(body, bytes) else b"" if body is None else json.dumps(body).encode()
    return ApiResponse(status=status, headers=headers or {}, body=raw)


class StubTransport:
    """In-memory transport for ``Client(transport=...)``: records requests and plays scripted replies.

    Once the script is used up, ``answer`` (if given) answers every further request; without
    it, an unexpected request fails the test.
    """

    def __init__(self, *replies: Reply, answer: Answer | None = None) -> None:
        self.replies: deque[Reply] = deque(replies)
        self.answer = answer
        self.requests: list[ApiRequest] = []

    async def __call__(self, request: ApiRequest) -> ApiResponse:
        self.requests.append(request)
        if not self.replies:
            if self.answer is None:
                raise AssertionError(f"unexpected request {request.method} {request.path}")
            return await self.answer(request)
        reply = self.replies.popleft()
        if isinstance(reply, BaseException):
            raise reply
        if isinstance(reply, ApiResponse):
            return reply
        if isinstance(reply, tuple):
            return as_response(*reply)
        return await reply(request)

    def body(self, index: int) -> Any:
        """Return the JSON body of the request at ``index``."""
        raw = self.requests[index].body
        assert raw is not None, f"request {index} has no body"
        return json.loads(raw)


@attrs.frozen
class Seen:
    """One request as it reached a raw server: method, path with query, headers, body."""

    method: str
    path_qs: str
    headers: CIMultiDict[str]
    body: bytes

    @property
    def sent_headers(self) -> dict[str, str]:
        """The headers the client chose (aiohttp's own Host, Content-Length and Accept-Encoding left out)."""
        return {name: value for name, value in self.headers.items() if name not in _AIOHTTP_HEADERS}


_AIOHTTP_HEADERS = {"Host", "Content-Length", "Accept-Encoding"}


def is_server_task(task: asyncio.Task[Any]) -> bool:
    """Tell a task of aiohttp's server (the test's side of the wire) from the client's."""
    return getattr(task.get_coro(), "__qualname__", "").startswith("RequestHandler.")


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def app_of(handler: Handler) -> web.Application:
    """Return an app that sends every request (any method, any path) to ``handler``."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    return app


def answering(
    status: int = 200, body: bytes = b"{}", headers: dict[str, str] | None = None
) -> tuple[web.Application, list[Seen]]:
    """Return an app answering every request with ``status``/``body``/``headers``, and the list it records into."""
    seen: list[Seen] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(Seen(request.method, request.path_qs, CIMultiDict(request.headers), await request.read()))
        return web.Response(status=status, body=body, headers=headers, content_type="application/json")

    return app_of(handle), seen


ENDPOINT = {
    "id": "ep-1",
    "created": "2020-04-01T21:53:58.200Z",
    "modified": "2020-04-01T21:53:58.200Z",
    "enabled": True,
    "url": "https://example.com/hook",
}


class Gate:
    """A raw server whose handler holds every request until ``release`` is set, counting arrivals.

    Released, it answers a listing with one endpoint and a next token, anything else with
    the endpoint (``ENDPOINT``). ``middleware()`` puts the same hold in front of another
    app's handlers (a `FakeFullstory`'s ``app``, before it starts).
    """

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.arrived = 0
        self.in_flight = 0
        self.base_url = ""
        self._arrival = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    async def arrivals(self, n: int, timeout: float = 10) -> None:
        """Wait until ``n`` requests have arrived in all (a hang guard fails the test after ``timeout``)."""
        async with asyncio.timeout(timeout):
            while self.arrived < n:
                self._arrival.clear()
                await self._arrival.wait()

    async def idle(self, timeout: float = 10) -> None:
        """Wait until no request is in the app behind the gate (a hang guard fails the test after ``timeout``)."""
        async with asyncio.timeout(timeout):
            await self._idle.wait()

    async def check_pool_width(self, call: Callable[[], Awaitable[object]], width: int) -> None:
        """Assert that ``width + 1`` held calls put exactly ``width`` requests on the wire; then let them finish.

        How a test sees that a client's pool of ``width`` connections is whole: a connection
        kept by an earlier call (a leak) shows as fewer arrivals, and the wait fails.
        """
        self.release.clear()
        start = self.arrived
        tasks = [asyncio.create_task(call()) for _ in range(width + 1)]
        try:
            await self.arrivals(start + width)
            for _ in range(50):  # what else could reach the server now does
                await asyncio.sleep(0)
            assert self.arrived == start + width, f"{self.arrived - start} requests on the wire, the pool has {width}"
        finally:
            self.release.set()
            async with asyncio.timeout(10):
                results = await asyncio.gather(*tasks, return_exceptions=True)
        errors = [result for result in results if isinstance(result, BaseException)]
        assert errors == [], errors[:3]

    async def _held(self, then: Callable[[], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        """Count the request in, hold it until ``release``, then answer with ``then()``."""
        self.in_flight += 1
        self._idle.clear()
        try:
            self.arrived += 1
            self._arrival.set()
            await self.release.wait()
            return await then()
        finally:
            self.in_flight -= 1
            if not self.in_flight:
                self._idle.set()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        await request.read()

        async def answer() -> web.Response:
            if request.path == "/webhooks/v1/endpoints" and request.method == "GET":
                return web.json_response({"endpoints": [ENDPOINT], "nextPaginationToken": "more"})
            return web.json_response(ENDPOINT)

        return await self._held(answer)

    def app(self) -> web.Application:
        return app_of(self.handle)

    def middleware(self) -> Any:
        """Return an aiohttp middleware holding each request at this gate before the app's handler."""

        @web.middleware
        async def hold(request: web.Request, handler: Any) -> web.StreamResponse:
            return await self._held(lambda: handler(request))

        return hold


def gate_in_front_of(fake: FakeFullstory) -> Gate:
    """Put an open `Gate` in front of a fake's handlers (call it before the fake starts)."""
    gate = Gate()
    gate.release.set()
    fake.app.middlewares.append(gate.middleware())
    return gate


class RetryWaits(Hooks):
    """Hooks (``Client(hooks=[...])``) that record each retry wait a call begins and set ``waiting``."""

    def __init__(self) -> None:
        self.waits: list[float] = []
        self.waiting = asyncio.Event()

    def on_attempt(self, call: Call, attempt: Attempt) -> None:
        if attempt.retry_wait is not None:
            self.waits.append(attempt.retry_wait)
            self.waiting.set()


class ServedFake:
    """A `FakeFullstory` running on its own event loop in a daemon thread; ``serve`` adds raw apps there."""

    def __init__(self) -> None:
        self._runners: list[web.AppRunner] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="served-fake", daemon=True)
        self.thread.start()
        self.fake: FakeFullstory = self.run(self._start())
        self.url = self.fake.url
        self.api_key = self.fake.api_key

    @staticmethod
    async def _start() -> FakeFullstory:
        fake = FakeFullstory()
        await fake.start()
        return fake

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the fake's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def call(self, func: Callable[[], T]) -> T:
        """Run a plain function on the fake's loop thread (e.g. ``fake.add_endpoint``)."""

        async def wrapper() -> T:
            return func()

        return self.run(wrapper())

    def urls(self) -> set[str]:
        """Return the URLs of the stored endpoints."""
        return self.call(lambda: {endpoint.url for endpoint in self.fake.endpoints.values()})

    def serve(self, app: web.Application) -> str:
        """Run a raw app written in a sync test on this loop (127.0.0.1) until close; return its base URL."""

        async def start() -> str:
            runner = web.AppRunner(app, shutdown_timeout=0.5)
            await runner.setup()
            self._runners.append(runner)
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            return f"http://127.0.0.1:{runner.addresses[0][1]}"

        return self.run(start())

    def close(self) -> None:
        for runner in self._runners:
            self.run(runner.cleanup())
        self.run(self.fake.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@attrs.frozen
class Pki:
    """PEM files of a private CA, a server certificate for 127.0.0.1 and a client certificate."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    def client_context(self, *, certificate: bool = False) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca))
        if certificate:
            context.load_cert_chain(self.client_cert, self.client_key)
        return context

    def server_context(self, *, require_client_certificate: bool = False) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.server_cert, self.server_key)
        if require_client_certificate:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(cafile=str(self.ca))
        return context


def make_pki(folder: Path) -> Pki:
    """Write a private CA, a server (127.0.0.1) and a client certificate it signed (EC P-256, a day) in ``folder``."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.now(UTC)

    def builder(subject: str, issuer: str, public_key: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        )

    def write(name: str, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> tuple[Path, Path]:
        cert_path, key_path = folder / f"{name}.pem", folder / f"{name}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        return cert_path, key_path

    ca_key = ec.generate_private_key(ec.SECP256R1())
    usage = dict.fromkeys(
        ("content_commitment", "key_encipherment", "data_encipherment", "key_agreement", "encipher_only"), False
    )
    ca = (
        builder("fullstory-async test CA", "fullstory-async test CA", ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, decipher_only=False, **usage),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, _ = write("ca", ca_key, ca)

    def leaf(name: str, purpose: x509.ObjectIdentifier) -> tuple[Path, Path]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            builder(name, "fullstory-async test CA", key.public_key())
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .add_extension(x509.ExtendedKeyUsage([purpose]), critical=False)
            .add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
        return write(name, key, cert)

    server = leaf("server", ExtendedKeyUsageOID.SERVER_AUTH)
    client = leaf("client", ExtendedKeyUsageOID.CLIENT_AUTH)
    return Pki(ca_path, *server, *client)
