"""The aiohttp transport: request building, response records, errors, session ownership, body cap."""

from __future__ import annotations

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
from fullstory_async._transport import AiohttpTransport

BASE = "https://api.fullstory.com"
DEFAULT_HEADERS = {"Accept": "application/json", "User-Agent": "fullstory-async/test"}


@pytest.fixture
async def transport():
    """Yield an AiohttpTransport with an owned session, closed at teardown."""
    owned = AiohttpTransport(BASE, timeout=Timeout(total=7, connect=2), headers=dict(DEFAULT_HEADERS))
    yield owned
    await owned.aclose()


async def test_post_is_sent_with_body_headers_and_no_redirects(transport, mock_api) -> None:
    """A POST goes to base_url + path with the body, default and request headers, JSON type, no redirects."""
    mock_api.post(BASE + "/webhooks/v1/endpoints", status=200, body=b"{}")
    request = ApiRequest("POST", "/webhooks/v1/endpoints", headers={"Authorization": "Basic k"}, body=b'{"url":"u"}')
    await transport(request)
    [call] = mock_api.calls("POST", BASE + "/webhooks/v1/endpoints")
    assert call.kwargs["data"] == b'{"url":"u"}'
    assert call.kwargs["headers"] == {**DEFAULT_HEADERS, "Authorization": "Basic k", "Content-Type": "application/json"}
    assert call.kwargs["allow_redirects"] is False
    assert call.kwargs["timeout"] == aiohttp.ClientTimeout(total=7, sock_connect=2)


async def test_get_has_params_and_no_content_type(transport, mock_api) -> None:
    """A GET without a body sends its query parameters and no Content-Type."""
    url = BASE + "/webhooks/v1/endpoints?limit=5&paginationToken=t1"
    mock_api.get(url, status=200, body=b"{}")
    await transport(ApiRequest("GET", "/webhooks/v1/endpoints", params=(("limit", "5"), ("paginationToken", "t1"))))
    [call] = mock_api.calls("GET", url)
    assert call.kwargs["params"] == (("limit", "5"), ("paginationToken", "t1"))
    assert "Content-Type" not in call.kwargs["headers"]
    assert call.kwargs["data"] is None


async def test_request_timeout_overrides_the_default(transport, mock_api) -> None:
    """A request's own Timeout replaces the transport default for that request only."""
    mock_api.get(BASE + "/a", status=200, repeat=True)
    await transport(ApiRequest("GET", "/a", timeout=Timeout(total=0.5, connect=None)))
    await transport(ApiRequest("GET", "/a"))
    first, second = mock_api.calls("GET", BASE + "/a")
    assert first.kwargs["timeout"] == aiohttp.ClientTimeout(total=0.5, sock_connect=None)
    assert second.kwargs["timeout"] == aiohttp.ClientTimeout(total=7, sock_connect=2)


async def test_response_becomes_an_api_response(transport, mock_api) -> None:
    """Status, lower-cased headers, the whole body and the request id are carried over."""
    mock_api.get(BASE + "/a", status=404, body=b'{"code":"resource_not_found"}', headers={"X-Request-Id": "r-9"})
    response = await transport(ApiRequest("GET", "/a"))
    assert response.status == 404
    assert response.body == b'{"code":"resource_not_found"}'
    assert response.headers["x-request-id"] == "r-9"
    assert response.request_id == "r-9"


@pytest.mark.parametrize(
    "error",
    [
        aiohttp.ClientConnectionError("refused"),
        aiohttp.ServerDisconnectedError(),
        aiohttp.ClientPayloadError("truncated"),
    ],
)
async def test_client_errors_become_api_connection_error(transport, mock_api, error: Exception) -> None:
    """Aiohttp client errors become APIConnectionError naming the call, chained to the cause."""
    mock_api.delete(BASE + "/webhooks/v1/endpoints/x", exception=error)
    with pytest.raises(APIConnectionError) as info:
        await transport(ApiRequest("DELETE", "/webhooks/v1/endpoints/x"))
    assert not isinstance(info.value, APITimeoutError)
    assert (info.value.method, info.value.path) == ("DELETE", "/webhooks/v1/endpoints/x")
    assert info.value.__cause__ is error
    assert "(DELETE /webhooks/v1/endpoints/x)" in str(info.value)


