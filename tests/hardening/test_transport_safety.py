"""Transport safety: the API key never leaves for another origin, never crosses a network in clear, TLS is verified.

Two 127.0.0.1 servers play the API and "another origin"; a self-signed certificate made
at test time with the ``openssl`` command plays a server the client must not trust.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from fullstory_async import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    Client,
    CreateEndpointRequest,
    InvalidArgumentError,
    RetryPolicy,
    UpdateEndpointRequest,
)
from tests.fakes import Serve, app_of

API_KEY = "na1.TransportSafetyKey-Vb3r/ORG3"
ENDPOINT_JSON = {
    "id": "ep-1",
    "created": "2020-04-01T21:53:58.200Z",
    "modified": "2020-04-01T21:53:58.200Z",
    "enabled": True,
    "url": "https://example.com/hook",
}


class Origin:
    """A 127.0.0.1 server that records every request (method, path, Authorization header)."""

    def __init__(self) -> None:
        self.hits: list[tuple[str, str, str | None]] = []
        self.redirect_to: str | None = None
        self.status = 302

    async def handle(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        self.hits.append((request.method, request.path, request.headers.get("Authorization")))
        if self.redirect_to is not None:
            return web.Response(status=self.status, headers={"Location": self.redirect_to + request.path})
        return web.json_response(ENDPOINT_JSON)

    def app(self) -> web.Application:
        return app_of(self.handle)


@pytest.fixture
async def origins(serve) -> tuple[Origin, str, Origin, str]:
    """Serve the API and another origin, both on 127.0.0.1 (different ports)."""
    api, other = Origin(), Origin()
    api_url = await serve(api.app())
    other_url = await serve(other.app())
    return api, api_url, other, other_url


CALLS = {
    "create_endpoint": lambda c: c.webhooks.create_endpoint(
        CreateEndpointRequest(url="https://example.com/hook", secret="TransportSecret-8gk2")
    ),
    "get_endpoint": lambda c: c.webhooks.get_endpoint("ep-1"),
    "update_endpoint": lambda c: c.webhooks.update_endpoint("ep-1", UpdateEndpointRequest(enabled=False)),
    "delete_endpoint": lambda c: c.webhooks.delete_endpoint("ep-1"),
    "list_endpoints_page": lambda c: c.webhooks.list_endpoints_page(),
    "list_event_types": lambda c: c.webhooks.list_event_types(),
}


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("operation", sorted(CALLS))
async def test_redirects_are_errors_and_the_other_origin_gets_nothing(origins, operation: str, status: int) -> None:
    """A 3xx to another origin is an APIStatusError naming the Location; the other origin receives no request."""
    api, api_url, other, other_url = origins
    api.redirect_to, api.status = other_url, status
    async with Client(API_KEY, base_url=api_url, retry=RetryPolicy(wait=False)) as client:
        with pytest.raises(APIStatusError) as info:
            await CALLS[operation](client)
    error = info.value
    assert error.status == status
    assert f"redirect to {other_url}" in error.message
    assert other_url in str(error)
    assert other.hits == []
    assert len(api.hits) == 1, "a redirect is not retried either"
    assert api.hits[0][2] == f"Basic {API_KEY}"


async def test_a_redirect_with_a_json_body_still_names_the_location(serve) -> None:
    """Even when the 3xx carries a Fullstory-shaped message, the error names where it pointed."""

    async def moved(_request: web.Request) -> web.Response:
        return web.json_response(
            {"code": "moved", "message": "go elsewhere"}, status=307, headers={"Location": "https://evil.example"}
        )

    app = app_of(moved)
    base = await serve(app)
    async with Client(API_KEY, base_url=base, retry=RetryPolicy(max_attempts=1)) as client:
        with pytest.raises(APIStatusError, match=r"redirect to https://evil\.example not followed"):
            await client.webhooks.get_endpoint("ep-1")


async def test_a_passed_in_session_does_not_follow_redirects_either(origins) -> None:
    """With the user's own session, API calls still refuse redirects (the call sets allow_redirects=False)."""
    api, api_url, other, other_url = origins
    api.redirect_to = other_url
    async with aiohttp.ClientSession() as session, Client(API_KEY, base_url=api_url, session=session) as client:
        with pytest.raises(APIStatusError):
            await client.webhooks.get_endpoint("ep-1")
    assert other.hits == []


