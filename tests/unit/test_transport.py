"""The aiohttp transport: request building, response records, errors, session ownership, body cap."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket

import aiohttp
import pytest
from aiohttp import web

from fullstory_async import (
    APIConnectionError,
    ApiRequest,
    APITimeoutError,
    ClientClosedError,
    ResponseDecodeError,
    Timeout,
)
from fullstory_async._error_decoder import decode_response
from fullstory_async._pipeline import compose
from fullstory_async._transport import AiohttpTransport
from tests.fakes import Gate, answering, app_of

BASE = "https://api.fullstory.com"
DEFAULT_HEADERS = {"Accept": "application/json", "User-Agent": "fullstory-async/test"}


# aiohttp adds these on the wire by itself; everything else is what the transport sent.
async def test_post_is_sent_with_body_headers_and_no_redirects(serve) -> None:
    """A POST goes to base_url + path with the body, default and request headers and JSON type (redirects: below)."""
    app, seen = answering()
    owned = AiohttpTransport(await serve(app), timeout=Timeout(total=7, connect=2), headers=dict(DEFAULT_HEADERS))
    request = ApiRequest("POST", "/webhooks/v1/endpoints", headers={"Authorization": "Basic k"}, body=b'{"url":"u"}')
    try:
        await owned(request)
    finally:
        await owned.aclose()
    [call] = seen
    assert (call.method, call.path_qs) == ("POST", "/webhooks/v1/endpoints")
    assert call.body == b'{"url":"u"}'
    assert call.sent_headers == {**DEFAULT_HEADERS, "Authorization": "Basic k", "Content-Type": "application/json"}


async def test_get_has_params_and_no_content_type(serve) -> None:
    """A GET without a body sends its query parameters and no Content-Type."""
    app, seen = answering()
    owned = AiohttpTransport(await serve(app), timeout=Timeout(total=7, connect=2), headers=dict(DEFAULT_HEADERS))
    try:
        await owned(ApiRequest("GET", "/webhooks/v1/endpoints", params=(("limit", "5"), ("paginationToken", "t1"))))
    finally:
        await owned.aclose()
    [call] = seen
    assert call.path_qs == "/webhooks/v1/endpoints?limit=5&paginationToken=t1"
    assert "Content-Type" not in call.headers
    assert call.body == b""


async def test_request_timeout_overrides_the_default(serve) -> None:
    """A request's own Timeout replaces the transport default for that request only.

    The server holds every request. A request with a 10 s timeout outlives one on the 0.05 s
    default, which times out meanwhile; released, the long one succeeds.
    """
    release = asyncio.Event()
    arrived = asyncio.Event()

    async def held(request: web.Request) -> web.Response:
        arrived.set()
        await release.wait()
        return web.Response(body=b"{}")

    app = web.Application()
    app.router.add_get("/a", held)
    owned = AiohttpTransport(await serve(app), timeout=Timeout(total=0.05))
    try:
        async with asyncio.timeout(10):
            long_call = asyncio.create_task(owned(ApiRequest("GET", "/a", timeout=Timeout(total=10, connect=None))))
            await arrived.wait()
            with pytest.raises(APITimeoutError):
                await owned(ApiRequest("GET", "/a"))
            assert not long_call.done()
            release.set()
            assert (await long_call).status == 200
    finally:
        release.set()
        await owned.aclose()


async def test_response_becomes_an_api_response(serve) -> None:
    """Status, lower-cased headers, the whole body and the request id are carried over."""
    app, _ = answering(404, b'{"code":"resource_not_found"}', {"X-Request-Id": "r-9"})
    owned = AiohttpTransport(await serve(app), timeout=Timeout(total=5))
    try:
        response = await owned(ApiRequest("GET", "/a"))
    finally:
        await owned.aclose()
    assert response.status == 404
    assert response.body == b'{"code":"resource_not_found"}'
    assert response.headers["x-request-id"] == "r-9"
    assert response.request_id == "r-9"


def raising(error: BaseException) -> aiohttp.ClientSession:
    """Return a session whose every request raises ``error`` (an aiohttp client middleware; no socket)."""

    async def fail(request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType) -> aiohttp.ClientResponse:
        raise error

    return aiohttp.ClientSession(middlewares=(fail,))


@pytest.mark.parametrize(
    "error",
    [
        aiohttp.ClientConnectionError("refused"),
        aiohttp.ServerDisconnectedError(),
        aiohttp.ClientPayloadError("truncated"),
    ],
)
async def test_client_errors_become_api_connection_error(error: Exception) -> None:
    """Aiohttp client errors become APIConnectionError naming the call, chained to the cause."""
    async with raising(error) as session:
        with pytest.raises(APIConnectionError) as info:
            await AiohttpTransport(BASE, timeout=Timeout(), session=session)(
                ApiRequest("DELETE", "/webhooks/v1/endpoints/x")
            )
    assert not isinstance(info.value, APITimeoutError)
    assert (info.value.method, info.value.path) == ("DELETE", "/webhooks/v1/endpoints/x")
    assert info.value.__cause__ is error
    assert "(DELETE /webhooks/v1/endpoints/x)" in str(info.value)


@pytest.mark.parametrize(
    "error", [TimeoutError(), aiohttp.ServerTimeoutError("read"), aiohttp.ConnectionTimeoutError()]
)
async def test_timeouts_become_api_timeout_error(error: Exception) -> None:
    """Timeouts become APITimeoutError, which is also a TimeoutError and an APIConnectionError."""
    async with raising(error) as session:
        with pytest.raises(TimeoutError) as info:
            await AiohttpTransport(BASE, timeout=Timeout(), session=session)(ApiRequest("GET", "/a"))
    assert isinstance(info.value, APITimeoutError)
    assert isinstance(info.value, APIConnectionError)
    assert "timed out after" in str(info.value)


async def test_session_is_created_lazily_and_closed(serve) -> None:
    """The owned session appears on the first request, with the pool limits, and aclose closes it."""
    app, _ = answering()
    owned = AiohttpTransport(await serve(app), timeout=Timeout(), max_connections=7, max_connections_per_host=3)
    assert owned._session is None
    await owned(ApiRequest("GET", "/a"))
    session = owned._session
    assert session is not None
    assert isinstance(session.connector, aiohttp.TCPConnector)
    assert (session.connector.limit, session.connector.limit_per_host) == (7, 3)
    await owned.aclose()
    assert session.closed
    assert owned.closed


async def test_aclose_is_idempotent_and_blocks_further_use() -> None:
    """Aclose may be called twice (even before any request); afterwards requests raise ClientClosedError."""
    owned = AiohttpTransport(BASE, timeout=Timeout())
    await owned.aclose()
    await owned.aclose()
    with pytest.raises(ClientClosedError):
        await owned(ApiRequest("GET", "/a"))
    assert owned._session is None


async def test_passed_in_session_is_used_and_never_closed(serve) -> None:
    """A session passed in carries the requests and stays open after aclose."""
    app, seen = answering(204, b"")
    base = await serve(app)
    async with aiohttp.ClientSession(headers={"X-Session": "the user's"}) as session:
        borrowed = AiohttpTransport(base, timeout=Timeout(), session=session)
        assert (await borrowed(ApiRequest("GET", "/a"))).status == 204
        await borrowed.aclose()
        assert not session.closed
        with pytest.raises(ClientClosedError):
            await borrowed(ApiRequest("GET", "/a"))
    assert [call.headers["X-Session"] for call in seen] == ["the user's"]


async def test_body_over_cap_is_refused_without_content_length(serve) -> None:
    """A streamed (chunked) body one byte over max_response_bytes raises ResponseDecodeError naming the cap."""

    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(b"x" * int(request.query["n"]))
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/", chunked)
    capped = AiohttpTransport(await serve(app), timeout=Timeout(total=5), max_response_bytes=1000)
    try:
        with pytest.raises(ResponseDecodeError, match=r"exceeds max_response_bytes \(1000\)"):
            await capped(ApiRequest("GET", "/", params=(("n", "1001"),)))
        assert (await capped(ApiRequest("GET", "/", params=(("n", "1000"),)))).body == b"x" * 1000
    finally:
        await capped.aclose()


async def test_body_over_cap_is_refused_from_a_real_server(serve) -> None:
    """Against a real server: an oversized Content-Length or chunked body is refused; the exact cap passes."""

    async def sized(request: web.Request) -> web.Response:
        return web.Response(body=b"y" * int(request.query["n"]))

    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(int(request.query["n"]) // 100):
            await response.write(b"z" * 100)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/sized", sized)
    app.router.add_get("/chunked", chunked)
    base = await serve(app)
    # One connection: a refused body that kept it would block the requests after it.
    capped = AiohttpTransport(base, timeout=Timeout(total=5), max_response_bytes=64 * 1024, max_connections=1)
    try:
        with pytest.raises(ResponseDecodeError, match=r"body of 65537 bytes exceeds max_response_bytes"):
            await capped(ApiRequest("GET", "/sized", params=(("n", "65537"),)))
        with pytest.raises(ResponseDecodeError, match="exceeds max_response_bytes"):
            await capped(ApiRequest("GET", "/chunked", params=(("n", "200000"),)))
        assert len((await capped(ApiRequest("GET", "/sized", params=(("n", "65536"),)))).body) == 65536
        assert len((await capped(ApiRequest("GET", "/chunked", params=(("n", "65500"),)))).body) == 65500
    finally:
        await capped.aclose()


async def test_redirects_are_not_followed(serve) -> None:
    """A redirect comes back as the 3xx response; the target (another origin) is never contacted."""
    hits: list[str] = []

    async def moved(request: web.Request) -> web.Response:
        hits.append(request.path)
        raise web.HTTPFound(location=str(request.url.with_path("/target")))

    app = app_of(moved)
    base = await serve(app)
    owned = AiohttpTransport(base, timeout=Timeout(total=5))
    try:
        response = await owned(
            ApiRequest("POST", "/webhooks/v1/endpoints", headers={"Authorization": "Basic k"}, body=b"{}")
        )
    finally:
        await owned.aclose()
    assert response.status == 302
    assert response.headers["location"].endswith("/target")
    assert hits == ["/webhooks/v1/endpoints"]


async def test_connection_refused_is_an_api_connection_error() -> None:
    """A refused TCP connection to 127.0.0.1 raises APIConnectionError."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    owned = AiohttpTransport(f"http://127.0.0.1:{port}", timeout=Timeout(total=5))
    try:
        with pytest.raises(APIConnectionError, match="connection error") as info:
            await owned(ApiRequest("GET", "/a"))
    finally:
        await owned.aclose()
    assert not isinstance(info.value, APITimeoutError)


