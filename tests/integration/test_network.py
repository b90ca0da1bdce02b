"""Proxies and TLS end to end: a loopback forward proxy, a TLS server with a private CA, mutual TLS."""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

import attrs
import pytest
from aiohttp import web

from fullstory_async import APIConnectionError, ApiRequest, APIStatusError, Client, FullstoryError, RetryPolicy
from fullstory_async.cli import main
from fullstory_async.testing import FakeFullstory
from tests.fakes import Pki, Serve

API_KEY = "na1.Pr0xyT3stApiKey/ORG7"
PROXY_PASSWORD = "pr0xy-P4ssw0rd-s3cret"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NO_RETRY = RetryPolicy(max_attempts=1)
REQUEST_LINE = re.compile(rb"^([A-Z]+) (\S+) HTTP/1\.1\r$", re.MULTILINE)


class ForwardProxy:
    """A loopback HTTP forward proxy: relays absolute-form requests and tunnels ``CONNECT``.

    It keeps the head of each connection's first request and every byte it relayed in each
    direction, and with ``credentials`` answers 407 to a request without them.
    """

    def __init__(self, credentials: str | None = None) -> None:
        self.credentials = credentials
        self.heads: list[bytes] = []
        self.sent = bytearray()  # client -> server, after the proxy's own head for CONNECT
        self.received = bytearray()  # server -> client
        self.url = ""
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self.url

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()

    def request_lines(self) -> list[tuple[str, str]]:
        """Return the method and target of every request the proxy relayed or tunnelled (CONNECT)."""
        heads = b"".join(h for h in self.heads if h.startswith(b"CONNECT ")) + bytes(self.sent)
        return [(m.decode(), t.decode()) for m, t in REQUEST_LINE.findall(heads)]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        self.heads.append(head)
        line, *lines = head.decode("latin-1").split("\r\n")
        method, target, _ = line.split(" ", 2)
        headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines if h)}
        if self.credentials is not None:
            expected = "Basic " + base64.b64encode(self.credentials.encode()).decode()
            if headers.get("proxy-authorization") != expected:
                writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
                writer.close()
                return
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            upstream_reader, upstream = await asyncio.open_connection(host, int(port))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:
            url = urlsplit(target)
            upstream_reader, upstream = await asyncio.open_connection(url.hostname, url.port)
            upstream.write(head)  # aiohttp servers accept the absolute form
            self.sent += head
        self._writers.append(upstream)
        await asyncio.gather(
            self._pipe(reader, upstream, self.sent), self._pipe(upstream_reader, writer, self.received)
        )

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, log: bytearray) -> None:
        try:
            while data := await reader.read(65536):
                log += data
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()


@pytest.fixture
async def start_proxy() -> AsyncIterator[Callable[..., Awaitable[ForwardProxy]]]:
    """Start `ForwardProxy` instances on 127.0.0.1; all are stopped at teardown."""
    proxies: list[ForwardProxy] = []

    async def start(credentials: str | None = None) -> ForwardProxy:
        proxy = ForwardProxy(credentials)
        await proxy.start()
        proxies.append(proxy)
        return proxy

    yield start
    for proxy in proxies:
        await proxy.stop()


@attrs.define
class TlsServer:
    url: str
    authorizations: list[str | None]


@pytest.fixture
def tls_server(pki: Pki, serve: Serve) -> Callable[..., Awaitable[TlsServer]]:
    """Serve an app on https://127.0.0.1 with the private CA's certificate; it records Authorization headers."""

    async def start(*, require_client_certificate: bool = False) -> TlsServer:
        authorizations: list[str | None] = []

        async def endpoints(request: web.Request) -> web.Response:
            authorizations.append(request.headers.get("Authorization"))
            return web.json_response({"endpoints": []})

        app = web.Application()
        app.router.add_get("/webhooks/v1/endpoints", endpoints)
        context = pki.server_context(require_client_certificate=require_client_certificate)
        return TlsServer(await serve(app, context), authorizations)

    return start


LIST = ApiRequest("GET", "/webhooks/v1/endpoints", operation="list_endpoints")