# -- plain http ------------------------------------------------------------------------------------

LOOPBACK = [
    "http://127.0.0.1:8080",
    "http://127.10.20.30",
    "http://localhost:9000/prefix",
    "http://LOCALHOST",
    "http://[::1]:8080",
]
REMOTE = [
    "http://api.fullstory.com",
    "http://10.0.0.5",
    "http://192.168.1.10:8080",
    "http://localhost.evil.example",
    "http://127.0.0.1.evil.example",
    "http://0x7f000001",
    "HTTP://api.fullstory.com",
]


@pytest.mark.parametrize("base_url", REMOTE)
def test_plain_http_to_a_remote_host_is_refused(base_url: str) -> None:
    """Plain http to anything but a loopback host is an InvalidArgumentError naming base_url."""
    with pytest.raises(InvalidArgumentError, match="allow_insecure_http") as info:
        Client(API_KEY, base_url=base_url)
    assert info.value.field == "base_url"


@pytest.mark.parametrize("base_url", REMOTE)
def test_plain_http_to_a_remote_host_needs_an_explicit_opt_in(base_url: str) -> None:
    """allow_insecure_http=True is the one way to send the key over plain http to a remote host."""
    assert Client(API_KEY, base_url=base_url, allow_insecure_http=True).base_url == base_url


@pytest.mark.parametrize("base_url", LOOPBACK)
def test_plain_http_to_loopback_is_allowed(base_url: str) -> None:
    """Loopback hosts (the fake server) may use plain http."""
    assert Client(API_KEY, base_url=base_url).base_url == base_url


@pytest.mark.parametrize("key", ["na1.abc/ORG", "eu1.abc/ORG"])
def test_default_base_urls_are_https(key: str) -> None:
    """Without a base_url the client talks https, for every region."""
    assert Client(key).base_url.startswith("https://")


# -- TLS -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Make a throwaway self-signed certificate for 127.0.0.1 with the openssl command."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is not available to make a self-signed certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    command = [
        openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
        "-addext", "subjectAltName=IP:127.0.0.1",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, timeout=30, check=False)
    if result.returncode != 0:
        pytest.skip(f"openssl could not make a certificate: {result.stderr.decode(errors='replace')[:200]}")
    return cert, key


@pytest.fixture
async def tls_origin(self_signed: tuple[Path, Path], serve: Serve) -> tuple[Origin, str]:
    """Serve https on 127.0.0.1 with the self-signed certificate."""
    cert, key = self_signed
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    origin = Origin()
    return origin, await serve(origin.app(), context)


async def test_a_self_signed_certificate_is_refused(tls_origin) -> None:
    """An https server whose certificate is not trusted is an APIConnectionError; no request is served."""
    origin, base = tls_origin
    async with Client(API_KEY, base_url=base, retry=RetryPolicy(max_attempts=1)) as client:
        with pytest.raises(APIConnectionError, match=r"(?i)certificate") as info:
            await client.webhooks.get_endpoint("ep-1")
    assert not isinstance(info.value, APITimeoutError)
    assert origin.hits == []


async def test_the_same_server_is_reached_when_its_certificate_is_trusted(tls_origin, self_signed) -> None:
    """Control: with a session that trusts the certificate the call succeeds, so the refusal was verification."""
    origin, base = tls_origin
    context = ssl.create_default_context(cafile=str(self_signed[0]))
    connector = aiohttp.TCPConnector(ssl=context)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        Client(API_KEY, base_url=base, session=session) as c,
    ):
        endpoint = await c.webhooks.get_endpoint("ep-1")
    assert endpoint.id == "ep-1"
    assert origin.hits == [("GET", "/webhooks/v1/endpoints/ep-1", f"Basic {API_KEY}")]