async def test_slow_server_times_out(gate: Gate) -> None:
    """A response slower than the total timeout raises APITimeoutError (a TimeoutError); the connection is freed.

    The transport has one connection: the request after the timeout is only sent if it came back.
    """
    owned = AiohttpTransport(gate.base_url, timeout=Timeout(total=0.05), max_connections=1)
    try:
        with pytest.raises(TimeoutError) as info:
            await owned(ApiRequest("GET", "/slow"))
        assert isinstance(info.value, APITimeoutError)
        assert gate.arrived == 1
        gate.release.set()
        assert (await owned(ApiRequest("GET", "/slow"))).status == 200
    finally:
        await owned.aclose()


async def test_debug_log_has_metadata_only(serve, caplog: pytest.LogCaptureFixture) -> None:
    """An attempt is logged at DEBUG (by the decoder above the transport): metadata only, no headers or bodies."""
    caplog.set_level(logging.DEBUG, logger="fullstory_async")
    app, _ = answering(200, b"{}", {"X-Request-Id": "r-1"})
    owned = AiohttpTransport(await serve(app), timeout=Timeout())
    try:
        await compose([decode_response], owned)(
            ApiRequest(
                "POST", "/webhooks/v1/endpoints", headers={"Authorization": "Basic K3Y"}, body=b'{"secret":"S3C"}'
            )
        )
    finally:
        await owned.aclose()
    [record] = [r for r in caplog.records if r.name == "fullstory_async"]
    assert record.levelno == logging.DEBUG
    assert record.getMessage().startswith("POST /webhooks/v1/endpoints -> 200 in ")
    assert record.fullstory_request_id == "r-1"
    assert "K3Y" not in record.getMessage()
    assert "S3C" not in record.getMessage()