@pytest.mark.parametrize(
    "error", [TimeoutError(), aiohttp.ServerTimeoutError("read"), aiohttp.ConnectionTimeoutError()]
)
async def test_timeouts_become_api_timeout_error(transport, mock_api, error: Exception) -> None:
    """Timeouts become APITimeoutError, which is also a TimeoutError and an APIConnectionError."""
    mock_api.get(BASE + "/a", exception=error)
    with pytest.raises(TimeoutError) as info:
        await transport(ApiRequest("GET", "/a"))
    assert isinstance(info.value, APITimeoutError)
    assert isinstance(info.value, APIConnectionError)
    assert "timed out after" in str(info.value)


async def test_session_is_created_lazily_and_closed(mock_api) -> None:
    """The owned session appears on the first request, with the pool limits, and aclose closes it."""
    owned = AiohttpTransport(BASE, timeout=Timeout(), max_connections=7, max_connections_per_host=3)
    assert owned._session is None
    mock_api.get(BASE + "/a", status=200)
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


async def test_passed_in_session_is_used_and_never_closed(mock_api) -> None:
    """A session passed in carries the requests and stays open after aclose."""
    mock_api.get(BASE + "/a", status=204)
    async with aiohttp.ClientSession() as session:
        borrowed = AiohttpTransport(BASE, timeout=Timeout(), session=session)
        assert (await borrowed(ApiRequest("GET", "/a"))).status == 204
        await borrowed.aclose()
        assert not session.closed
        with pytest.raises(ClientClosedError):
            await borrowed(ApiRequest("GET", "/a"))


async def test_body_over_cap_is_refused_without_content_length(mock_api) -> None:
    """A streamed body larger than max_response_bytes raises ResponseDecodeError naming the cap."""
    capped = AiohttpTransport(BASE, timeout=Timeout(), max_response_bytes=1000)
    mock_api.get(BASE + "/big", status=200, body=b"x" * 1001)
    mock_api.get(BASE + "/fits", status=200, body=b"x" * 1000)
    try:
        with pytest.raises(ResponseDecodeError, match=r"exceeds max_response_bytes \(1000\)"):
            await capped(ApiRequest("GET", "/big"))
        assert (await capped(ApiRequest("GET", "/fits"))).body == b"x" * 1000
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
    capped = AiohttpTransport(base, timeout=Timeout(total=5), max_response_bytes=64 * 1024)
    try:
        with pytest.raises(ResponseDecodeError, match=r"body of 65537 bytes exceeds max_response_bytes"):
            await capped(ApiRequest("GET", "/sized", params=(("n", "65537"),)))
        with pytest.raises(ResponseDecodeError, match="exceeds max_response_bytes"):
            await capped(ApiRequest("GET", "/chunked", params=(("n", "200000"),)))
        assert len((await capped(ApiRequest("GET", "/sized", params=(("n", "65536"),)))).body) == 65536
        assert len((await capped(ApiRequest("GET", "/chunked", params=(("n", "65500"),)))).body) == 65500
        assert capped._session is not None
        assert not capped._session.connector._acquired  # type: ignore[union-attr]
    finally:
        await capped.aclose()


async def test_redirects_are_not_followed(serve) -> None:
    """A redirect comes back as the 3xx response; the target (another origin) is never contacted."""
    hits: list[str] = []

    async def moved(request: web.Request) -> web.Response:
        hits.append(request.path)
        raise web.HTTPFound(location=str(request.url.with_path("/target")))

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", moved)
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


async def test_slow_server_times_out(slow_server) -> None:
    """A response slower than the total timeout raises APITimeoutError (a TimeoutError) quickly."""
    owned = AiohttpTransport(slow_server.base_url, timeout=Timeout(total=0.05))
    try:
        with pytest.raises(TimeoutError) as info:
            await owned(ApiRequest("GET", "/slow"))
        assert isinstance(info.value, APITimeoutError)
        assert slow_server.arrived.is_set()
        assert not owned._session.connector._acquired  # type: ignore[union-attr]
    finally:
        await owned.aclose()


async def test_debug_log_has_metadata_only(mock_api, caplog: pytest.LogCaptureFixture) -> None:
    """The transport logs method, path, status and request id at DEBUG, not headers or bodies."""
    caplog.set_level(logging.DEBUG, logger="fullstory_async")
    owned = AiohttpTransport(BASE, timeout=Timeout())
    mock_api.post(BASE + "/webhooks/v1/endpoints", status=200, body=b"{}", headers={"X-Request-Id": "r-1"})
    try:
        await owned(
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