async def test_http_proxy_from_the_environment_carries_every_request(start_proxy, monkeypatch):
    """With HTTP_PROXY set, every request of the client's own session (and of with_options copies) is proxied."""
    proxy = await start_proxy()
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    async with FakeFullstory() as fake, Client(api_key=fake.api_key, base_url=fake.url) as fs:
        assert [ep async for ep in fs.webhooks.list_endpoints()] == []
        await fs.with_options(timeout=5).webhooks.list_event_types()  # a derived client too
    assert proxy.request_lines() == [
        ("GET", f"{fake.url}/webhooks/v1/endpoints"),
        ("GET", f"{fake.url}/webhooks/v1/event-types"),
    ]
    assert len(fake.requests) == 2


@pytest.mark.parametrize("no_proxy", ["127.0.0.1", "localhost,127.0.0.1", ".0.0.1", "127.0.0.0/8", "*"])
async def test_no_proxy_covering_the_host_bypasses_the_proxy(start_proxy, monkeypatch, no_proxy):
    """A host NO_PROXY covers (name, suffix, CIDR range, ``*``) is reached directly: the proxy sees nothing."""
    proxy = await start_proxy()
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", no_proxy)
    async with FakeFullstory() as fake, Client(api_key=fake.api_key, base_url=fake.url) as fs:
        await fs.webhooks.list_event_types()
    assert len(fake.requests) == 1
    assert proxy.heads == []


async def test_no_proxy_for_another_host_still_proxies(start_proxy, monkeypatch):
    """NO_PROXY entries that do not cover the host (other names, another port, other ranges) bypass nothing."""
    proxy = await start_proxy()
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "example.com,127.0.0.2,10.0.0.0/8,127.0.0.1:1")
    async with FakeFullstory() as fake, Client(api_key=fake.api_key, base_url=fake.url) as fs:
        await fs.webhooks.list_event_types()
    assert proxy.request_lines() == [("GET", f"{fake.url}/webhooks/v1/event-types")]


async def test_the_environment_is_read_when_the_client_is_created(start_proxy, monkeypatch):
    """Variables set or removed after ``Client()`` change nothing for that client."""
    proxy = await start_proxy()
    async with FakeFullstory() as fake:
        direct = Client(api_key=fake.api_key, base_url=fake.url)
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        proxied = Client(api_key=fake.api_key, base_url=fake.url)
        monkeypatch.delenv("HTTP_PROXY")
        async with direct, proxied:
            await direct.webhooks.list_event_types()
            await proxied.webhooks.list_endpoints_page()
    assert proxy.request_lines() == [("GET", f"{fake.url}/webhooks/v1/endpoints")]


async def test_trust_env_false_ignores_the_environment(start_proxy, monkeypatch):
    """``trust_env=False`` sends directly even with HTTP_PROXY set."""
    proxy = await start_proxy()
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    async with FakeFullstory() as fake, Client(api_key=fake.api_key, base_url=fake.url, trust_env=False) as fs:
        await fs.webhooks.list_event_types()
    assert proxy.heads == []


async def test_explicit_proxy_with_credentials_authenticates(start_proxy, monkeypatch):
    """``proxy=`` with credentials wins over the environment and sends them as Proxy-Authorization."""
    proxy = await start_proxy(credentials=f"ops:{PROXY_PASSWORD}")
    other = await start_proxy()
    monkeypatch.setenv("HTTP_PROXY", other.url)
    netloc = proxy.url.removeprefix("http://")
    async with (
        FakeFullstory() as fake,
        Client(api_key=fake.api_key, base_url=fake.url, proxy=f"http://ops:{PROXY_PASSWORD}@{netloc}") as fs,
    ):
        await fs.webhooks.list_event_types()
        assert PROXY_PASSWORD not in repr(fs)
    assert proxy.request_lines() == [("GET", f"{fake.url}/webhooks/v1/event-types")]
    assert other.heads == []