async def test_oversized_error_body_is_cut_and_still_maps_by_status(serve) -> None:
    """A huge error page is cut to the cap instead of refused, so its status still decides the error."""

    async def huge_502(_request: web.Request) -> web.Response:
        return web.Response(status=502, body=b"<html>" + b"e" * 200_000, content_type="text/html")

    app = web.Application()
    app.router.add_get("/bad", huge_502)
    base = await serve(app)
    capped = AiohttpTransport(base, timeout=Timeout(total=5), max_response_bytes=1024)
    try:
        response = await capped(ApiRequest("GET", "/bad"))
    finally:
        await capped.aclose()
    assert response.status == 502
    assert len(response.body) == 1024


async def test_timeout_connect_bounds_the_tcp_connect() -> None:
    """Timeout(connect=0.2) ends a connect that hangs (a loopback listener's accept queue is full) within total=30."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(8):  # fill the accept queue: further SYNs are dropped, so a connect hangs
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    transport = AiohttpTransport(f"http://127.0.0.1:{port}", timeout=Timeout(total=30, connect=0.2))
    try:
        with pytest.raises(APITimeoutError):
            async with asyncio.timeout(5):  # a hang guard: its TimeoutError is not an APITimeoutError
                await transport(ApiRequest("GET", "/x"))
    finally:
        await transport.aclose()
        for filler in fillers:
            filler.close()
        listener.close()