async def test_proxy_credentials_never_appear_in_errors_or_logs(start_proxy, tls_server, pki, monkeypatch, caplog):
    """A proxy refusing the credentials (407) fails the call with an error naming neither them nor the key."""
    proxy = await start_proxy(credentials="ops:the-right-password")
    server = await tls_server()
    netloc = proxy.url.removeprefix("http://")
    monkeypatch.setenv("HTTPS_PROXY", f"http://ops:{PROXY_PASSWORD}@{netloc}")
    monkeypatch.setenv("HTTP_PROXY", f"http://ops:{PROXY_PASSWORD}@{netloc}")
    errors: list[FullstoryError] = []
    async with Client(api_key=API_KEY, base_url=server.url, ssl=pki.client_context(), retry=NO_RETRY) as fs:
        with pytest.raises(APIConnectionError, match="407") as caught:  # the CONNECT was refused
            await fs.send(LIST)
        errors.append(caught.value)
    async with FakeFullstory() as fake, Client(api_key=fake.api_key, base_url=fake.url, retry=NO_RETRY) as fs:
        with pytest.raises(APIStatusError) as refused:  # a plain request: the proxy's own 407 response
            await fs.webhooks.list_event_types()
        assert refused.value.status == 407
        errors.append(refused.value)
    texts = [caplog.text, *(f"{e}{e!r}{e.__cause__!r}" for e in errors)]
    assert not [text for text in texts if PROXY_PASSWORD in text or API_KEY in text or fake.api_key in text]
    assert server.authorizations == []
    assert len(fake.requests) == 0


async def test_https_api_is_reached_through_a_connect_tunnel(start_proxy, tls_server, pki, monkeypatch):
    """Through HTTPS_PROXY an https API is tunnelled (CONNECT): the proxy never sees the key or a path."""
    proxy = await start_proxy()
    server = await tls_server()
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:1")  # the wrong scheme's variable is not used
    async with Client(api_key=API_KEY, base_url=server.url, ssl=pki.client_context()) as fs:
        for _ in range(3):
            assert (await fs.send(LIST)).status == 200
    netloc = server.url.removeprefix("https://")
    assert proxy.request_lines() == [("CONNECT", netloc)]  # one tunnel, kept alive for the three calls
    assert server.authorizations == [f"Basic {API_KEY}"] * 3
    everything = b"".join(proxy.heads) + proxy.sent + proxy.received
    assert API_KEY.encode() not in everything
    assert b"/webhooks/v1" not in everything


async def test_private_ca_is_trusted_only_through_ssl(tls_server, pki):
    """A server whose certificate a private CA signed fails verification by default and is reached with ``ssl=``."""
    server = await tls_server()
    async with Client(api_key=API_KEY, base_url=server.url, retry=NO_RETRY) as fs:
        with pytest.raises(APIConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
            await fs.send(LIST)
    async with Client(api_key=API_KEY, base_url=server.url, ssl=pki.client_context()) as fs:
        assert (await fs.send(LIST)).status == 200
    assert server.authorizations == [f"Basic {API_KEY}"]


async def test_mutual_tls_presents_the_client_certificate(tls_server, pki):
    """A server requiring a client certificate accepts the one in ``ssl=`` and refuses a client without one."""
    server = await tls_server(require_client_certificate=True)
    async with Client(api_key=API_KEY, base_url=server.url, ssl=pki.client_context(certificate=True)) as fs:
        assert (await fs.send(LIST)).status == 200
        assert (await fs.with_options(timeout=5).send(LIST)).status == 200
    async with Client(api_key=API_KEY, base_url=server.url, ssl=pki.client_context(), retry=NO_RETRY) as fs:
        with pytest.raises(APIConnectionError):
            await fs.send(LIST)
    assert server.authorizations == [f"Basic {API_KEY}"] * 2


async def test_clients_of_the_fake_ignore_the_environment(start_proxy, monkeypatch, fullstory_client):
    """``fake.client()`` and the pytest fixture reach the fake directly whatever the proxy variables say."""
    proxy = await start_proxy()
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.setenv(name, proxy.url)
    async with FakeFullstory() as fake, fake.client() as fs:
        await fs.webhooks.list_event_types()
    await fullstory_client.webhooks.list_event_types()
    assert proxy.heads == []


def test_cli_main_job_ignores_the_environment(monkeypatch, capsys):
    """The README's main job (``apply`` on the embedded fake) works with every proxy variable pointing nowhere."""
    monkeypatch.delenv("FULLSTORY_API_KEY", raising=False)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:1")  # nothing listens on port 1
    assert main(["apply", str(EXAMPLES / "endpoints.toml"), "--yes"]) == 0
    assert "embedded fake" in capsys.readouterr().err
